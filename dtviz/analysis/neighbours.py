"""Nearest classes by cosine, in the full space of c or in a subspace (the head dims).

With cosine ≈ 0.99 between almost all classes (paper Sec. 3), neighbours in the full space are decided
by small differences; restricted to the head dims (Sec. 6.2: where the semantics live) the ranking can
change — the neighbours view shows both side by side.
"""
from __future__ import annotations

import numpy as np

from dtviz.errors import DtvizInputError


def nearest(E, i: int, k: int = 10, dims=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` classes most cosine-similar to class ``i`` (itself excluded), best first, as
    (ids, cosines). ``dims``: only these columns of E (e.g. the head dims), default all. Ties are
    broken by class id; a zero vector has cosine 0 to everything."""
    E = np.asarray(E.detach().cpu().numpy() if hasattr(E, "detach") else E, dtype=np.float64)
    if E.ndim != 2 or E.shape[0] < 2:
        raise DtvizInputError(f"expected an N×d matrix with at least 2 classes, got shape {E.shape}.")
    n, d = E.shape
    i = int(i)
    if not 0 <= i < n:
        raise DtvizInputError(f"class id must lie in 0..{n - 1}; got {i}.")
    if dims is not None:
        dims = np.unique(np.asarray(dims, dtype=np.int64).reshape(-1))
        if dims.size == 0:
            raise DtvizInputError("the subspace is empty (no head dims at this threshold): lower τ.")
        if dims.min() < 0 or dims.max() >= d:
            raise DtvizInputError(f"dims must lie in 0..{d - 1}.")
        E = E[:, dims]
    if not np.isfinite(E).all():
        raise DtvizInputError("the embeddings hold NaN/Inf values; expected finite numbers.")
    norms = np.linalg.norm(E, axis=1)
    U = np.divide(E, norms[:, None], out=np.zeros_like(E), where=norms[:, None] > 0)
    cos = np.clip(U @ U[i], -1.0, 1.0)
    others = np.delete(np.arange(n), i)
    order = np.lexsort((others, -cos[others]))  # by cosine descending, then by id
    top = others[order[:max(0, min(int(k), n - 1))]]
    return top, cos[top]

"""Where the class lives in c: between-class variance by dimension, and class structure kept in a subspace.

The paper's Fig. 9b says the between-class variance sits in 15–20 head dims; its Fig. 13 shows t-SNE panels in
which head-only embeddings keep the class clusters and tail-only ones collapse. These are the same two claims
as numbers, so that a verdict can be read off and checked against a control (a random subset of dims):

    between_class_variance(E)        (d,) float64 variance of each dim over the rows (the null row never is one)
    variance_share(var, dims)        share of the total between-class variance held by ``dims``
    dims_for_share(var, share)       how many of the highest-variance dims hold ``share`` of it
    knn_overlap(E, dims, k)          class structure kept in ``dims``: the mean share of each row's k nearest
                                     rows (Euclidean, after removing c̄) that are still its k nearest when only
                                     ``dims`` are kept; 1 = every neighbourhood kept, k/(n−1) ≈ chance
    subspace_scores(E, head, k)      knn_overlap of head-only, tail-only and random subsets of the head's size

Everything is float64; t is constant over the rows of one E, so between-class variance is that of the label part.
"""
from __future__ import annotations

import numpy as np

from dtviz.analysis.stats import as_matrix
from dtviz.errors import DtvizInputError

KNN_K = 10  # neighbours per row: the t-SNE perplexity scale of the paper's Fig. 13 panels (a few tens of points)


HEAD_DIMS = 20  # Fig. 9b: "only ~15–20 head dimensions carry most of the variance"


def head_size(d: int, most: int = HEAD_DIMS) -> int:
    """How many top-|c̄ᵢ| dims make "the head" of the head-is-class readings: Fig. 9b's 20, a tenth of d when d < 200
    (at least 2)."""
    return min(most, max(2, d // 10))


def between_class_variance(E) -> np.ndarray:
    """(d,) population variance of each dim over the rows of E (float64)."""
    return as_matrix(E).var(axis=0)


def variance_share(var: np.ndarray, dims) -> float:
    """Share of sum(var) held by ``dims`` (NaN when all variance is 0)."""
    var = np.asarray(var, dtype=np.float64)
    total = var.sum()
    return float(var[np.asarray(dims, dtype=np.int64)].sum() / total) if total > 0 else float("nan")


def dims_for_share(var: np.ndarray, share: float) -> int:
    """The fewest highest-variance dims whose variance reaches ``share`` of the total (0 when all variance is 0)."""
    var = np.sort(np.asarray(var, dtype=np.float64))[::-1]
    total = var.sum()
    if total <= 0:
        return 0
    return int(np.searchsorted(np.cumsum(var) / total, share - 1e-12) + 1)


def _neighbours(X: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each row's k nearest other rows by Euclidean distance (ties by index)."""
    sq = (X * X).sum(1)
    D = sq[:, None] + sq[None, :] - 2.0 * (X @ X.T)
    np.fill_diagonal(D, np.inf)
    return np.argsort(D, axis=1, kind="stable")[:, :k]


def knn_overlap(E, dims, k: int = KNN_K, reference: np.ndarray | None = None) -> float:
    """Mean over rows of |N_k(full) ∩ N_k(dims only)| / k, neighbours by Euclidean distance of c − c̄ (float64).

    ``reference``: the full embedding's neighbours (``_neighbours`` of the centred E), when already computed."""
    X = as_matrix(E)
    n = X.shape[0]
    if n < 3:
        raise DtvizInputError(f"class structure needs at least 3 rows to compare neighbourhoods; got {n}.")
    k = min(int(k), n - 1)
    X = X - X.mean(0)
    dims = np.asarray(dims, dtype=np.int64)
    if dims.size == 0:
        return float("nan")
    full = _neighbours(X, k) if reference is None else reference
    sub = _neighbours(X[:, dims], k)
    hits = [len(np.intersect1d(full[i], sub[i], assume_unique=True)) for i in range(n)]
    return float(np.mean(hits) / k)


def chance_overlap(n: int, k: int = KNN_K) -> float:
    """The overlap of two unrelated k-neighbourhoods among n rows: k / (n − 1)."""
    k = min(int(k), n - 1)
    return k / (n - 1)


def subspace_scores(E, head, k: int = KNN_K, random_draws: int = 5, seed: int = 0) -> dict:
    """Class structure of the full embedding kept by the head alone, the tail alone (all other dims) and by
    random subsets of the head's size (the control, mean of ``random_draws``), with the chance level:

        {"head": h, "tail": t, "random": r, "random_draws": [...], "chance": k/(n−1), "k": k, "head_size": m}
    """
    X = as_matrix(E)
    n, d = X.shape
    head = np.unique(np.asarray(head, dtype=np.int64))
    tail = np.setdiff1d(np.arange(d), head)
    k = min(int(k), n - 1)
    full = _neighbours(X - X.mean(0), k)
    rng = np.random.default_rng(seed)
    draws = [knn_overlap(X, rng.choice(d, size=len(head), replace=False), k, full) for _ in range(random_draws)] \
        if 0 < len(head) < d else []
    return {"head": knn_overlap(X, head, k, full), "tail": knn_overlap(X, tail, k, full),
            "random": float(np.mean(draws)) if draws else float("nan"), "random_draws": draws,
            "chance": chance_overlap(n, k), "k": k, "head_size": int(len(head))}

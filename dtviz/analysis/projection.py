"""2-D projections of the class vectors for the head-vs-tail view (paper Fig. 13, appendix Figs. 20–25).

    head_tail_views(E, head_idx)   the four column subsets of E the panels show
    panel_titles(d, head, top)     their titles (a)–(d), as in the paper's Fig. 13, for figure and caption
    project(X, method, seed)       t-SNE / UMAP / PCA to (N, 2), deterministic for a seed
    ProjectionCache                bounded, thread-safe LRU of finished projections for the dashboard
    warm_up()                      imports and UMAP's JIT ahead of the first request (background thread)

t-SNE and UMAP run on the top 50 principal components when X has more columns (the usual practice:
it removes noise dimensions and makes both ~10× faster on d = 1152 without changing the picture).
t-SNE: openTSNE (Poličar et al. 2024) when installed, with reported iterations (``progress``); its
exact-neighbour affinities are built here so that openTSNE never imports pynndescent, whose numba
compilation costs 30 s on a busy 2-core machine. scikit-learn's TSNE otherwise (bench/tsne_speed.py).
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable

import numpy as np

from dtviz.errors import DtvizInputError
from dtviz.analysis.tsne import TSNE_IMPLEMENTATIONS, TSNE_ITERATIONS, cpu_threads as _cpu_threads, tsne, tsne_implementation

__all__ = ["METHODS", "TSNE_IMPLEMENTATIONS", "TSNE_ITERATIONS", "head_tail_views", "panel_titles", "project", "pca",
           "tsne", "tsne_implementation", "umap_compiled", "warm_up", "ProjectionCache"]

METHODS = ("tsne", "umap", "pca")
PCA_DIMS_BEFORE_EMBEDDING = 50

PANEL_FULL, PANEL_HEAD, PANEL_TAIL, PANEL_NO_TOP = "full c", "head only", "tail only", "tail without top head"
DEFAULT_TOP_HEAD = 5  # Fig. 7: removing 4–6 of 1152 head dims already ruins the samples


# ================================================================================== the four panels

def head_tail_views(E, head_idx, top_head=None) -> dict[str, np.ndarray]:
    """The panels of Fig. 13 as column subsets of E (N×d, rows = classes); dims are ranked by |c̄_i|,
    c̄ the mean over classes (the same ranking that defines the head at τ).

        "full c"                 E, all d dims                                           (a)
        "head only"              E[:, head], the dims given by ``head_idx`` (|c̄_i| >= τ) (b)
        "tail only"              E[:, tail], tail = every dim not in the head             (c)
        "tail without top head"  E with only the ``top_head`` largest-|c̄_i| dims removed (d)

    (d) is the head-removal perturbation of Fig. 7 / appendix A.4.2: it keeps the tail *and* the weaker
    head dims and drops just the strongest few, to show how much class structure lives in those few.
    ``top_head`` is a count k (the k head dims of largest |c̄_i|) or explicit dim indices; default
    min(5, head size). Keeping columns (rather than zeroing them) gives the same Euclidean geometry
    for t-SNE/UMAP/PCA. An empty head or tail is an error: the comparison needs both.
    """
    E = _matrix(E, "E")
    d = E.shape[1]
    head = np.unique(np.asarray(head_idx, dtype=np.int64).reshape(-1))
    if head.size and (head.min() < 0 or head.max() >= d):
        raise DtvizInputError(f"head dims must lie in 0..{d - 1}; got {head[(head < 0) | (head >= d)][:5].tolist()}.")
    if head.size == 0:
        raise DtvizInputError("the head is empty at this threshold (no |c̄_i| >= τ): lower τ to compare head and tail.")
    if head.size == d:
        raise DtvizInputError("the tail is empty at this threshold (every |c̄_i| >= τ): raise τ to compare head and tail.")
    tail = np.setdiff1d(np.arange(d), head)
    top = _top_head(np.abs(E.mean(0)), head, top_head)
    rest = np.setdiff1d(np.arange(d), top)
    return {PANEL_FULL: E, PANEL_HEAD: E[:, head], PANEL_TAIL: E[:, tail], PANEL_NO_TOP: E[:, rest]}


def panel_dims(d: int, E, head_idx, top_head=None) -> dict[str, np.ndarray]:
    """The dims each panel of ``head_tail_views`` keeps, as index arrays (for scoring a panel's class structure)."""
    head = np.unique(np.asarray(head_idx, dtype=np.int64).reshape(-1))
    top = _top_head(np.abs(_matrix(E, "E").mean(0)), head, top_head)
    return {PANEL_FULL: np.arange(d), PANEL_HEAD: head, PANEL_TAIL: np.setdiff1d(np.arange(d), head),
            PANEL_NO_TOP: np.setdiff1d(np.arange(d), top)}


def panel_titles(d: int, head_count: int, top_count: int) -> dict[str, str]:
    """Panel key -> its title, lettered as the paper's Fig. 13 ((a) full, (b) head only, (c), (d) tail
    sides). The dashboard uses the same strings in the figure and in its caption."""
    return {PANEL_FULL: f"(a) full c: all {d} dims",
            PANEL_HEAD: f"(b) head only: {head_count} dims, |c̄ᵢ| ≥ τ",
            PANEL_TAIL: f"(c) tail only: {d - head_count} dims, |c̄ᵢ| < τ",
            PANEL_NO_TOP: f"(d) all but the top {top_count} head dims: {d - top_count} dims"}


def _top_head(abs_mean: np.ndarray, head: np.ndarray, top_head) -> np.ndarray:
    """The strongest head dims: the k largest |c̄_i| within the head (ties by index), or given indices."""
    if top_head is None or np.ndim(top_head) == 0:
        k = min(DEFAULT_TOP_HEAD, head.size) if top_head is None else int(top_head)
        if not 1 <= k <= head.size:
            raise DtvizInputError(f"top_head must be between 1 and the head size {head.size}; got {k}.")
        order = np.lexsort((head, -abs_mean[head]))
        return np.sort(head[order[:k]])
    top = np.unique(np.asarray(top_head, dtype=np.int64).reshape(-1))
    if top.size == 0 or top.min() < 0 or top.max() >= abs_mean.size:
        raise DtvizInputError(f"top_head dims must be a non-empty list in 0..{abs_mean.size - 1}.")
    if top.size == abs_mean.size:
        raise DtvizInputError("top_head cannot remove every dim.")
    return top


# ======================================================================================== project

def project(X, method: str = "tsne", seed: int = 0, progress: Callable[[int, int], None] | None = None,
            implementation: str | None = None) -> np.ndarray:
    """(N, 2) coordinates of the rows of X by ``method`` ("tsne", "umap" or "pca"); the same X and seed
    give the same result. t-SNE: perplexity min(30, (N − 1)/3), PCA initialisation, 750 iterations,
    by openTSNE (``implementation`` None: openTSNE when installed, else "sklearn"); UMAP: umap-learn
    (optional dependency), 15 neighbours; both after PCA to 50 dims. ``progress(done, total)``: called
    every 25 t-SNE iterations (openTSNE only; scikit-learn has no callback)."""
    method = str(method).lower().replace("-", "")
    if method not in METHODS:
        raise DtvizInputError(f"projection method must be one of tsne, umap, pca; got {method!r}.")
    X = _matrix(X, "the matrix to project")
    n = X.shape[0]
    if method == "pca":
        if n < 2:
            raise DtvizInputError("PCA needs at least 2 rows.")
        return pca(X, 2)
    if n < 4:
        raise DtvizInputError(f"{method} needs at least 4 rows; got {n}.")
    Z = pca(X, PCA_DIMS_BEFORE_EMBEDDING) if X.shape[1] > PCA_DIMS_BEFORE_EMBEDDING else X - X.mean(0)
    if Z.shape[1] < 2:  # a one-dim panel (e.g. a 1-dim tail): a zero column changes no distance, and PCA init needs 2
        Z = np.pad(Z, ((0, 0), (0, 2 - Z.shape[1])))
    return tsne(Z, seed, implementation, progress) if method == "tsne" else _umap(Z, seed)


def pca(X, k: int) -> np.ndarray:
    """Scores on the top k principal components of X, padded with zeros when X has fewer than k
    informative dims. Computed from the eigenvectors of the smaller Gram matrix (N×N or d×d: for
    1000×1152 that is 1000×1000, 3× cheaper than an SVD). Signs are fixed (largest |score| positive)
    so the result does not depend on the LAPACK build."""
    from scipy.linalg import eigh

    X = _matrix(X, "X")
    Xc = X - X.mean(0)
    n, d = Xc.shape
    m = min(n, d)
    k_eff = min(k, m)
    with _cpu_threads():
        G = Xc @ Xc.T if n <= d else Xc.T @ Xc
        w, V = eigh(G, subset_by_index=[m - k_eff, m - 1])
    w, V = np.clip(w[::-1], 0.0, None), V[:, ::-1]  # descending
    scores = V * np.sqrt(w) if n <= d else Xc @ V
    flip = np.sign(scores[np.argmax(np.abs(scores), axis=0), np.arange(scores.shape[1])])
    scores = scores * np.where(flip == 0, 1, flip)
    if scores.shape[1] < k:
        scores = np.hstack([scores, np.zeros((n, k - scores.shape[1]))])
    return np.ascontiguousarray(scores, dtype=np.float64)


_UMAP_COMPILED = threading.Event()  # set after the first UMAP fit in this process (numba's JIT paid)


def umap_compiled() -> bool:
    """True once a UMAP fit has run in this process: later fits skip numba's one-off compilation."""
    return _UMAP_COMPILED.is_set()


def _umap(Z: np.ndarray, seed: int) -> np.ndarray:
    try:
        import umap  # umap-learn; imported here because it is optional and slow to import (numba)
    except ImportError:
        raise DtvizInputError("UMAP needs the umap-learn package (pip install umap-learn); "
                              "choose t-SNE or PCA instead.") from None
    import warnings

    n = Z.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state": determinism is the point
        model = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=int(seed),
                          init="spectral" if n > 10 else "random")
        with _cpu_threads():
            Y = np.asarray(model.fit_transform(Z), dtype=np.float64)
    _UMAP_COMPILED.set()
    return Y


def warm_up(methods=("tsne", "umap")) -> None:
    """Pay the one-off cost of each method on a tiny matrix: imports and, for UMAP, numba's JIT
    compilation (25–50 s on 2 busy cores, once per process; afterwards 1000×1152 takes a few seconds).
    Meant for a background thread at app start; a method that is unavailable is skipped."""
    X = np.random.default_rng(0).normal(size=(40, 8))
    for method in methods:
        try:
            project(X, method)
        except DtvizInputError:
            pass  # e.g. umap-learn not installed: project() reports it when the user asks


def _matrix(X, what: str) -> np.ndarray:
    if hasattr(X, "detach"):
        X = X.detach().cpu().numpy()
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0:
        raise DtvizInputError(f"{what}: expected a non-empty N×d matrix, got shape {X.shape}.")
    if not np.isfinite(X).all():
        raise DtvizInputError(f"{what} holds NaN/Inf values; expected finite numbers.")
    return X


# ================================================================================== cache

class ProjectionCache:
    """A bounded LRU of finished projections, safe to share between Streamlit sessions (threads).

    Key: ``ProjectionCache.key(model, t, part, tau, method, panel, seed=0)``. ``get_or_compute`` runs
    the computation outside the lock; concurrent requests for the same key wait for the first one
    instead of computing it twice.
    """

    def __init__(self, maxsize: int = 32):
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = int(maxsize)
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._pending: dict[Hashable, threading.Event] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model, t, part: str, tau, method: str, panel: str, seed: int = 0) -> tuple:
        """A hashable key; floats are rounded so that 0.1 + 0.2 and 0.3 name the same τ."""
        def norm(v):
            return None if v is None else round(float(v), 12)

        return (str(model), norm(t), str(part), norm(tau), str(method).lower(), str(panel), int(seed))

    def get(self, key):
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def get_or_compute(self, key, compute: Callable[[], np.ndarray]) -> np.ndarray:
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    self.hits += 1
                    return self._items[key]
                event = self._pending.get(key)
                if event is None:
                    self.misses += 1
                    event = self._pending[key] = threading.Event()
                    owner = True
                else:
                    owner = False
            if not owner:
                event.wait()
                continue  # the owner stored it (or failed: then this thread computes)
            try:
                value = compute()
                self.put(key, value)
                return value
            finally:
                with self._lock:
                    self._pending.pop(key, None)
                event.set()

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

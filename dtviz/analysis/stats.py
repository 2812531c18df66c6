"""The paper's statistics, as pure functions on an N×d matrix E of condition vectors (rows = classes).

Definitions (Hidden Semantic Bottleneck, ICLR 2026), used exactly:

    PR(v)      = (Σ_i |v_i|)² / Σ_i v_i²          (Eq. 1, on absolute values; 1 for one-hot, d for uniform)
    nPR(v)     = PR(v) / d
    s_tail(τ)  = #{i : |v_i| < τ} / d             (Eq. 2); head = the rest, |v_i| >= τ
    cosine     = pairwise cosine similarity of the rows; summaries over the off-diagonal pairs
    variance   = per-dimension variance across classes, population (ddof = 0)      (Fig. 9)

The paper does not say whether PR is taken of the mean vector c̄ or averaged over classes, so both
are reported and labelled: ``mean_vector`` (of |c̄|) and ``per_class_mean``. The null (CFG) row is never
part of E: sources return class rows only.

``ConditionStats`` is the fit-once / re-derive-cheaply form used by the CLI and the dashboard: the
τ-independent work happens in ``fit``, and ``at_tau`` is a few searchsorted calls.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dtviz.errors import DtvizInputError


def as_matrix(E, keep_float32: bool = False) -> np.ndarray:
    """float64 2-D view of a numpy array or torch tensor (a 1-D vector becomes one row); with ``keep_float32`` a
    float32 input stays float32, uncopied (fit reads it a block of rows at a time in float64: row_blocks)."""
    if hasattr(E, "detach"):
        E = E.detach().cpu().numpy()
    E = np.asarray(E)
    if not (keep_float32 and E.dtype == np.float32):
        E = E.astype(np.float64, copy=False)
    if E.ndim == 1:
        E = E[None]
    if E.ndim != 2 or E.shape[0] == 0 or E.shape[1] == 0:
        raise DtvizInputError(f"expected a non-empty N×d matrix, got shape {E.shape}.")
    return E


# Rows per block where a whole-matrix float64 copy would be N·d·8 bytes: fit's temporaries stay at this many rows;
# the N×N cosine matrix's summary reads fewer at a time (its rows are N long, up to MAX_COSINE_CLASSES).
FIT_BLOCK_ROWS = 2048
COSINE_BLOCK_ROWS = 256


def row_blocks(E: np.ndarray):
    """float64 copies of FIT_BLOCK_ROWS rows of E at a time, in order."""
    for start in range(0, E.shape[0], FIT_BLOCK_ROWS):
        yield np.asarray(E[start:start + FIT_BLOCK_ROWS], dtype=np.float64)


def exact_threshold(dtype, tau: float):
    """A τ of ``dtype`` with x < it ⟺ x < τ (τ read as a float64 number) for every x of that dtype: NumPy compares a
    float32 array with τ rounded to float32, which counts a value just below τ as equal to it."""
    if np.dtype(dtype) != np.float32:
        return np.float64(tau)
    t32 = np.float32(tau)
    return np.nextafter(t32, np.float32(np.inf)) if float(t32) < tau else t32  # the smallest float32 ≥ τ


def count_below(sorted_abs: np.ndarray, tau: float) -> int:
    """#{x in sorted_abs : x < τ}, exactly, whatever the array's float precision."""
    return int(np.searchsorted(sorted_abs, exact_threshold(sorted_abs.dtype, tau), side="left"))


# ------------------------------------------------------------------------------------------- cosine

def cosine_matrix(E) -> np.ndarray:
    """(N, N) cosine similarities of the rows; a zero row has similarity 0 to everything."""
    E = as_matrix(E)
    norms = np.linalg.norm(E, axis=1, keepdims=True)
    U = np.divide(E, norms, out=np.zeros_like(E), where=norms > 0)
    C = U @ U.T
    return np.clip(C, -1.0, 1.0, out=C)  # in place: N×N is the largest array of the statistics


def offdiag_summary(C: np.ndarray) -> dict:
    """Mean, min and max over the i ≠ j entries (NaN for a single class), a few rows at a time: no copy of the
    N² − N entries (C itself is the largest array of the statistics)."""
    n = C.shape[0]
    if n < 2:
        return {"mean": float("nan"), "min": float("nan"), "max": float("nan")}
    lo, hi, total = np.inf, -np.inf, 0.0
    for start in range(0, n, COSINE_BLOCK_ROWS):
        block = np.array(C[start:start + COSINE_BLOCK_ROWS], dtype=np.float64)
        rows = np.arange(block.shape[0])
        total += block.sum() - block[rows, start + rows].sum()
        block[rows, start + rows] = np.nan  # the diagonal entries of these rows; fmin / fmax skip NaN
        lo, hi = min(lo, np.fmin.reduce(block, axis=None)), max(hi, np.fmax.reduce(block, axis=None))
    return {"mean": float(total / (n * (n - 1))), "min": float(lo), "max": float(hi)}


def offdiag_values(C: np.ndarray) -> np.ndarray:
    """The upper-triangle (i < j) entries, for the histogram of pair similarities."""
    return C[np.triu_indices(C.shape[0], k=1)]


def offdiag_mean_streaming(E) -> float:
    """The off-diagonal mean cosine without the N×N matrix: Σ_{i≠j} u_i·u_j = |Σ u_i|² − Σ |u_i|²  (O(N·d)),
    a block of FIT_BLOCK_ROWS rows at a time in float64."""
    E = as_matrix(E, keep_float32=True)
    n = E.shape[0]
    if n < 2:
        return float("nan")
    total, squares = np.zeros(E.shape[1]), 0.0
    for block in row_blocks(E):
        norms = np.linalg.norm(block, axis=1, keepdims=True)
        U = np.divide(block, norms, out=np.zeros_like(block), where=norms > 0)
        total += U.sum(0)
        squares += float((U * U).sum())
    return float((total @ total - squares) / (n * (n - 1)))


# --------------------------------------------------------------------------------- participation

def participation_ratio(v) -> np.ndarray | float:
    """PR = (Σ|v_i|)² / Σ v_i² per row (Eq. 1). A scalar for a 1-D v. Zero vectors give 0."""
    V = np.abs(as_matrix(v))
    num = V.sum(1) ** 2
    den = (V ** 2).sum(1)
    pr = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return float(pr[0]) if np.ndim(v) == 1 else pr


def normalized_participation_ratio(v) -> np.ndarray | float:
    """nPR = PR / d."""
    d = as_matrix(v).shape[1]
    return participation_ratio(v) / d


def mean_vector(E) -> np.ndarray:
    """c̄ = mean over classes of c, (d,)."""
    return as_matrix(E).mean(0)


# -------------------------------------------------------------------------------------- sparsity

def s_tail(v, tau: float) -> np.ndarray | float:
    """#{i : |v_i| < τ} / d per row (Eq. 2); a scalar for a 1-D v."""
    V = np.abs(as_matrix(v))
    share = (V < tau).mean(1)
    return float(share[0]) if np.ndim(v) == 1 else share


def s_head(v, tau: float) -> np.ndarray | float:
    """1 − s_tail: the share with |v_i| >= τ."""
    return 1 - s_tail(v, tau)


def head_dims(v, tau: float) -> np.ndarray:
    """Indices i with |v_i| >= τ, ascending (v is 1-D: c̄ for the global mask, or one class's c)."""
    return np.flatnonzero(np.abs(np.asarray(v, dtype=np.float64)) >= tau)


def tail_dims(v, tau: float) -> np.ndarray:
    """Indices i with |v_i| < τ, ascending."""
    return np.flatnonzero(np.abs(np.asarray(v, dtype=np.float64)) < tau)


def topk_dims(v, k: int, largest: bool = True) -> np.ndarray:
    """The k dims of largest (or smallest) |v_i|, ascending by index; ties broken by index."""
    a = np.abs(np.asarray(v, dtype=np.float64))
    k = int(np.clip(k, 0, a.size))
    order = np.lexsort((np.arange(a.size), -a if largest else a))
    return np.sort(order[:k])


def silu(x) -> np.ndarray:
    """SiLU(x) = x·σ(x), float64: what every DiT-family adaLN reads (m = W·SiLU(c) + b)."""
    x = np.asarray(x, dtype=np.float64)
    return x / (1.0 + np.exp(-x))


def head_through_silu(v, k: int) -> dict:
    """The top-k |v_i| dims as adaLN reads them: v's head values (largest |v_i| first), SiLU of them, how many are
    negative (SiLU(−x) → 0 for large x: such a dim is large in c and nearly off in what the model sees), and the
    head's share of Σ|v_i| against its share of Σ|SiLU(v_i)|. The paper states magnitudes of c only (Sec. 4)."""
    v = np.asarray(v, dtype=np.float64)
    order = np.lexsort((np.arange(v.size), -np.abs(v)))[: int(np.clip(k, 0, v.size))]
    s = silu(v)
    total_c, total_s = float(np.abs(v).sum()), float(np.abs(s).sum())
    return {"k": len(order), "dims": order.tolist(), "values": v[order].tolist(), "silu": s[order].tolist(),
            "negative": int((v[order] < 0).sum()),
            "share_c": float(np.abs(v[order]).sum() / total_c) if total_c > 0 else float("nan"),
            "share_silu": float(np.abs(s[order]).sum() / total_s) if total_s > 0 else float("nan")}


def dims_below_curve(v, taus) -> tuple[np.ndarray, np.ndarray]:
    """For each τ: #{i : |v_i| < τ} (raw) and that count / d (normalised) — Fig. 11."""
    a = np.sort(np.abs(np.asarray(v, dtype=np.float64)).reshape(-1))
    counts = np.searchsorted(a, np.asarray(taus, dtype=np.float64), side="left")
    return counts, counts / a.size


def default_tau_grid(v, n: int = 200) -> np.ndarray:
    """Log-spaced τ from below the smallest non-zero |v_i| to above the largest."""
    a = np.abs(np.asarray(v, dtype=np.float64))
    pos = a[a > 0]
    lo, hi = (pos.min(), pos.max()) if pos.size else (1e-6, 1.0)
    return np.logspace(np.log10(lo) - 0.5, np.log10(hi) + 0.5, n)


# -------------------------------------------------------------------------------------- variance

def per_dim_variance(E) -> np.ndarray:
    """Variance of each dimension across classes, population (ddof = 0), (d,)."""
    return as_matrix(E).var(axis=0, ddof=0)


def variance_spectrum(var: np.ndarray) -> np.ndarray:
    """Per-dimension variances sorted from largest to smallest (Fig. 9b)."""
    return np.sort(np.asarray(var, dtype=np.float64))[::-1]


def top_k_variance_share(var: np.ndarray, k: int = 20) -> float:
    """Share of the total variance held by the k highest-variance dims (0 when there is no variance)."""
    spec = variance_spectrum(var)
    total = spec.sum()
    return float(spec[:k].sum() / total) if total > 0 else 0.0


def cumulative_variance_share(var: np.ndarray) -> np.ndarray:
    spec = variance_spectrum(var)
    total = spec.sum()
    return np.cumsum(spec) / total if total > 0 else np.zeros_like(spec)


# -------------------------------------------------------------------------------------- magnitude

def mean_abs_per_dim(E) -> np.ndarray:
    """Mean over classes of |c_i|, (d,) — the per-dimension profile (Fig. 6)."""
    return np.abs(as_matrix(E)).mean(0)


def magnitude_histogram(v, bins: int = 60, log: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of |v_i| over all entries (Fig. 5): counts and bin edges (log-spaced when ``log``)."""
    a = np.abs(np.asarray(v, dtype=np.float64)).reshape(-1)
    if log:
        pos = a[a > 0]
        lo, hi = (pos.min(), pos.max()) if pos.size else (1e-6, 1.0)
        edges = np.logspace(np.log10(lo), np.log10(hi) + 1e-9, bins + 1)
        edges[0] = lo  # 10**log10(lo) can round above lo and drop the smallest entry
        counts, _ = np.histogram(pos, bins=edges)
        return counts, edges
    return np.histogram(a, bins=bins)


# ------------------------------------------------------------------------------------- estimator

# Above this many classes the N×N cosine matrix (8·N² bytes) is not built: 10 000 classes are 0.8 GB.
MAX_COSINE_CLASSES = 10_000


def _short_decimal(lo: float, hi: float) -> float:
    """The decimal with the fewest significant digits in (lo, hi]; hi itself when there is none (lo ≥ hi)."""
    if not hi > lo or hi <= 0:
        return float(hi)
    for sig in range(1, 17):
        unit = 10.0 ** (np.floor(np.log10(hi)) - sig + 1)
        for cand in (float(f"{hi:.{sig}g}"), float(f"{np.floor(hi / unit) * unit:.{sig}g}")):
            if lo < cand <= hi:
                return cand
    return float(hi)


@dataclass
class ConditionStats:
    """Fit on E (N×d) once; read the τ-dependent numbers for any τ cheaply.

    Learned attributes: ``n_``, ``dim_``, ``mean_vector_``, ``cosine_``, ``cosine_summary_``,
    ``pr_mean_vector_``, ``pr_per_class_``, ``variance_``, plus the sorted |c̄| and |c| used by ``at_tau``.
    With more than ``MAX_COSINE_CLASSES`` rows ``cosine_`` is None and the cosine summary holds the exact
    mean (computed without the matrix) with NaN min and max; ``cosine()`` then explains why.
    """

    compute_cosine: bool = True

    def fit(self, E) -> "ConditionStats":
        """One pass over E in blocks of FIT_BLOCK_ROWS rows (float64 inside each block) for the sums, PR and the
        sorted |c| (kept in E's own precision), a second for the variance around the mean: the peak is about the
        sorted copy plus a few blocks, not several float64 copies of E (the dashboard's budget bounds E, not fit)."""
        E = as_matrix(E, keep_float32=True)
        self.n_, self.dim_ = n, d = E.shape
        total, start = np.zeros(d), 0
        self.pr_per_class_ = np.empty(n)
        self._abs_rows_sorted = np.empty((n, d), dtype=E.dtype)
        for block in row_blocks(E):
            stop = start + block.shape[0]
            total += block.sum(0)
            self.pr_per_class_[start:stop] = participation_ratio(block)
            self._abs_rows_sorted[start:stop] = np.sort(np.abs(E[start:stop]), axis=1)
            start = stop
        self.mean_vector_ = total / n
        squares = np.zeros(d)
        for block in row_blocks(E):
            squares += ((block - self.mean_vector_) ** 2).sum(0)
        self.variance_ = squares / n  # population (ddof = 0), as per_dim_variance
        if self.compute_cosine and n > MAX_COSINE_CLASSES:
            self.cosine_ = None
            self.cosine_summary_ = {"mean": offdiag_mean_streaming(E), "min": float("nan"), "max": float("nan")}
        elif self.compute_cosine:
            self.cosine_ = cosine_matrix(E)
            self.cosine_summary_ = offdiag_summary(self.cosine_)
        self.pr_mean_vector_ = participation_ratio(self.mean_vector_)
        self._abs_mean_sorted = np.sort(np.abs(self.mean_vector_))
        return self

    def cosine(self) -> np.ndarray:
        """The N×N cosine matrix, or a one-sentence DtvizInputError when N is too large to hold it."""
        if getattr(self, "cosine_", None) is None:
            raise DtvizInputError(
                f"the {self.n_:,}×{self.n_:,} cosine matrix would need {8 * self.n_ ** 2 / 2 ** 30:.1f} GB, so it is only built "
                f"for at most {MAX_COSINE_CLASSES:,} classes; use a matrix of fewer rows for this view.")
        return self.cosine_

    def s_tail_at(self, tau: float) -> dict:
        """s_tail of c̄ and the mean over classes of each class's s_tail."""
        mv = count_below(self._abs_mean_sorted, tau) / self.dim_
        rows, t = self._abs_rows_sorted, exact_threshold(self._abs_rows_sorted.dtype, tau)
        per_row = np.concatenate([(rows[i:i + FIT_BLOCK_ROWS] < t).sum(1) for i in range(0, self.n_, FIT_BLOCK_ROWS)]) / self.dim_
        return {"mean_vector": float(mv), "per_class_mean": float(per_row.mean())}

    def at_tau(self, tau: float) -> dict:
        """Everything that depends on τ: s_tail (both readings) and the head set of c̄."""
        share = self.s_tail_at(tau)
        head = head_dims(self.mean_vector_, tau)
        return {"tau": float(tau), "s_tail": share, "s_head": {k: 1 - v for k, v in share.items()},
                "head_dims": head.tolist(), "head_count": int(head.size), "tail_count": int(self.dim_ - head.size)}

    def tau_for_tail(self, share: float = 0.4, reading: str = "mean_vector") -> float:
        """The τ at which s_tail ≈ ``share``: the magnitude of the ⌊share·d⌉-th smallest |c̄ᵢ| (``mean_vector``),
        or of the pooled |c| of all classes (``per_class_mean``: the mean over classes of s_tail is then ≈ share).
        Exactly that many dims lie below it (fewer only where magnitudes tie). The paper's τ = 0.01 gives
        s_tail ≈ 0.38–0.40 on its XL models (Sec. 5); this is the same share for any model's scale."""
        marks = self.tau_marks(reading)
        return float(marks[int(round(np.clip(share, 0, 1) * (len(marks) - 1)))])

    def tau_marks(self, reading: str = "mean_vector") -> np.ndarray:
        """(d + 1,) ascending τ values, one more dim below τ at each: mark k is the shortest decimal in
        (a_{k-1}, a_k], a = the sorted magnitudes (of c̄, or the k/d quantiles of the pooled per-class |c|), the
        last just above the largest — the positions a τ control snaps to (ties give repeated marks)."""
        if reading == "mean_vector":
            a = self._abs_mean_sorted
        elif reading == "per_class_mean":
            pooled = np.sort(self._abs_rows_sorted.reshape(-1))
            a = pooled[np.minimum((np.arange(self.dim_) / self.dim_ * pooled.size).round().astype(int), pooled.size - 1)]
        else:
            raise DtvizInputError(f"expected reading 'mean_vector' or 'per_class_mean', but got {reading!r}.")
        a = np.asarray(a, dtype=np.float64)
        uppers = np.append(a, a[-1] * 1.1 if a[-1] > 0 else 1e-6)
        lowers = np.concatenate([[a[0] / 2], a])
        return np.array([_short_decimal(lo, hi) for lo, hi in zip(lowers, uppers)])

    def table_row(self) -> dict:
        """The paper's Table 1 row: d, PR, nPR (both readings) and the off-diagonal cosine."""
        return {
            "dim": int(self.dim_),
            "num_classes": int(self.n_),
            "pr": {"mean_vector": float(self.pr_mean_vector_), "per_class_mean": float(self.pr_per_class_.mean())},
            "npr": {"mean_vector": float(self.pr_mean_vector_ / self.dim_),
                    "per_class_mean": float(self.pr_per_class_.mean() / self.dim_)},
            "cosine": dict(self.cosine_summary_) if self.compute_cosine else None,
            "variance": {"mean": float(self.variance_.mean()), "top20_share": top_k_variance_share(self.variance_, 20)},
        }

    def summary(self, tau: float) -> dict:
        """``table_row`` plus ``at_tau``: the body of ``dtviz stats --json``."""
        row = self.table_row()
        row.update(self.at_tau(tau))
        return row

"""Pruning the conditioning vector c during sampling (paper section 5, Table 2).

Definitions, as in dtviz.analysis.stats (Eq. 2):

    s_tail(τ) = #{i : |c_i| < τ} / d        tail = the dims with |c_i| < τ
    head      = the rest, |c_i| >= τ

A ``PruneSpec`` says which dims of c are zeroed, from which vector, and at which sampler steps:

    mode      tail  zero the tail: |c_i| < τ, or the k smallest |c_i|
              head  zero the head: |c_i| >= τ, or the k largest |c_i|
    dims      instead of τ or k: exactly these dims (e.g. one dim to ablate), whatever their values;
              the mode is then only a label
    mask      global      one mask from |c̄|, c̄ = mean over classes of c at the family's t0 (exactly the
                          dims ``dtviz stats --tau`` puts in the tail), computed once
              per-sample  each row's own |c| at the step being run
    schedule  every | first (step 0 only) | last:K (the last K sampler steps) — the paper's t_i, t_0, t_{n-k,n}
    prune_null  True (the default): the null (CFG) rows are pruned too, as pruning c where it is formed inside
                the model's forward does — what a re-implementation of the paper, which does not say, would do;
                False: only the conditional rows are pruned and the null rows pass untouched
    part      y+t   zero c_i itself (the default)
              y     zero only the label (or text) part of c in those dims, c_i -> t_i: a control that removes the
                    class from the dims while the timestep embedding stays (global mask or explicit dims only)

The hooks that apply a spec inside a model's forward live in dtviz.pruning.hooks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dtviz.errors import DtvizInputError
from dtviz.analysis.stats import as_matrix, mean_vector

MODES = ("tail", "head")
MASKS = ("global", "per-sample")
PARTS = ("y+t", "y")
NULL_ROWS = {"pruned": True, "kept": False}  # --null-rows and the pages' wording -> PruneSpec.prune_null


# ------------------------------------------------------------------------------------- schedules

def parse_schedule(text: str) -> tuple[str, int]:
    """"every" -> ("every", 0), "first" -> ("first", 0), "last:10" -> ("last", 10)."""
    raw = str(text).strip().lower()
    if raw in ("every", "first"):
        return raw, 0
    if raw.startswith("last:"):
        try:
            k = int(raw[len("last:"):])
        except ValueError:
            k = 0
        if k >= 1:
            return "last", k
    raise DtvizInputError(f"a schedule must be every, first or last:K with K >= 1 (e.g. last:10); got {text!r}.")


def format_schedule(kind: str, k: int = 0) -> str:
    """The inverse of ``parse_schedule``."""
    return f"last:{int(k)}" if kind == "last" else kind


def schedule_active(schedule: str, step: int, num_steps: int) -> bool:
    """Whether sampler step ``step`` (0-based, of ``num_steps``) is pruned."""
    kind, k = parse_schedule(schedule)
    if kind == "every":
        return True
    if kind == "first":
        return step == 0
    return step >= num_steps - k


def parse_null_rows(text: str) -> list[bool]:
    """"pruned" -> [True], "kept" -> [False], "pruned,kept" -> [True, False] (PruneSpec.prune_null values)."""
    words = [w.strip().lower() for w in str(text).split(",") if w.strip()]
    bad = [w for w in words if w not in NULL_ROWS]
    if not words or bad:
        raise DtvizInputError(f"null rows must be pruned, kept or pruned,kept; got {text!r}.")
    return list(dict.fromkeys(NULL_ROWS[w] for w in words))


def paper_schedule(schedule: str) -> str:
    """The paper's Table 2 notation: t_i (every), t_0 (first), t_{n-k,n} (last k)."""
    kind, k = parse_schedule(schedule)
    return {"every": "t_i", "first": "t_0"}.get(kind, f"t_{{n-{k},n}}")


# ------------------------------------------------------------------------------------------ spec

@dataclass(frozen=True)
class PruneSpec:
    """Which dims of c to zero, from which vector, at which steps. Give one of ``tau``, ``k`` or ``dims``
    (explicit dim indices, removed whatever their values: the same mask for every row and step)."""

    mode: str = "tail"
    tau: float | None = None
    k: int | None = None
    mask: str = "global"
    schedule: str = "every"
    prune_null: bool = True
    dims: tuple[int, ...] | None = None
    part: str = "y+t"

    def __post_init__(self):
        if self.mode not in MODES:
            raise DtvizInputError(f"mode must be tail or head; got {self.mode!r}.")
        if self.mask not in MASKS:
            raise DtvizInputError(f"mask must be global or per-sample; got {self.mask!r}.")
        given = sum(x is not None for x in (self.tau, self.k, self.dims))
        if given != 1:
            raise DtvizInputError(f"give exactly one of tau, k or dims to select dims; got {'none' if not given else given}.")
        if self.dims is not None:
            object.__setattr__(self, "dims", _dim_indices(self.dims))
        if self.tau is not None:
            tau = float(self.tau)
            if not np.isfinite(tau) or tau < 0:
                raise DtvizInputError(f"tau must be a finite number >= 0; got {self.tau!r}.")
            object.__setattr__(self, "tau", tau)
        if self.k is not None:
            if isinstance(self.k, bool) or int(self.k) != self.k or self.k < 0:
                raise DtvizInputError(f"k must be a whole number >= 0; got {self.k!r}.")
            object.__setattr__(self, "k", int(self.k))
        object.__setattr__(self, "schedule", format_schedule(*parse_schedule(self.schedule)))
        object.__setattr__(self, "prune_null", bool(self.prune_null))
        if self.part not in PARTS:
            raise DtvizInputError(f"part must be y+t or y; got {self.part!r}.")
        if self.part == "y" and self.mask == "per-sample" and self.dims is None:
            raise DtvizInputError("removing only the label part y needs one set of dims (a global mask or explicit dims); "
                                  "a per-sample mask reads each row's c, which is not formed yet where y is removed.")

    @property
    def selection(self) -> str:
        """"tau=0.01", "k=4" or "dims=17" / "dims=3,17"."""
        if self.dims is not None:
            return "dims=" + ",".join(map(str, self.dims))
        return f"tau={self.tau:g}" if self.tau is not None else f"k={self.k}"

    def label(self) -> str:
        """A table row's name, e.g. "tail tau=0.01 every", "head k=4 last:10 per-sample null-kept", "dims=17 every",
        "head k=8 every y-only". The default (null rows pruned, all of c) adds nothing."""
        parts = ([] if self.dims is not None else [self.mode]) + [self.selection, self.schedule]
        if self.mask != "global":
            parts.append(self.mask)
        if self.part == "y":
            parts.append("y-only")
        if not self.prune_null:
            parts.append("null-kept")
        return " ".join(parts)

    def slug(self) -> str:
        """A folder name, e.g. "tail_tau0.01_every", "head_k4_last10", "tail_tau0.02_first_per-sample_nullkept"."""
        if self.dims is not None:
            parts = ["dims" + "-".join(map(str, self.dims)), self.schedule.replace(":", "")]
        else:
            sel = f"tau{self.tau:g}" if self.tau is not None else f"k{self.k}"
            parts = [self.mode, sel, self.schedule.replace(":", "")]
        if self.mask != "global":
            parts.append(self.mask)
        if self.part == "y":
            parts.append("yonly")
        if not self.prune_null:
            parts.append("nullkept")
        return "_".join(parts)

    def is_active(self, step: int, num_steps: int) -> bool:
        return schedule_active(self.schedule, step, num_steps)


def _dim_indices(dims) -> tuple[int, ...]:
    """An int or a sequence of ints >= 0 -> sorted unique tuple; anything else -> DtvizInputError."""
    raw = [dims] if np.ndim(dims) == 0 else list(np.asarray(dims, dtype=object).reshape(-1))
    try:
        ok = bool(raw) and all(not isinstance(i, (bool, np.bool_, str)) and float(i) == int(i) >= 0 for i in raw)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise DtvizInputError(f"dims must be one or more whole numbers >= 0; got {dims!r}.")
    return tuple(sorted({int(i) for i in raw}))


# ----------------------------------------------------------------------------------------- masks

def keep_mask(v, spec: PruneSpec) -> np.ndarray:
    """True = keep, for a 1-D c (-> (d,)) or row-wise for an N×d matrix (-> (N, d)).

    tail: removes |v_i| < τ (stats.tail_dims) or the k smallest |v_i|; head: removes |v_i| >= τ
    (stats.head_dims) or the k largest. Ties in k are broken by index, as in stats.topk_dims.
    dims: removes exactly ``spec.dims`` in every row.
    """
    one_d = np.ndim(v) == 1
    a = np.abs(as_matrix(v))  # (N, d) float64
    if spec.dims is not None:
        keep = np.ones_like(a, dtype=bool)
        keep[:, _checked_dims(spec, a.shape[1])] = False
    elif spec.tau is not None:
        head = a >= spec.tau
        keep = head if spec.mode == "tail" else ~head
    else:
        k = min(spec.k, a.shape[1])
        largest = spec.mode == "head"
        # Stable sort by |v| (descending for head): equal values keep index order, as topk_dims.
        order = np.argsort(-a if largest else a, axis=1, kind="stable")[:, :k]
        keep = np.ones_like(a, dtype=bool)
        np.put_along_axis(keep, order, False, axis=1)
    return keep[0] if one_d else keep


def keep_mask_torch(c, spec: PruneSpec):
    """``keep_mask`` row-wise on a (B, d) tensor, on its device -> (B, d) bool. Compared in float64."""
    import torch  # here, not at the top: the command line reads this module's constants before torch loads

    a = c.detach().abs().double()
    if spec.dims is not None:
        keep = torch.ones_like(a, dtype=torch.bool)
        keep[:, list(_checked_dims(spec, a.shape[1]))] = False
        return keep
    if spec.tau is not None:
        head = a >= spec.tau
        return head if spec.mode == "tail" else ~head
    k = min(spec.k, a.shape[1])
    order = torch.sort(a, dim=1, descending=spec.mode == "head", stable=True).indices[:, :k]  # (B, k)
    keep = torch.ones_like(a, dtype=torch.bool)
    return keep.scatter(1, order, False)


def _checked_dims(spec: PruneSpec, d: int) -> tuple[int, ...]:
    bad = [i for i in spec.dims if i >= d]
    if bad:
        raise DtvizInputError(f"dims must lie in 0..{d - 1} (c has {d} dims); got {bad[:5]}.")
    return spec.dims


def global_mask(source, spec: PruneSpec) -> np.ndarray:
    """(d,) bool, True = keep: ``keep_mask`` of c̄, the mean over all classes of c at the family's t0.

    This is the mask of any spec's selection, even a per-sample one (which uses it only for reporting).
    """
    return keep_mask(mean_vector(source.embeddings()), spec)


def removed_dims(mask) -> tuple[float, float]:
    """(count, share of d) of the dims a keep-mask zeroes. A (d,) mask gives an int count; an (N, d)
    stack of per-sample masks gives the mean count over its rows."""
    m = np.asarray(mask, dtype=bool)
    removed = (~m).sum(-1)  # () or (N,)
    count = int(removed) if m.ndim == 1 else float(removed.mean())
    return count, count / m.shape[-1]


def spec_removed_dims(source, spec: PruneSpec, classes=None, timesteps=None) -> tuple[float, float]:
    """(count, share of d) of the dims ``spec`` removes from each conditional row. Global masks and explicit dims:
    the exact count of the mask. Per-sample masks follow c(t) at every step, so with the sampler's ``timesteps``
    (one per network evaluation, e.g. ``Generator.sampler().timesteps()``) the count is the mean over the pruned
    evaluations (``spec.schedule``) of the mean over ``classes`` (default all) of each row's count at that t;
    without them, the count at t0 (``spec_removed_dims_t0``)."""
    if spec.mask == "global" or spec.dims is not None:
        return removed_dims(global_mask(source, spec))
    if not timesteps:
        return spec_removed_dims_t0(source, spec, classes)
    n = len(timesteps)
    active = [float(t) for i, t in enumerate(timesteps) if spec.is_active(i, n)]
    counts = [removed_dims(keep_mask(as_matrix(source.embeddings(classes, t=t)), spec))[0] for t in active]
    count = float(np.mean(counts)) if counts else 0.0
    return count, count / source.dim


def spec_removed_dims_t0(source, spec: PruneSpec, classes=None) -> tuple[float, float]:
    """What a table row reported before the steps were counted: global — the exact count of the global mask;
    per-sample — the mean over ``classes`` (default all) of each class's own count at t0."""
    if spec.mask == "global" or spec.dims is not None:
        return removed_dims(global_mask(source, spec))
    return removed_dims(keep_mask(as_matrix(source.embeddings(classes)), spec))

"""Pruning the conditioning vector c during sampling (paper section 5, Table 2).

Definitions, as in dtviz.stats (Eq. 2):

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
    prune_null  False: only conditional rows are pruned; the null (CFG) rows pass untouched

Where it acts: every ``adaLN_modulation`` module (blocks.{i} and final_layer) receives c and nothing
else does, so ``pruned`` installs a forward pre-hook there replacing c by c·mask, row by row. Each
row's label is read by a pre-hook on ``y_embedder`` (REPA doubles the batch only inside its guidance
interval, so batch halves cannot be assumed). Since SiLU(0) = 0, zeroing c_i is exactly zeroing column
i of every adaLN Linear weight — the oracle the tests compare against.

diffusers DiT (``DiTTransformer2DModel``): c is the output of each block's ``norm1.emb``
(``CombinedTimestepLabelEmbeddings``; block 0's runs a second time for the final layer's ``proj_out_1``), so
a forward hook there replaces its output by c·mask, reading the row labels from its ``class_labels``
argument; the oracle zeroes columns of every ``norm1.linear`` and of ``proj_out_1``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch

from dtviz.errors import DtvizInputError
from dtviz.stats import as_matrix, mean_vector

MODES = ("tail", "head")
MASKS = ("global", "per-sample")
HOOKED_SUFFIX = "adaLN_modulation"
DIFFUSERS_EMBEDDER = "CombinedTimestepLabelEmbeddings"  # diffusers DiT: transformer_blocks.{i}.norm1.emb


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
    prune_null: bool = False
    dims: tuple[int, ...] | None = None

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

    @property
    def selection(self) -> str:
        """"tau=0.01", "k=4" or "dims=17" / "dims=3,17"."""
        if self.dims is not None:
            return "dims=" + ",".join(map(str, self.dims))
        return f"tau={self.tau:g}" if self.tau is not None else f"k={self.k}"

    def label(self) -> str:
        """A table row's name, e.g. "tail tau=0.01 every", "head k=4 last:10 per-sample +null", "dims=17 every"."""
        parts = ([] if self.dims is not None else [self.mode]) + [self.selection, self.schedule]
        if self.mask != "global":
            parts.append(self.mask)
        if self.prune_null:
            parts.append("+null")
        return " ".join(parts)

    def slug(self) -> str:
        """A folder name, e.g. "tail_tau0.01_every", "head_k4_last10", "tail_tau0.02_first_per-sample_null"."""
        if self.dims is not None:
            parts = ["dims" + "-".join(map(str, self.dims)), self.schedule.replace(":", "")]
        else:
            sel = f"tau{self.tau:g}" if self.tau is not None else f"k{self.k}"
            parts = [self.mode, sel, self.schedule.replace(":", "")]
        if self.mask != "global":
            parts.append(self.mask)
        if self.prune_null:
            parts.append("null")
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


def keep_mask_torch(c: torch.Tensor, spec: PruneSpec) -> torch.Tensor:
    """``keep_mask`` row-wise on a (B, d) tensor, on its device -> (B, d) bool. Compared in float64."""
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


def spec_removed_dims(source, spec: PruneSpec, classes=None) -> tuple[float, float]:
    """What a table row reports: global — the exact count of the global mask; per-sample — the mean
    over ``classes`` (default all) of each class's own count at t0 (the mask then varies by step)."""
    if spec.mask == "global":
        return removed_dims(global_mask(source, spec))
    return removed_dims(keep_mask(as_matrix(source.embeddings(classes)), spec))


# ----------------------------------------------------------------------------------------- hooks

@dataclass
class Pruner:
    """State of one ``pruned`` context: pass ``on_step`` to the sampler.

    ``pruned_steps`` records the sampler steps at which some row was pruned (for checks and displays).
    """

    spec: PruneSpec
    null_class: int
    mask: torch.Tensor | None  # (d,) bool keep-mask for spec.mask == "global", else None
    step: int | None = None
    num_steps: int | None = None
    pruned_steps: list = field(default_factory=list)
    enabled: bool = True  # False: the hooks pass c through (pruned-c guidance prunes only its extra forward)
    _labels: torch.Tensor | None = None  # (B,) labels of the forward being run
    _row_keep: torch.Tensor | None = None  # (B, d) bool, computed at the forward's first adaLN call

    def on_step(self, step: int, num_steps: int) -> None:
        """The sampler calls this before its step-th of num_steps network evaluations."""
        self.step, self.num_steps = int(step), int(num_steps)

    def active(self) -> bool:
        if not self.enabled:
            return False
        if self.spec.schedule == "every":
            return True
        if self.step is None:
            raise DtvizInputError(
                f"schedule {self.spec.schedule!r} counts sampler steps, but on_step was never called; "
                "pass the pruner's on_step to the sampler."
            )
        return self.spec.is_active(self.step, self.num_steps)

    # hooks -------------------------------------------------------------------------------------
    def capture_labels(self, module, args, kwargs):
        """Pre-hook on y_embedder: remember this forward's labels, (B,)."""
        self._labels = args[0] if args else kwargs["labels"]
        self._row_keep = None

    def mask_condition(self, module, args):
        """Pre-hook on each adaLN_modulation: c (B, d) -> c·keep, row by row."""
        if not self.active():
            return None
        return (self._masked(args[0]),) + tuple(args[1:])

    def start_forward(self, module, args):
        """Pre-hook on a diffusers transformer: a new forward, so a new per-row mask (from block 0's c)."""
        self._labels = self._row_keep = None

    def mask_embedding(self, module, args, kwargs, output):
        """Forward hook on each diffusers CombinedTimestepLabelEmbeddings.forward(timestep, class_labels):
        its output c (B, d) -> c·keep, row by row, with the labels of this call."""
        self._labels = args[1] if len(args) > 1 else kwargs["class_labels"]
        if not self.active():
            return None
        return self._masked(output)

    def mask_output(self, module, args, output):
        """Forward hook on a module whose output is c (B, d) — a text-to-image transformer's ``time_text_embed``,
        read by every adaLN layer — with the row labels set by the caller (``set_rows``) for the whole batch."""
        self._row_keep = None
        if not self.active():
            return None
        return self._masked(output)

    def set_rows(self, labels) -> None:
        """(B,) labels of the rows the next forwards run; rows labelled ``null_class`` are the CFG null rows."""
        self._labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))

    def _masked(self, c: torch.Tensor) -> torch.Tensor:
        """c (B, d) with the dims this forward's keep-mask drops set to exactly 0."""
        if self._row_keep is None:
            self._row_keep = self._rows_to_keep(c)
            if self.step is not None and (not self.pruned_steps or self.pruned_steps[-1] != self.step):
                self.pruned_steps.append(self.step)
        # where, not multiply: exact zeros (no -0.0, no NaN·0) and untouched values elsewhere.
        return torch.where(self._row_keep, c, torch.zeros((), dtype=c.dtype, device=c.device))

    def _rows_to_keep(self, c: torch.Tensor) -> torch.Tensor:
        B, d = c.shape
        if self.mask is not None:
            if self.mask.shape != (d,):
                raise DtvizInputError(f"the global mask must have one entry per dim of c ({d}); got shape {tuple(self.mask.shape)}.")
            keep = self.mask.to(c.device).expand(B, d)
        else:
            keep = keep_mask_torch(c, self.spec)
        if not self.spec.prune_null:
            if self._labels is None or self._labels.shape[0] != B:
                raise DtvizInputError("expected the class labels (y_embedder / class_labels) with one label per row of c; they did not come.")
            is_null = (self._labels == self.null_class).to(c.device)[:, None]  # (B, 1)
            keep = keep | is_null
        return keep


def adaln_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Every module whose name ends with ``adaLN_modulation``: blocks.{i}.… and final_layer.…."""
    return [(name, m) for name, m in model.named_modules() if name.split(".")[-1] == HOOKED_SUFFIX]


def diffusers_embedders(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """Every ``CombinedTimestepLabelEmbeddings`` of a diffusers DiT (transformer_blocks.{i}.norm1.emb).

    diffusers ``DiTTransformer2DModel.forward`` feeds each block's AdaLayerNormZero (norm1.linear(SiLU(c)))
    from its own emb, and the final layer from block 0's emb once more
    (``conditioning = self.transformer_blocks[0].norm1.emb(timestep, class_labels, ...)``, then
    ``proj_out_1(F.silu(conditioning))``), so hooking every emb's output prunes every consumer of c.
    """
    return [(name, m) for name, m in model.named_modules() if type(m).__name__ == DIFFUSERS_EMBEDDER]


def _install_hooks(model, pruner: "Pruner") -> list:
    """Native: pre-hooks on y_embedder (labels) and every adaLN_modulation (c). diffusers: a pre-hook on the
    model (a new forward) and a forward hook on every CombinedTimestepLabelEmbeddings (labels and c)."""
    targets = adaln_modules(model)
    if targets:
        label_module = getattr(model, "y_embedder", None)
        if label_module is None:
            raise DtvizInputError(f"expected a DiT-family model with a y_embedder; {type(model).__name__} has none.")
        handles = [label_module.register_forward_pre_hook(pruner.capture_labels, with_kwargs=True)]
        try:
            handles += [module.register_forward_pre_hook(pruner.mask_condition) for _, module in targets]
        except Exception:
            _remove(handles)
            raise
        return handles
    embedders = diffusers_embedders(model)
    if not embedders:
        raise DtvizInputError(
            f"expected a DiT-family model with adaLN_modulation modules (or a diffusers DiT with "
            f"{DIFFUSERS_EMBEDDER}) to prune; {type(model).__name__} has neither.")
    handles = [model.register_forward_pre_hook(pruner.start_forward)]
    try:
        handles += [module.register_forward_hook(pruner.mask_embedding, with_kwargs=True) for _, module in embedders]
    except Exception:
        _remove(handles)
        raise
    return handles


def _remove(handles) -> None:
    for handle in handles:
        handle.remove()


def _default_null_class(model) -> int:
    """DiT's ``num_classes`` (the null row's label), or a diffusers transformer's ``num_embeds_ada_norm``."""
    if hasattr(model, "num_classes"):
        return int(model.num_classes)
    config = getattr(model, "config", None)
    value = getattr(config, "num_embeds_ada_norm", None) if config is not None else None
    if value is None:
        raise DtvizInputError(f"cannot tell the null class of {type(model).__name__}; pass null_class.")
    return int(value)


@contextlib.contextmanager
def pruned(model: torch.nn.Module, spec: PruneSpec, mask=None, null_class: int | None = None):
    """Run ``model`` with c pruned by ``spec`` inside the block; yields the ``Pruner``.

    mask: (d,) bool keep-mask (``global_mask``), required when spec.mask == "global", ignored otherwise.
    null_class: the label of the null (CFG) rows; default ``model.num_classes`` (DiT's last table row).
    Hooks are removed on exit, even on error; weights are never touched.

        with pruned(model, spec, mask=global_mask(source, spec)) as pruner:
            x = sampler.sample(denoise, noise, labels, on_step=pruner.on_step)
    """
    if spec.mask == "global":
        if mask is None:
            raise DtvizInputError("a global PruneSpec needs its (d,) keep-mask; pass mask=global_mask(source, spec).")
        mask = torch.as_tensor(np.asarray(mask, dtype=bool))
    else:
        mask = None
    if mask is not None:
        mask = mask.to(next(model.parameters()).device)
    pruner = Pruner(spec=spec, null_class=-1, mask=mask)
    handles = _install_hooks(model, pruner)  # first: it says what kind of model is expected
    try:
        pruner.null_class = int(_default_null_class(model) if null_class is None else null_class)
        yield pruner
    finally:
        _remove(handles)


@contextlib.contextmanager
def pruned_output(module: torch.nn.Module, spec: PruneSpec, mask=None, null_label: int = -1):
    """Run with the output c (B, d) of ``module`` pruned by ``spec`` (a forward hook); yields the ``Pruner``, whose
    ``set_rows`` names each batch's rows (``null_label`` = a CFG null row) and ``on_step`` counts sampler steps.
    Used for text-to-image pipelines (dtviz.t2i_sampling): their c is the output of ``time_text_embed``, so zeroing
    c_i equals zeroing column i of every norm1.linear, norm1_context.linear, norm.linear and norm_out.linear."""
    if spec.mask == "global":
        if mask is None:
            raise DtvizInputError("a global PruneSpec needs its (d,) keep-mask; pass mask=global_mask(source, spec).")
        mask = torch.as_tensor(np.asarray(mask, dtype=bool)).to(next(module.parameters()).device)
    else:
        mask = None
    pruner = Pruner(spec=spec, null_class=int(null_label), mask=mask)
    handle = module.register_forward_hook(pruner.mask_output)
    try:
        yield pruner
    finally:
        handle.remove()


def chain_steps(*hooks):
    """One ``on_step(i, n)`` calling each of ``hooks`` (None entries skipped) in order."""
    hooks = [h for h in hooks if h is not None]

    def on_step(step: int, num_steps: int) -> None:
        for h in hooks:
            h(step, num_steps)

    return on_step

"""Applying a dtviz.pruning.spec.PruneSpec inside a model's forward: hooks on the modules that receive c.

Where it acts: every ``adaLN_modulation`` module (blocks.{i} and final_layer) receives c and nothing
else does, so ``pruned`` installs a forward pre-hook there replacing c by c·mask, row by row. Each
row's label is read by a pre-hook on ``y_embedder`` (REPA doubles the batch only inside its guidance
interval, so batch halves cannot be assumed). Since SiLU(0) = 0, zeroing c_i is exactly zeroing column
i of every adaLN Linear weight — the oracle the tests compare against.

Removing only the label part (``spec.part == "y"``): c = t_emb(t) + y_emb(class), so a forward hook on
``y_embedder`` (diffusers: each ``norm1.emb.class_embedder``) zeroes y's dims before the sum, leaving c_i = t_i
there; the oracle zeroes those columns of the label table (all rows, or all but the null row).

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
from dtviz.pruning.spec import PruneSpec, keep_mask_torch

HOOKED_SUFFIX = "adaLN_modulation"
DIFFUSERS_EMBEDDER = "CombinedTimestepLabelEmbeddings"  # diffusers DiT: transformer_blocks.{i}.norm1.emb


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

    def mask_label_part(self, module, args, output):
        """Forward hook on a label embedder (native ``y_embedder``, diffusers ``class_embedder``): its output y (B, d)
        -> y·keep, row by row; the labels are this call's first argument."""
        self._labels = args[0] if args else self._labels
        self._row_keep = None
        if not self.active():
            return None
        masked = self._masked(output)
        self._row_keep = None
        return masked

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


def _install_label_hooks(model, pruner: "Pruner") -> list:
    """spec.part == "y": a forward hook on every label embedder (native y_embedder; diffusers class_embedder)."""
    if adaln_modules(model):
        label_module = getattr(model, "y_embedder", None)
        modules = [label_module] if label_module is not None else []
    else:
        modules = [getattr(m, "class_embedder") for _, m in diffusers_embedders(model) if hasattr(m, "class_embedder")]
    if not modules:
        raise DtvizInputError(f"removing only the label part needs a label embedder (y_embedder or class_embedder); "
                              f"{type(model).__name__} has none.")
    return [m.register_forward_hook(pruner.mask_label_part) for m in modules]


def _install_hooks(model, pruner: "Pruner") -> list:
    """Native: pre-hooks on y_embedder (labels) and every adaLN_modulation (c). diffusers: a pre-hook on the
    model (a new forward) and a forward hook on every CombinedTimestepLabelEmbeddings (labels and c).
    ``spec.part == "y"``: hooks on the label embedders instead (``_install_label_hooks``)."""
    if pruner.spec.part == "y":
        return _install_label_hooks(model, pruner)
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
    Used for text-to-image pipelines (dtviz.sampling.t2i): their c is the output of ``time_text_embed``, so zeroing
    c_i equals zeroing column i of every norm1.linear, norm1_context.linear, norm.linear and norm_out.linear."""
    if spec.mask == "global":
        if mask is None:
            raise DtvizInputError("a global PruneSpec needs its (d,) keep-mask; pass mask=global_mask(source, spec).")
        mask = torch.as_tensor(np.asarray(mask, dtype=bool)).to(next(module.parameters()).device)
    else:
        mask = None
    if spec.part == "y":
        raise DtvizInputError("removing only the text part of c is not available for text-to-image pipelines yet; "
                              "prune c itself (part y+t).")
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

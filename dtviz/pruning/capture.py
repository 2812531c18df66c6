"""Any model: record c (``capture``) and prune c (``prune``) inside the user's own sampling script.

    with dtviz.capture(model.blocks[0].adaLN_modulation, "c.traj.npz", what="input",
                       labels=lambda: names, timestep=lambda: state["t"], cfg="first-half"):
        my_sample_loop(model, ...)              # the user's own loop, untouched

    with dtviz.prune(adaln_modules, PruneSpec(tau=0.1, schedule="last:10"), what="input",
                     mask=global_mask(dtviz.load("c.traj.npz"), spec), num_steps=50, cfg="first-half"):
        my_sample_loop(model, ...)

Trajectory file (one NumPy ``.npz``, named ``*.traj.npz``; dtviz.sources.trajectory reads and writes it):

    trajectory  float32 (rows, steps, d)   c of each row at each call of the module (a call = a step)
    labels      str (rows,)                row labels (conditions), as passed, duplicates numbered "x #2"
    timesteps   float64 (steps,)           the timestep given at each step (NaN when none was given)
    null        bool (rows,)               True for unconditional (CFG null) rows, recorded with cfg="both";
                                           never part of the statistics
    meta        str (JSON)                 {"format": "dtviz-trajectory", "version": 1, "what", "module", "cfg"}

CFG-doubled batches (``cfg``): "none" — every batch row is a condition; "first-half" — the batch is
[conditional; unconditional] (DiT's and SiT's sample.py order) and the first half is recorded;
"second-half" — [unconditional; conditional] (most diffusers pipelines) and the second half is recorded;
"both" — both halves are recorded, the ``cond_half`` one under the labels, the other as "label (null)".

Steps are counted per row from the calls the module sees, so a model evaluated twice per step (e.g. a
Heun step) records two entries per step: hook a module that runs once per network evaluation and keep
the sampler at one evaluation per step, or read ``timesteps`` to tell them apart.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from dtviz.errors import DtvizInputError
from dtviz.pruning.spec import PruneSpec, global_mask
from dtviz.pruning.hooks import Pruner
from dtviz.sources.trajectory import Trajectory

WHATS = ("output", "input")
CFG_MODES = ("none", "first-half", "second-half", "both")
NULL_SUFFIX = " (null)"


# ================================================================================ shared

def _check_choice(name: str, value: str, options: tuple) -> str:
    if value not in options:
        raise DtvizInputError(f"{name} must be one of {', '.join(options)}; got {value!r}.")
    return value


def _as_modules(modules) -> list[torch.nn.Module]:
    found = [modules] if isinstance(modules, torch.nn.Module) else list(modules) if modules is not None else []
    if not found or not all(isinstance(m, torch.nn.Module) for m in found):
        raise DtvizInputError(f"expected a torch.nn.Module (or a list of them) to hook; got {type(modules).__name__}.")
    return found


def _value(x: Any) -> Any:
    """A setting given as a value or as a callable read at each call."""
    return x() if callable(x) else x


def _halves(batch: int, cfg: str, cond_half: str = "first") -> tuple[np.ndarray, np.ndarray]:
    """(row indices to keep, is_null per kept row) of a batch of ``batch`` rows under ``cfg``."""
    if cfg == "none":
        return np.arange(batch), np.zeros(batch, dtype=bool)
    if batch % 2:
        raise DtvizInputError(f"cfg={cfg!r} expects a CFG-doubled batch (an even number of rows); got {batch} rows.")
    half = batch // 2
    first, second = np.arange(half), np.arange(half, batch)
    if cfg == "first-half":
        return first, np.zeros(half, dtype=bool)
    if cfg == "second-half":
        return second, np.zeros(half, dtype=bool)
    null_first = cond_half == "second"
    return np.arange(batch), np.r_[np.full(half, null_first), np.full(half, not null_first)]


# ================================================================================ capture

@dataclass
class Capture:
    """Records c on every call of ``module`` (see the module docstring); a context manager that writes
    ``path`` on a clean exit. ``trajectory()`` returns what was recorded so far."""

    module: torch.nn.Module
    path: str | None = None
    what: str = "output"
    labels: Any = None        # None | list (one per condition) | callable returning one
    timestep: Any = None      # None | number | tensor (scalar or per batch row) | callable returning one
    cfg: str = "none"
    cond_half: str = "first"  # cfg="both": which half is conditional
    select: Callable | None = None  # tensor -> (B, d), e.g. lambda x: x[:, 0] for a token
    calls_: int = 0
    _rows: dict = field(default_factory=dict, repr=False)  # label -> {"c": [(d,)], "t": [float], "null": bool}
    _handle: Any = field(default=None, repr=False)

    def __post_init__(self):
        _check_choice("what", self.what, WHATS)
        _check_choice("cfg", self.cfg, CFG_MODES)
        _check_choice("cond_half", self.cond_half, ("first", "second"))
        if not isinstance(self.module, torch.nn.Module):
            raise DtvizInputError(f"expected one torch.nn.Module to capture from; got {type(self.module).__name__}.")

    # --- context ------------------------------------------------------------------------------
    def __enter__(self) -> "Capture":
        if self.what == "output":
            self._handle = self.module.register_forward_hook(lambda m, a, out: self._record(out))
        else:
            self._handle = self.module.register_forward_pre_hook(lambda m, a: self._record(a[0] if a else None))
        return self

    def __exit__(self, kind, err, tb) -> None:
        self._handle.remove()
        if kind is None and self.path is not None:
            self.trajectory().save(self.path)

    # --- recording ----------------------------------------------------------------------------
    def _record(self, value) -> None:
        c = self.select(value) if self.select is not None else value
        if not isinstance(c, torch.Tensor) or c.ndim != 2:
            shape = tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
            raise DtvizInputError(f"expected the module's {self.what} to be a (batch, d) tensor, but found {shape}; "
                                  "pass select= to pick the vector (e.g. select=lambda x: x[:, 0] for a token).")
        keep, null = _halves(c.shape[0], self.cfg, self.cond_half)
        rows = c.detach().float().cpu().numpy()[keep]  # (B', d)
        names = self._labels_for(len(keep), null)
        times = self._timesteps_for(c.shape[0], keep)
        for name, vec, t, is_null in zip(names, rows, times, null):
            row = self._rows.setdefault(name, {"c": [], "t": [], "null": bool(is_null)})
            row["c"].append(vec)
            row["t"].append(t)
        self.calls_ += 1

    def _labels_for(self, count: int, null: np.ndarray) -> list[str]:
        """One label per kept row: the user's (one per condition, or one per batch row with cfg="both")."""
        raw = _value(self.labels)
        conditions = int((~null).sum())
        if raw is None:
            names = [f"row {i}" for i in range(conditions)]
        else:
            names = [str(x) for x in (raw.tolist() if hasattr(raw, "tolist") else list(raw))]
            if self.cfg == "both" and len(names) == count:
                return _numbered(names)
            if len(names) != conditions:
                raise DtvizInputError(f"expected {conditions} labels (one per conditional row of this call), "
                                      f"but got {len(names)}.")
        if self.cfg == "both":  # the null half is named after the conditional row it pairs with
            cond, nulls = iter(names), iter(names)
            names = [next(nulls) + NULL_SUFFIX if n else next(cond) for n in null]
        return _numbered(names)

    def _timesteps_for(self, batch: int, keep: np.ndarray) -> np.ndarray:
        raw = _value(self.timestep)
        if raw is None:
            return np.full(len(keep), np.nan)
        t = np.asarray(raw.detach().cpu().double() if isinstance(raw, torch.Tensor) else raw, dtype=np.float64).reshape(-1)
        if t.size == 1:
            return np.full(len(keep), float(t[0]))
        if t.size != batch:
            raise DtvizInputError(f"expected one timestep or one per batch row ({batch}), but got {t.size} values.")
        return t[keep]

    # --- result -------------------------------------------------------------------------------
    def trajectory(self) -> Trajectory:
        if not self._rows:
            raise DtvizInputError("nothing was captured: the hooked module was never called inside the capture block.")
        counts = {name: len(r["c"]) for name, r in self._rows.items()}
        if len(set(counts.values())) != 1:
            few = sorted(counts.items(), key=lambda kv: kv[1])[:3]
            raise DtvizInputError(f"every row must be captured over the same number of steps, but the counts differ "
                                  f"(e.g. {few}); pass labels that name each condition once per sampling run.")
        times = np.array([r["t"] for r in self._rows.values()], dtype=np.float64)  # (rows, steps)
        timesteps = times[0]
        agree = np.isclose(times, timesteps[None], rtol=1e-6, atol=1e-9) | (np.isnan(times) & np.isnan(timesteps)[None])
        if not agree.all():
            raise DtvizInputError("the rows were captured at different timesteps; a trajectory file holds one schedule "
                                  "(capture each schedule into its own file).")
        array = np.stack([np.stack(r["c"]) for r in self._rows.values()]).astype(np.float32)  # (rows, steps, d)
        meta = {"what": self.what, "module": type(self.module).__name__, "cfg": self.cfg,
                "cond_half": self.cond_half if self.cfg == "both" else None, "calls": self.calls_}
        return Trajectory(array, list(self._rows), timesteps,
                          np.array([r["null"] for r in self._rows.values()], dtype=bool), meta)


def _numbered(names: list[str]) -> list[str]:
    """Duplicate labels within one call -> "x", "x #2", ... (positions are stable from call to call)."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} #{seen[n]}")
    return out


def capture(module: torch.nn.Module, path: str | None = None, *, what: str = "output", labels=None, timestep=None,
            cfg: str = "none", cond_half: str = "first", select: Callable | None = None) -> Capture:
    """Record ``module``'s output (or its first input, ``what="input"``) on every call while the block runs,
    and write the trajectory file ``path`` (``*.traj.npz``; see the module docstring) on a clean exit.

    labels: one per conditional row (a list, a tensor of class ids, or a callable read at every call; default
    "row i"); timestep: a number, a tensor (scalar or one per batch row) or a callable; cfg: how the batch is
    doubled for guidance (none | first-half | second-half | both); select: tensor -> (batch, d)."""
    return Capture(module, path, what, labels, timestep, cfg, cond_half, select)


# ================================================================================ prune

@contextlib.contextmanager
def prune(modules, spec: PruneSpec, *, mask=None, num_steps: int | None = None, what: str = "output",
          cfg: str = "none", calls_per_step: int = 1):
    """Apply ``spec`` (dtviz.pruning.spec.PruneSpec) to the output (or first input) of ``modules`` during the block;
    yields the dtviz.pruning.hooks.Pruner (``pruned_steps`` lists the steps that were pruned).

    modules: one module whose output is c, or every module that reads c (e.g. all adaLN_modulation, with
    what="input"); the first one counts the steps (list first the one each forward calls first): call k of it is
    step k // calls_per_step.
    mask: for spec.mask="global", the (d,) keep-mask, or a Source (then ``global_mask(source, spec)``, e.g. of a
    captured trajectory file at its first step). num_steps: required for last:K schedules.
    cfg: none | first-half | second-half — which rows are the CFG null rows (pruned only if spec.prune_null)."""
    mods = _as_modules(modules)
    _check_choice("what", what, WHATS)
    _check_choice("cfg", cfg, CFG_MODES[:3])
    if spec.schedule.startswith("last") and num_steps is None:
        raise DtvizInputError(f"schedule {spec.schedule!r} counts back from the last step, so pass num_steps (the number of sampler steps).")
    if int(calls_per_step) < 1:
        raise DtvizInputError(f"calls_per_step must be a whole number >= 1; got {calls_per_step!r}.")
    keep = None
    if spec.mask == "global":
        if mask is None:
            raise DtvizInputError("a global PruneSpec needs its (d,) keep-mask: pass mask= (an array, or a source such as "
                                  "dtviz.load('c.traj.npz') whose c̄ selects the dims).")
        keep = torch.as_tensor(np.asarray(global_mask(mask, spec) if hasattr(mask, "embeddings") else mask, dtype=bool))
    pruner = Pruner(spec=spec, null_class=-1, mask=keep)
    state = {"calls": 0, "step": 0}

    def rows(c: torch.Tensor) -> torch.Tensor:
        _, null = _halves(c.shape[0], "both" if cfg != "none" else "none", "first" if cfg == "first-half" else "second")
        pruner.set_rows(np.where(null, -1, 0))
        return c

    def masked(module, c, lead: bool):
        if not isinstance(c, torch.Tensor) or c.ndim != 2:
            raise DtvizInputError(f"expected the module's {what} to be a (batch, d) tensor to prune, but found "
                                  f"{tuple(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__}.")
        if lead:
            state["step"] = state["calls"] // int(calls_per_step)
            state["calls"] += 1
            if num_steps is not None and state["step"] >= num_steps:
                raise DtvizInputError(f"the hooked module was called for step {state['step'] + 1}, but num_steps={num_steps}; "
                                      "pass the number of sampler steps (and calls_per_step if it runs more than once per step).")
        n = int(num_steps) if num_steps is not None else state["step"] + 1
        pruner.on_step(state["step"], n)
        if pruner.mask is not None:
            pruner.mask = pruner.mask.to(c.device)
        return pruner.mask_output(module, (), rows(c))

    handles = []
    try:
        for i, m in enumerate(mods):
            if what == "output":
                handles.append(m.register_forward_hook(lambda mod, a, out, lead=i == 0: masked(mod, out, lead)))
            else:
                def pre(mod, a, lead=i == 0):
                    out = masked(mod, a[0] if a else None, lead)
                    return None if out is None else (out,) + tuple(a[1:])
                handles.append(m.register_forward_pre_hook(pre))
        yield pruner
    finally:
        for h in handles:
            h.remove()


__all__ = ["capture", "prune", "Capture", "CFG_MODES"]

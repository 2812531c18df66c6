"""Trajectory files: c of every condition at every sampling step, captured in the user's own script
(``dtviz.capture``), opened as a source whose "t" is the step index.

File (one NumPy ``.npz``, conventionally ``*.traj.npz``; any ``.npz`` holding a ``trajectory`` member is one):

    trajectory  float32 (rows, steps, d)   c of each row at each step
    labels      str (rows,)                row labels (conditions)
    timesteps   float64 (steps,)           the sampler's timestep at each step (NaN when not given)
    null        bool (rows,)               unconditional (CFG null) rows: kept in the file, never in the statistics
    meta        str                        JSON: {"format": "dtviz-trajectory", "version": 1, "what", "module", "cfg", ...}

As a source: rows = the conditional rows; every view reads c at one step k (``embeddings(t=k)``; default
t0 = step 0, the first sampling step), and ``dtviz.analysis.dynamics.stats_over_t`` over every step gives the
per-step cosine and nPR curves. Only part ``y+t`` exists (c as captured). Sizes are checked from the
archive's declared member sizes and headers (dtviz.sources.budgets.check_npz) before anything is read.
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field

import numpy as np

from dtviz.sources import budgets
from dtviz.sources.checkpoint import check_readable_file
from dtviz.models.device import resolve_device
from dtviz.errors import DtvizInputError
from dtviz.sources.families import Family, TimeConvention
from dtviz.sources.base import Source, SourceInfo, check_finite

SUFFIX = ".traj.npz"
FORMAT, VERSION = "dtviz-trajectory", 1
ARRAY_MEMBER = "trajectory.npy"


# ================================================================================ file

@dataclass
class Trajectory:
    """What a trajectory file holds (see the module docstring); shapes are checked on construction."""

    array: np.ndarray        # (rows, steps, d) float32
    labels: list[str]        # (rows,)
    timesteps: np.ndarray    # (steps,) float64, NaN = not given
    null: np.ndarray         # (rows,) bool
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        a = np.asarray(self.array)
        if a.ndim != 3 or 0 in a.shape or not np.issubdtype(a.dtype, np.number):
            raise DtvizInputError(f"expected a trajectory of numbers shaped rows × steps × d, but found shape {a.shape} of {a.dtype}.")
        self.array = a.astype(np.float32, copy=False)
        rows, steps, _ = a.shape
        self.labels = budgets.check_labels(self.labels, rows, "the trajectory")
        self.timesteps = np.asarray(self.timesteps, dtype=np.float64).reshape(-1)
        self.null = np.asarray(self.null, dtype=bool).reshape(-1)
        for name, n, want in (("labels", len(self.labels), rows), ("timesteps", len(self.timesteps), steps),
                              ("null flags", len(self.null), rows)):
            if n != want:
                raise DtvizInputError(f"expected {want} {name} in the trajectory (shape {a.shape}), but found {n}.")
        if self.null.all():
            raise DtvizInputError("the trajectory holds only unconditional (null) rows; expected at least one condition.")

    @property
    def steps(self) -> int:
        return self.array.shape[1]

    def save(self, path: str) -> str:
        """Write the ``.npz`` (uncompressed, so sizes are checkable); returns the path."""
        path = os.fspath(path)
        if not path.lower().endswith(".npz"):
            raise DtvizInputError(f"a trajectory file must end in {SUFFIX} (or .npz); got {os.path.basename(path)!r}.")
        meta = {"format": FORMAT, "version": VERSION, **self.meta}
        with open(path, "wb") as fh:  # a file object: np.savez would otherwise append .npz to the name
            np.savez(fh, trajectory=self.array, labels=np.array(self.labels, dtype=str), timesteps=self.timesteps,
                     null=self.null, meta=np.array(json.dumps(meta)))
        return path


def is_trajectory_file(path: str) -> bool:
    """A ``.npz`` whose members include ``trajectory`` (reads the zip directory only)."""
    if not str(path).lower().endswith(".npz") or not os.path.isfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return ARRAY_MEMBER in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def read_trajectory(path: str) -> Trajectory:
    """Read and validate a trajectory file; every failure is one sentence (DtvizInputError)."""
    path = check_readable_file(path, "a trajectory file")
    name = os.path.basename(path)
    budgets.check_npz(path, name)  # declared sizes and shapes first: nothing inflated yet
    try:
        with np.load(path, allow_pickle=False) as data:
            members = set(data.files)
            if "trajectory" not in members:
                raise DtvizInputError(f"expected a trajectory file with a 'trajectory' array, but {name!r} holds {sorted(members)[:6]}.")
            array = data["trajectory"]
            rows = array.shape[0] if array.ndim else 0
            budgets.check_rows(rows, name)
            labels = (budgets.check_labels(data["labels"], rows, name) if "labels" in members
                      else [f"row {i}" for i in range(rows)])
            steps = array.shape[1] if array.ndim == 3 else 0
            timesteps = data["timesteps"] if "timesteps" in members else np.full(steps, np.nan)
            null = data["null"] if "null" in members else np.zeros(rows, dtype=bool)
            meta = _meta(data["meta"]) if "meta" in members else {}
    except DtvizInputError:
        raise
    except MemoryError as err:
        raise budgets.out_of_memory(name) from err
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        reason = "it holds pickled objects, which dtviz never unpickles" if "pickle" in str(err).lower() else "it is damaged or truncated"
        raise DtvizInputError(f"expected a dtviz trajectory file, but {name!r} could not be read: {reason}.") from err
    try:
        traj = Trajectory(array, labels if isinstance(labels, list) else [labels], timesteps, null, meta)
    except DtvizInputError:
        raise
    except (ValueError, TypeError) as err:  # e.g. timesteps that are text
        raise DtvizInputError(f"expected numeric timesteps and true/false null flags in the trajectory {name!r}, "
                              "but they could not be read as such.") from err
    check_finite("the trajectory", traj.array, repr(name))
    return traj


def _meta(value: np.ndarray) -> dict:
    try:
        meta = json.loads(str(value))
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


# ================================================================================ source

@dataclass(frozen=True)
class StepConvention(TimeConvention):
    """"t" of a trajectory source: the step index k in 0..steps-1; step 0 = t0, the first sampling step."""

    def describe(self) -> str:
        return f"sampling step k in [0, {self.t_max:g}], 0 = t0 (the first step)"

    def check(self, t: float) -> float:
        if not (self.t_min <= t <= self.t_max) or t != round(t):
            raise DtvizInputError(f"the step must be a whole number in [0, {self.t_max:g}] for this trajectory; got {t:g}.")
        return float(round(t))

    def grid(self, n: int) -> list[float]:
        """Every step when n >= steps (the per-step curves), else n steps spread from first to last."""
        count = int(self.t_max) + 1
        if n >= count:
            return [float(k) for k in range(count)]
        return super().grid(n)


class TrajectorySource(Source):
    """A captured trajectory as a source: rows = the conditional rows; "t" = the step index."""

    def __init__(self, traj: Trajectory, name: str = "trajectory", device=None):
        self.trajectory = traj
        keep = ~traj.null
        self.array = traj.array[keep] if traj.null.any() else traj.array  # (rows, steps, d), conditional rows only
        steps = traj.steps
        meta = traj.meta
        where = f"{meta['what']} of {meta.get('module', 'a module')}" if "what" in meta else "c"
        nulls = int(traj.null.sum())
        note = (f"captured {where} over {steps} step(s), cfg {meta.get('cfg', 'none')}"
                + (f"; {nulls} null (unconditional) row(s) in the file, not in the statistics" if nulls else ""))
        family = Family("trajectory", "captured trajectory", StepConvention(0, steps - 1, 0, True, ()), native=False)
        self.info = SourceInfo(name=name, family=family, num_classes=self.array.shape[0], dim=self.array.shape[2],
                               class_names=[l for l, k in zip(traj.labels, keep) if k], device=resolve_device(device),
                               family_note=note, can_sample=False,
                               sample_note="a captured trajectory has no model to sample; prune in your own script "
                                           "with dtviz.prune.",
                               extra={"rows": "conditions", "steps": steps, "timesteps": traj.timesteps.tolist()})

    @property
    def steps(self) -> int:
        return self.array.shape[1]

    def timestep_at(self, step: int) -> float:
        """The sampler's timestep recorded at ``step`` (NaN when the capture was given none)."""
        return float(self.trajectory.timesteps[int(step)])

    def step_text(self, step: int) -> str:
        """"step 3 of 10 (timestep 0.7)" — what titles and captions say."""
        t = self.timestep_at(step)
        return f"step {int(step)} of {self.steps}" + ("" if np.isnan(t) else f" (timestep {t:g})")

    @property
    def t0_note(self) -> str:
        return f"t0 = step 0, the first captured sampling step{'' if np.isnan(self.timestep_at(0)) else f' (timestep {self.timestep_at(0):g})'}"

    def _rows(self, ids: np.ndarray, t: float | None, part: str, batch_size: int) -> np.ndarray:
        if part != "y+t":
            raise DtvizInputError("a captured trajectory holds c itself (part y+t); it has no separate y or t part.")
        return np.array(self.array[ids, int(t)], dtype=np.float32)


def load_trajectory(path: str, device=None) -> TrajectorySource:
    """``dtviz.load`` of a trajectory file."""
    return TrajectorySource(read_trajectory(path), name=os.path.basename(path), device=device)

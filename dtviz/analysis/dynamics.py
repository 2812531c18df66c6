"""Statistics as a function of the timestep and of training (paper Fig. 12 and Sec. 5's note that cosine
rises toward the last denoising steps).

    stats_over_t(source, ts, part)     cosine and nPR of c(t) for one model over a t grid
    snapshot_series(folder_or_paths)   cosine and nPR for each checkpoint of one training run, and where c's size sits
    size_split(source, t)              ‖ȳ‖², mean ‖y_k − ȳ‖², ‖t_emb(t)‖²: the label rows' shared and own parts, and t's
"""
from __future__ import annotations

import os
import re
from typing import Callable

import numpy as np

from dtviz.errors import DtvizInputError
from dtviz.analysis.stats import ConditionStats, normalized_participation_ratio, silu

SERIES_KEYS = ("cosine_mean", "cosine_min", "cosine_max", "npr_mean_vector", "npr_per_class_mean", "npr_silu_mean_vector")
SPLIT_KEYS = ("y_shared_sq", "y_own_sq", "t_sq")
SNAPSHOT_EXTENSIONS = (".safetensors", ".pt", ".pth", ".ckpt", ".bin")
_STEP_IN_NAME = re.compile(r"(?:step|iter|it)[_\-]?(\d+)", re.IGNORECASE)


def _row(E: np.ndarray) -> dict:
    """The Table-1 numbers of one E: off-diagonal cosine (mean, min, max) and nPR (both readings), and nPR of
    SiLU(c̄), what adaLN reads (docs/claims.md, What adaLN reads)."""
    stats = ConditionStats().fit(E)
    row = stats.table_row()
    return {"cosine_mean": row["cosine"]["mean"], "cosine_min": row["cosine"]["min"], "cosine_max": row["cosine"]["max"],
            "npr_mean_vector": row["npr"]["mean_vector"], "npr_per_class_mean": row["npr"]["per_class_mean"],
            "npr_silu_mean_vector": float(normalized_participation_ratio(silu(stats.mean_vector_)))}


def _collect(rows: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in SERIES_KEYS}


def size_split(source, t: float | None = None) -> dict[str, float]:
    """Where c = y + t_emb(t) keeps its size at ``t`` (default t0), float64: ``y_shared_sq`` = ‖ȳ‖² (ȳ the mean
    label row, the null row left out: the part every row shares), ``y_own_sq`` = mean_k ‖y_k − ȳ‖² (each row's
    own part) and ``t_sq`` = ‖t_emb(t)‖². The label part's cosine is about shared / (shared + own), so a shared part
    that stays while the rows' own parts grow tells apart from one that shrinks. NaNs for a source without separate
    parts (a matrix, a trajectory)."""
    t = source.t0 if t is None else t
    try:
        Y = np.asarray(source.embeddings(t=t, part="y"), dtype=np.float64)
        T = np.asarray(source.embeddings(classes=[0], t=t, part="t"), dtype=np.float64)[0]
    except DtvizInputError:
        return dict.fromkeys(SPLIT_KEYS, float("nan"))
    y_bar = Y.mean(0)
    return {"y_shared_sq": float(y_bar @ y_bar), "y_own_sq": float(((Y - y_bar) ** 2).sum(1).mean()), "t_sq": float(T @ T)}


def stats_over_t(source, ts=None, part: str = "y+t", n: int = 11,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, np.ndarray]:
    """Cosine (mean/min/max over class pairs) and nPR (of c̄ and per-class mean) of ``source`` at each t
    in ``ts`` (default: ``n`` values from noise to data in the model's convention, ``TimeConvention.grid``).

    Returns arrays of len(ts) under "t", "cosine_mean", "cosine_min", "cosine_max", "npr_mean_vector",
    "npr_per_class_mean". ``progress(i, total)`` is called after each t (for a progress bar)."""
    conv = source.family.convention
    if conv is None:
        raise DtvizInputError("a precomputed embedding matrix has no timestep; the t-dynamics need a model checkpoint.")
    ts = conv.grid(n) if ts is None else [conv.check(float(t)) for t in ts]
    if len(ts) == 0:
        raise DtvizInputError("give at least one timestep.")
    rows = []
    for i, t in enumerate(ts):
        rows.append(_row(source.embeddings(t=t, part=part)))
        if progress is not None:
            progress(i + 1, len(ts))
    out = _collect(rows)
    out["t"] = np.asarray(ts, dtype=np.float64)
    return out


def snapshot_step(path: str) -> int:
    """The training step of a checkpoint file: safetensors metadata "step" if present (what dtviz's
    training writes), else the number after "step"/"iter" in the file name (step_000250.safetensors)."""
    if path.lower().endswith(".safetensors"):
        try:
            from safetensors import safe_open

            with safe_open(path, framework="np") as fh:
                meta = fh.metadata() or {}
            if "step" in meta:
                return int(meta["step"])
        except (OSError, ValueError, RuntimeError):
            pass  # unreadable header: fall back to the name; dtviz.load gives the clear error later
    match = _STEP_IN_NAME.search(os.path.basename(path))
    if match:
        return int(match.group(1))
    raise DtvizInputError(f"cannot tell the training step of {os.path.basename(path)!r}: expected safetensors metadata "
                          "'step' or a file name like step_000250.safetensors.")


def snapshot_paths(folder_or_paths) -> list[str]:
    """The checkpoint files of a folder (by extension), or the given paths, sorted by training step."""
    if isinstance(folder_or_paths, (str, os.PathLike)) and os.path.isdir(folder_or_paths):
        folder = os.fspath(folder_or_paths)
        paths = [os.path.join(folder, f) for f in os.listdir(folder) if f.lower().endswith(SNAPSHOT_EXTENSIONS)]
        if not paths:
            raise DtvizInputError(f"no checkpoint files ({', '.join(SNAPSHOT_EXTENSIONS)}) in {folder!r}.")
    elif isinstance(folder_or_paths, (str, os.PathLike)):
        path = os.fspath(folder_or_paths)
        if not os.path.exists(path):
            raise DtvizInputError(f"expected a folder of checkpoints or a list of files, but {path!r} does not exist.")
        paths = [path]
    else:
        paths = [os.fspath(p) for p in folder_or_paths]
        if not paths:
            raise DtvizInputError("give at least one checkpoint file.")
    return sorted(paths, key=lambda p: (snapshot_step(p), p))


def snapshot_series(folder_or_paths, t: float | None = None, part: str = "y+t", family: str = "auto",
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Cosine and nPR of c for each checkpoint of one training run (Fig. 12: nPR falls as training
    sparsifies c). Each file is opened with ``dtviz.load`` (embedder-only snapshots suffice) and read at
    ``t`` (default each model's t0).

    Returns {"step": int array, "path": [...], plus the arrays of ``stats_over_t`` and of ``size_split``}, sorted
    by step."""
    from dtviz.sources.loading import load

    paths = snapshot_paths(folder_or_paths)
    steps = [snapshot_step(p) for p in paths]
    if len(set(steps)) != len(steps):
        dup = sorted({s for s in steps if steps.count(s) > 1})
        raise DtvizInputError(f"several checkpoints claim the same training step {dup[:5]}; give one file per step.")
    rows = []
    for i, path in enumerate(paths):
        src = load(path, family=family)
        rows.append({**_row(src.embeddings(t=t, part=part)), **size_split(src, t)})
        if progress is not None:
            progress(i + 1, len(paths))
    out = _collect(rows)
    out.update({k: np.array([r[k] for r in rows], dtype=np.float64) for k in SPLIT_KEYS})
    out["step"] = np.asarray(steps, dtype=np.int64)
    out["path"] = list(paths)
    return out

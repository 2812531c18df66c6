"""The one small interface every source (checkpoint, diffusers pipeline, matrix, built-in) implements."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import torch

from dtviz.errors import DtvizInputError
from dtviz.sources.families import Family

PARTS = ("y+t", "y", "t")


@dataclass
class SourceInfo:
    """What the model card shows."""

    name: str
    family: Family
    num_classes: int
    dim: int
    class_names: list[str]
    device: torch.device
    parameters: int | None = None
    family_note: str = ""
    can_sample: bool = False
    sample_note: str = ""
    extra: dict = field(default_factory=dict)


class Source(ABC):
    """A model (or matrix) whose conditioning vectors c can be computed.

    ``embeddings(classes, t, part)`` returns float32 (N, d) numpy rows for the requested classes
    (default all; never the null row) at t in the family's convention (default t0); ``part`` is
    ``y+t`` (c itself), ``y`` (label embedding) or ``t`` (timestep embedding, one row per class).
    """

    info: SourceInfo

    # --- identity ------------------------------------------------------------------------------
    @property
    def family(self) -> Family:
        return self.info.family

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    @property
    def dim(self) -> int:
        return self.info.dim

    @property
    def class_names(self) -> list[str]:
        return self.info.class_names

    @property
    def device(self) -> torch.device:
        return self.info.device

    @property
    def t0(self) -> float | None:
        conv = self.family.convention
        return None if conv is None else conv.t0

    @property
    def t0_note(self) -> str:
        """What t0 assumes, when it is not simply the convention's noise end ("" then); e.g. a diffusers
        pipeline's "t0 = 980, the first timestep of its DDIMScheduler at DiTPipeline's default 50 steps"."""
        return ""

    @property
    def t_bias_name(self) -> str | None:
        """The bias that ends the timestep embedder: it can take −a while every label row takes +a, c unchanged
        (dtviz.analysis.label_split). None when the source has none or dtviz cannot tell."""
        return None

    # --- work ----------------------------------------------------------------------------------
    def embeddings(self, classes=None, t: float | None = None, part: str = "y+t", batch_size: int = 4096) -> np.ndarray:
        ids = self._class_ids(classes)
        part = check_part(part)
        if self.family.convention is None:
            if part != "y+t" or t is not None:
                raise DtvizInputError("a precomputed embedding matrix has no timestep or label parts; use part y+t and no t.")
            return self._rows(ids, None, part, batch_size)
        t = self.t0 if t is None else self.family.convention.check(float(t))
        return self._rows(ids, t, part, batch_size)

    @abstractmethod
    def _rows(self, ids: np.ndarray, t: float | None, part: str, batch_size: int) -> np.ndarray:
        """float32 (len(ids), d) for validated class ids."""

    def _class_ids(self, classes) -> np.ndarray:
        if classes is None:
            return np.arange(self.num_classes)
        ids = np.asarray(list(classes) if not isinstance(classes, np.ndarray) else classes).astype(np.int64).reshape(-1)
        bad = ids[(ids < 0) | (ids >= self.num_classes)]
        if len(bad):
            raise DtvizInputError(f"class ids must lie in 0..{self.num_classes - 1} (row {self.num_classes} is the null class); got {bad[:5].tolist()}.")
        return ids

    def class_label(self, i: int) -> str:
        return self.class_names[i] if i < len(self.class_names) else f"class {i}"


def row_noun(source) -> tuple[str, str]:
    """What the rows of ``source`` are, singular and plural, for titles, axes, hover and table headers:
    ("prompt", "prompts") for a text-to-image pipeline, ("condition", "conditions") for a matrix or a captured
    trajectory (dtviz cannot tell what they hold), else ("class", "classes")."""
    rows = (getattr(source.info, "extra", None) or {}).get("rows")
    if rows == "prompts":
        return "prompt", "prompts"
    if rows == "conditions" or source.info.family.convention is None:
        return "condition", "conditions"
    return "class", "classes"


def check_part(part: str) -> str:
    if part not in PARTS:
        raise DtvizInputError(f"part must be one of {', '.join(PARTS)}; got {part!r}.")
    return part


def check_finite(name: str, array: np.ndarray | torch.Tensor, where: str) -> None:
    bad = ~np.isfinite(array) if isinstance(array, np.ndarray) else ~torch.isfinite(array)
    if bad.any():
        count = int(bad.sum())
        raise DtvizInputError(f"{name} in {where} holds {count} NaN/Inf value(s); expected finite numbers.")

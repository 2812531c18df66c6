"""Model families, their timestep conventions, and detection from state-dict keys.

"t0" is the first sampling step in each family's own convention (the paper reports statistics there):

    dit, mdt, diffusers   integer t ∈ {0..999}, 999 = noise        → t0 = 999
    sit, lightningdit     t ∈ [0, 1], 0 = noise                     → t0 = 0
    repa, mg              t ∈ [0, 1], 1 = noise                     → t0 = 1
    matrix                precomputed embeddings: no timestep
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from dtviz.errors import DtvizInputError


@dataclass(frozen=True)
class TimeConvention:
    t_min: float
    t_max: float
    noise_at: float
    integer: bool
    samplers: tuple[str, ...] = ()  # dtviz.samplers that run on this convention; the first is the fallback default

    @property
    def t0(self) -> float:
        """The first sampling step: where the noise is."""
        return self.noise_at

    @property
    def data_at(self) -> float:
        return self.t_min if self.noise_at == self.t_max else self.t_max

    def describe(self) -> str:
        kind = "integer" if self.integer else "continuous"
        return f"{kind} t in [{self.t_min:g}, {self.t_max:g}], {self.noise_at:g} = noise"

    def check(self, t: float) -> float:
        if not (self.t_min <= t <= self.t_max):
            raise DtvizInputError(f"t must lie in [{self.t_min:g}, {self.t_max:g}] for this model ({self.describe()}); got {t:g}.")
        return float(round(t)) if self.integer else float(t)

    def grid(self, n: int) -> list[float]:
        """n values from noise to data, for t-sweeps."""
        step = (self.data_at - self.noise_at) / max(n - 1, 1)
        values = [self.noise_at + i * step for i in range(n)]
        return [float(round(v)) for v in values] if self.integer else values


DDPM_1000 = TimeConvention(0, 999, 999, True, ("ddpm", "ddim"))
FLOW_0_NOISE = TimeConvention(0.0, 1.0, 0.0, False, ("euler", "sde"))
FLOW_1_NOISE = TimeConvention(0.0, 1.0, 1.0, False, ("euler", "sde"))
SAMPLER_NAMES = ("ddpm", "ddim", "euler", "sde")


@dataclass(frozen=True)
class Family:
    key: str
    label: str
    convention: TimeConvention | None
    native: bool = True  # DiT-family key names (y_embedder / t_embedder)


FAMILIES = {
    "dit": Family("dit", "DiT", DDPM_1000),
    "sit": Family("sit", "SiT", FLOW_0_NOISE),
    "repa": Family("repa", "REPA", FLOW_1_NOISE),
    "lightningdit": Family("lightningdit", "LightningDiT", FLOW_0_NOISE),
    "mdt": Family("mdt", "MDT", DDPM_1000),
    "mg": Family("mg", "Model-Guidance", FLOW_1_NOISE),
    "diffusers": Family("diffusers", "diffusers DiT", DDPM_1000, native=False),
    "matrix": Family("matrix", "precomputed matrix", None, native=False),
}
NATIVE_FAMILIES = tuple(k for k, f in FAMILIES.items() if f.native)


def get_family(key: str) -> Family:
    try:
        return FAMILIES[key.lower()]
    except KeyError:
        raise DtvizInputError(f"family must be one of auto, {', '.join(FAMILIES)}; got {key!r}.") from None


@dataclass(frozen=True)
class Detection:
    family: Family
    reason: str
    ambiguous: bool


def detect_family(keys: Iterable[str]) -> Detection:
    """REPA has ``projectors.*``, LightningDiT ``feat_rope``/``mlp.w12``, MDTv2 ``en_inblocks``/``de_blocks``,
    MDTv1 ``sideblocks`` beside plain ``blocks``.
    DiT, SiT and MG share every key, so those come back as DiT with ``ambiguous=True``."""
    keys = list(keys)

    def has(fragment: str) -> bool:
        return any(fragment in k for k in keys)

    if any(k.startswith("projectors.") for k in keys):
        return Detection(FAMILIES["repa"], "keys projectors.* (REPA's alignment projectors)", False)
    if has("feat_rope") or has("mlp.w12"):
        return Detection(FAMILIES["lightningdit"], "keys feat_rope / mlp.w12 (LightningDiT's RoPE and SwiGLU)", False)
    if any(k.startswith(("en_inblocks.", "de_blocks.")) for k in keys):
        return Detection(FAMILIES["mdt"], "keys en_inblocks / de_blocks (MDTv2's encoder-decoder)", False)
    if any(k.startswith("sideblocks.") for k in keys):
        return Detection(FAMILIES["mdt"], "keys blocks.* with sideblocks.* (MDTv1's side-interpolator)", False)
    return Detection(FAMILIES["dit"], "DiT, SiT and Model-Guidance share these key names; assumed DiT — pass the family to change it", True)

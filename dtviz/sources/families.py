"""Model families, their timestep conventions, and detection from state-dict keys.

"t0" is the first sampling step in each family's own convention (the paper reports statistics there):

    dit, mdt              integer t ∈ {0..999}, 999 = noise        → t0 = 999
    diffusers             integer t ∈ {0..999}, 999 = noise        → t0 = its scheduler's first timestep at
                                                                    DiTPipeline's default 50 steps (980 for
                                                                    DDIM "leading"; DiffusersSource.t0)
    sit, lightningdit     t ∈ [0, 1], 0 = noise                     → t0 = 0
    repa, mg              t ∈ [0, 1], 1 = noise                     → t0 = 1
    sd3, flux, sana       t ∈ [0, 1000] (σ·1000, the scheduler's),  → t0 = the pipeline scheduler's first
                          1000 = noise                                 timestep (dtviz.sources.diffusers_t2i)
    pixart                integer t ∈ {0..999}, 999 = noise         → t0 = the same
    matrix                precomputed embeddings: no timestep
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Iterable

from dtviz.errors import DtvizInputError


@dataclass(frozen=True)
class TimeConvention:
    t_min: float
    t_max: float
    noise_at: float
    integer: bool
    samplers: tuple[str, ...] = ()  # dtviz.sampling.samplers that run on this convention; the first is the fallback default

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
FLOW_0_NOISE = TimeConvention(0.0, 1.0, 0.0, False, ("euler", "sde", "ode", "heun"))
FLOW_1_NOISE = TimeConvention(0.0, 1.0, 1.0, False, ("euler", "sde", "heun", "ode"))
# Text-to-image pipelines sample through the pipeline itself, its own scheduler (dtviz.sampling.t2i).
FLOW_1000 = TimeConvention(0.0, 1000.0, 1000.0, False, ("pipeline",))
DDPM_1000_PIPELINE = TimeConvention(0, 999, 999, True, ("pipeline",))
# a diffusers pipeline samples with its own scheduler object (dtviz.sampling.pipeline) unless asked for DiT's own
DIFFUSERS_1000 = TimeConvention(0, 999, 999, True, ("scheduler", "ddpm", "ddim"))
SAMPLER_NAMES = ("ddpm", "ddim", "euler", "sde", "scheduler", "ode", "heun")


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
    "diffusers": Family("diffusers", "diffusers DiT", DIFFUSERS_1000, native=False),
    "sd3": Family("sd3", "Stable Diffusion 3", FLOW_1000, native=False),
    "flux": Family("flux", "Flux", FLOW_1000, native=False),
    "pixart": Family("pixart", "PixArt", DDPM_1000_PIPELINE, native=False),
    "sana": Family("sana", "Sana", FLOW_1000, native=False),
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


def detect_family(keys: Iterable[str], shapes: Mapping | None = None) -> Detection:
    """REPA has ``projectors.*`` (its legacy layout ``decoder_blocks.*``), LightningDiT ``feat_rope``/``mlp.w12``
    or, without RoPE and SwiGLU, RMSNorm weights (``blocks.{i}.norm1.weight``, ``final_layer.norm_final.weight``,
    qk-norm without bias) or wo_shift's (4D, D) adaLN (``shapes`` needed); MDTv2 ``en_inblocks``/``de_blocks``,
    MDTv1 ``sideblocks`` beside plain ``blocks``.
    DiT, SiT and MG share every key, so those come back as DiT with ``ambiguous=True``. A training wrapper's
    args/config say more (dtviz.sources.release_config); this is the reading for plain state dicts."""
    keys = list(keys)

    def has(fragment: str) -> bool:
        return any(fragment in k for k in keys)

    if any(k.startswith("projectors.") for k in keys):
        return Detection(FAMILIES["repa"], "keys projectors.* (REPA's alignment projectors)", False)
    if any(k.startswith("decoder_blocks.") for k in keys):
        return Detection(FAMILIES["repa"], "keys decoder_blocks.* (REPA's legacy layout)", False)
    if has("feat_rope") or has("mlp.w12"):
        return Detection(FAMILIES["lightningdit"], "keys feat_rope / mlp.w12 (LightningDiT's RoPE and SwiGLU)", False)
    if any(k.startswith(("en_inblocks.", "de_blocks.")) for k in keys):
        return Detection(FAMILIES["mdt"], "keys en_inblocks / de_blocks (MDTv2's encoder-decoder)", False)
    if any(k.startswith("sideblocks.") for k in keys):
        return Detection(FAMILIES["mdt"], "keys blocks.* with sideblocks.* (MDTv1's side-interpolator)", False)
    if has(".norm1.weight") or "final_layer.norm_final.weight" in keys or (has("attn.q_norm.weight") and not has("attn.q_norm.bias")):
        return Detection(FAMILIES["lightningdit"], "keys norm1.weight / q_norm without bias (LightningDiT's RMSNorm)", False)
    ada, proj = shapes.get("blocks.0.adaLN_modulation.1.weight") if shapes else None, shapes.get("x_embedder.proj.weight") if shapes else None
    if ada is not None and proj is not None and ada[0] == 4 * proj[0]:
        return Detection(FAMILIES["lightningdit"], "a (4D, D) adaLN without shifts (LightningDiT's wo_shift)", False)
    qk = " (qk-norm: REPA --qk-norm, or a LightningDiT with LayerNorm qk-norm and no RoPE/SwiGLU/RMSNorm)" if has("attn.q_norm.weight") else ""
    return Detection(FAMILIES["dit"], f"DiT, SiT and Model-Guidance share these key names{qk}; assumed DiT — pass the family to change it", True)

"""What one sampling run is asked for (``SampleSettings``): shared by dtviz.sampling.generate (the class-conditional
families) and dtviz.sampling.t2i (text-to-image pipelines), which therefore need not import each other."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SampleSettings:
    steps: int | None = None
    cfg_scale: float | None = None
    seed: int = 0
    sampler: str | None = None  # None = the family's default (SAMPLER_DEFAULTS); "name[:key=value,...]", see Generator.sampler
    seed_convention: str = "per-sample"  # or "release": the release script's own draws (dtviz.sampling.seeding)
    size: int | None = None  # text-to-image pipelines: image side in px (None = the pipeline's default; dtviz.sampling.t2i)
    # Pruned-c guidance weight w (dtviz.sampling.samplers.guided_denoiser): None = ``prune`` prunes c itself; a number = c stays
    # whole and ``prune`` defines the weaker condition P(c), D += w·(D_c − D_P(c)): one more forward per step.
    pruned_guidance: float | None = None

"""A diffusers DiTPipeline sampled with its own scheduler object, step for step as ``DiTPipeline.__call__`` does.

The pipeline folder's ``scheduler/scheduler_config.json`` names a diffusers scheduler class (DDIMScheduler in
facebook/DiT-*, DPMSolverMultistepScheduler in the diffusers DiT documentation, Euler, DDPM, …); dtviz loads
that class with diffusers and never re-implements it. Per step, for the scheduler's ``timesteps`` t
(diffusers ``pipelines/dit/pipeline_dit.py``):

    x_in   = scheduler.scale_model_input(x, t)                     identity for DDIM / DPM-Solver
    out    = transformer([x_in; x_in], t, [y; null])               CFG on the first in_channels channels
                                                                   (dtviz.sampling.samplers.guided_denoiser)
    ε      = out[:, :C] when out has 2C channels (learned sigma dropped), else out
    x      = scheduler.step(ε, t, x_in).prev_sample                x_in, not x: the pipeline passes the
                                                                   scaled input on (it matters only for
                                                                   schedulers that scale, e.g. Euler)

The initial latents are used as drawn (the pipeline does not multiply them by ``init_noise_sigma``).
Stepping the B guided rows equals the pipeline stepping its doubled batch and keeping the first half, since
every scheduler update is element-wise. A stochastic scheduler's noise comes from ``generator`` (one per row,
dtviz's convention), not from torch's global RNG as in the pipeline — except under the release seed convention
(``generator.release_rows``, dtviz.sampling.seeding): then the scheduler steps that many rows (the pipeline's doubled CFG
batch, the guided rows repeated, as the pipeline does) without a generator, drawing from the global RNG exactly
as ``DiTPipeline.__call__`` does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dtviz.sampling.samplers import Denoiser, StepHook
from dtviz.sources.schedulers import PIPELINE_STEPS, fresh, scheduler_timesteps


@dataclass
class PipelineSchedulerSampler:
    """``steps`` inference steps of the pipeline's ``scheduler`` (a diffusers SchedulerMixin, never modified)."""

    scheduler: object
    steps: int = PIPELINE_STEPS

    def timesteps(self) -> list[float]:
        """The t of each network evaluation, noise first, in the scheduler's units."""
        return [float(t) for t in scheduler_timesteps(self.scheduler, self.steps)]

    @torch.no_grad()
    def sample(self, denoise: Denoiser, noise: torch.Tensor, labels: torch.Tensor, on_step: StepHook | None = None,
               generator=None) -> torch.Tensor:
        """``denoise`` the guided model (B rows in, B rows out); ``generator``: a stochastic scheduler's noise."""
        import inspect

        scheduler = fresh(self.scheduler)
        scheduler.set_timesteps(self.steps)
        takes_generator = "generator" in inspect.signature(scheduler.step).parameters
        # diffusers' randn_tensor takes one torch.Generator or one per row (dtviz's per-sample noise streams)
        per_row = isinstance(generator, torch.Generator) or (isinstance(generator, list) and len(generator) == len(noise))
        extra = {"generator": generator} if takes_generator and per_row else {}
        repeat = max(1, getattr(generator, "release_rows", 0) // max(len(noise), 1))  # the pipeline's 2n rows
        channels = noise.shape[1]
        x = noise  # (B, C, H, W)
        timesteps = scheduler.timesteps
        for i, t in enumerate(timesteps):
            if on_step:
                on_step(i, len(timesteps))
            x_in = scheduler.scale_model_input(x, t)
            t_rows = t[None].to(x.device).expand(x.shape[0])  # the scheduler's dtype (int64 DDIM, float Euler)
            out = denoise(x_in, t_rows, labels)
            eps = out[:, :channels] if out.shape[1] // 2 == channels else out
            if repeat > 1:  # the pipeline steps [x; x] with [ε; ε] and keeps the first half
                x = scheduler.step(torch.cat([eps] * repeat), t, torch.cat([x_in] * repeat), **extra).prev_sample[:len(eps)]
            else:
                x = scheduler.step(eps, t, x_in, **extra).prev_sample
        return x

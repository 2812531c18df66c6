"""Where a sample's random numbers come from: dtviz's per-sample convention, or the release's own draws.

    per-sample  (default) row i's initial noise from torch.Generator seeded (seed·1000003 + index_i), its SDE /
                DDPM noise from a second stream (+2⁴⁰): a sample does not depend on its batch or process.
    release     torch.manual_seed(seed), then exactly the draws of the family's release script, in its order,
                from torch's global RNG (so ``dtviz sample --seed S --seed-convention release`` replays
                ``python sample.py --seed S``):

        DiT  sample.py    the model is built after seeding (its init draws from the CPU RNG: dtviz builds a copy
                          to advance the RNG the same way); z = randn(n, C, L, L) on the device; CFG doubles z
                          (always); p_sample draws randn_like(x) of the doubled batch (2n) at every step
        SiT  sample.py    as DiT for z; the SDE draws th.randn(x.size()) of the doubled batch on the CPU, float32,
                          at each of its steps − 1 stochastic steps; the ODE draws nothing
        REPA generate.py  seed = global_seed·world_size + rank (one process: the seed); z = randn(n, C, L, L), then
                          y = randint(0, num_classes, (n,)) (drawn and dropped: dtviz samples the labels asked
                          for); euler_maruyama_sampler draws randn_like(x) of the n rows in float64. generate.py
                          runs on CUDA only, where building the model (CPU RNG) does not touch these draws.
        LightningDiT inference.py  the model is built before seeding; seed = global_seed·world_size + rank (one
                          process: the seed); z = randn(n, C, L, L) on the device, then y = randint(0, num_classes,
                          (n,)) (dropped, as REPA); CFG doubles z without drawing; mode ODE only, so nothing more
                          is drawn (a stochastic dtviz sampler is refused). The VA-VAE is built after seeding on
                          the CPU; on CUDA, where inference.py runs, that does not touch the device's draws.
        diffusers DiTPipeline.__call__(class_labels, generator=torch.manual_seed(seed)): latents =
                          randn_tensor((n, C, L, L), generator, device, transformer dtype) (diffusers' own function);
                          with guidance_scale > 1 the scheduler steps the doubled batch (2n) and, called without a
                          generator, draws a stochastic step's noise (DDPM, Euler ancestral, …) of those 2n rows from
                          the same global RNG (dtviz.sampling.pipeline steps 2n rows under this convention)

MDT's scripts/image_sample.py sets no seed at all (no --seed; infer_mdt.py fixes torch.manual_seed(1)), so it is
refused with NOT_REPLAYABLE's sentence; pass its noise with --noise.

The VAE is assumed to load without drawing (diffusers with accelerate, as in the releases' environments).
"""
from __future__ import annotations

from typing import Callable

import torch

from dtviz.errors import DtvizInputError

SEED_CONVENTIONS = ("per-sample", "release")
RELEASE_SCRIPTS = {"dit": "DiT sample.py", "sit": "SiT sample.py", "repa": "REPA generate.py",
                   "lightningdit": "LightningDiT inference.py", "diffusers": "diffusers DiTPipeline.__call__"}
# Why a family's release cannot be replayed from a seed (check_convention says it in one sentence).
NOT_REPLAYABLE = {
    "mdt": "MDT's scripts/image_sample.py never seeds torch (it takes no --seed), so its draws are not a function "
           "of a seed",
}


def initial_noise(shape: tuple, seed: int, indices, device) -> torch.Tensor:
    """(len(indices), *shape) standard normal, row i drawn from (seed, indices[i]) alone (per-sample)."""
    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i))) for i in indices]
    return torch.stack(rows).to(device)


def noise_generators(seed: int, indices) -> list[torch.Generator]:
    """One generator per row for a stochastic sampler's noise (samplers.randn_rows), seeded from (seed, index)
    alone like ``initial_noise`` but on a separate stream, so the SDE / DDPM noise of a sample does not depend
    on its batch and baseline and pruned runs share it."""
    return [torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i) + (1 << 40)) for i in indices]


def check_convention(convention: str, family: str) -> None:
    if convention not in SEED_CONVENTIONS:
        raise DtvizInputError(f"the seed convention must be per-sample or release; got {convention!r}.")
    if convention == "release" and family in NOT_REPLAYABLE:
        raise DtvizInputError(f"the release seed convention cannot replay {NOT_REPLAYABLE[family]}; pass the noise "
                              f"it drew with --noise instead.")
    if convention == "release" and family not in RELEASE_SCRIPTS:
        raise DtvizInputError(f"the release seed convention replays {', '.join(RELEASE_SCRIPTS.values())}; "
                              f"{family} has none in dtviz yet — pass the release's noise with --noise instead.")


def release_draws(family: str, model: torch.nn.Module, shape: tuple, n: int, seed: int, device,
                  num_classes: int, cfg_scale: float | None = None) -> tuple[torch.Tensor, Callable]:
    """Seed torch's global RNG as the release does and draw its initial noise: ((n, *shape) float32 on ``device``,
    the step-noise source for samplers.randn_rows), both in the release's order (see the module docstring)."""
    check_convention("release", family)
    if family == "diffusers":
        return _pipeline_draws(model, shape, n, seed, device, cfg_scale)
    torch.manual_seed(int(seed))
    if family in ("dit", "sit"):
        type(model)(model.config)  # the release builds its model here; its init advances the CPU RNG
    z = torch.randn(n, *shape, device=device)
    if family == "lightningdit":  # inference.py: y = randint(...) after z; its ODE draws nothing more
        torch.randint(0, num_classes, (n,), device=device)

        def step_noise(like: torch.Tensor) -> torch.Tensor:
            raise DtvizInputError("LightningDiT's inference.py samples with its ODE only (mode SDE is not supported "
                                  "there), so the release seed convention has no step noise for a stochastic "
                                  "sampler; use an ODE sampler or pass --seed-convention per-sample.")
    elif family == "repa":
        torch.randint(0, num_classes, (n,), device=device)

        def step_noise(like: torch.Tensor) -> torch.Tensor:  # randn_like(x_cur), x_cur float64 (n rows)
            return torch.randn(like.shape, dtype=torch.float64, device=device).to(like.dtype)
    else:
        step_noise = ReleaseStepNoise(2 * n, device, cpu=family == "sit")  # the doubled CFG batch; SiT's SDE: CPU
    return z, step_noise


class ReleaseStepNoise:
    """A release's step noise: ``rows`` rows of float32 from torch's global RNG on ``device`` (or the CPU), the first
    ``like.shape[0]`` kept. ``release_rows`` tells dtviz.sampling.pipeline to step that many rows itself."""

    def __init__(self, rows: int, device, cpu: bool = False):
        self.release_rows, self.device, self.cpu = rows, device, cpu

    def __call__(self, like: torch.Tensor) -> torch.Tensor:
        drawn = torch.randn((self.release_rows, *like.shape[1:]), dtype=torch.float32,
                            device="cpu" if self.cpu else self.device)
        return drawn[:like.shape[0]].to(device=like.device, dtype=like.dtype)


def _pipeline_draws(model: torch.nn.Module, shape: tuple, n: int, seed: int, device, cfg_scale) -> tuple:
    """DiTPipeline.__call__'s latents with generator=torch.manual_seed(seed), drawn by diffusers' randn_tensor."""
    from diffusers.utils.torch_utils import randn_tensor

    dtype = next(model.parameters()).dtype
    z = randn_tensor((n, *shape), generator=torch.manual_seed(int(seed)), device=torch.device(device), dtype=dtype)
    rows = 2 * n if cfg_scale is not None and float(cfg_scale) > 1 else n  # the pipeline doubles only for s > 1
    return z.float(), ReleaseStepNoise(rows, device)


def check_noise(noise, n: int, shape: tuple, device) -> torch.Tensor:
    """A user's initial noise as (n, *shape) float32 on ``device``, or one sentence saying what was expected."""
    if not isinstance(noise, torch.Tensor):
        raise DtvizInputError(f"the noise must be a tensor of shape {(n, *shape)}; got a {type(noise).__name__}.")
    if tuple(noise.shape) != (n, *shape):
        raise DtvizInputError(f"the noise must have shape {(n, *shape)} (one row per sample); got {tuple(noise.shape)}.")
    if not noise.is_floating_point() or not bool(torch.isfinite(noise).all()):
        raise DtvizInputError("the noise must be finite floating-point numbers.")
    return noise.detach().to(device=device, dtype=torch.float32)


def load_noise(path: str) -> torch.Tensor:
    """``--noise FILE.pt``: one tensor saved with torch.save, read with weights_only=True (never arbitrary objects)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DtvizInputError(f"--noise {path!r} does not exist; expected a .pt file holding one tensor.") from None
    except Exception as err:  # noqa: BLE001 - any unreadable file is the user's input, said in one sentence
        raise DtvizInputError(f"--noise {path!r} could not be read as a torch tensor file ({type(err).__name__}); "
                              "expected torch.save(tensor, path).") from None
    if not isinstance(obj, torch.Tensor):
        raise DtvizInputError(f"--noise {path!r} holds a {type(obj).__name__}; expected one tensor (torch.save(z, path)).")
    return obj

"""Sampling images from a source: the family's sampler, CFG, deterministic noise, optional pruning.

Noise is drawn per sample from ``seed`` and the sample's index, so a sample does not depend on which
batch (or which process of a sweep) computes it, and baseline and pruned runs share it exactly.

A ``Generator`` may be shared between threads (the dashboard caches one per model for all sessions):
pruning installs hooks on its model, so every ``sample`` call holds the generator's lock from start to
end; concurrent calls run one after the other and each sees only its own pruning.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from dtviz.errors import DtvizInputError
from dtviz.pruning import PruneSpec, chain_steps, global_mask, pruned
from dtviz.samplers import DDIMSampler, DDPMSampler, EulerFlowSampler, EulerMaruyamaSampler, guided_denoiser
from dtviz.sources.base import Source

# Family defaults, as in each family's own sample.py (DiT: p_sample_loop, --num-sampling-steps 250).
# ``name``: "euler" (ODE) or "sde" (Euler–Maruyama) for velocity families, "ddim" or "ddpm" for ε families.
SAMPLER_DEFAULTS = {
    "dit": dict(name="ddpm", steps=250, cfg_scale=4.0, guided_channels=3),
    # MDT scripts/image_sample.py (the README's FID run): p_sample_loop, 250 steps, cfg_scale 3.8, --scale_pow 4 for
    # forward_with_cfg's power-cosine schedule, which guides model_out[:, :3] (masked_diffusion/models.py).
    "mdt": dict(name="ddpm", steps=250, cfg_scale=3.8, guided_channels=3, scale_pow=4.0),
    "sit": dict(name="euler", steps=50, cfg_scale=4.0, guided_channels=3),
    # LightningDiT configs/reproductions/lightningdit_xl_vavae_f16d32_800ep_cfg.yaml (the FID-1.35 model) via inference.py:
    # Euler ODE on linspace(0, 1, num_sampling_steps=250), i.e. 249 evaluations, timestep_shift 0.3
    # (transport/integrators.py ode); cfg 6.7 on model_out[:, :3] only and none while t < cfg_interval_start 0.125
    # (models/lightningdit.py forward_with_cfg). The 64-epoch model's config: cfg 10.0, cfg_interval_start 0.10.
    "lightningdit": dict(name="euler", steps=249, cfg_scale=6.7, guided_channels=3, interval=(0.125, 1.0),
                         timestep_shift=0.3),
    "repa": dict(name="euler", steps=50, cfg_scale=1.8, guided_channels=None, interval=(0.0, 0.7)),
    "mg": dict(name="euler", steps=50, cfg_scale=1.0, guided_channels=None),
    # diffusers DiTPipeline.__call__: 50 steps of its scheduler (DDIM in facebook/DiT-*), guidance_scale 4.0 on
    # all in_channels ε channels (set in Generator: latent_channels = transformer.config.in_channels).
    "diffusers": dict(name="ddim", steps=50, cfg_scale=4.0, guided_channels=None),
}
SAMPLER_LABELS = {"ddpm": "DDPM (ancestral)", "ddim": "DDIM (η = 0)", "euler": "Euler ODE", "sde": "Euler–Maruyama SDE"}
# The schedule dtviz.samplers implements (DiT's linear betas); a diffusers scheduler config must match it.
LINEAR_SCHEDULE = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                       prediction_type="epsilon")


@dataclass
class SampleSettings:
    steps: int | None = None
    cfg_scale: float | None = None
    seed: int = 0
    sampler: str | None = None  # None = the family's default (SAMPLER_DEFAULTS); see Generator.sampler


def initial_noise(shape: tuple, seed: int, indices, device) -> torch.Tensor:
    """(len(indices), *shape) standard normal, row i drawn from (seed, indices[i]) alone."""
    rows = [torch.randn(shape, generator=torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i))) for i in indices]
    return torch.stack(rows).to(device)


def noise_generators(seed: int, indices) -> list[torch.Generator]:
    """One generator per row for a stochastic sampler's noise (samplers.randn_rows), seeded from (seed, index)
    alone like ``initial_noise`` but on a separate stream, so the SDE / DDPM noise of a sample does not depend
    on its batch and baseline and pruned runs share it."""
    return [torch.Generator().manual_seed(int(seed) * 1_000_003 + int(i) + (1 << 40)) for i in indices]


class DiffusersDenoiser(torch.nn.Module):
    """``model(x, t, y)`` around a diffusers DiT transformer, as DiTPipeline.__call__ calls it:
    ``transformer(x, timestep=t, class_labels=y).sample`` (2C channels with learned sigma, ε first)."""

    def __init__(self, transformer: torch.nn.Module):
        super().__init__()
        self.transformer = transformer
        cfg = transformer.config
        out_channels = getattr(transformer, "out_channels", None) or cfg.out_channels or cfg.in_channels
        self.config = SimpleNamespace(in_channels=int(cfg.in_channels), input_size=int(cfg.sample_size),
                                      learn_sigma=int(out_channels) == 2 * int(cfg.in_channels))
        self.num_classes = int(cfg.num_embeds_ada_norm)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.transformer(x, timestep=t, class_labels=y).sample


def check_scheduler(pipeline_path: str) -> bool:
    """The pipeline's scheduler/scheduler_config.json must describe DiT's linear ε schedule (LINEAR_SCHEDULE),
    which dtviz.samplers runs; a missing config means DiT's own schedule. Returns its ``clip_sample`` (diffusers'
    DDIMScheduler/DDPMScheduler default True: x̂0 clamped to [-1, 1]; False without a config, as DiT)."""
    path = os.path.join(pipeline_path, "scheduler", "scheduler_config.json")
    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DtvizInputError(f"expected JSON in {path!r}, but it could not be parsed ({err}).") from err
    for key, expected in LINEAR_SCHEDULE.items():
        value = config.get(key, expected) if isinstance(config, dict) else None
        same = value == expected if isinstance(expected, str) else isinstance(value, (int, float)) and abs(value - expected) < 1e-12
        if not same or config.get("trained_betas"):
            raise DtvizInputError(
                f"dtviz samples DiT's linear schedule (1000 steps, betas 1e-4..0.02, epsilon), but {path!r} sets "
                f"{key} = {value!r}; this pipeline offers analysis only.")
    clip = bool(config.get("clip_sample", True))
    if clip and config.get("clip_sample_range", 1.0) != 1.0:
        raise DtvizInputError(f"dtviz clips x0 to [-1, 1] only, but {path!r} sets clip_sample_range = "
                              f"{config['clip_sample_range']!r}; this pipeline offers analysis only.")
    return clip


def build_denoiser(source: Source) -> torch.nn.Module:
    """The network as ``model(x, t, y)``: a native source's DiT, or a diffusers pipeline's transformer wrapped."""
    if source.family.key == "diffusers":
        denoiser = DiffusersDenoiser(source.transformer)
        denoiser.clip_sample = check_scheduler(source.info.extra["path"])
        return denoiser
    return source.build_model()


class Generator:
    """Builds the model once; ``sample`` returns images in [0, 1] as (N, H, W, C) float32 numpy.

    Latent models (in_channels not 1 or 3) decode through a VAE: ``vae`` (a local AutoencoderKL folder, or a VA-VAE
    folder for LightningDiT, dtviz.vavae), else the one dtviz.vae.find_vae finds next to the checkpoint or in the
    Hugging Face cache.
    """

    def __init__(self, source: Source, vae: str | None = None):
        latent = bool(source.info.extra.get("latent"))
        if not source.info.can_sample and not (vae and latent):
            raise DtvizInputError(f"{source.info.name} cannot generate samples: {source.info.sample_note}")
        self.source = source
        self.model = build_denoiser(source)
        cfg = self.model.config
        self.vae = self._vae(vae) if cfg.in_channels not in (1, 3) else None
        family = source.family.key
        defaults = dict(SAMPLER_DEFAULTS.get(family, SAMPLER_DEFAULTS["dit"]))
        defaults.update(getattr(source, "sidecar", {}).get("sampler", {}))
        if family == "diffusers":
            defaults["guided_channels"] = cfg.in_channels
            defaults["clip_denoised"] = self.model.clip_sample
        if cfg.in_channels < 3:
            defaults["guided_channels"] = None
        self.defaults = defaults
        self.image_shape = (cfg.in_channels, cfg.input_size, cfg.input_size)
        self._global_masks: dict[tuple, np.ndarray] = {}
        # Held for the whole of every sample(): the pruning hooks live on the shared model.
        self._lock = threading.Lock()

    def _vae(self, vae: str | None):
        """The decoder for latent samples (dtviz.vae), or one DtvizInputError saying what is missing and where."""
        from dtviz.vae import find_vae, latent_channel_note, load_vae, missing_vae_note

        path = self.source.info.extra.get("path")
        found = find_vae(path, vae, latent_channels=self.model.config.in_channels)
        if found is None:
            raise DtvizInputError(f"{self.source.info.name}: {missing_vae_note(path)}")
        mismatch = latent_channel_note(found, self.model.config.in_channels)
        if mismatch:
            raise DtvizInputError(f"{self.source.info.name}: {mismatch}")
        return load_vae(found, self.source.device)

    def global_mask(self, spec: PruneSpec) -> np.ndarray:
        """(d,) keep-mask of ``spec`` from c̄ at t0 (dtviz.pruning.global_mask), computed once per selection."""
        key = (spec.mode, spec.tau, spec.k, spec.dims)
        if key not in self._global_masks:
            self._global_masks[key] = global_mask(self.source, spec)
        return self._global_masks[key]

    @property
    def sampler_names(self) -> tuple[str, ...]:
        """The samplers this model's time convention allows (families.TimeConvention.samplers), its default first."""
        names = self.source.family.convention.samplers
        return (self.defaults["name"],) + tuple(n for n in names if n != self.defaults["name"])

    def sampler(self, steps: int | None = None, name: str | None = None):
        """The sampler ``name`` (default: the family's) with ``steps`` network evaluations."""
        steps = int(steps or self.defaults["steps"])
        if steps < 1:
            raise DtvizInputError(f"steps must be at least 1; got {steps}.")
        conv = self.source.family.convention
        name = name or self.defaults["name"]
        if name not in self.sampler_names:
            raise DtvizInputError(f"{self.source.info.name} samples with {' or '.join(self.sampler_names)}; got {name!r}.")
        if name == "ddim":
            return DDIMSampler(steps=steps, clip_denoised=self.defaults.get("clip_denoised", False))
        if name == "ddpm":
            if steps > 1000:
                raise DtvizInputError(f"DDPM takes at most 1000 steps (one per training step); got {steps}.")
            return DDPMSampler(steps=steps, learned_sigma=self.model.config.learn_sigma,
                               clip_denoised=self.defaults.get("clip_denoised", False))
        if name == "sde":
            if steps < 2:
                raise DtvizInputError(f"the SDE sampler needs at least 2 steps; got {steps}.")
            return EulerMaruyamaSampler(steps=steps, t_start=conv.noise_at, t_end=conv.data_at)
        return EulerFlowSampler(steps=steps, t_start=conv.noise_at, t_end=conv.data_at,
                                timestep_shift=self.defaults.get("timestep_shift", 0.0))

    @torch.no_grad()
    def sample(self, labels, settings: SampleSettings = SampleSettings(), indices=None, on_step=None,
               batch_size: int = 256, prune: PruneSpec | None = None) -> np.ndarray:
        """``prune``: zero dims of c during sampling (dtviz.pruning); the noise is the same as without it.
        Safe to call from several threads at once (they take turns on the model)."""
        with self._lock:
            if prune is None:
                return self._sample(labels, settings, indices, on_step, batch_size)
            mask = self.global_mask(prune) if prune.mask == "global" else None
            with pruned(self.model, prune, mask=mask, null_class=self.source.num_classes) as pruner:
                return self._sample(labels, settings, indices, chain_steps(pruner.on_step, on_step), batch_size)

    @torch.no_grad()
    def _sample(self, labels, settings: SampleSettings, indices, on_step, batch_size: int) -> np.ndarray:
        """``sample`` without the lock and without pruning hooks of its own (the caller holds the lock)."""
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=self.source.device)
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.source.num_classes):
            raise DtvizInputError(f"class ids must lie in 0..{self.source.num_classes - 1}; got {labels.tolist()[:5]}…")
        indices = np.arange(len(labels)) if indices is None else np.asarray(indices)
        cfg_scale = float(self.defaults["cfg_scale"] if settings.cfg_scale is None else settings.cfg_scale)
        denoise = guided_denoiser(self.model, self.source.num_classes, cfg_scale,
                                  self.defaults.get("guided_channels"), self.defaults.get("interval"),
                                  scale_pow=self.defaults.get("scale_pow"))
        sampler = self.sampler(settings.steps, settings.sampler)
        out = []
        for i in range(0, len(labels), batch_size):
            noise = initial_noise(self.image_shape, settings.seed, indices[i:i + batch_size], self.source.device)
            x = sampler.sample(denoise, noise, labels[i:i + batch_size], on_step=on_step,
                               generator=noise_generators(settings.seed, indices[i:i + batch_size]))
            out.append(self._to_images(x))
        if out:
            return np.concatenate(out)
        return self._to_images(torch.zeros((1, *self.image_shape), device=self.source.device))[:0]

    def _to_images(self, x: torch.Tensor) -> np.ndarray:
        """(B, C, h, w) samples -> (B, H, W, C') in [0, 1]: through the VAE for latents (dtviz.vae.decode)."""
        if self.vae is not None:
            from dtviz.vae import decode

            return decode(self.vae, x)
        return ((x.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()


def to_uint8(images: np.ndarray) -> np.ndarray:
    return (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)


def sample_readout(generator: Generator, labels, settings: SampleSettings, prune: PruneSpec | None = None,
                   baseline: np.ndarray | None = None, classifier=None) -> dict:
    """One run of the live pruning view: the samples and their read-outs.

        images    (N, H, W, C) float32 in [0, 1]
        removed   (count, share of d) of the dims ``prune`` zeroes (pruning.spec_removed_dims; (0, 0.0) unpruned)
        drift     {"mse", "psnr"} against ``baseline`` (quality.pixel_drift), None without a baseline
        accuracy  share of samples ``classifier`` names as their class (quality.class_accuracy), None without one

    The baseline is passed in (computed once, cached by the caller), so a new pruning costs one sampling run.
    """
    from dtviz.pruning import spec_removed_dims
    from dtviz.quality import class_accuracy, pixel_drift

    labels = np.asarray(labels, dtype=np.int64)
    images = generator.sample(labels, settings, prune=prune)
    removed = (0, 0.0) if prune is None else spec_removed_dims(generator.source, prune, classes=np.unique(labels))
    return {"images": images, "removed": removed,
            "drift": None if baseline is None else pixel_drift(baseline, images),
            "accuracy": None if classifier is None else class_accuracy(images, labels, classifier)}

"""Sampling images from a source: the family's sampler, CFG, deterministic noise, optional pruning.

Noise is drawn per sample from ``seed`` and the sample's index, so a sample does not depend on which
batch (or which process of a sweep) computes it, and baseline and pruned runs share it exactly.

A ``Generator`` may be shared between threads (the dashboard caches one per model for all sessions):
pruning installs hooks on its model, so every ``sample`` call holds the generator's lock from start to
end; concurrent calls run one after the other and each sees only its own pruning.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

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
    "mdt": dict(name="ddim", steps=50, cfg_scale=3.8, guided_channels=None),
    "sit": dict(name="euler", steps=50, cfg_scale=4.0, guided_channels=3),
    "lightningdit": dict(name="euler", steps=50, cfg_scale=4.0, guided_channels=None),
    "repa": dict(name="euler", steps=50, cfg_scale=1.8, guided_channels=None, interval=(0.0, 0.7)),
    "mg": dict(name="euler", steps=50, cfg_scale=1.0, guided_channels=None),
}


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


class Generator:
    """Builds the model once; ``sample`` returns images in [0, 1] as (N, H, W, C) float32 numpy."""

    def __init__(self, source: Source):
        if not source.info.can_sample:
            raise DtvizInputError(f"{source.info.name} cannot generate samples: {source.info.sample_note}")
        self.source = source
        self.model = source.build_model()
        cfg = self.model.config
        if cfg.in_channels not in (1, 3):
            raise DtvizInputError(
                f"{source.info.name} generates {cfg.in_channels}-channel latents, which need a VAE decoder; "
                "latent decoding is not available yet, so this model offers analysis only."
            )
        family = source.family.key
        defaults = dict(SAMPLER_DEFAULTS.get(family, SAMPLER_DEFAULTS["dit"]))
        defaults.update(getattr(source, "sidecar", {}).get("sampler", {}))
        if cfg.in_channels < 3:
            defaults["guided_channels"] = None
        self.defaults = defaults
        self.image_shape = (cfg.in_channels, cfg.input_size, cfg.input_size)
        self._global_masks: dict[tuple, np.ndarray] = {}
        # Held for the whole of every sample(): the pruning hooks live on the shared model.
        self._lock = threading.Lock()

    def global_mask(self, spec: PruneSpec) -> np.ndarray:
        """(d,) keep-mask of ``spec`` from c̄ at t0 (dtviz.pruning.global_mask), computed once per selection."""
        key = (spec.mode, spec.tau, spec.k, spec.dims)
        if key not in self._global_masks:
            self._global_masks[key] = global_mask(self.source, spec)
        return self._global_masks[key]

    def sampler(self, steps: int | None = None, name: str | None = None):
        """The sampler ``name`` (default: the family's) with ``steps`` network evaluations."""
        steps = int(steps or self.defaults["steps"])
        if steps < 1:
            raise DtvizInputError(f"steps must be at least 1; got {steps}.")
        conv = self.source.family.convention
        name = name or self.defaults["name"]
        allowed = ("ddim", "ddpm") if conv.integer else ("euler", "sde")
        if name not in allowed:
            raise DtvizInputError(f"{self.source.info.name} samples with {' or '.join(allowed)}; got {name!r}.")
        if name == "ddim":
            return DDIMSampler(steps=steps)
        if name == "ddpm":
            if steps > 1000:
                raise DtvizInputError(f"DDPM takes at most 1000 steps (one per training step); got {steps}.")
            return DDPMSampler(steps=steps, learned_sigma=self.model.config.learn_sigma)
        if name == "sde":
            if steps < 2:
                raise DtvizInputError(f"the SDE sampler needs at least 2 steps; got {steps}.")
            return EulerMaruyamaSampler(steps=steps, t_start=conv.noise_at, t_end=conv.data_at)
        return EulerFlowSampler(steps=steps, t_start=conv.noise_at, t_end=conv.data_at)

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
                                  self.defaults.get("guided_channels"), self.defaults.get("interval"))
        sampler = self.sampler(settings.steps, settings.sampler)
        out = []
        for i in range(0, len(labels), batch_size):
            noise = initial_noise(self.image_shape, settings.seed, indices[i:i + batch_size], self.source.device)
            x = sampler.sample(denoise, noise, labels[i:i + batch_size], on_step=on_step,
                               generator=noise_generators(settings.seed, indices[i:i + batch_size]))
            out.append(((x.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, *self.image_shape[1:], self.image_shape[0]), np.float32)


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

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
from types import SimpleNamespace

import numpy as np
import torch

from dtviz.errors import DtvizInputError
from dtviz.sampling.pipeline import PipelineSchedulerSampler
from dtviz.sources.schedulers import check_steps
from dtviz.pruning.spec import PruneSpec, global_mask
from dtviz.pruning.hooks import chain_steps, pruned
from dtviz.sampling.flow import FLOW_SAMPLER_OPTIONS, flow_sampler, parse_sampler_spec
from dtviz.sampling.queue import CancelToken, FairQueue
from dtviz.sampling.samplers import DDIMSampler, DDPMSampler, guided_denoiser
from dtviz.sampling.settings import SampleSettings
from dtviz.sampling.seeding import check_convention, check_noise, initial_noise, noise_generators, release_draws
from dtviz.sources.base import Source

# Family defaults, as in each family's own sample.py (DiT: p_sample_loop, --num-sampling-steps 250).
# ``name``: "euler", "heun", "ode" (torchdiffeq) or "sde" for velocity families (dtviz.sampling.flow), "ddim" or
# "ddpm" for ε families.
SAMPLER_DEFAULTS = {
    "dit": dict(name="ddpm", steps=250, cfg_scale=4.0, guided_channels=3),
    # MDT scripts/image_sample.py (the README's FID run): p_sample_loop, 250 steps, cfg_scale 3.8, --scale_pow 4 for
    # forward_with_cfg's power-cosine schedule, which guides model_out[:, :3] (masked_diffusion/models.py).
    "mdt": dict(name="ddpm", steps=250, cfg_scale=3.8, guided_channels=3, scale_pow=4.0),
    # SiT sample.py ODE (its README's default mode): dopri5, atol 1e-6, rtol 1e-3 on 250 grid points
    # (--num-sampling-steps); SDE: 250 steps; --cfg-scale 4.0 on model_out[:, :3] (models.py forward_with_cfg).
    "sit": dict(name="ode", steps=250, cfg_scale=4.0, guided_channels=3),
    # LightningDiT configs/reproductions/lightningdit_xl_vavae_f16d32_800ep_cfg.yaml (the FID-1.35 model) via inference.py:
    # Euler ODE on linspace(0, 1, num_sampling_steps=250), i.e. 249 evaluations, timestep_shift 0.3
    # (transport/integrators.py ode); cfg 6.7 on model_out[:, :3] only and none while t < cfg_interval_start 0.125
    # (models/lightningdit.py forward_with_cfg). The 64-epoch model's config: cfg 10.0, cfg_interval_start 0.10.
    "lightningdit": dict(name="euler", steps=249, cfg_scale=6.7, guided_channels=3, interval=(0.125, 1.0),
                         timestep_shift=0.3),
    "repa": dict(name="euler", steps=50, cfg_scale=1.8, guided_channels=None, interval=(0.0, 0.7)),
    "mg": dict(name="euler", steps=50, cfg_scale=1.0, guided_channels=None),
    # diffusers DiTPipeline.__call__: 50 steps of the pipeline's own scheduler object (dtviz.sampling.pipeline; DDIM in
    # facebook/DiT-*), guidance_scale 4.0 on all in_channels ε channels (set in Generator: latent_channels =
    # transformer.config.in_channels).
    "diffusers": dict(name="scheduler", steps=50, cfg_scale=4.0, guided_channels=None),
}
SAMPLER_LABELS = {"ddpm": "DDPM (ancestral)", "ddim": "DDIM (η = 0)", "euler": "Euler ODE", "sde": "Euler–Maruyama SDE",
                  "scheduler": "the pipeline's own scheduler", "heun": "Heun ODE (REPA)",
                  "ode": "adaptive ODE (dopri5, SiT)", "pipeline": "the text-to-image pipeline itself (its scheduler)"}
# The schedule DiT's samplers in dtviz.sampling.samplers implement (linear betas); a diffusers pipeline sampled with them
# (--sampler ddim / ddpm instead of its own scheduler) must declare it.
LINEAR_SCHEDULE = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                       prediction_type="epsilon")


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


def check_scheduler(pipeline_path: str) -> None:
    """Before DiT's own DDIM / DDPM (dtviz.sampling.samplers, DiT's settings: no clipping) run a diffusers pipeline: its
    scheduler/scheduler_config.json must describe DiT's linear ε schedule (LINEAR_SCHEDULE); a missing config
    means DiT's own schedule. The pipeline's own scheduler (sampler "scheduler") has no such limit."""
    path = os.path.join(pipeline_path, "scheduler", "scheduler_config.json")
    if not os.path.isfile(path):
        return
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
                f"DiT's own samplers run DiT's linear schedule (1000 steps, betas 1e-4..0.02, epsilon), but the "
                f"pipeline's scheduler config sets {key} = {value!r}; sample it with --sampler scheduler (its own).")


def build_denoiser(source: Source) -> torch.nn.Module:
    """The network as ``model(x, t, y)``: a native source's DiT, or a diffusers pipeline's transformer wrapped."""
    if source.family.key == "diffusers":
        return DiffusersDenoiser(source.transformer)
    return source.build_model()


class Generator:
    """Builds the model once; ``sample`` returns images in [0, 1] as (N, H, W, C) float32 numpy.

    Latent models (in_channels not 1 or 3) decode through a VAE: ``vae`` (a local AutoencoderKL folder, or a VA-VAE
    folder for LightningDiT, dtviz.sources.vavae), else the one dtviz.sources.vae.find_vae finds next to the checkpoint or in the
    Hugging Face cache.
    """

    def __new__(cls, source: Source, vae: str | None = None):
        """A text-to-image pipeline samples through the pipeline itself: dtviz.sampling.t2i.PipelineGenerator,
        which has this class's interface."""
        if getattr(source.info, "extra", {}).get("rows") == "prompts":
            from dtviz.sampling.t2i import PipelineGenerator

            return PipelineGenerator(source, vae=vae)
        return super().__new__(cls)

    def __init__(self, source: Source, vae: str | None = None):
        latent = bool(source.info.extra.get("latent"))
        if not source.info.can_sample and not (vae and latent):
            raise DtvizInputError(f"{source.info.name} cannot generate samples: {source.info.sample_note}")
        self.source = source
        self.model = build_denoiser(source)
        cfg = self.model.config
        self.vae = self._vae(vae) if cfg.in_channels not in (1, 3) else None
        defaults = sampler_defaults(source)
        if source.family.key == "diffusers":
            defaults["guided_channels"] = cfg.in_channels
        if cfg.in_channels < 3:
            defaults["guided_channels"] = None
        if not source.info.extra.get("null_row", True):  # trained with class_dropout_prob = 0: nothing to guide with
            defaults["cfg_scale"] = 1.0
        self.defaults = defaults
        self.image_shape = (cfg.in_channels, cfg.input_size, cfg.input_size)
        self._global_masks: dict[tuple, np.ndarray] = {}
        # Held for the whole of every sample(): the pruning hooks live on the shared model. First come, first
        # served (dtviz.sampling.queue), so no caller waits behind later ones; a waiter can see its position.
        self._lock = FairQueue()

    def _vae(self, vae: str | None):
        """The decoder for latent samples (dtviz.sources.vae), or one DtvizInputError saying what is missing and where."""
        from dtviz.sources.vae import find_vae, latent_channel_note, load_vae, missing_vae_note

        path = self.source.info.extra.get("path")
        found = find_vae(path, vae, latent_channels=self.model.config.in_channels)
        if found is None:
            raise DtvizInputError(f"{self.source.info.name}: {missing_vae_note(path)}")
        mismatch = latent_channel_note(found, self.model.config.in_channels)
        if mismatch:
            raise DtvizInputError(f"{self.source.info.name}: {mismatch}")
        return load_vae(found, self.source.device)

    def global_mask(self, spec: PruneSpec) -> np.ndarray:
        """(d,) keep-mask of ``spec`` from c̄ at t0 (dtviz.pruning.spec.global_mask), computed once per selection."""
        key = (spec.mode, spec.tau, spec.k, spec.dims)
        if key not in self._global_masks:
            self._global_masks[key] = global_mask(self.source, spec)
        return self._global_masks[key]

    @property
    def sampler_names(self) -> tuple[str, ...]:
        """The samplers this model's time convention allows (families.TimeConvention.samplers), its default first."""
        return sampler_names(self.source, self.defaults)

    def sampler(self, steps: int | None = None, name: str | None = None):
        """The sampler ``name`` (default: the family's) with ``steps`` network evaluations; for flow models
        "name:key=value,..." sets the release's options (dtviz.sampling.flow.FLOW_SAMPLER_OPTIONS)."""
        return make_sampler(self.source, self.defaults, steps, name, self.model.config.learn_sigma)

    @torch.no_grad()
    def sample(self, labels, settings: SampleSettings = SampleSettings(), indices=None, on_step=None,
               batch_size: int = 256, prune: PruneSpec | None = None, noise: torch.Tensor | None = None,
               cancel: CancelToken | None = None, on_wait=None, client=None) -> np.ndarray:
        """``prune``: zero dims of c during sampling (dtviz.pruning.spec); the noise is the same as without it.
        ``noise``: the initial noise, (len(labels), C, H, W), instead of the seed's (e.g. a release's saved z).
        Safe to call from several threads at once: they take turns on the model in arrival order, ``on_wait(ahead)``
        told how many callers are ahead; ``cancel`` (dtviz.sampling.queue.CancelToken) is checked while waiting and
        before every network evaluation, and stops the run with ``Cancelled``. ``client``: who asks (a dashboard
        visitor): clients take turns, one waiting run each (dtviz.sampling.queue.FairQueue)."""
        if cancel is not None:
            on_step = chain_steps(cancel.check, on_step)
        check_pruned_guidance(settings, prune)
        with self._lock.turn(cancel, on_wait, client):
            if prune is None:
                return self._sample(labels, settings, indices, on_step, batch_size, noise)
            if getattr(self.sampler(settings.steps, settings.sampler), "adaptive", False) and prune.schedule.startswith("last"):
                raise DtvizInputError(f"the adaptive ODE chooses its number of network evaluations while it runs, so "
                                      f"schedule {prune.schedule!r} has no last steps to count; use every or first, or a "
                                      f"fixed-step sampler (euler, heun, sde).")
            mask = self.global_mask(prune) if prune.mask == "global" else None
            with pruned(self.model, prune, mask=mask, null_class=self.source.num_classes) as pruner:
                weak = None
                if settings.pruned_guidance is not None:
                    pruner.enabled = False  # c stays whole; only the extra forward of pruned-c guidance sees P(c)
                    weak = self._pruned_forward(pruner)
                return self._sample(labels, settings, indices, chain_steps(pruner.on_step, on_step), batch_size, noise,
                                    weak=weak)

    @torch.no_grad()
    def estimate_seconds(self, samples: int, settings: SampleSettings = SampleSettings(), batch_size: int = 256,
                         runs: int = 1) -> float:
        """Seconds ``runs`` sampling runs of ``samples`` would take here: one timed network forward on a guided batch
        (doubled for CFG), times the sampler's evaluations and the batches. The adaptive ODE counts its grid."""
        if samples <= 0:
            return 0.0
        import time

        rows = min(samples, batch_size)
        cfg_scale = float(self.defaults["cfg_scale"] if settings.cfg_scale is None else settings.cfg_scale)
        width = 2 * rows if cfg_scale != 1.0 else rows
        x = torch.zeros((width, *self.image_shape), device=self.source.device)
        t = torch.full((width,), float(self.source.t0 or 0.0), device=self.source.device)
        y = torch.zeros((width,), dtype=torch.long, device=self.source.device)
        self.model(x, t, y)  # warm-up
        start = time.perf_counter()
        self.model(x, t, y)
        per_forward = time.perf_counter() - start
        evaluations = len(self.sampler(settings.steps, settings.sampler).timesteps())
        return per_forward * evaluations * -(-samples // batch_size) * runs

    def _pruned_forward(self, pruner):
        """The model run with c pruned, for pruned-c guidance: (x, t, y) -> D_P(c), None where the spec's schedule
        leaves c whole (then P(c) = c and the guidance term is 0)."""
        def weak(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor):
            pruner.enabled = True
            try:
                return self.model(x, t, y) if pruner.active() else None
            finally:
                pruner.enabled = False
        return weak

    @torch.no_grad()
    def _sample(self, labels, settings: SampleSettings, indices, on_step, batch_size: int, noise=None,
                weak=None) -> np.ndarray:
        """``sample`` without the lock and without pruning hooks of its own (the caller holds the lock)."""
        labels = torch.as_tensor(np.asarray(labels, dtype=np.int64), device=self.source.device)
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.source.num_classes):
            raise DtvizInputError(f"class ids must lie in 0..{self.source.num_classes - 1}; got {labels.tolist()[:5]}…")
        indices = np.arange(len(labels)) if indices is None else np.asarray(indices)
        cfg_scale = float(self.defaults["cfg_scale"] if settings.cfg_scale is None else settings.cfg_scale)
        if cfg_scale != 1.0 and not self.source.info.extra.get("null_row", True):
            raise DtvizInputError(
                f"classifier-free guidance needs a null (CFG) label row, and this model's table has none (read as "
                f"{self.source.num_classes} classes without one); sample with cfg 1, or pass --null-row yes if its last "
                f"row is the null row.")
        denoise = guided_denoiser(self.model, self.source.num_classes, cfg_scale,
                                  self.defaults.get("guided_channels"), self.defaults.get("interval"),
                                  scale_pow=self.defaults.get("scale_pow"), weak=weak,
                                  weak_scale=float(settings.pruned_guidance or 0.0))
        sampler = self.sampler(settings.steps, settings.sampler)
        n, device, step_noise = len(labels), self.source.device, None
        check_convention(settings.seed_convention, self.source.family.key)
        if noise is not None:
            noise = check_noise(noise, n, self.image_shape, device)
        if settings.seed_convention == "release":  # one batch, drawn as the release script draws (dtviz.sampling.seeding)
            if not np.array_equal(indices, np.arange(n)):
                raise DtvizInputError("the release seed convention draws one batch for all samples; it takes no indices.")
            z, step_noise = release_draws(self.source.family.key, self.model, self.image_shape, n, settings.seed, device,
                                          self.source.num_classes, cfg_scale=cfg_scale)
            noise, batch_size = (z if noise is None else noise), max(n, 1)
        out = []
        for i in range(0, n, batch_size):
            rows = indices[i:i + batch_size]
            x0 = noise[i:i + batch_size] if noise is not None else initial_noise(self.image_shape, settings.seed, rows, device)
            x = sampler.sample(denoise, x0, labels[i:i + batch_size], on_step=on_step,
                               generator=step_noise or noise_generators(settings.seed, rows))
            out.append(self._to_images(x))
        if out:
            return np.concatenate(out)
        return self._to_images(torch.zeros((1, *self.image_shape), device=self.source.device))[:0]

    def _to_images(self, x: torch.Tensor) -> np.ndarray:
        """(B, C, h, w) samples -> (B, H, W, C') in [0, 1]: through the VAE for latents (dtviz.sources.vae.decode)."""
        if self.vae is not None:
            from dtviz.sources.vae import decode

            return decode(self.vae, x)
        return ((x.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy()


# --------------------------------------------------------------------------- samplers without a model

def sampler_defaults(source: Source) -> dict:
    """The family's release defaults (SAMPLER_DEFAULTS), a dtviz sidecar's "sampler" entry over them; a diffusers
    pipeline without a scheduler config samples with DiT's own DDIM on DiT's schedule."""
    family = source.family.key
    defaults = dict(SAMPLER_DEFAULTS.get(family, SAMPLER_DEFAULTS["dit"]))
    defaults.update(getattr(source, "sidecar", {}).get("sampler", {}))
    if family == "diffusers" and getattr(source, "scheduler", None) is None:
        defaults["name"] = "ddim"
    return defaults


def sampler_names(source: Source, defaults: dict) -> tuple[str, ...]:
    """The samplers the source's time convention allows (families.TimeConvention.samplers), its default first."""
    names = source.family.convention.samplers
    if "scheduler" in names and getattr(source, "scheduler", None) is None:
        names = tuple(n for n in names if n != "scheduler")
    return (defaults["name"],) + tuple(n for n in names if n != defaults["name"])


def make_sampler(source: Source, defaults: dict, steps: int | None = None, name: str | None = None,
                 learn_sigma: bool = False):
    """The sampler ``name`` (default ``defaults["name"]``) with ``steps`` network evaluations, for ``source``'s
    time convention; no model needed (``learn_sigma`` only matters to DDPM's variance)."""
    steps = int(steps or defaults["steps"])
    if steps < 1:
        raise DtvizInputError(f"steps must be at least 1; got {steps}.")
    conv = source.family.convention
    name, options = parse_sampler_spec(name)
    name = name or defaults["name"]
    if options and name not in FLOW_SAMPLER_OPTIONS:
        raise DtvizInputError(f"the {name} sampler takes no options; got {', '.join(options)}.")
    allowed = sampler_names(source, defaults)
    if name not in allowed:
        raise DtvizInputError(f"{source.info.name} samples with {' or '.join(allowed)}; got {name!r}.")
    if name == "scheduler":
        check_steps(source.scheduler, steps)
        return PipelineSchedulerSampler(source.scheduler, steps)
    if source.family.key == "diffusers":
        check_scheduler(source.info.extra["path"])
    if name == "ddim":
        sampler = DDIMSampler(steps=steps, clip_denoised=defaults.get("clip_denoised", False))
        try:
            sampler.timesteps()
        except ValueError as err:
            raise DtvizInputError(f"{err}; pick one of those step counts.") from None
        return sampler
    if name == "ddpm":
        if steps > 1000:
            raise DtvizInputError(f"DDPM takes at most 1000 steps (one per training step); got {steps}.")
        return DDPMSampler(steps=steps, learned_sigma=learn_sigma, clip_denoised=defaults.get("clip_denoised", False))
    return flow_sampler(name, steps, options, conv.noise_at, conv.data_at, defaults.get("timestep_shift", 0.0))


def schedule_timesteps(source: Source, steps: int | None = None, name: str | None = None) -> list[float]:
    """The t of every network evaluation of the source's default sampler (or ``name`` / ``steps``), noise first,
    in the family's units: the source's own sampling schedule. t0 is its first entry."""
    return [float(t) for t in make_sampler(source, sampler_defaults(source), steps, name).timesteps()]


def check_pruned_guidance(settings: SampleSettings, prune: PruneSpec | None) -> None:
    """Pruned-c guidance needs a finite weight and a pruning spec to define P(c); one sentence otherwise."""
    w = settings.pruned_guidance
    if w is None:
        return
    if isinstance(w, bool) or not isinstance(w, (int, float)) or not np.isfinite(w):
        raise DtvizInputError(f"the pruned-c guidance weight must be a finite number; got {w!r}.")
    if prune is None:
        raise DtvizInputError("pruned-c guidance guides with a pruned c, so it needs a pruning spec (mode, τ or k); none was given.")


def to_uint8(images: np.ndarray) -> np.ndarray:
    return (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8)

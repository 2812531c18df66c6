"""Sampling a text-to-image pipeline (SD3 / Flux) through the pipeline itself, optionally with c pruned.

The pipeline's own ``__call__`` runs: its scheduler and shift, its encode_prompt (CLIP + T5; SD3 may run without
T5, as diffusers allows with ``text_encoder_3=None``), its guidance (SD3: CFG on a doubled batch [negative;
prompt]; Flux-dev: the embedded guidance, no doubled batch), its VAE decoding. dtviz supplies only:

    latents   per-row noise drawn from (seed, sample index) alone (dtviz.sampling.seeding.initial_noise), so a sample
              does not depend on its batch and baseline and pruned runs share it; Flux's are packed with the
              pipeline's own _pack_latents
    progress  ``on_step(step, num_steps)`` before each step (callback_on_step_end of the step before)
    pruning   a forward hook on ``transformer.time_text_embed`` (dtviz.pruning.hooks.pruned_output): its output c is
              what every adaLN layer (norm1, norm1_context, single blocks' norm, norm_out) reads

The transformer, T5 and the VAE are loaded on the first sample, not for analysis. On CPU a real SD3/Flux image
takes minutes: pass fewer steps and a smaller ``size`` (SampleSettings).
"""
from __future__ import annotations

import os

from types import SimpleNamespace

import numpy as np
import torch

from dtviz.errors import DtvizInputError
from dtviz.sampling.settings import SampleSettings
from dtviz.sampling.queue import FairQueue
from dtviz.sampling.seeding import initial_noise
from dtviz.pruning.spec import PruneSpec, global_mask
from dtviz.pruning.hooks import chain_steps, pruned_output
from dtviz.sources.t2i_pipeline import pipeline_class, quiet_loading, read_json

SAMPLER_NAME = "pipeline"
NULL_ROW = -1  # the label of SD3's negative-prompt (CFG) rows


class PipelineGenerator:
    """The ``dtviz.sampling.generate.Generator`` interface (``sample``, ``defaults``, ``sampler_names``, ``global_mask``) for a
    TextToImageSource; ``Generator(source)`` returns one. Thread-safe like Generator: one lock around every sample."""

    sampler_names = (SAMPLER_NAME,)

    def __init__(self, source, vae: str | None = None, use_t5: bool = True):
        if not source.info.can_sample:
            raise DtvizInputError(f"{source.info.name} cannot generate samples: {source.info.sample_note}")
        if vae:
            raise DtvizInputError("a text-to-image pipeline decodes with its own vae/; --vae is for class-conditional models.")
        self.source = source
        d = source.defaults
        self.defaults = {"name": SAMPLER_NAME, "steps": d["steps"], "cfg_scale": d["guidance"],
                         "height": d["height"], "width": d["width"]}
        self.use_t5 = use_t5
        self._pipe = None
        self._global_masks: dict[tuple, np.ndarray] = {}
        self._lock = FairQueue()  # visitors take turns on the shared pipeline (dtviz.sampling.queue)

    # ------------------------------------------------------------------------------------ set-up
    def sampler(self, steps: int | None = None, name: str | None = None):
        """What a sweep reports: the pipeline's own scheduler with ``steps`` steps."""
        if name not in (None, SAMPLER_NAME):
            raise DtvizInputError(f"{self.source.info.name} samples with its own pipeline scheduler only; got {name!r}.")
        steps = int(steps or self.defaults["steps"])
        if steps < 1:
            raise DtvizInputError(f"steps must be at least 1; got {steps}.")
        return SimpleNamespace(name=SAMPLER_NAME, steps=steps)

    def global_mask(self, spec: PruneSpec) -> np.ndarray:
        key = (spec.mode, spec.tau, spec.k, spec.dims)
        if key not in self._global_masks:
            self._global_masks[key] = global_mask(self.source, spec)
        return self._global_masks[key]

    def pipeline(self):
        """The full pipeline, loaded once: the source's CLIP encoders reused; the transformer, T5 and the VAE read now."""
        if self._pipe is None:
            src = self.source
            clip = {name: getattr(src.clip, name) for name in src.kind.clip}
            index = read_json(os.path.join(src.path, "model_index.json"), "the pipeline index")
            skip = {name: None for name in ("image_encoder", "feature_extractor") if name in index}
            if src.kind.family == "sd3" and (not self.use_t5 or not os.path.isdir(os.path.join(src.path, "text_encoder_3"))):
                skip.update(text_encoder_3=None, tokenizer_3=None)  # diffusers then feeds zeros in T5's place
            try:
                with quiet_loading():
                    pipe = pipeline_class(src.kind).from_pretrained(src.path, local_files_only=True,
                                                                    torch_dtype=torch.float32, **clip, **skip)
            except Exception as err:
                first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
                raise DtvizInputError(f"{src.info.name}: sampling needs the transformer, text encoders and VAE of the "
                                      f"pipeline folder, but diffusers could not load them ({first}).") from None
            pipe.set_progress_bar_config(disable=True)
            self._pipe = pipe.to(src.device)
        return self._pipe

    # ------------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def sample(self, labels, settings: SampleSettings = SampleSettings(), indices=None, on_step=None,
               batch_size: int = 4, prune: PruneSpec | None = None, noise: torch.Tensor | None = None,
               cancel=None, on_wait=None, client=None) -> np.ndarray:
        """(N, H, W, 3) float32 in [0, 1] for prompt rows ``labels``; ``prune`` zeroes dims of c as in dtviz.pruning.spec;
        ``noise``: (N, *latent shape) initial latents instead of the seed's (SD3: (C, h, w); Flux: unpacked (C, h, w))."""
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        n = self.source.num_classes
        if settings.pruned_guidance is not None:  # the pipeline's own __call__ runs the forwards: no extra branch
            raise DtvizInputError("pruned-c guidance runs with class-conditional DiT-family models and diffusers DiT "
                                  "pipelines; a text-to-image pipeline samples through its own __call__, which has no "
                                  "place for the extra forward.")
        if labels.size and (labels.min() < 0 or labels.max() >= n):
            raise DtvizInputError(f"prompt rows must lie in 0..{n - 1}; got {labels.tolist()[:5]}.")
        indices = np.arange(len(labels)) if indices is None else np.asarray(indices)
        if noise is not None and len(noise) != len(labels):
            raise DtvizInputError(f"expected one initial noise per sample ({len(labels)}), but got {len(noise)}.")
        if cancel is not None:
            on_step = chain_steps(cancel.check, on_step)
        with self._lock.turn(cancel, on_wait, client):
            pipe = self.pipeline()
            if prune is None:
                return self._sample(pipe, labels, settings, indices, on_step, batch_size, None, noise)
            mask = self.global_mask(prune) if prune.mask == "global" else None
            with pruned_output(pipe.transformer.time_text_embed, prune, mask=mask, null_label=NULL_ROW) as pruner:
                return self._sample(pipe, labels, settings, indices, chain_steps(pruner.on_step, on_step), batch_size,
                                    pruner, noise)

    def size(self, settings: SampleSettings) -> tuple[int, int]:
        """(height, width): the pipeline's default, or ``settings.size`` rounded down to what the pipeline accepts."""
        size = getattr(settings, "size", None)
        if not size:
            return self.defaults["height"], self.defaults["width"]
        unit = self.source.defaults["vae_scale_factor"] * 2  # both: 2×2 patches of the latent grid
        size = int(size) // unit * unit
        if size < unit:
            raise DtvizInputError(f"the image size must be at least {unit} px for this pipeline; got {settings.size}.")
        return size, size

    def _sample(self, pipe, labels, settings, indices, on_step, batch_size, pruner, noise=None) -> np.ndarray:
        steps = self.sampler(settings.steps).steps
        guidance = float(self.defaults["cfg_scale"] if settings.cfg_scale is None else settings.cfg_scale)
        height, width = self.size(settings)
        out = []
        for start in range(0, len(labels), batch_size):
            rows, idx = labels[start:start + batch_size], indices[start:start + batch_size]
            given = None if noise is None else torch.as_tensor(noise[start:start + batch_size], dtype=torch.float32)
            latents = self.initial_latents(pipe, height, width, settings.seed, idx, given)
            if pruner is not None:
                doubled = self.source.kind.family == "sd3" and guidance > 1  # SD3: [negative; prompt] in one batch
                pruner.set_rows(np.concatenate([np.full(len(rows), NULL_ROW), rows]) if doubled else rows)

            def callback(_pipe, i, _t, kwargs):
                if on_step is not None and i + 1 < steps:
                    on_step(i + 1, steps)
                return kwargs

            if on_step is not None:
                on_step(0, steps)
            images = pipe(prompt=[self.source.prompts[i] for i in rows], num_inference_steps=steps,
                          guidance_scale=guidance, height=height, width=width, latents=latents, output_type="np",
                          callback_on_step_end=callback).images
            out.append(np.asarray(images, dtype=np.float32))
        return np.concatenate(out) if out else np.zeros((0, height, width, 3), np.float32)

    def initial_latents(self, pipe, height: int, width: int, seed: int, idx, given=None) -> torch.Tensor:
        """Per-row noise in the pipeline's latent layout (prepare_latents' shape; Flux packed as it packs)."""
        vsf = self.source.defaults["vae_scale_factor"]
        channels = pipe.transformer.config.in_channels
        flux = self.source.kind.family == "flux"
        c = channels // 4 if flux else channels
        h, w = (2 * (height // (vsf * 2)), 2 * (width // (vsf * 2))) if flux else (height // vsf, width // vsf)
        if given is not None and tuple(given.shape[1:]) != (c, h, w):
            raise DtvizInputError(f"expected initial noise of shape (N, {c}, {h}, {w}) at {height}×{width} px, but got "
                                  f"{tuple(given.shape)}.")
        noise = initial_noise((c, h, w), seed, idx, self.source.device) if given is None else given.to(self.source.device)
        return pipe._pack_latents(noise, len(idx), c, h, w) if flux else noise

"""Text-to-image diffusers pipelines: rows are prompts, c is what the transformer's own embedder forms.

    StableDiffusion3Pipeline (SD3, SD3.5)  c = transformer.time_text_embed(t, pooled)
                                           pooled = CLIP-L pooled ⊕ CLIP-G pooled (the pipeline's own
                                           _get_clip_prompt_embeds, as its encode_prompt concatenates them)
    FluxPipeline (dev / schnell)           c = transformer.time_text_embed(t, g, pooled)  (dev: guidance
                                           embedding, g = guidance_scale·1000; schnell: time_text_embed(t, pooled))
                                           pooled = CLIP-L pooled output
    PixArt-α/Σ, Sana                       c = adaln_single.emb(t) / time_embed.emb(t): the timestep alone (text
                                           enters by cross-attention), so c is the same for every prompt

Every adaLN layer (each block's norm1 / norm1_context / single-block norm, and norm_out) reads exactly this c.
Parts: ``y`` = text_embedder(pooled) (the text projection alone), ``t`` = timestep_embedder(time_proj(t))
(+ guidance_embedder(time_proj(g)) for Flux-dev), ``y+t`` = the module's own forward.

t is in the pipeline scheduler's timesteps (σ·1000 for flow matching, 1000 = noise); t0 = the first timestep
of the pipeline's own scheduler at the pipeline's default step count and size, shift included
(dtviz.sources.t2i_pipeline.first_timestep). Only the embedder's weights are read for c (lazily, from the
safetensors shards), and only the CLIP encoders are loaded; the transformer, T5 and the VAE load on the first
sample (dtviz.sampling.t2i). Nothing downloads, nothing is written next to the model.
"""
from __future__ import annotations

import os
import threading

import numpy as np
import torch

from dtviz.models.device import resolve_device
from dtviz.errors import DtvizInputError
from dtviz.sources.families import FAMILIES
from dtviz.sources.prompts import resolve_prompts
from dtviz.sources.base import Source, SourceInfo, check_finite
from dtviz.sources.t2i_pipeline import (KINDS, PipelineKind, embedder_module, first_timestep, load_clip_pipeline,
                                        pipeline_defaults, read_index, transformer_parameters)

CLIP_BATCH = 64  # prompts per CLIP forward: 1000 prompts in 16 batches on CPU


class TextToImageSource(Source):
    """A text-to-image pipeline folder (model_index.json naming one of KINDS), with a list of prompts as rows."""

    def __init__(self, path: str, prompts=None, device=None, name: str | None = None, extra: dict | None = None,
                 guidance: float | None = None):
        self.path = path = os.path.expanduser(str(path))
        device = resolve_device(device)
        index = read_index(path)
        self.kind: PipelineKind = KINDS[index["_class_name"]]
        self.prompts = resolve_prompts(prompts)
        self.defaults = pipeline_defaults(path, self.kind)  # steps, guidance, height, width, …
        if guidance is not None:  # a setting: Flux-dev's embedded g (and every pipeline's sampling guidance)
            if not (np.isfinite(guidance) and 0 <= guidance <= 100):
                raise DtvizInputError(f"guidance must be a number in [0, 100]; got {guidance!r}.")
            self.defaults.update(guidance=float(guidance), guidance_set=True)
        # ------------------------------------------------------------ the embedder, from its own weights only
        self.transformer_config, self.embedder = embedder_module(path, self.kind)
        self.embedder = self.embedder.to(device).eval()
        for key, tensor in self.embedder.state_dict().items():
            check_finite(f"{self.kind.embedder}.{key}", tensor, repr(os.path.join(path, "transformer")))
        self.scheduler, self._t0 = first_timestep(path, self.kind, self.defaults)
        self.clip = load_clip_pipeline(path, self.kind, device) if self.kind.text_in_c else None
        self._pooled: torch.Tensor | None = None  # (N, P) pooled CLIP projections, computed on first use
        self._clip_lock = threading.Lock()  # sessions share a source; clip_pooled changes the pad length for a call
        dim = int(self.transformer_config["num_attention_heads"] * self.transformer_config["attention_head_dim"])
        sample_ok, sample_note = self.kind.can_sample, self.kind.sample_note
        needed = ["transformer", "vae"] + (["text_encoder_2", "tokenizer_2"] if self.kind.family == "flux" else [])
        missing = [d for d in needed if not os.path.isdir(os.path.join(path, d))]
        if sample_ok and missing:  # SD3 may sample without T5 (text_encoder_3=None), Flux may not
            sample_ok, sample_note = False, (f"sampling needs {', '.join(d + '/' for d in missing)} of the pipeline "
                                             "folder, which is missing; analysis still works.")
        self.info = SourceInfo(
            name=name or os.path.basename(os.path.normpath(path)), family=FAMILIES[self.kind.family],
            num_classes=len(self.prompts), dim=dim, class_names=list(self.prompts), device=device,
            parameters=transformer_parameters(os.path.join(path, "transformer")), family_note=self.kind.note(self.defaults), can_sample=sample_ok, sample_note=sample_note,
            extra={"path": path, "rows": "prompts", "pipeline_class": index["_class_name"], "latent": True,
                   "c_from_text": self.kind.text_in_c, "t0_note": self.t0_note, **(extra or {})},
        )

    # ------------------------------------------------------------------------------------ timestep
    @property
    def t0(self) -> float:
        return self._t0

    @property
    def t0_note(self) -> str:
        return (f"t0 = {self._t0:g}, the first timestep of its {type(self.scheduler).__name__} at "
                f"{self.kind.pipeline}'s default {self.defaults['steps']} steps and {self.defaults['height']}×"
                f"{self.defaults['width']} px")

    # ---------------------------------------------------------------------------------- embeddings
    @torch.no_grad()
    def pooled(self, ids=None) -> torch.Tensor:
        """(len(ids), P) pooled text projections, what the pipeline's encode_prompt passes as pooled_prompt_embeds
        (SD3: CLIP-L ⊕ CLIP-G; Flux: CLIP-L). Computed once for all prompts (``encode_all``)."""
        if self._pooled is None:
            with self._clip_lock:
                if self._pooled is None:
                    self._pooled = self.encode_all()
        return self._pooled if ids is None else self._pooled[torch.as_tensor(np.asarray(ids), dtype=torch.long)]

    @torch.no_grad()
    def encode_all(self) -> torch.Tensor:
        """(N, P) for every prompt: sorted by token count, in batches of CLIP_BATCH padded to the batch's longest
        prompt instead of the pipeline's 77 tokens. CLIP's attention is causal and its pooled output is read at the
        (first) EOS token, so padding after the longest prompt's EOS cannot change it; short prompts (ImageNet's
        "a photo of a …": ~10 tokens) then cost a fraction of 77. tests/test_t2i_source.py checks the result
        against the pipeline's own encode_prompt at 77 tokens."""
        full = int(self.clip.tokenizer_max_length)
        tokenizers = [self.clip.tokenizer] + ([self.clip.tokenizer_2] if self.kind.family == "sd3" else [])
        lengths = np.max([[len(ids) for ids in tok(self.prompts, truncation=True, max_length=full)["input_ids"]]
                          for tok in tokenizers], axis=0)  # (N,) with BOS/EOS, at most 77
        order = np.argsort(lengths, kind="stable")
        out = None
        for start in range(0, len(order), CLIP_BATCH):
            rows = order[start:start + CLIP_BATCH]
            block = self.clip_pooled([self.prompts[i] for i in rows], int(lengths[rows].max())).float().cpu()
            out = torch.empty((len(order), block.shape[1])) if out is None else out
            out[torch.as_tensor(rows)] = block
        return out

    @torch.no_grad()
    def clip_pooled(self, prompts: list[str], length: int | None = None) -> torch.Tensor:
        """The pipeline's own _get_clip_prompt_embeds on ``prompts`` → (B, P), padded to ``length`` tokens
        (default the pipeline's tokenizer_max_length, 77)."""
        pipe = self.clip
        full = pipe.tokenizer_max_length
        pipe.tokenizer_max_length = int(length or full)  # the pad length _get_clip_prompt_embeds uses
        try:
            if self.kind.family == "sd3":
                pooled = [pipe._get_clip_prompt_embeds(prompt=prompts, device=self.device, clip_model_index=i)[1]
                          for i in (0, 1)]
                return torch.cat(pooled, dim=-1)  # encode_prompt: torch.cat([pooled_1, pooled_2], dim=-1)
            return pipe._get_clip_prompt_embeds(prompt=prompts, device=self.device)
        finally:
            pipe.tokenizer_max_length = full

    def timestep_input(self, t: float, batch: int) -> torch.Tensor:
        """(batch,) float32 timestep as the transformer's time_text_embed receives it: SD3 the scheduler's t;
        Flux ``(t / 1000) * 1000`` in float32 (the pipeline divides, the transformer multiplies back)."""
        ts = torch.full((batch,), float(t), dtype=torch.float32, device=self.device)
        return (ts / 1000).to(torch.float32) * 1000 if self.kind.family == "flux" else ts

    def guidance_input(self, batch: int) -> torch.Tensor | None:
        """Flux-dev: guidance_scale·1000 as the transformer forms it; None otherwise."""
        if not self.kind.guidance_in_c(self.transformer_config):
            return None
        g = torch.full([1], float(self.defaults["guidance"]), dtype=torch.float32, device=self.device).expand(batch)
        return g.to(torch.float32) * 1000

    @torch.no_grad()
    def condition(self, ids, t: float) -> torch.Tensor:
        """(len(ids), d) c = the embedder's own forward at t for these rows."""
        B = len(ids)
        ts = self.timestep_input(t, B)
        if not self.kind.text_in_c:
            return self.kind.timestep_only_c(self, ts)
        pooled = self.pooled(ids).to(self.device)
        guidance = self.guidance_input(B)
        return self.embedder(ts, pooled) if guidance is None else self.embedder(ts, guidance, pooled)

    @torch.no_grad()
    def _rows(self, ids: np.ndarray, t, part: str, batch_size: int) -> np.ndarray:
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        if part == "y" and not self.kind.text_in_c:
            raise DtvizInputError(f"{self.kind.pipeline} forms c from the timestep alone (text enters by cross-attention); "
                                  "part y does not exist — use y+t or t.")
        for start in range(0, len(ids), batch_size):
            rows = ids[start:start + batch_size]
            if part == "y+t" or not self.kind.text_in_c:
                block = self.condition(rows, t)
            elif part == "y":
                block = self.embedder.text_embedder(self.pooled(rows).to(self.device))
            else:
                block = self.t_embedding(t).expand(len(rows), -1)
            out[start:start + len(rows)] = block.float().cpu().numpy()
        return out

    @property
    def t_bias_name(self) -> str | None:
        linear = getattr(getattr(self.embedder, "timestep_embedder", None), "linear_2", None)
        if not self.kind.text_in_c or getattr(linear, "bias", None) is None:
            return None
        return f"{self.kind.embedder}.timestep_embedder.linear_2.bias"

    @torch.no_grad()
    def t_embedding(self, t: float) -> torch.Tensor:
        """(d,) the timestep side of c: timestep_embedder(time_proj(t)) (+ guidance_embedder(time_proj(g)) for Flux-dev)."""
        emb = self.embedder
        ts = self.timestep_input(t, 1)
        row = emb.timestep_embedder(emb.time_proj(ts).to(torch.float32))
        guidance = self.guidance_input(1)
        if guidance is not None:
            row = row + emb.guidance_embedder(emb.time_proj(guidance).to(torch.float32))
        return row[0]

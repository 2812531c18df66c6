"""diffusers DiT pipelines: a local DiTPipeline folder, or one already in the Hugging Face cache ("hf:<repo id>").

diffusers keeps DiT's conditioning but computes it with its own modules. Every transformer block's
``norm1.emb`` is a ``CombinedTimestepLabelEmbeddings``; dtviz reads block 0's (checkpoints converted
from facebookresearch/DiT hold the same weights in every block):

    c(y, t) = class_embedder.embedding_table[y] + linear_2(SiLU(linear_1(φ(t))))
    φ(t)    = [cos(t·f), sin(t·f)],   f_k = exp(−ln(10⁴)·k / (half − 1)),   k = 0..half−1,  half = 128

The denominator ``half − 1`` comes from ``Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=1)``;
original DiT divides by ``half`` (dtviz.models.dit.timestep_features). The two agree only at t = 0, so c
is always computed by calling the model's own modules, never with the native formula.

The label table has num_classes + 1 rows; the last row is the null (classifier-free guidance) class
and is never returned. Everything is read from disk offline; nothing is ever written next to the model.

t0 is the first timestep of the pipeline's own scheduler at DiTPipeline's default 50 steps
(dtviz.sources.schedulers.first_timestep: 980 for facebook/DiT-*'s DDIMScheduler, "leading" spacing), not
the noise end 999; without a scheduler config it is 999.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re

import numpy as np
import torch

from dtviz.sources.checkpoint import read_any
from dtviz.models.device import resolve_device
from dtviz.errors import DtvizInputError
from dtviz.sources.hfcache import hub_cache_dir
from dtviz.sources.families import FAMILIES
from dtviz.sources.schedulers import PIPELINE_STEPS, first_timestep, load_scheduler
from dtviz.sources.base import Source, SourceInfo, check_finite

PIPELINE_CLASS = "DiTPipeline"
MODEL_INDEX = "model_index.json"
TRANSFORMER_DIR = "transformer"
# Transformer2DModel is the pre-0.28 name; diffusers itself remaps it to DiTTransformer2DModel when
# norm_type is "ada_norm_zero" (facebook/DiT-XL-2-* still ship that config).
TRANSFORMER_CLASSES = ("DiTTransformer2DModel", "Transformer2DModel")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
SHARD_INDEXES = tuple(name + ".index.json" for name in WEIGHT_FILES)
EMBEDDER_PREFIX = "transformer_blocks.0.norm1.emb."
FAMILY_NOTE = "diffusers DiTPipeline (CombinedTimestepLabelEmbeddings)"


class DiffusersSource(Source):
    """A DiTPipeline folder: model_index.json, transformer/{config.json, diffusion_pytorch_model.*}, vae/, scheduler/.

    The transformer and the scheduler are loaded with diffusers' own classes (the scheduler fixes t0 and samples,
    dtviz.sampling.pipeline); the VAE is loaded only to sample (dtviz.sources.vae).
    """

    def __init__(self, path: str, device=None, name: str | None = None, extra: dict | None = None):
        self.path = path = os.path.expanduser(str(path))
        device = resolve_device(device)
        index = read_json(os.path.join(path, MODEL_INDEX), "the pipeline index")
        transformer_dir = os.path.join(path, TRANSFORMER_DIR)
        if not os.path.isdir(transformer_dir):
            found = index.get("_class_name", "no _class_name")
            raise DtvizInputError(
                f"expected a DiT pipeline folder with a {TRANSFORMER_DIR}/ subfolder, but {path!r} has none "
                f"(its {MODEL_INDEX} names {found}); point dtviz at a complete DiTPipeline folder."
            )
        config = transformer_config(transformer_dir)
        transformer = load_transformer(transformer_dir, config)
        self.transformer = transformer.to(device).eval()  # float32 already (torch_dtype in from_pretrained)
        self.embedder = self.transformer.transformer_blocks[0].norm1.emb
        for key, tensor in self.embedder.state_dict().items():
            check_finite(EMBEDDER_PREFIX + key, tensor, repr(transformer_dir))

        num_classes = int(config["num_embeds_ada_norm"])
        shared = blocks_share_embedder(self.transformer)
        from dtviz.sources.vae import find_vae, missing_vae_note

        vae = find_vae(path)  # the pipeline's own vae/, else the HF cache (dtviz.sources.vae); a few stat calls
        note = FAMILY_NOTE if shared else FAMILY_NOTE + "; each block has its own embedder, c is block 0's"
        self.scheduler = load_scheduler(path)  # None without scheduler/scheduler_config.json
        self._t0, self._t0_note = pipeline_t0(self.scheduler)
        note += "; " + self._t0_note
        self.info = SourceInfo(
            name=name or os.path.basename(os.path.normpath(path)),
            family=FAMILIES["diffusers"], num_classes=num_classes,
            dim=self.embedder.class_embedder.embedding_table.weight.shape[1],
            class_names=class_names(index, num_classes, os.path.join(path, MODEL_INDEX)), device=device,
            parameters=sum(p.numel() for p in self.transformer.parameters()), family_note=note,
            can_sample=vae is not None, sample_note="" if vae else missing_vae_note(path),
            extra={"path": path, "transformer_class": config["_class_name"], "blocks_share_embedder": shared,
                   "latent": True, "vae": vae, **(extra or {})},
        )

    @property
    def t0(self) -> float:
        """The first timestep of the pipeline's scheduler at its default step count (``pipeline_t0``)."""
        return self._t0

    @property
    def t0_note(self) -> str:
        return self._t0_note

    @property
    def t_bias_name(self) -> str | None:
        has = getattr(self.embedder.timestep_embedder.linear_2, "bias", None) is not None
        return EMBEDDER_PREFIX + "timestep_embedder.linear_2.bias" if has else None

    # ---------------------------------------------------------------------------------- embeddings
    @torch.no_grad()
    def t_embedding(self, t: float) -> torch.Tensor:
        """(d,) timestep_embedder(time_proj(t)) on the source's device."""
        feats = self.embedder.time_proj(torch.tensor([t], dtype=torch.float32, device=self.device))
        return self.embedder.timestep_embedder(feats)[0]

    @torch.no_grad()
    def _rows(self, ids: np.ndarray, t, part: str, batch_size: int) -> np.ndarray:
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        t_row = self.t_embedding(t)
        for start in range(0, len(ids), batch_size):
            labels = torch.as_tensor(ids[start:start + batch_size], dtype=torch.long, device=self.device)
            if part == "t":
                rows = t_row.expand(len(labels), -1)
            else:  # eval mode, no force_drop_ids: a label is never swapped for the null class
                rows = self.embedder.class_embedder(labels)
                if part == "y+t":
                    # CombinedTimestepLabelEmbeddings.forward is exactly timesteps_emb + class_emb; adding the
                    # timestep row computed once keeps c independent of batching (a batched matmul rounds
                    # differently) and makes y+t == y + t bit for bit.
                    rows = rows + t_row
            out[start:start + len(labels)] = rows.float().cpu().numpy()
        return out


# ---------------------------------------------------------------------------------------- loading
def read_json(path: str, what: str) -> dict:
    from dtviz.sources.access import check_allowed

    check_allowed(path, what)
    if not os.path.isfile(path):
        raise DtvizInputError(f"expected {what} {path!r}, but it does not exist; point dtviz at a complete DiTPipeline folder.")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DtvizInputError(f"expected {what} {path!r} to be valid JSON, but it could not be parsed ({err}); re-download or re-save the pipeline.") from err
    if not isinstance(data, dict):
        raise DtvizInputError(f"expected {what} {path!r} to hold a JSON object, but found a {type(data).__name__}.")
    return data


def transformer_config(transformer_dir: str) -> dict:
    config = read_json(os.path.join(transformer_dir, "config.json"), "the transformer config")
    where = os.path.join(transformer_dir, "config.json")
    class_name = config.get("_class_name")
    norm_type = config.get("norm_type", "ada_norm_zero")
    if class_name not in TRANSFORMER_CLASSES or norm_type != "ada_norm_zero":
        raise DtvizInputError(
            f"expected a class-conditional DiT transformer in {where!r} (_class_name DiTTransformer2DModel, or "
            f"Transformer2DModel with norm_type ada_norm_zero), but found _class_name {class_name!r} with norm_type "
            f"{norm_type!r}; dtviz reads DiTPipeline models only."
        )
    num_classes = config.get("num_embeds_ada_norm")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise DtvizInputError(f"expected a positive integer num_embeds_ada_norm (the number of classes) in {where!r}, but found {num_classes!r}.")
    return config


def load_transformer(transformer_dir: str, config: dict) -> torch.nn.Module:
    """diffusers' own class, from local files only; damaged or mismatched weights become DtvizInputError."""
    names = os.listdir(transformer_dir)
    weights = [n for n in WEIGHT_FILES if n in names]
    if not weights and not any(n in names for n in SHARD_INDEXES):
        raise DtvizInputError(
            f"expected transformer weights {' or '.join(WEIGHT_FILES)} in {transformer_dir!r}, but found only "
            f"{', '.join(sorted(names)) or 'nothing'}; re-download or re-save the pipeline."
        )
    if weights:  # diffusers prefers safetensors; check that file's header (or zip) first for a clear message
        read_any(os.path.join(transformer_dir, weights[0]))

    import diffusers

    model_class = getattr(diffusers, config["_class_name"])
    try:
        model, loading_info = model_class.from_pretrained(
            transformer_dir, local_files_only=True, torch_dtype=torch.float32, output_loading_info=True,
            # without accelerate diffusers warns and falls back to False anyway
            low_cpu_mem_usage=importlib.util.find_spec("accelerate") is not None,
        )
    except Exception as err:  # diffusers raises OSError/ValueError/RuntimeError/safetensors errors here
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise DtvizInputError(
            f"expected transformer weights that match {os.path.join(transformer_dir, 'config.json')!r}, but diffusers "
            f"could not load them ({first_line}); the weights are damaged or belong to another config."
        ) from err
    # diffusers fills missing weights with fresh (even uninitialised) values and only logs a warning.
    missing = [k for k in loading_info["missing_keys"] if k.startswith(EMBEDDER_PREFIX)]
    if missing:
        raise DtvizInputError(
            f"expected the conditioning embedder weights in {transformer_dir!r}, but {missing[0]!r} "
            f"(and {len(missing) - 1} more) are missing; the weights file is incomplete."
        )
    return model


def pipeline_t0(scheduler) -> tuple[float, str]:
    """(t0, the sentence saying what it assumes): the scheduler's first timestep at DiTPipeline's default step
    count, or 999 (the noise end) without a scheduler."""
    if scheduler is None:
        return 999.0, "t0 = 999, the noise end (no scheduler/scheduler_config.json)"
    try:
        t0 = first_timestep(scheduler, PIPELINE_STEPS)
    except Exception as err:  # diffusers raises ValueError for e.g. num_train_timesteps < 50
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise DtvizInputError(f"expected a scheduler config that can take DiTPipeline's default {PIPELINE_STEPS} steps "
                              f"(t0 is its first timestep), but its {type(scheduler).__name__} cannot ({first_line}).") from err
    return t0, (f"t0 = {t0:g}, the first timestep of its {type(scheduler).__name__} at DiTPipeline's default "
                f"{PIPELINE_STEPS} steps")


def blocks_share_embedder(transformer) -> bool:
    """True when every block's CombinedTimestepLabelEmbeddings equals block 0's (true for converted DiT checkpoints)."""
    first = transformer.transformer_blocks[0].norm1.emb.state_dict()
    return all(
        all(torch.equal(value, block.norm1.emb.state_dict()[key]) for key, value in first.items())
        for block in transformer.transformer_blocks[1:]
    )


def class_names(index: dict, num_classes: int, where: str) -> list[str]:
    """``id2label`` from model_index.json (string ids; values kept whole, synonyms included), else "class i"."""
    id2label = index.get("id2label") or {}
    if not isinstance(id2label, dict):
        raise DtvizInputError(f"expected id2label in {where!r} to map class ids to names, but found a {type(id2label).__name__}.")
    names = [f"class {i}" for i in range(num_classes)]
    for key, value in id2label.items():
        try:
            i = int(key)
        except (TypeError, ValueError):
            raise DtvizInputError(f"expected integer class ids as id2label keys in {where!r}, but found {key!r}.") from None
        if 0 <= i < num_classes:
            names[i] = str(value)
    return names


# ----------------------------------------------------------------------------- Hugging Face cache
def list_cached_pipelines(cache_dir: str | None = None) -> list[dict]:
    """Every cached ``models--<org>--<name>/snapshots/<rev>/model_index.json`` whose _class_name is DiTPipeline
    or a text-to-image pipeline dtviz reads (dtviz.sources.t2i_pipeline.KINDS: SD3, Flux, PixArt, Sana).

    Returns dicts {repo_id, revision, path}, grouped by repo id; within a repo the snapshot refs/main points
    to comes first (what huggingface_hub itself opens offline), then the most recently modified. No network.
    """
    cache_dir = cache_dir or hub_cache_dir()
    try:
        entries = sorted(os.listdir(cache_dir))
    except OSError:
        return []
    found = []
    for entry in entries:
        if not entry.startswith("models--"):
            continue
        repo_dir = os.path.join(cache_dir, entry)
        repo_id = entry[len("models--"):].replace("--", "/")
        main = _read_ref(os.path.join(repo_dir, "refs", "main"))
        snapshots = os.path.join(repo_dir, "snapshots")
        try:
            revisions = os.listdir(snapshots)
        except OSError:
            continue
        candidates = []
        for revision in revisions:
            path = os.path.join(snapshots, revision)
            if _is_dit_pipeline(os.path.join(path, MODEL_INDEX)):
                candidates.append((revision == main, os.stat(path).st_mtime, revision, path))
        for _, _, revision, path in sorted(candidates, reverse=True):
            found.append({"repo_id": repo_id, "revision": revision, "path": path})
    return found


def load_cached_pipeline(repo_id: str, device=None, prompts=None, guidance: float | None = None) -> Source:
    """Open the newest cached snapshot of ``repo_id`` (see list_cached_pipelines) without touching the network."""
    repo_id = str(repo_id).strip()
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise DtvizInputError(f"expected hf:<org>/<name> (a Hugging Face repo id), but got hf:{repo_id}; e.g. hf:facebook/DiT-XL-2-256.")
    cache_dir = hub_cache_dir()
    cached = list_cached_pipelines(cache_dir)
    matches = [p for p in cached if p["repo_id"].lower() == repo_id.lower()]
    if not matches:
        available = ", ".join(dict.fromkeys(p["repo_id"] for p in cached)) or "none"
        raise DtvizInputError(
            f"expected the DiT pipeline {repo_id!r} in the local Hugging Face cache {cache_dir!r}, but it is not there "
            f"(cached DiT pipelines: {available}); download it once with `hf download {repo_id}` or pass a local pipeline folder."
        )
    newest = matches[0]
    from dtviz.sources.t2i_pipeline import is_t2i_folder

    if is_t2i_folder(newest["path"]):  # SD3 / Flux / PixArt / Sana: rows are prompts
        from dtviz.sources.diffusers_t2i import TextToImageSource

        return TextToImageSource(newest["path"], prompts=prompts, device=device, name=newest["repo_id"], guidance=guidance,
                                 extra={"repo_id": newest["repo_id"], "revision": newest["revision"]})
    return DiffusersSource(newest["path"], device=device, name=newest["repo_id"],
                           extra={"repo_id": newest["repo_id"], "revision": newest["revision"]})


def _read_ref(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _is_dit_pipeline(index_path: str) -> bool:
    try:
        with open(index_path, encoding="utf-8") as fh:
            name = json.load(fh).get("_class_name")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):  # a broken index is not listed; loading it says why
        return False
    from dtviz.sources.t2i_pipeline import KINDS

    return name == PIPELINE_CLASS or name in KINDS  # text-to-image pipelines too (dtviz.sources.diffusers_t2i)

"""Reading a text-to-image pipeline folder: which kind it is, its defaults, its embedder, its t0, its CLIP encoders.

Everything follows the installed diffusers' own pipeline code (``pipeline_stable_diffusion_3.py``,
``pipeline_flux.py``, ``pipeline_pixart_*.py``, ``pipeline_sana.py``): defaults are read from the signature of
the pipeline's ``__call__``, the timesteps come from its own ``retrieve_timesteps`` (and ``calculate_shift``),
the embedder is diffusers' own class built with the transformer's config and loaded with the transformer's
own weights (only those keys are read). All files are local (``local_files_only``).
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import json
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from dtviz.errors import DtvizInputError

MODEL_INDEX = "model_index.json"
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


# ------------------------------------------------------------------------------------------ kinds

@dataclass(frozen=True)
class PipelineKind:
    pipeline: str          # diffusers pipeline class
    family: str            # dtviz.sources.families key
    module: str            # the diffusers module holding the pipeline's retrieve_timesteps / calculate_shift
    embedder: str          # the transformer attribute that forms c
    text_in_c: bool        # False: c from the timestep alone (text by cross-attention)
    clip: tuple = ()       # components needed for c
    can_sample: bool = True
    sample_note: str = ""

    def guidance_in_c(self, config: dict) -> bool:
        return self.family == "flux" and bool(config.get("guidance_embeds"))

    def note(self, defaults: dict) -> str:
        if self.family == "sd3":
            return "diffusers StableDiffusion3Pipeline: c = time_text_embed(t, CLIP-L ⊕ CLIP-G pooled)"
        if self.family == "flux":
            if defaults.get("guidance_in_c"):
                said = "set by you" if defaults.get("guidance_set") else "the pipeline's default guidance_scale"
                return (f"diffusers FluxPipeline (guidance-distilled): c = time_text_embed(t, g, CLIP-L pooled), "
                        f"g = {defaults['guidance']:g}, {said}")
            return "diffusers FluxPipeline (no guidance embedding): c = time_text_embed(t, CLIP-L pooled)"
        return (f"diffusers {self.pipeline}: c comes from the timestep alone ({self.embedder}); text enters by "
                "cross-attention, so c is the same for every prompt")

    def timestep_only_c(self, source, ts: torch.Tensor) -> torch.Tensor:
        """PixArt / Sana: embedded_timestep = AdaLayerNormSingle(t)[1], with PixArt-α's resolution and aspect-ratio
        conditions at the pipeline's default size when the model uses them (as its __call__ forms them)."""
        B = ts.shape[0]
        added = {"resolution": None, "aspect_ratio": None}
        if getattr(source.embedder.emb, "use_additional_conditions", False):
            h, w = source.defaults["height"], source.defaults["width"]
            added = {"resolution": torch.tensor([h, w]).repeat(B, 1).to(torch.float32).to(ts.device),
                     "aspect_ratio": torch.tensor([float(h / w)]).repeat(B, 1).to(torch.float32).to(ts.device)}
        # one row, expanded: c does not depend on the prompt, and a batched matmul would round rows differently
        one = {k: None if v is None else v[:1] for k, v in added.items()}
        return source.embedder(ts[:1], one, batch_size=1, hidden_dtype=torch.float32)[1].expand(B, -1)


_TIMESTEP_ONLY_NOTE = "dtviz samples SD3 and Flux pipelines; this pipeline offers analysis only."
KINDS = {
    "StableDiffusion3Pipeline": PipelineKind("StableDiffusion3Pipeline", "sd3", "stable_diffusion_3.pipeline_stable_diffusion_3",
                                             "time_text_embed", True, ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")),
    "FluxPipeline": PipelineKind("FluxPipeline", "flux", "flux.pipeline_flux", "time_text_embed", True,
                                 ("text_encoder", "tokenizer")),
    "PixArtAlphaPipeline": PipelineKind("PixArtAlphaPipeline", "pixart", "pixart_alpha.pipeline_pixart_alpha",
                                        "adaln_single", False, can_sample=False, sample_note=_TIMESTEP_ONLY_NOTE),
    "PixArtSigmaPipeline": PipelineKind("PixArtSigmaPipeline", "pixart", "pixart_alpha.pipeline_pixart_sigma",
                                        "adaln_single", False, can_sample=False, sample_note=_TIMESTEP_ONLY_NOTE),
    "SanaPipeline": PipelineKind("SanaPipeline", "sana", "sana.pipeline_sana", "time_embed", False,
                                 can_sample=False, sample_note=_TIMESTEP_ONLY_NOTE),
}


def pipeline_module(kind: PipelineKind):
    return importlib.import_module(f"diffusers.pipelines.{kind.module}")


def pipeline_class(kind: PipelineKind):
    import diffusers

    return getattr(diffusers, kind.pipeline)


# ---------------------------------------------------------------------------------------- reading

def read_json(path: str, what: str) -> dict:
    from dtviz.sources.access import check_allowed

    check_allowed(path, what)
    if not os.path.isfile(path):
        raise DtvizInputError(f"expected {what} {os.path.basename(os.path.dirname(path))}/{os.path.basename(path)}, "
                              "but it does not exist; point dtviz at a complete pipeline folder.")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise DtvizInputError(f"expected {what} {os.path.basename(path)} to be valid JSON, but it could not be parsed "
                              f"({type(err).__name__}); re-download or re-save the pipeline.") from None
    if not isinstance(data, dict):
        raise DtvizInputError(f"expected {what} {os.path.basename(path)} to hold a JSON object, but found a {type(data).__name__}.")
    return data


def read_index(path: str) -> dict:
    index = read_json(os.path.join(path, MODEL_INDEX), "the pipeline index")
    if index.get("_class_name") not in KINDS:
        raise DtvizInputError(f"expected a text-to-image pipeline ({', '.join(KINDS)}), but model_index.json names "
                              f"{index.get('_class_name')!r}.")
    return index


def is_t2i_folder(path: str) -> bool:
    """True when ``path/model_index.json`` names one of KINDS (a broken index is not one; loading says why)."""
    try:
        with open(os.path.join(path, MODEL_INDEX), encoding="utf-8") as fh:
            return json.load(fh).get("_class_name") in KINDS
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return False


def _signature_defaults(fn) -> dict:
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}


def transformer_config(path: str) -> tuple[dict, type]:
    """The transformer's config.json over its class's __init__ defaults, and the class."""
    import diffusers

    tdir = os.path.join(path, "transformer")
    config = read_json(os.path.join(tdir, "config.json"), "the transformer config")
    cls = getattr(diffusers, str(config.get("_class_name")), None)
    if cls is None or not isinstance(cls, type):
        raise DtvizInputError(f"expected a diffusers transformer class in transformer/config.json, but found "
                              f"{config.get('_class_name')!r}.")
    return {**_signature_defaults(cls.__init__), **config}, cls


def vae_scale_factor(path: str, kind: PipelineKind) -> int:
    """As the pipeline's __init__ computes it: 2^(len(block_out_channels) − 1), 8 without a VAE config (Sana's DC-AE:
    2^(len(encoder_block_out_channels) − 1), 32 without)."""
    cfg_path = os.path.join(path, "vae", "config.json")
    cfg = read_json(cfg_path, "the VAE config") if os.path.isfile(cfg_path) else {}
    if kind.family == "sana":
        return 2 ** (len(cfg["encoder_block_out_channels"]) - 1) if "encoder_block_out_channels" in cfg else 32
    return 2 ** (len(cfg["block_out_channels"]) - 1) if "block_out_channels" in cfg else 8


def pipeline_defaults(path: str, kind: PipelineKind) -> dict:
    """steps, guidance, height, width as the pipeline's own __call__ defaults them (sizes: default_sample_size ·
    vae_scale_factor; Flux's default_sample_size is 128, SD3's and PixArt's the transformer's sample_size)."""
    call = _signature_defaults(pipeline_class(kind).__call__)
    config, _ = transformer_config(path)
    vsf = vae_scale_factor(path, kind)
    sample = 128 if kind.family == "flux" else int(config.get("sample_size") or 128)
    return {"steps": int(call["num_inference_steps"]), "guidance": float(call["guidance_scale"]),
            "height": sample * vsf, "width": sample * vsf, "vae_scale_factor": vsf,
            "guidance_in_c": kind.guidance_in_c(config)}


# ---------------------------------------------------------------------------------------- embedder

def embedder_module(path: str, kind: PipelineKind) -> tuple[dict, torch.nn.Module]:
    """(transformer config, the embedder module with the transformer's own weights), as the transformer's __init__
    builds it; only the ``<embedder>.*`` tensors are read from disk."""
    from diffusers.models.embeddings import CombinedTimestepGuidanceTextProjEmbeddings, CombinedTimestepTextProjEmbeddings
    from diffusers.models.normalization import AdaLayerNormSingle

    config, _ = transformer_config(path)
    inner = int(config["num_attention_heads"]) * int(config["attention_head_dim"])
    if kind.family in ("sd3", "flux"):
        cls = CombinedTimestepGuidanceTextProjEmbeddings if kind.guidance_in_c(config) else CombinedTimestepTextProjEmbeddings
        module = cls(embedding_dim=inner, pooled_projection_dim=int(config["pooled_projection_dim"]))
    elif kind.family == "pixart":
        extra = config.get("use_additional_conditions")
        extra = (config.get("sample_size") == 128) if extra is None else bool(extra)  # as PixArtTransformer2DModel
        module = AdaLayerNormSingle(inner, use_additional_conditions=extra)
    else:
        if config.get("guidance_embeds"):
            raise DtvizInputError("this Sana transformer embeds guidance (Sana-Sprint); dtviz reads Sana with AdaLayerNormSingle only.")
        module = AdaLayerNormSingle(inner)
    state = read_prefixed(os.path.join(path, "transformer"), kind.embedder + ".")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0][:160]
        raise DtvizInputError(f"expected the {kind.embedder} weights of transformer/config.json in transformer/, but they "
                              f"do not match ({first}); the weights are incomplete or belong to another config.") from None
    return config, module.float()


def read_prefixed(tdir: str, prefix: str) -> dict:
    """{key without prefix: float32 tensor} for the weight keys starting with ``prefix`` (sharded or not)."""
    from safetensors import safe_open

    from dtviz.sources.checkpoint import read_torch

    names = set(os.listdir(tdir)) if os.path.isdir(tdir) else set()
    files = []
    for weights in WEIGHT_FILES:
        if weights + ".index.json" in names:
            index = read_json(os.path.join(tdir, weights + ".index.json"), "the weight index")
            files = sorted({f for k, f in index.get("weight_map", {}).items() if k.startswith(prefix)})
            break
        if weights in names:
            files = [weights]
            break
    if not files:
        raise DtvizInputError(f"expected transformer weights ({' or '.join(WEIGHT_FILES)}) in transformer/, but found "
                              f"{', '.join(sorted(names)) or 'nothing'}.")
    out = {}
    for name in files:
        file = os.path.join(tdir, name)
        try:
            if name.endswith(".safetensors"):
                with safe_open(file, framework="pt") as fh:
                    out.update({k[len(prefix):]: fh.get_tensor(k).float() for k in fh.keys() if k.startswith(prefix)})
            else:
                out.update({k[len(prefix):]: v.float() for k, v in read_torch(file).items() if k.startswith(prefix)})
        except DtvizInputError:
            raise
        except Exception as err:
            raise DtvizInputError(f"expected readable transformer weights, but transformer/{name} could not be read "
                                  f"({type(err).__name__}); re-download or re-save the pipeline.") from None
    if not out:
        raise DtvizInputError(f"expected {prefix}* weights in transformer/, but there are none; is this the pipeline's own transformer?")
    return out


def transformer_parameters(tdir: str) -> int | None:
    """The transformer's parameter count from its safetensors headers (no tensor read); None for .bin weights."""
    from safetensors import safe_open

    try:
        names = [n for n in os.listdir(tdir) if n.endswith(".safetensors")]
        total = 0
        for name in names:
            with safe_open(os.path.join(tdir, name), framework="pt") as fh:
                total += sum(int(np.prod(fh.get_slice(k).get_shape())) for k in fh.keys())
        return total or None
    except Exception:  # a count for the model card only; loading already checked the embedder's file
        return None


# ---------------------------------------------------------------------------------------- timesteps

def load_scheduler(path: str):
    import diffusers

    cfg = read_json(os.path.join(path, "scheduler", "scheduler_config.json"), "the scheduler config")
    cls = getattr(diffusers, str(cfg.get("_class_name")), None)
    if cls is None or not hasattr(cls, "set_timesteps"):
        raise DtvizInputError(f"expected a diffusers scheduler in scheduler/scheduler_config.json, but found {cfg.get('_class_name')!r}.")
    return cls.from_pretrained(os.path.join(path, "scheduler"), local_files_only=True)


def scheduler_timesteps(kind: PipelineKind, scheduler, steps: int, height: int, width: int, patch_size: int,
                        vae_scale_factor: int) -> np.ndarray:
    """The timesteps the pipeline's __call__ sets at ``steps`` and this size (Flux: its sigmas and dynamic shift
    μ = calculate_shift(packed image sequence length); SD3: μ only when the scheduler uses dynamic shifting)."""
    mod = pipeline_module(kind)
    cfg = scheduler.config
    if kind.family == "flux":
        h = 2 * (int(height) // (vae_scale_factor * 2))  # prepare_latents' latent grid, packed 2×2 below
        w = 2 * (int(width) // (vae_scale_factor * 2))
        sigmas = None if getattr(cfg, "use_flow_sigmas", False) else np.linspace(1.0, 1 / steps, steps)
        mu = mod.calculate_shift((h // 2) * (w // 2), cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                                 cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
        timesteps, _ = mod.retrieve_timesteps(scheduler, steps, "cpu", sigmas=sigmas, mu=mu)
        return timesteps.cpu().numpy()
    kwargs = {}
    if kind.family == "sd3" and cfg.get("use_dynamic_shifting", None):
        seq = (height // vae_scale_factor // patch_size) * (width // vae_scale_factor // patch_size)
        kwargs["mu"] = mod.calculate_shift(seq, cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                                           cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.16))
    timesteps, _ = mod.retrieve_timesteps(scheduler, steps, "cpu", **kwargs)
    return timesteps.cpu().numpy()


def first_timestep(path: str, kind: PipelineKind, defaults: dict):
    """(scheduler, t0): the first timestep at the pipeline's default steps and size."""
    try:
        scheduler = load_scheduler(path)
    except DtvizInputError:
        raise
    except Exception as err:
        raise DtvizInputError(f"expected a scheduler diffusers can read in scheduler/, but it could not be loaded ({type(err).__name__}).") from None
    config, _ = transformer_config(path)
    ts = scheduler_timesteps(kind, scheduler, defaults["steps"], defaults["height"], defaults["width"],
                             int(config.get("patch_size") or 2), defaults["vae_scale_factor"])
    return scheduler, float(ts[0])


# ---------------------------------------------------------------------------------------- text encoders

def load_clip_pipeline(path: str, kind: PipelineKind, device):
    """The pipeline object with only its CLIP encoders and tokenizers (the transformer, T5 and the VAE left out),
    so its own _get_clip_prompt_embeds runs on them."""
    cls = pipeline_class(kind)
    index = read_json(os.path.join(path, MODEL_INDEX), "the pipeline index")
    skip = {name: None for name, value in index.items()
            if not name.startswith("_") and isinstance(value, list) and name not in kind.clip}
    try:
        with quiet_loading():
            pipe = cls.from_pretrained(path, local_files_only=True, torch_dtype=torch.float32, **skip)
    except Exception as err:  # diffusers / transformers raise many kinds here
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise DtvizInputError(f"expected the CLIP text encoders and tokenizers of a {kind.pipeline} folder, but diffusers "
                              f"could not load them ({first}).") from None
    for name in kind.clip:
        if getattr(pipe, name, None) is None:
            raise DtvizInputError(f"expected {name}/ in the {kind.pipeline} folder (needed for c), but it is missing.")
    return pipe.to(device)


@contextlib.contextmanager
def quiet_loading():
    """No progress bars or advice from diffusers / transformers while loading local files (one user-facing line
    per problem is dtviz's job); their verbosity is restored afterwards."""
    import diffusers.utils.logging as dlog

    tlog = importlib.import_module("transformers.utils.logging")
    levels = (dlog.get_verbosity(), tlog.get_verbosity())
    bars = (dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled())
    dlog.set_verbosity_error(), tlog.set_verbosity_error()
    dlog.disable_progress_bar(), tlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        dlog.set_verbosity(levels[0]), tlog.set_verbosity(levels[1])
        (dlog.enable_progress_bar if bars[0] else dlog.disable_progress_bar)()
        (tlog.enable_progress_bar if bars[1] else tlog.disable_progress_bar)()

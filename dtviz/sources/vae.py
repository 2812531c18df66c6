"""The VAE that turns latent samples (4-channel DiT/SiT/diffusers models, 32-channel LightningDiT) into images.

A local diffusers ``AutoencoderKL`` folder in the sd-vae-ft-ema / sd-vae-ft-mse layout (config.json +
diffusion_pytorch_model.safetensors or .bin), or a VA-VAE folder for LightningDiT (an LDM-layout checkpoint plus
LightningDiT's latents_stats.pt, see dtviz.sources.vavae), looked up offline, in this order (``find_vae``):

    1. the path given by the user (``--vae PATH``; a pipeline folder holding vae/ is accepted too)
    2. ``vae/`` next to the checkpoint (a model folder's own vae/, or a diffusers pipeline's vae/)
    3. the local Hugging Face cache: stabilityai/sd-vae-ft-ema, stabilityai/sd-vae-ft-mse, then (for LightningDiT)
       hustvl/vavae-imagenet256-f16d32-dinov2 snapshots, skipping those whose latent channels do not fit the model

Nothing is ever downloaded or written. Decoding follows diffusers ``DiTPipeline.__call__``
(``vae.decode(latents / vae.config.scaling_factor)``, plus ``shift_factor`` where the VAE config sets one, as
diffusers' other pipelines add it; then ``(samples / 2 + 0.5).clamp(0, 1)``) and DiT ``sample.py``
(``vae.decode(samples / 0.18215)``: sd-vae-ft-*'s scaling_factor); a VA-VAE decodes as LightningDiT's
``inference.py`` does (``samples * std / latent_multiplier + mean``, no scaling factor; dtviz.sources.vavae.VAVAE.decode).
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from dtviz.errors import DtvizInputError
from dtviz.sources.vavae import VAVAE, is_vavae_dir, load_vavae, problem

VAE_DIR = "vae"
VAE_REPOS = ("stabilityai/sd-vae-ft-ema", "stabilityai/sd-vae-ft-mse", "hustvl/vavae-imagenet256-f16d32-dinov2")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def is_vae_dir(path) -> bool:
    """True for a folder with config.json and diffusers AutoencoderKL weights."""
    return bool(path) and os.path.isfile(os.path.join(path, "config.json")) and any(
        os.path.isfile(os.path.join(path, name)) for name in WEIGHT_FILES)


def beside_checkpoint(source_path) -> str | None:
    """The ``vae/`` folder of a model or pipeline folder, or next to a checkpoint file."""
    if not source_path:
        return None
    path = os.path.expanduser(str(source_path))
    folder = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    return os.path.join(folder, VAE_DIR)


def cached_vaes(cache_dir: str | None = None) -> list[str]:
    """Snapshot folders of ``VAE_REPOS`` in the HF cache, in repo order; refs/main's snapshot first, then newest."""
    from dtviz.sources.hfcache import hub_cache_dir

    cache_dir = cache_dir or hub_cache_dir()
    found = []
    for repo in VAE_REPOS:
        repo_dir = os.path.join(cache_dir, "models--" + repo.replace("/", "--"))
        snapshots = os.path.join(repo_dir, "snapshots")
        try:
            revisions = os.listdir(snapshots)
        except OSError:
            continue
        try:
            with open(os.path.join(repo_dir, "refs", "main"), encoding="utf-8") as fh:
                main = fh.read().strip()
        except OSError:
            main = None
        paths = [os.path.join(snapshots, r) for r in revisions]
        ranked = sorted((p for p in paths if is_vae_dir(p) or is_vavae_dir(p)),
                        key=lambda p: (os.path.basename(p) == main, os.stat(p).st_mtime), reverse=True)
        found.extend(ranked)
    return found


def search_locations(source_path=None) -> list[str]:
    """Where ``find_vae`` looks without an explicit path, for messages."""
    from dtviz.sources.hfcache import hub_cache_dir

    here = beside_checkpoint(source_path)
    cache = hub_cache_dir()
    return ([here] if here else []) + [os.path.join(cache, "models--" + r.replace("/", "--")) for r in VAE_REPOS]


def find_vae(source_path=None, vae=None, latent_channels: int | None = None) -> str | None:
    """The first VAE folder in the lookup order above, or None. An explicit ``vae`` that is not one is an error.
    With ``latent_channels``, the HF cache offers only VAEs with that many (sd-vae: 4, VA-VAE f16d32: 32)."""
    if vae:
        path = os.path.expanduser(str(vae))
        for candidate in (path, os.path.join(path, VAE_DIR)):
            if is_vae_dir(candidate) or is_vavae_dir(candidate):
                return candidate
        raise DtvizInputError(
            f"expected a diffusers AutoencoderKL folder (config.json + {' or '.join(WEIGHT_FILES)}) or a VA-VAE folder "
            f"(LDM checkpoint + latents_stats.pt) at {path!r}, but it is neither; point --vae at e.g. a local copy of "
            "stabilityai/sd-vae-ft-ema, or of hustvl/vavae-imagenet256-f16d32-dinov2 for LightningDiT.")
    from dtviz.sources.access import allowed

    here = beside_checkpoint(source_path)
    if here and allowed(here) and (is_vae_dir(here) or is_vavae_dir(here)):  # a vae/ symlinked out is not read
        return here
    cached = [p for p in cached_vaes() if latent_channels is None or not latent_channel_note(p, latent_channels)]
    return cached[0] if cached else None


def missing_vae_note(source_path=None) -> str:
    """One sentence: what is missing and where dtviz looked."""
    places = ", ".join(search_locations(source_path))
    return (f"sampling this latent model needs a VAE decoder (a local diffusers AutoencoderKL folder such as "
            f"{VAE_REPOS[0]}, or for LightningDiT a VA-VAE checkpoint with its latents_stats.pt), but none was found "
            f"in {places}; pass --vae PATH to sample — analysis still works.")


def latent_channel_note(path: str, in_channels: int) -> str:
    """"" when the VAE folder's config.json declares ``in_channels`` latent channels (diffusers' AutoencoderKL
    default, 4, when it declares none), else one sentence saying what was expected and what was found. A VA-VAE
    folder: "" when its checkpoint and latents_stats.pt have ``in_channels`` channels (dtviz.sources.vavae.problem)."""
    if not is_vae_dir(path) and is_vavae_dir(path):
        return problem(path, in_channels)
    try:
        with open(os.path.join(path, "config.json"), encoding="utf-8") as fh:
            config = json.load(fh)
        found = int(config.get("latent_channels", 4)) if isinstance(config, dict) else None
    except (OSError, UnicodeDecodeError, ValueError, TypeError):
        return ""  # unreadable: load_vae reports it
    if found is None or found == int(in_channels):
        return ""
    return (f"expected a VAE with {in_channels} latent channels (the model's in_channels), but the one at {path!r} "
            f"has {found}; pass --vae PATH to a diffusers AutoencoderKL with latent_channels = {in_channels}, or for "
            "LightningDiT to a VA-VAE folder (its checkpoint + latents_stats.pt) — analysis still works.")


def load_vae(path: str, device="cpu") -> torch.nn.Module:
    """``AutoencoderKL.from_pretrained(path, local_files_only=True)`` in eval mode, float32, on ``device``;
    a VA-VAE folder: dtviz.sources.vavae.load_vavae."""
    from dtviz.sources.access import check_allowed

    check_allowed(path, "the VAE folder")
    vavae = not is_vae_dir(path)
    if vavae and not is_vavae_dir(path):
        raise DtvizInputError(f"expected a diffusers AutoencoderKL folder (config.json + weights) or a VA-VAE folder "
                              f"(checkpoint + latents_stats.pt) at {path!r}, but it is not one.")
    try:
        from diffusers import AutoencoderKL
    except ImportError as err:
        raise DtvizInputError("decoding latents needs the diffusers package, which is not installed; pip install diffusers.") from err
    if vavae:
        return load_vavae(path, device)
    try:
        vae = AutoencoderKL.from_pretrained(path, local_files_only=True, torch_dtype=torch.float32)
    except Exception as err:  # diffusers raises OSError/ValueError/RuntimeError/safetensors errors here
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise DtvizInputError(f"expected AutoencoderKL weights in {path!r}, but diffusers could not load them ({first_line}).") from err
    return vae.to(device).eval()


def latent_scaling(vae) -> tuple[float, float]:
    """(scaling_factor, shift_factor) of an AutoencoderKL's config: latents = (z − shift)·scale, so the decoder
    gets latents / scale + shift. diffusers' defaults (0.18215, none = 0) where the config sets none."""
    config = vae.config
    scale = getattr(config, "scaling_factor", None)
    shift = getattr(config, "shift_factor", None)
    return float(0.18215 if scale is None else scale), float(shift or 0.0)


@torch.no_grad()
def decode(vae: torch.nn.Module, latents: torch.Tensor) -> np.ndarray:
    """(N, C, h, w) latents -> (N, H, W, 3) float32 images in [0, 1]: ``vae.decode(z / scaling_factor + shift_factor)``
    (``latent_scaling``; a VAVAE: LightningDiT's de-normalisation instead), then DiTPipeline's ``(x / 2 + 0.5).clamp(0, 1)``."""
    param = next(vae.parameters())
    if isinstance(vae, VAVAE):
        x = vae.decode(latents)
    else:
        scale, shift = latent_scaling(vae)
        z = latents.to(param.device, param.dtype) / scale
        x = vae.decode(z + shift if shift else z).sample
    return (x.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()

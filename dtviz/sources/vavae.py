"""VA-VAE, the tokenizer of hustvl/LightningDiT, decoding LightningDiT samples as its ``inference.py`` does.

What the user provides: a folder (``--vae DIR``, or ``vae/`` beside the checkpoint) laid out like the Hugging
Face repo hustvl/vavae-imagenet256-f16d32-dinov2, from which LightningDiT's README has its users download both:

    DIR/vavae-imagenet256-f16d32-dinov2.pt   the VA-VAE checkpoint (the one .pt/.pth/.bin/.ckpt/.safetensors):
                                             LDM AutoencoderKL keys, bare or under "state_dict"; only encoder.*,
                                             decoder.*, quant_conv.*, post_quant_conv.* are read (loss.*, the
                                             DINOv2 foundation_model.* and linear_proj.* are training-only), and
                                             only decoder.* + post_quant_conv.* are required
    DIR/latents_stats.pt                     LightningDiT's per-channel latent {"mean", "std"}, (1, C, 1, 1) or (C,)
    DIR/vavae.json                           optional: {"latent_multiplier": 1.0}, the value of data.latent_multiplier
                                             in LightningDiT's configs (1.0 in every VA-VAE config; the default)

The LDM weights are converted with diffusers' own ``convert_ldm_vae_checkpoint`` (plus its attention-key helper
for the attention blocks VA-VAE has at its lowest resolution, attn_resolutions [16], which diffusers' VAE
converter does not place) into a diffusers ``AutoencoderKL`` whose config is the LDM ddconfig read off the
tensor shapes: block_out_channels = ch·ch_mult, layers_per_block = num_res_blocks, latent_channels =
z_channels = embed_dim, Attn{Down,Up}*Block2D where a level holds attn.* keys, GroupNorm(32). Decoding is
inference.py's ``vae.decode_to_images(samples * std / latent_multiplier + mean)``, without SD's 0.18215:
``decode`` returns the decoder's output in [-1, 1], mapped to [0, 1] by dtviz.sources.vae.decode, which dtviz's
to_uint8 turns into decode_to_images' ``uint8(clamp(127.5·x + 128, 0, 255))``. Files are read with
``torch.load(weights_only=True)`` or safetensors (dtviz.sources.checkpoint) and never written.
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping

import torch

from dtviz.sources.checkpoint import SAFETENSORS_EXTENSIONS, TORCH_EXTENSIONS, nearest_keys, read_any, read_torch, unwrap_state_dict
from dtviz.errors import DtvizInputError

STATS_FILE = "latents_stats.pt"
SETTINGS_FILE = "vavae.json"
CHECKPOINT_EXTENSIONS = TORCH_EXTENSIONS + SAFETENSORS_EXTENSIONS
LDM_PREFIXES = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")
REQUIRED = ("decoder.", "post_quant_conv.")  # decoding reads these; a missing encoder is left as built
LATENT_MULTIPLIER = 1.0  # data.latent_multiplier of every VA-VAE config in hustvl/LightningDiT


def checkpoint_files(path) -> list[str]:
    """The candidate VA-VAE checkpoints in folder ``path`` (every weights file but latents_stats.pt), sorted."""
    try:
        names = sorted(os.listdir(path))
    except (OSError, TypeError):
        return []
    return [os.path.join(path, n) for n in names if n.lower().endswith(CHECKPOINT_EXTENSIONS) and n != STATS_FILE
            and os.path.isfile(os.path.join(path, n))]


def is_vavae_dir(path) -> bool:
    """True for a folder holding latents_stats.pt or a weights file: what the user meant as a VA-VAE folder
    (dtviz.sources.vae checks the diffusers layout first). What is missing or wrong is said by ``problem``."""
    return bool(path) and os.path.isdir(path) and (os.path.isfile(os.path.join(path, STATS_FILE))
                                                   or bool(checkpoint_files(path)))


def _checkpoint_path(path: str) -> str:
    found = checkpoint_files(path)
    if len(found) != 1:
        names = ", ".join(os.path.basename(f) for f in found) or "none"
        raise DtvizInputError(f"expected one VA-VAE checkpoint (*{', *'.join(CHECKPOINT_EXTENSIONS)} besides {STATS_FILE}) "
                              f"in {path!r}, but found {len(found)} ({names}).")
    return found[0]


def ldm_weights(path: str) -> tuple[str, Mapping, dict]:
    """(file, state dict, shapes of its LDM AutoencoderKL tensors) of the folder's checkpoint. Lazy: a torch file
    is mmap'd and a .safetensors one read tensor by tensor, so the shapes cost no weights."""
    weights = _checkpoint_path(path)
    state = unwrap_state_dict(read_any(weights), repr(weights))
    shapes = state.shapes() if hasattr(state, "shapes") else {
        k: v.shape for k, v in state.items() if isinstance(v, torch.Tensor)}
    shapes = {k: tuple(v) for k, v in shapes.items() if str(k).startswith(LDM_PREFIXES)}
    for prefix in REQUIRED:
        if not any(k.startswith(prefix) for k in shapes):
            raise DtvizInputError(f"expected VA-VAE weights ({prefix}* keys of an LDM AutoencoderKL) in {weights!r}, but "
                                  f"there are none; nearest-looking keys: {nearest_keys(state, prefix + 'conv_in.weight')}.")
    return weights, state, shapes


def autoencoder_config(shapes: dict, where: str) -> dict:
    """A diffusers AutoencoderKL config equal to the LDM ddconfig these tensor shapes imply."""
    found = [int(k.split(".")[2]) for k in shapes if k.startswith("decoder.up.") and k.split(".")[2].isdigit()]
    levels = range(max(found, default=0) + 1)  # LDM's decoder.up.{level}, level 0 at full resolution
    needed = ["decoder.conv_in.weight", "decoder.conv_out.weight", "post_quant_conv.weight"]
    needed += [f"decoder.up.{i}.block.0.conv1.weight" for i in levels]
    missing = [k for k in needed if k not in shapes]
    if missing:
        raise DtvizInputError(f"expected the LDM decoder tensor {missing[0]!r} in {where!r}, but it is missing; "
                              f"nearest-looking keys: {nearest_keys(shapes, missing[0])}.")
    z_channels, (post_out, embed_dim) = shapes["decoder.conv_in.weight"][1], shapes["post_quant_conv.weight"][:2]
    if not z_channels == post_out == embed_dim:
        raise DtvizInputError(f"expected a VA-VAE with z_channels = embed_dim (as every LightningDiT tokenizer), but "
                              f"{where!r} has z_channels {z_channels} and embed_dim {embed_dim}.")
    blocks = {k.split(".")[4] for k in shapes if k.startswith("decoder.up.0.block.")}

    def attn(part: str, i: int) -> bool:
        return f"{part}.{i}.attn.0.q.weight" in shapes

    return dict(
        in_channels=int(shapes.get("encoder.conv_in.weight", (0, 3))[1]),
        out_channels=int(shapes["decoder.conv_out.weight"][0]),
        down_block_types=["AttnDownEncoderBlock2D" if attn("encoder.down", i) else "DownEncoderBlock2D" for i in levels],
        up_block_types=["AttnUpDecoderBlock2D" if attn("decoder.up", i) else "UpDecoderBlock2D"
                        for i in reversed(levels)],  # diffusers' up_blocks run from the lowest resolution
        block_out_channels=[int(shapes[f"decoder.up.{i}.block.0.conv1.weight"][0]) for i in levels],
        layers_per_block=len(blocks) - 1, latent_channels=int(embed_dim), norm_num_groups=32, scaling_factor=1.0)


def convert(ldm: dict, config: dict) -> dict:
    """LDM keys -> diffusers AutoencoderKL keys: diffusers' convert_ldm_vae_checkpoint, then the per-level
    attention blocks it leaves under their LDM names, renamed with diffusers' own attention-key helper."""
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint, update_vae_attentions_ldm_to_diffusers

    out = convert_ldm_vae_checkpoint(ldm, config)
    n = len(config["block_out_channels"])
    for i in range(n):
        for old, new in ((f"encoder.down.{i}.attn.", f"encoder.down_blocks.{i}.attentions."),
                         (f"decoder.up.{i}.attn.", f"decoder.up_blocks.{n - 1 - i}.attentions.")):
            keys = [k for k in ldm if k.startswith(old)]
            for k in keys:
                out.pop(k, None)
            update_vae_attentions_ldm_to_diffusers(keys, out, ldm, mapping={"old": old, "new": new})
    return out


def read_stats(path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """latents_stats.pt's (mean, std), each (1, C, 1, 1) float32."""
    file = os.path.join(path, STATS_FILE)
    if not os.path.isfile(file):
        raise DtvizInputError(f"expected LightningDiT's {STATS_FILE} (the per-channel latent mean and std, from "
                              f"hustvl/vavae-imagenet256-f16d32-dinov2) beside the VA-VAE checkpoint in {path!r}, but it is missing.")
    stats = read_torch(file)
    pair = [stats.get(k) if isinstance(stats, dict) else None for k in ("mean", "std")]
    if not all(isinstance(t, torch.Tensor) and t.is_floating_point() and tuple(t.shape) in ((t.numel(),), (1, t.numel(), 1, 1))
               for t in pair) or pair[0].numel() != pair[1].numel():
        raise DtvizInputError(f"expected {file!r} to hold floating-point 'mean' and 'std' tensors of shape (1, C, 1, 1) "
                              f"or (C,), but found {_describe(stats)}.")
    return tuple(t.float().reshape(1, -1, 1, 1) for t in pair)


def read_multiplier(path: str) -> float:
    """vavae.json's latent_multiplier, else LATENT_MULTIPLIER."""
    file = os.path.join(path, SETTINGS_FILE)
    if not os.path.isfile(file):
        return LATENT_MULTIPLIER
    try:
        with open(file, encoding="utf-8") as fh:
            value = json.load(fh).get("latent_multiplier", LATENT_MULTIPLIER)
        value = float(value)
    except (OSError, UnicodeDecodeError, ValueError, TypeError, AttributeError) as err:
        raise DtvizInputError(f"expected JSON with a numeric latent_multiplier in {file!r}, but it could not be read ({err}).") from err
    if not math.isfinite(value) or value <= 0:
        raise DtvizInputError(f"expected a positive latent_multiplier in {file!r}, but found {value}.")
    return value


def problem(path: str, in_channels: int) -> str:
    """"" when the VA-VAE folder can decode ``in_channels``-channel latents, else one sentence: what is missing or
    which channel count differs. Reads latents_stats.pt, vavae.json and the checkpoint's shapes only (mmap / safetensors)."""
    try:
        mean, _ = read_stats(path)
        read_multiplier(path)
        weights, _, shapes = ldm_weights(path)
        found = autoencoder_config(shapes, weights)["latent_channels"]
    except DtvizInputError as err:
        return str(err).rstrip(".") + " — analysis still works."
    for what, channels in (("VA-VAE", found), (f"{STATS_FILE} of the VA-VAE", mean.shape[1])):
        if channels != int(in_channels):
            return (f"expected a VAE with {in_channels} latent channels (the model's in_channels), but the {what} at "
                    f"{path!r} has {channels}; pass --vae DIR to the VA-VAE this model was trained on — analysis still works.")
    return ""


class VAVAE(torch.nn.Module):
    """A diffusers AutoencoderKL holding VA-VAE weights plus LightningDiT's latent de-normalisation."""

    def __init__(self, autoencoder: torch.nn.Module, mean: torch.Tensor, std: torch.Tensor, multiplier: float):
        super().__init__()
        self.autoencoder = autoencoder
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.multiplier = float(multiplier)

    @torch.no_grad()
    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        """inference.py: ``(samples * latent_std) / latent_multiplier + latent_mean``, then the decoder (nominally in [-1, 1])."""
        z = samples.to(self.mean.device, self.mean.dtype) * self.std / self.multiplier + self.mean
        return self.autoencoder.decode(z).sample


def load_vavae(path: str, device="cpu") -> VAVAE:
    """The folder's VA-VAE (see the module docstring) in eval mode, float32, on ``device``. Needs diffusers
    (dtviz.sources.vae.load_vae says so when it is missing)."""
    from diffusers import AutoencoderKL

    mean, std = read_stats(path)
    where, state, shapes = ldm_weights(path)
    config = autoencoder_config(shapes, where)
    if mean.shape[1] != config["latent_channels"]:
        raise DtvizInputError(f"expected {STATS_FILE} in {path!r} to match the VA-VAE's {config['latent_channels']} "
                              f"latent channels, but it has {mean.shape[1]}.")
    try:
        converted = {k: v.float() for k, v in convert({k: state[k] for k in shapes}, config).items()}
        model = AutoencoderKL(**config)
        missing, unexpected = model.load_state_dict(converted, strict=False)
    except (RuntimeError, ValueError, KeyError, IndexError) as err:
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise DtvizInputError(f"the VA-VAE weights in {where!r} do not fit the LDM AutoencoderKL their shapes imply ({first_line}).") from err
    missing = [k for k in missing if k.startswith(REQUIRED)]
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise DtvizInputError(f"the VA-VAE weights in {where!r} do not fit the LDM AutoencoderKL their shapes imply "
                              f"({'no tensor for' if missing else 'no place for'} {key!r}).")
    return VAVAE(model, mean, std, read_multiplier(path)).to(device).eval()


def _describe(obj) -> str:
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k!r}: {tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__}"
                               for k, v in list(obj.items())[:4]) + "}"
    return type(obj).__name__

"""Tiny random checkpoints with the real key names and wrappers of each DiT family.

Built here, at test time, so no binary is committed and no network is needed. The backbone keys
come from dtviz.models.dit (which mirrors facebookresearch/DiT models.py); each family adds the keys
that tell it apart in released checkpoints:

    REPA          projectors.{i}.{0,2,4}.weight             (SiT + REPA alignment projector MLPs)
    LightningDiT  feat_rope.freqs_cos/sin, blocks.{i}.mlp.w12/w3, blocks.{i}.norm1.weight (RMSNorm)
    MDT (v2)      en_inblocks.{i}.*, en_outblocks.{i}.*, de_blocks.{i}.*, sideblocks.*, mask_token
"""
from __future__ import annotations

import argparse
import json
import os

import torch
from safetensors.torch import save_file

from dtviz.models.dit import DiT, DiTConfig


def tiny_config(num_classes: int = 10, hidden: int = 32, depth: int = 2, in_channels: int = 4, learn_sigma: bool = True,
                input_size: int = 8, patch: int = 2) -> DiTConfig:
    return DiTConfig(input_size=input_size, patch_size=patch, in_channels=in_channels, hidden_size=hidden, depth=depth,
                     num_heads=4, num_classes=num_classes, learn_sigma=learn_sigma)


def randomized_dit(cfg: DiTConfig, seed: int = 0) -> DiT:
    """A DiT whose adaLN / final layers are random too (DiT's init zeroes them, which hides bugs)."""
    torch.manual_seed(seed)
    model = DiT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.2)
    return model.eval()


def family_state(family: str, num_classes: int = 10, hidden: int = 32, depth: int = 2, seed: int = 0) -> dict:
    """A state dict with the key names of ``family`` (dit, sit, mg, repa, lightningdit, mdt)."""
    g = torch.Generator().manual_seed(seed + 1)

    def rnd(*shape):
        return torch.randn(*shape, generator=g) * 0.2

    state = {k: v.clone() for k, v in randomized_dit(tiny_config(num_classes, hidden, depth), seed).state_dict().items()}
    if family == "repa":
        for i in range(1):
            state[f"projectors.{i}.0.weight"] = rnd(64, hidden)
            state[f"projectors.{i}.2.weight"] = rnd(64, 64)
            state[f"projectors.{i}.4.weight"] = rnd(48, 64)
    elif family == "lightningdit":  # a whole LightningDiT (dtviz.models.lightningdit, the keys of hustvl/LightningDiT)
        cfg = tiny_lightningdit_config(num_classes, hidden, depth)
        state = {k: v.clone() for k, v in randomized_lightningdit(cfg, seed).state_dict().items()}
    elif family == "mdt":  # a whole MDTv2 (dtviz.models.mdt, the keys of sail-sg/MDT), not DiT keys renamed
        state = {k: v.clone() for k, v in randomized_mdt(tiny_mdt_config(num_classes, hidden, depth), seed).state_dict().items()}
    return state


def save_checkpoint(state: dict, path: str, wrapper: str = "plain") -> str:
    """plain | train (DiT/SiT/REPA train.py: model/ema/opt/args Namespace) | lightning (config dict)
    | safetensors | ddp (module. prefixes)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if wrapper == "plain":
        torch.save(state, path)
    elif wrapper == "train":
        rows = state["y_embedder.embedding_table.weight"].shape[0] if "y_embedder.embedding_table.weight" in state else 11
        args = argparse.Namespace(model="DiT-XL/2", image_size=256, num_classes=rows - 1, global_batch_size=256)
        noisy = {k: v + 1.0 for k, v in state.items()}  # 'model' differs from 'ema': the loader must pick ema
        torch.save({"model": noisy, "ema": state, "opt": {"state": {}, "param_groups": []}, "args": args}, path)
    elif wrapper == "lightning":
        torch.save({"model": {k: v + 1.0 for k, v in state.items()}, "ema": state, "config": {"model": {"model_type": "LightningDiT-XL/1"}}}, path)
    elif wrapper == "safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, path)
    elif wrapper == "ddp":
        torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        raise ValueError(wrapper)
    return path


def tiny_mdt_config(num_classes: int = 10, hidden: int = 32, depth: int = 2, in_channels: int = 4,
                    learn_sigma: bool = True, input_size: int = 8, patch: int = 2):
    """An MDTConfig with ``depth`` en_inblocks, ``depth`` en_outblocks and one de_block (counts that differ, so a
    config read off the wrong key prefix shows)."""
    from dtviz.models.mdt import MDTConfig

    return MDTConfig(input_size=input_size, patch_size=patch, in_channels=in_channels, hidden_size=hidden,
                     depth=2 * depth + 1, decode_layer=1, num_heads=4, num_classes=num_classes, learn_sigma=learn_sigma)


def randomized_mdt(cfg, seed: int = 0):
    """An MDTv2 with every float tensor random: MDT zeroes the adaLN / final layers (hides bugs), and its
    positional tables and mask_token are parameters here (random ones prove they are loaded, not rebuilt)."""
    from dtviz.models.mdt import MDTv2

    torch.manual_seed(seed)
    model = MDTv2(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model.eval()


def tiny_lightningdit_config(num_classes: int = 10, hidden: int = 32, depth: int = 2, in_channels: int = 4,
                             learn_sigma: bool = False, input_size: int = 8, patch: int = 2, **options):
    """A LightningDiTConfig with the released options (SwiGLU, RoPE, RMSNorm; no qk-norm, shift kept) unless
    ``options`` (use_qknorm, use_swiglu, use_rope, use_rmsnorm, wo_shift) say otherwise; 4 heads."""
    from dtviz.models.lightningdit import LightningDiTConfig

    return LightningDiTConfig(input_size=input_size, patch_size=patch, in_channels=in_channels, hidden_size=hidden,
                              depth=depth, num_heads=4, num_classes=num_classes, learn_sigma=learn_sigma, **options)


def randomized_lightningdit(cfg, seed: int = 0):
    """A LightningDiT with every parameter random: the released init zeroes the adaLN / final layers and sets
    RMSNorm weights to one, which hides bugs. pos_embed and the RoPE tables stay as built (fixed tables)."""
    from dtviz.models.lightningdit import LightningDiT

    torch.manual_seed(seed)
    model = LightningDiT(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.2)
    return model.eval()


def save_model_folder(path, model, family: str, sampler: dict | None = None, extra: dict | None = None) -> str:
    """A dtviz model folder: model.safetensors + config.json (family, model config, class names, sampler)."""
    path = str(path)
    os.makedirs(path, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(path, "model.safetensors"))
    config = {"family": family, "model": model.config.to_dict(),
              "class_names": [f"class {i}" for i in range(model.num_classes)], **(extra or {})}
    if sampler:
        config["sampler"] = sampler
    with open(os.path.join(path, "config.json"), "w") as fh:
        json.dump(config, fh)
    return path


def save_train_wrapper(state: dict, path: str, **args) -> str:
    """As DiT/SiT/REPA train.py save: {"model", "ema", "opt", "args": argparse.Namespace(**args)}."""
    noisy = {k: v + 1.0 for k, v in state.items()}
    torch.save({"model": noisy, "ema": state, "opt": {"state": {}, "param_groups": []},
                "args": argparse.Namespace(**args)}, path)
    return path


def save_lightning_wrapper(state: dict, path: str, model: dict, data: dict | None = None) -> str:
    """As LightningDiT train.py saves: {"model", "ema", "opt", "config": train_config} (its YAML as a dict)."""
    config = {"data": {"image_size": 256, **(data or {})}, "vae": {"model_name": "vavae_f16d32", "downsample_ratio": 16},
              "model": model, "train": {"global_batch_size": 8}}
    torch.save({"model": {k: v + 1.0 for k, v in state.items()}, "ema": state, "opt": {}, "config": config}, path)
    return path


def repa_legacy_state(state: dict, encoder_depth: int) -> dict:
    """REPA's --legacy layout: blocks.{i >= encoder_depth} named decoder_blocks.{i - encoder_depth} (the inverse of
    REPA utils.load_legacy_checkpoints)."""
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "blocks" and int(parts[1]) >= encoder_depth:
            parts[:2] = ["decoder_blocks", str(int(parts[1]) - encoder_depth)]
        out[".".join(parts)] = value
    return out

"""Tiny random checkpoints with the real key names and wrappers of each DiT family.

Built here, at test time, so no binary is committed and no network is needed. The backbone keys
come from dtviz.nn.dit (which mirrors facebookresearch/DiT models.py); each family adds the keys
that tell it apart in released checkpoints:

    REPA          projectors.{i}.{0,2,4}.weight             (SiT + REPA alignment projector MLPs)
    LightningDiT  feat_rope.freqs_cos/sin, blocks.{i}.mlp.w12/w3, blocks.{i}.norm1.weight (RMSNorm)
    MDT (v2)      en_inblocks.{i}.*, en_outblocks.{i}.*, de_blocks.{i}.*, sideblocks.*, mask_token
"""
from __future__ import annotations

import argparse
import os

import torch
from safetensors.torch import save_file

from dtviz.nn.dit import DiT, DiTConfig


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
    elif family == "lightningdit":
        for i in range(depth):
            for k in [k for k in state if k.startswith(f"blocks.{i}.mlp.")]:
                del state[k]
            state[f"blocks.{i}.mlp.w12.weight"] = rnd(2 * 4 * hidden, hidden)
            state[f"blocks.{i}.mlp.w3.weight"] = rnd(hidden, 4 * hidden)
            state[f"blocks.{i}.norm1.weight"] = torch.ones(hidden)
            state[f"blocks.{i}.norm2.weight"] = torch.ones(hidden)
        state["feat_rope.freqs_cos"] = rnd(16, 8)
        state["feat_rope.freqs_sin"] = rnd(16, 8)
    elif family == "mdt":
        blocks = {k: v for k, v in state.items() if k.startswith("blocks.")}
        for k in blocks:
            del state[k]
        for k, v in blocks.items():
            i, rest = k.split(".", 2)[1], k.split(".", 2)[2]
            state[f"en_inblocks.{i}.{rest}"] = v.clone()
            state[f"de_blocks.{i}.{rest}"] = v.clone()
        state["mask_token"] = rnd(1, 1, hidden)
        state["decoder_pos_embed"] = state["pos_embed"].clone()
    return state


def save_checkpoint(state: dict, path: str, wrapper: str = "plain") -> str:
    """plain | train (DiT/SiT/REPA train.py: model/ema/opt/args Namespace) | lightning (config dict)
    | safetensors | ddp (module. prefixes)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if wrapper == "plain":
        torch.save(state, path)
    elif wrapper == "train":
        args = argparse.Namespace(model="DiT-XL/2", image_size=256, num_classes=10, global_batch_size=256)
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

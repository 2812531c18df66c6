"""The DiT architecture with the state-dict key names of the released DiT-family checkpoints.

One implementation serves the built-in model and every native checkpoint whose backbone is plain DiT
(DiT, SiT, REPA without its projectors, Model-Guidance): the keys below are exactly those of
facebookresearch/DiT ``models.py``, so ``load_state_dict`` works on their files unchanged.

    x_embedder.proj.{weight,bias}          patchify conv
    pos_embed                              fixed 2-D sin-cos table, (1, T, D)
    t_embedder.mlp.{0,2}.{weight,bias}     Linear(256, D) -> SiLU -> Linear(D, D)
    y_embedder.embedding_table.weight      (num_classes + 1, D); the last row is the null (CFG) class
                                           (num_classes rows and no null row with class_dropout_prob = 0)
    blocks.{i}.attn.{qkv,proj}, blocks.{i}.mlp.{fc1,fc2}, blocks.{i}.adaLN_modulation.1
    blocks.{i}.attn.{q,k}_norm.{weight,bias}   REPA --qk-norm only
    final_layer.{linear,adaLN_modulation.1}

The conditioning vector of the paper is ``c = t_embedder(t) + y_embedder(y)``; every
``adaLN_modulation`` module receives it, which is where dtviz's pruning hooks sit.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

#################################################################################
#                                   Config                                      #
#################################################################################


@dataclass
class DiTConfig:
    input_size: int = 32
    patch_size: int = 2
    in_channels: int = 4
    hidden_size: int = 1152
    depth: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_classes: int = 1000
    learn_sigma: bool = True
    class_dropout_prob: float = 0.1  # > 0: the label table has a null (CFG) row after the num_classes rows
    qk_norm: bool = False  # REPA's --qk-norm: timm's LayerNorm(head_dim) on q and k (keys attn.{q,k}_norm.*)

    @property
    def out_channels(self) -> int:
        return self.in_channels * 2 if self.learn_sigma else self.in_channels

    def to_dict(self) -> dict:
        return asdict(self)


# The published sizes (DiT paper, Table 1); SiT/REPA/MG reuse them.
DIT_CONFIGS = {
    "DiT-XL/2": dict(depth=28, hidden_size=1152, patch_size=2, num_heads=16),
    "DiT-XL/4": dict(depth=28, hidden_size=1152, patch_size=4, num_heads=16),
    "DiT-L/2": dict(depth=24, hidden_size=1024, patch_size=2, num_heads=16),
    "DiT-B/2": dict(depth=12, hidden_size=768, patch_size=2, num_heads=12),
    "DiT-S/2": dict(depth=12, hidden_size=384, patch_size=2, num_heads=6),
}
_HEADS_BY_WIDTH = {cfg["hidden_size"]: cfg["num_heads"] for cfg in DIT_CONFIGS.values()}


def block_count(state, prefix: str) -> int:
    """Number of blocks under ``prefix`` ("blocks.", MDT's "de_blocks.", …) in a state dict's keys."""
    return 1 + max((int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)), default=-1)


def config_from_state_dict(state: dict, num_heads: int | None = None) -> DiTConfig:
    """Read a DiTConfig off the tensor shapes of a DiT-keyed state dict.

    Head count is visible only through qk-norm's weights (REPA --qk-norm); else it comes from the published
    size with the same width, else one head per 64 channels (the DiT default head width). The last label row
    is read as the null row; dtviz.sources.release_config decides both where the file says more.
    """
    proj = state["x_embedder.proj.weight"]  # (D, C, p, p)
    hidden, in_channels, patch, _ = proj.shape
    tokens = state["pos_embed"].shape[1] if "pos_embed" in state else None
    grid = int(round(math.sqrt(tokens))) if tokens else 32 // patch
    depth = block_count(state, "blocks.")
    out_dim = state["final_layer.linear.weight"].shape[0]  # p*p*out_channels
    out_channels = out_dim // (patch * patch)
    mlp_hidden = state["blocks.0.mlp.fc1.weight"].shape[0]
    qk_norm = "blocks.0.attn.q_norm.weight" in state
    if qk_norm and not num_heads:
        num_heads = hidden // state["blocks.0.attn.q_norm.weight"].shape[0]
    return DiTConfig(
        input_size=grid * patch,
        patch_size=patch,
        in_channels=in_channels,
        hidden_size=hidden,
        depth=depth,
        num_heads=num_heads or _HEADS_BY_WIDTH.get(hidden, max(1, hidden // 64)),
        mlp_ratio=mlp_hidden / hidden,
        num_classes=state["y_embedder.embedding_table.weight"].shape[0] - 1,
        learn_sigma=out_channels == 2 * in_channels,
        qk_norm=qk_norm,
    )


#################################################################################
#               Embedding Layers for Timesteps and Class Labels                 #
#################################################################################


def timestep_features(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """DiT's sinusoidal features: freqs = exp(-ln(max_period) k / half), cat[cos(t f), sin(t f)].

    t: (N,) in the family's own units (integers 0..999 for DiT/MDT, [0, 1] for SiT/REPA/...).
    Returns (N, dim) float32. Cos comes first, unlike diffusers' ``Timesteps(flip_sin_to_cos=True)``
    which also shifts the frequencies (downscale_freq_shift=1).
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class TimestepEmbedder(nn.Module):
    """Scalar timesteps -> (N, D) vectors: Linear(256, D) -> SiLU -> Linear(D, D)."""

    def __init__(self, hidden_size: int, frequency_embedding_size: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(frequency_embedding_size, hidden_size, bias=True),
            nn.SiLU(),
            nn.Linear(hidden_size, hidden_size, bias=True),
        )
        self.frequency_embedding_size = frequency_embedding_size

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_features(t, self.frequency_embedding_size))


class LabelEmbedder(nn.Module):
    """Class labels -> (N, D) vectors. Row ``num_classes`` is the null class used for CFG."""

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + int(dropout_prob > 0), hidden_size)
        self.num_classes = num_classes
        self.dropout_prob = dropout_prob

    def forward(self, labels: torch.Tensor, train: bool = False) -> torch.Tensor:
        if train and self.dropout_prob > 0:
            # Classifier-free guidance is learned by replacing a random share of labels by the null row.
            drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)
        return self.embedding_table(labels)


#################################################################################
#                                 Core DiT Model                                #
#################################################################################


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


class Attention(nn.Module):
    """timm's Attention with the same parameter names (qkv, proj; q_norm, k_norm with qk_norm, as timm's
    ``Attention(qk_norm=True)`` of REPA's SiT: LayerNorm(head_dim), eps 1e-5, with weight and bias)."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool = False):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.q_norm = nn.LayerNorm(dim // num_heads) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(dim // num_heads) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).reshape(B, T, 3, self.num_heads, D // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)  # (B, H, T, D/H)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=self.logit_bias(x))  # (B, H, T, D/H)
        return self.proj(x.transpose(1, 2).reshape(B, T, D))

    def logit_bias(self, x: torch.Tensor) -> torch.Tensor | None:
        """An additive (heads, T, T) bias on the attention logits: none in DiT (MDT adds relative positions)."""
        return None


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU(approximate="tanh")
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DiTBlock(nn.Module):
    """Transformer block with adaptive layer norm zero (adaLN-Zero) conditioning."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0, qk_norm: bool = False):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(hidden_size, num_heads, qk_norm)
        self.norm2 = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(hidden_size, int(hidden_size * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 6 * hidden_size, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(modulate(self.norm1(x), shift_msa, scale_msa))
        return x + gate_mlp.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_mlp, scale_mlp))


class FinalLayer(nn.Module):
    def __init__(self, hidden_size: int, patch_size: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_size * patch_size * out_channels, bias=True)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, in_channels: int, hidden_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden_size, kernel_size=patch_size, stride=patch_size, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (N, C, H, W) -> (N, T, D)


class ConditionedBackbone(nn.Module):
    """What every DiT-family backbone shares (DiT, LightningDiT, MDT): the patch, timestep and label
    embedders under their released names, c = t_embedder(t) + y_embedder(y), and unpatchify."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.num_classes = config.num_classes
        self.in_channels = config.in_channels
        self.out_channels = config.out_channels
        self.patch_size = config.patch_size
        self.x_embedder = PatchEmbed(config.patch_size, config.in_channels, config.hidden_size)
        self.t_embedder = TimestepEmbedder(config.hidden_size)
        self.y_embedder = LabelEmbedder(config.num_classes, config.hidden_size, config.class_dropout_prob)

    def init_embedders(self, label_std: float = 0.02) -> None:
        """DiT's initialisation of the embedders (after xavier on every Linear)."""
        w = self.x_embedder.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.y_embedder.embedding_table.weight, std=label_std)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, p*p*C) -> (N, C, H, W)."""
        c, p = self.out_channels, self.patch_size
        h = w = int(x.shape[1] ** 0.5)
        x = x.reshape(x.shape[0], h, w, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, h * p, w * p)

    def condition(self, t: torch.Tensor, y: torch.Tensor, train: bool = False) -> torch.Tensor:
        """c = t_embedder(t) + y_embedder(y): (N,), (N,) -> (N, D)."""
        return self.t_embedder(t) + self.y_embedder(y, train)


def xavier_linears(module: nn.Module) -> None:
    """DiT's basic init, for ``model.apply``: xavier-uniform weights and zero biases on every Linear."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        nn.init.zeros_(module.bias)


class DiT(ConditionedBackbone):
    """Diffusion model with a Transformer backbone (Peebles & Xie, 2023)."""

    def __init__(self, config: DiTConfig):
        super().__init__(config)
        grid = config.input_size // config.patch_size
        # Fixed, not learned; kept as a Parameter so the key is in the state dict, as in DiT.
        pos = get_2d_sincos_pos_embed(config.hidden_size, grid)
        self.pos_embed = nn.Parameter(torch.from_numpy(pos).float().unsqueeze(0), requires_grad=False)
        self.blocks = nn.ModuleList(
            [DiTBlock(config.hidden_size, config.num_heads, config.mlp_ratio, config.qk_norm) for _ in range(config.depth)]
        )
        self.final_layer = FinalLayer(config.hidden_size, config.patch_size, self.out_channels)
        self.initialize_weights()

    def initialize_weights(self, label_std: float = 0.02) -> None:
        self.apply(xavier_linears)
        self.init_embedders(label_std)
        for block in self.blocks:  # adaLN-Zero: every block starts as the identity
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) latents, t: (N,) timesteps, y: (N,) labels -> (N, out_channels, H, W)."""
        x = self.x_embedder(x) + self.pos_embed  # (N, T, D)
        c = self.condition(t, y, self.training)  # (N, D)
        for block in self.blocks:
            x = block(x, c)
        return self.unpatchify(self.final_layer(x, c))


#################################################################################
#                   Sine/Cosine Positional Embedding Functions                  #
#################################################################################


def get_2d_sincos_pos_embed(embed_dim: int, grid_size: int) -> np.ndarray:
    """(grid_size**2, embed_dim) table, the MAE/DiT construction."""
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0).reshape(2, 1, grid_size, grid_size)
    emb_h = _sincos_1d(embed_dim // 2, grid[0])
    emb_w = _sincos_1d(embed_dim // 2, grid[1])
    return np.concatenate([emb_h, emb_w], axis=1)


def _sincos_1d(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    omega = 1.0 / 10000 ** (np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0))
    out = np.einsum("m,d->md", pos.reshape(-1), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)

"""LightningDiT with the state-dict key names and numerics of hustvl/LightningDiT ``models/lightningdit.py``.

A re-implementation (not a copy) of the released model, so ``load_state_dict(strict=True)`` takes its
``.pt`` files once the ``ema`` / ``model`` wrapper is removed (dtviz.sources.checkpoint.unwrap_state_dict):

    x_embedder.proj.{weight,bias}              patchify conv (timm PatchEmbed)
    pos_embed                                  fixed 2-D sin-cos table, (1, T, D), as DiT
    feat_rope.freqs_{cos,sin}                  use_rope: persistent buffers, (T, D/heads)
    t_embedder.mlp.{0,2}.{weight,bias}         as DiT (same sinusoid, cos first)
    y_embedder.embedding_table.weight          (num_classes + 1, D); the last row is the null (CFG) class
    blocks.{i}.norm{1,2}.weight                use_rmsnorm (else parameter-free LayerNorm, no keys)
    blocks.{i}.attn.{qkv,proj}.{weight,bias}
    blocks.{i}.attn.{q,k}_norm.weight[.bias]   use_qknorm: RMSNorm(head) with use_rmsnorm, else LayerNorm(head)
    blocks.{i}.mlp.{w12,w3}.{weight,bias}      use_swiglu (else blocks.{i}.mlp.{fc1,fc2} as DiT)
    blocks.{i}.adaLN_modulation.1.{weight,bias}  (6D, D), or (4D, D) with wo_shift
    final_layer.{linear,adaLN_modulation.1}.{weight,bias}, final_layer.norm_final.weight (use_rmsnorm)

The released ImageNet-256 models (LightningDiT-XL/1 on VA-VAE f16d32 latents) use SwiGLU, RoPE and
RMSNorm, no qk-norm, shift kept, no learned sigma: the config defaults below. With ``learn_sigma`` the
released forward drops the sigma half, and so does this one. Every ``adaLN_modulation`` receives
c = t_embedder(t) + y_embedder(y) and nothing else does, which is where dtviz's pruning hooks sit.

Sampling follows the released inference config (dtviz.sampling.generate SAMPLER_DEFAULTS["lightningdit"]: Euler ODE
with timestep shift, CFG on the first 3 channels only, unguided for t < cfg_interval_start). Decoding follows
inference.py too: the released latents are VA-VAE f16d32 latents normalised per channel, so samples become
x·std / latent_multiplier + mean (latents_stats.pt; multiplier 1.0) before the VA-VAE decoder, without SD's
0.18215. dtviz.sources.vavae loads the VA-VAE checkpoint (LDM layout) into a diffusers AutoencoderKL from a folder given
with --vae or found as vae/ beside the checkpoint; a VAE or stats file whose channels differ from in_channels
is refused with one sentence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from dtviz.models import dit
from dtviz.models.dit import ConditionedBackbone, DiTConfig, Mlp, block_count, get_2d_sincos_pos_embed, modulate

#################################################################################
#                                   Config                                      #
#################################################################################


@dataclass
class LightningDiTConfig(DiTConfig):
    """DiT's fields with the released ImageNet-256 defaults, plus the architecture switches."""

    input_size: int = 16  # latent side: 256 px through VA-VAE f16
    patch_size: int = 1
    in_channels: int = 32
    learn_sigma: bool = False
    use_qknorm: bool = False
    use_swiglu: bool = True
    use_rope: bool = True
    use_rmsnorm: bool = True
    wo_shift: bool = False


# The published sizes (LightningDiT_models in models/lightningdit.py).
LIGHTNINGDIT_CONFIGS = {
    f"LightningDiT-{name}/{patch}": dict(depth=depth, hidden_size=hidden, patch_size=patch, num_heads=heads)
    for name, depth, hidden, heads, patches in [("B", 12, 768, 12, (1, 2)), ("L", 24, 1024, 16, (2,)),
                                                ("XL", 28, 1152, 16, (1, 2)), ("1p0B", 24, 1536, 24, (1, 2)),
                                                ("1p6B", 28, 1792, 28, (1, 2))]
    for patch in patches
}
_HEADS_BY_WIDTH = {cfg["hidden_size"]: cfg["num_heads"] for cfg in LIGHTNINGDIT_CONFIGS.values()}


def swiglu_hidden(hidden_size: int, mlp_ratio: float) -> int:
    """SwiGLU width as the released block computes it: int(2/3 · int(D · mlp_ratio)) (3072 for XL)."""
    return int(2 / 3 * int(hidden_size * mlp_ratio))


def config_from_state_dict(state: dict, num_heads: int | None = None) -> LightningDiTConfig:
    """Read a LightningDiTConfig off the key names and tensor shapes of a LightningDiT state dict.

    The head width is visible only through RoPE's tables or qk-norm's weights; without either the head
    count comes from the published size of that width, else one head per 64 channels.
    """
    hidden, in_channels, patch, _ = state["x_embedder.proj.weight"].shape  # (D, C, p, p)
    head_dim = (state["feat_rope.freqs_cos"].shape[1] if "feat_rope.freqs_cos" in state
                else state["blocks.0.attn.q_norm.weight"].shape[0] if "blocks.0.attn.q_norm.weight" in state else None)
    tokens = state["pos_embed"].shape[1] if "pos_embed" in state else None
    grid = int(round(math.sqrt(tokens))) if tokens else 16 // patch
    depth = block_count(state, "blocks.")
    out_channels = state["final_layer.linear.weight"].shape[0] // (patch * patch)
    swiglu = "blocks.0.mlp.w12.weight" in state
    if swiglu:
        width = state["blocks.0.mlp.w3.weight"].shape[1]
        mlp_ratio = 4.0 if swiglu_hidden(hidden, 4.0) == width else 1.5 * width / hidden
    else:
        mlp_ratio = state["blocks.0.mlp.fc1.weight"].shape[0] / hidden
    return LightningDiTConfig(
        input_size=grid * patch, patch_size=patch, in_channels=in_channels, hidden_size=hidden, depth=depth,
        num_heads=num_heads or (hidden // head_dim if head_dim else _HEADS_BY_WIDTH.get(hidden, max(1, hidden // 64))),
        mlp_ratio=mlp_ratio, num_classes=state["y_embedder.embedding_table.weight"].shape[0] - 1,
        learn_sigma=out_channels == 2 * in_channels,
        use_qknorm="blocks.0.attn.q_norm.weight" in state, use_swiglu=swiglu, use_rope="feat_rope.freqs_cos" in state,
        use_rmsnorm="blocks.0.norm1.weight" in state,
        wo_shift=state["blocks.0.adaLN_modulation.1.weight"].shape[0] == 4 * hidden,
    )


#################################################################################
#                        RMSNorm, SwiGLU and 2-D RoPE                           #
#################################################################################


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight, normalised in float32 (LLaMA's RMSNorm, eps 1e-6)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


class SwiGLUFFN(nn.Module):
    """w3(SiLU(a) · b) with [a, b] = w12(x) split in halves (one fused Linear, as released)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(a) * b)


def rope_tables(head_dim: int, grid: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """EVA-02's VisionRotaryEmbeddingFast tables, (grid², head_dim) cos and sin, tokens in row-major order.

    The first half of a head rotates with the token's row, the second with its column; within a half,
    pair (2k, 2k+1) turns by pos·θ^(−2k/half). Positions are arange(g)/g·g, as EVA computes them.
    """
    half = head_dim // 2
    freqs = 1.0 / (theta ** (torch.arange(0, half, 2)[: half // 2].float() / half))  # (half/2,)
    pos = torch.arange(grid) / grid * grid
    f = torch.outer(pos, freqs).repeat_interleave(2, dim=-1)  # (g, half): one angle per (re, im) pair
    f = torch.cat([f[:, None, :].expand(grid, grid, half), f[None, :, :].expand(grid, grid, half)], dim=-1)
    return f.cos().reshape(-1, head_dim), f.sin().reshape(-1, head_dim)


class VisionRoPE(nn.Module):
    """Rotates q, k (B, H, T, head_dim) by the tables; they are persistent buffers, so in the state dict."""

    def __init__(self, head_dim: int, grid: int):
        super().__init__()
        cos, sin = rope_tables(head_dim, grid)
        self.register_buffer("freqs_cos", cos)
        self.register_buffer("freqs_sin", sin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
        rotated = torch.stack((-x2, x1), dim=-1).flatten(-2)  # (a, b) -> (-b, a) per pair
        return x * self.freqs_cos + rotated * self.freqs_sin


#################################################################################
#                             Core LightningDiT Model                           #
#################################################################################


class Attention(nn.Module):
    """Multi-head self-attention; optional qk-norm per head, then RoPE on q and k."""

    def __init__(self, dim: int, num_heads: int, qk_norm: bool, rmsnorm: bool):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        norm = (lambda: RMSNorm(self.head_dim)) if rmsnorm else (lambda: nn.LayerNorm(self.head_dim))
        self.q_norm = norm() if qk_norm else nn.Identity()
        self.k_norm = norm() if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, rope: VisionRoPE | None = None) -> torch.Tensor:
        B, T, D = x.shape
        q, k, v = self.qkv(x).reshape(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)  # (B, H, T, D/H)
        if rope is not None:
            q, k = rope(q), rope(k)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, T, D))


def _norm(dim: int, rmsnorm: bool) -> nn.Module:
    return RMSNorm(dim) if rmsnorm else nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)


def _modulate(x: torch.Tensor, shift: torch.Tensor | None, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) if shift is None else modulate(x, shift, scale)


class LightningDiTBlock(nn.Module):
    """DiT's adaLN-Zero block with RMSNorm / SwiGLU / qk-norm / RoPE options; wo_shift drops both shifts."""

    def __init__(self, cfg: LightningDiTConfig):
        super().__init__()
        D = cfg.hidden_size
        self.norm1 = _norm(D, cfg.use_rmsnorm)
        self.attn = Attention(D, cfg.num_heads, cfg.use_qknorm, cfg.use_rmsnorm)
        self.norm2 = _norm(D, cfg.use_rmsnorm)
        mlp_hidden = int(D * cfg.mlp_ratio)
        self.mlp = SwiGLUFFN(D, swiglu_hidden(D, cfg.mlp_ratio)) if cfg.use_swiglu else Mlp(D, mlp_hidden)
        self.wo_shift = cfg.wo_shift
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(D, (4 if cfg.wo_shift else 6) * D, bias=True))

    def forward(self, x: torch.Tensor, c: torch.Tensor, rope: VisionRoPE | None = None) -> torch.Tensor:
        if self.wo_shift:
            scale_msa, gate_msa, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(4, dim=1)
            shift_msa = shift_mlp = None
        else:
            shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + gate_msa.unsqueeze(1) * self.attn(_modulate(self.norm1(x), shift_msa, scale_msa), rope)
        return x + gate_mlp.unsqueeze(1) * self.mlp(_modulate(self.norm2(x), shift_mlp, scale_mlp))


class FinalLayer(dit.FinalLayer):
    """DiT's final layer with LightningDiT's norm (RMSNorm when use_rmsnorm); its shift is kept even with wo_shift."""

    def __init__(self, cfg: LightningDiTConfig):
        super().__init__(cfg.hidden_size, cfg.patch_size, cfg.out_channels)
        self.norm_final = _norm(cfg.hidden_size, cfg.use_rmsnorm)


class LightningDiT(ConditionedBackbone):
    """LightningDiT (Yao, Yang & Wang, CVPR 2025): velocity on t ∈ [0, 1], 0 = noise (SiT's linear path)."""

    def __init__(self, config: LightningDiTConfig):
        super().__init__(config)
        D, grid = config.hidden_size, config.input_size // config.patch_size
        # Fixed, not learned; a Parameter so the key is in the state dict, as released.
        self.pos_embed = nn.Parameter(torch.from_numpy(get_2d_sincos_pos_embed(D, grid)).float().unsqueeze(0),
                                      requires_grad=False)
        # One table for all blocks, held by the model (hence feat_rope.*, not blocks.{i}.*).
        self.feat_rope = VisionRoPE(D // config.num_heads, grid) if config.use_rope else None
        self.blocks = nn.ModuleList([LightningDiTBlock(config) for _ in range(config.depth)])
        self.final_layer = FinalLayer(config)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W), t: (N,) in [0, 1], y: (N,) labels -> (N, C, H, W) velocity (sigma half dropped)."""
        x = self.x_embedder(x) + self.pos_embed  # (N, T, D)
        c = self.condition(t, y, self.training)  # (N, D)
        for block in self.blocks:
            x = block(x, c, self.feat_rope)
        x = self.unpatchify(self.final_layer(x, c))  # (N, out_channels, H, W)
        return x[:, :self.in_channels] if self.config.learn_sigma else x

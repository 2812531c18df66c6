"""MDTv2 (Masked Diffusion Transformer v2, Gao et al. 2023) with the state-dict key names of sail-sg/MDT.

The keys are exactly those of ``masked_diffusion/models.py`` (class ``MDTv2``), so ``load_state_dict``
works on the released checkpoints (e.g. ``mdt_xl2_v2_ckpt.pt``) unchanged:

    x_embedder.proj.{weight,bias}                       patchify conv (timm PatchEmbed)
    pos_embed, decoder_pos_embed                        (1, T, D) each, *learned* (sin-cos init), unlike DiT
    t_embedder.mlp.{0,2}.{weight,bias}                  as DiT
    y_embedder.embedding_table.weight                   (num_classes + 1, D); the last row is the null class
    en_inblocks.{i}.*                                   encoder, first half
    en_outblocks.{i}.*, de_blocks.{i}.*                 the same block plus skip_linear.{weight,bias} (2D -> D)
    sideblocks.0.*                                      side-interpolator (training only)
    mask_token                                          (1, 1, D) (training only)
    final_layer.{linear,adaLN_modulation.1}             as DiT

    each block: attn.{qkv,proj}, attn.rel_pos_bias.relative_position_bias_table  ((2g-1)^2 + 3, heads),
                attn.rel_pos_bias.relative_position_index (int64 buffer, (T, T)), mlp.{fc1,fc2},
                adaLN_modulation.1

Inference (the released ``forward`` with enable_mask=False) runs en_inblocks -> en_outblocks (long U-Net
skips, last in first out) -> + decoder_pos_embed -> de_blocks (each fed the patch embedding as its skip)
-> final layer. The masking and side-interpolator of training are not implemented: their parameters exist
so that loading stays strict. c = t_embedder(t) + y_embedder(y) feeds every ``adaLN_modulation``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from dtviz.models import dit
from dtviz.models.dit import ConditionedBackbone, DiTConfig, FinalLayer, block_count, get_2d_sincos_pos_embed, xavier_linears

#################################################################################
#                                   Config                                      #
#################################################################################


@dataclass
class MDTConfig(DiTConfig):
    """DiT's fields (``depth`` counts MDT's way: 2·((depth − decode_layer) // 2) encoder blocks + decode_layer)."""

    decode_layer: int = 4
    mask_ratio: float | None = None  # training only; None at inference, as in MDT's sampling scripts

    @property
    def half_depth(self) -> int:
        return (self.depth - self.decode_layer) // 2


# The published sizes (models.py MDTv2_*_2). decode_layer: README/run.sh flags (XL 4, S 6); B and L have no
# published run, so MDTv2's constructor default (4).
MDT_CONFIGS = {
    "MDTv2-XL/2": dict(depth=28, hidden_size=1152, patch_size=2, num_heads=16, decode_layer=4),
    "MDTv2-L/2": dict(depth=24, hidden_size=1024, patch_size=2, num_heads=16, decode_layer=4),
    "MDTv2-B/2": dict(depth=12, hidden_size=768, patch_size=2, num_heads=12, decode_layer=4),
    "MDTv2-S/2": dict(depth=12, hidden_size=384, patch_size=2, num_heads=6, decode_layer=6),
}


def config_from_state_dict(state: dict) -> MDTConfig:
    """Read an MDTConfig off the tensor shapes of an MDTv2-keyed state dict.

    Unlike DiT the head count is visible: it is the width of every relative-position bias table.
    """
    hidden, in_channels, patch, _ = state["x_embedder.proj.weight"].shape  # (D, C, p, p)
    grid = int(round(math.sqrt(state["pos_embed"].shape[1])))
    half, decode = block_count(state, "en_inblocks."), block_count(state, "de_blocks.")
    first = "en_inblocks.0." if half else "de_blocks.0."
    out_channels = state["final_layer.linear.weight"].shape[0] // (patch * patch)  # p·p·out_channels rows
    return MDTConfig(
        input_size=grid * patch,
        patch_size=patch,
        in_channels=in_channels,
        hidden_size=hidden,
        depth=2 * half + decode,
        num_heads=state[first + "attn.rel_pos_bias.relative_position_bias_table"].shape[1],
        mlp_ratio=state[first + "mlp.fc1.weight"].shape[0] / hidden,
        num_classes=state["y_embedder.embedding_table.weight"].shape[0] - 1,
        learn_sigma=out_channels == 2 * in_channels,
        decode_layer=decode,
    )


#################################################################################
#                  Attention with relative position bias (BEiT)                 #
#################################################################################


def relative_position_index(grid: int) -> torch.Tensor:
    """(T, T) int64, T = grid²: the bias-table row of each (query, key) pair of a grid×grid token map.

    Row-major tokens (h, w); index = (Δh + g − 1)·(2g − 1) + (Δw + g − 1), Δ = query − key. BEiT's table
    has 3 more rows (for a cls token) that MDT keeps but never indexes.
    """
    h, w = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    h, w = h.flatten(), w.flatten()
    return (h[:, None] - h[None] + grid - 1) * (2 * grid - 1) + (w[:, None] - w[None] + grid - 1)


class RelativePositionBias(nn.Module):
    def __init__(self, grid: int, num_heads: int):
        super().__init__()
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * grid - 1) ** 2 + 3, num_heads))
        # Persistent, as in MDT: the released checkpoints hold it, so strict loading needs the key.
        self.register_buffer("relative_position_index", relative_position_index(grid))

    def forward(self) -> torch.Tensor:
        """(heads, T, T) additive attention bias."""
        T = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]  # (T*T, heads)
        return bias.view(T, T, -1).permute(2, 0, 1)


class Attention(dit.Attention):
    """DiT's attention (qkv, proj) plus a learned relative position bias added to the logits."""

    def __init__(self, dim: int, num_heads: int, grid: int):
        super().__init__(dim, num_heads)
        self.rel_pos_bias = RelativePositionBias(grid, num_heads)

    def logit_bias(self, x: torch.Tensor) -> torch.Tensor:
        # softmax(q·kᵀ/√d + bias)·v: MDT's explicit attention, fused; the scale is the same 1/√head_dim.
        return self.rel_pos_bias().to(x.dtype)


#################################################################################
#                                 Core MDT Model                                #
#################################################################################


class MDTBlock(dit.DiTBlock):
    """DiT's adaLN-Zero block with MDT's attention; with ``skip``, first x <- skip_linear([x, skip])."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float, grid: int, skip: bool = False):
        super().__init__(hidden_size, num_heads, mlp_ratio)
        self.attn = Attention(hidden_size, num_heads, grid)
        self.skip_linear = nn.Linear(2 * hidden_size, hidden_size) if skip else None

    def forward(self, x: torch.Tensor, c: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))  # (N, T, 2D) -> (N, T, D)
        return super().forward(x, c)


class MDTv2(ConditionedBackbone):
    """Masked Diffusion Transformer v2 at inference: an encoder with long skips, then a decoder."""

    def __init__(self, config: MDTConfig):
        super().__init__(config)
        D, grid = config.hidden_size, config.input_size // config.patch_size
        self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid, D))

        def block(skip: bool = False) -> MDTBlock:
            return MDTBlock(D, config.num_heads, config.mlp_ratio, grid, skip)

        self.en_inblocks = nn.ModuleList([block() for _ in range(config.half_depth)])
        self.en_outblocks = nn.ModuleList([block(skip=True) for _ in range(config.half_depth)])
        self.de_blocks = nn.ModuleList([block(skip=True) for _ in range(config.decode_layer)])
        self.sideblocks = nn.ModuleList([block()])  # training only
        self.final_layer = FinalLayer(D, config.patch_size, self.out_channels)
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, grid * grid, D))
        # A parameter either way (frozen without masking), as in MDT, so the key is always there.
        self.mask_token = nn.Parameter(torch.zeros(1, 1, D), requires_grad=config.mask_ratio is not None)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """MDT's initialisation: DiT's, plus both positional tables from sin-cos (then learned)."""
        self.apply(xavier_linears)
        grid = self.config.input_size // self.patch_size
        table = torch.from_numpy(get_2d_sincos_pos_embed(self.config.hidden_size, grid)).float().unsqueeze(0)
        self.pos_embed.data.copy_(table)
        self.decoder_pos_embed.data.copy_(table)
        self.init_embedders()
        for module in self.modules():
            if isinstance(module, RelativePositionBias):
                nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)
        for block in [*self.en_inblocks, *self.en_outblocks, *self.de_blocks, *self.sideblocks]:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)  # adaLN-Zero
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if self.config.mask_ratio is not None:
            nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W), t: (N,) integer timesteps 0..999, y: (N,) labels -> (N, out_channels, H, W)."""
        x = self.x_embedder(x) + self.pos_embed  # (N, T, D)
        c = self.condition(t, y, self.training)  # (N, D)
        embedded, skips = x, []
        for block in self.en_inblocks:
            x = block(x, c)
            skips.append(x)
        for block in self.en_outblocks:  # U-Net pairing: the last in-block feeds the first out-block
            x = block(x, c, skips.pop())
        # Without masking MDT skips the side-interpolator but still adds its positional table.
        x = x + self.decoder_pos_embed
        for block in self.de_blocks:
            x = block(x, c, embedded)
        return self.unpatchify(self.final_layer(x, c))

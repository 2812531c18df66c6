"""Models: the backbones and the devices dtviz builds them on, as plain ``torch.nn.Module`` classes.

``dit`` (DiT / SiT / REPA / MG), ``lightningdit`` and ``mdt`` keep their releases' state-dict key names;
the registry below maps a family to its backbone. ``device`` resolves cuda / mps / cpu and the thread policy.
Nothing here opens a user's file (that is dtviz.sources).

A backbone is a ``torch.nn.Module`` with the state-dict key names of its family's released checkpoints and:

    forward(x, t, y) -> (N, out_channels, H, W)     t in the family's own units, y class ids (row K = null)
    config.{in_channels, input_size, learn_sigma}   what the samplers and the VAE need
    y_embedder                                      label table; the pruning hooks read each row's label here
    every module named ``*adaLN_modulation``        receives c as its first positional argument

so dtviz.sampling and dtviz.pruning serve every family without knowing which it is.

Imports: dtviz.errors and this wing only.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable


@dataclass(frozen=True)
class Backbone:
    name: str
    model_class: type                           # Model(config)
    config_class: type                          # dataclass; a dtviz sidecar's "model" dict builds one
    config_from_state_dict: Callable            # (state) -> config, from tensor shapes
    required_keys: tuple[str, ...]              # present in any full checkpoint (not an embedder-only file)
    ignored_prefixes: tuple[str, ...] = ()      # training-only keys a checkpoint may hold (REPA's projectors)

    def build(self, state=None, config: dict | None = None, overrides: dict | None = None):
        """``overrides``: config fields the shapes cannot show (num_heads, num_classes, class_dropout_prob), as
        read by dtviz.sources.release_config from a training wrapper, a sidecar or the user."""
        cfg = self.config_class(**config) if config else self.config_from_state_dict(state)
        if overrides:
            cfg = replace(cfg, **{k: v for k, v in overrides.items() if k in {f.name for f in fields(cfg)}})
        return self.model_class(cfg)


def _dit() -> Backbone:
    from dtviz.models.dit import DiT, DiTConfig, config_from_state_dict

    return Backbone("DiT", DiT, DiTConfig, config_from_state_dict,
                    ("x_embedder.proj.weight", "final_layer.linear.weight", "blocks.0.adaLN_modulation.1.weight"),
                    ignored_prefixes=("projectors.",))


def _mdt() -> Backbone:
    from dtviz.models.mdt import MDTConfig, MDTv2, config_from_state_dict

    return Backbone("MDTv2", MDTv2, MDTConfig, config_from_state_dict,
                    ("x_embedder.proj.weight", "pos_embed", "final_layer.linear.weight", "decoder_pos_embed",
                     "de_blocks.0.skip_linear.weight", "de_blocks.0.attn.rel_pos_bias.relative_position_bias_table"))


def _lightningdit() -> Backbone:
    from dtviz.models.lightningdit import LightningDiT, LightningDiTConfig, config_from_state_dict

    return Backbone("LightningDiT", LightningDiT, LightningDiTConfig, config_from_state_dict,
                    ("x_embedder.proj.weight", "pos_embed", "final_layer.linear.weight",
                     "blocks.0.adaLN_modulation.1.weight", "blocks.0.attn.qkv.weight"))


# family key -> factory (imported lazily: only the family being sampled is loaded)
_FACTORIES: dict[str, Callable[[], Backbone]] = {"dit": _dit, "sit": _dit, "repa": _dit, "mg": _dit, "mdt": _mdt,
                                                 "lightningdit": _lightningdit}


def backbone_for(family: str) -> Backbone | None:
    """The backbone that samples ``family``, or None when dtviz has none (analysis only)."""
    factory = _FACTORIES.get(family)
    return factory() if factory else None

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

import math
from dataclasses import dataclass, fields, replace
from typing import Callable

from dtviz.errors import DtvizInputError

# Settings a sidecar's "model" dict may give that the tensor shapes also show: they must agree with the weights,
# so a config.json cannot make dtviz build a model larger than its file (a 6 KB config saying hidden_size 4096,
# depth 28 would otherwise allocate ~34 GB before the weights are refused). input_size is compared only where the
# file holds pos_embed; without it the token grid is bounded by MAX_TOKENS.
SHAPE_SETTINGS = ("patch_size", "in_channels", "hidden_size", "depth", "mlp_ratio", "learn_sigma", "decode_layer")
MAX_TOKENS = 128 * 128  # tokens per image: DiT-XL/2 at 512 px has 32 × 32; SD3 at 1024 px 64 × 64


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
        read by dtviz.sources.release_config from a training wrapper, a sidecar or the user. A sidecar ``config``
        is checked first (``settings``): known names, plain values, and the shapes' own values where both exist."""
        cfg = self.config_class(**self.settings(config, state)) if config else self.config_from_state_dict(state)
        if overrides:
            cfg = replace(cfg, **{k: v for k, v in overrides.items() if k in {f.name for f in fields(cfg)}})
        side, patch = getattr(cfg, "input_size", 0), max(int(getattr(cfg, "patch_size", 1) or 1), 1)
        if (side // patch) ** 2 > MAX_TOKENS:
            raise DtvizInputError(f"expected at most {MAX_TOKENS:,} tokens per image, but input_size {side} with patch "
                                  f"size {patch} makes {(side // patch) ** 2:,}; dtviz does not build that model.")
        return self.model_class(cfg)

    def settings(self, config: dict, state=None, where: str = "config.json") -> dict:
        """A sidecar's model settings as the config class takes them: known names only, each a number or true/false
        as its field expects, and equal to what ``state``'s shapes show (SHAPE_SETTINGS). Errors name the
        setting, never a text value (the file may come with a shared link)."""
        known = {f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
                 for f in fields(self.config_class)}
        unknown = [k for k in config if k not in known]
        if unknown:
            raise DtvizInputError(f"expected the model settings in {where} to be among {self.name}'s "
                                  f"({', '.join(sorted(known))}), but {len(unknown)} of its names are not.")
        for key, value in config.items():
            kind = known[key]
            ok = (isinstance(value, bool) if kind == "bool" else
                  isinstance(value, int) and not isinstance(value, bool) if kind == "int" else
                  (value is None or isinstance(value, (int, float)) and not isinstance(value, bool)) if "None" in kind else
                  isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
            if not ok or (kind == "int" and value < 0):
                raise DtvizInputError(f"expected {key!r} in the model settings of {where} to be "
                                      f"{'true or false' if kind == 'bool' else 'a non-negative whole number' if kind == 'int' else 'a number'}"
                                      f", but found {'a ' + type(value).__name__ if not isinstance(value, (int, float)) else 'a value out of range'}.")
        if state is not None:
            seen = self.config_from_state_dict(state)
            checked = SHAPE_SETTINGS  # mlp_ratio within 2 %: widths are truncated to whole channels + (("input_size",) if "pos_embed" in state else ())
            for key in checked:
                if key in config and hasattr(seen, key) and not math.isclose(float(config[key]), float(getattr(seen, key)), rel_tol=0.02):
                    raise DtvizInputError(f"expected the model settings in {where} to describe the weights beside it, but "
                                          f"its {key} is {config[key]} where the weights' shapes give {getattr(seen, key)}; "
                                          "fix or remove the setting.")
        return config


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


def known_settings() -> set[str]:
    """Every setting name a sidecar's "model" dict may hold, across the backbones."""
    return {f.name for factory in set(_FACTORIES.values()) for f in fields(factory().config_class)}


def backbone_for(family: str) -> Backbone | None:
    """The backbone that samples ``family``, or None when dtviz has none (analysis only)."""
    factory = _FACTORIES.get(family)
    return factory() if factory else None

"""What a training wrapper says about the model it holds, and the readings dtviz takes where nothing says.

Each release's train.py saves the weights inside a wrapper that also records how the model was built:

    DiT, SiT, REPA    {"model", "ema", "opt", "args": argparse.Namespace}
                      args.model = "DiT-XL/2" | "SiT-XL/2" (a key of the release's DiT_models / SiT_models),
                      args.num_classes; SiT adds path_type, REPA enc_type, encoder_depth, qk_norm, legacy
    LightningDiT      {"model", "ema", "opt", "config": train_config}   (its YAML as a dict)
                      config["model"] = {model_type: "LightningDiT-XL/1", use_qknorm, use_swiglu, ...},
                      config["data"]["num_classes"]

Two things a state dict's shapes cannot show are read from there (or from dtviz's config.json, or set by the
user): the head count (a model name maps to its release's registry sizes) and whether the label table's last
row is the null (CFG) row (num_classes rows without it, num_classes + 1 with it). Where nothing says, the
reading taken is written into the source's family_note, with the flag that changes it, never silently.
"""
from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field

from dtviz.errors import DtvizInputError

NULL_ROW_CHOICES = ("auto", "yes", "no")

# The released registries: name -> (depth, hidden_size, num_heads); the patch size is the name's "/p".
# DiT models.py DiT_models, SiT models.py SiT_models and REPA models/sit.py SiT_models share these sizes.
_DIT_SIZES = {"XL": (28, 1152, 16), "L": (24, 1024, 16), "B": (12, 768, 12), "S": (12, 384, 6)}
# LightningDiT models/lightningdit.py LightningDiT_models.
_LIGHTNINGDIT_SIZES = {"XL": (28, 1152, 16), "L": (24, 1024, 16), "B": (12, 768, 12),
                       "1p0B": (24, 1536, 24), "1p6B": (28, 1792, 28)}


def registry_size(name: str | None) -> dict:
    """depth / hidden_size / patch_size / num_heads behind a release's model name ("SiT-XL/2"), else {}."""
    if not isinstance(name, str) or "-" not in name or "/" not in name:
        return {}
    prefix, rest = name.split("-", 1)
    size, _, patch = rest.partition("/")
    table = _LIGHTNINGDIT_SIZES if prefix == "LightningDiT" else _DIT_SIZES if prefix in ("DiT", "SiT") else {}
    if size not in table or not patch.isdigit():
        return {}
    depth, hidden, heads = table[size]
    return dict(depth=depth, hidden_size=hidden, patch_size=int(patch), num_heads=heads)


#################################################################################
#                            The training record                                #
#################################################################################


@dataclass
class TrainingRecord:
    """What the wrapper recorded; ``where`` names it in notes ("" when the file is a plain state dict)."""

    where: str = ""
    model_name: str | None = None
    family: str | None = None
    family_reason: str = ""
    values: dict = field(default_factory=dict)  # num_classes, class_dropout_prob, num_heads, qk_norm, ...
    plain: dict = field(default_factory=dict)  # JSON-safe copy, for info.extra["training_args"]


def read_training_record(obj) -> TrainingRecord:
    """The record of a DiT/SiT/REPA ``args`` Namespace or a LightningDiT ``config`` dict, if ``obj`` holds one."""
    if not isinstance(obj, Mapping):
        return TrainingRecord()
    args = obj.get("args") if "args" in obj else None
    if isinstance(args, argparse.Namespace):
        args = vars(args)
    if isinstance(args, Mapping) and args:
        return _from_args(dict(args))
    config = obj.get("config") if "config" in obj else None
    if isinstance(config, Mapping) and isinstance(config.get("model"), Mapping):
        return _from_lightning_config(config)
    return TrainingRecord()


def _from_args(args: dict) -> TrainingRecord:
    name = args.get("model") if isinstance(args.get("model"), str) else None
    values = _typed({k: args.get(k) for k in ("num_classes", "class_dropout_prob", "num_heads", "qk_norm", "legacy",
                                              "encoder_depth", "learn_sigma")})
    family, reason = None, ""
    if any(k in args for k in ("enc_type", "proj_coeff", "encoder_depth")):
        family, reason = "repa", "training args with enc_type / encoder_depth (REPA's train.py)"
    elif name and name.startswith("SiT-"):
        family, reason = "sit", f"training args model={name!r} (SiT's train.py)"
    elif name and name.startswith("DiT-"):
        family, reason = "dit", f"training args model={name!r} (DiT's train.py)"
    return TrainingRecord("the training args", name, family, reason, values, _json_safe(args))


def _from_lightning_config(config: Mapping) -> TrainingRecord:
    model = config["model"]
    name = model.get("model_type") if isinstance(model.get("model_type"), str) else None
    data = config.get("data") if isinstance(config.get("data"), Mapping) else {}
    values = _typed({**{k: model.get(k) for k in ("use_qknorm", "use_swiglu", "use_rope", "use_rmsnorm", "wo_shift",
                                                  "learn_sigma", "num_heads", "class_dropout_prob")},
                     "num_classes": data.get("num_classes")})
    family = "lightningdit" if name and name.startswith("LightningDiT") else None
    reason = f"training config model_type={name!r} (LightningDiT's train.py)" if family else ""
    return TrainingRecord("the training config", name, family, reason, values, _json_safe(config))


_COUNTS = ("num_classes", "num_heads", "encoder_depth")


def _typed(values: dict) -> dict:
    """Only values of the type train.py writes: positive int counts, a float probability, bool switches; anything
    else (a file can hold any tensor or string there) is left out, as if not recorded."""
    out = {}
    for key, v in values.items():
        if key in _COUNTS:
            ok = isinstance(v, int) and not isinstance(v, bool) and v > 0
        elif key == "class_dropout_prob":
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1
        else:
            ok = isinstance(v, bool)
        if ok:
            out[key] = v
    return out


def _json_safe(value, depth: int = 0):
    if isinstance(value, Mapping) and depth < 3:
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()
                if isinstance(v, (str, int, float, bool, type(None), Mapping, list, tuple))}
    if isinstance(value, (list, tuple)) and depth < 3:
        return [_json_safe(v, depth + 1) for v in value if isinstance(v, (str, int, float, bool, type(None)))]
    return value if isinstance(value, (str, int, float, bool, type(None))) else None


#################################################################################
#                                  Readings                                     #
#################################################################################


@dataclass
class Readings:
    """How the label table and the attention are read: ``overrides`` go into the backbone's config."""

    null_row: bool
    num_classes: int
    overrides: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def read_null_row(rows: int, record: TrainingRecord, sidecar_model: Mapping | None, null_row: str) -> tuple[bool, str]:
    """Whether the last of ``rows`` label rows is the null (CFG) row, and a note when that is a guess or a choice."""
    if null_row not in NULL_ROW_CHOICES:
        raise DtvizInputError(f"null_row must be one of {', '.join(NULL_ROW_CHOICES)}; got {null_row!r}.")
    if null_row != "auto":
        return null_row == "yes", f"null row: {null_row} (set by the user)"
    for where, values in (("config.json's model", sidecar_model or {}), (record.where, record.values)):
        if values.get("num_classes") is not None:
            n = int(values["num_classes"])
            if rows not in (n, n + 1):
                raise DtvizInputError(
                    f"num_classes = {n} in {where}, so the label table should have {n} or {n + 1} rows (with the "
                    f"null row), but it has {rows}; pass --null-row yes or no to read it anyway.")
            return rows == n + 1, ""
        if values.get("class_dropout_prob") is not None:
            return float(values["class_dropout_prob"]) > 0, ""
    return True, (f"the file does not say whether the last of its {rows} label rows is the null (CFG) row; read as "
                  f"{rows - 1} classes + the null row, as every release trains with label dropout — pass --null-row no "
                  f"if it was trained with class_dropout_prob=0")


def read_heads(hidden: int, visible_head_dim: int | None, family: str, record: TrainingRecord,
               sidecar_model: Mapping | None, num_heads: int | None) -> tuple[int | None, str]:
    """The head count and a note when it is assumed; None when the shapes show it (the backbone reads it)."""
    if num_heads is not None:
        return _dividing(num_heads, hidden, "num_heads"), f"{num_heads} attention heads (set by the user)"
    if family == "mdt" or visible_head_dim:
        return None, ""  # MDT's relative-position tables, qk-norm weights and RoPE tables show the head width
    if sidecar_model and sidecar_model.get("num_heads"):
        return _dividing(sidecar_model["num_heads"], hidden, "config.json's num_heads"), ""
    if record.values.get("num_heads"):
        return _dividing(record.values["num_heads"], hidden, f"num_heads in {record.where}"), ""
    size = registry_size(record.model_name)
    conflict = ""
    if size and size["hidden_size"] == hidden:
        return size["num_heads"], ""
    if size:
        conflict = f"{record.where} name {record.model_name!r} (width {size['hidden_size']}) does not match the weights' width {hidden}; "
    from dtviz.models.dit import DIT_CONFIGS
    from dtviz.models.lightningdit import LIGHTNINGDIT_CONFIGS

    published = {c["hidden_size"]: (c["num_heads"], n) for n, c in {**DIT_CONFIGS, **LIGHTNINGDIT_CONFIGS}.items()}
    if hidden in published:
        heads, why = published[hidden][0], f"as the published {published[hidden][1].split('/')[0]} of width {hidden}"
    else:
        heads, why = max(1, hidden // 64), "one per 64 channels, DiT's head width"
    return heads, (f"{conflict}the file does not record the head count; assumed {heads} heads ({why}) — pass "
                   f"--num-heads N (or \"num_heads\" in config.json's \"model\") if it was trained with another")


def repa_legacy_layout(state: Mapping) -> tuple[Mapping, str]:
    """REPA's ``--legacy`` checkpoints keep the blocks after the encoder as ``decoder_blocks.{i}``; REPA's own
    ``load_legacy_checkpoints`` renames them ``blocks.{i + encoder_depth}``, and so does this view (encoder_depth
    = the number of ``blocks.*`` in the file). Other files come back unchanged, with no note."""
    if not any(str(k).startswith("decoder_blocks.") for k in state):
        return state, ""
    from dtviz.sources.checkpoint import RenamedKeys
    from dtviz.models.dit import block_count

    encoder_depth = block_count(state, "blocks.")
    names = {}
    for key in state:
        parts = str(key).split(".")
        if parts[0] == "decoder_blocks" and len(parts) > 2 and parts[1].isdigit():
            parts[:2] = ["blocks", str(int(parts[1]) + encoder_depth)]
        names[".".join(parts)] = key
    return RenamedKeys(state, names), (f"REPA's legacy layout: decoder_blocks.{{i}} read as blocks.{{i + {encoder_depth}}}, "
                                       "as REPA's load_legacy_checkpoints does")


def _dividing(heads, hidden: int, what: str) -> int:
    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1 or hidden % heads:
        raise DtvizInputError(f"{what} must be a whole number that divides the width {hidden}; got {heads!r}.")
    return heads


def shape_conflicts(record: TrainingRecord, seen: Mapping) -> str:
    """A note naming each architecture argument of the record that the weights contradict (the weights are what
    is built, so they win; a release would refuse such a file at load_state_dict). ``seen``: what the shapes show
    (hidden_size, depth, patch_size, qk_norm / use_* switches)."""
    said = dict(record.values)
    size = registry_size(record.model_name)
    if size and size["hidden_size"] == seen.get("hidden_size"):
        said.update(depth=size["depth"], patch_size=size["patch_size"])
    if "use_qknorm" in said:
        said["qk_norm"] = said.pop("use_qknorm")
    wrong = [f"{k} = {said[k]!r} (the weights: {seen[k]!r})" for k in
             ("depth", "patch_size", "qk_norm", "use_swiglu", "use_rope", "use_rmsnorm", "wo_shift")
             if k in said and k in seen and said[k] is not None and bool(said[k] == seen[k]) is False]
    return f"{record.where} give {', '.join(wrong)}; the weights were used" if wrong else ""

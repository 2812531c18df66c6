"""Native DiT-family checkpoints: DiT, SiT, REPA, LightningDiT, MDT, Model-Guidance, and the built-in model.

c is computed from five tensors that every family shares, with DiT's own formula:

    y_embedder.embedding_table.weight   (K + 1, d)   row K is the null (CFG) class; (K, d) without one
                                                     (class_dropout_prob = 0: dtviz.sources.release_config)
    t_embedder.mlp.0.{weight,bias}      (d, 256), (d,)
    t_embedder.mlp.2.{weight,bias}      (d, d), (d,)

    c(y, t) = table[y] + W2 · SiLU(W0 · [cos(t·f), sin(t·f)] + b0) + b2,   f_k = exp(−ln(10⁴)·k/128)

Only those tensors are read to compute c (lazily, see dtviz.sources.checkpoint); the whole model is built
only when sampling is asked for.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from dtviz.sources import budgets
from dtviz.sources.checkpoint import nearest_keys, read_any, unwrap_state_dict
from dtviz.models.device import resolve_device
from dtviz.errors import DtvizInputError
from dtviz.sources.families import FAMILIES, detect_family, get_family
from dtviz.models import backbone_for, known_settings
from dtviz.models.dit import timestep_features
from dtviz.sources.base import Source, SourceInfo, check_finite
from dtviz.sources.release_config import (read_heads, read_null_row, read_training_record, repa_legacy_layout,
                                          shape_conflicts)

LABEL_KEY = "y_embedder.embedding_table.weight"
T_KEYS = ("t_embedder.mlp.0.weight", "t_embedder.mlp.0.bias", "t_embedder.mlp.2.weight", "t_embedder.mlp.2.bias")
SIDECAR = "config.json"  # dtviz layout: {"family", "model", "class_names", ...} beside model.safetensors
MODEL_FILE = "model.safetensors"


class NativeSource(Source):
    def __init__(self, path: str, family: str = "auto", device=None, sidecar: dict | None = None, contents=None,
                 num_heads: int | None = None, null_row: str = "auto"):
        """``contents``: what ``read_any`` already returned for ``path`` (so the file is read once).
        ``num_heads`` / ``null_row`` (auto|yes|no): what the file may not say (dtviz.sources.release_config)."""
        self.path = path
        weights_path = os.path.join(path, MODEL_FILE) if os.path.isdir(path) else path
        self.sidecar = check_sidecar(sidecar if sidecar is not None else find_sidecar(weights_path), SIDECAR)
        raw = contents if contents is not None else read_any(weights_path)
        self.record = read_training_record(raw)  # DiT/SiT/REPA args or LightningDiT config, if the wrapper has one
        unwrapped = unwrap_state_dict(raw, repr(weights_path))
        self._file_keys = list(unwrapped.keys())  # before any renaming: what family detection reads
        self.state, layout_note = repa_legacy_layout(unwrapped)
        self.weights_path = weights_path
        device = resolve_device(device)
        family_obj, note = self._family(family)
        self.label_table, self.t_mlp = self._embedder_tensors(weights_path)
        dim = self.label_table.shape[1]
        notes = self._read_architecture(family_obj.key, num_heads, null_row, weights_path)
        note = "; ".join(n for n in (note, layout_note, *notes) if n)
        num_classes = self.label_table.shape[0] - int(self.null_row)
        names = list(self.sidecar.get("class_names", []))[:num_classes] if self.sidecar else []
        names += [f"class {i}" for i in range(len(names), num_classes)]
        self._vae_extra: dict = {}
        can_sample, sample_note = self._sampling_support(family_obj.key)
        self.info = SourceInfo(
            name=self.sidecar.get("name", os.path.basename(os.path.normpath(path))) if self.sidecar else os.path.basename(path),
            family=family_obj, num_classes=num_classes, dim=dim, class_names=names, device=device,
            parameters=_count_parameters(self.state), family_note=note, can_sample=can_sample,
            sample_note=sample_note, extra={"path": path, "null_row": self.null_row, "readings": list(self.readings),
                                            **self._vae_extra,
                                            **({"training_args": self.record.plain} if self.record.plain else {})},
        )
        self._t_cache: dict[float, torch.Tensor] = {}
        self._on_device = {k: v.to(device) for k, v in self.t_mlp.items()}
        self._table_device = self.label_table.to(device)

    # ------------------------------------------------------------------------------------ loading
    def _family(self, family: str):
        self.family_ambiguous = False  # True only when plain keys could not tell DiT / SiT / MG apart
        if family and family != "auto":
            fam = get_family(family)
            if not fam.native:
                raise DtvizInputError(f"family {family!r} is not a native DiT-family checkpoint; use one of {', '.join(k for k, f in FAMILIES.items() if f.native)}.")
            return fam, f"family set by the user: {fam.label}"
        if self.sidecar.get("family"):
            fam = get_family(self.sidecar["family"])
            return fam, f"family declared in {SIDECAR}: {fam.label}"
        det = detect_family(self._file_keys, {k: _shape(self.state, k) for k in
                                                ("x_embedder.proj.weight", "blocks.0.adaLN_modulation.1.weight") if k in self.state})
        if self.record.family and (det.ambiguous or det.family.key == self.record.family):
            return FAMILIES[self.record.family], f"{FAMILIES[self.record.family].label}: {self.record.family_reason}"
        if self.record.family:  # unambiguous keys win over a wrapper that names another release's model
            return det.family, f"{det.reason} (though {self.record.family_reason})"
        self.family_ambiguous = det.ambiguous
        return det.family, det.reason

    def _read_architecture(self, family: str, num_heads, null_row: str, where: str) -> list[str]:
        """Sets null_row and the backbone overrides the shapes cannot show; returns the notes of what was assumed."""
        rows, model_cfg = self.label_table.shape[0], self.sidecar.get("model") or {}
        self.null_row, null_note = read_null_row(rows, self.record, model_cfg, null_row)
        if self.null_row and rows < 2:
            raise DtvizInputError(
                f"expected {LABEL_KEY!r} of shape (num_classes + 1, d) with at least one class plus the null row, but "
                f"found shape {tuple(self.label_table.shape)} in {where!r}; pass --null-row no if it has no null row.")
        self.overrides = {"num_classes": rows - int(self.null_row)}
        if not self.null_row:
            self.overrides["class_dropout_prob"] = 0.0
        elif model_cfg.get("class_dropout_prob", 0.1) <= 0:
            self.overrides["class_dropout_prob"] = 0.1
        heads_note = ""
        if "x_embedder.proj.weight" in self.state:  # a full model: its attention will be built
            head_dim = next((_shape(self.state, k)[-1] for k in ("blocks.0.attn.q_norm.weight", "feat_rope.freqs_cos")
                             if k in self.state), None)
            heads, heads_note = read_heads(_shape(self.state, "x_embedder.proj.weight")[0], head_dim, family,
                                           self.record, model_cfg, num_heads)
            if heads:
                self.overrides["num_heads"] = heads
        # what the file did not say (a reading was assumed, or set by the user): the dashboard offers these settings
        self.readings = tuple(name for name, said in (("null_row", null_note), ("num_heads", heads_note)) if said)
        return [n for n in (null_note, heads_note, shape_conflicts(self.record, self._seen())) if n]

    def _seen(self) -> dict:
        """The architecture the shapes show, for shape_conflicts (only what the keys of a full model tell)."""
        if "x_embedder.proj.weight" not in self.state or not self.record.values and not self.record.model_name:
            return {}
        from dtviz.models.dit import block_count

        hidden, _, patch, _ = _shape(self.state, "x_embedder.proj.weight")
        has = lambda key: key in self.state  # noqa: E731
        ada = _shape(self.state, "blocks.0.adaLN_modulation.1.weight") if has("blocks.0.adaLN_modulation.1.weight") else None
        return dict(hidden_size=hidden, patch_size=patch, depth=block_count(self.state, "blocks."),
                    qk_norm=has("blocks.0.attn.q_norm.weight"), use_swiglu=has("blocks.0.mlp.w12.weight"),
                    use_rope=has("feat_rope.freqs_cos"), use_rmsnorm=has("blocks.0.norm1.weight"),
                    wo_shift=bool(ada and ada[0] == 4 * hidden))

    def _embedder_tensors(self, where: str) -> tuple[torch.Tensor, dict]:
        state = self.state
        if LABEL_KEY not in state:
            raise DtvizInputError(
                f"expected a class label table {LABEL_KEY!r} in {where!r} (a class-conditional DiT-family checkpoint), "
                f"but it is missing; nearest-looking keys: {nearest_keys(state, LABEL_KEY)}."
            )
        missing = [k for k in T_KEYS if k not in state]
        if missing:
            raise DtvizInputError(
                f"expected the timestep MLP {missing[0]!r} in {where!r}, but it is missing; nearest-looking keys: {nearest_keys(state, missing[0])}."
            )
        table = _float_tensor(state[LABEL_KEY], LABEL_KEY, where)
        mlp = {k: _float_tensor(state[k], k, where) for k in T_KEYS}
        if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 1:
            raise DtvizInputError(
                f"expected {LABEL_KEY!r} of shape (num_classes + 1, d) (or (num_classes, d) without a null row), "
                f"but found shape {tuple(table.shape)} in {where!r}."
            )
        d = table.shape[1]
        w0, b0, w2, b2 = (mlp[k] for k in T_KEYS)
        expected = {T_KEYS[0]: (d, w0.shape[-1] if w0.ndim == 2 else -1), T_KEYS[1]: (d,), T_KEYS[2]: (d, d), T_KEYS[3]: (d,)}
        for key, shape in expected.items():
            if tuple(mlp[key].shape) != shape:
                raise DtvizInputError(
                    f"shape mismatch in {where!r}: the label table has d = {d}, so {key!r} should have shape {shape}, "
                    f"but it has {tuple(mlp[key].shape)}."
                )
        check_finite(LABEL_KEY, table, repr(where))
        for k, v in mlp.items():
            check_finite(k, v, repr(where))
        return table, mlp

    def _sampling_support(self, family: str) -> tuple[bool, str]:
        backbone = backbone_for(family)
        if backbone is None:
            return False, f"sampling {FAMILIES[family].label} needs its own backbone, which dtviz does not implement yet; analysis only."
        if family == "mdt" and "blocks.0.adaLN_modulation.1.weight" in self.state:
            return False, "this is an MDTv1 checkpoint (blocks.* + sideblocks.*); dtviz samples MDTv2 only, so analysis only."
        missing = [k for k in backbone.required_keys if k not in self.state]
        if missing:
            return False, f"the file holds only part of a model (no {missing[0]!r}); analysis only."
        return self._latent_support()

    def _latent_support(self) -> tuple[bool, str]:
        """Latent models (in_channels not 1 or 3) sample only through a VAE (dtviz.sources.vae.find_vae: an AutoencoderKL
        folder, or a VA-VAE folder for LightningDiT) whose latent channels match; sets _vae_extra."""
        from dtviz.sources.vae import find_vae, latent_channel_note, missing_vae_note

        model_cfg = self.sidecar.get("model") or {}
        shapes = self.state.shapes() if hasattr(self.state, "shapes") else None
        weight_shape = shapes["x_embedder.proj.weight"] if shapes is not None else self.state["x_embedder.proj.weight"].shape
        in_channels = int(model_cfg.get("in_channels", weight_shape[1]))
        if in_channels in (1, 3):
            return True, ""
        vae = find_vae(self.path, latent_channels=in_channels)
        self._vae_extra = {"latent": True, "vae": vae}
        if not vae:
            return False, missing_vae_note(self.path)
        mismatch = latent_channel_note(vae, in_channels)
        return (False, mismatch) if mismatch else (True, "")

    @property
    def t_bias_name(self) -> str:
        return T_KEYS[3]  # t_embedder.mlp.2.bias: every family read here has it (T_KEYS are required)

    # ---------------------------------------------------------------------------------- embeddings
    def t_embedding(self, t: float) -> torch.Tensor:
        """(d,) timestep embedding at t (the family's own units), on the source's device."""
        if t not in self._t_cache:
            m = self._on_device
            feats = timestep_features(torch.tensor([t], device=self.device), dim=m[T_KEYS[0]].shape[1])
            h = F.silu(F.linear(feats, m[T_KEYS[0]], m[T_KEYS[1]]))
            self._t_cache[t] = F.linear(h, m[T_KEYS[2]], m[T_KEYS[3]])[0]
        return self._t_cache[t]

    def _rows(self, ids: np.ndarray, t, part: str, batch_size: int) -> np.ndarray:
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        t_emb = self.t_embedding(t)
        for i in range(0, len(ids), batch_size):
            idx = torch.as_tensor(ids[i:i + batch_size], device=self.device)
            if part == "t":
                rows = t_emb.expand(len(idx), -1)
            else:
                rows = self._table_device[idx]
                if part == "y+t":
                    rows = rows + t_emb
            out[i:i + len(idx)] = rows.float().cpu().numpy()
        return out

    # ------------------------------------------------------------------------------------ sampling
    def build_model(self) -> torch.nn.Module:
        """The family's backbone (dtviz.models.backbone_for) on the source's device, in eval mode (weights loaded strictly)."""
        if not self.info.can_sample and not self.info.extra.get("latent"):  # a latent model may get --vae later
            raise DtvizInputError(f"this source cannot sample: {self.info.sample_note}")
        backbone = backbone_for(self.family.key)
        model = backbone.build(self.state, self.sidecar.get("model"), self.overrides)
        own = model.state_dict()
        foreign = [k for k in self.state.keys() if k not in own and not k.startswith(backbone.ignored_prefixes)]
        if foreign:  # e.g. an MDTv1 file (blocks.* + sideblocks.*) read as DiT: refuse rather than drop its weights
            raise DtvizInputError(
                f"the weights in {self.weights_path!r} hold {len(foreign)} key(s) a {backbone.name} does not have "
                f"(first: {sorted(foreign)[0]!r}); family {self.family.label} may be wrong — pass the family explicitly.")
        # Integer buffers (MDT's relative_position_index) load as they are; every weight must be floating point.
        state = {k: v if isinstance(v, torch.Tensor) and not own[k].is_floating_point()
                 else _float_tensor(v, k, self.weights_path) for k, v in self.state.items() if k in own}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise DtvizInputError(f"the weights in {self.weights_path!r} do not fit a {backbone.name} of the shape they imply ({str(err).splitlines()[0]}).") from err
        return model.to(self.device).eval()


def find_sidecar(weights_path: str) -> dict:
    """dtviz's config.json beside the weights, or one folder up (training snapshots); in a dashboard only one inside
    the served folders (dtviz.sources.access): a config above the served folder, or a symlink out, is not read."""
    from dtviz.sources.access import allowed

    here = os.path.dirname(os.path.abspath(weights_path))
    for folder in (here, os.path.dirname(here)):
        path = os.path.join(folder, SIDECAR)
        if os.path.isfile(path) and allowed(path):
            try:
                with open(path) as fh:
                    data = json.load(fh)
            except (OSError, ValueError, RecursionError) as err:
                why = "it is nested too deeply" if isinstance(err, RecursionError) else str(err)
                raise DtvizInputError(f"expected JSON in {path!r}, but it could not be parsed ({why}).") from err
            if isinstance(data, dict) and "family" in data and "class_names" in data:
                return data
    return {}


def check_sidecar(data: dict, where: str) -> dict:
    """dtviz's config.json with its values checked before anything uses them: name and family short texts,
    class_names a flat list of text or numbers (dtviz.sources.budgets.check_labels), model a dict of numbers and
    true/false (each setting is checked against the family's config and the weights when a model is built:
    dtviz.models.Backbone.settings). Errors name the setting, never its value: the file may come with a link."""
    out = dict(data)
    for key in ("name", "family"):
        if key in out and not (isinstance(out[key], str) and len(out[key]) <= budgets.MAX_LABEL_CHARS):
            raise DtvizInputError(f"expected {key!r} in {where} to be a text of at most {budgets.MAX_LABEL_CHARS} "
                                  f"characters, but found {'a ' + type(out[key]).__name__ if not isinstance(out[key], str) else 'a longer one'}.")
    if out.get("class_names") is not None:
        out["class_names"] = budgets.check_labels(out["class_names"], None, where)
    model = out.get("model")
    if model is not None:
        if not isinstance(model, dict):
            raise DtvizInputError(f"expected 'model' in {where} to be a dict of settings, but found a {type(model).__name__}.")
        for key, value in model.items():
            if not (value is None or isinstance(value, (bool, int, float))):
                known = key if key in known_settings() else "one of the model settings"  # never a file's own name
                raise DtvizInputError(f"expected {known!r} in {where} to be a number or true/false, but found a "
                                      f"{type(value).__name__}.")
    return out


def _shape(state: Mapping, key: str) -> tuple:
    """A tensor's shape without reading it when the mapping is lazy (dtviz.sources.checkpoint.LazySafetensors)."""
    if hasattr(state, "shapes"):
        return tuple(state.shapes()[key])
    return tuple(state[key].shape)


def _float_tensor(value, key: str, where: str) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise DtvizInputError(f"expected {key!r} in {where!r} to be a tensor, but found {type(value).__name__}.")
    if not value.is_floating_point():
        raise DtvizInputError(f"expected floating-point weights for {key!r} in {where!r}, but found dtype {str(value.dtype).replace('torch.', '')}.")
    return value.float()


def _count_parameters(state: Mapping) -> int:
    shapes = state.shapes() if hasattr(state, "shapes") else {k: v.shape for k, v in state.items() if isinstance(v, torch.Tensor)}
    # pos_embed is a fixed table and relative_position_index (MDT) an integer buffer: neither is a parameter
    return int(sum(int(np.prod(s)) for k, s in shapes.items()
                   if k != "pos_embed" and not k.endswith("relative_position_index")))

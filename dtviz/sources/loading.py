"""``dtviz.load(source)``: one entry point for every kind of source.

    "builtin", "builtin-v2", …         a model shipped in assets/<name>/ (BUILTINS; "builtin" is the default)
    a diffusers pipeline folder        model_index.json + transformer/ (DiTPipeline layout), or a text-to-image
                                       pipeline (SD3, Flux, PixArt, Sana) whose rows are ``prompts``
    "hf:<repo id>"                     such a pipeline already in the local Hugging Face cache (offline)
    a dtviz model folder               config.json + model.safetensors (the built-in layout)
    .pt/.pth/.bin/.ckpt/.safetensors   a native DiT-family state dict or training wrapper, or a matrix
    .npy/.npz/.csv/.tsv/.txt           a precomputed N×d embedding matrix
    .traj.npz (an .npz with a trajectory member)  c captured over the sampling steps (dtviz.capture)
"""
from __future__ import annotations

import os

from dtviz.sources.checkpoint import SAFETENSORS_EXTENSIONS, TORCH_EXTENSIONS, read_any, unwrap_state_dict
from dtviz.errors import DtvizInputError
from dtviz.sources.base import Source
from dtviz.sources.matrix import MATRIX_EXTENSIONS, MatrixSource, load_matrix
from dtviz.sources.builtins import ASSETS, BUILTIN, BUILTIN_DIR, BUILTINS, Builtin, builtin_dir  # noqa: F401
from dtviz.sources.native import LABEL_KEY, MODEL_FILE, SIDECAR, NativeSource


def load(source: str = BUILTIN, family: str = "auto", device=None, labels: str | None = None, prompts=None,
         num_heads: int | None = None, null_row: str = "auto", guidance: float | None = None) -> Source:
    """Open ``source`` (see the module docstring) and return a Source. Errors are DtvizInputError.

    ``num_heads`` and ``null_row`` (auto | yes | no) set, for a native checkpoint, what its file may not say
    (dtviz.sources.release_config: read from the training args/config when present, else a noted reading).

    ``prompts`` (a text-to-image pipeline's rows): a file (one per line), a shipped set name (dtviz.sources.prompts) or a
    list; without it a text-to-image pipeline takes ``labels`` as its prompts file, else the default set.
    ``guidance``: Flux-dev's embedded guidance value (default: FluxPipeline's own default guidance_scale)."""
    source = str(source).strip() or BUILTIN
    prompts = labels if prompts is None else prompts
    native = dict(num_heads=num_heads, null_row=null_row)
    if source in BUILTINS:
        folder = BUILTINS[source].path
        if not os.path.isfile(os.path.join(folder, MODEL_FILE)):
            raise DtvizInputError(f"the built-in model {source!r} is missing: expected "
                                  f"assets/{BUILTINS[source].folder}/{MODEL_FILE}; regenerate it with scripts/train_builtin.py.")
        src = NativeSource(folder, family=family, device=device, **native)
        src.info.name = source
        return src
    if source.startswith("hf:"):
        from dtviz.sources.diffusers_dit import load_cached_pipeline

        return load_cached_pipeline(source[3:], device=device, prompts=prompts, guidance=guidance)
    path = os.path.expanduser(source)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "model_index.json")):
            from dtviz.sources.diffusers_dit import DiffusersSource
            from dtviz.sources.t2i_pipeline import is_t2i_folder

            if is_t2i_folder(path):
                from dtviz.sources.diffusers_t2i import TextToImageSource

                return TextToImageSource(path, prompts=prompts, device=device, guidance=guidance)

            return DiffusersSource(path, device=device)
        if os.path.isfile(os.path.join(path, SIDECAR)) and os.path.isfile(os.path.join(path, MODEL_FILE)):
            return NativeSource(path, family=family, device=device, **native)
        raise DtvizInputError(
            f"expected a checkpoint file, a diffusers pipeline folder (with model_index.json) or a dtviz model folder "
            f"(with {SIDECAR} and {MODEL_FILE}), but {path!r} is a folder with neither."
        )
    lower = path.lower()
    if lower.endswith(".npz"):
        from dtviz.sources.trajectory import is_trajectory_file, load_trajectory

        if lower.endswith(".traj.npz") or is_trajectory_file(path):
            return load_trajectory(path, device=device)
    if lower.endswith(MATRIX_EXTENSIONS):
        return load_matrix(path, labels=labels, device=device)
    if lower.endswith(TORCH_EXTENSIONS + SAFETENSORS_EXTENSIONS):
        return _checkpoint_or_matrix(path, family, device, labels, native)
    if not os.path.exists(path):
        raise DtvizInputError(f"expected {' or '.join(map(repr, BUILTINS))}, a checkpoint file or a pipeline folder, "
                              f"but {path!r} does not exist.")
    raise DtvizInputError(
        f"expected a file ending in {', '.join(TORCH_EXTENSIONS + SAFETENSORS_EXTENSIONS + MATRIX_EXTENSIONS)}, "
        f"but {os.path.basename(path)!r} has none of these extensions."
    )


def _checkpoint_or_matrix(path: str, family: str, device, labels, native: dict) -> Source:
    """A .pt/.safetensors file is a model if it has the label table, else a matrix if it holds one."""
    import torch

    obj = read_any(path)
    if isinstance(obj, torch.Tensor):
        return load_matrix(path, labels=labels, device=device)
    state = unwrap_state_dict(obj, repr(path)) if hasattr(obj, "keys") else obj
    if hasattr(state, "keys") and (LABEL_KEY in state or any(str(k).startswith(("t_embedder.", "y_embedder.", "blocks.")) for k in state)):
        return NativeSource(path, family=family, device=device, contents=obj, **native)
    if hasattr(obj, "keys") and any(k in obj for k in ("embeddings", "embedding", "c")):
        return load_matrix(path, labels=labels, device=device)
    if hasattr(state, "keys") and len(state) == 1 and isinstance(next(iter(state.values())), torch.Tensor):
        return load_matrix(path, labels=labels, device=device)
    return NativeSource(path, family=family, device=device, contents=obj, **native)  # raises the "no label table" message


__all__ = ["load", "BUILTIN", "BUILTIN_DIR", "BUILTINS", "builtin_dir", "MatrixSource", "NativeSource"]

"""Reading checkpoint files safely and lazily.

Security: nothing is ever unpickled beyond tensors and plain containers. ``torch.load`` always runs
with ``weights_only=True``; the only extra globals allowed are the ones real training wrappers hold
(argparse.Namespace in DiT/SiT/REPA/MG ``train.py`` checkpoints). Files are opened read-only and never
written.

Memory: ``.safetensors`` tensors are read one by one on demand; torch zip checkpoints are loaded with
``mmap=True`` so a 2.7 GB XL file costs only the pages of the tensors that are actually touched.
"""
from __future__ import annotations

import argparse
import difflib
import os
import pickle
import warnings
import zipfile
from collections.abc import Mapping
from typing import Iterator

import torch

from dtviz.sources import budgets
from dtviz.errors import DtvizInputError
from dtviz.sources.access import check_allowed

TORCH_EXTENSIONS = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_EXTENSIONS = (".safetensors",)
# Training wrappers: the EMA weights are the ones sampled in every DiT-family repo.
WRAPPER_KEYS = ("ema", "model", "state_dict", "module", "net")
SAFE_GLOBALS = [argparse.Namespace]
# Registered once, process-wide: ``torch.serialization.safe_globals`` is a context manager over one process-global
# list, so a thread leaving it dropped Namespace from the allow-list of loads still running in other threads.
torch.serialization.add_safe_globals(SAFE_GLOBALS)
_STRIP_PREFIXES = ("module.", "_orig_mod.", "model.")


def check_readable_file(path: str, what: str = "a checkpoint file") -> str:
    """Existence, type and permission checks with one-sentence messages; in a dashboard, inside the served folders
    (dtviz.sources.access)."""
    path = os.path.expanduser(str(path))
    check_allowed(path, what)
    if not os.path.exists(path):
        raise DtvizInputError(f"expected {what}, but {path!r} does not exist.")
    if os.path.isdir(path):
        raise DtvizInputError(f"expected {what}, but {path!r} is a directory.")
    if not os.access(path, os.R_OK):
        raise DtvizInputError(f"expected {what}, but {path!r} cannot be read (permission denied).")
    if os.path.getsize(path) == 0:
        raise DtvizInputError(f"expected {what}, but {path!r} is empty (0 bytes).")
    return path


class LazySafetensors(Mapping):
    """A read-only mapping over a .safetensors file that loads a tensor only when it is indexed."""

    def __init__(self, path: str):
        from safetensors import safe_open

        self.path = path
        self._file = safe_open(path, framework="pt", device="cpu")
        self._keys = set(self._file.keys())
        self.metadata = self._file.metadata() or {}

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._keys:
            raise KeyError(key)
        try:
            return self._file.get_tensor(key)
        except Exception as err:  # a header that lies about offsets surfaces here
            raise DtvizInputError(f"tensor {key!r} in {self.path!r} cannot be read ({err}); the file is damaged or truncated.") from err

    def __contains__(self, key: object) -> bool:  # Mapping's default would read the tensor
        return key in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._keys))

    def shapes(self) -> dict[str, tuple]:
        return {k: tuple(self._file.get_slice(k).get_shape()) for k in self._keys}

    def __len__(self) -> int:
        return len(self._keys)


class RenamedKeys(Mapping):
    """A read-only view of ``state`` under new key names (``names``: new -> old); lazy if ``state`` is."""

    def __init__(self, state: Mapping, names: dict[str, str]):
        self._state, self._names = state, names

    def __getitem__(self, key: str):
        return self._state[self._names[key]]

    def __contains__(self, key: object) -> bool:
        return key in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def shapes(self) -> dict[str, tuple]:
        old = self._state.shapes() if hasattr(self._state, "shapes") else {k: tuple(v.shape) for k, v in self._state.items() if isinstance(v, torch.Tensor)}
        return {new: old[o] for new, o in self._names.items() if o in old}


def check_safetensors_header(path: str) -> None:
    """The header's size and tensor count within budget, read before the safetensors library parses it (a file of a
    million tiny tensors costs many times its size in the parser's bookkeeping)."""
    import json
    import struct

    name = os.path.basename(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise DtvizInputError(f"expected a safetensors file, but {name!r} is shorter than its 8-byte header length.")
        (size,) = struct.unpack("<Q", head)
        if size > os.path.getsize(path) - 8:
            raise DtvizInputError(f"expected a safetensors file, but {name!r} has an invalid header or is truncated "
                                  "(its header would be longer than the file).")
        budgets.check_bytes("a safetensors header", size, budgets.MAX_SAFETENSORS_HEADER_BYTES, name)
        raw = fh.read(size)
    count = raw.count(b'"dtype"')  # one per tensor; the JSON is parsed only when the count fits
    if count > budgets.MAX_SAFETENSORS_TENSORS:
        raise DtvizInputError(f"{name!r} declares {count:,} tensors, over this server's budget of "
                              f"{budgets.MAX_SAFETENSORS_TENSORS:,} (dtviz.sources.budgets); it is not a model checkpoint.")
    try:
        json.loads(raw)
    except (ValueError, RecursionError) as err:  # RecursionError: brackets nested deeper than Python's stack
        raise DtvizInputError(f"expected a safetensors file, but the header of {name!r} is not valid JSON.") from err


def read_safetensors(path: str) -> LazySafetensors:
    path = check_readable_file(path)
    check_safetensors_header(path)
    try:
        return LazySafetensors(path)
    except Exception as err:
        raise DtvizInputError(
            f"expected a safetensors file, but {path!r} has an invalid header or is truncated ({_short(err)})."
        ) from err


def read_torch(path: str) -> object:
    """``torch.load`` with weights_only=True (+ argparse.Namespace), mmap'd when the format allows."""
    path = check_readable_file(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    is_zip = head.startswith(b"PK")
    is_pickle = head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")  # PROTO opcode + version
    if not is_zip and not is_pickle:
        raise DtvizInputError(
            f"expected a PyTorch checkpoint (zip archive or pickle), but {path!r} starts with bytes {head!r}; "
            "it is not a checkpoint."
        )
    if is_zip and not zipfile.is_zipfile(path):
        raise DtvizInputError(f"expected a PyTorch checkpoint, but {path!r} is a damaged or truncated zip archive.")
    # budgets before work: a zip is memory-mapped (only its compressed members are inflated), a legacy pickle read whole
    if is_zip:
        budgets.check_zip_members(path, os.path.basename(path))
    else:
        budgets.check_bytes("a pickled checkpoint (read whole, no mmap)", os.path.getsize(path),
                            budgets.MAX_PICKLE_CHECKPOINT_BYTES, os.path.basename(path))
    try:
        # torch warns about legacy pickles of protocol > 2; the weights-only unpickler reads them or fails with
        # our one-sentence message, so the warning would only add a second, confusing line to stderr.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except pickle.UnpicklingError as err:
        found = _forbidden_global(str(err))
        raise DtvizInputError(
            f"refused to load {path!r}: it holds Python objects other than tensors{found}, and dtviz never "
            "unpickles arbitrary objects; re-save the state dict alone (or as .safetensors)."
        ) from err
    except MemoryError as err:
        raise budgets.out_of_memory(os.path.basename(path)) from err
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, KeyError, IndexError, TypeError,
            AttributeError, OverflowError) as err:
        raise DtvizInputError(f"expected a PyTorch checkpoint, but {path!r} could not be read: it is damaged, truncated or not a checkpoint ({_short(err)}).") from err
    budgets.check_object_graph(obj, os.path.basename(path))  # before anything walks, prints or str()s it
    return obj


def read_any(path: str) -> object:
    """A .safetensors mapping or whatever a torch file holds (by extension, then by content)."""
    lower = str(path).lower()
    if lower.endswith(SAFETENSORS_EXTENSIONS):
        return read_safetensors(path)
    return read_torch(path)


def unwrap_state_dict(obj: object, path: str = "the checkpoint") -> Mapping:
    """Find the model weights: prefer ``ema``, then ``model``, then ``state_dict``; strip DDP/compile prefixes."""
    if not isinstance(obj, Mapping):
        raise DtvizInputError(f"expected a state dict (a mapping of names to tensors) in {path}, but found {type(obj).__name__}.")
    for key in WRAPPER_KEYS:
        inner = obj.get(key) if key in obj else None
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return strip_prefixes(inner)
    return strip_prefixes(obj)


def strip_prefixes(state: Mapping) -> Mapping:
    for prefix in _STRIP_PREFIXES:
        if state and all(str(k).startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return state


def nearest_keys(state: Mapping, wanted: str, n: int = 3) -> str:
    """'nearest-looking keys: a, b, c' for error messages."""
    keys = [str(k) for k in state.keys()]
    close = difflib.get_close_matches(wanted, keys, n=n, cutoff=0.3) or keys[:n]
    return ", ".join(close) if close else "none (the mapping is empty)"


def _forbidden_global(message: str) -> str:
    import re

    m = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"Unsupported global: ([\w. ]+)", message)
    return f" (found {m.group(1).replace('GLOBAL ', '')})" if m else ""


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:160]

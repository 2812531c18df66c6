"""A process-wide, byte-bounded, thread-safe LRU for the big arrays a server shares between sessions.

Why not ``st.cache_data``: it pickles every entry and unpickles a fresh copy on every call, so an N×N cosine
matrix costs one copy per entry *and* one per reader, and its entries are counted, not weighed. Here each value
is stored once and handed out as is (its arrays made read-only, so no reader can change what the others see);
the total is bounded by bytes (``budgets.MAX_CACHE_BYTES``), the least recently used entries go first, and one
source's entries can be dropped without touching the others' (``drop_source``).

Keys are tuples whose first item is the source's identity (``source_identity``: the resolved path and its
(mtime, size), so every spelling of one file is one entry and a rewritten file is a new one).

    ByteLRU(max_bytes).get(key, compute)   the value, computed once even when many threads ask at once
    source_identity(source)                ("/real/path", (mtime_ns, size)) or (name, None)
    nbytes(value)                          the bytes of the arrays in a value (ndarray, tensor, dict, object)
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np

from dtviz.sources import budgets


# ================================================================================ sizes

def nbytes(value: Any, _depth: int = 0) -> int:
    """Bytes held by the arrays in ``value`` (numpy arrays, torch tensors, containers, object attributes)."""
    if _depth > 3 or value is None:
        return 0
    if isinstance(value, np.ndarray):
        return int(value.nbytes)
    if hasattr(value, "element_size") and hasattr(value, "nelement"):  # torch.Tensor, without importing torch
        return int(value.element_size() * value.nelement())
    if isinstance(value, dict):
        return sum(nbytes(v, _depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v, _depth + 1) for v in value[:10_000])
    if hasattr(value, "__dict__"):
        return sum(nbytes(v, _depth + 1) for v in vars(value).values())
    return 0


def freeze(value: Any, _depth: int = 0) -> Any:
    """Make the numpy arrays in ``value`` read-only (shared between sessions: nobody may write into them)."""
    if _depth > 3:
        return value
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
    elif isinstance(value, dict):
        for v in value.values():
            freeze(v, _depth + 1)
    elif isinstance(value, (list, tuple)):
        for v in value[:10_000]:
            freeze(v, _depth + 1)
    elif hasattr(value, "__dict__") and not isinstance(value, type):
        for v in vars(value).values():
            freeze(v, _depth + 1)
    return value


def source_identity(source: str) -> tuple:
    """("/resolved/path", (mtime_ns, size)) for a file or folder path; (source, None) for names (built-in
    models, ``hf:`` repos). Folders are stamped by their files and those one level down."""
    text = str(source)
    path = os.path.expanduser(text)
    if text.startswith("hf:") or not os.path.exists(path):
        return (text, None)
    real = os.path.realpath(path)
    try:
        if os.path.isfile(real):
            st = os.stat(real)
            return (real, (st.st_mtime_ns, st.st_size))
        stamps = []
        for entry in os.scandir(real):
            for f in [entry, *(os.scandir(entry.path) if entry.is_dir() else ())]:
                if f.is_file():
                    st = f.stat()
                    stamps.append((st.st_mtime_ns, st.st_size))
        return (real, (len(stamps), max(stamps, default=(0, 0)), sum(s for _, s in stamps)))
    except OSError:
        return (real, None)


# ================================================================================ the cache

class ByteLRU:
    """``get(key, compute)``: the cached value or ``compute()``'s, stored once; bounded by ``max_bytes``.

    A value larger than the whole budget is returned but not kept. ``compute`` runs outside the cache's lock,
    under a per-key lock, so one slow computation blocks only the callers waiting for that same key."""

    def __init__(self, max_bytes: int | None = None, sizeof: Callable[[Any], int] | None = None):
        self.max_bytes = budgets.MAX_CACHE_BYTES if max_bytes is None else int(max_bytes)
        self.sizeof = nbytes if sizeof is None else sizeof  # e.g. a figure's pickled length (dtviz_app.cache)
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self.bytes = 0

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:  # another thread may have finished it while we waited
                if key in self._items:
                    self._items.move_to_end(key)
                    return self._items[key][0]
            value = freeze(compute())
            size = self.sizeof(value)
            with self._lock:
                self._key_locks.pop(key, None)
                if size <= self.max_bytes:
                    self._items[key] = (value, size)
                    self.bytes += size
                    self._evict()
            return value

    def _evict(self) -> None:
        while self.bytes > self.max_bytes and self._items:
            _key, (_value, size) = self._items.popitem(last=False)
            self.bytes -= size

    def drop(self, predicate: Callable[[Hashable], bool]) -> int:
        """Remove the entries whose key satisfies ``predicate``; returns how many."""
        with self._lock:
            gone = [k for k in self._items if predicate(k)]
            for k in gone:
                self.bytes -= self._items.pop(k)[1]
            return len(gone)

    def drop_source(self, identity_path: str) -> int:
        """Every entry of one source (any stamp): keys start with its ``source_identity``."""
        return self.drop(lambda k: isinstance(k, tuple) and k and isinstance(k[0], tuple) and k[0][0] == identity_path)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items


# The dashboard's one array cache (E, statistics, cosine orders), shared by every session of the process.
ARRAYS = ByteLRU()

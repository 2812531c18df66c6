"""Budgets: how much one file, one cache and one request may cost, checked *before* the work is done.

A shared dashboard reads whatever a link names, so every loader first checks sizes it can read cheaply (the
file size, a ``.npy`` header's shape and dtype, each ``.npz`` member's declared ``ZipInfo.file_size``) and
refuses with one sentence when the work would exceed these limits. The numbers are module constants so a
server owner can raise them (``dtviz.sources.budgets.MAX_MATRIX_BYTES = ...`` before the app starts); the README's
reliability section lists them.
"""
from __future__ import annotations

import zipfile

import numpy as np

from dtviz.errors import DtvizInputError

# ================================================================================ limits

GiB, MiB = 2 ** 30, 2 ** 20
# An embedding matrix as the float32 copy dtviz keeps (N × d × 4 bytes): 50 000 × 1 152 or 16 000 × 4 096 fit; also
# the limit for what a file declares before conversion. The statistics keep the sorted |c| (one more copy) and work in
# float64 a block of rows at a time: `/usr/bin/time -f %M dtviz stats M.npy --threads 1` on a 200 000 × 335 float32
# .npy (256 MiB) peaks at 1.05 GB (2.34 GB before the blocks), so this could rise if a server has the memory.
MAX_MATRIX_BYTES = 256 * MiB
# A file must hold the bytes it declares: a compressed member may inflate at most this many times its stored size,
# and a file at most this many times its allocated blocks (a sparse file), once it declares more than 16 MiB —
# so the cost of a file follows its size (honest float arrays barely compress; 64 MiB of zeros deflate to 64 KB).
MAX_INFLATION = 64
INFLATION_FREE_BYTES = 16 * MiB
# Rows (conditions) of one matrix or trajectory: each row also costs a Python name (~100 bytes) and an entry in every
# per-row list a page draws, which the float budget above does not see (a sparse 4 KB .npy of 8 M × 1 would cost
# > 1 GB in names). 1000 ImageNet classes or a 100 000-prompt set fit.
MAX_ROWS = 200_000
# CSV / TSV text: parsed row by row into float32, so memory is ~ the float32 matrix, not the text.
MAX_CSV_BYTES = 256 * MiB
# A labels sidecar, one label per line; an array of labels in a .npz may take 4× this (NumPy stores 4 bytes a
# character).
MAX_LABELS_BYTES = 16 * MiB
# One label (a class or prompt name) in characters, and the columns of a CSV row: both far above any real file.
MAX_LABEL_CHARS = 1000
MAX_CSV_COLUMNS = 65_536
MAX_CSV_LINE_BYTES = 4 * MiB
# A pickled checkpoint's Python structure: nodes visited (a shared list nested 26 deep is visited 2^26 times) and
# nesting depth; a DiT training checkpoint (model, ema, optimiser state, args) visits a few thousand.
MAX_PICKLE_NODES = 1_000_000
MAX_PICKLE_DEPTH = 64
# A safetensors header: its JSON bytes and tensor count, read before the file is opened (Flux's shards hold ~1 000).
MAX_SAFETENSORS_HEADER_BYTES = 64 * MiB
MAX_SAFETENSORS_TENSORS = 100_000
# A sweep folder's table.csv (one row per setting).
MAX_SWEEP_TABLE_BYTES = 16 * MiB
# Legacy (non-zip) torch pickles are read whole (no mmap); DiT-XL/2's 2.7 GB release file fits.
MAX_PICKLE_CHECKPOINT_BYTES = 3 * GiB
# A compressed member of a zip (.npz, torch zip) is inflated in memory: its declared size must fit this.
MAX_ZIP_MEMBER_BYTES = MAX_MATRIX_BYTES

# Per-request work in the dashboard.
MAX_COMPARE_SOURCES = 8        # sources in one comparison table (cmp_src + cmp_more)
MAX_DYNAMICS_FILES = 64        # checkpoints of one training run on the dynamics page
MAX_SAMPLE_STEPS = 8192        # samples × steps of one live-pruning request (16 × 250 = 4 000 is DiT's default)
MAX_PROJECTION_ROWS = {"pca": 20_000, "umap": 5_000, "tsne": 2_000}  # rows projected; more are subsampled
# Process-wide bytes of the dashboard's array cache (dtviz.serving.arraycache): E, the N×N cosine matrices, ...
MAX_CACHE_BYTES = 2 * GiB


# ================================================================================ checks

def human(n: int | float) -> str:
    """1536 -> '1.5 KiB' (messages only)."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:,.1f} {unit}"
    return f"{int(n)} bytes"


def check_bytes(what: str, size: int | float, limit: int, name: str) -> None:
    """One sentence when ``size`` bytes of ``what`` in ``name`` exceed ``limit``."""
    if size > limit:
        raise DtvizInputError(f"{name!r} holds {what} of {human(size)}, over this server's budget of {human(limit)} "
                              "(dtviz.sources.budgets); use a smaller file or subsample it.")


def check_array_shape(shape: tuple, itemsize: int, name: str) -> None:
    """A declared array (shape, bytes per item) must fit ``MAX_MATRIX_BYTES`` both as stored and as float32."""
    if any(int(s) < 0 for s in shape):
        raise DtvizInputError(f"expected an array of non-negative sizes in {name!r}, but its header declares a negative one.")
    count = int(np.prod([int(s) for s in shape], dtype=object)) if shape else 1
    check_bytes(f"an array of shape {tuple(int(s) for s in shape)}", count * max(int(itemsize), 4),
                MAX_MATRIX_BYTES, name)


def check_rows(rows: int, name: str, what: str = "rows") -> None:
    """At most ``MAX_ROWS`` rows (or labels) in ``name``, checked before any of them becomes a Python object."""
    if rows > MAX_ROWS:
        raise DtvizInputError(f"{name!r} holds {rows:,} {what}, over this server's budget of {MAX_ROWS:,} "
                              "(dtviz.sources.budgets); use a subset of the rows.")


def check_stored(path: str, declared: int, name: str) -> None:
    """A file whose data is mostly holes (a sparse file) is refused: it would cost what it declares, not its size."""
    import os

    blocks = getattr(os.stat(path), "st_blocks", None)
    if blocks is not None and declared > INFLATION_FREE_BYTES and blocks * 512 * MAX_INFLATION < declared:
        raise DtvizInputError(f"{name!r} declares {human(declared)} of data but stores {human(blocks * 512)} (a sparse "
                              "file); dtviz reads files whose bytes are on disk.")


def check_inflation(info: zipfile.ZipInfo, name: str) -> None:
    """A compressed zip member may inflate at most MAX_INFLATION times (beyond INFLATION_FREE_BYTES)."""
    if (info.compress_type != zipfile.ZIP_STORED and info.file_size > INFLATION_FREE_BYTES
            and info.file_size > MAX_INFLATION * max(info.compress_size, 1)):
        raise DtvizInputError(f"a member of {name!r} inflates {info.file_size / max(info.compress_size, 1):,.0f} times "
                              f"(to {human(info.file_size)}), over this server's budget of {MAX_INFLATION}× "
                              "(dtviz.sources.budgets); real embeddings barely compress.")


def npy_header(fh) -> tuple[tuple, np.dtype]:
    """(shape, dtype) from an open .npy stream positioned at its start, reading only the header."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    else:
        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    return shape, dtype


def check_npy(path: str, name: str) -> np.dtype:
    """The .npy header's shape × itemsize within budget (the data is not read); returns its dtype."""
    try:
        with open(path, "rb") as fh:
            shape, dtype = npy_header(fh)
    except (ValueError, OSError, EOFError) as err:
        raise DtvizInputError(f"expected a NumPy array file, but {name!r} has a damaged header.") from err
    check_array_shape(shape, dtype.itemsize, name)
    return dtype


ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate"}  # what np.savez and torch.save write


def check_zip_methods(zf: zipfile.ZipFile, name: str) -> None:
    """Only stored and deflate members: Python's zipfile inflates a bzip2 or LZMA chunk whole before cutting it to
    the declared size, so a member of a few hundred bytes could cost gigabytes however small it claims to be."""
    for info in zf.infolist():
        if info.compress_type not in ZIP_METHODS:
            method = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA"}.get(info.compress_type, f"method {info.compress_type}")
            raise DtvizInputError(f"expected zip members stored or deflate-compressed (as np.savez and torch.save write "
                                  f"them), but a member of {name!r} uses {method}; re-save the file with NumPy or torch.")


def check_npz(path: str, name: str) -> None:
    """Every member stored or deflated, its declared size (ZipInfo.file_size) and header shape within budget,
    before inflating any."""
    try:
        with zipfile.ZipFile(path) as zf:
            check_zip_methods(zf, name)
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            check_bytes("arrays (declared, uncompressed)", total, MAX_MATRIX_BYTES, name)
            for info in infos:  # every member NumPy would read as an array, with or without the .npy suffix
                check_inflation(info, name)
                if info.filename.rsplit("/", 1)[-1].removesuffix(".npy") in ("labels", "names"):
                    check_bytes("labels", info.file_size, 4 * MAX_LABELS_BYTES, name)
                if info.file_size:
                    with zf.open(info) as fh:
                        if fh.read(6) != b"\x93NUMPY":
                            continue
                    with zf.open(info) as fh:
                        shape, dtype = npy_header(fh)
                    check_array_shape(shape, dtype.itemsize, name)
    except DtvizInputError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError) as err:
        raise DtvizInputError(f"expected a NumPy .npz archive, but {name!r} is damaged or truncated.") from err


def check_zip_members(path: str, name: str) -> None:
    """A torch zip checkpoint: compressed members are inflated in memory, so their declared size must fit
    ``MAX_ZIP_MEMBER_BYTES`` (stored members are memory-mapped and cost only the pages touched)."""
    try:
        with zipfile.ZipFile(path) as zf:
            check_zip_methods(zf, name)
            for info in zf.infolist():
                check_inflation(info, name)
                if info.compress_type != zipfile.ZIP_STORED:
                    check_bytes(f"a compressed member {info.filename.rsplit('/', 1)[-1]!r}", info.file_size,
                                MAX_ZIP_MEMBER_BYTES, name)
    except zipfile.BadZipFile as err:
        raise DtvizInputError(f"expected a PyTorch checkpoint, but {name!r} is a damaged or truncated zip archive.") from err


def check_labels(value, rows: int | None, where: str) -> list[str]:
    """Labels from a file: a flat list (or 1-D array) of str / int / float, one per row, each at most MAX_LABEL_CHARS.
    Checked item by item before anything is turned into text, so a nested structure never is (``str`` of a list
    nested 26 deep through one shared object would build gigabytes)."""
    if hasattr(value, "__len__") and getattr(value, "ndim", 1) != 0:  # the count first: 8 M labels deflate to 92 KB but cost ~700 MB as Python strings
        if rows is not None and len(value) != rows:
            raise DtvizInputError(f"expected one label per row in {where!r} ({rows} rows), but found {len(value)} labels.")
        check_rows(len(value), where, "labels")
    if hasattr(value, "tolist") and getattr(value, "ndim", 1) == 1 and getattr(getattr(value, "dtype", None), "kind", "O") != "O":
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise DtvizInputError(f"expected the labels in {where!r} as a flat list of text or numbers, but found a "
                              f"{type(value).__name__}.")
    if rows is not None and len(value) != rows:
        raise DtvizInputError(f"expected one label per row in {where!r} ({rows} rows), but found {len(value)} labels.")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise DtvizInputError(f"expected label {i + 1} in {where!r} to be text or a number, but found a "
                                  f"{type(item).__name__}.")
        text = item if isinstance(item, str) else repr(item)
        if len(text) > MAX_LABEL_CHARS:
            raise DtvizInputError(f"expected labels of at most {MAX_LABEL_CHARS} characters in {where!r}, but label "
                                  f"{i + 1} has {len(text):,}.")
        out.append(text)
    return out


def check_object_graph(obj, name: str) -> None:
    """A pickled structure within MAX_PICKLE_NODES visits and MAX_PICKLE_DEPTH levels, keys included, before
    anything reads it: shared sub-objects are counted each time they are reached, as ``str`` or a walk would.
    Tensors and arrays are leaves."""
    stack, visits = [(obj, 0)], 0
    while stack:
        item, depth = stack.pop()
        visits += 1
        if visits > MAX_PICKLE_NODES or depth > MAX_PICKLE_DEPTH:
            raise DtvizInputError(f"expected a checkpoint of tensors and plain settings, but {name!r} holds a Python "
                                  f"structure {'nested deeper than ' + str(MAX_PICKLE_DEPTH) + ' levels' if depth > MAX_PICKLE_DEPTH else 'of over ' + format(MAX_PICKLE_NODES, ',') + ' parts'}; "
                                  "dtviz does not read it.")
        if isinstance(item, dict):
            for k, v in item.items():
                stack.append((k, depth + 1))
                stack.append((v, depth + 1))
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend((v, depth + 1) for v in item)
        elif hasattr(item, "__dict__") and not hasattr(item, "shape"):  # argparse.Namespace (the one allowed class)
            stack.extend((v, depth + 1) for v in vars(item).values())


def check_sample_work(samples: int, steps: int) -> None:
    """samples × steps of one sampling request within ``MAX_SAMPLE_STEPS``."""
    if samples * steps > MAX_SAMPLE_STEPS:
        raise DtvizInputError(f"{samples} samples × {steps} steps = {samples * steps:,} network evaluations per "
                              f"request, over this server's budget of {MAX_SAMPLE_STEPS:,}; use fewer samples or steps.")


def evenly_spaced(n: int, cap: int) -> np.ndarray:
    """Indices of at most ``cap`` of range(n), evenly spaced with the first and last kept: a systematic sample, so
    every stretch of ids (ImageNet's class groups are contiguous) or of training steps keeps its share."""
    if n <= cap:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, cap)).astype(np.int64))


def shown_note(shown: int, total: int, what: str, cap_name: str) -> str:
    """'2,000 shown of 20,000 rows (…)' under a view that subsampled."""
    return (f"{shown:,} shown of {total:,} {what}: an evenly spaced sample (this server's cap, "
            f"dtviz.sources.budgets.{cap_name}).")


def out_of_memory(name: str) -> DtvizInputError:
    """The one sentence for a MemoryError while reading ``name`` (never a box or a traceback)."""
    return DtvizInputError(f"the server ran out of memory reading {name!r}; use a smaller file or subsample it.")

"""Precomputed embeddings: an N×d matrix of condition vectors, with optional labels.

This is how continuous-condition models (pose, video, text) are brought in: their c comes from an
encoder, so the user exports it. Formats: ``.npy``, ``.npz`` (key ``embeddings``/``c``, or the only
2-D array; labels under ``labels``), ``.pt`` (a tensor or a dict with ``embeddings``), ``.safetensors``
(``embeddings`` or the only tensor), ``.csv``/``.tsv`` (numbers, optional header row, optional label
column of text). Labels may also come from a sidecar text file, one per line (``<file>.labels.txt``
or the ``labels`` argument). Analysis only: there is no model to sample.
"""
from __future__ import annotations

import csv
import os
import zipfile

import numpy as np
import torch

from dtviz.sources import budgets
from dtviz.sources.access import allowed
from dtviz.sources.checkpoint import check_readable_file, read_safetensors, read_torch
from dtviz.models.device import resolve_device
from dtviz.errors import DtvizInputError
from dtviz.sources.families import FAMILIES
from dtviz.sources.base import Source, SourceInfo, check_finite

MATRIX_EXTENSIONS = (".npy", ".npz", ".csv", ".tsv", ".txt")
# The largest matrix the dashboard accepts as an upload (it is held in memory, then written to a temp file);
# .streamlit/config.toml's server.maxUploadSize (MB) matches it. Larger files are opened from a local path.
MAX_UPLOAD_BYTES = 200 * 2 ** 20
_ARRAY_KEYS = ("embeddings", "embedding", "c", "E", "X")


class MatrixSource(Source):
    def __init__(self, matrix: np.ndarray, labels: list[str] | None = None, name: str = "matrix", device=None):
        shape = getattr(matrix, "shape", ())  # arrays and tensors: before the float32 copy
        budgets.check_rows(int(shape[0]) if len(shape) == 2 else 0, name)
        matrix = validate_matrix(matrix, name)
        budgets.check_rows(matrix.shape[0], name)  # and before the row names
        if labels is not None and len(labels) != matrix.shape[0]:
            raise DtvizInputError(f"expected one label per row of {name!r} ({matrix.shape[0]} rows), but found {len(labels)} labels.")
        self.matrix = matrix
        names = budgets.check_labels(labels, None, name) if labels is not None else [f"row {i}" for i in range(matrix.shape[0])]
        self.info = SourceInfo(name=name, family=FAMILIES["matrix"], num_classes=matrix.shape[0], dim=matrix.shape[1],
                               class_names=names, device=resolve_device(device), can_sample=False,
                               sample_note="a precomputed matrix has no model to sample; analysis only.",
                               family_note="precomputed embeddings")

    def _rows(self, ids: np.ndarray, t, part: str, batch_size: int) -> np.ndarray:
        return self.matrix[ids]


def check_upload_size(name: str, size: int) -> None:
    """One sentence when an uploaded file is over ``MAX_UPLOAD_BYTES`` (read at call time)."""
    if size > MAX_UPLOAD_BYTES:
        raise DtvizInputError(f"the upload {name!r} is {size / 2 ** 20:,.1f} MB, but uploads are limited to "
                              f"{MAX_UPLOAD_BYTES / 2 ** 20:,.0f} MB; open the file from a local path instead.")


def validate_matrix(matrix, name: str) -> np.ndarray:
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().float().cpu().numpy()
    try:
        matrix = np.asarray(matrix)
    except ValueError as err:  # ragged nested lists
        raise DtvizInputError(f"expected an N×d matrix in {name!r}, but its rows have different lengths.") from err
    if matrix.dtype == object:
        raise DtvizInputError(f"expected an N×d matrix of numbers in {name!r}, but its rows are ragged or not numeric.")
    if not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == bool):
        raise DtvizInputError(f"expected an N×d matrix of numbers in {name!r}, but found dtype {matrix.dtype}.")
    if matrix.ndim != 2:
        raise DtvizInputError(f"expected an N×d matrix (2-D) in {name!r}, but found {matrix.ndim}-D data of shape {matrix.shape}.")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise DtvizInputError(f"expected a non-empty N×d matrix in {name!r}, but found shape {matrix.shape}.")
    matrix = matrix.astype(np.float32)
    check_finite("the matrix", matrix, repr(name))
    return matrix


def load_matrix(path: str, labels: str | list[str] | None = None, device=None) -> MatrixSource:
    """Sizes are checked against dtviz.sources.budgets before anything is read; a MemoryError becomes one sentence."""
    path = check_readable_file(path, "an embedding matrix file")
    try:
        return _load_matrix(path, labels, device)
    except MemoryError as err:
        raise budgets.out_of_memory(os.path.basename(path)) from err


def _load_matrix(path: str, labels, device) -> MatrixSource:
    lower, name = path.lower(), os.path.basename(path)
    file_labels = None
    if lower.endswith(".npy"):
        matrix = _np_load(path)
    elif lower.endswith(".npz"):
        matrix, file_labels = _from_npz(path)
    elif lower.endswith((".csv", ".tsv", ".txt")):
        matrix, file_labels = read_csv_matrix(path)
    elif lower.endswith(".safetensors"):
        budgets.check_bytes("a file", os.path.getsize(path), budgets.MAX_MATRIX_BYTES, name)
        budgets.check_stored(path, os.path.getsize(path), name)
        matrix, file_labels = _from_mapping(dict(read_safetensors(path)), path)
    else:
        budgets.check_bytes("a file", os.path.getsize(path), budgets.MAX_MATRIX_BYTES, name)
        obj = read_torch(path)
        matrix, file_labels = (obj, None) if isinstance(obj, torch.Tensor) else _from_mapping(obj, path)
    if isinstance(labels, str):
        labels = read_labels_file(labels)
    elif labels is None and os.path.isfile(path + ".labels.txt") and allowed(path + ".labels.txt"):
        labels = read_labels_file(path + ".labels.txt")
    return MatrixSource(matrix, labels if labels is not None else file_labels, name=name, device=device)


def read_labels_file(path: str) -> list[str]:
    """One label per non-empty line; stops at ``budgets.MAX_ROWS`` labels (16 MiB of two-character lines would be
    5.5 M Python strings before the row count refused them)."""
    path = check_readable_file(path, "a labels text file")
    name = os.path.basename(path)
    budgets.check_bytes("text", os.path.getsize(path), budgets.MAX_LABELS_BYTES, name)
    try:
        labels = []
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    if len(labels) == budgets.MAX_ROWS:
                        budgets.check_rows(budgets.MAX_ROWS + 1, name, "labels (at least)")
                    labels.append(line.rstrip("\n"))
        return labels
    except UnicodeDecodeError as err:
        raise DtvizInputError(f"expected a UTF-8 text file of labels, one per line, but {path!r} is not text.") from err


def _np_load(path: str):
    with open(path, "rb") as fh:
        head = fh.read(6)
    magic, kind = (b"PK", ".npz archive") if path.lower().endswith(".npz") else (b"\x93NUMPY", ".npy file")
    if not head.startswith(magic):  # np.load would otherwise fall back to unpickling and blame pickles
        raise DtvizInputError(f"expected a NumPy {kind}, but {path!r} starts with bytes {head[:4]!r}; it is not a NumPy file.")
    # the header's shape (or each member's declared size) first; a .npy is then memory-mapped, so the float32
    # copy validate_matrix makes is the only one in memory
    if kind == ".npy file":
        dtype = budgets.check_npy(path, os.path.basename(path))  # the declared size first, then what is stored
        budgets.check_stored(path, os.path.getsize(path), os.path.basename(path))
        if dtype.hasobject:  # cannot be memory-mapped; never unpickled
            raise DtvizInputError(f"refused to load {path!r}: it holds pickled Python objects, which dtviz never unpickles; save a numeric array.")
    else:
        budgets.check_npz(path, os.path.basename(path))
    try:
        return np.load(path, allow_pickle=False, mmap_mode="r" if kind == ".npy file" else None)
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise DtvizInputError(f"refused to load {path!r}: it holds pickled Python objects, which dtviz never unpickles; save a numeric array.") from err
        raise DtvizInputError(f"expected a NumPy array file, but {path!r} is damaged or truncated.") from err
    except (OSError, EOFError, zipfile.BadZipFile) as err:
        raise DtvizInputError(f"expected a NumPy array file, but {path!r} is damaged or truncated.") from err


def _from_npz(path: str):
    data = _np_load(path)
    try:
        keys = list(data.keys())
        arrays = {k: data[k] for k in keys}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DtvizInputError(f"expected a NumPy .npz archive of numeric arrays, but {path!r} could not be read: a "
                              "member is damaged, truncated or not a numeric array.") from err
    return _from_mapping(arrays, path)


def _from_mapping(obj, path: str):
    if not isinstance(obj, dict):
        raise DtvizInputError(f"expected a tensor or a dict with an 'embeddings' entry in {path!r}, but found {type(obj).__name__}.")
    labels = obj.get("labels", obj.get("names"))
    shape = getattr(next((obj[k] for k in _ARRAY_KEYS if k in obj), None), "shape", ())
    if labels is not None:  # counted against the rows first: labels become Python strings only when one per row
        labels = budgets.check_labels(labels, int(shape[0]) if len(shape) == 2 else None, os.path.basename(path))
    for key in _ARRAY_KEYS:
        if key in obj:
            return obj[key], labels
    matrices = [k for k, v in obj.items() if hasattr(v, "ndim") and v.ndim == 2]
    if len(matrices) == 1:
        return obj[matrices[0]], labels
    raise DtvizInputError(
        f"expected one N×d matrix (key 'embeddings') in {path!r}, but found {len(matrices)} 2-D entries among keys {sorted(map(str, obj))[:6]}."
    )


def read_csv_matrix(path: str) -> tuple[np.ndarray, list[str] | None]:
    """Numbers with an optional header row and an optional text column (first or last) of labels.

    Streaming passes (the size of every line, shape and label column, then the values straight into float32), so
    memory is the matrix, not the text; the file size is checked against ``budgets.MAX_CSV_BYTES`` first, and every
    line's length and column count (counted on the bytes, before any row becomes Python objects) against
    ``MAX_CSV_LINE_BYTES`` and ``MAX_CSV_COLUMNS``. Errors name a row and a column, never a cell's content."""
    budgets.check_bytes("text", os.path.getsize(path), budgets.MAX_CSV_BYTES, os.path.basename(path))
    delimiter = "\t" if path.lower().endswith(".tsv") else None
    if delimiter is None:
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                delimiter = csv.Sniffer().sniff(fh.read(4096), delimiters=",;\t ").delimiter
        except csv.Error:
            delimiter = ","
        except UnicodeDecodeError as err:
            raise DtvizInputError(f"expected a CSV text file of numbers, but {path!r} is not text.") from err
    _check_csv_lines(path, delimiter)
    # pass 1: the first two rows (header?), the widths, and which of the first / last columns are all numbers
    count, first, second, widths = 0, None, None, set()
    numeric_ends = [True, True]  # over rows 2.. (row 1 may be a header)
    for row in _csv_rows(path, delimiter):
        if count == 0:
            first = row
        else:
            second = row if count == 1 else second
            numeric_ends = [numeric_ends[0] and _is_number(row[0]), numeric_ends[1] and _is_number(row[-1])]
        widths.add(len(row))
        count += 1
    if not count:
        raise DtvizInputError(f"expected rows of numbers in {path!r}, but it holds none.")
    header = (not all(_is_number(c) for c in first if c.strip()) and second is not None
              and _numeric_share(second) > _numeric_share(first))
    if header:
        widths = {len(r) for r in _csv_rows(path, delimiter, skip=1)}
    else:
        numeric_ends = [numeric_ends[0] and _is_number(first[0]), numeric_ends[1] and _is_number(first[-1])]
    if len(widths) != 1:
        raise DtvizInputError(f"expected every row of {path!r} to have the same number of columns, but found widths {sorted(widths)[:5]}.")
    width = widths.pop()
    label_col = 0 if not numeric_ends[0] else (width - 1 if not numeric_ends[1] else None)
    # pass 2: the values
    n = count - header
    matrix = np.empty((n, width - (label_col is not None)), dtype=np.float32)
    labels = [] if label_col is not None else None
    for i, row in enumerate(_csv_rows(path, delimiter, skip=int(header))):
        if label_col is not None:
            labels.append(row[label_col])
        values = [c for j, c in enumerate(row) if j != label_col]
        try:
            matrix[i] = [float(c) for c in values]
        except ValueError:
            j = next(j for j, c in enumerate(row) if j != label_col and not _is_number(c))
            raise DtvizInputError(f"expected numbers in {os.path.basename(path)!r}, but row {i + 1 + int(header)}, column "
                                  f"{j + 1} is not a number.") from None
    return matrix, labels


def _check_csv_lines(path: str, delimiter: str) -> None:
    """Every line at most MAX_CSV_LINE_BYTES and MAX_CSV_COLUMNS columns, counted on the raw bytes (a single row of
    ``0,0,0,…`` would otherwise become ~100× its size in Python lists)."""
    name, sep = os.path.basename(path), delimiter.encode()
    with open(path, "rb") as fh:
        for i, line in enumerate(iter(lambda: fh.readline(budgets.MAX_CSV_LINE_BYTES + 1), b"")):
            if len(line) > budgets.MAX_CSV_LINE_BYTES:
                raise DtvizInputError(f"expected CSV rows of at most {budgets.human(budgets.MAX_CSV_LINE_BYTES)}, but row "
                                      f"{i + 1} of {name!r} is longer; is it a matrix of numbers, one row per line?")
            if line.count(sep) >= budgets.MAX_CSV_COLUMNS:
                raise DtvizInputError(f"expected at most {budgets.MAX_CSV_COLUMNS:,} columns per CSV row (the width of c), "
                                      f"but row {i + 1} of {name!r} has {line.count(sep) + 1:,}.")
            if i > budgets.MAX_ROWS:  # a header row and MAX_ROWS rows of numbers at the most (blank lines count too)
                budgets.check_rows(i, name, "lines (at least)")


def _csv_rows(path: str, delimiter: str, skip: int = 0):
    """The non-blank rows of a CSV file, read lazily; one sentence when it is not UTF-8 text."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = (r for r in csv.reader(fh, delimiter=delimiter) if any(c.strip() for c in r))
            for i, row in enumerate(rows):
                if i >= skip:
                    yield row
    except UnicodeDecodeError as err:
        raise DtvizInputError(f"expected a CSV text file of numbers, but {path!r} is not text.") from err
    except csv.Error as err:
        raise DtvizInputError(f"expected a CSV text file of numbers, but {path!r} could not be parsed ({str(err)[:80]}).") from err


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _numeric_share(row: list[str]) -> float:
    return sum(_is_number(c) for c in row) / max(len(row), 1)

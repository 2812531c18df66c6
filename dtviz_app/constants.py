"""Choices, defaults and limits shared by every module of the dashboard glue, and its logger.

The base of ``dtviz_app``: the other modules import from here, never the reverse.
"""
from __future__ import annotations

import logging
import tempfile

from dtviz.sources.matrix import MAX_UPLOAD_BYTES

LOG = logging.getLogger("dtviz.app")

FAMILY_CHOICES = ("auto", "dit", "sit", "repa", "lightningdit", "mdt", "mg")
PARTS = ("y+t", "y", "t")
PART_LABELS = {"y+t": "y+t", "y": "y only", "t": "t only"}
SOURCE_KINDS = ("builtin", "path", "hf", "upload")
SOURCE_LABELS = {"builtin": "Built-in glyph models", "path": "Local checkpoint / folder",
                 "hf": "Hugging Face cache", "upload": "Upload a matrix"}
UPLOAD_TYPES = ["npy", "npz", "csv", "tsv", "txt", "pt", "pth", "safetensors"]
UPLOAD_LIMIT_MB = MAX_UPLOAD_BYTES // 2 ** 20  # the uploader label and max_upload_size; the check is the library's
# This server process's own folder (0700, unpredictable name) for per-session uploads; removed at exit.
UPLOAD_ROOT = tempfile.mkdtemp(prefix="dtviz-uploads-")
DEFAULT_TAU = 0.01
DEFAULT_K = 10
# Log-spaced "nice" thresholds for the τ slider: 1, 1.5, 2, 3, 5, 7 per decade from 1e-4 to 100.
TAU_GRID = tuple(float(f"{m * 10.0 ** e:.6g}") for e in range(-4, 2) for m in (1, 1.5, 2, 3, 5, 7)) + (100.0,)
TAU_MIN, TAU_MAX = 1e-6, 1e3

GLOBAL_KEYS = ("src", "fam", "dev", "t", "part", "thr", "tau", "k", "pmode", "pset", "ptext", "guid", "null_row", "heads")
PAGE_PREFIXES = ("cos_", "mag_", "var_", "proj_", "cmp_", "dyn_", "nn_", "pr_")

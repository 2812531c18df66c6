"""dtviz: analysis of the conditioning vector c = y_embedder(class) + t_embedder(t) of diffusion transformers.

UI-free: importable without streamlit. The package is laid out in wings, one concern each, each importing
only the wings below it:

    errors, reference     one-sentence input errors; the paper's values as data
    models                backbones (DiT, LightningDiT, MDT) and devices
    sources               reading a user's file or folder: one adapter per kind, safe loading, budgets
    analysis, pruning     the paper's statistics and claims; which dims of c to zero, and the hooks
    sampling              samplers, seeding, the Generator
    evaluation            read-outs, sweeps, FID/IS/KID/PR, CLIP score
    plots                 plotly figure builders
    builtin               the built-in model: data, classifier, training, card
    cli, serving, report  the command line, the dashboard's server, exports

``dtviz.load(source)`` opens any supported source; ``dtviz.capture`` / ``dtviz.prune`` record and prune c of
any model inside the user's own sampling script. The names below are imported on first use, so that
``import dtviz`` (and ``dtviz --help``) does not load torch.
"""
from __future__ import annotations

import importlib

from dtviz.errors import DtvizInputError

__version__ = "0.1.0"

# name -> module that defines it (imported on first access)
_LAZY = {
    "load": "dtviz.sources.loading", "BUILTIN": "dtviz.sources.loading", "BUILTINS": "dtviz.sources.loading",
    "capture": "dtviz.pruning.capture", "prune": "dtviz.pruning.capture",
    "PruneSpec": "dtviz.pruning.spec", "ConditionStats": "dtviz.analysis.stats",
    "measure_claims": "dtviz.evaluation.claims",
}
__all__ = ["load", "capture", "prune", "BUILTIN", "PruneSpec", "ConditionStats", "measure_claims", "DtvizInputError"]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dtviz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

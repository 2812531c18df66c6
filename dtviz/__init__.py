"""dtviz: analysis of the conditioning vector c = y_embedder(class) + t_embedder(t) of diffusion transformers.

UI-free: importable without streamlit. ``dtviz.load(source)`` opens any supported source and
``dtviz.stats`` holds the paper's statistics; ``dtviz.capture`` / ``dtviz.prune`` record and prune c of any
model inside the user's own sampling script (dtviz.capture).
"""
from dtviz.capture import capture, prune
from dtviz.errors import DtvizInputError
from dtviz.loading import BUILTIN, load

__all__ = ["load", "capture", "prune", "BUILTIN", "DtvizInputError"]
__version__ = "0.1.0"

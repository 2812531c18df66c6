"""Pruning: which dims of c to zero (``spec``: tail below τ or head top-k, per sample or global, at which
steps, conditional and/or null rows), the forward hooks that apply a spec inside any model (``hooks``),
each source's defaults (``defaults``), and ``capture`` / ``prune`` for the user's own sampling script.

Imports: dtviz.errors, dtviz.reference, dtviz.models, dtviz.sources and dtviz.analysis (same layer).
"""

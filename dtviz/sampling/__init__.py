"""Sampling: samplers apart from models. Euler / Heun / DDPM / DDIM (``samplers``), flow ODE and SDE
(``flow``, ``flow_sde``), a diffusers pipeline's own scheduler (``pipeline``), text-to-image (``t2i``),
seeding conventions (``seeding``), sample settings, the ``Generator`` that samples a source with or without
pruning (``generate``), image grids, and the first-come-first-served queue a shared model is sampled through.

Imports: the wings below (models, sources, analysis, pruning) and this wing.
"""

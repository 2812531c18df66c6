"""Evaluation: how good the samples are. Pixel drift, class and template accuracy (``quality``, with the
live pruning read-out), sweeps over pruning settings (``sweep``, ``sweep_metrics``), FID / IS / KID /
precision-recall (``metrics``, ``inception``) and CLIP score (``clipscore``).

Imports: every wing below (models, sources, analysis, pruning, sampling) and this wing.
"""

"""How much of c is "the label part" is set by training, not by what the model computes.

c_k(t) = y_k + t(t): for any vector a, (y_k + a) + (t(t) − a) is the same c for every condition k and every t. In a
model whose timestep embedder ends in a layer with a bias (DiT's ``t_embedder.mlp.2.bias``; diffusers'
``timestep_embedder.linear_2.bias``) the shift is a change of weights: the bias takes −a and every row of the label
table takes +a, the CFG null row too; every c, every sample and every statistic of c stays as it was
(tests/test_label_split.py checks it on DiT). So the cosine of the label part alone (the paper's Tab. 4, y row)
measures where training put the part every row shares, not something the model's outputs depend on. These readings
show how far it can move:

    as_loaded       mean off-diagonal cosine of the rows y_k as the weights hold them (what Tab. 4 reports)
    centred         a = −ȳ: the rows without their shared part (near 0 by construction)
    t_independent   a = t averaged over the schedule: y_k + t̄, the part of c_k that is the same at every t;
                    it does not depend on the split (y_k + t̄ = the average of c_k(t) over the schedule)
    shift_norm      the smallest ‖a‖ along ȳ that lifts the label-part cosine to ``target`` (0 when it already is)

Cosines are float64 means over pairs i ≠ j; the null (CFG) row is never among the rows (sources give class rows only).
"""
from __future__ import annotations

import numpy as np

from dtviz.analysis.stats import offdiag_mean_streaming


def mean_offdiag_cosine(E: np.ndarray) -> float:
    """Mean cosine over pairs i ≠ j of the rows of E (dtviz.analysis.stats.offdiag_mean_streaming), NaN when a row
    is all zeros (it has no direction) or N < 2."""
    E = np.asarray(E, dtype=np.float64)
    if not np.all(np.linalg.norm(E, axis=1) > 0):
        return float("nan")
    return offdiag_mean_streaming(E)


def shift_norm_to_reach(Y: np.ndarray, target: float, direction: np.ndarray | None = None, tol: float = 1e-4) -> float:
    """Smallest r ≥ 0 with mean_offdiag_cosine(Y + r·u) ≥ target, u = direction / ‖direction‖ (default ȳ); 0 when
    Y already reaches it, NaN when u is zero or target ≥ 1. Bisection on [0, R], R doubled until reached (the cosine
    tends to 1 as r grows, so R exists)."""
    Y = np.asarray(Y, dtype=np.float64)
    u = Y.mean(0) if direction is None else np.asarray(direction, dtype=np.float64)
    norm = np.linalg.norm(u)
    scale = float(np.sqrt(np.mean((Y * Y).sum(1))))  # the rows' rms norm: the scale of a useful shift
    if not norm > 1e-12 * scale or target >= 1:  # ȳ = 0 up to rounding: no direction to shift along
        return float("nan")
    u = u / norm
    reach = lambda r: mean_offdiag_cosine(Y + r * u) >= target  # noqa: E731
    if reach(0.0):
        return 0.0
    hi = max(scale, 1e-12)
    for _ in range(200):
        if reach(hi):
            break
        hi *= 2
    lo = 0.0
    while hi - lo > tol * hi:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if reach(mid) else (mid, hi)
    return hi


def label_part_readings(Y: np.ndarray, t_row: np.ndarray, T_schedule: np.ndarray, target: float) -> dict:
    """The label-part cosine as loaded and under function-preserving shifts (module docstring).

    Y: (N, d) label rows (no null row) at t; t_row: (d,) the timestep part at that t; T_schedule: (S, d) the timestep
    part at the S timesteps of the schedule. Returns floats: as_loaded, centred, t_independent, shift_norm (to
    ``target``), target, y_mean_norm (‖ȳ‖), y_rms_norm (rms ‖y_k‖) and t_norm (‖t_row‖) for scale.
    """
    Y = np.asarray(Y, dtype=np.float64)
    T = np.atleast_2d(np.asarray(T_schedule, dtype=np.float64))
    y_bar = Y.mean(0)
    return {"as_loaded": mean_offdiag_cosine(Y), "centred": mean_offdiag_cosine(Y - y_bar),
            "t_independent": mean_offdiag_cosine(Y + T.mean(0)), "shift_norm": shift_norm_to_reach(Y, target),
            "target": float(target), "y_mean_norm": float(np.linalg.norm(y_bar)),
            "y_rms_norm": float(np.sqrt(np.mean((Y * Y).sum(1)))),
            "t_norm": float(np.linalg.norm(np.asarray(t_row, dtype=np.float64)))}

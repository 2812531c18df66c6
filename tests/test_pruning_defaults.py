"""Pruning-page defaults from the model's own statistics: τ at a tail share (both readings, checked against
an independent float64 count), the mask from the cosine, and the τ marks a control snaps to."""
import numpy as np
import pytest

from dtviz.pruning.defaults import ALIGNED_COSINE, TAIL_SHARE, default_tau, head_k_for, pruning_defaults, tail_norm_shares
from dtviz.analysis.stats import ConditionStats


def _count_below(values: np.ndarray, tau: float) -> float:
    return float(np.mean(np.abs(values.astype(np.float64)) < tau))


@pytest.mark.parametrize("shift", [0.0, 5.0])
def test_tau_at_forty_percent_tail_both_readings(shift):
    rng = np.random.default_rng(0)
    E = rng.normal(size=(50, 40)) * np.geomspace(1e-3, 1, 40) + shift * np.r_[np.ones(4), np.zeros(36)]
    s = ConditionStats().fit(E)
    tau = s.tau_for_tail(0.4, "mean_vector")
    assert _count_below(E.mean(0), tau) == pytest.approx(16 / 40)  # round(0.4 · 40) dims of c̄ below τ
    tau_pc = s.tau_for_tail(0.4, "per_class_mean")
    per_class = np.mean([_count_below(row, tau_pc) for row in E])
    assert per_class == pytest.approx(0.4, abs=1 / 40)
    marks = s.tau_marks("mean_vector")
    assert len(marks) == 41 and np.all(np.diff(marks) > 0)
    assert [_count_below(E.mean(0), m) * 40 for m in marks[:3]] == [0, 1, 2] and _count_below(E.mean(0), marks[-1]) == 1


def test_mask_follows_alignment_known_answers():
    rng = np.random.default_rng(1)
    shared = rng.normal(size=32)
    aligned = shared + 0.05 * rng.normal(size=(20, 32))  # cosine ≈ 1
    spread = rng.normal(size=(20, 32))  # cosine ≈ 0
    a, b = pruning_defaults(ConditionStats().fit(aligned)), pruning_defaults(ConditionStats().fit(spread))
    assert ConditionStats().fit(aligned).cosine_summary_["mean"] >= ALIGNED_COSINE
    assert a.mask == "global" and a.tau == a.tau_by_mask["global"] and "paper" in a.why
    assert b.mask == "per-sample" and a.head_k == b.head_k == 2  # 3 % of 32 dims, at least 2
    # one τ per model whatever the mask: s_tail(c̄) = 448/1152, the share the paper's τ = 0.01 removes on REPA-XL
    for d, E in ((a, aligned), (b, spread)):
        assert d.tau == d.tau_by_mask["per-sample"] == default_tau(ConditionStats().fit(E))
        assert _count_below(E.mean(0), d.tau) == pytest.approx(round(448 / 1152 * 32) / 32)
    assert [head_k_for(d) for d in (32, 128, 256, 1152)] == [2, 4, 8, 35]


def test_aligned_classes_whose_small_mean_dims_are_large_per_class_get_the_per_sample_mask():
    """Cosine ≥ 0.9 from a large shared part, but the dims where c̄ is small are where each class is large (signs
    cancel over classes): the global tail then takes far more of each ‖c‖ than each row's own tail does."""
    rng = np.random.default_rng(3)
    n, shared_dims, own_dims = 40, 10, 22
    signs = rng.choice([-1.0, 1.0], size=(n, own_dims))
    signs[n // 2:] = -signs[: n // 2]  # exact cancellation: c̄ is 0 on these dims
    E = np.hstack([np.full((n, shared_dims), 10.0), signs * np.geomspace(0.01, 1.0, own_dims)])
    stats = ConditionStats().fit(E)
    assert stats.cosine_summary_["mean"] >= ALIGNED_COSINE
    d = pruning_defaults(stats, E=E)
    assert d.mask == "per-sample" and "poor guide" in d.why
    assert pruning_defaults(stats).mask == "global"  # without the rows, the cosine rule alone
    # the shares, against a direct float64 computation
    tau_g, tau_o = stats.tau_for_tail(TAIL_SHARE, "mean_vector"), stats.tau_for_tail(TAIL_SHARE, "per_class_mean")
    shared, own = tail_norm_shares(E, tau_g, tau_o)
    g = np.abs(E.mean(0)) < tau_g
    direct_g = np.mean([np.sqrt((r[g] ** 2).sum() / (r ** 2).sum()) for r in E])
    direct_o = np.mean([np.sqrt((r[np.abs(r) < tau_o] ** 2).sum() / (r ** 2).sum()) for r in E])
    assert shared == pytest.approx(direct_g) and own == pytest.approx(direct_o) and shared > 2 * own

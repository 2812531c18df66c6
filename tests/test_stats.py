"""Known-answer tests for every statistic in dtviz.analysis.stats (the paper's definitions)."""
import numpy as np
import pytest
import torch

from dtviz.analysis import stats
from dtviz.errors import DtvizInputError


def test_pr_one_hot_is_one_and_uniform_is_d():
    d = 1152
    one_hot = np.zeros(d)
    one_hot[7] = -3.0
    assert stats.participation_ratio(one_hot) == pytest.approx(1.0)
    assert stats.participation_ratio(np.full(d, 0.25)) == pytest.approx(d)
    assert stats.normalized_participation_ratio(np.full(d, 0.25)) == pytest.approx(1.0)
    assert stats.normalized_participation_ratio(one_hot) == pytest.approx(1 / d)


def test_pr_uses_absolute_values_and_k_equal_entries_give_k():
    v = np.array([1.0, -1.0, 1.0, -1.0, 0, 0, 0, 0])  # signs must not cancel: PR of |v|
    assert stats.participation_ratio(v) == pytest.approx(4.0)
    # (1 + 2 + 3)^2 / (1 + 4 + 9) = 36 / 14
    assert stats.participation_ratio(np.array([1.0, -2.0, 3.0])) == pytest.approx(36 / 14)


def test_pr_rows_and_torch_input_and_zero_vector():
    E = torch.tensor([[1.0, 0, 0, 0], [1.0, 1.0, 1.0, 1.0], [0.0, 0, 0, 0]])
    np.testing.assert_allclose(stats.participation_ratio(E), [1.0, 4.0, 0.0])


def test_cosine_matrix_known_values():
    E = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0], [-3.0, 0.0]])
    C = stats.cosine_matrix(E)
    assert C[0, 1] == pytest.approx(0.0)
    assert C[0, 2] == pytest.approx(1 / np.sqrt(2))
    assert C[0, 3] == pytest.approx(-1.0)
    np.testing.assert_allclose(np.diag(C), 1.0)
    summary = stats.offdiag_summary(C)
    off = [0.0, 1 / np.sqrt(2), -1.0, 1 / np.sqrt(2), 0.0, -1 / np.sqrt(2)]
    assert summary["mean"] == pytest.approx(np.mean(off))
    assert summary["min"] == pytest.approx(-1.0)
    assert summary["max"] == pytest.approx(1 / np.sqrt(2))
    assert sorted(stats.offdiag_values(C)) == pytest.approx(sorted(off))


def test_cosine_of_identical_rows_is_one_and_single_class_is_nan():
    C = stats.cosine_matrix(np.tile([[0.3, -2.0, 5.0]], (4, 1)))
    assert stats.offdiag_summary(C)["min"] == pytest.approx(1.0)
    assert np.isnan(stats.offdiag_summary(stats.cosine_matrix(np.ones((1, 3))))["mean"])


def test_s_tail_head_and_index_sets():
    v = np.array([0.001, -0.5, 0.01, 2.0, -0.009, 0.0])
    # |v| < 0.01: 0.001, 0.009, 0.0 -> 3 of 6; 0.01 itself is head (>= tau)
    assert stats.s_tail(v, 0.01) == pytest.approx(0.5)
    assert stats.s_head(v, 0.01) == pytest.approx(0.5)
    assert stats.head_dims(v, 0.01).tolist() == [1, 2, 3]
    assert stats.tail_dims(v, 0.01).tolist() == [0, 4, 5]
    assert stats.s_tail(v, 0.0) == 0.0
    assert stats.s_tail(v, 10.0) == 1.0
    np.testing.assert_allclose(stats.s_tail(np.stack([v, 10 * v]), 0.01), [0.5, 1 / 6])  # 10v: only the 0


def test_topk_dims():
    v = np.array([0.1, -5.0, 0.3, 2.0, 0.0])
    assert stats.topk_dims(v, 2).tolist() == [1, 3]
    assert stats.topk_dims(v, 2, largest=False).tolist() == [0, 4]
    assert stats.topk_dims(v, 99).tolist() == [0, 1, 2, 3, 4]


def test_dims_below_curve_raw_and_normalised():
    v = np.array([0.001, 0.01, 0.1, 1.0])
    raw, norm = stats.dims_below_curve(v, [0.0005, 0.005, 0.05, 0.5, 5.0])
    assert raw.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(norm, [0, 0.25, 0.5, 0.75, 1.0])
    # consistent with s_tail at every tau
    for tau, n in zip([0.0005, 0.005, 0.05, 0.5, 5.0], norm):
        assert stats.s_tail(v, tau) == pytest.approx(n)


def test_variance_population_spectrum_and_share():
    E = np.array([[0.0, 1.0, 5.0], [2.0, 1.0, 5.0], [4.0, 1.0, 8.0]])
    var = stats.per_dim_variance(E)
    np.testing.assert_allclose(var, [8 / 3, 0.0, 2.0])  # ddof = 0
    np.testing.assert_allclose(stats.variance_spectrum(var), [8 / 3, 2.0, 0.0])
    assert stats.top_k_variance_share(var, 1) == pytest.approx((8 / 3) / (8 / 3 + 2))
    np.testing.assert_allclose(stats.cumulative_variance_share(var), [(8 / 3) / (14 / 3), 1.0, 1.0])
    assert stats.top_k_variance_share(np.zeros(3), 2) == 0.0


def test_magnitude_histogram_and_mean_abs():
    E = np.array([[1.0, -1.0], [3.0, 1.0]])
    np.testing.assert_allclose(stats.mean_abs_per_dim(E), [2.0, 1.0])
    counts, edges = stats.magnitude_histogram(E, bins=2)
    assert counts.sum() == 4 and counts.tolist() == [3, 1]
    counts, edges = stats.magnitude_histogram(np.array([1e-3, 1e-2, 1e-1, 1.0]), bins=3, log=True)
    assert counts.sum() == 4 and edges[0] == pytest.approx(1e-3)


def test_condition_stats_matches_functions_and_tau_rederivation():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(50, 64)) * np.logspace(-3, 1, 64)
    cs = stats.ConditionStats().fit(E)
    row = cs.table_row()
    assert row["pr"]["mean_vector"] == pytest.approx(stats.participation_ratio(E.mean(0)))
    assert row["pr"]["per_class_mean"] == pytest.approx(stats.participation_ratio(E).mean())
    assert row["npr"]["mean_vector"] == pytest.approx(row["pr"]["mean_vector"] / 64)
    assert row["cosine"]["mean"] == pytest.approx(stats.offdiag_summary(stats.cosine_matrix(E))["mean"])
    for tau in (0.0, 0.003, 0.05, 1.0, 100.0):
        at = cs.at_tau(tau)
        assert at["s_tail"]["mean_vector"] == pytest.approx(stats.s_tail(E.mean(0), tau))
        assert at["s_tail"]["per_class_mean"] == pytest.approx(stats.s_tail(E, tau).mean())
        assert at["head_dims"] == stats.head_dims(E.mean(0), tau).tolist()
        assert at["head_count"] + at["tail_count"] == 64


def test_bad_shapes_are_clear():
    with pytest.raises(DtvizInputError, match="non-empty"):
        stats.participation_ratio(np.zeros((0, 3)))
    with pytest.raises(DtvizInputError, match="N×d"):
        stats.cosine_matrix(np.zeros((2, 2, 2)))

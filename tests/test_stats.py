"""Known-answer tests for every statistic in dtviz.analysis.stats (the paper's definitions)."""
import math

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


def _reference(E64: np.ndarray, tau: float) -> dict:
    """Whole-matrix float64 formulas, written out here (no dtviz code): the definitions in the module docstring."""
    A = np.abs(E64)
    mean = E64.mean(0)
    U = E64 / np.linalg.norm(E64, axis=1, keepdims=True)
    C = U @ U.T
    off = C[~np.eye(len(C), dtype=bool)]
    return {"mean": mean, "variance": ((E64 - mean) ** 2).mean(0), "pr_rows": A.sum(1) ** 2 / (A ** 2).sum(1),
            "pr_mean": np.abs(mean).sum() ** 2 / (mean ** 2).sum(), "s_tail_rows": (A < tau).mean(1).mean(),
            "s_tail_mean": (np.abs(mean) < tau).mean(), "cos": (off.mean(), off.min(), off.max())}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("streaming", [False, True])
def test_fit_in_blocks_equals_the_whole_matrix_float64_formulas(monkeypatch, dtype, streaming):
    """fit reads E a few rows at a time (FIT_BLOCK_ROWS, here 7 so that 50 rows make 8 blocks, the last short) and
    keeps the sorted |c| in E's own precision: every number equals the float64 formulas on the whole matrix, the
    cosine mean too when it is streamed (more rows than MAX_COSINE_CLASSES)."""
    monkeypatch.setattr(stats, "FIT_BLOCK_ROWS", 7)
    if streaming:
        monkeypatch.setattr(stats, "MAX_COSINE_CLASSES", 10)
    rng = np.random.default_rng(3)
    E = (rng.normal(size=(50, 40)) * np.logspace(-3, 1, 40) + 0.5).astype(dtype)
    cs = stats.ConditionStats().fit(E)
    tau = float(np.median(np.abs(E)))
    ref = _reference(E.astype(np.float64), tau)
    np.testing.assert_allclose(cs.mean_vector_, ref["mean"], rtol=1e-12)
    np.testing.assert_allclose(cs.variance_, ref["variance"], rtol=1e-10)
    np.testing.assert_allclose(cs.pr_per_class_, ref["pr_rows"], rtol=1e-12)
    assert cs.pr_mean_vector_ == pytest.approx(ref["pr_mean"], rel=1e-12)
    share = cs.s_tail_at(tau)
    assert share["per_class_mean"] == ref["s_tail_rows"] and share["mean_vector"] == ref["s_tail_mean"]
    assert cs.cosine_summary_["mean"] == pytest.approx(ref["cos"][0], rel=1e-12)
    if not streaming:
        assert (cs.cosine_summary_["min"], cs.cosine_summary_["max"]) == pytest.approx(ref["cos"][1:], rel=1e-12)


def test_a_tau_between_two_float32_values_is_compared_as_the_number_it_is():
    """s_tail counts |c_i| < τ with τ a float64 number: a float32 entry just below τ is below it, although τ
    rounds to that entry in float32 (NumPy's own comparison would count it as equal, so not below)."""
    x = np.float32(0.1)
    tau = float(x) + 1e-12  # above x, and float32(tau) == x
    assert np.float32(tau) == x
    E = np.full((3, 4), x, dtype=np.float32)
    cs = stats.ConditionStats().fit(E)
    assert cs.s_tail_at(tau) == {"mean_vector": 1.0, "per_class_mean": 1.0}
    assert cs.s_tail_at(float(x)) == {"mean_vector": 0.0, "per_class_mean": 0.0}
    assert stats.count_below(np.sort(np.abs(E[0])), tau) == 4


def test_fit_holds_about_one_copy_of_a_large_float32_matrix():
    """In a fresh process, fitting a 64 MiB float32 matrix of 100 000 rows adds less than 2× its size to the peak
    memory (the sorted |c| is one copy; before blocks it was ~6×: +1.5 GB on 256 MiB)."""
    import subprocess
    import sys

    code = ("import resource, numpy as np; from dtviz.analysis.stats import ConditionStats; "
            "E = np.random.default_rng(0).standard_normal((100_000, 168), dtype=np.float32); "
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; ConditionStats().fit(E); "
            "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024)")
    grown = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}).stdout)
    assert grown < 2 * 100_000 * 168 * 4, grown


def test_head_through_silu_known_answer():
    """dtviz.analysis.stats.head_through_silu: the top-k |v_i| (largest first), SiLU(x) = x / (1 + e^(−x)) of them,
    the negatives among them, and the head's share of Σ|v| and of Σ|SiLU(v)| (float64, written out here)."""
    from dtviz.analysis.stats import head_through_silu

    v = np.array([0.1, -3.0, 2.0, -0.5, 0.0])
    h = head_through_silu(v, 2)
    s = lambda x: x / (1 + math.exp(-x))  # noqa: E731
    assert h["dims"] == [1, 2] and h["values"] == [-3.0, 2.0] and h["negative"] == 1
    assert h["silu"] == pytest.approx([s(-3.0), s(2.0)], abs=1e-15)
    assert h["share_c"] == pytest.approx(5.0 / 5.6)
    total = sum(abs(s(x)) for x in v)
    assert h["share_silu"] == pytest.approx((abs(s(-3.0)) + s(2.0)) / total)
    assert head_through_silu(np.zeros(3), 2)["share_c"] != head_through_silu(np.zeros(3), 2)["share_c"]  # NaN: no mass

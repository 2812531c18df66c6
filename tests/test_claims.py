"""The claims scorecard: its numbers against independent float64 formulas, its verdicts against their stated rules,
and its sampling rows against the runs they report (dtviz.evaluation.claims, claim_sampling)."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import dtviz
from dtviz.evaluation.claim_sampling import SamplingPlan, plan_runs, sampling_claims
from dtviz.evaluation.claims import (ALIGNED, CLAIM_IDS, FAILS, HOLDS, NOT_MEASURABLE, PARTLY, SAMPLING_IDS,
                                     measure_claims, statistics_claims)
from tests.test_pruning import save_tiny_folder

KEYS = {"id", "claim", "paper", "measured", "verdict", "rule", "evidence", "page"}


# --------------------------------------------------------------------------- independent float64 formulas

def offdiag_cosine(E: np.ndarray) -> float:
    E = np.asarray(E, dtype=np.float64)
    n = len(E)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += E[i] @ E[j] / np.sqrt((E[i] @ E[i]) * (E[j] @ E[j]))
    return total / (n * (n - 1))


def npr(v: np.ndarray) -> float:
    a = np.abs(np.asarray(v, dtype=np.float64))
    return float(a.sum() ** 2 / (a ** 2).sum() / len(a))


def top_share(E: np.ndarray, k: int) -> float:
    E = np.asarray(E, dtype=np.float64)
    var = ((E - E.mean(0)) ** 2).mean(0)
    return float(np.sort(var)[::-1][:k].sum() / var.sum())


def by_id(rows) -> dict:
    return {r.id: r for r in rows}


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory):
    folder = save_tiny_folder(str(tmp_path_factory.mktemp("claims") / "tiny"), family="sit", seed=4, classifier=True)
    return dtviz.load(folder, device="cpu")


def test_statistics_rows_equal_float64_formulas(tiny_source):
    rows = by_id(statistics_claims(tiny_source))
    E = tiny_source.embeddings(t=tiny_source.t0).astype(np.float64)
    Y = tiny_source.embeddings(t=tiny_source.t0, part="y").astype(np.float64)
    assert rows["alignment_yt"].evidence["cosine_mean"] == pytest.approx(offdiag_cosine(E), abs=1e-9)
    assert rows["alignment_y"].evidence["cosine_y"] == pytest.approx(offdiag_cosine(Y), abs=1e-9)
    assert rows["sparsity_npr"].evidence["npr_mean_vector"] == pytest.approx(npr(E.mean(0)), abs=1e-9)
    c_bar = E.mean(0)
    assert rows["sparsity_npr"].evidence["npr_silu_mean_vector"] == pytest.approx(npr(c_bar / (1 + np.exp(-c_bar))), abs=1e-9)
    top = rows["variance_head"].evidence["top"]
    assert top == 20 and rows["variance_head"].evidence["top_share"] == pytest.approx(top_share(E, top), abs=1e-9)
    var = ((E - E.mean(0)) ** 2).mean(0)
    cum = np.cumsum(np.sort(var)[::-1]) / var.sum()
    assert rows["variance_head"].evidence["dims_for_50"] == int(np.argmax(cum >= 0.5)) + 1
    assert rows["variance_head"].evidence["dims_for_80"] == int(np.argmax(cum >= 0.8)) + 1
    t_row = tiny_source.embeddings(classes=[0], t=tiny_source.t0, part="t").astype(np.float64)[0]
    t_sq, y_sq = t_row @ t_row, np.mean((Y * Y).sum(1))
    assert rows["alignment_y"].evidence["t_share"] == pytest.approx(t_sq / (t_sq + y_sq), rel=1e-9)
    # over t: every cosine at the source's own schedule (Euler, 4 steps: t = 0, .25, .5, .75)
    over = rows["alignment_over_t"].evidence
    assert over["t"] == [0.0, 0.25, 0.5, 0.75]
    for t, cos in zip(over["t"], over["cosine_mean"]):
        assert cos == pytest.approx(offdiag_cosine(tiny_source.embeddings(t=t)), abs=1e-9)
    assert over["min"] == pytest.approx(min(over["cosine_mean"]))


def test_every_row_has_the_keys_and_a_verdict_that_follows_its_rule(tiny_source):
    rows = measure_claims(tiny_source, sampling=False)
    assert [r.id for r in rows] == list(CLAIM_IDS)
    for r in rows:
        d = r.to_dict()
        assert set(d) == KEYS and json.dumps(d)
        assert r.rule and r.claim and r.paper
    got = by_id(rows)
    cos = got["alignment_yt"].evidence["cosine_mean"]
    assert got["alignment_yt"].verdict == (HOLDS if cos >= ALIGNED else PARTLY if cos >= 0.5 else FAILS)
    for cid in SAMPLING_IDS:
        assert got[cid].verdict == NOT_MEASURABLE
    assert got["training_sparsification"].verdict == NOT_MEASURABLE  # the tiny folder ships no snapshots/


def planted(n: int = 40, d: int = 600, head: int = 8, seed: int = 0, aligned: bool = True) -> np.ndarray:
    """Rows whose class lives in the first ``head`` dims on a shared large vector there, the rest tiny noise."""
    rng = np.random.default_rng(seed)
    E = rng.normal(0, 1e-4, size=(n, d))
    if aligned:
        E[:, :head] += 5.0
    E[:, :head] += rng.normal(0, 0.5, size=(n, head))
    return E


def test_verdicts_on_planted_structure_and_on_gaussian_rows(tmp_path):
    """A matrix whose answer is known by construction, against i.i.d. Gaussian rows (the control)."""
    np.save(tmp_path / "planted.npy", planted().astype(np.float32))
    np.save(tmp_path / "gauss.npy", np.random.default_rng(1).normal(size=(40, 600)).astype(np.float32))
    good = by_id(measure_claims(dtviz.load(str(tmp_path / "planted.npy")), sampling=False))
    bad = by_id(measure_claims(dtviz.load(str(tmp_path / "gauss.npy")), sampling=False))
    for cid in ("alignment_yt", "sparsity_npr", "sparsity_magnitudes", "variance_head", "head_is_class"):
        assert good[cid].verdict == HOLDS, (cid, good[cid].measured)
        assert bad[cid].verdict == FAILS, (cid, bad[cid].measured)
    assert good["head_is_class"].evidence["head"] > 0.9 > good["head_is_class"].evidence["tail"]
    # a matrix has no label / timestep parts and no schedule: said, not guessed
    for cid in ("alignment_y", "alignment_over_t", *SAMPLING_IDS):
        assert good[cid].verdict == NOT_MEASURABLE and good[cid].measured.startswith("not")


def test_knn_overlap_against_a_brute_force_count():
    from dtviz.analysis.structure import knn_overlap

    E = np.random.default_rng(3).normal(size=(15, 12))
    dims = [0, 2, 5]
    X = E - E.mean(0)

    def nn(M, i, k):
        d = [(np.sum((M[i] - M[j]) ** 2), j) for j in range(len(M)) if j != i]
        return {j for _, j in sorted(d)[:k]}

    expected = np.mean([len(nn(X, i, 4) & nn(X[:, dims], i, 4)) / 4 for i in range(15)])
    assert knn_overlap(E, dims, k=4) == pytest.approx(expected)
    assert knn_overlap(E, np.arange(12), k=4) == 1.0


def test_training_row_reads_a_run_folder(tmp_path):
    """nPR over snapshots: a run whose label table grows in a few dims sparsifies; the verdict follows the rule."""
    from safetensors.torch import save_file
    import torch

    from tests.factories import randomized_dit, tiny_config

    model = randomized_dit(tiny_config(10, hidden=32, depth=1, in_channels=1, learn_sigma=False), seed=0)
    emb = {k: v.clone().contiguous() for k, v in model.state_dict().items() if k.startswith(("t_embedder.", "y_embedder."))}
    w = emb["y_embedder.embedding_table.weight"]
    for step, scale in ((0, 0.0), (100, 20.0), (200, 80.0)):
        state = dict(emb)
        bump = torch.zeros_like(w)
        bump[:, :2] = scale
        state["y_embedder.embedding_table.weight"] = w + bump
        save_file(state, str(tmp_path / f"step_{step:06d}.safetensors"), metadata={"step": str(step)})
    from dtviz.evaluation.claims import training_row

    r = training_row(str(tmp_path), family="sit")
    npr_steps = r.evidence["npr_mean_vector"]
    assert r.evidence["step"] == [0, 100, 200] and npr_steps[2] < npr_steps[1] < npr_steps[0]
    assert r.verdict == (HOLDS if npr_steps[2] <= max(npr_steps) / 2 else PARTLY)


def test_sampling_rows_report_both_null_variants_and_both_controls(tiny_source):
    plan = SamplingPlan(classes=tuple(range(10)), per_class=1, seed=0, head_k=3, random_draws=2)
    seen = []
    rows = by_id(sampling_claims(tiny_source, plan=plan, progress=lambda i, n, name: seen.append(name)))
    names = [n for n, _ in plan_runs(plan, 0.1, tiny_source.dim, 4)]
    assert seen == names + ["done"]
    head = rows["prune_head"].evidence["runs"]
    assert {"head_pruned", "head_kept", "head_y_only", "random_0", "random_1"} <= set(head)
    assert "null-kept" in head["head_kept"]["spec"] and "y-only" in head["head_y_only"]["spec"]
    tail = rows["prune_tail"].evidence["runs"]
    assert {"tail_pruned", "tail_kept"} <= set(tail)
    # the verdict follows the rule from the reported accuracies (the tiny model ships a classifier)
    base = tail["baseline"]["accuracy"]
    keeps = [tail[n]["accuracy"] >= base - 0.03 for n in ("tail_pruned", "tail_kept")]
    assert rows["prune_tail"].verdict == (HOLDS if all(keeps) else PARTLY if any(keeps) else FAILS)
    late = rows["late_vs_t0"].evidence
    assert late["last_k"] == 1 and {"first_pruned", "last_kept"} <= set(late["runs"])


def test_sampling_rows_on_a_source_that_cannot_sample(tmp_path):
    np.save(tmp_path / "m.npy", planted().astype(np.float32))
    rows = sampling_claims(dtviz.load(str(tmp_path / "m.npy")))
    assert [r.verdict for r in rows] == [NOT_MEASURABLE] * 3 and "cannot sample" in rows[0].measured


def test_builtin_statistics_rows_match_an_independent_reading():
    """The shipped model: the numbers the README and the card quote come from these rows."""
    source = dtviz.load("builtin")
    rows = by_id(statistics_claims(source))
    E = source.embeddings(t=source.t0).astype(np.float64)
    assert rows["alignment_yt"].evidence["cosine_mean"] == pytest.approx(
        float(((E / np.linalg.norm(E, axis=1, keepdims=True)) @ (E / np.linalg.norm(E, axis=1, keepdims=True)).T
               ).sum() - len(E)) / (len(E) * (len(E) - 1)), abs=1e-9)
    assert rows["sparsity_npr"].evidence["npr_mean_vector"] == pytest.approx(npr(E.mean(0)), abs=1e-9)
    assert os.path.isdir(os.path.join(os.path.dirname(source.info.extra["path"]) if os.path.isfile(source.info.extra["path"])
                                      else source.info.extra["path"], "snapshots"))
    assert rows["training_sparsification"].verdict != NOT_MEASURABLE


def test_the_paper_numbers_each_claim_quotes_are_the_transcribed_tables():
    """Every number of the "paper" column that a table holds is that table's value (dtviz.reference), rounded as
    quoted: a mistyped or stale figure fails here."""
    from dtviz.evaluation.claims import CLAIM_TEXT
    from dtviz.reference import paper_rows

    def value(table, name, key, part=None):
        return next(r[key] for r in paper_rows(table, part=part) if r["name"] == name)

    tab2 = {(r["prune"], r["tau"], r["schedule"]): r for r in paper_rows(2)}
    quoted = {
        "alignment_yt": [f"{value(1, 'DiT-XL/2', 'cosine'):.2f} (DiT-XL/2)", f"{value(1, 'REPA-XL', 'cosine'):.3f} (REPA-XL)"],
        "alignment_y": [f"{value(4, 'REPA-XL', 'cosine', 'y'):.2f} (REPA)", f"{value(4, 'MDT-XL/2', 'cosine', 'y'):.2f} (MDT)",
                        f"SD3 {value(5, 'SD3.0 (2B)', 'cosine', 'y'):.2f}"],
        "sparsity_npr": [f"{100 * value(1, 'REPA-XL', 'npr'):.1f} % (REPA-XL)", f"{100 * value(1, 'DiT-XL/2', 'npr'):.2f} % (DiT-XL/2)"],
        "prune_tail": [f"{tab2[('tail', 0.01, 'every')]['removed_dims']}/1152",
                       f"FID {tab2[('tail', None, None)]['fid']:.2f} → {tab2[('tail', 0.01, 'every')]['fid']:.2f}"],
        "prune_head": [f"{tab2[('head', 1.0, 'every')]['removed_dims']} dims: FID {tab2[('tail', None, None)]['fid']:.1f} → "
                       f"{tab2[('head', 1.0, 'every')]['fid']:.0f}"],
        "late_vs_t0": [f"at t0: FID {tab2[('tail', 0.01, 'first')]['fid']:.2f}", f"last k steps: {tab2[('tail', 0.01, 'last')]['fid']:.2f}",
                       f"every step: {tab2[('tail', 0.01, 'every')]['fid']:.2f}"],
    }
    for cid, parts in quoted.items():
        for part in parts:
            assert part in CLAIM_TEXT[cid]["paper"], (cid, part, CLAIM_TEXT[cid]["paper"])


def test_head_is_class_also_reads_the_head_as_every_dim_above_the_source_tau(tmp_path):
    """The second reading of Fig. 13's head (the paper gives no size): the dims with |c̄ᵢ| ≥ the τ that leaves 448/1152
    of them in the tail. On planted rows: that τ by a float64 quantile, the head's size, and the scores as
    subspace_scores gives them for that head; the verdict stays on the top-20 reading."""
    from dtviz.analysis.structure import subspace_scores

    E = planted(n=40, d=1152, head=8)
    E[:, 8:300] += 0.05  # a middle band above any τ the tail share could give: the τ-head is these and the planted 8
    np.save(tmp_path / "planted.npy", E.astype(np.float32))
    src = dtviz.load(str(tmp_path / "planted.npy"))
    row = by_id(measure_claims(src, sampling=False))["head_is_class"]
    by_tau = row.evidence["by_tau"]
    X = src.embeddings().astype(np.float64)
    magnitude = np.sort(np.abs(X.mean(0)))
    assert magnitude[447] < by_tau["tau"] <= magnitude[448]  # 448 dims of c̄ below τ
    assert by_tau["head_size"] == 1152 - 448
    head = np.flatnonzero(np.abs(X.mean(0)) >= by_tau["tau"])
    expected = subspace_scores(X, head)
    for key in ("head", "tail", "random"):
        assert by_tau[key] == pytest.approx(expected[key], abs=1e-6)
    assert f"with the head = the {1152 - 448} dims with |c̄ᵢ| ≥ τ" in row.measured
    assert row.verdict == HOLDS  # the top-20 reading: the planted 8 carry the class

"""The label part of c is fixed only up to a shared vector (dtviz.analysis.label_split).

The oracle is a change of weights on a real DiT folder: every row of the label table takes +a (the null row too) and
t_embedder.mlp.2.bias takes −a. Then every c and every sample must be the same, the label-part cosine must move, and
the readings that do not depend on the split (the t-independent cosine) must not.
"""
import json
import os

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from dtviz.analysis.label_split import label_part_readings, mean_offdiag_cosine, shift_norm_to_reach
from tests.test_pruning import save_tiny_folder


def pairwise_cosine_loop(E) -> float:
    """Independent float64 reference: the mean over ordered pairs i ≠ j, one pair at a time."""
    E = np.asarray(E, dtype=np.float64)
    total, count = 0.0, 0
    for i in range(len(E)):
        for j in range(len(E)):
            if i != j:
                total += E[i] @ E[j] / (np.linalg.norm(E[i]) * np.linalg.norm(E[j]))
                count += 1
    return total / count


def test_mean_offdiag_cosine_equals_the_pair_by_pair_mean():
    E = np.random.default_rng(0).normal(size=(12, 7)) + 0.3
    assert mean_offdiag_cosine(E) == pytest.approx(pairwise_cosine_loop(E), abs=1e-12)
    assert np.isnan(mean_offdiag_cosine(np.vstack([E, np.zeros(7)])))  # a zero row has no direction


@pytest.mark.parametrize("target", [0.3, 0.5, 0.9])
def test_shift_norm_has_the_closed_form_of_orthonormal_rows(target):
    """Rows e_1..e_N (orthonormal), u = ȳ/‖ȳ‖ = Σe_k/√N: cos(e_k + r·u, e_l + r·u) = (r² + 2r/√N) / (1 + r² + 2r/√N),
    so the cosine reaches c at r = −1/√N + √(1/N + c/(1 − c))."""
    n = 6
    Y = np.eye(n, 10)
    expected = -1 / np.sqrt(n) + np.sqrt(1 / n + target / (1 - target))
    assert shift_norm_to_reach(Y, target) == pytest.approx(expected, rel=1e-3)
    assert shift_norm_to_reach(Y + 5 * np.ones(10), target) == 0.0  # already aligned: no shift needed
    assert np.isnan(shift_norm_to_reach(Y - Y.mean(0), target))  # ȳ = 0: no direction to shift along


def shifted_folder(src: str, dst: str, a: np.ndarray) -> str:
    """A copy of a dtviz model folder with +a on every label row (null row too) and −a on t_embedder's output bias."""
    os.makedirs(dst)
    state = load_file(os.path.join(src, "model.safetensors"))
    import torch

    shift = torch.as_tensor(a, dtype=torch.float32)
    state["y_embedder.embedding_table.weight"] = state["y_embedder.embedding_table.weight"] + shift
    state["t_embedder.mlp.2.bias"] = state["t_embedder.mlp.2.bias"] - shift
    save_file(state, os.path.join(dst, "model.safetensors"))
    with open(os.path.join(src, "config.json")) as fh, open(os.path.join(dst, "config.json"), "w") as out:
        json.dump(json.load(fh), out)
    return dst


@pytest.fixture(scope="module")
def two_splits(tmp_path_factory):
    import dtviz

    root = tmp_path_factory.mktemp("split")
    original = save_tiny_folder(str(root / "original"), family="sit")
    plain = dtviz.load(original, device="cpu")
    Y = plain.embeddings(part="y").astype(np.float64)
    a = 3.0 * Y.mean(0) / np.linalg.norm(Y.mean(0))  # along ȳ, three times the rows' typical size
    return plain, dtviz.load(shifted_folder(original, str(root / "shifted"), a), device="cpu"), a


def test_a_shift_between_label_table_and_t_bias_leaves_c_and_samples_as_they_were(two_splits):
    from dtviz.sampling.generate import Generator, SampleSettings

    plain, shifted, a = two_splits
    for t in (plain.t0, 0.5, 0.9):
        np.testing.assert_allclose(shifted.embeddings(t=t), plain.embeddings(t=t), atol=1e-5)
        np.testing.assert_allclose(shifted.embeddings(t=t, part="y"), plain.embeddings(t=t, part="y") + a, atol=1e-5)
    settings = SampleSettings(seed=3)
    np.testing.assert_allclose(Generator(shifted).sample([0, 4, 9], settings), Generator(plain).sample([0, 4, 9], settings),
                               atol=1e-4)
    cos_plain = mean_offdiag_cosine(plain.embeddings(part="y"))
    cos_shifted = mean_offdiag_cosine(shifted.embeddings(part="y"))
    assert cos_shifted > cos_plain + 0.3  # the label-part cosine follows the split, not the function


def test_claims_row_reports_the_split_free_readings_which_do_not_move(two_splits):
    from dtviz.evaluation.claims import statistics_claims

    rows = [{r.id: r for r in statistics_claims(src)} for src in two_splits[:2]]
    split = [r["alignment_y"].evidence["split"] for r in rows]
    assert split[1]["as_loaded"] > split[0]["as_loaded"] + 0.3
    assert split[1]["t_independent"] == pytest.approx(split[0]["t_independent"], abs=1e-5)  # the function's own
    assert rows[0]["alignment_yt"].evidence["cosine_mean"] == pytest.approx(rows[1]["alignment_yt"].evidence["cosine_mean"],
                                                                           abs=1e-5)
    assert rows[0]["alignment_y"].evidence["t_bias"] == "t_embedder.mlp.2.bias"
    measured = rows[0]["alignment_y"].measured
    assert "moving a from t_embedder.mlp.2.bias into every label row leaves every c as it is, and ‖a‖ = " in measured
    assert f"has cosine {split[0]['t_independent']:.4f}." in measured


def test_readings_match_float64_recomputation():
    rng = np.random.default_rng(1)
    Y, T = rng.normal(size=(20, 16)), rng.normal(size=(5, 16)) + 2.0
    got = label_part_readings(Y, T[0], T, 0.5)
    assert got["as_loaded"] == pytest.approx(pairwise_cosine_loop(Y), abs=1e-12)
    assert got["centred"] == pytest.approx(pairwise_cosine_loop(Y - Y.mean(0)), abs=1e-12)
    assert got["t_independent"] == pytest.approx(pairwise_cosine_loop(Y + T.mean(0)), abs=1e-12)
    assert pairwise_cosine_loop(Y + got["shift_norm"] * Y.mean(0) / np.linalg.norm(Y.mean(0))) == pytest.approx(0.5, abs=1e-3)
    assert got["t_norm"] == pytest.approx(np.linalg.norm(T[0]))


def test_the_sentence_says_when_dtviz_cannot_tell_whether_the_weights_take_the_shift():
    from dtviz.evaluation.claims import split_sentence

    split = {"shift_norm": 1.2479, "t_norm": 6.0455, "target": 0.5, "t_independent": 0.82989}
    told = split_sentence(split, "t_embedder.mlp.2.bias", "label")
    assert told == ("The outputs do not fix this split: moving a from t_embedder.mlp.2.bias into every label row leaves "
                    "every c as it is, and ‖a‖ = 1.25 along ȳ (‖t‖ = 6.05) gives 0.5; the part of c that is the same at "
                    "every t (y + mean t) has cosine 0.8299.")
    unknown = split_sentence(dict(split, shift_norm=0.0), None, "text")
    assert "whether the weights can take the shift, dtviz cannot tell" in unknown and "‖a‖" not in unknown

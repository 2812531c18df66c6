"""Quality metrics (dtviz.evaluation.metrics, dtviz.evaluation.inception, dtviz sweep --metrics) on a random-weight Inception.

The network is torch-fidelity's own FeatureExtractorInceptionV3 with random (He-initialised) weights, saved
as a state dict to a local file, i.e. the real weights' architecture and file layout. To keep the CPU cost
small the forward resizes to 75² (Inception-v3's smallest input) instead of 299² — a class constant of the
dependency, not our code; everything else is the real path."""
from __future__ import annotations

import csv
import io
import os

import numpy as np
import pytest
import torch

from dtviz.evaluation import inception, metrics
from dtviz.cli.main import main
from dtviz.errors import DtvizInputError

SMALL_INPUT = 75


@pytest.fixture(scope="module")
def small_input():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(inception.inception_class(), "INPUT_IMAGE_SIZE", SMALL_INPUT)
        yield


@pytest.fixture(scope="module")
def weights(tmp_path_factory, small_input):
    """A random-weight Inception state dict in a local file (same keys and shapes as the real one)."""
    cls = inception.inception_class()

    class Untrained(cls):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # keep the random init
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    torch.manual_seed(0)
    net = Untrained("random", list(inception.FEATURES), feature_extractor_weights_path=empty)
    for m in net.modules():  # He init: O(1) features through ~100 layers (torch's default shrinks them to ~1e-8)
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        elif isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, std=m.in_features ** -0.5)
    path = str(tmp_path_factory.mktemp("inception") / inception.WEIGHTS_FILE)
    torch.save(net.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def net(weights):
    return inception.load_inception(weights)


@pytest.fixture(scope="module")
def image_sets(net):
    """Features of 12 images 64×64, the same with noise σ = 20 and 80, and brightness-shifted by +120."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (12, 8, 8, 3)).repeat(8, 1).repeat(8, 2).astype(np.int64)  # blocky, image-like
    noisy = {s: np.clip(base + rng.normal(0, s, base.shape), 0, 255).astype(np.uint8) for s in (20, 80)}
    shifted = np.clip(base // 3 + 170, 0, 255).astype(np.uint8)
    return {"base": inception.features(net, base.astype(np.uint8)), "noise20": inception.features(net, noisy[20]),
            "noise80": inception.features(net, noisy[80]), "shifted": inception.features(net, shifted)}


# ------------------------------------------------------------------------------ known answers (float64)

def test_frechet_distance_of_diagonal_gaussians_is_the_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    v1, v2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = ((mu1 - mu2) ** 2).sum() + (v1 + v2 - 2 * np.sqrt(v1 * v2)).sum()
    assert metrics.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_full_covariances_matches_scipy_sqrtm():
    from scipy import linalg

    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    s1, s2, mu1, mu2 = a @ a.T + 0.1 * np.eye(5), b @ b.T, rng.normal(size=5), rng.normal(size=5)
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2) - 2 * np.trace(np.real(linalg.sqrtm(s1 @ s2)))
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_fid_from_few_features_equals_the_full_formula():
    rng = np.random.default_rng(3)
    f, ref = rng.normal(size=(9, 40)), rng.normal(1.0, 2.0, size=(30, 40))
    mu, sigma = metrics.gaussian_stats(ref)
    full = metrics.frechet_distance(*metrics.gaussian_stats(f), mu, sigma)
    # rel 1e-7: the D×D path takes √ of ~1e-15 round-off eigenvalues of the rank-8 product (√ → ~1e-8 each)
    assert metrics.fid_from_features(f, mu, sigma) == pytest.approx(full, rel=1e-7)


def test_inception_score_known_answers():
    assert metrics.inception_score(np.zeros((20, 7)), splits=2)[0] == pytest.approx(1.0)
    one_hot = np.eye(10)[np.arange(20) % 10] * 80.0  # confident, every class equally often
    assert metrics.inception_score(one_hot, splits=2)[0] == pytest.approx(10.0, rel=1e-6)


def test_precision_recall_and_kid_on_shifted_gaussians():
    rng = np.random.default_rng(4)
    real = rng.normal(size=(40, 8))
    assert metrics.precision_recall(real, real) == (1.0, 1.0)
    assert metrics.precision_recall(real, real + 50.0) == (0.0, 0.0)
    narrow = real[:, :] * 0.05  # inside the real manifold, covering little of it
    p, r = metrics.precision_recall(real, narrow)
    assert p > 0.9 and r < 0.3
    same, apart = metrics.kernel_inception_distance(real, real)[0], metrics.kernel_inception_distance(real + 1.0, real)[0]
    assert abs(same) < 0.05 * apart


# -------------------------------------------------------------------------- the random-weight network

def test_fid_of_a_set_against_itself_is_zero_and_rises_with_noise(image_sets):
    mu, sigma = metrics.gaussian_stats(image_sets["base"][0])
    same = metrics.fid_from_features(image_sets["base"][0], mu, sigma)
    low = metrics.fid_from_features(image_sets["noise20"][0], mu, sigma)
    high = metrics.fid_from_features(image_sets["noise80"][0], mu, sigma)
    assert abs(same) < 1e-6 * low
    assert 0 < low < high


def test_precision_recall_sanity_on_image_sets(image_sets):
    base, shifted = image_sets["base"][0], image_sets["shifted"][0]
    assert metrics.precision_recall(base, base) == (1.0, 1.0)
    p, r = metrics.precision_recall(base, shifted)
    assert p < 1.0 and r < 1.0


def test_features_shapes_and_grayscale(net):
    gray = np.full((2, 32, 32, 1), 128, np.uint8)
    pool, logits = inception.features(net, gray)
    assert pool.shape == (2, 2048) and logits.shape == (2, 1008) and pool.dtype == np.float64
    np.testing.assert_allclose(pool, inception.features(net, np.repeat(gray, 3, -1))[0])


def test_weights_are_read_safely_and_bad_files_get_one_sentence(tmp_path):
    bad = tmp_path / "w.pth"
    torch.save({"something": torch.zeros(2)}, str(bad))
    with pytest.raises(DtvizInputError, match="is not one"):
        inception.load_inception(str(bad))
    with pytest.raises(DtvizInputError, match="no file at"):
        inception.find_weights(str(tmp_path / "missing.pth"))


def test_reference_npz_uses_adm_keys(tmp_path, net):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    mu, sigma = np.zeros(2048), np.eye(2048)
    np.savez(str(tmp_path / "ref.npz"), arr_0=images, mu=mu, sigma=sigma, mu_s=np.zeros(3), sigma_s=np.eye(3))
    ref = inception.reference_from(str(tmp_path / "ref.npz"), net)
    assert ref.features.shape == (3, 2048) and ref.mu is not None and "ADM" in ref.stats_from
    np.testing.assert_allclose(ref.features, inception.features(net, images)[0])


# ---------------------------------------------------------------------------------------- the sweep

def _sweep(out, *extra):
    return main(["sweep", "builtin", "--device", "cpu", "--classes", "0,1", "--per-class", "2", "--seed", "0",
                 "--steps", "4", "--tau", "0,0.5", "--out", str(out), *extra])


def _table(out):
    with open(os.path.join(out, "table.csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def _real_folder(folder, n: int, side: int, seed: int) -> str:
    """``n`` random RGB PNGs of ``side``² px: a stand-in for a folder of real images."""
    from PIL import Image

    folder.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(str(folder / f"{i}.png"))
    return str(folder)


def test_sweep_writes_the_metric_columns(tmp_path, weights):
    real = _real_folder(tmp_path / "real", 4, 32, seed=6)
    out = tmp_path / "sweep"
    assert _sweep(out, "--metrics", "fid,is,kid,pr", "--inception", weights, "--reference", real) == 0
    rows = _table(out)
    assert [r["setting"] for r in rows][0] == "baseline" and len(rows) == 3
    for r in rows:
        for c in ("fid", "is", "kid", "precision", "recall"):
            assert r[c] != "" and np.isfinite(float(r[c]))
    # τ = 0 prunes nothing: same samples as the baseline, same metrics
    assert rows[1]["fid"] == rows[0]["fid"]
    md = open(os.path.join(out, "table.md"), encoding="utf-8").read()
    assert "FID ↓" in md and "Precision ↑" in md and "against real" in md


def test_sweep_on_a_small_dit_writes_the_table_2_columns(tmp_path, weights):
    """A DiT-family (ε, DDPM) pixel-space model folder: FID, IS, precision/recall per setting from local weights."""
    from tests.factories import randomized_dit, save_model_folder, tiny_config

    folder = save_model_folder(tmp_path / "dit", randomized_dit(tiny_config(in_channels=3, input_size=16, patch=4)),
                               "dit", sampler={"name": "ddpm", "steps": 4, "cfg_scale": 2.0})
    real = _real_folder(tmp_path / "real", 6, 16, seed=7)
    out = tmp_path / "sweep"
    assert main(["sweep", folder, "--device", "cpu", "--classes", "0,1,2", "--per-class", "2", "--mode", "head",
                 "--k", "0,4", "--metrics", "fid,is,pr", "--inception", weights, "--reference", real,
                 "--out", str(out)]) == 0
    rows = _table(out)
    assert [r["setting"] for r in rows][0] == "baseline" and len(rows) == 3
    for r in rows:
        assert all(np.isfinite(float(r[c])) for c in ("fid", "is", "precision", "recall")) and r["kid"] == ""
    assert rows[1]["fid"] == rows[0]["fid"] and rows[2]["fid"] != rows[0]["fid"]  # k = 0 is the baseline itself
    md = open(os.path.join(out, "table.md"), encoding="utf-8").read()
    assert "| FID ↓ | IS ↑ | Precision ↑ | Recall ↑ |" in md and "ddpm 4 steps" in md


def test_sweep_without_weights_says_what_it_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    out = tmp_path / "sweep"
    assert _sweep(out, "--metrics", "fid,is", "--reference", str(tmp_path)) == 0
    err = capsys.readouterr().err
    assert "Skipped FID, IS: no Inception weights" in err and "--inception PATH" in err
    assert all(r["fid"] == "" and r["is"] == "" for r in _table(out))
    assert "Skipped FID, IS" in open(os.path.join(out, "table.md"), encoding="utf-8").read()


def test_sweep_refuses_unknown_metrics_and_missing_weights_in_one_sentence(tmp_path, capsys):
    assert _sweep(tmp_path / "a", "--metrics", "fid,lpips") == 2
    assert _sweep(tmp_path / "b", "--metrics", "is", "--inception", str(tmp_path / "nowhere" / "w.pth")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "got 'lpips'" in err[0] and "no file at 'w.pth'" in err[1] and str(tmp_path) not in "".join(err)

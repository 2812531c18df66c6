"""Template matching (dtviz.builtin.templates): invariant to where and how large the ink is, and it names
real rendered glyphs it has never seen (random face, scale, shift, rotation) as their class."""
import json
import os

import numpy as np
import pytest

from dtviz.builtin.glyphs import GlyphRenderer, render_dataset
from dtviz.builtin.templates import TemplateMatcher, ink_normalise
from dtviz.sources.loading import BUILTIN_DIR

CODEPOINTS = tuple(json.load(open(os.path.join(BUILTIN_DIR, "config.json")))["codepoints"])


def _plus(size: int, cy: float, cx: float, arm: int, width: int = 1) -> np.ndarray:
    img = np.zeros((size, size), np.float32)
    img[int(cy) - arm:int(cy) + arm + 1, int(cx) - width:int(cx) + width + 1] = 1
    img[int(cy) - width:int(cy) + width + 1, int(cx) - arm:int(cx) + arm + 1] = 1
    return img


def _ring(size: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (np.abs(np.hypot(yy - cy, xx - cx) - r) < 1.0).astype(np.float32)


def test_synthetic_known_answers():
    a = _plus(32, 10, 10, 4)  # small plus, top left
    b = _plus(32, 20, 18, 8, width=2)  # twice as large, elsewhere
    ring = _ring(32, 16, 16, 6)
    v = ink_normalise(np.stack([a, b, ring, np.zeros((32, 32), np.float32)]))[:, 0]
    assert np.allclose(np.linalg.norm(v[:3], axis=1), 1) and np.allclose(v[:3].sum(1), 0, atol=1e-9)
    assert not v[3].any()  # a blank frame is all zeros
    assert v[0] @ v[1] > 0.85  # same shape, other place and size
    assert v[0] @ v[2] < 0.5 and v[1] @ v[2] < 0.5  # another shape
    # the same image in every accepted layout gives the same vector
    assert np.allclose(ink_normalise(a[None, :, :, None]), ink_normalise(a[None, None]))


def test_a_shifted_glyph_is_named_by_its_template():
    codepoints = CODEPOINTS[:40]
    matcher = TemplateMatcher(codepoints).fit()
    renderer = GlyphRenderer(16)
    images = np.stack([renderer.render(cp, face=3, scale=0.85, dx=1.0, dy=-1.0) for cp in codepoints])
    assert matcher.predict(images).tolist() == list(range(len(codepoints)))


def test_scores_real_rendered_glyphs_at_least_90_percent():
    matcher = TemplateMatcher(CODEPOINTS[:200]).fit()
    x, y = render_dataset(list(CODEPOINTS[:64]), 2, seed=4242)  # jitter the templates never saw
    assert matcher.accuracy(x, y) >= 0.9
    assert matcher.correct(x[:4], y[:4]).dtype == bool


def test_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="expected images"):
        ink_normalise(np.zeros((16, 16)))


def test_sweep_reports_template_accuracy_for_glyph_models(tmp_path):
    """A glyph model folder (config lists its code points) gets a template_accuracy column; it is the library's
    read-out of the same samples. A model without code points leaves it empty."""
    import csv

    import dtviz
    from dtviz.cli.main import main
    from dtviz.sampling.generate import Generator, SampleSettings
    from dtviz.evaluation.quality import template_accuracy, template_matcher_for
    from tests.test_pruning import NUM_CLASSES, save_tiny_folder

    folder = save_tiny_folder(str(tmp_path / "glyph"), input_size=16, patch=4, classifier=True, steps=2)
    plain = save_tiny_folder(str(tmp_path / "plain"), input_size=16, patch=4, steps=2)
    cfg_path = os.path.join(folder, "config.json")
    cfg = json.load(open(cfg_path))
    cfg.update(codepoints=list(CODEPOINTS[:NUM_CLASSES]), image={"size": 16, "channels": 1})
    json.dump(cfg, open(cfg_path, "w"))
    rows = {}
    for name, path in (("glyph", folder), ("plain", plain)):
        out = str(tmp_path / f"out-{name}")
        assert main(["sweep", path, "--device", "cpu", "--classes", "0,3,7", "--per-class", "2", "--seed", "1",
                     "--tau", "0.3", "--out", out]) == 0
        rows[name] = list(csv.DictReader(open(os.path.join(out, "table.csv"), newline="")))
        assert "Template acc." in open(os.path.join(out, "table.md"), encoding="utf-8").read()
    assert all(r["template_accuracy"] == "" for r in rows["plain"])
    src = dtviz.load(folder, device="cpu")
    labels = np.repeat([0, 3, 7], 2)
    images = Generator(src).sample(labels, SampleSettings(seed=1))
    expected = template_accuracy(images, labels, template_matcher_for(src))
    assert float(rows["glyph"][0]["template_accuracy"]) == pytest.approx(expected)
    assert all(0 <= float(r["template_accuracy"]) <= 1 for r in rows["glyph"])


def test_card_reports_both_readouts_clean_and_noised():
    import torch

    from dtviz.builtin.card import load_classifier, readout_lines, readout_robustness

    r = readout_robustness(BUILTIN_DIR, per_class=1, classes=40)
    assert r["images"] == r["classes"] == 40
    x, y = render_dataset(list(CODEPOINTS[:40]), 1, seed=r["seed"])  # the same fresh renders, scored independently
    clean = float((load_classifier(BUILTIN_DIR).predict(torch.from_numpy(x)).numpy() == y).mean())
    assert r["classifier"]["clean"] == pytest.approx(clean)
    assert r["templates"]["clean"] >= 0.9
    assert all(0 <= r[k]["noised"] <= 1 for k in ("classifier", "templates"))
    line = readout_lines(r)[0]
    assert f"{100 * r['classifier']['noised']:.1f}%" in line and f"{100 * r['templates']['clean']:.1f}%" in line
    assert readout_lines(None) == []

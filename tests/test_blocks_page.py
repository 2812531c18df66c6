"""The per-block modulation page renders on the built-in model with the library's numbers (AppTest, no browser)."""
from __future__ import annotations

import numpy as np

import dtviz
import dtviz_app
from dtviz.analysis.blocks import modulation_change
from dtviz.pruning.spec import PruneSpec
from tests.test_app import new_app, ok, steady_state_navigation  # noqa: F401 — the fixture pins st.navigation

PAGE = dtviz_app.view_path("blocks")


def charts(at):
    return {c.proto.id: c for c in at.get("plotly_chart")}


def test_blocks_page_shows_the_library_numbers():
    import json

    at = new_app(tau="0.05", blk_mode="head", blk_mask="per-sample", blk_chunk="gate_msa")
    at.run()
    at.switch_page(PAGE).run()
    ok(at)
    assert at.title[0].value == "Per-block modulation"
    assert at.selectbox(key="blk_chunk").value == "gate_msa" and at.selectbox(key="blk_mode").value == "head"
    figures = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(figures) == 3  # heatmap, bars at τ, curves against τ
    bars = figures[1]["data"]
    source = dtviz.load("builtin")
    n = source.num_classes
    from dtviz.sources.budgets import evenly_spaced

    rows = evenly_spaced(n, 256)  # the page averages over at most 256 evenly spaced rows (all of them when fewer)
    expected = modulation_change(source, PruneSpec(mode="head", tau=0.05, mask="per-sample"), classes=rows)[0]
    got = {tr["name"]: tr["y"] for tr in bars}
    for name in ("shift_msa", "gate_mlp", "all"):
        want = [b["relative_change"][name] for b in expected.blocks]
        np.testing.assert_allclose(got[name], want, rtol=1e-9)
    assert at.query_params.get("blk_chunk") in ("gate_msa", ["gate_msa"])
    # where adaLN reads the class: the library's class_read over the same rows, in the library's sentence
    from dtviz.analysis.blocks import class_read
    from dtviz.evaluation.claims import class_read_sentence

    sentence = class_read_sentence(class_read(source, classes=rows).to_json(), "class")
    assert any(sentence in c.value for c in at.caption)


def test_blocks_page_on_a_matrix_says_why_in_one_sentence(tmp_path):
    path = tmp_path / "c.npy"
    np.save(path, np.random.default_rng(0).normal(size=(6, 8)).astype(np.float32))
    at = new_app(src=str(path))
    at.run()
    at.switch_page(PAGE).run()
    ok(at)  # an information line, not an error box
    text = " ".join(e.value for e in at.info)
    assert "adaLN weights" in text and "Traceback" not in text

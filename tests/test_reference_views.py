"""The paper's values beside the user's: headline metrics, the compare page's "paper" rows, the dims-below-τ
markers; and the named built-ins in the source picker."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("streamlit")

import dtviz_app  # noqa: E402
from dtviz import plots  # noqa: E402
from dtviz.sources.loading import BUILTINS  # noqa: E402
from dtviz.reference import compare_rows, family_reference, headline, pruning_markers, reference_label  # noqa: E402
from tests.test_app import new_app, ok, steady_state_navigation  # noqa: E402,F401


def test_figures_carry_the_paper_points():
    v = np.geomspace(1e-3, 1.0, 128)
    fig = plots.dims_below_curve(v, "test", tau=0.01, normalised=True, reference=pruning_markers())
    paper = next(t for t in fig.data if t.name == "paper")
    inside = [m for m in pruning_markers() if m["tau"] <= 1.0 * 10 ** 0.5]
    assert list(paper.x) == [m["tau"] for m in inside] and paper.y[0] == pytest.approx(100 * 448 / 1152)
    raw = plots.dims_below_curve(v, "test", reference=pruning_markers())
    assert next(t for t in raw.data if t.name == "paper").y[0] == pytest.approx(128 * 448 / 1152)
    rows = [{"source": "mine", "family": "sit", "npr_mean_vector": 0.5, "npr_per_class_mean": 0.4, "cosine_mean": 0.3}]
    bars = plots.compare_bars(rows + compare_rows(["DiT-XL/2"]), "test")
    cosine = next(t for t in bars.data if t.name == "mean cosine")
    assert list(cosine.y) == [0.3, headline("cosine", "DiT-XL/2")["value"]]
    assert list(cosine.marker.pattern.shape) == ["", "/"]  # the paper's bar is hatched


def test_sd3_sources_are_anchored_to_table_5_by_width():
    assert family_reference("sd3", 1536) == "SD3.0 (2B)" and family_reference("sd3", 2432) == "SD3.0 (8B)"
    assert reference_label("cosine", "sd3", "y+t", 2432) == "paper's SD3.0 (8B): 0.9995"
    assert reference_label("npr", "sd3", "y", 1536) == "paper's SD3.0 (2B): 52.39%"
    assert family_reference("flux") == "DiT-XL/2"
    rows = compare_rows(["SD3.0 (2B)", "DiT-XL/2"])
    assert [r["source"] for r in rows] == ["paper: DiT-XL/2", "paper: SD3.0 (2B)"]
    assert rows[1]["npr_mean_vector"] == pytest.approx(0.5479) and rows[1]["pr_mean_vector"] is None
    bars = plots.compare_bars(rows, "test")  # a Table 5 row has no PR or d: the figure still builds
    assert list(next(t for t in bars.data if t.name == "mean cosine").y) == [0.9001, 0.9962]


def test_headline_metrics_compare_rows_and_source_picker():
    at = new_app()
    at.run()
    ok(at)
    deltas = {m.label: m.proto.delta for m in at.metric}
    # the built-in model trains in SiT's convention: the family's row, as on the claims page and the card
    assert deltas["Cosine (off-diag. mean)"] == reference_label("cosine", "sit") == "paper's SiT-XL/2: 0.9852"
    assert deltas["nPR of c̄"] == "paper's SiT-XL/2: 2.28%"
    card_claims = json.load(open(os.path.join(BUILTINS["builtin"].path, "card.json")))["claims"]
    assert "(paper's SiT-XL/2: 0.9852)" in next(r["measured"] for r in card_claims if r["id"] == "alignment_yt")
    assert at.selectbox(key="src_builtin").options[:2] == [f"{b.name} — {b.description}" for b in BUILTINS.values()][:2]
    builtin = BUILTINS["builtin"]
    caption = next(c.value for c in at.sidebar.caption if "claims on it" in c.value)
    assert caption.startswith(f"{builtin.summary}. The paper's claims on it (its model card): ")
    assert builtin.more and builtin.more not in caption  # the list has the pointer, the caption only the one line
    at.switch_page(dtviz_app.view_path("compare")).run()
    ok(at)
    table = at.dataframe[0].value
    assert "paper: DiT-XL/2" in list(table["source"])
    row = table[table["source"] == "paper: DiT-XL/2"].iloc[0]
    assert row["cosine_mean"] == 0.9001 and row["npr_mean_vector"] == pytest.approx(0.1047)
    at.switch_page(dtviz_app.view_path("overview")).run()
    ok(at)
    assert any("| DiT-XL/2 | 1152 | 120.69 | 10.47% | 0.9001 |" in m.value for m in at.markdown)
    # the second built-in opens by name
    at.selectbox(key="src_builtin").set_value("builtin-wide").run()
    ok(at)
    assert at.query_params["src"] == "builtin-wide" and at.title[0].value.startswith("builtin-wide")

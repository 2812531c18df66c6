"""export_report: one self-contained HTML file, plotly.js once, one div per figure, card and settings."""
import json
import re

import numpy as np
import plotly.graph_objects as go
import pytest
from plotly.offline import get_plotlyjs

from dtviz import plots
from dtviz.analysis import stats
from dtviz.errors import DtvizInputError
from dtviz.report import export_report

CTX = "builtin · t=0 · y+t · τ=0.01"


def figures():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(6, 5))
    C = stats.cosine_matrix(E)
    return [("Cosine <similarity>", plots.cosine_heatmap(C, [f"c{i}" for i in range(6)], CTX)),
            ("Magnitudes", plots.magnitude_histogram(E, CTX, tau=0.1)),
            ("Variance", plots.variance_spectrum(stats.per_dim_variance(E), CTX))]


def test_report_inlines_plotly_once_and_draws_every_figure():
    secs = figures()
    card = {"family": "SiT", "d": 128, "Table 1": {"nPR (mean vector)": 0.0123, "cosine": 0.99}}
    settings = {"t": 0.0, "part": "y+t", "tau": 0.01, "share_url": "http://localhost:8501/?src=builtin&tau=0.01"}
    page = export_report(secs, card, settings, title="dtviz report — builtin")
    js = get_plotlyjs()
    library_copies, headers = page.count(js), page.count("plotly.js v")
    assert library_copies == 1 and headers == 1  # the whole library, exactly once
    page = page.replace(js, "")  # the rest is small: keeps assertion messages readable
    assert "<script src" not in page and "cdn.plot.ly" not in page  # self-contained: nothing fetched
    assert len(re.findall(r"<div class='dtviz-figure' id='figure-\d+'></div>", page)) == len(secs)
    islands = re.findall(r"<script type='application/json' class='dtviz-figure-data'[^>]*>(.*?)</script>", page, re.S)
    assert len(islands) == len(secs)
    for (_, fig), island in zip(secs, islands):
        assert json.loads(island) == json.loads(fig.to_json())
    # model card, settings and the share link
    assert "nPR (mean vector)" in page and "0.0123" in page and "SiT" in page
    assert "<th>tau</th><td>0.01</td>" in page and "<th>part</th><td>y+t</td>" in page
    assert "href='http://localhost:8501/?src=builtin&amp;tau=0.01'" in page
    assert "Cosine &lt;similarity&gt;" in page and "Cosine <similarity>" not in page  # titles are escaped
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # both download formats are wired into every figure's mode bar
    assert "format: fmt" in page and "button('svg', name)" in page and "button('png', name)" in page


def test_report_accepts_dashboard_items_and_rejects_non_figures():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    page = export_report([{"name": "cos-heatmap", "title": "Heatmap", "figure": fig}], {}, {})
    assert "data-name='cos-heatmap'" in page and "<h2 id='section-0'>Heatmap</h2>" in page
    assert page.count("class='dtviz-figure' id=") == 1
    with pytest.raises(DtvizInputError):
        export_report([("bad", "not a figure")], {}, {})


def test_report_json_cannot_close_its_script_element():
    fig = go.Figure(go.Scatter(x=[1], y=[1], name="</script><script>alert(1)</script>"))
    page = export_report([("x", fig)], {}, {})
    island = page.split("class='dtviz-figure-data'", 1)[1]
    assert "</script><script>alert" not in island.split("</script>", 1)[0]


# ------------------------------------------------------------------------------------- share link

def _share_paragraphs(page: str) -> tuple[list[str], list[str]]:
    links = re.findall(r"Open this view in the dashboard: <a href='([^']*)'>", page)
    notes = re.findall(r"<p class='meta share-note'>([^<]*)</p>", page)
    return links, notes


def test_report_link_uses_the_public_base_url_or_says_it_is_local(monkeypatch):
    fig = go.Figure(go.Scatter(x=[1], y=[2]))
    local = "http://localhost:8501/dtviz/cosine?src=builtin&tau=0.01"
    monkeypatch.delenv("DTVIZ_BASE_URL", raising=False)

    links, notes = _share_paragraphs(export_report([("f", fig)], {}, {"share_url": local}))
    assert links == ["http://localhost:8501/dtviz/cosine?src=builtin&amp;tau=0.01"]
    assert len(notes) == 1 and "works only on the machine that made this report" in notes[0]
    assert "localhost:8501" in notes[0] and "--base-url" in notes[0]

    # configured by argument or by the environment; the server's own path prefix is replaced
    want = "https://lab.example.org/viz/cosine?src=builtin&amp;tau=0.01"
    links, notes = _share_paragraphs(export_report([("f", fig)], {}, {"share_url": local},
                                                   base_url="https://lab.example.org/viz/", app_path="dtviz"))
    assert links == [want] and notes == []
    monkeypatch.setenv("DTVIZ_BASE_URL", "https://lab.example.org/viz")
    links, notes = _share_paragraphs(export_report([("f", fig)], {}, {"share_url": local}, app_path="/dtviz/"))
    assert links == [want] and notes == []

    # a broken setting never breaks the export: the local link and its note; a non-web URL: no link
    monkeypatch.setenv("DTVIZ_BASE_URL", "javascript:alert(1)")
    links, notes = _share_paragraphs(export_report([("f", fig)], {}, {"share_url": local}))
    assert links[0].startswith("http://localhost:8501/") and len(notes) == 1
    assert _share_paragraphs(export_report([("f", fig)], {}, {"share_url": "javascript:alert(1)"})) == ([], [])
    # an address another machine can reach is kept as it is, without the note
    monkeypatch.delenv("DTVIZ_BASE_URL")
    assert _share_paragraphs(export_report([("f", fig)], {}, {"share_url": "http://10.1.2.3:8501/?t=0"})) == (
        ["http://10.1.2.3:8501/?t=0"], [])


def test_serve_passes_a_checked_base_url(tmp_path, capsys):
    import argparse

    from dtviz.cli.main import main
    from dtviz.serving.serve import serve_command

    args = argparse.Namespace(root=[], host="127.0.0.1", port=8501, base_url="https://lab.example.org/dtviz/")
    _, env = serve_command(args, cwd=str(tmp_path))
    assert env["DTVIZ_BASE_URL"] == "https://lab.example.org/dtviz"
    assert main(["serve", "--base-url", "lab.example.org?x=1"]) == 2  # refused before any server starts
    err = capsys.readouterr().err
    assert "a base URL must look like https://host/path" in err and err.strip().count("\n") == 0

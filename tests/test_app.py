"""The dashboard with streamlit.testing.v1.AppTest on the built-in model (no browser).

Every page renders without an exception or an error box; τ changes the head count; the t0 button; the URL
state round-trips in both directions; bad input shows the library's one-sentence message and the app
keeps working.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

import dtviz  # noqa: E402
import dtviz_app  # noqa: E402
from dtviz.errors import DtvizInputError  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "app.py")
TIMEOUT = 120  # generous: the machine may be busy with training jobs
HEAD = "Head dims"


def new_app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({k: str(v) for k, v in query.items()})
    return at


def ok(at: AppTest) -> AppTest:
    """No uncaught exception and no error box."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def head_count(at: AppTest) -> str:
    values = [m.value for m in at.metric if m.label.startswith(HEAD)]
    assert values, [m.label for m in at.metric]
    return values[0]


def library_message(source: str) -> str:
    with pytest.raises(DtvizInputError) as info:
        dtviz.load(source)
    return str(info.value)


@pytest.fixture(scope="module")
def app() -> AppTest:
    """One app session on the built-in model, shared by the page tests (the model is loaded once)."""
    at = new_app()
    at.run()
    return ok(at)


@pytest.mark.parametrize("module", [p[0] for p in dtviz_app.PAGES])
def test_page_renders(app, module):
    app.switch_page(f"pages/{module}_view.py").run()
    ok(app)
    assert app.title, f"{module} has no title"
    if module != "pruning":
        # the line under the title says model, t, part and τ (compare: each model at its own t0)
        line = app.main.caption[0].value
        assert "part y+t" in line and "τ = 0.01" in line, line
        if module != "compare":
            assert line.startswith("builtin") and "t = 0 (t0" in line, line


def test_pruning_page_says_coming(app):
    app.switch_page("pages/pruning_view.py").run()
    ok(app)
    assert app.title[0].value == "Live pruning"
    assert any("Coming soon" in i.value for i in app.info)


def test_tau_changes_head_count():
    at = new_app()
    at.run()
    before = head_count(ok(at))
    at.number_input(key="tau_box").set_value(0.2).run()
    after = head_count(ok(at))
    assert after != before
    assert at.query_params["tau"] == "0.2"
    # the log slider moves the same number
    at.select_slider(key="tau_slider").set_value(0.001).run()
    assert head_count(ok(at)) not in (after,)
    assert at.number_input(key="tau_box").value == pytest.approx(0.001)
    # top-k: the head is exactly k dims (the built-in model has no ties)
    at.radio(key="thr").set_value("topk").run()
    at.number_input(key="k").set_value(7).run()
    assert head_count(ok(at)).startswith("7 /")
    assert at.query_params["thr"] == "topk" and at.query_params["k"] == "7"


def test_t0_button():
    at = new_app(t="0.5")
    at.run()
    assert at.slider(key="t").value == pytest.approx(0.5)
    assert "t = 0.5" in at.caption[0].value
    at.button(key="t0_button").click().run()
    ok(at)
    assert at.slider(key="t").value == 0.0  # the built-in model is SiT: t0 = 0 (noise)
    assert "t" not in at.query_params  # t0 is the default: the URL stays clean


def test_url_to_widgets():
    query = {"tau": "0.05", "t": "0.25", "part": "y", "cos_order": "cluster", "cos_n": "6"}
    at = new_app(**{k: v for k, v in query.items() if not k.startswith("cos_")})
    at.run()  # a new session opened on a link: the global settings come from the URL
    ok(at)
    assert at.number_input(key="tau_box").value == pytest.approx(0.05)
    assert at.slider(key="t").value == pytest.approx(0.25)
    assert at.radio(key="part").value == "y"
    # a link to another page, pasted into the same session (AppTest opens pages by file only after a run)
    at.query_params.update(query)
    at.switch_page("pages/cosine_view.py").run()
    ok(at)
    assert at.radio(key="cos_order").value == "cluster"
    assert at.number_input(key="cos_n").value == 6
    assert "τ = 0.05" in at.caption[0].value and "part y" in at.caption[0].value
    for key, value in query.items():
        assert at.query_params[key] == value


def test_widgets_to_url_and_back():
    at = new_app()
    at.run()
    at.switch_page("pages/magnitudes_view.py").run()
    ok(at)
    at.radio(key="part").set_value("t").run()
    at.slider(key="t").set_value(0.75).run()
    at.number_input(key="tau_box").set_value(0.03).run()
    at.toggle(key="mag_logx").set_value(True).run()
    ok(at)
    expected = {"part": "t", "t": "0.75", "tau": "0.03", "mag_logx": "1"}
    assert {k: at.query_params.get(k) for k in expected} == expected
    count = head_count(at)
    # opening the link in a new session reproduces the view
    again = new_app(**{k: v for k, v in at.query_params.items() if not k.startswith("mag_")})
    again.run()
    again.query_params.update(at.query_params)
    again.switch_page("pages/magnitudes_view.py").run()
    ok(again)
    assert again.radio(key="part").value == "t"
    assert again.slider(key="t").value == pytest.approx(0.75)
    assert again.toggle(key="mag_logx").value is True
    assert head_count(again) == count
    # the URL survives a page switch, and keys of the page left behind are dropped
    again.switch_page("pages/variance_view.py").run()
    ok(again)
    assert again.query_params.get("tau") == "0.03" and "mag_logx" not in again.query_params


def test_bad_path_shows_library_message_and_app_recovers(tmp_path):
    missing = str(tmp_path / "missing.pt")
    at = new_app(src=missing)
    at.run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert library_message(missing) in messages
    # the source is part of the link, so the link reproduces the error too
    assert at.query_params["src"] == missing
    # other pages keep working once a good source is chosen
    at.radio(key="src_kind").set_value("builtin").run()
    ok(at)
    at.switch_page("pages/variance_view.py").run()
    ok(at)


def test_nan_matrix_shows_library_message(tmp_path):
    path = tmp_path / "bad.npy"
    E = np.ones((5, 4), dtype=np.float32)
    E[2, 1] = np.nan
    np.save(path, E)
    at = new_app(src=str(path))
    at.run()
    assert not at.exception
    assert library_message(str(path)) in [e.value for e in at.error]


def test_export_report_of_all_pages():
    at = new_app(tau="0.05")
    at.run()
    at.button(key="export_all_build").click().run()
    ok(at)
    assert any(b.key == "export_all" for b in at.get("download_button")), "no report download after building it"
    html = at.session_state["_all_report"][1]
    # every page's figures, the model card and the settings in one self-contained file
    for name in ("overview-mean-profile", "cosine-heatmap", "cosine-submatrix", "magnitude-histogram",
                 "variance-spectrum", "projection", "compare", "cosine-over-t", "npr-over-training", "neighbours"):
        assert f"data-name='{name}'" in html, name
    assert "nPR (of mean vector c̄)" in html and "<th>tau</th><td>0.05</td>" in html
    assert "Plotly.newPlot" in html and "<script src=" not in html  # plotly.js inline: opens offline


def test_uploaded_matrix(tmp_path):
    import io

    rng = np.random.default_rng(0)
    E = rng.normal(size=(12, 8)).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, E)
    at = new_app()
    at.run()
    at.radio(key="src_kind").set_value("upload").run()
    at.file_uploader(key="src_upload").upload("my_embeddings.npy", buf.getvalue()).run()
    ok(at)
    assert at.main.caption[0].value.startswith("my_embeddings.npy"), at.main.caption[0].value
    assert "src" not in at.query_params  # uploads are not part of the link
    assert not any(s.key == "t" for s in at.slider)  # a matrix has no timestep
    path = at.session_state["_ctx_holder"]["ctx"].source_key
    assert path.startswith(dtviz_app.UPLOAD_ROOT) and os.path.isfile(path)
    at.switch_page("pages/cosine_view.py").run()
    ok(at)
    # a matrix with a NaN: the library's sentence, no exception
    E[3, 3] = np.nan
    bad = io.BytesIO()
    np.save(bad, E)
    at.file_uploader(key="src_upload").upload("nan.npy", bad.getvalue()).run()
    assert not at.exception
    np.save(tmp_path / "nan.npy", E)
    assert library_message(str(tmp_path / "nan.npy")) in [e.value for e in at.error]


def test_family_override_when_detection_is_ambiguous(tmp_path):
    from factories import family_state, save_checkpoint

    path = save_checkpoint(family_state("dit"), str(tmp_path / "dit_or_sit.pt"))
    at = new_app(src=path)
    at.run()
    ok(at)
    assert at.selectbox(key="fam").value == "auto"  # shown: DiT, SiT and MG share their key names
    assert at.slider(key="t").value == 999  # assumed DiT: integer t, t0 = 999
    at.selectbox(key="fam").set_value("sit").run()
    ok(at)
    assert at.slider(key="t").value == 0.0  # SiT's convention: t0 = 0, the slider starts there
    assert at.query_params["fam"] == "sit" and at.query_params["src"] == path
    # the link reproduces the override
    again = new_app(**at.query_params)
    again.run()
    ok(again)
    assert again.selectbox(key="fam").value == "sit" and "SiT" in again.main.caption[0].value
    # the built-in model declares its family: no override shown
    builtin = new_app()
    builtin.run()
    assert not any(s.key == "fam" for s in builtin.selectbox)


def test_checkpoint_overwritten_on_disk_is_reloaded(tmp_path):
    from factories import family_state, save_checkpoint

    path = str(tmp_path / "latest.pt")
    save_checkpoint(family_state("repa", seed=1), path)
    at = new_app(src=path)
    at.run()
    before = {m.label: m.value for m in ok(at).metric}
    save_checkpoint(family_state("repa", seed=2), path)  # a training run writes a new latest.pt
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    at.run()
    after = {m.label: m.value for m in ok(at).metric}
    assert after != before


def test_switching_to_a_matrix_keeps_the_app_consistent(tmp_path):
    """Settings of one model that another cannot take (part y, t, a family override) fall back cleanly."""
    np.save(tmp_path / "E.npy", np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32))
    at = new_app(part="y", t="0.5")
    at.run()
    ok(at)
    at.radio(key="src_kind").set_value("path").run()
    at.text_input(key="src_path").set_value(str(tmp_path / "E.npy")).run()
    ok(at)
    assert at.radio(key="part").value == "y+t" and "no t" in at.main.caption[0].value
    assert "part" not in at.query_params and "t" not in at.query_params

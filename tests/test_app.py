"""The dashboard with streamlit.testing.v1.AppTest on the built-in model (no browser).

Every page renders without an exception or an error box; τ changes the head count; the t0 button; the URL
state round-trips in both directions; bad input shows the library's one-sentence message and the app
keeps working. Live pruning: τ changes the removed dims and the pruned grid (and only the pruned side is
sampled again), head pruning lowers the class accuracy, a matrix gets the inspector only, URL round trip.
"""
from __future__ import annotations

import os
import re

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from apptest import APP, ROOT, TIMEOUT, new_app, ok, steady_state_navigation  # noqa: E402,F401

import dtviz  # noqa: E402
import dtviz_app  # noqa: E402
from dtviz.errors import DtvizInputError  # noqa: E402

HEAD = "Head dims"
BUILTIN_DIM = dtviz.load("builtin").dim  # the shipped model's d, never typed in





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
    app.switch_page(dtviz_app.view_path(module)).run()
    ok(app)
    assert app.title, f"{module} has no title"
    if module == "sweep":  # reads a sweep folder, not the sidebar's model (tests/test_sweep_page.py)
        return
    # the line under the title says model, t, part and τ (compare: each model at its own t0); the live pruning
    # page names no τ there (its τ is its own control's, which starts at the sidebar's)
    line = app.main.caption[0].value
    tau = f"τ = {source_tau():g}"
    if module == "pruning":
        assert "τ" not in line and line.startswith("builtin") and "t = 0 (t0" in line, line
        return
    assert "part y+t" in line and tau in line, (tau, line)
    if module != "compare":
        assert line.startswith("builtin") and "t = 0 (t0" in line, line


def source_tau() -> float:
    """The built-in model's one default τ (dtviz.pruning.defaults.default_tau): what the sidebar starts at."""
    from dtviz.analysis.stats import ConditionStats
    from dtviz.pruning.defaults import default_tau

    return default_tau(ConditionStats().fit(dtviz.load("builtin").embeddings()))


def test_cosine_heatmap_has_its_own_full_width_row(app):
    """The full N×N matrix is not squeezed into half the page (a 1000×1000 matrix needs the width)."""
    app.switch_page(dtviz_app.view_path("cosine")).run()
    ok(app)
    placed = []

    def walk(node, in_column=False):
        children = getattr(node, "children", None)
        for child in (children.values() if isinstance(children, dict) else []):
            walk(child, in_column or getattr(node, "type", None) == "column")
        if getattr(node, "type", None) == "plotly_chart" and '"dtviz"' in node.proto.spec and '"mode"' in node.proto.spec:
            placed.append(in_column)

    walk(app.main)
    assert placed == [False]  # exactly one full heatmap, outside every column


def test_projection_page_defaults_to_tsne_with_progress_and_lettered_panels(tmp_path, monkeypatch):
    """t-SNE by default (as the paper), its iterations reported to the progress bar, each panel computed
    once per (model, t, part, τ, method), and the caption names the panels with the figure's titles."""
    import json

    import dtviz.analysis.tsne

    rng = np.random.default_rng(0)
    path = tmp_path / "E.npy"
    E = rng.normal(size=(40, 12)) + np.repeat(np.eye(12)[:4] * 8, 10, axis=0) + 3  # 4 planted clusters
    E[:, 8:] *= 1e-4  # a tail below τ = 0.01
    np.save(path, E.astype(np.float32))
    runs, reports = [], []
    real = dtviz.analysis.tsne._open_tsne

    def counted(Z, seed, progress=None, gradient=None):  # the real computation, counted
        runs.append(Z.shape)
        return real(Z, seed, (lambda d, t: (reports.append(d), progress(d, t))) if progress else None, gradient)

    monkeypatch.setattr(dtviz.analysis.tsne, "_open_tsne", counted)
    at = new_app(src=str(path))
    at.run()
    at.switch_page(dtviz_app.view_path("projection")).run()
    ok(at)
    assert at.radio(key="proj_method").value == "tsne"
    assert len(runs) == 4 and reports and max(reports) == dtviz.analysis.tsne.TSNE_ITERATIONS
    spec = json.loads(next(c for c in at.get("plotly_chart") if "head vs. tail" in c.proto.spec).proto.spec)
    texts = [a["text"] for a in spec["layout"]["annotations"]][:4]
    # each panel: its title, then its class-structure score (dtviz.analysis.structure.knn_overlap), 1 for (a)
    assert all(t.split("<br>")[-1].startswith("class structure kept: ") for t in texts), texts
    assert texts[0].endswith("class structure kept: 1.00")
    titles = [": ".join(t.split("<br>")[:-1]) for t in texts]
    assert [t[:3] for t in titles] == ["(a)", "(b)", "(c)", "(d)"]
    caption = " ".join(m.value for m in at.markdown)
    assert all(t in caption for t in titles), (titles, caption)
    # 40 rows: perplexity (40 − 1) / 3 = 13, as the computation used
    assert any("t-SNE by openTSNE (Barnes–Hut gradients): perplexity 13, PCA initialisation, 750 iterations (250 "
               "exaggerated), seed 0; a panel of more than 50 dims is first reduced to 50 by PCA." in c.value for c in at.caption), [c.value for c in at.caption]
    at.run()  # a rerun (e.g. another widget) reads every panel from the cache
    ok(at)
    assert len(runs) == 4


# ------------------------------------------------------------------------------------ live pruning

def pruning_app(query: dict | None = None, **page) -> AppTest:
    """A session opened on the live pruning page with page settings (pr_…) from the URL."""
    at = new_app(**(query or {}))
    at.run()
    at.query_params.update({k: str(v) for k, v in page.items()})
    at.switch_page(dtviz_app.view_path("pruning")).run()
    return ok(at)


def metric(at: AppTest, label: str, index: int = 0):
    found = [m for m in at.metric if m.label.startswith(label)]
    assert len(found) > index, [m.label for m in at.metric]
    return found[index]


def grid(at: AppTest, name: str) -> str:
    """The HTML of a sample grid (its images as data URIs)."""
    found = [h.proto.body for h in at.get("html") if f'data-grid="{name}"' in h.proto.body]
    assert len(found) == 1, name
    return found[0]


def images(at: AppTest, name: str) -> list[str]:
    """The image sources (PNG data URIs) of a sample grid, in order."""
    return re.findall(r'<img src="([^"]+)"', grid(at, name))


def accuracies(at: AppTest) -> tuple[float, float]:
    m = metric(at, "Class acc.")
    base = float(m.label.split("base ")[1].rstrip("%)")) / 100
    return base, float(m.value.rstrip("%")) / 100


def builtin_defaults():
    """The pruning page's defaults for the built-in model, from the library (never typed here)."""
    from dtviz.pruning.defaults import pruning_defaults
    from dtviz.analysis.stats import ConditionStats

    stats = ConditionStats().fit(dtviz.load("builtin").embeddings())
    return stats, pruning_defaults(stats, E=dtviz.load("builtin").embeddings())


def test_pruning_tau_changes_removed_dims_and_pruned_grid():
    at = pruning_app(pr_n=8, pr_mask="global")
    assert at.title[0].value == "Live pruning"
    stats, defaults = builtin_defaults()
    removed, pruned, baseline = metric(at, "Removed dims").value, images(at, "pruned"), images(at, "baseline")
    tail = stats.at_tau(defaults.tau_by_mask["global"])["tail_count"]
    assert at.number_input(key="pr_tau_box").value == pytest.approx(defaults.tau_by_mask["global"])  # the model's τ
    dim = stats.dim_
    # s_tail(c̄) = 448/1152 at the model's τ (up to ties), the tail `dtviz stats` reports at t0
    assert tail == round(448 / 1152 * dim) and removed.startswith(f"{tail} / {dim}")
    assert len(pruned) == 8 and 'title="' in grid(at, "pruned")  # class names on hover
    at.number_input(key="pr_tau_box").set_value(0.2).run()
    ok(at)
    assert metric(at, "Removed dims").value != removed and images(at, "pruned") != pruned
    assert images(at, "baseline") == baseline  # same seeds: the baseline does not change
    assert at.query_params["pr_tau"] == "0.2"
    # the slider snaps to the dims' own magnitudes: its first mark leaves no dim of c̄ below τ
    marks = at.select_slider(key="pr_tau_slider").options
    assert len(marks) == dim + 1 and float(marks[0]) == pytest.approx(stats.tau_marks("mean_vector")[0])
    at.select_slider(key="pr_tau_slider").set_value(float(marks[0])).run()
    ok(at)
    assert at.number_input(key="pr_tau_box").value == pytest.approx(float(marks[0]))
    assert metric(at, "Removed dims").value.startswith(f"0 / {BUILTIN_DIM}") and images(at, "pruned") == baseline
    assert metric(at, "PSNR").value.startswith("∞")
    # the other mask keeps the page's τ: one τ per model, whichever mask
    at.selectbox(key="pr_mask").set_value("per-sample").run()
    ok(at)
    assert at.number_input(key="pr_tau_box").value == pytest.approx(float(marks[0]))


def test_pruning_release_samples_only_the_pruned_side(monkeypatch):
    """The baseline is sampled once per classes/seed/steps/CFG; a new τ costs one sampling run, plus one for the read-out
    of the other null-row choice (the paper does not say which)."""
    import dtviz.evaluation.quality as quality
    from dtviz.pruning.spec import PruneSpec

    real, calls = quality.sample_readout, []

    def counted(gen, labels, settings, prune=None, *args, **kwargs):
        calls.append(prune)
        return real(gen, labels, settings, prune, *args, **kwargs)

    monkeypatch.setattr(quality, "sample_readout", counted)
    _, defaults = builtin_defaults()
    at = pruning_app(pr_n=4, pr_seed=11)  # settings no other test uses: nothing cached yet
    first = PruneSpec(tau=defaults.tau, mask=defaults.mask)
    contrast = PruneSpec(mode="head", k=defaults.head_k, mask=defaults.mask)
    kept = PruneSpec(tau=defaults.tau, mask=defaults.mask, prune_null=False)
    # baseline, τ, contrast, τ with the null rows kept, inspector
    assert calls.count(None) == 1 and first in calls and contrast in calls and kept in calls
    assert len(calls) == 5
    calls.clear()
    at.number_input(key="pr_tau_box").set_value(0.3).run()
    ok(at)
    assert calls == [PruneSpec(tau=0.3, mask=defaults.mask), PruneSpec(tau=0.3, mask=defaults.mask, prune_null=False)]
    calls.clear()
    at.number_input(key="pr_tau_box").set_value(defaults.tau).run()  # back to a τ seen before: from the cache
    assert calls == []


def test_pruning_head_k8_reads_out_the_library_s_accuracy():
    """The page's read-out of removing the 8 largest |c̄ᵢ| is the library's on the same samples (whether that hurts
    is this model's to say: the Paper claims page's prune_head row)."""
    at = pruning_app(pr_n=8, pr_mode="head", pr_by="k", pr_k=8, pr_mask="global")
    assert metric(at, "Removed dims").value.startswith(f"8 / {BUILTIN_DIM}")
    base, pruned = accuracies(at)
    import dtviz
    from dtviz.cli.args import select_classes
    from dtviz.evaluation.quality import class_accuracy, classifier_for
    from dtviz.pruning.spec import PruneSpec
    from dtviz.sampling.generate import Generator, SampleSettings

    src = dtviz.load("builtin")
    labels = select_classes(src.num_classes, None, 8, 0)
    gen = Generator(src)
    expected = class_accuracy(gen.sample(labels, SampleSettings(seed=0), prune=PruneSpec(mode="head", k=8)), labels,
                              classifier_for(src))
    assert pruned == pytest.approx(expected, abs=0.005) and 0 <= base <= 1
    # the dimension inspector: the largest |c̄ᵢ| dim by default, ablated alone
    dim = at.selectbox(key="pr_dim").value
    import dtviz

    assert dim == int(np.argmax(np.abs(dtviz.load("builtin").embeddings().mean(0))))
    assert metric(at, "Removed dims", 1).value.startswith(f"1 / {BUILTIN_DIM}")
    assert images(at, "ablated") != images(at, "ablation-baseline") == images(at, "baseline")
    assert len(at.get("plotly_chart")) == 1  # the dimension's values across classes


def test_pruning_sampler_switch_and_inspector_schedule():
    at = pruning_app(pr_n=4, pr_steps=8, pr_seed=5)
    options = at.selectbox(key="pr_sampler").options
    import dtviz
    from dtviz.sampling.generate import SAMPLER_LABELS, Generator

    default = Generator(dtviz.load("builtin")).defaults["name"]  # the shipped config.json's sampler
    assert options[0] == SAMPLER_LABELS[default] and "Euler–Maruyama SDE" in options  # the model's default first
    every = images(at, "ablated")
    at.radio(key="pr_dim_sched").set_value("first").run()
    ok(at)
    assert images(at, "ablated") != every and images(at, "ablation-baseline") == images(at, "baseline")
    assert any("first step" in m.value for m in at.markdown)
    ode = images(at, "baseline")
    at.selectbox(key="pr_sampler").set_value("sde").run()
    ok(at)
    assert images(at, "baseline") != ode and at.query_params["pr_sampler"] == "sde"


@pytest.mark.parametrize("family", ["mdt", "lightningdit"])
def test_pruning_page_samples_mdt_and_lightningdit(tmp_path, family):
    from tests.factories import (randomized_lightningdit, randomized_mdt, save_model_folder, tiny_lightningdit_config,
                                 tiny_mdt_config)

    model = (randomized_mdt(tiny_mdt_config(in_channels=3)) if family == "mdt"
             else randomized_lightningdit(tiny_lightningdit_config(in_channels=3)))
    folder = save_model_folder(tmp_path / family, model, family, {"steps": 3})
    at = pruning_app({"src": folder}, pr_n=4, pr_mode="head", pr_by="k", pr_k=4, pr_mask="global")
    options = at.selectbox(key="pr_sampler").options
    if family == "mdt":
        assert options == ["DDPM (ancestral)", "DDIM (η = 0)"]
    else:  # the release's Euler ODE first, then every flow sampler of its time convention
        assert options[0] == "Euler ODE" and "Euler–Maruyama SDE" in options
    assert metric(at, "Removed dims").value.startswith("4 / 32")
    assert len(images(at, "pruned")) == 4 and images(at, "pruned") != images(at, "baseline")


def test_pruning_page_on_a_matrix_offers_the_inspector_only(tmp_path):
    path = tmp_path / "E.npy"
    np.save(path, np.random.default_rng(0).normal(size=(12, 8)).astype(np.float32))
    at = pruning_app({"src": str(path)})
    assert "a precomputed matrix has no model to sample" in " ".join(i.value for i in at.info)
    assert not [h for h in at.get("html") if "data-grid" in h.proto.body]  # no sample grids
    assert at.selectbox(key="pr_dim").value in range(8) and len(at.get("plotly_chart")) == 1


def test_pruning_url_round_trip():
    _, defaults = builtin_defaults()
    other_mask = "global" if defaults.mask == "per-sample" else "per-sample"
    page = {"pr_n": "4", "pr_seed": "3", "pr_pick": "chosen", "pr_ids": "33,65", "pr_mode": "head", "pr_by": "k",
            "pr_k": "3", "pr_mask": other_mask, "pr_sched": "last", "pr_last": "5", "pr_null": "0", "pr_steps": "12",
            "pr_dim": "7", "pr_sort": "1", "pr_sampler": "sde", "pr_dim_sched": "last", "pr_dim_last": "2",
            "pr_dim_null": "0"}
    at = pruning_app(**page)
    assert at.selectbox(key="pr_sampler").value == "sde" and at.number_input(key="pr_dim_last").value == 2
    assert at.radio(key="pr_mode").value == "head" and at.number_input(key="pr_k").value == 3
    assert at.multiselect(key="pr_ids").value == [33, 65] and at.number_input(key="pr_last").value == 5
    assert at.toggle(key="pr_null").value is False and at.selectbox(key="pr_dim").value == 7
    assert metric(at, "Removed dims").label == ("Removed dims (mean)" if other_mask == "per-sample"
                                                else "Removed dims")
    assert len(images(at, "pruned")) == 4 and "LATIN CAPITAL LETTER" in grid(at, "pruned")
    # k is head mode's default selection: the link leaves it out
    assert {k: at.query_params.get(k) for k in page} == {**page, "pr_by": None}
    # widgets → URL: a τ of its own, then back to the sidebar's (the default: left out of the link)
    at.radio(key="pr_by").set_value("tau").run()
    at.number_input(key="pr_tau_box").set_value(0.05).run()
    ok(at)
    # head mode selects by k by default, so choosing τ stays in the link
    assert at.query_params["pr_by"] == "tau" and at.query_params["pr_tau"] == "0.05"
    at.number_input(key="pr_tau_box").set_value(defaults.tau_by_mask[other_mask]).run()  # the mask's own default
    assert "pr_tau" not in at.query_params
    # leaving the page drops its keys from the link
    at.switch_page(dtviz_app.view_path("variance")).run()
    ok(at)
    assert not any(k.startswith("pr_") for k in at.query_params)


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
    at.switch_page(dtviz_app.view_path("cosine")).run()
    ok(at)
    assert at.radio(key="cos_order").value == "cluster"
    assert at.number_input(key="cos_n").value == 6
    assert "τ = 0.05" in at.caption[0].value and "part y" in at.caption[0].value
    from dtviz.evaluation.claims import label_split  # the label part alone: its split, from the library's reading

    split = label_split(dtviz.load("builtin"), 0.25)
    note = [c.value for c in at.caption if c.value.startswith("The label part alone.")]
    assert len(note) == 1 and f"‖a‖ = {split['shift_norm']:.3g} along ȳ" in note[0], note
    assert f"has cosine {split['t_independent']:.4f}." in note[0]
    assert any("The paper's AdaLN models, y alone: 0.5194–0.8540 (Table 4)." in m.value for m in at.markdown)
    for key, value in query.items():
        assert at.query_params[key] == value


def test_widgets_to_url_and_back():
    at = new_app()
    at.run()
    at.switch_page(dtviz_app.view_path("magnitudes")).run()
    ok(at)
    from dtviz.analysis.stats import head_through_silu  # the head as adaLN reads it, from the library's reading
    from dtviz.evaluation.claim_sampling import HEAD_K
    from dtviz.evaluation.claims import head_silu_sentence

    c_bar = dtviz.load("builtin").embeddings().astype(np.float64).mean(0)
    assert head_silu_sentence(head_through_silu(c_bar, HEAD_K)) in [c.value for c in at.caption]
    at.radio(key="part").set_value("t").run()
    at.slider(key="t").set_value(0.75).run()
    at.number_input(key="tau_box").set_value(0.03).run()
    assert at.toggle(key="mag_logx").value is True  # log x by default: the τ line is not on the y axis
    at.toggle(key="mag_logx").set_value(False).run()
    ok(at)
    expected = {"part": "t", "t": "0.75", "tau": "0.03", "mag_logx": "0"}
    assert {k: at.query_params.get(k) for k in expected} == expected
    count = head_count(at)
    # opening the link in a new session reproduces the view
    again = new_app(**{k: v for k, v in at.query_params.items() if not k.startswith("mag_")})
    again.run()
    again.query_params.update(at.query_params)
    again.switch_page(dtviz_app.view_path("magnitudes")).run()
    ok(again)
    assert again.radio(key="part").value == "t"
    assert again.slider(key="t").value == pytest.approx(0.75)
    assert again.toggle(key="mag_logx").value is False
    assert head_count(again) == count
    # the URL survives a page switch, and keys of the page left behind are dropped
    again.switch_page(dtviz_app.view_path("variance")).run()
    ok(again)
    assert again.query_params.get("tau") == "0.03" and "mag_logx" not in again.query_params


def test_bad_path_shows_library_message_and_app_recovers(tmp_path):
    from dtviz.serving.roots import refusal

    missing = str(tmp_path / "missing.pt")
    at = new_app(src=missing)
    at.run()
    assert not at.exception
    # served roots (tests/conftest.py serves pytest's temp folder): missing gets the refusal, no existence oracle
    assert [e.value for e in at.error][:1] == [dtviz_app.plain(refusal("missing.pt"))]
    # the source is part of the link, so the link reproduces the error too
    assert at.query_params["src"] == missing
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    at = new_app(src=str(bad))
    at.run()
    assert not at.exception
    messages = [e.value for e in at.error]
    assert dtviz_app.shown(library_message(str(bad))) in messages and str(tmp_path) not in " ".join(messages)
    # other pages keep working once a good source is chosen
    at.radio(key="src_kind").set_value("builtin").run()
    ok(at)
    at.switch_page(dtviz_app.view_path("variance")).run()
    ok(at)


def test_nan_matrix_shows_library_message(tmp_path):
    path = tmp_path / "bad.npy"
    E = np.ones((5, 4), dtype=np.float32)
    E[2, 1] = np.nan
    np.save(path, E)
    at = new_app(src=str(path))
    at.run()
    assert not at.exception
    assert dtviz_app.shown(library_message(str(path))) in [e.value for e in at.error]


def test_a_one_row_matrix_renders_every_page_and_says_the_cosine_needs_two_rows(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("a,b\n1,x\n")  # a header, then one row labelled x
    at = new_app(src=str(path))
    ok(at.run())
    assert {m.label: m.value for m in at.metric}["Cosine (off-diag. mean)"] == "—"
    for module, *_ in dtviz_app.PAGES:
        at.switch_page(dtviz_app.view_path(module)).run()
        ok(at)
        assert at.title, module
        if module in ("cosine", "neighbours"):
            assert any("needs at least 2 conditions; this source has 1 condition." in i.value for i in at.info)
        assert not any("nan" in m.value for m in at.markdown), module


def test_export_report_of_all_pages():
    at = new_app(tau="0.05")
    at.run()
    at.button(key="export_all_build").click().run()
    ok(at)
    assert any(b.key == "export_all" for b in at.get("download_button")), "no report download after building it"
    html = at.session_state["_all_report"][1]
    # every page's figures, the model card and the settings in one self-contained file
    for name in ("overview-mean-profile", "cosine-heatmap", "cosine-submatrix", "magnitude-histogram",
                 "variance-spectrum", "projection", "compare", "cosine-over-t", "npr-over-training", "neighbours",
                 "dimension-values"):
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
    at.switch_page(dtviz_app.view_path("cosine")).run()
    ok(at)
    # a matrix with a NaN: the library's sentence, no exception
    E[3, 3] = np.nan
    bad = io.BytesIO()
    np.save(bad, E)
    at.file_uploader(key="src_upload").upload("nan.npy", bad.getvalue()).run()
    assert not at.exception
    np.save(tmp_path / "nan.npy", E)
    shown = [e.value for e in at.error]
    assert dtviz_app.shown(library_message(str(tmp_path / "nan.npy")).replace(str(tmp_path / "nan.npy"), "nan.npy")) in shown
    assert dtviz_app.UPLOAD_ROOT not in " ".join(shown)  # the stored path is never shown


def test_family_override_when_detection_is_ambiguous(tmp_path):
    from tests.factories import family_state, save_checkpoint

    path = save_checkpoint(family_state("dit"), str(tmp_path / "dit_or_sit.pt"))
    at = new_app(src=path)
    at.run()
    ok(at)
    assert at.selectbox(key="fam").value == "auto"  # shown: DiT, SiT and MG share their key names
    assert at.slider(key="t").value == 999  # assumed DiT: integer t, t0 = 999
    at.selectbox(key="fam").set_value("sit").run()
    ok(at)
    assert at.slider(key="t").value == 0.0  # SiT's convention: t0 = 0, the slider starts there
    # the link names the source relative to its served root (here pytest's temp folder, see conftest.py)
    assert at.query_params["fam"] == "sit" and at.query_params["src"] == f"{tmp_path.name}/dit_or_sit.pt"
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
    from tests.factories import family_state, save_checkpoint

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


def test_diffusers_pipeline_t0_is_its_schedulers_first_step(tmp_path):
    """A DiTPipeline's t0 is its DDIMScheduler's first timestep at 50 steps (980), and the app says so."""
    import diffusers
    from test_release_schedules import tiny_pipeline

    folder = tiny_pipeline(tmp_path / "pipe", diffusers.DDIMScheduler(clip_sample=False))
    at = new_app(src=folder)
    at.run()
    ok(at)
    assert at.slider(key="t").value == 980
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert "t0 = 980, the first timestep of its DDIMScheduler at DiTPipeline's default 50 steps" in captions


def test_the_overview_guide_links_every_other_page():
    import importlib

    guide = importlib.import_module("pages.overview_view").GUIDE
    assert [m for m, *_ in guide] == [m for m, *_ in dtviz_app.PAGES if m != "overview"]


def test_the_dynamics_page_shows_where_c_s_size_sits_over_the_built_in_training(app):
    """Its third training figure plots size_split over the shipped snapshots: the trials' recorded values of the
    shipped recipe (I), with ‖t_emb(t0)‖² growing step after step."""
    import json

    app.switch_page(dtviz_app.view_path("dynamics")).run()
    ok(app)
    chart = next(c for c in app.get("plotly_chart") if "Where c's size sits over training" in c.proto.spec)
    import base64

    def values(v):  # plotly's typed-array encoding of numpy arrays, or a plain list
        return np.frombuffer(base64.b64decode(v["bdata"]), dtype=v["dtype"]) if isinstance(v, dict) else np.asarray(v)

    trace = next(t for t in json.loads(chart.proto.spec)["data"] if t["name"].startswith("‖t_emb"))
    x, y = values(trace["x"]), values(trace["y"])
    trials = json.load(open(os.path.join(ROOT, "assets", "builtin", "trials.json"), encoding="utf-8"))
    shipped = next(r for r in trials["recipes"] if r["name"].startswith("I:"))["curve"]
    assert x.tolist() == [row["step"] for row in shipped]
    assert np.allclose(y, [row["t_sq"] for row in shipped], atol=6e-5)
    assert all(b > a for a, b in zip(y[1:], y[2:]))

"""The dashboard (AppTest) on tiny text-to-image pipelines: every page renders on an SD3 folder with prompts as
rows, prompts typed in the box (and from a link, bounded) become the rows, the live pruning page samples through
the pipeline, and PixArt's overview says c is the same for every prompt."""
from __future__ import annotations

import json
import os
import re

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from apptest import new_app, ok, steady_state_navigation  # noqa: E402,F401

import dtviz_app  # noqa: E402
from t2i_factories import build_pixart, build_sd3, save_pipeline  # noqa: E402

TYPED = "a photo of a dog\na red car at night\na small green tree"



@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("t2i_app")
    return {"sd3": save_pipeline(build_sd3(), str(root / "sd3")), "pixart": save_pipeline(build_pixart(), str(root / "pixart"))}




def card_value(at: AppTest, key: str) -> str:
    text = "\n".join(m.value for m in at.markdown)
    line = next(line for line in text.splitlines() if line.startswith(f"| {key} |"))
    return line.split("|")[2].strip()


def test_every_page_renders_on_an_sd3_folder_with_typed_prompts(folders):
    at = new_app(src=folders["sd3"], pmode="text", ptext=TYPED)
    ok(at.run())
    assert at.text_area(key="ptext").value == TYPED
    assert card_value(at, "prompts") == "3"
    deltas = {m.label: m.proto.delta for m in at.metric}  # SD3's own paper row (Table 5), not DiT-XL/2's
    assert deltas["Cosine (off-diag. mean)"] == "paper's SD3.0 (2B): 0.9962"
    assert any("| SD3.0 (2B) | — | — | 54.79% | 0.9962 |" in m.value for m in at.markdown)
    for module, *_ in dtviz_app.PAGES:
        at.switch_page(dtviz_app.view_path(module)).run()
        ok(at)
        assert at.title, module


def test_a_links_prompts_are_bounded(folders):
    from dtviz_app.prompt_picker import URL_MAX_PROMPTS

    too_many = "\n".join(f"a cat {i}" for i in range(URL_MAX_PROMPTS + 1))
    at = ok(new_app(src=folders["sd3"], pmode="text", ptext=too_many).run())
    assert any(f"at most {URL_MAX_PROMPTS} prompts" in c.value for c in at.caption)
    assert at.text_area(key="ptext").value == ""  # ignored: the default set is used until prompts are typed


def test_live_pruning_samples_through_the_pipeline(folders):
    at = ok(new_app(src=folders["sd3"], pset="varied").run())
    at.query_params.update({"pr_n": "2", "pr_steps": "2", "pr_size": "16"})
    at.switch_page(dtviz_app.view_path("pruning")).run()
    ok(at)
    assert at.number_input(key="pr_size").value == 16
    grids = [h.proto.body for h in at.get("html") if "data-grid=" in h.proto.body]
    assert len(grids) >= 2 and all("<img" in g for g in grids)


def test_pixart_overview_says_c_is_the_same_for_every_prompt(folders):
    at = ok(new_app(src=folders["pixart"]).run())
    assert any("same vector for every prompt" in i.value for i in at.info)


# ================================================================================ rows are prompts

CLASS_WORD = re.compile(r"\bclass(es)?\b", re.IGNORECASE)


def figure_texts(at: AppTest) -> list[str]:
    """Every plotly chart's title, axis titles and hover templates."""
    texts = []
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        layout = spec.get("layout", {})
        texts.append(str((layout.get("title") or {}).get("text", "")))
        texts += [str((v.get("title") or {}).get("text", "")) for k, v in layout.items()
                  if k.startswith(("xaxis", "yaxis")) and isinstance(v, dict)]
        texts += [str(tr.get("hovertemplate", "")) for tr in spec.get("data", [])]
    return texts


def test_a_prompt_source_says_prompts_not_classes(folders):
    """Titles, headings, widget labels and figure text name the rows prompts on every analysis page."""
    at = ok(new_app(src=folders["sd3"], pmode="text", ptext=TYPED).run())
    guide = [p.label for p in at.get("page_link")]  # the overview's guide to the views
    assert any("a prompt's nearest prompts" in g for g in guide) and not any(CLASS_WORD.search(g) for g in guide)
    seen = {}
    for module in ("cosine", "magnitudes", "variance", "projection", "neighbours", "pruning"):
        at.query_params.update({"proj_method": "pca", "pr_pick": "chosen", "pr_steps": "2", "pr_size": "16"})
        at.switch_page(dtviz_app.view_path(module)).run()
        ok(at)
        texts = ([t.value for t in at.title] + [s.value for s in at.subheader] + figure_texts(at)
                 + [w.label for kind in ("radio", "selectbox", "multiselect", "checkbox", "text_input") for w in at.get(kind)
                    if hasattr(w, "label")])
        bad = [t for t in texts if CLASS_WORD.search(t)]
        assert not bad, (module, bad)
        seen[module] = texts
    assert at.title[0].value == "Live pruning"
    assert any("Cosine similarity of the prompt vectors" == t for t in seen["cosine"])
    assert any(t.startswith("Variance across prompts") for t in seen["variance"])
    assert any("Cosine similarity of c between prompts (3×3)" in t for t in seen["cosine"])
    assert any(t.startswith("prompt") for t in seen["cosine"])  # the heatmap's axis title
    assert "Add a prompt: its words, then Enter" in seen["pruning"] and "Chosen prompts" in seen["pruning"]


def test_the_cosine_csv_names_prompts(folders):
    """The cosine page's CSV: the first column is "prompt", the others are the prompts themselves."""
    import dtviz
    from dtviz_app.context import Ctx
    from dtviz_app.navigation import page_module

    labels = os.path.join(folders["sd3"], "..", "typed.txt")
    with open(labels, "w") as fh:
        fh.write(TYPED + "\n")
    src = dtviz.load(folders["sd3"], prompts=labels)
    ctx = Ctx(source_key=folders["sd3"], family="auto", device="cpu", labels=labels, source=src, t=src.t0,
              part="y+t", threshold="tau", tau_setting=0.01, k=10)
    frame = page_module("cosine").matrix_csv(ctx, None)()
    assert list(frame.columns) == ["prompt", *TYPED.splitlines()]
    assert frame["prompt"].tolist() == TYPED.splitlines()


def test_projection_page_with_a_one_dim_tail(folders):
    """τ between the two smallest |c̄ᵢ|: the tail panel has one dim and still projects (it raised in sklearn's PCA)."""
    import numpy as np

    import dtviz

    prompts = dtviz.load(folders["sd3"], prompts="varied")
    v = np.sort(np.abs(prompts.embeddings().mean(0)))
    tau = float((v[0] + v[1]) / 2)
    at = new_app(src=folders["sd3"], tau=f"{tau:.6g}")
    ok(at.run())
    at.switch_page(dtviz_app.view_path("projection")).run()
    ok(at)
    assert any("tail only: 1 dims" in m.value or "1 dims, |c̄ᵢ| < τ" in m.value for m in at.markdown), [m.value for m in at.markdown][:3]

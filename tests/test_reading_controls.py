"""The sidebar's reading settings (dtviz_app.reading_controls), each what dtviz.load takes: Flux-dev's guidance g,
and a native checkpoint's null row and head count under "Advanced reading" — shown only where they apply, kept in
the link, and part of every cache key (the numbers on the page are the library's for the setting in force)."""
from __future__ import annotations

import os

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from apptest import new_app, ok, steady_state_navigation  # noqa: E402,F401

import dtviz  # noqa: E402
from dtviz.analysis.stats import ConditionStats  # noqa: E402
from dtviz.models.dit import DiT, DiTConfig  # noqa: E402
from factories import save_checkpoint  # noqa: E402

TYPED = "a photo of a dog\na red car at night\na small green tree"





def card_value(at: AppTest, key: str) -> str:
    text = "\n".join(m.value for m in at.markdown)
    line = next(line for line in text.splitlines() if line.startswith(f"| {key} |"))
    return line.split("|")[2].strip().replace("\\", "")  # plain() escapes markdown


def has_widget(at: AppTest, kind: str, key: str) -> bool:
    return any(getattr(w, "key", None) == key for w in at.get(kind))


# ================================================================================ native: null row, heads

@pytest.fixture(scope="module")
def plain_no_null(tmp_path_factory) -> str:
    """A plain state dict of a DiT trained with class_dropout_prob=0: 10 label rows, all classes, no null row,
    4 heads at width 64 (the file records neither)."""
    import torch

    torch.manual_seed(0)
    model = DiT(DiTConfig(input_size=8, patch_size=2, in_channels=3, hidden_size=64, depth=1, num_heads=4,
                          num_classes=10, class_dropout_prob=0.0))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert state["y_embedder.embedding_table.weight"].shape[0] == 10
    return save_checkpoint(state, str(tmp_path_factory.mktemp("reading") / "plain.pt"))


def test_null_row_and_heads_are_settings_of_a_plain_checkpoint(plain_no_null):
    at = ok(new_app(src=plain_no_null).run())
    assert card_value(at, "classes") == "9"  # the noted reading: 9 classes + the null row
    assert at.radio(key="null_row").value == "auto" and at.number_input(key="heads").value is None
    at.radio(key="null_row").set_value("no").run()
    ok(at)
    assert card_value(at, "classes") == "10"  # every row is a class
    assert at.query_params["null_row"] == "no"
    # the cosine page's numbers are the library's for the reading in force
    want = ConditionStats().fit(dtviz.load(plain_no_null, device="cpu", null_row="no").embeddings()).table_row()
    assert card_value(at, "cosine (off-diagonal mean)") == f"{want['cosine']['mean']:.4f}"
    at.number_input(key="heads").set_value(2).run()
    ok(at)
    assert at.query_params["heads"] == "2"
    assert any("2 attention heads (set by the user)" in c.value for c in at.sidebar.caption)
    # the live pruning page samples the model read that way (unguided by default: there is no null row now)
    at.query_params.update({"pr_n": "2", "pr_steps": "2"})
    at.switch_page("pages/pruning_view.py").run()
    ok(at)
    grids = [h.proto.body for h in at.get("html") if "data-grid=" in h.proto.body]
    assert len(grids) >= 2 and all("<img" in g for g in grids)
    # the link reproduces both
    again = ok(new_app(**{k: v for k, v in at.query_params.items() if not k.startswith("pr_")}).run())
    assert card_value(again, "classes") == "10" and again.number_input(key="heads").value == 2
    # back to auto: the file's own reading again, and the setting leaves the link
    again.radio(key="null_row").set_value("auto").run()
    ok(again)
    assert card_value(again, "classes") == "9" and "null_row" not in again.query_params


def test_a_link_cannot_set_a_head_count_that_does_not_divide_the_width(plain_no_null):
    at = new_app(src=plain_no_null, heads=3).run()
    assert not at.exception
    assert any("divides the width 64" in e.value for e in at.error)  # one sentence, the app keeps running
    assert at.number_input(key="heads").value == 3  # the control is there to change it
    at.number_input(key="heads").set_value(4).run()
    ok(at)


def test_no_advanced_reading_where_the_file_says_it():
    at = ok(new_app().run())  # the built-in model records its classes and heads
    assert not has_widget(at, "radio", "null_row") and not has_widget(at, "number_input", "heads")
    assert not has_widget(at, "number_input", "guid")


# ================================================================================ Flux-dev: guidance

@pytest.fixture(scope="module")
def flux_folders(tmp_path_factory):
    from t2i_factories import build_flux, save_pipeline

    root = tmp_path_factory.mktemp("reading_flux")
    return {"dev": save_pipeline(build_flux(guidance=True), str(root / "flux-dev")),
            "schnell": save_pipeline(build_flux(guidance=False), str(root / "flux-schnell"))}


def test_flux_guidance_is_a_setting_in_the_link_and_the_keys(flux_folders):
    from diffusers import FluxPipeline
    import inspect

    default = inspect.signature(FluxPipeline.__call__).parameters["guidance_scale"].default
    folder = flux_folders["dev"]
    at = ok(new_app(src=folder, pmode="text", ptext=TYPED).run())
    assert at.number_input(key="guid").value == pytest.approx(default)
    assert "guid" not in at.query_params
    prompts = os.path.join(os.path.dirname(folder), "typed.txt")
    with open(prompts, "w") as fh:
        fh.write(TYPED + "\n")

    def library_cosine(g):
        src = dtviz.load(folder, device="cpu", prompts=prompts, guidance=g)
        return f"{ConditionStats().fit(src.embeddings()).table_row()['cosine']['mean']:.4f}"

    assert card_value(at, "cosine (off-diagonal mean)") == library_cosine(None)
    at.number_input(key="guid").set_value(7.0).run()
    ok(at)
    assert at.query_params["guid"] == "7"
    assert "g = 7, set by you" in card_value(at, "family note")
    assert card_value(at, "cosine (off-diagonal mean)") == library_cosine(7.0) != library_cosine(None)
    again = ok(new_app(**at.query_params).run())
    assert again.number_input(key="guid").value == pytest.approx(7.0)
    # a hostile link: clamped to the range, said so
    far = ok(new_app(src=folder, pmode="text", ptext=TYPED, guid="1e9").run())
    assert far.number_input(key="guid").value == pytest.approx(100.0)


def test_no_guidance_setting_without_a_guidance_embedding(flux_folders):
    at = ok(new_app(src=flux_folders["schnell"], pmode="text", ptext=TYPED, guid="7").run())
    assert not has_widget(at, "number_input", "guid") and "guid" not in at.query_params

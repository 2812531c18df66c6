"""The live pruning page opens on the paper's contrast (AppTest, built-in model): baseline, tail at the model's τ
(the sidebar's, s_tail(c̄) = 448/1152) and head k = 3 % of d, with both read-outs; Enter in the class search adds
one best match."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("streamlit")

import dtviz  # noqa: E402
from dtviz.pruning.defaults import pruning_defaults  # noqa: E402
from dtviz.evaluation.quality import template_accuracy, template_matcher_for  # noqa: E402
from dtviz.analysis.stats import ConditionStats  # noqa: E402
from tests.test_app import grid, images, metric, ok, pruning_app, steady_state_navigation  # noqa: E402,F401


@pytest.fixture(scope="module")
def defaults():
    E = dtviz.load("builtin").embeddings()
    return pruning_defaults(ConditionStats().fit(E), E=E)


def test_opens_on_tail_beside_head_with_both_readouts(defaults):
    at = pruning_app(pr_n=6, pr_seed=21)
    assert at.selectbox(key="pr_mask").value == defaults.mask
    assert at.number_input(key="pr_tau_box").value == pytest.approx(defaults.tau)
    headings = " ".join(m.value for m in at.markdown)
    assert f"tail |cᵢ| < {defaults.tau:g}" in headings and f"head, k = {defaults.head_k}" in headings
    assert len(images(at, "contrast")) == 6 and images(at, "contrast") != images(at, "baseline")
    dim, k = dtviz.load("builtin").dim, defaults.head_k
    # the contrast grid's read-out: a whole count is written as one
    assert any(c.value.startswith(f"{k} / {dim} dims removed") for c in at.caption)
    # the template read-out is the library's, on the very samples shown
    src = dtviz.load("builtin")
    from dtviz.sampling.generate import Generator, SampleSettings
    from dtviz.pruning.spec import PruneSpec

    from dtviz.cli.args import select_classes

    labels = [int(i) for i in select_classes(src.num_classes, None, 6, 21)]
    pruned = Generator(src).sample(labels, SampleSettings(seed=21), prune=PruneSpec(tau=defaults.tau, mask=defaults.mask))
    expected = template_accuracy(pruned, labels, template_matcher_for(src))
    assert metric(at, "Template acc.").value == f"{expected:.0%}"
    assert metric(at, "Class acc.").label.startswith("Class acc. (base")
    assert any("Paper (Table 2, REPA-XL" in c.value for c in at.caption)
    # both grids' read-outs sit under their titles; the other null-row choice is read out too (null rows pruned by
    # default: the paper does not say)
    assert at.toggle(key="pr_null").value is True
    assert sum("dims removed" in c.value for c in at.caption) >= 2
    assert any(c.value.startswith("With the CFG null rows kept") for c in at.caption)
    # the page's τ is the sidebar's: the caption under the title names no τ of its own
    assert "τ" not in at.main.caption[0].value
    # head pruning selects dims by count (k = 3 % of d), not by the tail's τ; the contrast becomes the tail at τ
    at.radio(key="pr_mode").set_value("head").run()
    ok(at)
    assert at.radio(key="pr_by").value == "k" and at.number_input(key="pr_k").value == defaults.head_k
    headings = " ".join(m.value for m in at.markdown)
    assert f"**Pruned** · head, k = {defaults.head_k}" in headings and f"tail |cᵢ| < {defaults.tau:g}" in headings
    at.toggle(key="pr_contrast").set_value(False).run()
    ok(at)
    assert not [h for h in at.get("html") if 'data-grid="contrast"' in h.proto.body]
    assert at.query_params["pr_contrast"] == "0"


@pytest.mark.parametrize("query, expected", [("DIGIT ONE", "DIGIT ONE"), ("LATIN CAPITAL LETTER A", "LATIN CAPITAL LETTER A"),
                                             ("U+0041", "LATIN CAPITAL LETTER A")])
def test_enter_adds_the_single_best_match(query, expected):
    names = dtviz.load("builtin").class_names
    target = next(i for i, n in enumerate(names) if n.split("  ")[-1] == expected)
    at = pruning_app(pr_n=2, pr_pick="chosen", pr_ids="5", pr_steps=4)
    at.text_input(key="pr_find").input(query).run()  # Enter
    ok(at)
    assert at.multiselect(key="pr_ids").value == [5, target]
    from dtviz_app import plain

    added = plain(f"Added: {names[target]}")  # shown literally (a class name may hold markdown characters)
    assert at.text_input(key="pr_find").value == "" and any(c.value == added for c in at.caption)
    assert "LATIN" in grid(at, "pruned") or "DIGIT" in grid(at, "pruned")
    at.text_input(key="pr_find").input("zzzz no such glyph").run()
    ok(at)
    assert at.multiselect(key="pr_ids").value == [5, target]
    assert any(c.value == plain("No class matches that text.") for c in at.caption)


def test_sampler_options_reach_the_sampler(defaults):
    """SiT's SDE with REPA's linear diffusion form and Tweedie's last step, set on the page as on the CLI: the
    template read-out is the library's on samples drawn with that very spec; options the sampler lacks are one
    warning sentence."""
    from dtviz.cli.args import select_classes
    from dtviz.sampling.generate import Generator, SampleSettings
    from dtviz.pruning.spec import PruneSpec

    opts = "diffusion_form=linear,last_step=tweedie"
    at = pruning_app(pr_n=4, pr_seed=3, pr_sampler="sde", pr_sampler_opts=opts, pr_steps=12)
    assert at.text_input(key="pr_sampler_opts").value == opts
    src = dtviz.load("builtin")
    labels = [int(i) for i in select_classes(src.num_classes, None, 4, 3)]
    settings = SampleSettings(steps=12, seed=3, sampler=f"sde:{opts}")
    pruned = Generator(src).sample(labels, settings, prune=PruneSpec(tau=defaults.tau, mask=defaults.mask))
    assert metric(at, "Template acc.").value == f"{template_accuracy(pruned, labels, template_matcher_for(src)):.0%}"
    plain = Generator(src).sample(labels, SampleSettings(steps=12, seed=3, sampler="sde"),
                                  prune=PruneSpec(tau=defaults.tau, mask=defaults.mask))
    assert not np.allclose(pruned, plain)  # the options changed the samples
    bad = pruning_app(pr_n=4, pr_sampler="sde", pr_sampler_opts="atol=1,_x_=2")
    assert not bad.exception and any("atol" in w.value for w in bad.warning)
    assert not any("<em>" in str(w.proto) or "_x_" in w.value.replace("\\_", "") for w in bad.warning)

"""What the README, the model card and the overview say about the built-in model is what the scorecard measures:
card.json's claim rows equal a fresh `dtviz claims` reading of the shipped weights, the card's Markdown is rendered
from card.json, and the README's block is rendered from it too — so a test fails when any of them drifts."""
from __future__ import annotations

import json
import os

import pytest

import dtviz
from dtviz.builtin.card import read_trials, render, shipped_status
from dtviz.evaluation.claims import CLAIM_IDS, SAMPLING_IDS, statistics_claims
from dtviz.sources.loading import BUILTIN_DIR

CARD = os.path.join(BUILTIN_DIR, "card.json")


@pytest.fixture(scope="module")
def card() -> dict:
    with open(CARD, encoding="utf-8") as fh:
        return json.load(fh)


def close(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return set(a) == set(b) and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return b == pytest.approx(a, rel=1e-4, abs=1e-6)
    return a == b


def test_card_claims_are_a_fresh_reading_of_the_shipped_weights(card):
    rows = {r["id"]: r for r in card["claims"]}
    assert list(rows) == list(CLAIM_IDS)
    fresh = {r.id: r.to_dict() for r in statistics_claims(dtviz.load("builtin"))}
    for cid, row in fresh.items():
        assert rows[cid]["verdict"] == row["verdict"], cid
        assert rows[cid]["measured"] == row["measured"], cid
        assert close(rows[cid]["evidence"], row["evidence"]), cid
    for cid in SAMPLING_IDS:  # sampled by scripts/model_card.py: both null-row variants and both controls present
        runs = rows[cid]["evidence"]["runs"]
        assert any(n.endswith("_pruned") for n in runs) and any(n.endswith("_kept") for n in runs), cid
    assert {"head_y_only", "random_0"} <= set(rows["prune_head"]["evidence"]["runs"])


def test_card_markdown_and_overview_are_rendered_from_card_json(card):
    with open(os.path.join(BUILTIN_DIR, "config.json"), encoding="utf-8") as fh:
        cfg = json.load(fh)
    with open(os.path.join(BUILTIN_DIR, "README.md"), encoding="utf-8") as fh:
        assert fh.read() == render(cfg, card, read_trials(BUILTIN_DIR))
    status = " ".join(shipped_status(BUILTIN_DIR))
    for r in card["claims"]:
        if r["verdict"] in ("holds", "partly", "does not hold"):
            assert r["id"] in status


def test_card_sampling_rows_are_reproduced_by_a_fresh_run(card):
    """The shipped scorecard's sampling rows (what the README and the claims page show): the baseline, the tail at the
    model's τ and the head k runs, sampled again with the card's own plan, read out the same accuracies (within one
    sample: class read-outs are robust to last-bit float differences between machines)."""
    from dtviz.evaluation.claim_sampling import default_plan, plan_runs, run_all
    from dtviz.evaluation.claims import source_tau
    from dtviz.sampling.generate import Generator

    source = dtviz.load("builtin")
    plan = default_plan(source, samples=card["claims_plan"]["samples"], seed=card["claims_plan"]["seed"])
    assert plan.samples == card["claims_plan"]["samples"]
    gen = Generator(source)
    steps = len(gen.sampler().timesteps())
    wanted = {"baseline", "tail_pruned", "head_pruned"}
    runs = [r for r in plan_runs(plan, source_tau(source), source.dim, steps) if r[0] in wanted]
    fresh = run_all(gen, plan, runs)
    rows = {r["id"]: r for r in card["claims"]}
    shipped = {**rows["prune_tail"]["evidence"]["runs"], **rows["prune_head"]["evidence"]["runs"]}
    for name in wanted:
        assert fresh[name].accuracy == pytest.approx(shipped[name]["accuracy"], abs=1.5 / plan.samples), name


def test_card_head_modulation_is_a_fresh_reading_of_the_shipped_weights(card):
    """"How strongly adaLN reads the head" under What stands in the way: card.json's numbers equal a fresh
    dtviz.analysis.blocks reading with the scorecard's own head k and random dims, and the card prints them."""
    from dtviz.builtin.card import head_modulation

    from dtviz.builtin.card import head_silu

    fresh = head_modulation(BUILTIN_DIR, card["claims"])
    assert close(card["head_modulation"], fresh)
    assert close(card["head_silu"], head_silu(BUILTIN_DIR, card["claims_plan"]["head_k"]))
    assert fresh["head"] > 0 and fresh["random"] > 0 and fresh["random_draws"] == 2
    with open(os.path.join(BUILTIN_DIR, "README.md"), encoding="utf-8") as fh:
        assert f"changes the modulation by {100 * fresh['head']:.1f} % of its size" in fh.read()


def test_card_class_read_is_a_fresh_reading_of_the_shipped_weights(card):
    """"Where adaLN reads the class" under What stands in the way: card.json's numbers equal a fresh
    dtviz.analysis.blocks.class_read of the shipped weights, and the card prints them."""
    from dtviz.builtin.card import class_read, class_read_lines

    fresh = class_read(BUILTIN_DIR)
    assert close(card["class_read"], fresh)
    with open(os.path.join(BUILTIN_DIR, "README.md"), encoding="utf-8") as fh:
        assert class_read_lines({"class_read": fresh})[1] in fh.read()


def test_the_shipped_recipe_s_last_state_is_the_card_s_class_read(card):
    """trials.json's last_state of the recipe shipped as builtin (I) is the card's class_read of the same weights
    (4 decimals), so the two tables of the card cannot disagree."""
    with open(os.path.join(BUILTIN_DIR, "trials.json"), encoding="utf-8") as fh:
        shipped = next(r for r in json.load(fh)["recipes"] if "(shipped as builtin)" in r["name"])
    state = shipped["last_state"]
    for key in ("head_share", "between_top_share", "rho_between_weight", "rho_magnitude_weight", "uniform_share"):
        assert state[key] == pytest.approx(card["class_read"][key], abs=6e-5), key

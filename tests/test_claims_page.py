"""The Paper claims page renders every claim of the scorecard with the library's numbers (AppTest, no browser)."""
from __future__ import annotations

import json
import os
import re

import dtviz
import dtviz_app
from dtviz.evaluation.claims import CLAIM_IDS, SAMPLING_IDS
from dtviz.sources.loading import BUILTIN_DIR
from tests.test_app import new_app, ok, steady_state_navigation  # noqa: F401 — the fixture pins st.navigation

PAGE = dtviz_app.view_path("claims")


def test_claims_page_shows_every_id_with_the_library_s_reading():
    at = new_app()
    at.run()
    at.switch_page(PAGE).run()
    ok(at)
    assert at.title[0].value == "Paper claims, measured on this model"
    captions = " ".join(c.value for c in at.caption)
    texts = [t.value for t in at.text]
    for claim_id in CLAIM_IDS:  # every id, each with its rule beside it
        assert f"`{claim_id}` · rule:" in captions, claim_id
    statistics = {c.id: c for c in dtviz.measure_claims(dtviz.load("builtin"), sampling=False) if c.id not in SAMPLING_IDS}
    with open(os.path.join(BUILTIN_DIR, "card.json"), encoding="utf-8") as fh:
        shipped = {r["id"]: r for r in json.load(fh)["claims"] if r["id"] in SAMPLING_IDS}
    assert set(statistics) | set(shipped) == set(CLAIM_IDS)
    for claim in statistics.values():  # the statistics rows: a fresh library reading, word for word
        assert claim.measured in texts and claim.paper in texts, claim.id
    for row in shipped.values():  # the sampling rows: what the model card measured when it was shipped
        assert row["measured"] in texts, row["id"]
    badges = re.findall(r"^:(?:green|orange|red|gray|grey|blue|violet)-badge\[(.+)\]$", "\n".join(m.value for m in at.markdown), re.M)
    verdicts = [c.verdict for c in statistics.values()] + [r["verdict"] for r in shipped.values()]
    assert sorted(badges) == sorted(verdicts)  # st.badge renders as markdown: one verdict per row
    assert any(b.label == "Markdown for a review" for b in at.get("download_button"))


def test_the_picker_says_what_each_built_in_shows():
    """Under the built-in picker: the model's line and its card's verdict counts, counted here from card.json."""
    from dtviz.sources.builtins import BUILTINS

    for name in BUILTINS:
        at = new_app(src=name)
        at.run()
        ok(at)
        with open(os.path.join(BUILTINS[name].path, "card.json"), encoding="utf-8") as fh:
            verdicts = [r["verdict"] for r in json.load(fh)["claims"]]
        expected = (f"{verdicts.count('holds')} hold, {verdicts.count('partly')} partly, "
                    f"{verdicts.count('does not hold')} do not hold")
        assert any(expected in c.value for c in at.sidebar.caption), (name, expected)

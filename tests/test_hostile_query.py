"""Hostile query values (issue 13, finding 12) and rendering cost per row (finding 6).

Each of the 13 numeric page keys is given ``inf``, ``-inf``, ``nan``, a 400-digit number and ±1e308 through a
real AppTest session: the page renders with no exception and no error box, and a note under the widget says
what was expected or to what the value was clamped. ``pr_seed=1e308`` is clamped before it reaches torch.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("streamlit")

import dtviz_app  # noqa: E402
from tests.test_app import new_app, steady_state_navigation  # noqa: E402,F401 — the autouse fixture
from tests.test_app import ok as ok_  # noqa: E402

PAGES = {
    "cosine": ["cos_n", "cos_seed"],
    "projection": ["proj_top"],
    "dynamics": ["dyn_n"],
    "neighbours": ["nn_cls", "nn_k"],
    "pruning": ["pr_n", "pr_seed", "pr_steps", "pr_k", "pr_last", "pr_dim", "pr_dim_last"],
}
# the settings that make the conditional widgets of those keys appear
SHOWN = {"pruning": {"pr_by": "k", "pr_sched": "last", "pr_dim_sched": "last"}}
HOSTILE = {"inf": "inf", "-inf": "-inf", "nan": "nan", "400 digits": "9" * 400, "1e308": "1e308", "-1e308": "-1e308"}


def ok(at):
    """test_app.ok, with the stack traces of any exception in the message."""
    assert not at.exception, ["\n".join(e.stack_trace) for e in at.exception]
    return ok_(at)


def notes(at) -> str:
    return "\n".join(c.value for c in at.caption)


@pytest.fixture(scope="module")
def session():
    at = new_app()
    at.run()
    return ok(at)


@pytest.mark.parametrize("value", list(HOSTILE), ids=list(HOSTILE))
@pytest.mark.parametrize("page", list(PAGES))
def test_hostile_numbers_never_raise_and_are_noted(session, page, value):
    # pruning: a fresh session each time (a run that refuses to sample draws no pr_by widget, and Streamlit then
    # forgets that widget's state, so the next link's pr_by=k would not be adopted again in the same session)
    at = session if page != "pruning" else new_app()
    if page == "pruning":
        ok(at.run())
    query = {**SHOWN.get(page, {}), **{key: HOSTILE[value] for key in PAGES[page]}}
    at.query_params.clear()
    at.query_params.update(query)
    at.switch_page(dtviz_app.view_path(page)).run()
    ok(at)
    text, keys = notes(at), PAGES[page]
    if page == "pruning" and value == "1e308":  # 64 samples × 1000 steps: refused, so no pruning widgets below
        assert any("over this server's budget" in w.value for w in at.warning), [w.value for w in at.warning]
        keys = ["pr_n", "pr_seed", "pr_steps", "pr_dim"]
    for key in keys:
        assert f"link's {key}" in text, (key, text)
    for key in keys:  # the link now holds a value the widget took (or none: the default)
        kept = at.query_params.get(key)
        assert kept is None or (kept.lstrip("-").isdigit() and len(kept) <= 10), (key, kept)


def test_seed_1e308_is_clamped_before_torch(session):
    at = session
    at.query_params.clear()
    at.query_params.update({"pr_seed": "1e308", "pr_n": "2", "pr_steps": "4"})
    at.switch_page(dtviz_app.view_path("pruning")).run()
    ok(at)
    assert at.number_input(key="pr_seed").value == dtviz_app.MAX_INT
    assert "link's pr_seed 1e+308 is outside 0 to 2147483647" in notes(at)
    assert at.query_params["pr_seed"] == str(dtviz_app.MAX_INT)


# ================================================================================ finding 6

class CountingList(list):
    """A source's class-name list that counts how often it is copied (iterated)."""

    copies = 0

    def __iter__(self):
        CountingList.copies += 1
        return super().__iter__()


def test_names_are_copied_once_per_run_not_per_format_call():
    """format_func calls ctx.names[j] once per option: with 200 000 rows a copy per call was quadratic."""
    from dtviz.sources.matrix import MatrixSource
    from dtviz_app.context import Ctx

    n = 200_000
    src = MatrixSource(np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32))
    src.info.class_names = CountingList(src.info.class_names)
    ctx = Ctx(source_key="m.npy", family="matrix", device="cpu", labels=None, source=src, t=None, part="y+t",
              threshold="tau", tau_setting=0.01, k=10)
    CountingList.copies = 0
    format_func = lambda j: ctx.names[j]  # noqa: E731 — the neighbours page's format_func
    shown = [format_func(j) for j in range(n)]
    assert shown[-1] == f"row {n - 1}"
    assert CountingList.copies <= 1

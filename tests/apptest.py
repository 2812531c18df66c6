"""What every dashboard test (Streamlit AppTest) shares: the app, the navigation pin, a page with query params, and
the "no exception, no error box" check. Test modules import the fixture, so it applies to them (autouse)."""
from __future__ import annotations

import os

import pytest
from streamlit.testing.v1 import AppTest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = os.path.join(ROOT, "app.py")
TIMEOUT = 180  # generous: the machine may be busy with training jobs


@pytest.fixture(autouse=True)
def steady_state_navigation(monkeypatch):
    """A real server uses Streamlit's legacy pages/ discovery only for its very first run (our pages/<url>.py
    stubs hand that run to app.py; the browser test's cold deep link covers it) and st.navigation after that.
    AppTest re-decides before every run, so pin the server's steady state here."""
    from streamlit.runtime import pages_manager

    original = pages_manager.PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        pages_manager.PagesManager.uses_pages_directory = False

    monkeypatch.setattr(pages_manager.PagesManager, "__init__", init)


def new_app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({k: str(v) for k, v in query.items()})
    return at


def ok(at: AppTest) -> AppTest:
    """No uncaught exception and no error box."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at

"""One visitor cannot cost the others (issue 13): checkpoint loads under concurrency, cancelled and queued
sampling, and caches that one client cannot empty for everyone.

Everything runs on real objects: real training-wrapper files, the built-in-sized tiny DiT through
``dtviz.generate.Generator``, and Streamlit's own runtime classes for the back-message.
"""
from __future__ import annotations

import threading

import pytest
import torch

from factories import family_state, save_checkpoint


# ================================================================================ checkpoint loads

def test_forty_parallel_loads_of_a_training_wrapper_all_succeed(tmp_path):
    """torch's safe_globals context manager swaps one process-global list: a thread leaving it used to drop
    argparse.Namespace for the loads still running (9 of 40 refused). The allow-list is now registered once."""
    from dtviz.checkpoint import read_torch

    paths = [save_checkpoint(family_state("dit", seed=i % 4), str(tmp_path / f"ckpt{i}.pt"), wrapper="train")
             for i in range(4)]
    barrier = threading.Barrier(40)
    failures, done = [], []

    def load(i):
        try:
            barrier.wait(timeout=30)
            for _ in range(3):
                obj = read_torch(paths[i % 4])
                assert "args" in obj and "ema" in obj
            done.append(i)
        except BaseException as err:  # noqa: BLE001 — collected and asserted below
            failures.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=load, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not failures, failures[:3]
    assert len(done) == 40


# ================================================================================ caches one client cannot empty

def test_clear_cache_back_message_clears_only_the_senders_session():
    """Any client can send Streamlit's ``clear_cache`` back-message; it used to empty st.cache_data and
    st.cache_resource for every session. Sent through AppSession.handle_backmsg as the server receives it."""
    import streamlit as st
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.runtime.app_session import AppSession, AppSessionState
    from streamlit.runtime.state import SessionState

    import dtviz_app  # noqa: F401 — importing the dashboard glue installs the guard, as app.py does at start

    computed = []

    @st.cache_data
    def shared_data(x):
        computed.append(("data", x))
        return x

    @st.cache_resource
    def shared_resource(x):
        computed.append(("resource", x))
        return [x]

    shared_data(1), shared_resource(1)
    session = AppSession.__new__(AppSession)  # the state a real session's handler touches
    session._session_state, session._state = SessionState(), AppSessionState.SHUTDOWN_REQUESTED
    session._session_state["mine"] = "the sender's own setting"
    msg = BackMsg()
    msg.clear_cache = True
    session.handle_backmsg(msg)
    shared_data(1), shared_resource(1)
    assert computed == [("data", 1), ("resource", 1)]  # nothing computed again: the others' caches are intact
    assert "mine" not in session._session_state


def test_a_changed_source_drops_only_its_own_entries(tmp_path):
    """refresh_if_changed used to clear every cache when one file changed; now only that file's entries go."""
    import numpy as np

    from dtviz.arraycache import ARRAYS, source_identity
    from dtviz_app import cache

    a, b = str(tmp_path / "a.npy"), str(tmp_path / "b.npy")
    np.save(a, np.eye(3, dtype=np.float32))
    np.save(b, np.ones((3, 2), dtype=np.float32))
    for path in (a, b):
        cache.safe_load(path, "matrix", "cpu")
        cache.condition_stats(path, "matrix", "cpu", None, None, "y+t")
    ident_a, ident_b = source_identity(a), source_identity(b)
    row_b = cache.compare_row(b, "cpu", "y+t", 0.01)
    np.save(a, 2 * np.eye(4, dtype=np.float32))  # rewritten: a new size, so a new stamp
    cache.safe_load(a, "matrix", "cpu")
    keys = [k[0] for k in ARRAYS._items]
    assert ident_a not in keys and ident_b in keys
    assert cache.condition_stats(a, "matrix", "cpu", None, None, "y+t").n_ == 4  # the new file, not a stale copy
    assert cache.compare_row(b, "cpu", "y+t", 0.01) == row_b
    assert ARRAYS.bytes <= ARRAYS.max_bytes


def test_the_array_cache_is_bounded_by_bytes():
    import numpy as np

    from dtviz.arraycache import ByteLRU

    lru = ByteLRU(max_bytes=10 * 8 * 1000)
    for i in range(25):
        lru.get(("k", i), lambda: np.zeros(1000))
    assert lru.bytes <= lru.max_bytes and len(lru) == 10
    assert ("k", 24) in lru and ("k", 0) not in lru
    huge = lru.get(("huge",), lambda: np.zeros(100_000))
    assert huge.shape == (100_000,) and ("huge",) not in lru and not huge.flags.writeable

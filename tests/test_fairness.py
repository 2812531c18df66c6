"""One visitor cannot cost the others (issue 13): checkpoint loads under concurrency, cancelled and queued
sampling, and caches that one client cannot empty for everyone.

Everything runs on real objects: real training-wrapper files, the built-in-sized tiny DiT through
``dtviz.sampling.generate.Generator``, and Streamlit's own runtime classes for the back-message.
"""
from __future__ import annotations

import threading

import pytest

from tests.factories import family_state, save_checkpoint
from tests.test_concurrency import server  # noqa: F401 — the `streamlit run app.py` fixture


# ================================================================================ checkpoint loads

def test_forty_parallel_loads_of_a_training_wrapper_all_succeed(tmp_path):
    """torch's safe_globals context manager swaps one process-global list: a thread leaving it used to drop
    argparse.Namespace for the loads still running (9 of 40 refused). The allow-list is now registered once."""
    from dtviz.sources.checkpoint import read_torch

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

    from dtviz.serving.arraycache import ARRAYS, source_identity
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

    from dtviz.serving.arraycache import ByteLRU

    lru = ByteLRU(max_bytes=10 * 8 * 1000)
    for i in range(25):
        lru.get(("k", i), lambda: np.zeros(1000))
    assert lru.bytes <= lru.max_bytes and len(lru) == 10
    assert ("k", 24) in lru and ("k", 0) not in lru
    huge = lru.get(("huge",), lambda: np.zeros(100_000))
    assert huge.shape == (100_000,) and ("huge",) not in lru and not huge.flags.writeable


def test_sampled_grids_are_bounded_by_bytes_and_a_hit_is_the_same_images(tiny_generator, monkeypatch):
    """sample_run used st.cache_data(max_entries=64): 64 grids whatever their size. Now a byte-bounded LRU."""
    import numpy as np

    from dtviz.serving.arraycache import ByteLRU
    from dtviz_app import cache, sampling

    monkeypatch.setattr(cache, "SAMPLES", ByteLRU(cache.MAX_SAMPLE_CACHE_BYTES))
    monkeypatch.setattr(cache, "_generator", lambda *key: (tiny_generator, None))
    key, labels = ("tiny-model", "sit", "cpu", None), (0, 1)
    first = sampling.sample_run(key, labels, 2, 1.0, 0)
    one = cache.SAMPLES.bytes  # one grid's bytes (images + read-outs)
    assert one >= first["images"].nbytes > 0
    hit = sampling.sample_run(key, labels, 2, 1.0, 0)
    assert np.array_equal(hit["images"], first["images"]) and not hit["images"].flags.writeable
    cache.SAMPLES.max_bytes = int(2.5 * one)  # room for two grids
    for seed in (1, 2, 3):
        sampling.sample_run(key, labels, 2, 1.0, seed)
        assert cache.SAMPLES.bytes <= cache.SAMPLES.max_bytes
    assert len(cache.SAMPLES) == 2
    seeds = [k[4] for k in cache.SAMPLES._items]
    assert seeds == [2, 3]  # the oldest (0, 1) went first
    again = sampling.sample_run(key, labels, 2, 1.0, 0)  # recomputed after eviction: the very same images
    assert np.array_equal(again["images"], first["images"])
    assert cache.SAMPLES.bytes <= cache.SAMPLES.max_bytes


def test_heatmap_figures_are_bounded_by_bytes_and_each_caller_gets_a_copy(tmp_path, monkeypatch):
    import json

    import numpy as np

    from dtviz.serving.arraycache import ByteLRU
    from dtviz_app import cache

    monkeypatch.setattr(cache, "FIGURES", ByteLRU(cache.MAX_FIGURE_CACHE_BYTES, sizeof=cache._pickled_size))
    path = str(tmp_path / "e.npy")
    np.save(path, np.random.default_rng(0).standard_normal((12, 6)).astype(np.float32))
    key, names, ctx = (path, "matrix", "cpu", None, None, "y+t"), [f"c{i}" for i in range(12)], {"model": "m"}
    fig, _ = cache.cosine_heatmap(key, "id", names, ctx, 400)
    one = cache.FIGURES.bytes
    assert one > 0
    fig.update_layout(title="changed by one session")
    hit, _ = cache.cosine_heatmap(key, "id", names, ctx, 400)
    assert hit is not fig and hit.layout.title.text != "changed by one session"
    assert json.loads(hit.to_json())["data"] == json.loads(fig.to_json())["data"]  # the same heatmap
    cache.FIGURES.max_bytes = int(2.5 * one)
    for height in (401, 402, 403):
        cache.cosine_heatmap(key, "id", names, ctx, height)
        assert cache.FIGURES.bytes <= cache.FIGURES.max_bytes
    assert [k[-1] for k in cache.FIGURES._items] == [402, 403]


# ================================================================================ sampling: cancel and take turns

@pytest.fixture(scope="module")
def tiny_generator(tmp_path_factory):
    import dtviz
    from dtviz.sampling.generate import Generator
    from tests.test_pruning import save_tiny_folder

    return Generator(dtviz.load(save_tiny_folder(str(tmp_path_factory.mktemp("tiny") / "model")), device="cpu"))


def test_a_newer_request_cancels_a_long_run_within_a_few_steps(tiny_generator):
    """A 1000-step run is cancelled (as the dashboard does when the same session asks again) after its 5th step;
    it stops before the 8th network evaluation and releases the model at once for the next caller."""
    from dtviz.sampling.generate import SampleSettings
    from dtviz.sampling.queue import Cancelled, CancelToken

    token, steps_run = CancelToken(), []

    def on_step(i, n):
        steps_run.append(i)
        if i == 4:
            token.cancel("a newer request of this session replaced it")

    with pytest.raises(Cancelled, match="sampling stopped at step 6 of 1000: a newer request"):
        tiny_generator.sample([0, 1], SampleSettings(steps=1000, seed=0, sampler="euler"), on_step=on_step,
                             cancel=token)
    assert len(steps_run) == 5 and token.checks == 6
    images = tiny_generator.sample([0, 1], SampleSettings(steps=3, seed=0))  # the model is free again
    assert images.shape[0] == 2


def test_a_closed_session_stops_its_run(tiny_generator):
    """should_stop is how the dashboard asks "is this session still open?" at every step."""
    from dtviz.sampling.generate import SampleSettings
    from dtviz.sampling.queue import Cancelled, CancelToken

    session_open = threading.Event()
    session_open.set()
    token = CancelToken(lambda: None if session_open.is_set() else "its session ended")
    seen = []

    def on_step(i, n):
        seen.append(i)
        if i == 2:
            session_open.clear()  # the visitor closed the tab

    with pytest.raises(Cancelled, match="its session ended"):
        tiny_generator.sample([0], SampleSettings(steps=1000, sampler="euler"), on_step=on_step, cancel=token)
    assert len(seen) == 3


def test_waiters_take_turns_in_arrival_order_and_see_their_position(tiny_generator):
    """One run holds the model; four callers arrive one after the other: they run in that order, each told how
    many are ahead; one of them is cancelled while it waits and leaves the queue."""
    import time

    from dtviz.sampling.generate import SampleSettings
    from dtviz.sampling.queue import Cancelled, CancelToken

    release, order, positions, errors = threading.Event(), [], {}, {}
    started = threading.Event()

    def holder_step(i, n):
        started.set()
        release.wait(timeout=30)

    holder = threading.Thread(target=lambda: tiny_generator.sample([0], SampleSettings(steps=2, sampler="euler"),
                                                                   on_step=holder_step))
    assert tiny_generator._lock.waiting == 0, list(tiny_generator._lock._waiting)
    holder.start()
    assert started.wait(timeout=30)
    tokens = {name: CancelToken() for name in "abcd"}

    def waiter(name):
        try:
            tiny_generator.sample([1], SampleSettings(steps=1, sampler="euler"), cancel=tokens[name],
                                  on_wait=lambda ahead: positions.setdefault(name, []).append(ahead),
                                  on_step=lambda i, n: order.append(name) if i == 0 else None)
        except Cancelled as err:
            errors[name] = str(err)

    threads = []
    for name in "abcd":
        threads.append(threading.Thread(target=waiter, args=(name,)))
        threads[-1].start()
        while tiny_generator._lock.waiting < len(threads):  # arrived and queued before the next one starts
            time.sleep(0.01)
    tokens["c"].cancel("its session ended")
    time.sleep(0.5)  # c notices within one poll and leaves the queue
    release.set()
    for t in [holder, *threads]:
        t.join(timeout=60)
    assert order == ["a", "b", "d"]
    assert positions["a"][0] == 1 and positions["b"][0] == 2 and positions["d"][0] == 4
    # It moved up as c left and the others finished; which intermediate positions d sees depends on when its
    # thread wakes (a one-step run may finish before d looks again), so only the direction is fixed.
    assert positions["d"] == sorted(set(positions["d"]), reverse=True) and positions["d"][-1] < 4
    assert errors == {"c": "sampling stopped: its session ended."}


# ================================================================================ the real server

def test_closing_the_tab_stops_its_run_on_the_real_server(server):
    """`streamlit run app.py` and Streamlit's own websocket protocol: a session asks for 8 samples × 1000 Euler
    steps (the largest request the budget allows), and its tab is closed as soon as the progress bar shows; the
    server log then says the run stopped, far before step 1000; the next session samples at once."""
    import os
    import re
    import time
    from urllib.parse import urlencode

    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from tests.test_app import ROOT
    from tests.test_concurrency import ws_session
    from websockets.sync.client import connect

    log_path = os.path.join(ROOT, "tests", "output", "streamlit-concurrency.log")
    with connect(f"ws://127.0.0.1:{server}/_stcore/stream", subprotocols=["streamlit"], max_size=None,
                 open_timeout=60) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = urlencode({"pr_n": 8, "pr_steps": 1000, "pr_seed": 5, "pr_sampler": "euler"})
        msg.rerun_script.page_name = "pruning"
        ws.send(msg.SerializeToString())
        deadline = time.time() + 120
        while time.time() < deadline:  # until the baseline's progress bar reports a step
            fm = ForwardMsg()
            fm.ParseFromString(ws.recv(timeout=60))
            if fm.WhichOneof("type") == "delta" and fm.delta.WhichOneof("type") == "new_element":
                el = fm.delta.new_element
                if el.WhichOneof("type") == "progress" and "step" in el.progress.text:
                    break
        else:
            pytest.fail("the long run never started")
    # the tab is closed (websocket gone): its run must stop within a few steps
    deadline, stopped = time.time() + 60, None
    while time.time() < deadline and stopped is None:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            stopped = re.search(r"sampling stopped at step (\d+) of 1000: its session (ended|stopped)", fh.read())
        time.sleep(0.2)
    assert stopped, "no cancellation in the server log"
    assert int(stopped.group(1)) < 500
    other = ws_session(server, urlencode({"pr_n": 2, "pr_steps": 4, "pr_seed": 6}), "pruning", timeout=120)
    assert other["status"] == 0 and not other["errors"] and not other["exceptions"], other
    assert {"baseline", "pruned"} <= set(other["grids"])


def test_a_waiting_tab_sees_its_queue_position_on_the_real_server(server):
    """Two tabs on one model of `dtviz serve`'s app: while the first samples 8 × 1000 steps, the second's
    progress bar says how many runs are ahead of it; when the first tab closes, the second gets its grids."""
    import time
    from urllib.parse import urlencode

    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    def open_tab(query: dict):
        ws = connect(f"ws://127.0.0.1:{server}/_stcore/stream", subprotocols=["streamlit"], max_size=None,
                     open_timeout=60)
        msg = BackMsg()
        msg.rerun_script.query_string = urlencode(query)
        msg.rerun_script.page_name = "pruning"
        ws.send(msg.SerializeToString())
        return ws

    def progress_texts(ws, until, limit: float = 120):
        seen, deadline = [], time.time() + limit
        while time.time() < deadline:
            fm = ForwardMsg()
            fm.ParseFromString(ws.recv(timeout=limit))
            if fm.WhichOneof("type") == "delta" and fm.delta.WhichOneof("type") == "new_element":
                el = fm.delta.new_element
                if el.WhichOneof("type") == "progress":
                    seen.append(el.progress.text)
                    if until(el.progress.text):
                        return seen
        return seen

    first = open_tab({"pr_n": 8, "pr_steps": 1000, "pr_seed": 15, "pr_sampler": "euler"})
    try:
        assert any("step" in t for t in progress_texts(first, lambda t: "step" in t)), "the long run never started"
        second = open_tab({"pr_n": 2, "pr_steps": 4, "pr_seed": 16, "pr_sampler": "euler"})
        try:
            texts = progress_texts(second, lambda t: "ahead" in t)
            assert any("waiting for the shared model, 1 ahead" in t for t in texts), texts
            first.close()  # the first tab goes: its run stops and the second one samples
            texts = progress_texts(second, lambda t: "step 4 of 4" in t or "step 5 of 5" in t, limit=180)
            assert any(t.startswith("Sampling the baseline grid: step") for t in texts), texts
        finally:
            second.close()
    finally:
        first.close()

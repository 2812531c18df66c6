"""8 dashboard sessions at the same time in one process, on different models, τ and pages.

8 headless Chromium contexts do not fit on a 2-core box in a minute, so the sessions are AppTest sessions
driven from 8 threads in this one process: they share what a real server shares between sessions —
st.cache_resource (the loaded models and the cached Generator, whose pruning hooks are the leakage risk)
and st.cache_data. Two sessions run live pruning with different specs while two others sample the unpruned
baseline. Every session is first run alone to record its numbers and sample grids; then st.cache_data is
cleared (the Generator stays cached and shared) and all 8 run at once: each must see exactly its own results
and none may error.

AppTest is not built for threads: each run installs a process-global mock Runtime and clears it again when it
finishes, which would pull the runtime out from under the other sessions. The ``shared_runtime`` fixture
installs one mock runtime for the whole test (as a server has one Runtime for all its sessions).
"""
from __future__ import annotations

import re
import threading
import time
from unittest.mock import MagicMock

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

import dtviz_app  # noqa: E402
from tests.factories import family_state, save_checkpoint  # noqa: E402
from tests.test_app import APP, TIMEOUT, steady_state_navigation  # noqa: E402,F401 — the autouse fixture

pytestmark = pytest.mark.slow


@pytest.fixture
def shared_runtime(monkeypatch):
    from streamlit import config
    from streamlit.runtime import Runtime
    from streamlit.runtime.caching.storage.dummy_cache_storage import MemoryCacheStorageManager
    from streamlit.runtime.media_file_manager import MediaFileManager
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1.util import build_mock_config_get_option

    runtime = MagicMock(spec=Runtime)
    runtime.media_file_mgr = MediaFileManager(MemoryMediaFileStorage("/mock/media"))
    runtime.cache_storage_manager = MemoryCacheStorageManager()
    try:
        from streamlit.runtime.dataframe_source_manager import DataframeSourceManager

        runtime.dataframe_source_mgr = DataframeSourceManager()
    except ImportError:
        pass
    monkeypatch.setattr(Runtime, "instance", classmethod(lambda cls: runtime))
    monkeypatch.setattr(Runtime, "exists", classmethod(lambda cls: True))
    # each run patches config.get_option and restores it on exit; with overlapping runs the restores interleave,
    # so pin the patched version for the whole test (monkeypatch restores the real one afterwards)
    monkeypatch.setattr(config, "get_option", build_mock_config_get_option({"global.appTest": True}))
    return runtime


def images(at: AppTest) -> dict[str, list[str]]:
    out = {}
    for h in at.get("html"):
        m = re.search(r'data-grid="([^"]+)"', h.proto.body)
        if m:
            out[m.group(1)] = re.findall(r'<img src="([^"]+)"', h.proto.body)
    return out


def snapshot(at: AppTest) -> dict:
    """What a user sees that could leak: every metric, every sample grid, the page title and errors."""
    return {"metrics": [(m.label, m.value) for m in at.metric], "grids": images(at),
            "titles": [t.value for t in at.title], "errors": [e.value for e in at.error],
            "warnings": [w.value for w in at.warning],
            "exceptions": [e.value for e in at.exception]}


def run_session(query: dict, page: str, page_query: dict | None = None) -> dict:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({k: str(v) for k, v in query.items()})
    at.run()
    at.query_params.update({k: str(v) for k, v in (page_query or {}).items()})
    at.switch_page(dtviz_app.view_path(page)).run()
    return snapshot(at)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    a = save_checkpoint(family_state("dit", num_classes=12, hidden=32, seed=3), str(root / "tiny_dit.pt"))
    b = save_checkpoint(family_state("repa", num_classes=7, hidden=48, seed=5), str(root / "tiny_repa.safetensors"),
                        wrapper="safetensors")
    m = root / "E.npy"
    np.save(m, np.random.default_rng(7).normal(size=(30, 16)).astype(np.float32))
    return str(a), str(b), str(m)


def sessions(models) -> dict[str, tuple]:
    a, b, m = models
    return {
        "builtin overview τ=0.01": ({"tau": 0.01}, "overview", None),
        "builtin variance τ=0.05": ({"tau": 0.05}, "variance", None),
        "tiny DiT magnitudes τ=0.02": ({"src": a, "tau": 0.02}, "magnitudes", None),
        "tiny REPA cosine τ=0.1": ({"src": b, "tau": 0.1}, "cosine", None),
        "matrix neighbours τ=0.3": ({"src": m, "tau": 0.3}, "neighbours", None),
        "pruning tail τ=0.2": ({}, "pruning", {"pr_n": 4, "pr_seed": 1, "pr_tau": 0.2}),
        "pruning head k=8": ({}, "pruning", {"pr_n": 4, "pr_seed": 2, "pr_mode": "head", "pr_by": "k", "pr_k": 8}),
        "baseline seed 1": ({}, "pruning", {"pr_n": 4, "pr_seed": 1, "pr_tau": 0.0001}),
    }


def run_at_once(jobs: dict, session) -> tuple[dict, dict, float]:
    """Run ``session(*args)`` for every job in its own thread, released together by a barrier:
    (results, failures, wall seconds)."""
    results, failures = {}, {}
    barrier = threading.Barrier(len(jobs))

    def worker(name, args):
        try:
            barrier.wait(timeout=60)
            results[name] = session(*args)
        except BaseException as err:  # noqa: BLE001 — reported by the caller
            failures[name] = f"{type(err).__name__}: {err}"

    threads = [threading.Thread(target=worker, args=item, name=item[0]) for item in jobs.items()]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    failures.update({t.name: "still running after 300 s" for t in threads if t.is_alive()})
    return results, failures, time.perf_counter() - started


def test_eight_concurrent_sessions_see_only_their_own_results(models, shared_runtime, monkeypatch, capsys):
    import streamlit as st

    plan = sessions(models)
    started = time.perf_counter()
    alone = {name: run_session(*args) for name, args in plan.items()}
    t_alone = time.perf_counter() - started
    for name, snap in alone.items():
        assert not snap["exceptions"] and not snap["errors"], (name, snap["errors"], snap["exceptions"])
        assert snap["metrics"], name
    for name in ("pruning tail τ=0.2", "pruning head k=8", "baseline seed 1"):
        assert set(alone[name]["grids"]) >= {"baseline", "pruned"}, name
    # the pruned grids differ from their baselines; the τ=1e-4 session prunes nothing (it is a baseline run)
    assert alone["pruning tail τ=0.2"]["grids"]["pruned"] != alone["pruning tail τ=0.2"]["grids"]["baseline"]
    assert alone["pruning head k=8"]["grids"]["pruned"] != alone["pruning head k=8"]["grids"]["baseline"]
    assert alone["baseline seed 1"]["grids"]["pruned"] == alone["baseline seed 1"]["grids"]["baseline"]

    from dtviz_app import cache as app_cache

    st.cache_data.clear()  # every sample is drawn again, concurrently, on the shared cached Generator
    app_cache.SAMPLES.clear()  # sampled grids live in their own byte-bounded cache
    import dtviz.evaluation.quality as quality

    real, inside, calls, lock = quality.sample_readout, [0, 0], [], threading.Lock()

    def counted(gen, labels, settings, prune=None, *args, **kwargs):
        with lock:
            inside[0] += 1
            inside[1] = max(inside[1], inside[0])
            calls.append((id(gen), prune))
        try:
            return real(gen, labels, settings, prune, *args, **kwargs)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(quality, "sample_readout", counted)
    results, failures, t_together = run_at_once(plan, run_session)
    monkeypatch.setattr(quality, "sample_readout", real)
    # the pruning sessions really sampled again, on one shared Generator, and overlapped in time
    assert len({g for g, _ in calls}) == 1 and sum(p is not None for _, p in calls) >= 2, calls
    assert inside[1] >= 2, "no two sampling requests overlapped"
    assert not failures, failures
    for name, snap in results.items():
        assert not snap["exceptions"] and not snap["errors"], (name, snap["errors"], snap["exceptions"])
        assert snap == alone[name], f"session {name!r} saw different results when run with 7 others"
    with capsys.disabled():
        print(f"\nconcurrency: 8 sessions alone in sequence {t_alone:.1f} s, all 8 at once {t_together:.1f} s; "
              f"identical results, no errors; {len(calls)} sampling runs, up to {inside[1]} at once on one Generator")


# ------------------------------------------------------------------------- the real server, 8 websocket clients

def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """`streamlit run app.py` once, on a free port (as tests/test_browser.py does)."""
    import os
    import subprocess
    import sys
    import urllib.request

    from tests.test_app import ROOT

    port = free_port()
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "PYTHONUNBUFFERED": "1"}
    os.makedirs(os.path.join(ROOT, "tests", "output"), exist_ok=True)
    log = open(os.path.join(ROOT, "tests", "output", "streamlit-concurrency.log"), "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 120
        while True:
            assert proc.poll() is None, f"streamlit exited early with code {proc.returncode}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            assert time.time() < deadline, "streamlit did not become healthy"
            time.sleep(0.3)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except Exception:  # noqa: BLE001
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def ws_session(port: int, query: str, page: str = "", timeout: float = 180) -> dict:
    """One browser-less session over Streamlit's own websocket protocol: send the first rerun request (URL query
    string + page) and read the page's elements until the script run finishes."""
    import hashlib

    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from websockets.sync.client import connect

    def fresh():
        return {"metrics": [], "errors": [], "exceptions": [], "grids": {}}

    out = fresh()
    with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None,
                 open_timeout=60) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = page
        ws.send(msg.SerializeToString())
        deadline = time.time() + timeout
        while True:
            fm = ForwardMsg()
            fm.ParseFromString(ws.recv(timeout=max(1.0, deadline - time.time())))
            kind = fm.WhichOneof("type")
            if kind == "delta" and fm.delta.WhichOneof("type") == "new_element":
                el = fm.delta.new_element
                what = el.WhichOneof("type")
                if what == "metric":
                    out["metrics"].append((el.metric.label, el.metric.body))
                elif what == "alert" and el.alert.format == el.alert.ERROR:
                    out["errors"].append(el.alert.body)
                elif what == "exception":
                    out["exceptions"].append(f"{el.exception.type}: {el.exception.message}")
                elif what == "html":
                    m = re.search(r'data-grid="([^"]+)"', el.html.body)
                    if m:
                        out["grids"][m.group(1)] = hashlib.sha1(el.html.body.encode()).hexdigest()
            elif kind == "script_finished":
                if fm.script_finished == fm.FINISHED_EARLY_FOR_RERUN:
                    out = fresh()  # the first run on a fresh server hands over to a rerun
                    continue
                out["status"] = int(fm.script_finished)
                return out


def test_eight_websocket_sessions_on_the_real_server(server, models, tmp_path, capsys):
    from urllib.parse import urlencode

    a, b, m = models
    plan = {
        "builtin overview τ=0.01": ({"tau": 0.01}, ""),
        "builtin variance τ=0.05": ({"tau": 0.05}, "variance"),
        "tiny DiT magnitudes τ=0.02": ({"src": a, "tau": 0.02}, "magnitudes"),
        "tiny REPA cosine τ=0.1": ({"src": b, "tau": 0.1}, "cosine"),
        "matrix neighbours τ=0.3": ({"src": m, "tau": 0.3}, "neighbours"),
        "pruning tail τ=0.2": ({"pr_n": 4, "pr_seed": 1, "pr_tau": 0.2}, "pruning"),
        "pruning head k=8": ({"pr_n": 4, "pr_seed": 2, "pr_mode": "head", "pr_by": "k", "pr_k": 8}, "pruning"),
        "baseline seed 3": ({"pr_n": 4, "pr_seed": 3, "pr_tau": 0.0001}, "pruning"),
        "baseline seed 4": ({"pr_n": 4, "pr_seed": 4, "pr_tau": 0.0001}, "pruning"),
    }
    plan = {name: (urlencode(q), page) for name, (q, page) in plan.items()}
    bad = str(tmp_path / "missing.pt")  # a hostile session alongside: it gets its sentence, the others keep working
    started = time.perf_counter()
    alone = {name: ws_session(server, *args) for name, args in plan.items()}
    t_alone = time.perf_counter() - started
    for name, snap in alone.items():
        assert snap["status"] == 0 and not snap["errors"] and not snap["exceptions"] and snap["metrics"], (name, snap)
    for name in ("pruning tail τ=0.2", "pruning head k=8", "baseline seed 3", "baseline seed 4"):
        assert {"baseline", "pruned"} <= set(alone[name]["grids"]), name
    assert alone["pruning tail τ=0.2"]["grids"]["pruned"] != alone["pruning tail τ=0.2"]["grids"]["baseline"]

    from streamlit.proto.BackMsg_pb2 import BackMsg
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{server}/_stcore/stream", subprotocols=["streamlit"]) as ws:
        msg = BackMsg()
        msg.clear_cache = True  # a hostile client: it clears only its own session (dtviz_app.cache.guard_shared_caches)
        ws.send(msg.SerializeToString())
        time.sleep(0.5)

    jobs = dict(plan, hostile=(urlencode({"src": bad}), ""))
    results, failures, t_together = run_at_once(jobs, lambda *args: ws_session(server, *args))
    assert not failures, failures
    hostile = results.pop("hostile")
    assert hostile["errors"] and "there is no readable file or folder" in hostile["errors"][0] and not hostile["exceptions"], hostile
    for name, snap in results.items():
        assert snap == alone[name], f"session {name!r} saw different results when run with {len(jobs) - 1} others"
    with capsys.disabled():
        print(f"\nreal server: {len(plan)} websocket sessions alone {t_alone:.1f} s, all at once (+1 hostile) "
              f"{t_together:.1f} s; identical results, no errors")

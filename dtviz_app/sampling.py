"""Sampled grids for the live pages: ``sample_run`` caches each (model, classes, settings, pruning) read-out in
``SAMPLES``, a byte-bounded LRU (MAX_SAMPLE_CACHE_BYTES) shared by every session, and gives each sampling request a
cancel token that stops it when its session ends or asks for something newer (``session_token``). ``SAMPLES`` lives
with the other caches in dtviz_app.cache (a changed model file drops its entries there) and is looked up at call time.

Library modules are imported inside the functions that use them: ``sample_run`` looks up
``dtviz.evaluation.quality.sample_readout`` at call time (the tests monkeypatch it there).
"""
from __future__ import annotations

import time

import streamlit as st

from dtviz.errors import DtvizInputError
from dtviz.sampling.queue import CancelToken, Cancelled
from dtviz.sources.budgets import check_sample_work
from dtviz_app import cache
from dtviz_app.cache import _hashable, canonical
from dtviz_app.constants import LOG


def sample_run(model_key: tuple, labels: tuple, steps: int, cfg_scale: float, seed: int, spec=None,
               sampler: str | None = None, size: int | None = None, pruned_guidance: float | None = None) -> dict:
    """quality.sample_readout for (model, classes, seed, steps, CFG, sampler[, size, pruning]), drift against the
    cached baseline of the same settings; the baseline (spec None) is itself one cached entry. Kept in ``SAMPLES``
    (bounded by MAX_SAMPLE_CACHE_BYTES, least recently used first out; arrays read-only, so a hit is the same
    images for every session and nobody can alter them). A progress bar shows the steps while it runs; a hit
    shows none. A failed or cancelled run is not cached."""
    key = (canonical(model_key), *(_hashable(v) for v in (labels, steps, cfg_scale, seed, spec, sampler, size,
                                                          pruned_guidance)))
    return cache.SAMPLES.get(key, lambda: _sample_run(model_key, labels, steps, cfg_scale, seed, spec, sampler, size,
                                                pruned_guidance))


def _sample_run(model_key: tuple, labels: tuple, steps: int, cfg_scale: float, seed: int, spec=None,
                sampler: str | None = None, size: int | None = None, pruned_guidance: float | None = None) -> dict:
    from dtviz.evaluation import quality
    from dtviz.evaluation.quality import classifier_for, template_matcher_for
    from dtviz.sampling.generate import SampleSettings

    gen, reason = cache._generator(*model_key)  # looked up at call time: the tests swap it
    if gen is None:
        raise DtvizInputError(reason)
    # the same positional arguments as the page's call, so this hits the baseline's cache entry
    base = None if spec is None else sample_run(model_key, labels, steps, cfg_scale, seed, None, sampler, size)["images"]
    if steps:
        check_sample_work(len(labels), int(steps))  # the page says so first; this guards every caller
    started = time.perf_counter()
    # pruned-c guidance (w): spec is then P of D + w·(D_c − D_P(c)), c itself stays whole (dtviz.sampling.samplers)
    settings = SampleSettings(steps=steps, cfg_scale=cfg_scale, seed=seed, sampler=sampler, size=size,
                              pruned_guidance=pruned_guidance)
    bar = st.empty()
    what = "baseline" if spec is None else "pruned"
    token = session_token()  # stops this run when the session ends or asks for something newer

    def on_wait(ahead: int) -> None:  # the shared model serves sessions in arrival order (dtviz.sampling.queue)
        bar.progress(0.0, text=f"Sampling the {what} grid: waiting for the shared model, {ahead} ahead")

    def on_step(i: int, n: int) -> None:  # SD3 / Flux on CPU take minutes: show where the run is
        if i % max(1, n // 20) == 0:
            bar.progress(min(i / max(n, 1), 1.0), text=f"Sampling the {what} grid: step {i + 1} of {n}")

    try:
        out = quality.sample_readout(gen, labels, settings, spec, base, classifier_for(gen.source), on_step=on_step,
                                     matcher=template_matcher_for(gen.source), cancel=token, on_wait=on_wait,
                                     client=client_id())
    except Cancelled as err:  # the model is free for the next session at once; the log says where it stopped
        LOG.warning("%d × %s steps (%s): %s", len(labels), steps, what, err)
        raise
    finally:
        bar.empty()
        forget_token(token)
    LOG.info("sampled %d × %d %s steps (%s) in %.2f s", len(labels), steps, sampler or "default",
             "baseline" if spec is None else spec.label(), time.perf_counter() - started)
    return out


_TOKEN_KEY = "_dtviz_sampling_token"  # in the session's own state: its sampling request in flight


def client_id() -> tuple:
    """Who asks, for the model's queue (dtviz.sampling.queue.FairQueue: clients take turns, one waiting run each): the
    browser — its peer address and Streamlit's per-browser XSRF cookie, so that a visitor's tabs count once — or,
    without them, this session."""
    import secrets

    try:
        ip = st.context.ip_address
    except Exception:  # noqa: BLE001 — no browser context (tests)
        ip = None
    try:
        cookie = st.context.cookies.get("_streamlit_xsrf")
    except Exception:  # noqa: BLE001
        cookie = None
    if not (isinstance(ip, str) and ip and isinstance(cookie, str) and cookie):
        # no browser behind it (a bare test session) or no cookie: this session is the client
        cookie = st.session_state.setdefault("_dtviz_client", secrets.token_hex(8))
    return ("visitor", ip, cookie)


def session_token() -> CancelToken | None:
    """A cancel token for this session's new sampling request (None outside a script run). It replaces, and
    cancels, the session's previous one, and it stops the run at the next step when the session is gone from
    the server or has a newer run (rerun / stop) pending."""
    from streamlit.runtime import Runtime
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx(suppress_warning=True)
    if ctx is None:
        return None
    session_id, requests = ctx.session_id, ctx.script_requests

    def should_stop() -> str | None:
        try:
            if Runtime.exists() and not Runtime.instance().is_active_session(session_id):
                return "its session ended"
            # a stop, or a rerun that would interrupt this run, waiting at the next yield point: the same test as
            # Streamlit 1.67's ScriptRequests.on_scriptrunner_yield (a fragment rerun queued behind a full run is not)
            state = getattr(requests, "_state", None)
            if state is not None and state.name == "STOP":
                return "its session stopped"
            if state is not None and state.name == "RERUN":
                from streamlit.runtime.scriptrunner_utils.script_requests import \
                    _fragment_run_should_not_preempt_script as waits

                data = requests._rerun_data
                if not waits(data.fragment_id_queue, data.is_fragment_scoped_rerun):
                    return "a newer request of the same session arrived"
        except Exception:  # noqa: BLE001 — never stop a run because the check itself failed
            return None
        return None

    token = CancelToken(should_stop)
    previous, st.session_state[_TOKEN_KEY] = st.session_state.get(_TOKEN_KEY), token
    if previous is not None:
        previous.cancel("a newer request of the same session replaced it")
    return token


def forget_token(token: CancelToken | None) -> None:
    if token is not None and st.session_state.get(_TOKEN_KEY) is token:
        del st.session_state[_TOKEN_KEY]

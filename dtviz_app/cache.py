"""Everything the dashboard computes once and shares: opened models (``st.cache_resource``) and arrays,
statistics and figures (``st.cache_data``), keyed by everything that changes them.

A checkpoint rewritten on disk (a training run's latest.pt) clears the caches (``refresh_if_changed``,
via ``safe_load``). Library modules are imported inside the functions that use them: ``sample_run`` looks up
``dtviz.generate.sample_readout`` at call time (the tests monkeypatch it there).
"""
from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from dtviz.errors import DtvizInputError
from dtviz_app.constants import LOG

if TYPE_CHECKING:
    from dtviz_app.context import Ctx


# ================================================================================ caching

def resolved_device(device: str) -> str:
    from dtviz.device import resolve_device

    return str(resolve_device(None if device in (None, "", "auto") else device))


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def load_source(source: str, family: str, device: str, labels: str | None = None):
    """One opened Source per (source, family, device, labels); never mutated by the app."""
    import dtviz

    return dtviz.load(source, family=family, device=device, labels=labels)


@st.cache_data(max_entries=32, ttl=3600, show_spinner=False)
def embeddings(source: str, family: str, device: str, labels: str | None, t: float | None, part: str) -> np.ndarray:
    """E (N×d float32) at (t, part); the key is everything that changes it."""
    return load_source(source, family, device, labels).embeddings(t=t, part=part)


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Computing statistics…")
def condition_stats(source: str, family: str, device: str, labels: str | None, t: float | None, part: str):
    """ConditionStats fitted on E: everything that does not depend on τ (at_tau is cheap)."""
    from dtviz.stats import ConditionStats

    return ConditionStats().fit(embeddings(source, family, device, labels, t, part))


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Ordering classes by clustering…")
def cluster_order(source: str, family: str, device: str, labels: str | None, t: float | None, part: str) -> np.ndarray:
    from dtviz import plots

    return np.asarray(plots.cluster_order(condition_stats(source, family, device, labels, t, part).cosine()))


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def projection(key: tuple, tau: float, top_head: int, method: str, panel: str, seed: int = 0) -> np.ndarray:
    """One panel of the head-vs-tail view in 2-D, cached per (model, t, part, τ, method, panel)."""
    from dtviz.projection import head_tail_views, project

    stats = condition_stats(*key)
    views = head_tail_views(embeddings(*key), stats.at_tau(tau)["head_dims"], top_head)
    return project(views[panel], method, seed)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def compare_row(source: str, device: str, part: str, tau: float) -> dict:
    """One ``dtviz table`` row (cli.table_rows, so the numbers match the CLI), each model at its own t0."""
    from dtviz.cli import table_rows

    return table_rows([safe_load(source, "auto", device, refresh=False)], None, part, tau)[0]


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Computing the statistics over t…")
def series_over_t(key: tuple, n: int) -> dict:
    """dynamics.stats_over_t on the (source, family, device, labels) of ``key``, for its part, at n timesteps."""
    from dtviz.dynamics import stats_over_t

    source, family, device, labels, _t, part = key
    return stats_over_t(load_source(source, family, device, labels), None, part, n=n)


@st.cache_data(max_entries=16, ttl=600, show_spinner="Reading the training checkpoints…")
def series_over_training(folder: str, part: str) -> dict:
    """dynamics.snapshot_series of a folder (each checkpoint at its own t0); re-read after 10 minutes."""
    from dtviz.dynamics import snapshot_series

    return snapshot_series(os.path.expanduser(folder), None, part)


@st.cache_resource(max_entries=2, show_spinner="Building the model for sampling…")
def _generator(source: str, family: str, device: str, labels: str | None):
    """(Generator, None) or (None, the library's reason it cannot sample). One per model, shared by all
    sessions: Generator.sample holds a lock, so concurrent sessions take turns and never see each other's
    pruning hooks. The failure is cached too (a latent model is built once to find it needs a VAE)."""
    from dtviz.generate import Generator

    try:
        return Generator(load_source(source, family, device, labels)), None
    except DtvizInputError as err:
        return None, str(err)


def generator(ctx: "Ctx"):
    """(Generator, None) for a model that can sample, else (None, why not) — e.g. a matrix's sample_note."""
    if not ctx.info.can_sample:
        return None, ctx.info.sample_note or f"{ctx.info.name} cannot generate samples."
    return _generator(*ctx.model_key)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def sample_run(model_key: tuple, labels: tuple, steps: int, cfg_scale: float, seed: int, spec=None,
               sampler: str | None = None, size: int | None = None) -> dict:
    """generate.sample_readout for (model, classes, seed, steps, CFG, sampler[, size, pruning]), drift against the
    cached baseline of the same settings; the baseline (spec None) is itself one cached entry. A progress bar shows
    the steps while it runs (created in here, so a cache hit replays it as the empty placeholder it ends as)."""
    from dtviz.generate import SampleSettings, sample_readout
    from dtviz.quality import classifier_for, template_matcher_for

    gen, reason = _generator(*model_key)
    if gen is None:
        raise DtvizInputError(reason)
    # the same positional arguments as the page's call, so this hits the baseline's cache entry
    base = None if spec is None else sample_run(model_key, labels, steps, cfg_scale, seed, None, sampler, size)["images"]
    started = time.perf_counter()
    settings = SampleSettings(steps=steps, cfg_scale=cfg_scale, seed=seed, sampler=sampler, size=size)
    bar = st.empty()
    what = "baseline" if spec is None else "pruned"

    def on_step(i: int, n: int) -> None:  # SD3 / Flux on CPU take minutes: show where the run is
        if i % max(1, n // 20) == 0:
            bar.progress(min(i / max(n, 1), 1.0), text=f"Sampling the {what} grid: step {i + 1} of {n}")

    try:
        out = sample_readout(gen, labels, settings, spec, base, classifier_for(gen.source), on_step=on_step,
                             matcher=template_matcher_for(gen.source))
    finally:
        bar.empty()
    LOG.info("sampled %d × %d %s steps (%s) in %.2f s", len(labels), steps, sampler or "default",
             "baseline" if spec is None else spec.label(), time.perf_counter() - started)
    return out


@st.cache_data(max_entries=8, ttl=3600, show_spinner="Drawing the heatmap…")
def cosine_heatmap(key: tuple, order: str, names: list[str], context: dict, height: int = 720):
    """The full N×N heatmap figure (building it takes ~0.5–1 s at N = 256–1000, so it is cached)."""
    from dtviz import plots

    idx = cluster_order(*key) if order == "cluster" else None
    return plots.cosine_heatmap(condition_stats(*key).cosine(), names, context, order=idx, height=height), idx


@st.cache_data(ttl=60, show_spinner=False)
def cached_pipelines() -> list[str]:
    """Repo ids of the DiT pipelines in the local Hugging Face cache ([] when the adapter is absent)."""
    try:
        from dtviz.sources.diffusers_dit import list_cached_pipelines
    except Exception:  # the diffusers adapter is optional
        return []
    try:
        return list(dict.fromkeys(p["repo_id"] for p in list_cached_pipelines()))
    except Exception as err:  # an unreadable cache must not break the sidebar
        LOG.warning("listing the Hugging Face cache failed: %s", err)
        return []


_STAMPS: dict[str, tuple] = {}  # process-wide, like the caches it guards


def file_stamp(source: str) -> tuple | None:
    """(mtime, size) of a path source (for a folder: of the files in it and one level down), None otherwise."""
    path = os.path.expanduser(source)
    try:
        if os.path.isfile(path):
            st_ = os.stat(path)
            return (st_.st_mtime_ns, st_.st_size)
        if os.path.isdir(path):
            stamps = []
            for entry in os.scandir(path):
                inner = os.scandir(entry.path) if entry.is_dir() else ()
                for f in [entry, *inner]:
                    if f.is_file():
                        stamps.append((f.stat().st_mtime_ns, f.stat().st_size))
            return (len(stamps), max(stamps, default=(0, 0)), sum(s for _, s in stamps))
    except OSError:
        return None
    return None


def refresh_if_changed(source: str) -> None:
    """A checkpoint overwritten on disk (e.g. a training run's latest.pt) must not be served from the caches."""
    stamp = file_stamp(source)
    if stamp is None:
        return
    old = _STAMPS.get(source)
    _STAMPS[source] = stamp
    if old is not None and old != stamp:
        LOG.info("%s changed on disk: clearing the cached models and arrays", source)
        load_source.clear()
        _generator.clear()
        st.cache_data.clear()


def safe_load(source: str, family: str, device: str, labels: str | None = None, refresh: bool = True):
    """load_source, with any failure turned into one sentence (DtvizInputError)."""
    if refresh:
        refresh_if_changed(source)
    try:
        return load_source(source, family, device, labels)
    except DtvizInputError:
        raise
    except Exception as err:  # a library bug or an exotic file: one line for the user, the traceback in the log
        LOG.exception("loading %r failed", source)
        raise DtvizInputError(f"could not open {source!r}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")) from err

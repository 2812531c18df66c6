"""Everything the dashboard computes once and shares: opened models (``st.cache_resource``), the big arrays
(E, the statistics with the N×N cosine matrix, cluster orders: ``dtviz.serving.arraycache.ARRAYS``, one read-only copy
each, bounded in bytes by ``budgets.MAX_CACHE_BYTES``), heatmap figures (``FIGURES``, a byte-bounded LRU:
MAX_FIGURE_CACHE_BYTES), sampled grids (``SAMPLES``, filled by dtviz_app.sampling: MAX_SAMPLE_CACHE_BYTES) and small
results (``st.cache_data``).

Every key starts with the source's identity (``arraycache.source_identity``: resolved path + (mtime, size)), so
the spellings of one file are one entry and a rewritten file (a training run's latest.pt) is a new one;
``refresh_if_changed`` then drops only that source's entries. No client can empty the caches of the others
(``guard_shared_caches``: Streamlit's ``clear_cache`` back-message clears only the sender's session state).
"""
from __future__ import annotations

import contextlib
import copy
import os
import pickle

import numpy as np
import streamlit as st

from dtviz.serving.arraycache import ARRAYS, ByteLRU, source_identity
from dtviz.sources.budgets import MAX_DYNAMICS_FILES, MAX_PROJECTION_ROWS, evenly_spaced, shown_note
from dtviz.errors import DtvizInputError
from dtviz_app.constants import LOG


# ================================================================================ caching

def resolved_device(device: str) -> str:
    from dtviz.models.device import resolve_device

    return str(resolve_device(None if device in (None, "", "auto") else device))


def canonical(key: tuple) -> tuple:
    """(source, …) -> ((resolved source, stamp), …): what every cache below is keyed by."""
    return (source_identity(key[0]), *key[1:])


def load_source(source: str, family: str, device: str, labels: str | None = None):
    """One opened Source per (resolved source and stamp, family, device, labels); never mutated by the app."""
    (real, stamp) = source_identity(source)
    return _load_source(real, stamp, family, device, labels)


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _load_source(source: str, stamp, family: str, device: str, labels: str | None = None):
    import dtviz
    from dtviz_app.reading_controls import load_kwargs

    # labels: a labels / prompts string, or a Reading that also carries guidance, null_row, num_heads
    return dtviz.load(source, family=family, device=device, **load_kwargs(labels))


def embeddings(source: str, family: str, device: str, labels: str | None, t: float | None, part: str) -> np.ndarray:
    """E (N×d float32, read-only) at (t, part); one copy per resolved source, shared by every session."""
    ident = source_identity(source)
    return ARRAYS.get((ident, "E", family, device, labels, t, part),
                      lambda: np.ascontiguousarray(_load_source(*ident, family, device, labels).embeddings(t=t, part=part)))


def condition_stats(source: str, family: str, device: str, labels: str | None, t: float | None, part: str):
    """ConditionStats fitted on E (with the N×N cosine matrix up to 10 000 rows): one read-only copy per
    resolved source, never one per spelling or per reader."""
    from dtviz.analysis.stats import ConditionStats

    key = (source_identity(source), "stats", family, device, labels, t, part)
    with st.spinner("Computing statistics…") if key not in ARRAYS else contextlib.nullcontext():
        return ARRAYS.get(key, lambda: ConditionStats().fit(embeddings(source, family, device, labels, t, part)))


def cluster_order(source: str, family: str, device: str, labels: str | None, t: float | None, part: str) -> np.ndarray:
    from dtviz import plots

    key = (source_identity(source), "order", family, device, labels, t, part)
    return ARRAYS.get(key, lambda: np.asarray(
        plots.cluster_order(condition_stats(source, family, device, labels, t, part).cosine())))


PROJECTIONS = None  # dtviz.analysis.projection.ProjectionCache, made on first use (see projection)


def projection(key: tuple, tau: float, top_head: int, method: str, panel: str, seed: int = 0,
               progress=None) -> np.ndarray:
    """One panel of the head-vs-tail view in 2-D, cached per (resolved model and stamp, t, part, τ, method,
    panel); panel (a) uses every dim whatever τ, so it is cached without τ. ``progress(done, total)``:
    t-SNE's iterations while it computes. Kept in the library's ProjectionCache (bounded LRU, one
    computation per key across sessions), not st.cache_data, which may not call the page's progress bar."""
    global PROJECTIONS
    from dtviz.analysis.projection import PANEL_FULL, ProjectionCache

    if PROJECTIONS is None:
        PROJECTIONS = ProjectionCache(maxsize=64)  # 64 panels of N×2 float64: 1 MB for 1000 classes
    ckey = canonical(key)
    if panel == PANEL_FULL:
        tau, top_head = None, None
    cache_key = (ckey, None if tau is None else round(float(tau), 12), top_head, str(method), str(panel), int(seed))
    return PROJECTIONS.get_or_compute(cache_key, lambda: _projection(ckey, tau, top_head, method, panel, seed, progress))


def _projection(ckey: tuple, tau: float | None, top_head: int | None, method: str, panel: str, seed: int = 0,
                progress=None) -> np.ndarray:
    from dtviz.analysis.projection import PANEL_FULL, head_tail_views, project

    key = (ckey[0][0], *ckey[1:])
    if panel == PANEL_FULL:
        X = embeddings(*key)
    else:
        stats = condition_stats(*key)
        X = head_tail_views(embeddings(*key), stats.at_tau(tau)["head_dims"], top_head)[panel]
    rows = projection_rows(len(X), method)  # over the cap: an evenly spaced sample; the other rows are NaN (not drawn)
    if len(rows) == len(X):
        return project(X, method, seed, progress=progress)
    out = np.full((len(X), 2), np.nan, dtype=np.float64)
    out[rows] = project(X[rows], method, seed, progress=progress)
    return out


def projection_rows(n: int, method: str) -> np.ndarray:
    """The rows a projection of ``n`` rows by ``method`` computes (all up to budgets.MAX_PROJECTION_ROWS)."""
    return evenly_spaced(n, MAX_PROJECTION_ROWS.get(method, min(MAX_PROJECTION_ROWS.values())))


def projection_note(n: int, method: str) -> str | None:
    """'2,000 shown of 20,000 rows: …' when the projection subsamples, else None."""
    shown = len(projection_rows(n, method))
    return None if shown == n else shown_note(shown, n, "rows", "MAX_PROJECTION_ROWS")


def compare_row(source: str, device: str, part: str, tau: float) -> dict:
    """One ``dtviz table`` row (cli.table_rows, so the numbers match the CLI), each model at its own t0."""
    return _compare_row(source_identity(source), device, part, tau)


@st.cache_data(max_entries=64, ttl=3600, show_spinner=False)
def _compare_row(ident: tuple, device: str, part: str, tau: float) -> dict:
    from dtviz.cli.main import table_rows

    return table_rows([safe_load(ident[0], "auto", device, refresh=False)], None, part, tau)[0]


def series_over_t(key: tuple, n: int) -> dict:
    """dynamics.stats_over_t on the (source, family, device, labels) of ``key``, for its part, at n timesteps."""
    return _series_over_t(canonical(key), n)


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Computing the statistics over t…")
def _series_over_t(ckey: tuple, n: int) -> dict:
    from dtviz.analysis.dynamics import stats_over_t

    (source, _stamp), family, device, labels, _t, part = ckey
    return stats_over_t(load_source(source, family, device, labels), None, part, n=n)


@st.cache_data(max_entries=16, ttl=600, show_spinner="Reading the training checkpoints…")
def series_over_training(folder: str, part: str) -> dict:
    """dynamics.snapshot_series of a folder (each checkpoint at its own t0); re-read after 10 minutes."""
    from dtviz.analysis.dynamics import snapshot_series

    from dtviz.analysis.dynamics import snapshot_paths

    paths = snapshot_paths(os.path.expanduser(folder))
    keep = evenly_spaced(len(paths), MAX_DYNAMICS_FILES)  # each file is opened: one request reads at most the cap
    series = snapshot_series([paths[i] for i in keep], None, part)
    if len(keep) < len(paths):
        series["note"] = shown_note(len(keep), len(paths), "checkpoints", "MAX_DYNAMICS_FILES")
    return series


def _generator(source: str, family: str, device: str, labels: str | None):
    """The shared Generator of a model, by its resolved source and stamp (``_generator_for``)."""
    return _generator_for(*source_identity(source), family, device, labels)


@st.cache_resource(max_entries=2, show_spinner="Building the model for sampling…")
def _generator_for(source: str, stamp, family: str, device: str, labels: str | None):
    """(Generator, None) or (None, the library's reason it cannot sample). One per model, shared by all
    sessions: Generator.sample holds a lock, so concurrent sessions take turns and never see each other's
    pruning hooks. The failure is cached too (a latent model is built once to find it needs a VAE)."""
    from dtviz.sampling.generate import Generator

    try:
        return Generator(_load_source(source, stamp, family, device, labels)), None
    except DtvizInputError as err:
        return None, str(err)


# Byte budgets of the two caches of results (not st.cache_data, which counts entries, not bytes):
MAX_SAMPLE_CACHE_BYTES = 512 * 2 ** 20  # dtviz_app.sampling's read-outs, weighed by their arrays' nbytes (the grids)
MAX_FIGURE_CACHE_BYTES = 256 * 2 ** 20  # cosine heatmaps, weighed by their pickled length (z or the encoded image)
SAMPLES = ByteLRU(MAX_SAMPLE_CACHE_BYTES)  # one read-only copy per key, shared by every session


def _pickled_size(value) -> int:
    return len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


FIGURES = ByteLRU(MAX_FIGURE_CACHE_BYTES, sizeof=_pickled_size)


def _hashable(value):
    """``value`` if it can be a dict key (tuples, frozen dataclasses), else its repr."""
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


def cosine_heatmap(key: tuple, order: str, names: list[str], context: dict, height: int = 720):
    """(figure, order) of the full N×N heatmap (building it takes ~0.5–1 s at N = 256–1000, so it is cached in
    ``FIGURES``, bounded by MAX_FIGURE_CACHE_BYTES). Each call gets its own copy of the figure, as with
    st.cache_data: a page that restyles it cannot change what other sessions see."""
    ckey = canonical(key)
    cache_key = (ckey, order, _hashable(tuple(names)), _hashable(repr(sorted(context.items(), key=str))), height)
    with st.spinner("Drawing the heatmap…") if cache_key not in FIGURES else contextlib.nullcontext():
        return copy.deepcopy(FIGURES.get(cache_key, lambda: _cosine_heatmap(ckey, order, names, context, height)))


def _cosine_heatmap(ckey: tuple, order: str, names: list[str], context: dict, height: int = 720):
    from dtviz import plots

    key = (ckey[0][0], *ckey[1:])
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
    return source_identity(source)[1]


def refresh_if_changed(source: str, family: str | None = None, device: str | None = None,
                       labels: str | None = None) -> None:
    """A checkpoint overwritten on disk (e.g. a training run's latest.pt) is a new key everywhere (its stamp);
    this frees the old copy: that source's arrays, and its opened model when (family, device, labels) are
    known. Only samples (keyed by the model's name) are cleared for every model, and only when a model
    file really changed on disk; nothing here runs for a file that did not change."""
    real, stamp = source_identity(source)
    if stamp is None:
        return
    old = _STAMPS.get(real)
    _STAMPS[real] = stamp
    if old is not None and old != stamp:
        LOG.info("%s changed on disk: dropping its cached model and arrays", os.path.basename(real))
        ARRAYS.drop(lambda k: k[0] == (real, old))
        if family is not None:
            _load_source.clear(real, old, family, device, labels)
            _generator_for.clear(real, old, family, device, labels)
        SAMPLES.drop(lambda k: k[0][0] == (real, old))
        FIGURES.drop(lambda k: k[0][0] == (real, old))


def safe_load(source: str, family: str, device: str, labels: str | None = None, refresh: bool = True):
    """load_source, with any failure turned into one sentence (DtvizInputError)."""
    if refresh:
        refresh_if_changed(source, family, device, labels)
    try:
        return load_source(source, family, device, labels)
    except DtvizInputError:
        raise
    except Exception as err:  # a library bug or an exotic file: one line for the user, the traceback in the log
        LOG.exception("loading %r failed", source)
        raise DtvizInputError(f"could not open {source!r}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")) from err


# ================================================================================ one client, one session

def guard_shared_caches() -> None:
    """Streamlit's ``clear_cache`` back-message (any client can send it) clears st.cache_data and
    st.cache_resource for every session of the server; here it clears only the sender's session state (and
    nothing of ours: the array cache is not Streamlit's). Installed once at import, before any session runs."""
    from streamlit.runtime.app_session import AppSession

    if getattr(AppSession._handle_clear_cache_request, "_dtviz_guard", False):
        return

    def clear_own_session_only(self) -> None:
        LOG.info("a client asked to clear the server's caches: cleared its own session state only")
        self._session_state.clear()

    clear_own_session_only._dtviz_guard = True
    AppSession._handle_clear_cache_request = clear_own_session_only


guard_shared_caches()

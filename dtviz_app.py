"""Streamlit glue shared by app.py and every page: the sidebar (source and settings), caching, URL state,
figure display with downloads, and report export.

This is the only module of the dashboard that knows about session state and query parameters; the pages
only compose ``dtviz`` library calls and the figure builders of ``dtviz.plots``. The core package
``dtviz/`` never imports streamlit.

URL state: every setting that changes a view is mirrored in ``st.query_params`` (global keys in
``GLOBAL_KEYS``, page keys prefixed per page, e.g. ``cos_order``). A value that equals its default is
left out of the URL. A URL value is adopted when it differs from what this session last wrote (first
load, a pasted link); a missing parameter never resets a setting (page switches may drop the query
string; the next run writes it back).
"""
from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import streamlit as st

from dtviz.errors import DtvizInputError
from dtviz.sources.matrix import MAX_UPLOAD_BYTES

LOG = logging.getLogger("dtviz.app")

FAMILY_CHOICES = ("auto", "dit", "sit", "repa", "lightningdit", "mdt", "mg")
PARTS = ("y+t", "y", "t")
PART_LABELS = {"y+t": "y+t", "y": "y only", "t": "t only"}
SOURCE_KINDS = ("builtin", "path", "hf", "upload")
SOURCE_LABELS = {"builtin": "Built-in glyph model", "path": "Local checkpoint / folder",
                 "hf": "Hugging Face cache", "upload": "Upload a matrix"}
UPLOAD_TYPES = ["npy", "npz", "csv", "tsv", "txt", "pt", "pth", "safetensors"]
UPLOAD_LIMIT_MB = MAX_UPLOAD_BYTES // 2 ** 20  # the uploader label and max_upload_size; the check is the library's
UPLOAD_ROOT = os.path.join(tempfile.gettempdir(), "dtviz-uploads")
DEFAULT_TAU = 0.01
DEFAULT_K = 10
# Log-spaced "nice" thresholds for the τ slider: 1, 1.5, 2, 3, 5, 7 per decade from 1e-4 to 100.
TAU_GRID = tuple(float(f"{m * 10.0 ** e:.6g}") for e in range(-4, 2) for m in (1, 1.5, 2, 3, 5, 7)) + (100.0,)
TAU_MIN, TAU_MAX = 1e-6, 1e3

GLOBAL_KEYS = ("src", "fam", "dev", "t", "part", "thr", "tau", "k")
PAGE_PREFIXES = ("cos_", "mag_", "var_", "proj_", "cmp_", "dyn_", "nn_", "pr_")


# =============================================================================== URL state

def _last() -> dict:
    return st.session_state.setdefault("_url_last", {})


def url_seed(key: str, default: Any, parse: Callable[[str], Any] = str) -> bool:
    """Before the widget ``key`` is created: take the URL's value when the URL changed it, else keep the
    session's value, else the default. Unparseable URL values are ignored (and rewritten at the end).
    Returns True when the URL's value was adopted."""
    ss = st.session_state
    raw = st.query_params.get(key)
    if raw is not None and raw != _last().get(key):
        _last()[key] = raw
        try:
            ss[key] = parse(raw)
            return True
        except (ValueError, TypeError, DtvizInputError):
            LOG.info("ignored URL value %s=%r", key, raw)
    if key not in ss:
        ss[key] = default
    return False


def url_store(key: str, value: Any, default: Any, fmt: Callable[[Any], str] = str) -> None:
    """After the widget: write its value to the URL (or remove it when it is the default)."""
    if value is None or value == default:
        if key in st.query_params:
            del st.query_params[key]
        _last()[key] = None
        return
    text = fmt(value)
    if st.query_params.get(key) != text:
        st.query_params[key] = text
    _last()[key] = text


def bound(widget: Callable, key: str, default: Any, *, parse: Callable[[str], Any] = str,
          fmt: Callable[[Any], str] = str, **kwargs) -> Any:
    """A widget whose value lives in the URL under ``key``: ``bound(st.radio, "cos_order", "id", options=…)``."""
    url_seed(key, default, parse)
    current = st.session_state.get(key)
    options = kwargs.get("options")
    if options is not None:  # a value from another model / page state that this widget cannot show
        options = list(options)
        if isinstance(current, list):
            st.session_state[key] = [v for v in current if v in options]
        elif current not in options:
            st.session_state[key] = default if default in options else options[0]
    elif isinstance(current, (int, float)) and not isinstance(current, bool):  # keep numbers inside the widget's range
        lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
        if lo is not None and current < lo:
            st.session_state[key] = type(current)(lo)
        elif hi is not None and current > hi:
            st.session_state[key] = type(current)(hi)
    value = widget(key=key, **kwargs)
    url_store(key, value, default, fmt)
    return value


def choice(options) -> Callable[[str], Any]:
    """A URL parser accepting only one of ``options`` (compared as text)."""
    options = list(options)

    def parse(raw: str):
        for opt in options:
            if str(opt) == raw:
                return opt
        raise ValueError(raw)

    return parse


def parse_bool(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def fmt_bool(v: bool) -> str:
    return "1" if v else "0"


def parse_ints(raw: str) -> list[int]:
    return [int(x) for x in raw.split(",") if x.strip()]


def ids_below(n: int) -> Callable[[str], list[int]]:
    """A URL parser for comma-separated class ids in 0..n-1."""
    def parse(raw: str) -> list[int]:
        ids = list(dict.fromkeys(parse_ints(raw)))
        if any(not 0 <= i < n for i in ids):
            raise ValueError(raw)
        return ids

    return parse


def int_in(lo: int, hi: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        v = int(float(raw))
        if v < lo or (hi is not None and v > hi):
            raise ValueError(raw)
        return v

    return parse


def fmt_ints(v) -> str:
    return ",".join(str(int(x)) for x in v)


def parse_positive(raw: str) -> float:
    v = float(raw)
    if not (math.isfinite(v) and TAU_MIN <= v <= TAU_MAX):
        raise ValueError(raw)
    return v


def fmt_float(v: float) -> str:
    return f"{float(v):.6g}"


def prune_url(page_prefix: str | None) -> None:
    """Drop query parameters that belong to other pages (their widgets are gone)."""
    for key in list(st.query_params.keys()):
        if key.startswith(PAGE_PREFIXES) and not (page_prefix and key.startswith(page_prefix)):
            del st.query_params[key]
            _last().pop(key, None)


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
               sampler: str | None = None) -> dict:
    """generate.sample_readout for (model, classes, seed, steps, CFG, sampler[, pruning]), drift against the
    cached baseline of the same settings; the baseline (spec None) is itself one cached entry."""
    from dtviz.generate import SampleSettings, sample_readout
    from dtviz.quality import classifier_for

    gen, reason = _generator(*model_key)
    if gen is None:
        raise DtvizInputError(reason)
    # the same positional arguments as the page's call, so this hits the baseline's cache entry
    base = None if spec is None else sample_run(model_key, labels, steps, cfg_scale, seed, None, sampler)["images"]
    started = time.perf_counter()
    settings = SampleSettings(steps=steps, cfg_scale=cfg_scale, seed=seed, sampler=sampler)
    out = sample_readout(gen, labels, settings, spec, base, classifier_for(gen.source))
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


# ================================================================================ context

@dataclass
class Ctx:
    """Everything a page needs: the opened source, the settings, and cached accessors."""

    source_key: str
    family: str
    device: str
    labels: str | None
    source: Any
    t: float | None
    part: str
    threshold: str  # "tau" or "topk"
    tau_setting: float
    k: int
    _memo: dict = field(default_factory=dict, repr=False)

    # --- cached data --------------------------------------------------------------------------------
    @property
    def key(self) -> tuple:
        return (self.source_key, self.family, self.device, self.labels, self.t, self.part)

    @property
    def model_key(self) -> tuple:
        """(source, family, device, labels): what ``load_source`` and ``generator`` are cached by."""
        return (self.source_key, self.family, self.device, self.labels)

    @property
    def E(self) -> np.ndarray:
        if "E" not in self._memo:
            self._memo["E"] = embeddings(*self.key)
        return self._memo["E"]

    @property
    def stats(self):
        if "stats" not in self._memo:
            self._memo["stats"] = condition_stats(*self.key)
        return self._memo["stats"]

    @property
    def tau(self) -> float:
        """τ in force: the setting, or in top-k mode the k-th largest |c̄_i| (so the head is the top k)."""
        if self.threshold != "topk":
            return self.tau_setting
        if "tau_k" not in self._memo:
            from dtviz.stats import topk_dims

            mv = self.stats.mean_vector_
            head = topk_dims(mv, self.k)
            self._memo["tau_k"] = float(np.abs(mv[head]).min()) if head.size else float("inf")
        return self._memo["tau_k"]

    @property
    def at_tau(self) -> dict:
        if "at_tau" not in self._memo:
            self._memo["at_tau"] = self.stats.at_tau(self.tau)
        return self._memo["at_tau"]

    @property
    def head(self) -> np.ndarray:
        return np.asarray(self.at_tau["head_dims"], dtype=np.int64)

    @property
    def table_row(self) -> dict:
        if "row" not in self._memo:
            self._memo["row"] = self.stats.table_row()
        return self._memo["row"]

    # --- descriptions -------------------------------------------------------------------------------
    @property
    def info(self):
        return self.source.info

    @property
    def names(self) -> list[str]:
        return list(self.source.class_names)

    @property
    def model_label(self) -> str:
        return f"{self.info.name} ({self.info.family.label})"

    @property
    def t_text(self) -> str:
        conv = self.info.family.convention
        if conv is None or self.t is None:
            return "no t (matrix)"
        where = " (t0, noise)" if self.t == conv.t0 else (" (data end)" if self.t == conv.data_at else "")
        return f"t = {self.t:g}{where}"

    @property
    def tau_text(self) -> str:
        if self.threshold == "topk":
            return f"top-{self.k} (τ = {self.tau:.4g})"
        return f"τ = {self.tau:g}"

    @property
    def title_context(self) -> str:
        """What every title says: model, t, part, τ."""
        return f"{self.model_label} · {self.t_text} · part {self.part} · {self.tau_text}"

    def plot_context(self, with_tau: bool = True) -> dict:
        """The ``context`` the figure builders put under every title: model, family, d, t, part (and τ)."""
        conv = self.info.family.convention
        t = None if conv is None or self.t is None else f"{self.t:g}" + (" (t0)" if self.t == conv.t0 else "")
        tau = None
        if with_tau:
            tau = f"{self.tau:.4g} (top-{self.k})" if self.threshold == "topk" else f"{self.tau:g}"
        return {"model": self.info.name, "family": self.info.family.label, "d": self.info.dim, "t": t,
                "part": self.part, "tau": tau}

    def settings(self) -> dict:
        return {"source": self.source_key if not self.source_key.startswith(UPLOAD_ROOT) else f"upload: {self.info.name}",
                "family": self.family, "device": self.device, "t": self.t, "part": self.part,
                "threshold": "top-k" if self.threshold == "topk" else "τ", "tau": self.tau,
                "k": self.k if self.threshold == "topk" else None}

    def model_card(self) -> dict:
        info, row, at = self.info, self.table_row, self.at_tau
        conv = info.family.convention
        card = {
            "model": info.name,
            "family": info.family.label,
            "family note": info.family_note,
            "d": info.dim,
            "classes": info.num_classes,
            "parameters": format_count(info.parameters),
            "t convention": conv.describe() + f"; t0 = {conv.t0:g}" if conv else "none (precomputed matrix)",
            "device": str(info.device),
            "t": self.t_text, "part": self.part,
            "PR (of mean vector c̄)": f"{row['pr']['mean_vector']:.2f}",
            "PR (mean over classes)": f"{row['pr']['per_class_mean']:.2f}",
            "nPR (of mean vector c̄)": f"{100 * row['npr']['mean_vector']:.2f}%",
            "nPR (mean over classes)": f"{100 * row['npr']['per_class_mean']:.2f}%",
        }
        if row.get("cosine"):
            cos = row["cosine"]
            card["cosine (off-diagonal mean)"] = f"{cos['mean']:.4f}"
            card["cosine min / max"] = f"{cos['min']:.4f} / {cos['max']:.4f}"
        card[f"head dims at {self.tau_text}"] = f"{at['head_count']} of {info.dim}"
        card["s_tail (c̄ / per-class mean)"] = f"{at['s_tail']['mean_vector']:.3f} / {at['s_tail']['per_class_mean']:.3f}"
        return card


def format_count(n: int | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g} {unit} ({n:,})"
    return f"{n:,}"


# ================================================================================ sidebar

def _source_picker() -> tuple[str | None, str | None, str]:
    """Sidebar source widgets → (source string for dtviz.load, labels path, kind). Writes ``src`` to the URL."""
    ss = st.session_state
    raw = st.query_params.get("src")
    if raw is not None and raw != _last().get("src"):
        _last()["src"] = raw
        if raw == "builtin":
            ss["src_kind"] = "builtin"
        elif raw.startswith("hf:"):
            ss["src_kind"], ss["src_hf"] = "hf", raw[3:]
        else:
            ss["src_kind"], ss["src_path"] = "path", raw
    ss.setdefault("src_kind", "builtin")
    kind = st.radio("Source", SOURCE_KINDS, key="src_kind", format_func=SOURCE_LABELS.get)
    source, labels = None, None
    if kind == "builtin":
        source = "builtin"
    elif kind == "path":
        path = st.text_input("Checkpoint file or folder", key="src_path",
                             placeholder="/models/SiT-XL-2-256.pt or a diffusers folder",
                             help="A .pt/.pth/.ckpt/.safetensors checkpoint, a diffusers DiT pipeline folder, a dtviz "
                                  "model folder, or an N×d matrix (.npy/.npz/.csv/.pt).").strip()
        source = path or None
        if not path:
            st.caption("Enter a path on the machine running the dashboard.")
    elif kind == "hf":
        repos = cached_pipelines()
        wanted = ss.get("src_hf")
        options = repos + ([wanted] if wanted and wanted not in repos else [])
        if options:
            repo = st.selectbox("Cached DiT pipeline", options, key="src_hf")
            source = f"hf:{repo}" if repo else None
        else:
            from_env = "the local Hugging Face cache"
            st.caption(f"No DiT pipelines in {from_env}. Download one with `hf download facebook/DiT-XL-2-256`.")
    else:
        source, labels = _upload_widgets()
    if kind == "upload" or source is None:
        if "src" in st.query_params:
            del st.query_params["src"]
        _last()["src"] = None
        if kind == "upload" and source:
            st.caption("Uploaded files are not part of the shareable link.")
    else:
        url_store("src", source, "builtin")
    return source, labels, kind


def _upload_widgets() -> tuple[str | None, str | None]:
    up = st.file_uploader(f"Embedding matrix (N×d, up to {UPLOAD_LIMIT_MB} MB)", type=UPLOAD_TYPES, key="src_upload",
                          max_upload_size=UPLOAD_LIMIT_MB,
                          help="Rows are classes (or samples), columns the dimensions of c. .npy, .npz (key "
                               "'embeddings'), .csv/.tsv (optional header and label column), .pt or .safetensors.")
    lab = st.file_uploader("Labels (optional, one per line)", type=["txt"], key="src_upload_labels",
                           max_upload_size=UPLOAD_LIMIT_MB)
    if up is None:
        st.caption("Larger files: use the local path field instead.")
        return None, None
    return save_upload(up), (save_upload(lab) if lab is not None else None)


def save_upload(up) -> str:
    """Write an upload to a private temp folder (never next to the user's files); the path carries the
    content hash, so it doubles as the cache key."""
    from dtviz.sources import matrix

    matrix.check_upload_size(up.name, up.size)  # MAX_UPLOAD_BYTES, read at call time
    data = up.getvalue()
    digest = hashlib.sha1(data).hexdigest()[:16]
    name = re.sub(r"[^\w.+-]", "_", os.path.basename(up.name)) or "upload.npy"
    root = os.path.join(UPLOAD_ROOT, digest)
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        os.makedirs(root, mode=0o700, exist_ok=True)
        with open(path + ".part", "wb") as fh:
            fh.write(data)
        os.replace(path + ".part", path)
    return path


def detection_ambiguous(source) -> bool:
    """True when the family came from key detection and DiT / SiT / MG cannot be told apart."""
    from dtviz.families import detect_family

    state = getattr(source, "state", None)
    sidecar = getattr(source, "sidecar", None) or {}
    if state is None or sidecar.get("family") or not hasattr(state, "keys"):
        return False
    try:
        return bool(detect_family(state.keys()).ambiguous)
    except Exception:
        return False


def _on_t0(t0: float) -> None:
    st.session_state["t"] = t0


def _on_tau_slider(key: str) -> None:
    ss = st.session_state
    ss[key] = ss[f"{key}_slider"]
    ss[f"{key}_box"] = ss[f"{key}_slider"]


def _on_tau_box(key: str) -> None:
    ss = st.session_state
    if ss.get(f"{key}_box") is not None:
        ss[key] = float(ss[f"{key}_box"])
        ss[f"{key}_slider"] = snap_tau(ss[key])


def snap_tau(tau: float) -> float:
    """The slider position nearest to τ on a log scale."""
    return min(TAU_GRID, key=lambda g: abs(math.log10(g) - math.log10(max(tau, TAU_MIN))))


def _timestep_widgets(conv) -> float | None:
    ss = st.session_state
    if conv is None:
        st.caption("Timestep: none — a precomputed matrix has no t.")
        url_store("t", None, None)  # not part of this view
        return None
    t0 = conv.t0
    as_t = (lambda v: int(round(v))) if conv.integer else float

    def parse(raw: str):
        return as_t(conv.check(float(raw)))

    from_url = url_seed("t", as_t(t0), parse)
    if ss.get("_t_conv") not in (None, conv.describe()) and not from_url:
        ss["t"] = as_t(t0)  # another model, another convention: start at its own t0
    ss["_t_conv"] = conv.describe()
    try:
        ss["t"] = as_t(conv.check(float(ss["t"])))
    except (DtvizInputError, TypeError, ValueError):
        ss["t"] = as_t(t0)
    if conv.integer:
        t = st.slider("Timestep t", int(conv.t_min), int(conv.t_max), step=1, key="t", help=conv.describe())
    else:
        t = st.slider("Timestep t", float(conv.t_min), float(conv.t_max), step=0.01, format="%.2f", key="t",
                      help=conv.describe())
    cols = st.columns([2, 3], vertical_alignment="center")
    with cols[0]:
        st.button("t0", key="t0_button", on_click=_on_t0, args=(as_t(t0),), icon=":material/first_page:",
                  width="stretch", help=f"Jump to the first sampling step t0 = {t0:g} (where the paper reports its statistics).")
    with cols[1]:
        st.caption(f"{conv.describe()}; t0 = {t0:g}")
    url_store("t", t, as_t(t0), fmt_float)
    return float(t)


def _threshold_widgets(dim: int) -> tuple[str, float, int]:
    ss = st.session_state
    mode = bound(st.radio, "thr", "tau", parse=choice(("tau", "topk")), label="Threshold",
                 options=("tau", "topk"), format_func=lambda m: "τ on |c̄ᵢ|" if m == "tau" else "top-k of |c̄ᵢ|",
                 horizontal=True, help="Head = dims with |c̄ᵢ| ≥ τ (paper Eq. 2), or the k largest |c̄ᵢ|.")
    url_seed("k", DEFAULT_K, lambda raw: int(raw) if 1 <= int(raw) <= dim else int("x"))
    tau = tau_input("tau", DEFAULT_TAU, show=mode == "tau")
    if mode != "tau":
        ss["k"] = int(min(max(int(ss["k"]), 1), dim))
        st.number_input("k (head size)", min_value=1, max_value=dim, step=1, key="k")
    url_store("k", int(ss["k"]), DEFAULT_K)
    return mode, tau, int(min(max(int(ss["k"]), 1), dim))


def tau_input(key: str, default: float, *, show: bool = True, label: str = "τ",
              help: str = "Any positive threshold; the slider snaps to the nearest mark.") -> float:
    """A threshold τ as a log slider (fires on release) beside a number box for any value, kept in the URL
    under ``key``. The value lives in ``st.session_state[key]`` (the widgets are ``key_slider``,
    ``key_box``), so it survives while the widgets are hidden (``show=False``)."""
    ss = st.session_state
    url_seed(key, default, parse_positive)
    tau = float(ss[key])
    if show:
        if ss.get(f"{key}_box") != tau:
            ss[f"{key}_box"] = tau
        slider = ss.get(f"{key}_slider")
        if slider is None or snap_tau(tau) != slider and slider != tau:
            ss[f"{key}_slider"] = snap_tau(tau)
        cols = st.columns([3, 2], vertical_alignment="bottom")
        with cols[0]:
            st.select_slider(f"{label} (log scale)", options=TAU_GRID, key=f"{key}_slider", on_change=_on_tau_slider,
                             args=(key,), format_func=lambda v: f"{v:g}")
        with cols[1]:
            st.number_input(label, min_value=TAU_MIN, max_value=TAU_MAX, step=0.001, format="%g", key=f"{key}_box",
                            on_change=_on_tau_box, args=(key,), help=help)
        tau = float(ss[key])
    url_store(key, tau, default, fmt_float)
    return tau


def follow(key: str, value: Any) -> None:
    """Make the setting ``key`` start from ``value`` and jump to it whenever ``value`` changes (a page setting
    that defaults to a sidebar one). Call before the widget / ``url_seed``; a value from the URL still wins."""
    ss = st.session_state
    marker = f"_follows_{key}"
    if marker in ss and ss[marker] != value:
        ss[key] = value
    ss[marker] = value


def sidebar() -> Ctx | None:
    """Draw the shared sidebar and return the context, or None when no source could be opened (the reason is
    shown in the sidebar and in the page)."""
    from dtviz.device import available_devices

    ss = st.session_state
    ss.pop("_load_error", None)
    with st.sidebar:
        st.subheader("Model")
        try:
            source_key, labels, kind = _source_picker()
        except DtvizInputError as err:
            st.error(str(err))
            ss["_load_error"] = str(err)
            return None
        devices = ["auto", *available_devices()]
        try:
            auto_dev = resolved_device("auto")
        except DtvizInputError:
            auto_dev = "cpu"
        device = bound(st.selectbox, "dev", "auto", parse=choice(devices), label="Device", options=devices,
                       format_func=lambda d: f"auto → {auto_dev}" if d == "auto" else d,
                       help="auto picks cuda → mps → cpu.")
        if source_key is None:
            ss["_load_error"] = None
            return None
        try:
            dev = resolved_device(device)
            src = safe_load(source_key, "auto", dev, labels)
            family = "auto"
            fam_from_url = url_seed("fam", "auto", choice(FAMILY_CHOICES))
            if ss.get("_fam_source") not in (None, source_key) and not fam_from_url:
                ss["fam"] = "auto"  # an override belongs to the checkpoint it was made for
            ss["_fam_source"] = source_key
            ambiguous = detection_ambiguous(src)
            if ambiguous or ss.get("fam", "auto") != "auto":
                label = "Family (detection is ambiguous)" if ambiguous else "Family (set by you)"
                family = st.selectbox(label, FAMILY_CHOICES, key="fam",
                                      help="DiT, SiT and Model-Guidance checkpoints share every key name; the family "
                                           "sets the timestep convention. " + src.info.family_note)
                if family != "auto":
                    src = safe_load(source_key, family, dev, labels)
            url_store("fam", family, "auto")
        except DtvizInputError as err:
            st.error(str(err))
            ss["_load_error"] = str(err)
            return None
        info = src.info
        st.caption(f"**{info.name}** — {info.family.label}: {info.family_note}")

        st.subheader("Settings")
        t = _timestep_widgets(info.family.convention)
        part_options = PARTS if info.family.convention is not None else ("y+t",)
        part = bound(st.radio, "part", "y+t", parse=choice(part_options), label="Part of c", options=part_options,
                     format_func=PART_LABELS.get, horizontal=True,
                     help="c = y_embedder(class) + t_embedder(t): the sum (the vector the blocks see), the label "
                          "embedding alone, or the timestep embedding alone (paper Table 4).")
        mode, tau, k = _threshold_widgets(info.dim)
    ctx = Ctx(source_key=source_key, family=family, device=dev, labels=labels, source=src, t=t, part=part,
              threshold=mode, tau_setting=tau, k=k)
    try:
        ctx.stats  # noqa: B018 — surface a bad matrix (NaN, wrong shape) here, once
    except DtvizInputError as err:
        with st.sidebar:
            st.error(str(err))
        ss["_load_error"] = str(err)
        return None
    with st.sidebar:
        with st.expander("Model card", expanded=False):
            st.markdown(card_markdown(ctx.model_card(), ("property", "value")))
    return ctx


def card_markdown(card: dict, header: tuple[str, str] = ("", "")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for k, v in card.items():
        lines.append(f"| {k} | {str(v).replace('|', '/')} |")
    return "\n".join(lines)


# ================================================================================ page helpers

def get_ctx() -> Ctx | None:
    return st.session_state.get("_ctx_holder", {}).get("ctx")


def require_ctx() -> Ctx:
    """The context for a page, or the load error in the page and a stop (the rest of the app keeps working)."""
    ctx = get_ctx()
    if ctx is None:
        err = st.session_state.get("_load_error")
        if err:
            st.error(err)
            st.caption("Choose another source in the sidebar; the other pages and the built-in model keep working.")
        else:
            st.info("Choose a model in the sidebar (the built-in glyph model works without any input).")
        st.stop()
    return ctx


def page_header(ctx: Ctx, title: str, metrics: bool = True, caption: str | None = None) -> None:
    """The page title, the line that says model, t, part and τ, and the headline numbers."""
    st.title(title)
    st.caption(caption or ctx.title_context)
    if metrics:
        at, row = ctx.at_tau, ctx.table_row
        cols = st.columns(4)
        cols[0].metric("Head dims (|c̄ᵢ| ≥ τ)", f"{at['head_count']} / {ctx.info.dim}",
                       help=f"Dimensions of the mean vector c̄ with magnitude at least τ = {ctx.tau:.4g}.")
        cols[1].metric("s_tail(τ) of c̄", f"{at['s_tail']['mean_vector']:.3f}",
                       help="Share of dims with |c̄ᵢ| < τ (Eq. 2). Per-class mean: "
                            f"{at['s_tail']['per_class_mean']:.3f}.")
        cols[2].metric("nPR of c̄", f"{100 * row['npr']['mean_vector']:.2f}%",
                       help=f"PR / d of |c̄| (Eq. 1). Mean over classes: {100 * row['npr']['per_class_mean']:.2f}%.")
        cos = row.get("cosine") or {}
        cols[3].metric("Cosine (off-diag. mean)", f"{cos.get('mean', float('nan')):.4f}",
                       help="Mean pairwise cosine similarity of the class vectors, i ≠ j.")


def class_groups(source) -> list[str] | None:
    """A class group per class where the model provides one: ``class_groups`` in the source's metadata, or the
    Unicode category of glyph classes (the built-in model's sidecar lists codepoints)."""
    extra = getattr(source.info, "extra", {}) or {}
    groups = extra.get("class_groups") or (getattr(source, "sidecar", None) or {}).get("class_groups")
    if groups and len(groups) == source.num_classes:
        return [str(g) for g in groups]
    codepoints = (getattr(source, "sidecar", None) or {}).get("codepoints")
    if codepoints and len(codepoints) >= source.num_classes:
        names = {"Lu": "uppercase letter", "Ll": "lowercase letter", "Lt": "titlecase letter", "Lm": "modifier letter",
                 "Lo": "other letter", "Nd": "digit", "No": "other number", "Sm": "math symbol", "Sc": "currency sign",
                 "Sk": "modifier symbol", "So": "other symbol"}
        out = []
        for cp in codepoints[:source.num_classes]:
            cat = unicodedata.category(chr(int(cp)))
            out.append(names.get(cat, "punctuation" if cat.startswith("P") else "other"))
        return out
    return None


# ================================================================================ pages

# module (pages/<module>_view.py), title, url path, prefix of its URL keys, icon
PAGES = (
    ("overview", "Overview & model card", "overview", None, ":material/home:"),
    ("cosine", "Cosine similarity", "cosine", "cos_", ":material/grid_on:"),
    ("magnitudes", "Magnitudes", "magnitudes", "mag_", ":material/bar_chart:"),
    ("variance", "Variance", "variance", "var_", ":material/stacked_line_chart:"),
    ("projection", "Head vs tail projection", "projection", "proj_", ":material/scatter_plot:"),
    ("compare", "Compare models", "compare", "cmp_", ":material/compare_arrows:"),
    ("dynamics", "Timestep & training dynamics", "dynamics", "dyn_", ":material/timeline:"),
    ("neighbours", "Nearest neighbours", "neighbours", "nn_", ":material/hub:"),
    ("pruning", "Live pruning", "pruning", "pr_", ":material/content_cut:"),
)
# A pages/ folder next to app.py makes Streamlit's first run on a fresh server use its legacy page discovery
# (pages/*.py, url path = file name) even with st.navigation: pages/<url path>.py stubs hand that run over
# to app.py (legacy_entry), so a cold deep link (/cosine?tau=0.1) opens without "Page not found".
VIEWS_DIR = "pages"


def view_path(module: str) -> str:
    """The page file of ``module``, relative to app.py (what st.Page, st.page_link and AppTest take)."""
    return f"{VIEWS_DIR}/{module}_view.py"


def set_ctx(ctx: Ctx | None) -> None:
    st.session_state["_ctx_holder"] = {"ctx": ctx}


def start_page(module: str) -> None:
    """Called by app.py before a page runs: a fresh figure list for "Export report"."""
    st.session_state["_page_report"] = PageReport(module)


# ================================================================================ figures & report

class PageReport:
    """The figures shown on the current page (for "Export report"); fragments update their entries."""

    def __init__(self, page: str):
        self.page = page
        self.items: dict[str, dict] = {}

    def add(self, name: str, fig, title: str | None = None) -> None:
        self.items[name] = {"name": name, "title": title or name, "figure": fig, "page": self.page}


def page_report() -> PageReport:
    rep = st.session_state.get("_page_report")
    if rep is None:
        rep = st.session_state["_page_report"] = PageReport("page")
    return rep


def show_figure(fig, name: str, data=None, *, title: str | None = None) -> None:
    """A figure with the plotly mode bar (download as PNG or SVG, per the sidebar switch, at 3×), a CSV
    download of its data, and a place in the report.

    ``data``: a pandas DataFrame, or a zero-argument callable returning CSV text / a DataFrame (computed only
    when the user clicks, for large matrices); default: ``plots.figure_csv(fig)``."""
    from dtviz import plots

    fmt = st.session_state.get("img_fmt", "png")
    st.plotly_chart(fig, config=plots.figure_config(name, fmt=fmt), key=f"fig_{name}", width="stretch", theme=None)
    csv = data if data is not None else (lambda: plots.figure_csv(fig))
    st.download_button("CSV of this figure", data=_csv_callable(csv), file_name=f"{name}.csv",
                       mime="text/csv", key=f"csv_{name}", on_click="ignore", icon=":material/download:",
                       type="tertiary")
    page_report().add(name, fig, title)


def short_name(name: str) -> str:
    """The first part of a class name, for a caption under a small image ("A  U+0041  LATIN CAPITAL LETTER A"
    → "A", "tench, Tinca tinca" → "tench"); the full name is in the tooltip."""
    text = str(name).strip()
    for sep in ("  ", ","):
        if sep in text:
            text = text.split(sep)[0].strip()
    return text or str(name)


def image_grid(images, names: list[str], grid: str, max_columns: int = 6) -> None:
    """Sample images as a grid of crisp (nearest-neighbour, plots.image_tiles) tiles, each with its class's
    short name under it and the full name on hover. ``grid`` names the grid in the page (data-grid="…")."""
    import html as html_lib

    from dtviz import plots

    size = np.asarray(images).shape[2]
    scale = plots.tile_scale(size)
    uris, width = plots.image_tiles(images, scale), size * scale
    columns = max(1, min(max_columns, math.ceil(math.sqrt(len(uris)))))
    tiles = []
    for uri, name in zip(uris, names):
        full, short = html_lib.escape(str(name), quote=True), html_lib.escape(short_name(name))
        tiles.append(f'<figure title="{full}" style="margin:0;width:{width}px">'
                     f'<img src="{uri}" alt="{full}" width="{width}" height="{width}" '
                     'style="display:block;image-rendering:pixelated;border:1px solid #d0d0d0;border-radius:2px">'
                     f'<figcaption style="font:12px/1.3 sans-serif;color:#444;text-align:center;white-space:nowrap;'
                     f'overflow:hidden;text-overflow:ellipsis">{short}</figcaption></figure>')
    st.html(f'<div class="dtviz-grid" data-grid="{html_lib.escape(grid)}" style="display:grid;'
            f'grid-template-columns:repeat({columns},{width}px);gap:8px 10px">{"".join(tiles)}</div>')


def _csv_callable(data):
    def make():
        value = data() if callable(data) else data
        if isinstance(value, (str, bytes)):
            return value
        buf = io.StringIO()
        value.to_csv(buf, index=False)
        return buf.getvalue()

    return make


def _report_callable(card: dict, settings: dict, items_source: Callable[[], list], title: str):
    def make():
        from dtviz.report import export_report

        return export_report(items_source(), card, settings, title)

    return make


def page_module(module: str):
    """A page file imported as a module (its ``main()`` does not run), by path: no reliance on the
    views folder being on sys.path."""
    import importlib.util
    import sys

    name = f"dtviz_app_pages.{module}"
    if name not in sys.modules:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), view_path(module))
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return sys.modules[name]


def all_figures(ctx: Ctx) -> list[dict]:
    """Every page's figures for the current settings: the current page as shown, the others with their
    default options."""
    current = page_report()
    items: list[dict] = []
    for module, title, _, _, _ in PAGES:
        if module == current.page:
            items.extend(current.items.values())
            continue
        mod = page_module(module)
        build = getattr(mod, "report_figures", None)
        if build is None:
            continue
        try:
            for item in build(ctx):
                item.setdefault("page", module)
                items.append(item)
        except DtvizInputError as err:
            LOG.info("report: %s skipped (%s)", module, err)
    return items


def export_buttons(ctx: Ctx | None, page_title: str) -> None:
    """The figure download format, and "Export report": this page's figures (built on click), or every
    page's (built on request)."""
    st.radio("Figure download format", ("png", "svg"), key="img_fmt", horizontal=True, format_func=str.upper,
             help="The camera button of each figure's mode bar saves this format at 3× scale.")
    rep = page_report()
    card = ctx.model_card() if ctx is not None else {}
    settings = ctx.settings() if ctx is not None else {}
    query = st.query_params.to_dict()
    settings.update({k: v for k, v in query.items() if k.startswith(PAGE_PREFIXES)})
    try:
        url = st.context.url
    except Exception:  # no browser context (tests, bare mode)
        url = None
    if url:
        from urllib.parse import urlencode

        settings["share_url"] = url + ("?" + urlencode(query) if query else "")
    stamp = time.strftime("%Y%m%d-%H%M")
    st.download_button("Export report (this page)", key="export_page", on_click="ignore",
                       data=_report_callable(card, settings, lambda: list(rep.items.values()), f"dtviz — {page_title}"),
                       file_name=f"dtviz-{_slug(page_title)}-{stamp}.html", mime="text/html",
                       icon=":material/description:", disabled=not rep.items, width="stretch",
                       help="One self-contained HTML file: every figure of this page, the model card and the settings.")
    if ctx is None:
        return
    ready = st.session_state.get("_all_report")
    if ready and ready[0] == (ctx.key, ctx.tau):
        st.download_button("Download report (all pages)", data=ready[1], file_name=f"dtviz-report-{stamp}.html",
                           mime="text/html", key="export_all", on_click="ignore", icon=":material/download:",
                           width="stretch")
    elif st.button("Build report of all pages", key="export_all_build", icon=":material/library_books:",
                   width="stretch", help="Computes every page's figures for the current settings (a few seconds)."):
        with st.spinner("Building every page's figures…"):
            html = _report_callable(card, settings, lambda: all_figures(ctx), "dtviz — all views")()
        st.session_state["_all_report"] = ((ctx.key, ctx.tau), html)
        st.download_button("Download report (all pages)", data=html, file_name=f"dtviz-report-{stamp}.html",
                           mime="text/html", key="export_all", on_click="ignore", icon=":material/download:",
                           width="stretch")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "page"


def legacy_entry() -> None:
    """Run by pages/<url path>.py only on Streamlit's legacy first run (see pages/README.md): switch the
    process to st.navigation mode and rerun app.py, which then opens the requested page."""
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()

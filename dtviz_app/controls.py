"""The shared sidebar: source picker (built-in, path, Hugging Face cache, upload), device and family, the
timestep and threshold widgets, and the model card; ``sidebar()`` draws it and returns the ``Ctx``.

(Named controls, not sidebar, so that ``dtviz_app.sidebar`` stays the function the app calls.)
"""
from __future__ import annotations

import contextlib
import math
from typing import Any

import streamlit as st

from dtviz.errors import DtvizInputError
from dtviz.sources.loading import BUILTIN, BUILTINS
from dtviz_app.access import link_name, open_name, plain, save_upload, show_error, sweep_uploads
from dtviz.pruning.defaults import PAPER_TAU
from dtviz_app.cache import cached_pipelines, condition_stats, resolved_device, safe_load
from dtviz_app.constants import (DEFAULT_K, DEFAULT_TAU, FAMILY_CHOICES, PART_LABELS, PARTS, SOURCE_KINDS,
                                 SOURCE_LABELS, TAU_GRID, TAU_MAX, TAU_MIN, UPLOAD_LIMIT_MB, UPLOAD_TYPES)
from dtviz_app.context import Ctx
from dtviz_app.reading_controls import reading_widgets
from dtviz_app.urlstate import _last, bound, choice, fmt_float, parse_positive, url_seed, url_store


# ================================================================================ sidebar

def _source_picker() -> tuple[str | None, str | None, str]:
    """Sidebar source widgets → (source string for dtviz.load, labels path, kind). Writes ``src`` to the URL.
    A typed path must lie inside the served roots (access.open_name); the link names it relative to its root."""
    ss = st.session_state
    raw = st.query_params.get("src")
    if raw is not None and raw != _last().get("src"):
        _last()["src"] = raw
        if raw in BUILTINS:
            ss["src_kind"], ss["src_builtin"] = "builtin", raw
        elif raw.startswith("hf:"):
            ss["src_kind"], ss["src_hf"] = "hf", raw[3:]
        else:
            ss["src_kind"], ss["src_path"] = "path", raw
    ss.setdefault("src_kind", "builtin")
    kind = st.radio("Source", SOURCE_KINDS, key="src_kind", format_func=SOURCE_LABELS.get)
    source, labels = None, None
    if kind == "builtin":
        ss.setdefault("src_builtin", BUILTIN)
        source = st.selectbox("Built-in model", tuple(BUILTINS), key="src_builtin",
                              format_func=lambda name: f"{name} — {BUILTINS[name].description}",
                              help="Models shipped in assets/ (no download): " + "; ".join(
                                  f"{b.name}: {b.description}" for b in BUILTINS.values()))
        from dtviz.builtin.card import verdict_counts

        counts = verdict_counts(BUILTINS[source].path)
        if counts:  # measured by scripts/model_card.py when the model was shipped
            st.caption(f"{BUILTINS[source].summary}. The paper's claims on it (its model card): {counts}.")
    elif kind == "path":
        path = st.text_input("Checkpoint file or folder", key="src_path",
                             placeholder="models/SiT-XL-2-256.pt or a diffusers folder",
                             help="A .pt/.pth/.ckpt/.safetensors checkpoint, a diffusers DiT pipeline folder, a dtviz "
                                  "model folder, an N×d matrix (.npy/.npz/.csv/.pt), or a trajectory captured with dtviz.capture (.traj.npz).").strip()
        source = path or None
        if not path:
            st.caption("Enter a path inside the folders this server serves (relative to the folder `dtviz serve` "
                       "was started in, or to a `--root`).")
        else:
            try:
                source = open_name(path)
            except DtvizInputError:
                url_store("src", path, BUILTIN)  # the link reproduces the refusal, as any other bad source
                raise
    elif kind == "hf":
        repos = cached_pipelines()
        wanted = ss.get("src_hf")
        options = repos + ([wanted] if wanted and wanted not in repos else [])
        if options:
            repo = st.selectbox("Cached pipeline (DiT, SD3, Flux, PixArt, Sana)", options, key="src_hf")
            source = f"hf:{repo}" if repo else None
        else:
            from_env = "the local Hugging Face cache"
            st.caption(f"No DiT or text-to-image pipelines in {from_env}. Download one with "
                       "`hf download facebook/DiT-XL-2-256`.")
    else:
        source, labels = _upload_widgets()
    if kind in ("path", "hf") and source:  # a text-to-image pipeline's rows: prompts (dtviz_app.prompt_picker)
        from dtviz_app.prompt_picker import prompt_picker

        labels = prompt_picker(source)
    if kind == "upload" or source is None:
        if "src" in st.query_params:
            del st.query_params["src"]
        _last()["src"] = None
        if kind == "upload" and source:
            st.caption("Uploaded files are not part of the shareable link.")
    else:
        url_store("src", link_name(source), BUILTIN)
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


def detection_ambiguous(source) -> bool:
    """True when the family came from key detection and DiT / SiT / MG cannot be told apart."""
    from dtviz.sources.families import detect_family

    if hasattr(source, "family_ambiguous"):  # a native checkpoint: its training args/config may have settled it
        return bool(source.family_ambiguous)
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


def _timestep_widgets(conv, t0: float | None = None, t0_note: str = "") -> float | None:
    """``t0``: the source's own (Source.t0, e.g. a pipeline scheduler's first step; default the noise end) and
    ``t0_note``, what it assumes (Source.t0_note)."""
    ss = st.session_state
    if conv is None:
        st.caption("Timestep: none — a precomputed matrix has no t.")
        url_store("t", None, None)  # not part of this view
        return None
    t0 = conv.t0 if t0 is None else t0
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
    note = f"{conv.describe()}; {t0_note or f't0 = {t0:g}'}"
    cols = st.columns([2, 3], vertical_alignment="center")
    with cols[0]:
        st.button("t0", key="t0_button", on_click=_on_t0, args=(as_t(t0),), icon=":material/first_page:",
                  width="stretch", help=f"Jump to the first sampling step t0 = {t0:g} (where the paper reports its statistics).")
    # a long note (a pipeline's scheduler and defaults) reads better at the sidebar's full width than beside the button
    with cols[1] if len(note) <= 70 else contextlib.nullcontext():
        st.caption(note)
    url_store("t", t, as_t(t0), fmt_float)
    return float(t)


def _set_tau(value: float) -> None:
    ss = st.session_state
    ss["tau"] = ss["tau_box"] = float(value)
    ss["tau_slider"] = snap_tau(float(value))


def _threshold_widgets(dim: int, source_tau: float) -> tuple[str, float, int]:
    """``source_tau``: the source's one default τ (dtviz.pruning.defaults.default_tau: s_tail(c̄ at t0) = 448/1152,
    the share REPA-XL's τ = 0.01 removes), used by every page; τ = 0.01, the paper's value, one click away."""
    ss = st.session_state
    mode = bound(st.radio, "thr", "tau", parse=choice(("tau", "topk")), label="Threshold",
                 options=("tau", "topk"), format_func=lambda m: "τ on |c̄ᵢ|" if m == "tau" else "top-k of |c̄ᵢ|",
                 horizontal=True, help="Head = dims with |c̄ᵢ| ≥ τ (paper Eq. 2), or the k largest |c̄ᵢ|.")
    url_seed("k", DEFAULT_K, lambda raw: int(raw) if 1 <= int(raw) <= dim else int("x"))
    follow("tau", source_tau)  # another model: its own τ (a τ in the URL still wins)
    tau = tau_input("tau", source_tau, show=mode == "tau",
                    help=f"This model's τ is {source_tau:.3g}: 448 of every 1152 dims of c̄ lie below it, the share the "
                         "paper's τ = 0.01 removes on REPA-XL (Table 2). Any positive value; the slider snaps to marks.")
    if mode == "tau":
        cols = st.columns(2)
        cols[0].button(f"model: {source_tau:.3g}", key="tau_source", on_click=_set_tau, args=(source_tau,),
                       width="stretch", help=f"This model's τ = {source_tau:.4g}: s_tail(c̄) = 448/1152 at t0, the share "
                                             "the paper's τ = 0.01 removes on REPA-XL.")
        cols[1].button(f"paper: {PAPER_TAU:g}", key="tau_paper", on_click=_set_tau, args=(PAPER_TAU,),
                       width="stretch", help="τ = 0.01, the paper's threshold, on its XL models' scale (largest |c̄ᵢ| ≈ 5–8).")
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
    from dtviz.models.device import available_devices

    ss = st.session_state
    ss.pop("_load_error", None)
    sweep_uploads()  # rate-limited: the uploads of sessions that ended
    with st.sidebar:
        st.subheader("Model")
        try:
            source_key, labels, kind = _source_picker()
        except DtvizInputError as err:
            show_error(err)
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
            # Flux-dev's g, a native file's null row / head count: the labels slot of every key carries them
            reading = reading_widgets(src, source_key, labels)
            if reading is not labels:
                labels, src = reading, safe_load(source_key, family, dev, reading)
        except DtvizInputError as err:
            show_error(err)
            ss["_load_error"] = str(err)
            return None
        info = src.info
        st.caption(f"**{plain(info.name)}** — {info.family.label}: {plain(info.family_note)}")

        st.subheader("Settings")
        if info.family.key == "trajectory":  # a captured trajectory: a step slider instead of t, only c itself
            from dtviz_app.step_controls import step_widgets

            t, part_options = step_widgets(src), ("y+t",)
        else:
            url_store("step", None, None)  # a trajectory's setting only
            t = _timestep_widgets(info.family.convention, src.t0, src.t0_note)
            part_options = PARTS if info.family.convention is not None else ("y+t",)
        part = bound(st.radio, "part", "y+t", parse=choice(part_options), label="Part of c", options=part_options,
                     format_func=PART_LABELS.get, horizontal=True,
                     help="c = y_embedder(class) + t_embedder(t): the sum (the vector the blocks see), the label "
                          "embedding alone, or the timestep embedding alone (paper Table 4).")
        mode, tau, k = _threshold_widgets(info.dim, source_default_tau(source_key, family, dev, labels, src))
    ctx = Ctx(source_key=source_key, family=family, device=dev, labels=labels, source=src, t=t, part=part,
              threshold=mode, tau_setting=tau, k=k)
    try:
        ctx.stats  # noqa: B018 — surface a bad matrix (NaN, wrong shape) here, once
    except DtvizInputError as err:
        with st.sidebar:
            show_error(err)
        ss["_load_error"] = str(err)
        return None
    with st.sidebar:
        with st.expander("Model card", expanded=False):
            st.markdown(card_markdown(ctx.model_card(), ("property", "value")))
    return ctx


def source_default_tau(source_key: str, family: str, device: str, labels, src) -> float:
    """The source's τ from its c̄ at t0 (cached with the statistics)."""
    from dtviz.pruning.defaults import default_tau

    if src.family.convention is None:
        return default_tau(condition_stats(source_key, family, device, labels, None, "y+t"))
    return default_tau(condition_stats(source_key, family, device, labels, src.t0, "y+t"))


def card_markdown(card: dict, header: tuple[str, str] = ("", "")) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for k, v in card.items():
        lines.append(f"| {k} | {plain(str(v).replace('|', '/'))} |")
    return "\n".join(lines)

"""Widgets of the live pruning page that are more than one call: the precise τ control, the class search
box, and sample grids that stay on screen (dimmed) while their next version is sampled.

Numbers come from the library: the τ marks are ``ConditionStats.tau_marks`` (one more dim below τ at each
mark), the search ranking is ``dtviz.analysis.classsearch``.
"""
from __future__ import annotations

import math

import numpy as np
import streamlit as st

from dtviz.analysis.classsearch import best_class
from dtviz_app.access import plain
from dtviz_app.constants import TAU_MAX, TAU_MIN
from dtviz_app.figures import image_grid
from dtviz_app.urlstate import fmt_float, parse_positive, url_seed, url_store


# ================================================================================ τ

def nearest_mark(marks, tau: float) -> float:
    """The mark nearest to τ on a log scale."""
    m = np.asarray(marks, dtype=np.float64)
    return float(m[np.argmin(np.abs(np.log(np.maximum(m, 1e-300)) - math.log(max(float(tau), 1e-300))))])


def _on_slider(key: str) -> None:
    ss = st.session_state
    ss[key] = ss[f"{key}_box"] = float(ss[f"{key}_slider"])


def _on_box(key: str, marks: tuple) -> None:
    ss = st.session_state
    if ss.get(f"{key}_box") is not None:
        ss[key] = float(ss[f"{key}_box"])
        ss[f"{key}_slider"] = nearest_mark(marks, ss[key])


def tau_control(key: str, marks, default: float, *, help: str | None = None) -> float:
    """τ as a full-width slider over ``marks`` (ascending; released = one sampling run) beside a number box for
    any value; in the URL under ``key`` (widgets ``key_slider``, ``key_box``)."""
    ss = st.session_state
    options = tuple(dict.fromkeys(float(m) for m in marks))
    url_seed(key, default, parse_positive)
    tau = float(ss[key])
    if ss.get(f"{key}_box") != tau:
        ss[f"{key}_box"] = tau
    if ss.get(f"{key}_slider") not in options or ss[f"{key}_slider"] != nearest_mark(options, tau):
        ss[f"{key}_slider"] = nearest_mark(options, tau)
    cols = st.columns([6, 1], vertical_alignment="bottom")
    with cols[0]:
        st.select_slider("τ — snaps to the dims' own magnitudes (each mark puts one more dim below τ)", options=options,
                         key=f"{key}_slider", on_change=_on_slider, args=(key,), format_func=lambda v: f"{v:g}")
    with cols[1]:
        st.number_input("τ", min_value=TAU_MIN, max_value=TAU_MAX, step=None, format="%g",
                        key=f"{key}_box", on_change=_on_box, args=(key, options), help=help)
    tau = float(ss[key])
    url_store(key, tau, default, fmt_float)
    return tau


# ================================================================================ class search

def _on_search(key: str, ids_key: str, names: list, limit: int, row: str = "class") -> None:
    ss = st.session_state
    query = str(ss.get(key) or "")
    best = best_class(query, names) if query.strip() else None
    if best is None:
        ss[f"{key}_note"] = f"No {row} matches that text." if query.strip() else None
        return
    current = list(ss.get(ids_key) or [])
    if best not in current and len(current) < limit:
        current.append(best)
    ss[ids_key] = current
    ss[f"{key}_note"] = f"Added: {names[best]}"
    ss[key] = ""


def class_search(key: str, ids_key: str, names: list, limit: int, row: str = "class") -> None:
    """A search box: Enter adds the single best match (exact name or code point first, dtviz.analysis.classsearch) to the
    list under ``ids_key``. Call before that list's widget. ``row``: what the rows are (Ctx.row)."""
    glyphs = row == "class"  # code points name glyph classes; prompts and conditions are found by their words
    st.text_input(f"Add a {row}: name, character or U+code, then Enter" if glyphs else f"Add a {row}: its words, then Enter",
                  key=key, placeholder="DIGIT ONE · A · U+0041" if glyphs else None,
                  on_change=_on_search, args=(key, ids_key, list(names), limit, row),
                  help="Enter adds the best single match: the code point or the exact name first, then names that "
                       "start with the text, then names with all its words.")
    note = st.session_state.get(f"{key}_note")
    if note:
        st.caption(plain(note))  # a class name may hold markdown characters ("*", "#", "\\"): shown literally


# ================================================================================ grids

DIMMED = "opacity:0.35;filter:grayscale(0.6)"


def grid_slot(name: str):
    """A placeholder showing the grid ``name`` last drawn in this session, dimmed, until ``fill_grid`` replaces it
    (so a release leaves the previous grid on screen while the new one is sampled)."""
    slot = st.empty()
    prev = st.session_state.get(f"_grid_{name}")
    if prev is not None:
        with slot.container():
            # renamed, so that nothing (tests, scripts) mistakes the old images for the new grid
            st.html(f'<div style="{DIMMED}" data-previous="{name}">' + prev.replace("data-grid=", "data-was-grid=") + "</div>")
    return slot


def fill_grid(slot, images, names: list, name: str) -> None:
    """Draw the grid into ``slot`` and remember its HTML for the next dimmed placeholder."""
    with slot.container():
        html = image_grid(images, names, name)
    if html:
        st.session_state[f"_grid_{name}"] = html


# ================================================================================ read-outs

# short: the pruning page's control bar has narrow columns; the blocks page uses the same words
MODE_LABELS = {"tail": "tail (small |cᵢ|)", "head": "head (large |cᵢ|)"}
MASK_LABELS = {"global": "global (c̄)", "per-sample": "per sample"}


def describe(spec) -> str:
    """"tail: |cᵢ| < τ = 0.01 · every step · global, from c̄" etc., for the heading above a pruned grid."""
    from dtviz.pruning.spec import parse_schedule

    if spec.dims is not None:
        what = "dims " + ", ".join(map(str, spec.dims))
    elif spec.tau is not None:
        what = f"{spec.mode}: |cᵢ| {'<' if spec.mode == 'tail' else '≥'} τ = {spec.tau:g}"
    else:
        what = f"{spec.mode}: the {spec.k} {'smallest' if spec.mode == 'tail' else 'largest'} |cᵢ|"
    kind, k = parse_schedule(spec.schedule)
    when = {"every": "every step", "first": "first step"}.get(kind, f"last {k} steps")
    parts = [what, when] + ([MASK_LABELS[spec.mask]] if spec.dims is None else []) + (["null rows too"] if spec.prune_null else [])
    return " · ".join(parts)


def _pct(value) -> str:
    return "—" if value is None else f"{value:.0%}"


def readout(dim: int, spec, base: dict, result: dict) -> None:
    """Removed dims, pixel drift, PSNR, and the two class read-outs of ``result`` against ``base`` (metrics)."""
    count, share = result["removed"]
    cols = st.columns(5)
    # short labels and values: five metrics share the page's width, and Streamlit cuts what does not fit
    share_of_d = dict(delta=f"{share:.1%} of d", delta_color="off", delta_arrow="off")
    if spec.mask == "per-sample" and spec.dims is None:
        t0_count = result.get("removed_t0", (count, share))[0]
        cols[0].metric("Removed dims (mean)", f"{count:.1f} / {dim}", **share_of_d,
                       help=f"A per-sample mask follows c(t) at every step: the mean over the pruned steps of the mean "
                            f"over samples of each sample's own count ({t0_count:.1f} at t0 alone).")
    else:
        cols[0].metric("Removed dims", f"{count} / {dim}", **share_of_d,
                       help="Dims zeroed in every pruned row, chosen once from c̄ at t0 (at a τ, exactly the dims "
                            "`dtviz stats --tau` puts in the tail or head).")
    mse = result["drift"]["mse"]
    cols[1].metric("Pixel drift (MSE)", f"{mse:.4f}" if mse == 0 or mse >= 1e-4 else f"{mse:.1e}",
                   help="Mean squared pixel difference from the baseline, pixels in [0, 1].")
    psnr = result["drift"]["psnr"]
    cols[2].metric("PSNR vs baseline", "∞ (identical)" if math.isinf(psnr) else f"{psnr:.1f} dB")
    for col, key, label, what in ((cols[3], "accuracy", "Class acc.", "the shipped glyph classifier"),
                                  (cols[4], "template_accuracy", "Template acc.",
                                   "template matching (nearest ink-normalised canonical render; no learned weights)")):
        acc, base_acc = result.get(key), base.get(key)
        if acc is None:
            col.metric(label, "—", help=f"Share of samples named as their own class by {what}; only for glyph models "
                                        "(the built-in ones).")
        else:
            col.metric(f"{label} (base {base_acc:.0%})", f"{acc:.0%}",
                       delta=None if acc == base_acc else f"{100 * (acc - base_acc):+.0f} points",
                       help=f"Share of the samples {what} names as their own class.")


def readout_line(dim: int, result: dict) -> str:
    """The same read-outs in one line, for the contrast grid."""
    count, share = result["removed"]
    removed = f"{count:.1f}" if isinstance(count, float) and not float(count).is_integer() else f"{int(count)}"
    mse = result["drift"]["mse"]
    return (f"{removed} / {dim} dims removed ({share:.0%}) · class acc. {_pct(result.get('accuracy'))} · templ. "
            f"{_pct(result.get('template_accuracy'))} · MSE {mse:.0e}")

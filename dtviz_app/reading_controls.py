"""How a source is read, beyond its path, family and device: the settings ``dtviz.load`` takes that the file may not
settle, as sidebar controls kept in the URL.

    guid       Flux-dev's embedded guidance value g (``dtviz.load(..., guidance=G)``, CLI ``--guidance``): shown
               only for a Flux pipeline with a guidance embedding; default the pipeline's own guidance_scale.
    null_row   auto | yes | no (``--null-row``): whether a native label table's last row is the null (CFG) row.
    heads      the attention head count (``--num-heads``) of a native checkpoint.

The last two sit in an "Advanced reading" expander, shown only when the checkpoint's family_note says the file did
not settle them (``info.extra["readings"]``, dtviz.sources.native / release_config).

Every cache of the dashboard is keyed by (source, family, device, labels); these settings ride in the labels slot
(as the prompts of a text-to-image source do): the labels string itself while every setting is at its default, so
a plain source keeps its keys, else a frozen ``Reading`` (hashable, and hashed by Streamlit's caches field by field).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import streamlit as st

from dtviz.sources.release_config import NULL_ROW_CHOICES
from dtviz_app.urlstate import Clamped, Expected, bound, choice, int_in, url_store

GUIDANCE_MAX = 100.0  # dtviz.sources.diffusers_t2i accepts g in [0, 100]
NULL_ROW_LABELS = {"auto": "auto (as noted below)", "yes": "null (CFG) row", "no": "a class (no null row)"}
READING_KEYS = ("guid", "null_row", "heads")


# ================================================================================ the labels slot

@dataclass(frozen=True)
class Reading:
    """The labels slot of the cache keys when a reading setting is not its default."""

    labels: str | None = None  # a labels file, or a text-to-image source's prompts (set name or file)
    guidance: float | None = None  # None: the pipeline's own default
    null_row: str = "auto"
    num_heads: int | None = None  # None: from the file, else the noted assumption


def with_reading(labels: str | None, guidance: float | None = None, null_row: str = "auto",
                 num_heads: int | None = None):
    """``labels`` itself when every setting is its default, else a Reading that carries them."""
    if guidance is None and null_row == "auto" and num_heads is None:
        return labels
    return Reading(labels, guidance, null_row, num_heads)


def load_kwargs(labels) -> dict:
    """The keyword arguments of ``dtviz.load`` for a labels slot (None, a labels/prompts string, or a Reading)."""
    if isinstance(labels, Reading):
        return {"labels": labels.labels, "guidance": labels.guidance, "null_row": labels.null_row,
                "num_heads": labels.num_heads}
    return {"labels": labels}


# ================================================================================ widgets

def parse_guidance(raw: str) -> float:
    """A link's guidance value: a finite number in [0, GUIDANCE_MAX] (outside: clamped, with a note)."""
    try:
        v = float(raw[:64])
    except (TypeError, ValueError):
        v = math.nan
    if len(raw) > 64 or not math.isfinite(v):
        raise Expected(f"a number from 0 to {GUIDANCE_MAX:g}")
    if not 0 <= v <= GUIDANCE_MAX:
        near = 0.0 if v < 0 else GUIDANCE_MAX
        raise Clamped(near, f"{v:.6g} is outside 0 to {GUIDANCE_MAX:g}; {near:g} is used")
    return v


def _forget_other_source(source_key: str) -> None:
    """The settings belong to the source they were made for: another source starts from its defaults (a link's
    values are adopted again by ``url_seed``, which compares with what this session last wrote)."""
    ss = st.session_state
    if ss.get("_reading_source") not in (None, source_key):
        for key in READING_KEYS:
            ss.pop(key, None)
    ss["_reading_source"] = source_key


def reading_widgets(src, source_key: str, labels: str | None):
    """Draw the reading settings ``src`` (opened with every setting at its default) offers; return the labels slot
    for ``dtviz.load`` / the cache keys (``labels`` itself when nothing differs from the defaults)."""
    _forget_other_source(source_key)
    guidance = _guidance_widget(src)
    null_row, heads = "auto", None
    offered = set((src.info.extra or {}).get("readings") or ()) & {"null_row", "num_heads"}
    if offered:
        with st.expander("Advanced reading", icon=":material/tune:"):
            st.caption("What the file does not say (see the note below): how dtviz reads it, as the CLI's "
                       "--null-row and --num-heads.")
            if "null_row" in offered:
                null_row = bound(st.radio, "null_row", "auto", parse=choice(NULL_ROW_CHOICES),
                                 label="Last row of the label table", options=NULL_ROW_CHOICES,
                                 format_func=NULL_ROW_LABELS.get, horizontal=True,
                                 help="A DiT trained with class_dropout_prob=0 has no null row: every row is a class.")
            if "num_heads" in offered:
                dim = int(src.info.dim)
                heads = bound(st.number_input, "heads", None, parse=int_in(1, dim), label="Attention heads",
                              min_value=1, max_value=dim, step=1, placeholder="as assumed below",
                              help="The head count the model was trained with; it must divide the width "
                                   f"{dim}. Only sampling uses it.")
                heads = None if heads is None else int(heads)
    for key, shown in (("null_row", "null_row" in offered), ("heads", "num_heads" in offered)):
        if not shown:
            url_store(key, None, None)  # not a setting of this source
    return with_reading(labels, guidance, null_row, heads)


def _guidance_widget(src) -> float | None:
    """Flux-dev's g, for a Flux pipeline with a guidance embedding only; None at the pipeline's own default."""
    defaults = getattr(src, "defaults", None) or {}
    if src.info.family.key != "flux" or not defaults.get("guidance_in_c"):
        url_store("guid", None, None)
        return None
    default = float(defaults["guidance"])
    g = bound(st.number_input, "guid", default, parse=parse_guidance, fmt=lambda v: f"{float(v):.6g}",
              label="Guidance g (embedded in c)", min_value=0.0, max_value=GUIDANCE_MAX, step=0.5, format="%g",
              help=f"Flux-dev embeds its guidance value in c = time_text_embed(t, g, pooled); default "
                   f"{default:g}, the pipeline's own guidance_scale. Sampling uses it too (CLI --guidance).")
    return None if g is None or float(g) == default else float(g)

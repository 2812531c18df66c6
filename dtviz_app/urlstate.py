"""URL state: every setting that changes a view is mirrored in ``st.query_params``, so a link reopens it.

Global keys are in ``GLOBAL_KEYS``, page keys prefixed per page (e.g. ``cos_order``). A value that equals
its default is left out of the URL. A URL value is adopted when it differs from what this session last
wrote (first load, a pasted link); a missing parameter never resets a setting (page switches may drop the
query string; the next run writes it back).

``bound`` wraps any widget with this; the parsers (``choice``, ``int_in``, ``ids_below``, …) reject a bad
URL value, which is then ignored and rewritten, or clamp a number outside the widget's range; either way a
note under the widget says so (hostile links: ``inf``, ``nan``, 400-digit numbers never raise).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import streamlit as st

from dtviz.errors import DtvizInputError
from dtviz_app.constants import LOG, PAGE_PREFIXES, TAU_MAX, TAU_MIN


MAX_INT = 2 ** 31 - 1  # the largest whole number a URL may set (seeds; number inputs are JS numbers)


class Expected(ValueError):
    """A parser's refusal; ``str`` says what was expected (our words only: the raw value is never echoed)."""


class Clamped(Exception):
    """A parser's number outside its range: ``value`` is the nearest allowed one, ``note`` says so."""

    def __init__(self, value, note: str):
        super().__init__(note)
        self.value, self.note = value, note


# =============================================================================== URL state

def _last() -> dict:
    return st.session_state.setdefault("_url_last", {})


def _notes() -> dict:
    return st.session_state.setdefault("_url_notes", {})


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
        except Clamped as clamped:
            ss[key] = clamped.value
            _notes()[key] = f"The link's {key} {clamped.note}."
            return True
        except (ValueError, TypeError, OverflowError, DtvizInputError) as err:
            LOG.info("ignored URL value %s=%r", key, raw[:80])
            expected = f": expected {err}" if isinstance(err, Expected) else " (not a value this setting takes)"
            _notes()[key] = f"Ignored the link's {key}{expected}."
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
        if isinstance(current, list):  # a set: a link may carry ~80 000 ids; within max_selections
            allowed = set(options) if all(isinstance(o, (str, int, float, tuple)) for o in options) else options
            kept = [v for v in current if not isinstance(v, (list, dict, set)) and v in allowed]
            st.session_state[key] = kept[:kwargs["max_selections"]] if kwargs.get("max_selections") else kept
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
    note = _notes().pop(key, None)
    if note:
        st.caption(note)  # our sentence and numbers only, so no visitor markdown
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
    """A URL parser for a whole number in lo..hi (hi defaults to ``MAX_INT``): non-numbers, inf and nan are
    refused (``Expected``), finite numbers outside the range clamped (``Clamped``)."""
    hi = MAX_INT if hi is None else min(int(hi), MAX_INT)

    def parse(raw: str) -> int:
        try:
            v = float(raw[:64])  # longer text is not a number this setting takes (a 400-digit one is inf anyway)
        except (ValueError, TypeError):
            v = math.nan
        if len(raw) > 64 or not math.isfinite(v):
            raise Expected(f"a whole number from {lo} to {hi}")
        if v < lo or v > hi:
            near = lo if v < lo else hi
            raise Clamped(near, f"{v:.6g} is outside {lo} to {hi}; {near} is used")
        return int(v)

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

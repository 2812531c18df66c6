"""Figures on a page and their downloads: ``show_figure`` (plotly mode bar for PNG/SVG, CSV of the data),
sample image grids, and "Export report" of this page's figures or every page's (``dtviz.report``).
"""
from __future__ import annotations

import io
import math
import re
import time
from typing import Callable

import numpy as np
import streamlit as st

from dtviz.errors import DtvizInputError
from dtviz_app.constants import LOG, PAGE_PREFIXES
from dtviz_app.context import Ctx
from dtviz_app.navigation import PAGES, page_module


# ================================================================================ figures & report

class PageReport:
    """The figures shown on the current page (for "Export report"); fragments update their entries."""

    def __init__(self, page: str):
        self.page = page
        self.items: dict[str, dict] = {}

    def add(self, name: str, fig, title: str | None = None) -> None:
        self.items[name] = {"name": name, "title": title or name, "figure": fig, "page": self.page}


def start_page(module: str) -> None:
    """Called by app.py before a page runs: a fresh figure list for "Export report"."""
    st.session_state["_page_report"] = PageReport(module)


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
    # a figure that sets its own width (a square heatmap) keeps it; the others fill the column
    width = "content" if fig.layout.width else "stretch"
    st.plotly_chart(fig, config=plots.figure_config(name, fmt=fmt), key=f"fig_{name}", width=width, theme=None)
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


def image_grid(images, names: list[str], grid: str, max_columns: int = 6) -> str:
    """Sample images as a grid of crisp (nearest-neighbour, plots.image_tiles) tiles, each with its class's
    short name under it and the full name on hover. ``grid`` names the grid in the page (data-grid="…").
    Returns the HTML drawn."""
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
    html = (f'<div class="dtviz-grid" data-grid="{html_lib.escape(grid)}" style="display:grid;'
            f'grid-template-columns:repeat({columns},{width}px);gap:8px 10px">{"".join(tiles)}</div>')
    st.html(html)
    return html


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

        # the link of the report: on DTVIZ_BASE_URL when configured, less this server's own path prefix
        return export_report(items_source(), card, settings, title, app_path=st.get_option("server.baseUrlPath") or "")

    return make


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

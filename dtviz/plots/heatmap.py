"""The cosine-similarity views of paper Fig. 3 (and Figs. 14–19): the full N×N heatmap, the zoomed
sub-matrix with values in the cells, and the histogram of the off-diagonal cosines. UI-free.

    cluster_order, cosine_heatmap, heatmap_hover_layer, cosine_frame       Fig. 3 left (and 14–19)
    cosine_submatrix                                                       Fig. 3 right
    offdiag_histogram                                                      the pairs of Fig. 3 as a histogram

The full matrix must fit a figure-JSON budget (``HEATMAP_MAX_BYTES``): exactly when it can, else as an
image with hover over blocks of classes (see ``cosine_heatmap``).
"""
from __future__ import annotations

import base64
import io
import math
import re

import numpy as np
import pandas as pd
import plotly.colors as pcolors
import plotly.graph_objects as go

from dtviz.errors import DtvizInputError
from dtviz.plots.style import (CONTINUOUS, HEAD_COLOUR, OKABE_ITO, _bars_from_edges, _check_names, _check_order,
                               _marker_line, _nice_step, _square_matrix, _style, row_nouns, unique_labels)

HEATMAP_MAX_BYTES = 1_000_000  # figure JSON budget for the full cosine matrix (issue 4)
# to_json escapes "/" as "\u002f" (6 characters) for safe embedding in <script>; base64 text holds
# "/" at a rate of 1/64, so each base64 character costs ~1.08 characters of figure JSON.
_B64_JSON_FACTOR = 1 + 5 / 64


# ====================================================================================== cosine: Fig. 3

def cluster_order(C) -> np.ndarray:
    """Leaf order of average-linkage clustering on the distance 1 − C (Fig. 3 with similar classes
    adjacent). Deterministic: scipy's linkage breaks ties by index and the leaf order follows."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    C = _square_matrix(C)
    n = C.shape[0]
    if n < 3:
        return np.arange(n)
    D = np.clip(1.0 - (C + C.T) / 2, 0.0, 2.0)  # symmetrise against round-off; distances are >= 0
    np.fill_diagonal(D, 0.0)
    return leaves_list(linkage(squareform(D, checks=False), method="average")).astype(np.int64)


COLORBAR_ROOM = 140  # the colour bar, its tick labels and title, the right margin


def heatmap_height(n: int, cap: int = 1150) -> int:
    """Figure height (px) of the full matrix in its own full-width row: 720 up to ~500 classes, then about
    one screen pixel per class plus the title, note and axis margins (1000 classes: 1150), up to ``cap``."""
    return int(min(max(720, n + 150), cap))


def cosine_heatmap(C, names, context, order=None, max_bytes: int = HEATMAP_MAX_BYTES,
                   color_range: tuple[float, float] | None = None, order_name: str = "clustering order",
                   height: int = 720) -> go.Figure:
    """The full N×N cosine matrix (paper Fig. 3 left, Figs. 14–19), within ``max_bytes`` of figure JSON.

    Two encodings, the exact one whenever it fits:

    * **exact** (N up to ~400 at 1 MB): a ``go.Heatmap`` with float32 ``z`` (sent as base64 typed array)
      on categorical axes of class names. Hover: row name, column name, the exact cosine.
    * **image + block hover** (larger N, e.g. 1000 classes): exact per-cell hover is impossible within
      1 MB in plotly — a hover value needs one number per cell in the JSON (N² ≥ 1 byte → 1.33 MB of
      base64 for N = 1000, before any picture) and hover templates cannot compute a value from a colour
      or a code. So the picture and the hover are split:

      - the picture is a server-side cividis colour map of every cell, a palette PNG sent as a data URI
        in a ``go.Image`` trace (crisp when zoomed: one image pixel per cell). A PNG is as large as the
        matrix's entropy: 1000 classes of a real-looking model take ~1.2 MB of JSON at 256 levels, so the
        number of colour levels is chosen with the hover resolution — the first of (256, 128 or 64
        levels with hover blocks of ≤ 5 classes), (32 or 16 levels, ≤ 9), … that fits. Each colour
        stands for 1/levels of the range; the colour bar stays continuous.
      - hover is an invisible ``go.Heatmap`` over b×b blocks of classes (b odd, the smallest that fits
        the rest of the budget: 5–7 for N = 1000) on categorical axes whose labels are the blocks'
        class names, so the tooltip names the classes under the cursor and gives the block's mean
        cosine (the diagonal excluded from diagonal blocks). Exact values for any classes are in
        ``cosine_submatrix`` and in the CSV (``cosine_frame``).
      - the colour bar is an invisible scatter carrying the colour scale with cmin/cmax = data range.

      The image is placed in block units (dx = 1/b) and block j is centred on class j·b, which is where
      plotly centres category j; so the hover cells align exactly with the picture.

    ``height`` in pixels: 720 suits the full page width; about 540 keeps the (square) matrix filling a
    half-width column without empty bands above and below. ``order`` permutes rows and columns (e.g. ``cluster_order(C)``). ``color_range`` overrides the data
    range (e.g. the off-diagonal range to spend the colours on the pairs). The encoding used is recorded
    in ``fig.layout.meta["dtviz"]`` (mode, block, levels, order).
    """
    C = _square_matrix(C)
    n = C.shape[0]
    names = _check_names(names, n)
    if order is not None:
        order = _check_order(order, n)
        C, names = C[np.ix_(order, order)], [names[i] for i in order]
    lo, hi = (float(C.min()), float(C.max())) if color_range is None else map(float, color_range)
    if not hi > lo:  # a constant matrix still needs a drawable colour bar
        lo, hi = lo - 1e-6, hi + 1e-6
    labels = unique_labels(names)
    row, rows = row_nouns(context)
    axis_title = f"{row} ({order_name})" if order is not None else f"{row} id"
    what = f"Cosine similarity of c between {rows} ({n}×{n})"
    meta = {"order": None if order is None else "custom", "n": n, "range": [lo, hi]}

    if _exact_heatmap_bytes(n, labels) <= 0.9 * max_bytes:
        fig = _exact_heatmap(C, labels, lo, hi)
        meta.update(mode="exact", block=1, levels=None)
        _heatmap_layout(fig, what, context, axis_title, n, block=1, meta=meta, height=height)
        if _json_bytes(fig) <= max_bytes:
            return fig
    return _image_heatmap(C, labels, lo, hi, what, context, axis_title, max_bytes, meta, height)


def _json_bytes(fig: go.Figure) -> int:
    return len(fig.to_json().encode("utf-8"))


def _b64_json_len(raw_bytes: int) -> int:
    return int(4 * math.ceil(raw_bytes / 3) * _B64_JSON_FACTOR)


def _labels_bytes(labels) -> int:
    return 2 * sum(len(s.encode("utf-8")) + 3 for s in labels)  # x and y, quotes and comma


def _exact_heatmap_bytes(n: int, labels) -> int:
    return _b64_json_len(4 * n * n) + _labels_bytes(labels) + 12_000  # + template and layout


def _exact_heatmap(C: np.ndarray, labels: list[str], lo: float, hi: float) -> go.Figure:
    return go.Figure(go.Heatmap(
        z=C.astype(np.float32), x=labels, y=labels, zmin=lo, zmax=hi, colorscale=CONTINUOUS, name="cosine",
        colorbar=dict(title=dict(text="cosine"), thickness=18),
        hovertemplate="row: %{y}<br>column: %{x}<br>cosine: %{z:.4f}<extra></extra>"))


def _heatmap_layout(fig: go.Figure, what: str, context, axis_title: str, n: int, block: int, meta: dict,
                    note: str | None = None, height: int = 720) -> None:
    """Square cells, row 0 at the top, class-position ticks (names are in the hover)."""
    _style(fig, what, context, height=height, note=note)
    if n <= 30:
        ticks = dict(tickmode="auto")
    else:  # label a few class positions (category j sits at class position j·block)
        step = _nice_step(n)
        pos = np.arange(0, n, step)
        # exact mode: name the categories themselves, because a number would be read as a category name
        # when class names are numbers ("0", "1", … in a clustered order); image mode: fractional positions
        vals = [fig.data[0].x[p] for p in pos] if block == 1 else (pos / block).tolist()
        ticks = dict(tickmode="array", tickvals=vals, ticktext=[str(p) for p in pos])
    fig.update_xaxes(type="category", title_text=axis_title, showgrid=False, constrain="domain",
                     constraintoward="right", **ticks)  # square plot next to its colour bar
    fig.update_yaxes(type="category", title_text=axis_title, showgrid=False, autorange="reversed",
                     scaleanchor="x", constrain="domain", **ticks)
    fig.update_layout(meta={"dtviz": meta}, plot_bgcolor="white", width=square_width(fig))


def square_width(fig: go.Figure, widest: int = 1100) -> int | None:
    """A width (px) that fits the square plot, its colour bar and the title, so that the dashboard does not
    stretch the figure across the page with the square pushed to one side; None (stretch to the page) when
    that would be wider than ``widest`` (the 1000×1000 matrix needs the page's width)."""
    m = fig.layout.margin
    side = fig.layout.height - (m.t or 0) - (m.b or 0)
    lines = [re.sub(r"<[^>]+>", "", x) for x in str(fig.layout.title.text or "").split("<br>")]
    title = max([9.5 * len(lines[0])] + [6.5 * len(x) for x in lines[1:]]) + 30  # first line 18 px, then <sup>
    width = int(max((m.l or 0) + side + COLORBAR_ROOM, title))
    return width if width <= widest else None


# ---------------------------------------------------------------------------------- image + block hover

def _cividis_palette(levels: int) -> np.ndarray:
    """``levels`` RGB colours: plotly's Cividis scale at the bin centres (k + ½)/levels, interpolated
    linearly in RGB between the stops as plotly.js does, so the image matches the colour bar."""
    scale = pcolors.get_colorscale(CONTINUOUS)
    pos = np.array([float(p) for p, _ in scale])
    rgb = np.array([pcolors.hex_to_rgb(c) if c.startswith("#") else pcolors.unlabel_rgb(c) for _, c in scale], dtype=np.float64)
    x = (np.arange(levels) + 0.5) / levels
    out = np.stack([np.interp(x, pos, rgb[:, k]) for k in range(3)], axis=1)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _quantise(C: np.ndarray, lo: float, hi: float, levels: int) -> np.ndarray:
    """Cell → colour index 0..levels−1 (values outside [lo, hi] clip to the ends)."""
    q = np.floor((C - lo) / (hi - lo) * levels)
    return np.clip(q, 0, levels - 1).astype(np.uint8)


def _png_data_uri(codes: np.ndarray, palette: np.ndarray) -> str:
    from PIL import Image

    img = Image.fromarray(codes, mode="P")
    img.putpalette(palette.reshape(-1).tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _block_means(C: np.ndarray, block: int) -> np.ndarray:
    """Mean of C over centred b×b blocks: block j holds classes j·b − h … j·b + h (h = (b−1)/2), clipped
    to 0..N−1. Diagonal blocks leave out the diagonal (a class with itself says nothing)."""
    n, h = C.shape[0], (block - 1) // 2
    nb = (n - 1 + h) // block + 1
    size = nb * block
    P = np.full((size, size), np.nan)
    off = C.copy()
    if block > 1:
        np.fill_diagonal(off, np.nan)
    P[h:h + n, h:h + n] = off
    tiles = P.reshape(nb, block, nb, block)
    with np.errstate(invalid="ignore"):
        total = np.nansum(tiles, axis=(1, 3))
        count = np.sum(np.isfinite(tiles), axis=(1, 3))
    means = np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)
    empty = ~np.isfinite(means)  # a one-class block on the diagonal: its only cell is the diagonal
    if empty.any():
        means[empty] = np.diag(C)[np.minimum(np.nonzero(empty)[0] * block, n - 1)]
    return means


def _block_ranges(n: int, block: int) -> list[tuple[int, int]]:
    h = (block - 1) // 2
    nb = (n - 1 + h) // block + 1
    return [(max(0, j * block - h), min(n - 1, j * block + h)) for j in range(nb)]


def _block_labels(labels: list[str], block: int, rows: str = "classes") -> list[str]:
    """Hover/category label of each block: every name for small blocks, else first … last (m ``rows``)."""
    out = []
    for a, e in _block_ranges(len(labels), block):
        if e - a < 5:
            out.append(" · ".join(labels[a:e + 1]))
        else:
            out.append(f"{labels[a]} … {labels[e]} ({e - a + 1} {rows})")
    return out


# Preferred (colour levels, largest hover block) in order: ≥ 64 levels with hover blocks of ≤ 5 classes,
# then fewer levels with coarser hover; the first that fits the budget wins (smallest block within it).
_IMAGE_PLANS = ((256, 5), (128, 5), (64, 5), (32, 9), (16, 9), (8, 15), (4, 25))


def _image_heatmap(C, labels, lo, hi, what, context, axis_title, max_bytes, meta, height: int = 720) -> go.Figure:
    n = C.shape[0]
    row, rows = row_nouns(context)
    skeleton = 16_000  # template, layout, colour-bar trace
    available = 0.97 * max_bytes - skeleton
    sources: dict[int, str] = {}
    hover_cost: dict[int, int] = {}

    def image_cost(levels: int) -> float:
        if levels not in sources:
            sources[levels] = _png_data_uri(_quantise(C, lo, hi, levels), _cividis_palette(levels))
        return len(sources[levels]) * _B64_JSON_FACTOR

    def block_cost(block: int) -> int:
        if block not in hover_cost:
            nb = len(_block_ranges(n, block))
            hover_cost[block] = _b64_json_len(4 * nb * nb) + _labels_bytes(_block_labels(labels, block, rows))
        return hover_cost[block]

    plan = None
    for levels, max_block in _IMAGE_PLANS:
        fitting = [b for b in range(3, max_block + 1, 2) if image_cost(levels) + block_cost(b) <= available]
        if fitting:
            plan = (levels, fitting[0])
            break
    levels, block = plan or (4, 25)
    while True:
        fig = _image_figure(C, sources.get(levels) or _png_data_uri(_quantise(C, lo, hi, levels), _cividis_palette(levels)),
                            _block_labels(labels, block, rows), block, lo, hi)
        meta.update(mode="image", block=block, levels=levels)
        _heatmap_layout(fig, what, context, axis_title, n, block, meta, height=height,
                        note=f"{levels} colour levels · hover: mean over {block}×{block}-{row} blocks · "
                             "exact values: sub-matrix view or CSV")
        if _json_bytes(fig) <= max_bytes or len(_block_ranges(n, block)) <= 8:
            return fig
        block += 2  # the estimate was short (very long class names): coarser hover


def _image_figure(C, source, hover_labels, block, lo, hi) -> go.Figure:
    fig = go.Figure()
    # The picture: one pixel per cell, in block units so that block j's cells sit on category j.
    fig.add_trace(go.Image(source=source, x0=hover_labels[0], y0=hover_labels[0], dx=1 / block, dy=1 / block,
                           hoverinfo="skip", name="cosine image"))
    clear = [[0, "rgba(0,0,0,0)"], [1, "rgba(0,0,0,0)"]]
    fig.add_trace(go.Heatmap(
        z=_block_means(C, block).astype(np.float32), x=hover_labels, y=hover_labels, colorscale=clear,
        showscale=False, name="hover", hoverlabel=dict(bgcolor="white"),
        hovertemplate=(f"rows: %{{y}}<br>columns: %{{x}}<br>mean cosine of this {block}×{block} block: "
                       "%{z:.4f}<extra></extra>")))
    fig.add_trace(_colourbar_trace(hover_labels[0], lo, hi, "cosine"))
    return fig


def _colourbar_trace(anchor, lo: float, hi: float, title: str) -> go.Scatter:
    """An invisible point that only carries the colour scale, so the image gets a real colour bar."""
    return go.Scatter(x=[anchor], y=[anchor], mode="markers", hoverinfo="skip", showlegend=False, name="colour bar",
                      marker=dict(size=0.001, opacity=0, color=[lo], cmin=lo, cmax=hi, colorscale=CONTINUOUS,
                                  showscale=True, colorbar=dict(title=dict(text=title), thickness=18)))


def heatmap_hover_layer(fig: go.Figure):
    """The trace that carries the heatmap's hover (the exact heatmap or the block layer)."""
    return next(t for t in fig.data if t.type == "heatmap")


def cosine_frame(C, names, order=None, row: str = "class") -> pd.DataFrame:
    """The full matrix as a table (rows and columns named), in the heatmap's order — its CSV. ``row``: the
    first column's header, what a row is ("class", "prompt", "condition": dtviz.sources.base.row_noun)."""
    C = _square_matrix(C)
    names = _check_names(names, C.shape[0])
    idx = np.arange(C.shape[0]) if order is None else _check_order(order, C.shape[0])
    labels = unique_labels(names)
    df = pd.DataFrame(C[np.ix_(idx, idx)], columns=[labels[i] for i in idx])
    df.insert(0, row, [labels[i] for i in idx])
    return df


def cosine_submatrix(C, ids, names, context) -> go.Figure:
    """The zoomed k×k sub-matrix for chosen or random classes (Fig. 3 right) with values in the cells."""
    C = _square_matrix(C)
    names = _check_names(names, C.shape[0])
    ids = np.asarray(list(ids), dtype=np.int64).reshape(-1)
    if ids.size == 0 or ids.min() < 0 or ids.max() >= C.shape[0]:
        raise DtvizInputError(f"class ids must lie in 0..{C.shape[0] - 1}; got {ids.tolist()[:10]}.")
    sub = C[np.ix_(ids, ids)]
    all_labels = unique_labels(names)
    labels = unique_labels([all_labels[i] for i in ids])  # the same class chosen twice stays two rows
    k = len(ids)
    fig = go.Figure(go.Heatmap(
        z=sub, x=labels, y=labels, colorscale=CONTINUOUS, zmin=float(sub.min()), zmax=float(sub.max()),
        text=[[f"{v:.3f}" for v in row] for row in sub], texttemplate="%{text}",
        textfont=dict(size=13 if k <= 12 else 10 if k <= 24 else 8),
        colorbar=dict(title=dict(text="cosine"), thickness=18), xgap=1, ygap=1,
        hovertemplate="row: %{y}<br>column: %{x}<br>cosine: %{z:.4f}<extra></extra>"))
    row, rows = row_nouns(context)
    _style(fig, f"Cosine similarity of c, {k} {rows}", context, height=max(520, 34 * k + 330))
    short = [_short(s) for s in labels]  # long names would squeeze the cells; the hover has them in full
    fig.update_xaxes(type="category", title_text=row, tickangle=-35, showgrid=False, tickmode="array",
                     tickvals=labels, ticktext=short, tickfont=dict(size=12))
    fig.update_yaxes(type="category", title_text=row, autorange="reversed", showgrid=False, tickmode="array",
                     tickvals=labels, ticktext=short, tickfont=dict(size=12))
    return fig


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def offdiag_histogram(values, context, bins: int = 80) -> go.Figure:
    """Histogram of the off-diagonal cosine similarities (one count per pair of rows i < j)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    row, rows = row_nouns(context)
    if values.size == 0:
        raise DtvizInputError(f"no {row} pairs to histogram (need at least two {rows}).")
    counts, edges = np.histogram(values, bins=bins)
    fig = go.Figure(_bars_from_edges(counts, edges, "pairs", OKABE_ITO[0], "cosine"))
    mean = float(values.mean())
    _marker_line(fig, mean, f"mean {mean:.4f}", "x", colour=HEAD_COLOUR, dash="dot")
    return _style(fig, f"Off-diagonal cosine similarity ({values.size:,} {row} pairs)", context,
                  "cosine similarity", f"number of {row} pairs")

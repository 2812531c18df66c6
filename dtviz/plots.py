"""Plotly figure builders for every view of the paper. UI-free: no streamlit here.

Each builder returns a ``go.Figure`` whose title says what is plotted and for which model/settings
(``context``: a string such as ``"builtin · t=0 · y+t · τ=0.01"`` or the dashboard's dict
``{"model", "t", "part", "tau", "family", "d"}``), with axis titles carrying units, colour-blind-safe
colours (cividis for continuous values, Okabe-Ito for categories) and fonts readable in a screenshot.

    cosine_heatmap, cluster_order, cosine_submatrix, offdiag_histogram      Fig. 3 (and 14–19)
    magnitude_histogram, dim_profile, dims_below_curve                     Figs. 5, 6, 11
    variance_per_dim, variance_spectrum, cumulative_variance               Fig. 9 (and 26–31)
    projection_panels                                                      Fig. 13 (and 20–25)
    compare_bars                                                           Table 1, Fig. 1
    lines                                                                  Fig. 12 (dynamics over t / steps)
    neighbour_bars                                                         nearest classes, full vs head
    dim_across_classes, image_tiles, tile_scale                            live pruning: one dim, sample grids
    figure_config, figure_csv, *_frame                                     downloads (PNG/SVG, CSV)
"""
from __future__ import annotations

import base64
import io
import math
from collections import Counter

import numpy as np
import pandas as pd
import plotly.colors as pcolors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dtviz import stats
from dtviz.errors import DtvizInputError

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
CONTINUOUS = "Cividis"  # perceptually uniform and colour-blind safe
HEAD_COLOUR, TAIL_COLOUR, TAU_COLOUR = "#D55E00", "#0072B2", "#CC79A7"
TEMPLATE = "plotly_white"
FONT = dict(family="Arial, Helvetica, sans-serif", size=14)

HEATMAP_MAX_BYTES = 1_000_000  # figure JSON budget for the full cosine matrix (issue 4)
# to_json escapes "/" as "\u002f" (6 characters) for safe embedding in <script>; base64 text holds
# "/" at a rate of 1/64, so each base64 character costs ~1.08 characters of figure JSON.
_B64_JSON_FACTOR = 1 + 5 / 64


# ============================================================================================ helpers

def context_text(context) -> str:
    """``context`` (string or the dashboard's dict) as one line: "builtin · d=128 · t=0 · y+t · τ=0.01"."""
    if context is None:
        return ""
    if not isinstance(context, dict):
        return str(context)
    c = {k: v for k, v in context.items() if v is not None and v != ""}
    parts = []
    if "model" in c:
        parts.append(str(c.pop("model")))
    if "family" in c:
        parts.append(str(c.pop("family")))
    if "d" in c:
        parts.append(f"d={c.pop('d')}")
    if "t" in c:
        parts.append(f"t={c.pop('t')}")
    if "part" in c:
        parts.append(f"part {c.pop('part')}")
    if "tau" in c:
        parts.append(f"τ={c.pop('tau')}")
    parts += [f"{k}={v}" for k, v in c.items()]
    return " · ".join(parts)


def _title(what: str, context, note: str | None = None) -> dict:
    """What is plotted on the first line, the model and settings on the second (kept in screenshots),
    an optional note on how it is drawn on a third."""
    lines = [what] + [f"<sup>{s}</sup>" for s in (context_text(context), note) if s]
    return dict(text="<br>".join(lines), x=0.01, xanchor="left")


def _style(fig: go.Figure, what: str, context, x_title: str | None = None, y_title: str | None = None,
           height: int = 480, note: str | None = None) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=_title(what, context, note), font=FONT, height=height,
                      margin=dict(l=70, r=30, t=110 if note else 90, b=60), hoverlabel=dict(bgcolor="white", font_size=13))
    if x_title is not None:
        fig.update_xaxes(title_text=x_title)
    if y_title is not None:
        fig.update_yaxes(title_text=y_title)
    return fig


def _marker_line(fig: go.Figure, value: float, text: str, axis: str = "x", log: bool = False,
                 colour: str = TAU_COLOUR, dash: str = "dash") -> None:
    """A labelled vertical (axis "x") or horizontal ("y") line across the plot. The label is placed by
    hand because plotly positions shape annotations in log10 units on log axes."""
    pos = math.log10(value) if log else value
    if axis == "x":
        fig.add_vline(float(value), line=dict(color=colour, dash=dash, width=2))
        fig.add_annotation(x=pos, xref="x", y=1, yref="paper", yanchor="bottom", xanchor="left", showarrow=False,
                           text=text, font=dict(color=colour), bgcolor="rgba(255,255,255,0.85)")
    else:
        fig.add_hline(float(value), line=dict(color=colour, dash=dash, width=1.5))
        fig.add_annotation(y=pos, yref="y", x=1, xref="paper", xanchor="right", yanchor="bottom", showarrow=False,
                           text=text, font=dict(color=colour), bgcolor="rgba(255,255,255,0.85)")


def _tau_line(fig: go.Figure, tau: float | None, log: bool = False, text: str | None = None) -> None:
    """A dashed line at the threshold τ, labelled, so screenshots say which τ the counts refer to."""
    if tau is not None:
        _marker_line(fig, float(tau), text or f"τ = {tau:g}", "x", log)


def _categorical_colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def unique_labels(names) -> list[str]:
    """Class names made unique (plotly merges equal category labels): duplicates get " (#id)"."""
    names = [str(n) for n in names]
    counts = Counter(names)
    return [f"{n} (#{i})" if counts[n] > 1 else n for i, n in enumerate(names)]


def _square_matrix(C, what: str = "cosine matrix") -> np.ndarray:
    C = np.asarray(C, dtype=np.float64)
    if C.ndim != 2 or C.shape[0] != C.shape[1] or C.shape[0] == 0:
        raise DtvizInputError(f"expected a square N×N {what}, got shape {C.shape}.")
    if not np.isfinite(C).all():
        raise DtvizInputError(f"the {what} holds NaN/Inf values; expected finite numbers.")
    return C


def _check_names(names, n: int) -> list[str]:
    names = [str(x) for x in names]
    if len(names) != n:
        raise DtvizInputError(f"expected {n} class names (one per row), got {len(names)}.")
    return names


def _check_order(order, n: int) -> np.ndarray:
    order = np.asarray(order, dtype=np.int64).reshape(-1)
    if order.size != n or not np.array_equal(np.sort(order), np.arange(n)):
        raise DtvizInputError(f"order must be a permutation of 0..{n - 1}.")
    return order


def _nice_step(n: int, target: int = 8) -> int:
    """1, 2, 5, 10, 20, 50, … so that about ``target`` ticks cover 0..n."""
    raw = max(n / target, 1)
    mag = 10 ** math.floor(math.log10(raw))
    return int(next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw))


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
    axis_title = f"class ({order_name})" if order is not None else "class id"
    what = f"Cosine similarity of c between classes ({n}×{n})"
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
    fig.update_layout(meta={"dtviz": meta}, plot_bgcolor="white")


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


def _block_labels(labels: list[str], block: int) -> list[str]:
    """Hover/category label of each block: every name for small blocks, else first … last."""
    out = []
    for a, e in _block_ranges(len(labels), block):
        if e - a < 5:
            out.append(" · ".join(labels[a:e + 1]))
        else:
            out.append(f"{labels[a]} … {labels[e]} ({e - a + 1} classes)")
    return out


# Preferred (colour levels, largest hover block) in order: ≥ 64 levels with hover blocks of ≤ 5 classes,
# then fewer levels with coarser hover; the first that fits the budget wins (smallest block within it).
_IMAGE_PLANS = ((256, 5), (128, 5), (64, 5), (32, 9), (16, 9), (8, 15), (4, 25))


def _image_heatmap(C, labels, lo, hi, what, context, axis_title, max_bytes, meta, height: int = 720) -> go.Figure:
    n = C.shape[0]
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
            hover_cost[block] = _b64_json_len(4 * nb * nb) + _labels_bytes(_block_labels(labels, block))
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
                            _block_labels(labels, block), block, lo, hi)
        meta.update(mode="image", block=block, levels=levels)
        _heatmap_layout(fig, what, context, axis_title, n, block, meta, height=height,
                        note=f"{levels} colour levels · hover: mean over {block}×{block}-class blocks · "
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


def cosine_frame(C, names, order=None) -> pd.DataFrame:
    """The full matrix as a table (rows and columns named), in the heatmap's order — its CSV."""
    C = _square_matrix(C)
    names = _check_names(names, C.shape[0])
    idx = np.arange(C.shape[0]) if order is None else _check_order(order, C.shape[0])
    labels = unique_labels(names)
    df = pd.DataFrame(C[np.ix_(idx, idx)], columns=[labels[i] for i in idx])
    df.insert(0, "class", [labels[i] for i in idx])
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
    _style(fig, f"Cosine similarity of c, {k} classes", context, height=max(520, 34 * k + 330))
    short = [_short(s) for s in labels]  # long names would squeeze the cells; the hover has them in full
    fig.update_xaxes(type="category", title_text="class", tickangle=-35, showgrid=False, tickmode="array",
                     tickvals=labels, ticktext=short, tickfont=dict(size=12))
    fig.update_yaxes(type="category", title_text="class", autorange="reversed", showgrid=False, tickmode="array",
                     tickvals=labels, ticktext=short, tickfont=dict(size=12))
    return fig


def _short(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def offdiag_histogram(values, context, bins: int = 80) -> go.Figure:
    """Histogram of the off-diagonal cosine similarities (one count per class pair i < j)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise DtvizInputError("no class pairs to histogram (need at least two classes).")
    counts, edges = np.histogram(values, bins=bins)
    fig = go.Figure(_bars_from_edges(counts, edges, "pairs", OKABE_ITO[0], "cosine"))
    mean = float(values.mean())
    _marker_line(fig, mean, f"mean {mean:.4f}", "x", colour=HEAD_COLOUR, dash="dot")
    return _style(fig, f"Off-diagonal cosine similarity ({values.size:,} class pairs)", context,
                  "cosine similarity", "number of class pairs")


def _bars_from_edges(counts, edges, what: str, colour: str, value_name: str) -> go.Bar:
    """Bars spanning their bins exactly (drawn from the left edge, so log axes work too)."""
    edges = np.asarray(edges, dtype=np.float64)
    return go.Bar(x=edges[:-1], y=counts, width=np.diff(edges), offset=0, marker=dict(color=colour, line=dict(width=0)),
                  customdata=np.stack([edges[:-1], edges[1:]], axis=1), name=what,
                  hovertemplate=f"{value_name} in [%{{customdata[0]:.4g}}, %{{customdata[1]:.4g}}): %{{y}} {what}<extra></extra>")


# ============================================================================= magnitudes: Figs. 5, 6, 11

def magnitude_histogram(E, context, log_x: bool = False, log_y: bool = False, tau: float | None = None,
                        bins: int = 60) -> go.Figure:
    """Histogram of |c_i| over all entries of E (Fig. 5): a vector (d entries, e.g. c̄) or N×d (every
    class's components). Log-x uses log-spaced bins over the non-zero magnitudes; τ is drawn."""
    A = np.asarray(E, dtype=np.float64)
    counts, edges = _magnitude_counts(A, bins, log_x)
    n_entries = A.size
    what = "vector" if A.ndim == 1 else f"{A.shape[0]} classes × {A.shape[1]} dims"
    fig = go.Figure(_bars_from_edges(counts, edges, "components", OKABE_ITO[0], "|c_i|"))
    fig.update_layout(bargap=0)
    if log_x:
        fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    if tau is not None:
        below = int((np.abs(A) < tau).sum())
        _tau_line(fig, tau, log_x, f"τ = {tau:g}: {below:,} of {n_entries:,} below ({below / n_entries:.1%})")
    return _style(fig, f"Magnitude histogram of |c_i| ({what})", context,
                  "|c_i| (absolute component value" + (", log scale)" if log_x else ")"),
                  "number of components" + (" (log scale)" if log_y else ""))


def _magnitude_counts(A: np.ndarray, bins: int, log_x: bool) -> tuple[np.ndarray, np.ndarray]:
    """``stats.magnitude_histogram``, with the outer log edges pinned to the data: 10**log10(min) can
    round one ulp above min and drop the smallest component from the first bin."""
    counts, edges = stats.magnitude_histogram(A, bins=bins, log=log_x)
    if log_x:
        pos = np.abs(A[A != 0])
        if pos.size and counts.sum() != pos.size:
            edges = edges.copy()
            edges[0], edges[-1] = min(edges[0], pos.min()), max(edges[-1], pos.max())
            counts, _ = np.histogram(pos, bins=edges)
    return counts, edges


def magnitude_frame(E, bins: int = 60, log_x: bool = False) -> pd.DataFrame:
    counts, edges = _magnitude_counts(np.asarray(E, dtype=np.float64), bins, log_x)
    return pd.DataFrame({"abs_c_from": edges[:-1], "abs_c_to": edges[1:], "count": counts})


def dim_profile(vectors: dict, context, tau: float | None = None) -> go.Figure:
    """Per-dimension values c_i of chosen classes and of the mean vector (Fig. 6), with the ±τ band:
    components inside the band are the tail that pruning at τ removes."""
    if not vectors:
        raise DtvizInputError("dim_profile needs at least one vector.")
    fig = go.Figure()
    d = None
    for k, (name, v) in enumerate(vectors.items()):
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        d = v.size
        fig.add_trace(go.Scatter(x=np.arange(v.size), y=v, mode="lines", name=str(name), line=dict(width=1.4, color=_categorical_colour(k)),
                                 hovertemplate=f"{name}<br>dim %{{x}}: c_i = %{{y:.4g}}<extra></extra>"))
    if tau is not None:
        fig.add_hrect(y0=-tau, y1=tau, fillcolor=TAU_COLOUR, opacity=0.25, line_width=0, layer="below")
        # the band is thin next to the head values, so say what it is above the plot, not inside it
        fig.add_annotation(xref="paper", yref="paper", x=1, y=1.0, xanchor="right", yanchor="bottom", showarrow=False,
                           font=dict(color=TAU_COLOUR), text=f"shaded band: |c_i| < τ = {tau:g} (tail)")
    fig.update_layout(legend=dict(orientation="h", y=-0.18))
    return _style(fig, f"Per-dimension values of c ({d} dims)", context, "dimension index i", "c_i (value)")


def dim_profile_frame(vectors: dict) -> pd.DataFrame:
    df = pd.DataFrame({str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in vectors.items()})
    df.insert(0, "dim", np.arange(len(df)))
    return df


def dims_below_curve(v, context, tau: float | None = None, normalised: bool = False, taus=None) -> go.Figure:
    """#{i : |v_i| < τ} as τ grows (Fig. 11), raw or as a share of d; log-x τ grid from
    ``stats.default_tau_grid``; the current τ is marked with its count."""
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    taus = stats.default_tau_grid(v) if taus is None else np.asarray(taus, dtype=np.float64)
    raw, share = stats.dims_below_curve(v, taus)
    y = share * 100 if normalised else raw
    unit = "% of dims" if normalised else "dims"
    fig = go.Figure(go.Scatter(x=taus, y=y, mode="lines", line=dict(color=OKABE_ITO[0], width=2.5), name="dims below τ",
                               hovertemplate=f"τ = %{{x:.3g}}: %{{y:.4g}} {unit} below<extra></extra>"))
    if tau is not None:
        r, s = stats.dims_below_curve(v, [tau])
        yv = float(s[0] * 100) if normalised else int(r[0])
        fig.add_trace(go.Scatter(x=[tau], y=[yv], mode="markers", marker=dict(size=12, color=TAU_COLOUR, symbol="diamond"),
                                 name=f"τ = {tau:g}", hovertemplate=f"τ = {tau:g}: %{{y:.4g}} {unit} below<extra></extra>"))
        _tau_line(fig, tau, log=True)
        fig.add_annotation(x=math.log10(tau), y=yv, text=f"{int(r[0])} of {v.size} dims ({s[0]:.1%})",
                           showarrow=True, arrowhead=0, ax=60, ay=30, font=dict(color=TAU_COLOUR))
    fig.update_xaxes(type="log")
    fig.update_layout(showlegend=False)
    return _style(fig, "Dimensions with |c_i| below τ" + (" (share of d)" if normalised else ""), context,
                  "threshold τ (log scale)", "dims with |c_i| < τ" + (" (% of d)" if normalised else " (count)"))


# ================================================================================= variance: Fig. 9

def variance_per_dim(var, context, head=None) -> go.Figure:
    """Per-dimension variance across classes (Fig. 9, Figs. 26–31), head dims highlighted, mean drawn."""
    var = np.asarray(var, dtype=np.float64).reshape(-1)
    is_head = np.zeros(var.size, dtype=bool)
    if head is not None and len(head):
        is_head[np.asarray(head, dtype=np.int64)] = True
    fig = go.Figure()
    for mask, name, colour in ((~is_head, "tail dims", TAIL_COLOUR), (is_head, "head dims", HEAD_COLOUR)):
        if head is None and name == "head dims":
            continue
        idx = np.flatnonzero(mask)
        fig.add_trace(go.Bar(x=idx, y=var[idx], width=1.0, name=f"{name} ({idx.size})" if head is not None else "dims",
                             marker=dict(color=colour, line=dict(width=0)),
                             hovertemplate="dim %{x}: variance %{y:.4g}<extra>" + name + "</extra>"))
    mean = float(var.mean())
    _marker_line(fig, mean, f"mean variance {mean:.3g}", "y", colour="black", dash="dot")
    fig.update_layout(bargap=0, barmode="overlay", legend=dict(orientation="h", y=1.02, x=1, xanchor="right", yanchor="bottom"))
    return _style(fig, "Variance of each dimension of c across classes", context, "dimension index i",
                  "variance across classes (units of c²)")


def variance_spectrum(var, context, log_y: bool = True, head_count: int | None = None) -> go.Figure:
    """Per-dimension variances sorted from largest (Fig. 9b); the first ``head_count`` ranks highlighted."""
    spec = stats.variance_spectrum(var)
    rank = np.arange(1, spec.size + 1)
    colours = np.where(rank <= (head_count or 0), HEAD_COLOUR, TAIL_COLOUR)
    fig = go.Figure(go.Scatter(x=rank, y=spec, mode="lines+markers", line=dict(color=TAIL_COLOUR, width=1.5),
                               marker=dict(size=4, color=colours), name="variance",
                               hovertemplate="rank %{x}: variance %{y:.4g}<extra></extra>"))
    mean = float(spec.mean())
    _marker_line(fig, mean, f"mean variance {mean:.3g}", "y", log_y and mean > 0, colour="black", dash="dot")
    if log_y:
        positive = spec[spec > 0]
        lo_hi = (positive.min(), positive.max()) if positive.size else (1e-12, 1.0)
        fig.update_yaxes(type="log", range=[math.log10(lo_hi[0]) - 0.15, math.log10(lo_hi[1]) + 0.15])
    return _style(fig, "Variance spectrum: dimensions sorted by variance across classes", context,
                  "rank of dimension (1 = largest variance)", "variance (units of c²" + (", log scale)" if log_y else ")"))


def cumulative_variance(var, context, marks=(20,)) -> go.Figure:
    """Share of the total variance held by the k highest-variance dims (Fig. 9b: 15–20 dims hold most)."""
    share = stats.cumulative_variance_share(var) * 100
    k = np.arange(1, share.size + 1)
    fig = go.Figure(go.Scatter(x=k, y=share, mode="lines", line=dict(color=OKABE_ITO[0], width=2.5), name="cumulative share",
                               hovertemplate="top %{x} dims: %{y:.2f}% of the variance<extra></extra>"))
    for m in marks:
        if m <= share.size:
            fig.add_trace(go.Scatter(x=[m], y=[share[m - 1]], mode="markers+text", marker=dict(size=10, color=HEAD_COLOUR),
                                     text=[f"top {m}: {share[m - 1]:.1f}%"], textposition="bottom right",
                                     hoverinfo="skip", showlegend=False))
    fig.update_layout(showlegend=False)
    fig.update_yaxes(range=[0, 101])
    return _style(fig, "Cumulative share of variance across classes", context,
                  "number of highest-variance dims k", "share of total variance (%)")


def variance_frame(var, head=None) -> pd.DataFrame:
    var = np.asarray(var, dtype=np.float64).reshape(-1)
    head_mask = np.zeros(var.size, dtype=bool)
    if head is not None and len(head):
        head_mask[np.asarray(head, dtype=np.int64)] = True
    order = np.argsort(-var, kind="stable")
    rank = np.empty(var.size, dtype=np.int64)
    rank[order] = np.arange(1, var.size + 1)
    return pd.DataFrame({"dim": np.arange(var.size), "variance": var, "head": head_mask, "rank": rank})


# =============================================================================== projection: Fig. 13

LEGEND_GROUPS_MAX = 12  # more groups than this: colours without a legend (a legend of 1000 entries helps nobody)


def projection_panels(panels: dict, names, context, groups=None, method: str = "t-SNE") -> go.Figure:
    """Side-by-side 2-D embeddings, one panel per entry of ``panels`` (Fig. 13 (a)–(d), Figs. 20–25).

    Colouring is the same in every panel: by ``groups`` labels (Okabe-Ito with a legend whose entries
    toggle a group in all panels; beyond 12 groups a cividis colour per group, no legend) or, without
    groups, by class id on a continuous cividis scale. Hover gives the class name (and group)."""
    if not panels:
        raise DtvizInputError("projection_panels needs at least one panel.")
    names = [str(x) for x in names]
    n = len(names)
    for title, Y in panels.items():
        if np.asarray(Y).shape != (n, 2):
            raise DtvizInputError(f"panel {title!r}: expected ({n}, 2) coordinates, got {np.asarray(Y).shape}.")
    titles = list(panels)
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=titles, horizontal_spacing=0.04)
    if groups is not None:
        groups = [str(g) for g in groups]
        if len(groups) != n:
            raise DtvizInputError(f"expected {n} group labels, got {len(groups)}.")
        levels = list(dict.fromkeys(groups))
        members = {g: np.array([i for i in range(n) if groups[i] == g]) for g in levels}
    for k, title in enumerate(titles):
        Y = np.asarray(panels[title], dtype=np.float64)
        hover = "%{text}<br>group: %{customdata}<extra>" + title + "</extra>"
        if groups is not None and len(levels) <= LEGEND_GROUPS_MAX:
            for gi, g in enumerate(levels):
                idx = members[g]
                fig.add_trace(go.Scatter(
                    x=Y[idx, 0], y=Y[idx, 1], mode="markers", name=g, legendgroup=g, showlegend=k == 0,
                    marker=dict(size=6, color=OKABE_ITO[gi % len(OKABE_ITO)], symbol=_group_symbol(gi), opacity=0.85),
                    text=[names[i] for i in idx], customdata=[g] * len(idx), hovertemplate=hover), row=1, col=k + 1)
        elif groups is not None:
            index = {g: gi for gi, g in enumerate(levels)}
            colours = pcolors.sample_colorscale(CONTINUOUS, [index[g] / max(len(levels) - 1, 1) for g in groups])
            fig.add_trace(go.Scatter(
                x=Y[:, 0], y=Y[:, 1], mode="markers", name=title, showlegend=False, text=names, customdata=groups,
                marker=dict(size=6, color=colours, opacity=0.85), hovertemplate=hover), row=1, col=k + 1)
        else:
            fig.add_trace(go.Scatter(
                x=Y[:, 0], y=Y[:, 1], mode="markers", name=title, showlegend=False, text=names, customdata=np.arange(n),
                marker=dict(size=6, color=np.arange(n), colorscale=CONTINUOUS, cmin=0, cmax=max(n - 1, 1), opacity=0.85,
                            showscale=k == len(titles) - 1, colorbar=dict(title=dict(text="class id"), thickness=14)),
                hovertemplate="%{text} (class %{customdata})<extra>" + title + "</extra>"), row=1, col=k + 1)
    fig.update_xaxes(title_text=f"{method} 1", showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(title_text=f"{method} 2", row=1, col=1)
    _style(fig, f"{method} of class vectors: head vs tail dimensions ({n} classes)", context, height=460)
    fig.update_layout(legend=dict(orientation="h", y=-0.12, title=dict(text="group")))
    return fig


def _group_symbol(i: int) -> str:
    # colour repeats are told apart by shape (beyond 8 groups colours come from a continuous scale)
    return ["circle", "square", "diamond", "triangle-up", "cross", "x", "star", "triangle-down"][(i // len(OKABE_ITO)) % 8]


def projection_frame(panels: dict, names, groups=None) -> pd.DataFrame:
    df = pd.DataFrame({"class": [str(x) for x in names]})
    if groups is not None:
        df["group"] = [str(g) for g in groups]
    for title, Y in panels.items():
        Y = np.asarray(Y, dtype=np.float64)
        df[f"{title} · 1"], df[f"{title} · 2"] = Y[:, 0], Y[:, 1]
    return df


# ================================================================================ compare: Table 1, Fig. 1

def compare_bars(rows: list, context) -> go.Figure:
    """nPR and cosine per source side by side (Table 1, Fig. 1): left nPR in % (of c̄ and per-class
    mean), right the mean off-diagonal cosine. ``rows`` as returned by ``dtviz.cli.table_rows``."""
    if not rows:
        raise DtvizInputError("compare_bars needs at least one row.")
    sources = unique_labels([r["source"] for r in rows])
    fig = make_subplots(rows=1, cols=2, subplot_titles=("nPR: share of d in use (%)", "mean off-diagonal cosine"),
                        horizontal_spacing=0.12)
    series = [("npr_mean_vector", "nPR of c̄ (mean vector)", OKABE_ITO[0]),
              ("npr_per_class_mean", "nPR, per-class mean", OKABE_ITO[1])]
    for key, name, colour in series:
        if all(key in r for r in rows):
            y = [100 * float(r[key]) for r in rows]
            fig.add_trace(go.Bar(x=sources, y=y, name=name, marker_color=colour, text=[f"{v:.2f}%" for v in y],
                                 textposition="outside", hovertemplate="%{x}<br>" + name + ": %{y:.3f}%<extra></extra>"), row=1, col=1)
    cos = [float(r["cosine_mean"]) for r in rows]
    fig.add_trace(go.Bar(x=sources, y=cos, name="mean cosine", marker_color=OKABE_ITO[2], text=[f"{v:.4f}" for v in cos],
                         textposition="outside", hovertemplate="%{x}<br>mean cosine: %{y:.4f}<extra></extra>"), row=1, col=2)
    fig.update_yaxes(title_text="nPR (%)", rangemode="tozero", row=1, col=1)
    lo = min(0.0, min(cos))
    fig.update_yaxes(title_text="cosine similarity", range=[lo, max(1.0, max(cos)) * 1.08 if lo >= 0 else 1.08], row=1, col=2)
    fig.update_xaxes(title_text="source")
    fig.update_layout(barmode="group", legend=dict(orientation="h", y=-0.25))
    return _style(fig, f"Compare models: nPR and cosine similarity ({len(rows)} sources)", context, height=500)


def compare_frame(rows: list) -> pd.DataFrame:
    return pd.DataFrame(rows)


# ============================================================================ dynamics: Fig. 12 and more

def lines(x, series: dict, x_title: str, y_title: str, context, title: str | None = None, log_x: bool = False) -> go.Figure:
    """Line chart of one or more series over a shared x (cosine and nPR over t or training step, Fig. 12)."""
    x = np.asarray(x)
    fig = go.Figure()
    for k, (name, y) in enumerate(series.items()):
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if y.size != x.size:
            raise DtvizInputError(f"series {name!r} has {y.size} values for {x.size} x values.")
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=str(name), line=dict(color=_categorical_colour(k), width=2.5),
                                 marker=dict(size=7, symbol=_group_symbol(k)),
                                 hovertemplate=f"{name}<br>{x_title}: %{{x}}<br>{y_title}: %{{y:.4g}}<extra></extra>"))
    if log_x:
        fig.update_xaxes(type="log")
    what = title or f"{', '.join(map(str, series))} over {x_title}"
    _style(fig, what, context, x_title, y_title)
    # Legend at the bottom of the figure, left-aligned: at the top right it ran into the two-line title in
    # narrow columns. Anchored to the container, plotly grows the bottom margin to fit it (and its wrapped
    # rows) below the axis title instead of overlapping it.
    fig.update_layout(legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left"),
                      margin=dict(b=60))
    return fig


# ================================================================================ nearest neighbours

def neighbour_bars(names_full, values_full, names_head, values_head, context, query: str | None = None) -> go.Figure:
    """The nearest classes by cosine in the full space (top) and in the head subspace (bottom)."""
    fig = make_subplots(rows=2, cols=1, subplot_titles=("full space (all d dims)", "head subspace (dims with |c̄_i| ≥ τ)"),
                        vertical_spacing=0.14)
    for row, (names, vals, colour) in enumerate(((names_full, values_full, OKABE_ITO[0]), (names_head, values_head, HEAD_COLOUR)), 1):
        names = unique_labels(names)
        vals = np.asarray(vals, dtype=np.float64).reshape(-1)
        fig.add_trace(go.Bar(y=names, x=vals, orientation="h", marker_color=colour, showlegend=False,
                             name="full space" if row == 1 else "head subspace",
                             text=[f"{v:.4f}" for v in vals], textposition="inside", insidetextanchor="end",
                             hovertemplate="%{y}: cosine %{x:.4f}<extra></extra>"), row=row, col=1)
        fig.update_yaxes(autorange="reversed", type="category", automargin=True, title_text="class", row=row, col=1)
        fig.update_xaxes(title_text="cosine similarity to the query", row=row, col=1)
    what = f"Nearest classes to {query}" if query else "Nearest classes by cosine"
    k = max(len(names_full), len(names_head), 1)
    return _style(fig, what, context, height=2 * (26 * k + 60) + 220)


# ================================================================================== live pruning

def dim_across_classes(values, names, dim: int, context, tau: float | None = None, sort: bool = False) -> go.Figure:
    """The value of one dimension c_dim in every class (a bar per class; hover: class name and value),
    the mean over classes c̄_dim as a dashed line and, with ``tau``, the ±τ band of the tail.
    ``sort``: bars from largest to smallest value instead of by class id."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    names = _check_names(names, values.size)
    ids = np.argsort(-values, kind="stable") if sort else np.arange(values.size)
    x = np.arange(values.size)
    fig = go.Figure(go.Bar(
        x=x if sort else ids, y=values[ids], name=f"c_{dim}", marker=dict(color=OKABE_ITO[0], line=dict(width=0)),
        customdata=np.stack([ids, np.asarray(names, dtype=object)[ids]], axis=1),
        hovertemplate="%{customdata[1]} (class %{customdata[0]})<br>c_" + str(dim) + " = %{y:.4g}<extra></extra>"))
    if tau is not None:
        fig.add_hrect(y0=-tau, y1=tau, fillcolor=TAU_COLOUR, opacity=0.25, line_width=0, layer="below")
    mean = float(values.mean())
    fig.add_hline(mean, line=dict(color="black", dash="dot", width=1.5))
    # the line is named in the note above the plot: a label on it would sit on the bars
    note = f"dotted line: mean over classes c̄_{dim} = {mean:.4g}"
    if tau is not None:
        note += f" · shaded band: |c_{dim}| < τ = {tau:g} (tail)"
    fig.update_layout(bargap=0.1 if values.size <= 64 else 0, showlegend=False)
    x_title = "classes, sorted by value" if sort else "class id"
    return _style(fig, f"Dimension {dim} of c across {values.size} classes", context, x_title, f"c_{dim} (value)",
                  height=380, note=note)


def tile_scale(width: int, target: int = 80) -> int:
    """The whole-number enlargement that brings an image ``width`` pixels wide nearest ``target`` (5 for 16)."""
    return max(1, round(target / max(int(width), 1)))


def image_tiles(images, scale: int | None = None) -> list[str]:
    """Each image (N, H, W, C) in [0, 1] as a PNG data URI, enlarged ``scale``× by nearest neighbour (pixels
    stay crisp); default ``tile_scale`` of the width (5× for 16×16)."""
    from PIL import Image

    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3):
        raise DtvizInputError(f"image_tiles expects (N, H, W, 1 or 3) images; got shape {arr.shape}.")
    scale = int(scale or tile_scale(arr.shape[2]))
    u8 = (np.clip(arr, 0, 1) * 255 + 0.5).astype(np.uint8)
    u8 = u8.repeat(scale, axis=1).repeat(scale, axis=2)
    out = []
    for img in u8:
        buf = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buf, format="PNG", optimize=False)
        out.append("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"))
    return out


# ============================================================================================ downloads

def figure_config(filename: str, fmt: str = "png", scale: int = 3) -> dict:
    """The plotly / ``st.plotly_chart`` config: mode bar always shown, the camera button downloads
    ``fmt`` ("png", "svg", "jpeg" or "webp") at ``scale``× as ``filename``.

    plotly's mode bar has one download button with one format per config; a second, custom button needs
    a JavaScript click handler, which a JSON config (Streamlit) cannot carry. So the page offers the
    format as a switch (``figure_config(name, fmt="svg")``); the HTML report (``dtviz.report``) writes
    its config in JavaScript and has both buttons."""
    fmt = fmt.lower()
    if fmt not in ("png", "svg", "jpeg", "webp"):
        raise DtvizInputError(f"download format must be png, svg, jpeg or webp; got {fmt!r}.")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in str(filename)) or "dtviz-figure"
    return {
        "displayModeBar": True,
        "displaylogo": False,
        "responsive": True,
        "toImageButtonOptions": {"format": fmt, "filename": safe, "scale": max(2, int(scale))},
        "modeBarButtonsToRemove": ["lasso2d", "select2d", "sendChartToCloud", "sendDataToCloud", "editInChartStudio"],
    }


def figure_frame(fig: go.Figure) -> pd.DataFrame:
    """The data behind a figure, one table: a column per field (x, y, z, text, customdata) and a row per
    point (heatmaps in long form: row, column, value), with the trace name. Helper traces (the colour-bar
    point, the heatmap image) are left out; the image heatmap's CSV is ``cosine_frame``."""
    frames = []
    for k, tr in enumerate(fig.data):
        name = tr.name if tr.name is not None else f"trace {k}"
        if tr.type == "image" or name == "colour bar":
            continue
        if tr.type == "heatmap":
            z = np.asarray(tr.z, dtype=np.float64)
            ys = list(tr.y) if tr.y is not None else list(range(z.shape[0]))
            xs = list(tr.x) if tr.x is not None else list(range(z.shape[1]))
            rows, cols = np.meshgrid(np.arange(z.shape[0]), np.arange(z.shape[1]), indexing="ij")
            frames.append(pd.DataFrame({"trace": name, "row": [ys[i] for i in rows.ravel()],
                                        "column": [xs[j] for j in cols.ravel()], "value": z.ravel()}))
            continue
        cols = {}
        for field in ("x", "y", "text", "customdata"):
            val = getattr(tr, field, None)
            if val is None or isinstance(val, str):
                continue
            arr = np.asarray(val, dtype=object)
            if arr.ndim == 2:
                for j in range(arr.shape[1]):
                    cols[f"{field}_{j}"] = arr[:, j]
            else:
                cols[field] = arr.reshape(-1)
        if not cols:
            continue
        length = max(len(v) for v in cols.values())
        cols = {key: v for key, v in cols.items() if len(v) == length}
        df = pd.DataFrame(cols)
        df.insert(0, "trace", name)
        if getattr(tr, "xaxis", None) and tr.xaxis not in ("x", "x1"):
            df.insert(1, "panel", tr.xaxis)
        frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def figure_csv(fig: go.Figure) -> str:
    """``figure_frame(fig)`` as CSV text (for a download button)."""
    return figure_frame(fig).to_csv(index=False)

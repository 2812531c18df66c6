"""Per-dimension profiles of the class vectors c: magnitudes (paper Figs. 5, 6, 11) and the variance
across classes (Fig. 9, Figs. 26–31). UI-free.

    magnitude_histogram, dim_profile, dims_below_curve (+ *_frame)          Figs. 5, 6, 11
    variance_per_dim, variance_spectrum, cumulative_variance (+ frame)     Fig. 9 (and 26–31)
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dtviz.analysis import stats
from dtviz.errors import DtvizInputError
from dtviz.plots.style import (C_I, HEAD_COLOUR, OKABE_ITO, TAIL_COLOUR, TAU_COLOUR, _bars_from_edges,
                               _categorical_colour, _legend_line, _style, _tau_line, esc, row_nouns)


# Legends under the axis title, anchored to the figure's bottom (plotly makes room): above the plot they
# ran into the two-line title in half-width columns.
BOTTOM_LEGEND = dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left")


# ============================================================================= magnitudes: Figs. 5, 6, 11

def magnitude_histogram(E, context, log_x: bool = False, log_y: bool = False, tau: float | None = None,
                        bins: int = 60) -> go.Figure:
    """Histogram of |c_i| over all entries of E (Fig. 5): a vector (d entries, e.g. c̄) or N×d (every
    class's components). Log-x uses log-spaced bins over the non-zero magnitudes; τ is drawn."""
    A = np.asarray(E, dtype=np.float64)
    counts, edges = _magnitude_counts(A, bins, log_x)
    n_entries = A.size
    what = "vector" if A.ndim == 1 else f"{A.shape[0]} {row_nouns(context)[1]} × {A.shape[1]} dims"
    fig = go.Figure(_bars_from_edges(counts, edges, "components", OKABE_ITO[0], f"|{C_I}|"))
    fig.update_layout(bargap=0)
    if log_x:
        fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    if tau is not None:
        below = int((np.abs(A) < tau).sum())
        _tau_line(fig, tau, log_x, f"τ = {tau:g}: {below:,} of {n_entries:,} below ({below / n_entries:.1%})")
    return _style(fig, f"Magnitude histogram of |{C_I}| ({what})", context,
                  f"|{C_I}| (absolute component value" + (", log scale)" if log_x else ")"),
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
    components inside the band are the tail that pruning at τ removes.

    The band is drawn three ways so it shows at every scale: shaded between dashed lines at ±τ (lines
    keep a visible width when 2τ is below a pixel next to head values of ±5), and the first vector's tail
    dims marked on its curve (a marker per dim with |c_i| < τ, named with its count in the legend)."""
    if not vectors:
        raise DtvizInputError("dim_profile needs at least one vector.")
    fig = go.Figure()
    d = None
    for k, (name, v) in enumerate(vectors.items()):
        v = np.asarray(v, dtype=np.float64).reshape(-1)
        d = v.size
        fig.add_trace(go.Scatter(x=np.arange(v.size), y=v, mode="lines", name=esc(name), line=dict(width=1.4, color=_categorical_colour(k)),
                                 hovertemplate=f"{name}<br>dim %{{x}}: {C_I} = %{{y:.4g}}<extra></extra>"))
    if tau is not None:
        fig.add_hrect(y0=-tau, y1=tau, fillcolor=TAU_COLOUR, opacity=0.3, line_width=0, layer="below")
        for y in (-tau, tau):
            fig.add_hline(y, line=dict(color=TAU_COLOUR, dash="dash", width=1.2), layer="below")
        name, first = next(iter(vectors.items()))
        first = np.asarray(first, dtype=np.float64).reshape(-1)
        tail = np.flatnonzero(np.abs(first) < tau)
        fig.add_trace(go.Scatter(x=tail, y=first[tail], mode="markers", name=f"{esc(name)}: {tail.size} tail dims (|{C_I}| < τ)",
                                 marker=dict(color=TAU_COLOUR, size=7, symbol="diamond", line=dict(width=0)),
                                 hovertemplate=f"{name}<br>dim %{{x}}: {C_I} = %{{y:.4g}} (tail)<extra></extra>"))
        # what the band is, above the plot: inside it the text would sit on the curves
        fig.add_annotation(xref="paper", yref="paper", x=1, y=1.0, xanchor="right", yanchor="bottom", showarrow=False,
                           font=dict(color=TAU_COLOUR), text=f"between the dashed lines: |{C_I}| < τ = {tau:g} (tail)")
    fig.update_layout(legend=BOTTOM_LEGEND)
    fig = _style(fig, f"Per-dimension values of c ({d} dims)", context, "dimension index i", f"{C_I} (value)")
    fig.update_layout(margin=dict(b=90))  # room for the legend under the axis title
    return fig


def dim_profile_frame(vectors: dict) -> pd.DataFrame:
    df = pd.DataFrame({str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in vectors.items()})
    df.insert(0, "dim", np.arange(len(df)))
    return df


def dims_below_curve(v, context, tau: float | None = None, normalised: bool = False, taus=None,
                     reference=None) -> go.Figure:
    """#{i : |v_i| < τ} as τ grows (Fig. 11), raw or as a share of d; log-x τ grid from
    ``stats.default_tau_grid``; the current τ is marked with its count. ``reference``: the paper's points
    ({"tau", "share", "label"}, ``dtviz.reference.pruning_markers``) as hollow markers, at their share of d
    (times this d in the raw view), those inside the τ grid's range only."""
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    taus = stats.default_tau_grid(v) if taus is None else np.asarray(taus, dtype=np.float64)
    raw, share = stats.dims_below_curve(v, taus)
    y = share * 100 if normalised else raw
    unit = "% of dims" if normalised else "dims"
    fig = go.Figure(go.Scatter(x=taus, y=y, mode="lines", line=dict(color=OKABE_ITO[0], width=2.5), name="dims below τ",
                               hovertemplate=f"τ = %{{x:.3g}}: %{{y:.4g}} {unit} below<extra></extra>"))
    inside = [m for m in (reference or []) if taus.min() <= m["tau"] <= taus.max()]
    if inside:
        ref_y = [100 * m["share"] if normalised else m["share"] * v.size for m in inside]
        fig.add_trace(go.Scatter(x=[m["tau"] for m in inside], y=ref_y, mode="markers+text", name="paper",
                                 text=["paper" for _ in inside], textposition="bottom right",
                                 textfont=dict(color="#555555", size=11),
                                 marker=dict(size=11, symbol="circle-open", color="#555555", line=dict(width=2)),
                                 customdata=[m["label"] for m in inside],
                                 hovertemplate="%{customdata}<extra>paper</extra>"))
    if tau is not None:
        r, s = stats.dims_below_curve(v, [tau])
        yv = float(s[0] * 100) if normalised else int(r[0])
        fig.add_trace(go.Scatter(x=[tau], y=[yv], mode="markers", marker=dict(size=12, color=TAU_COLOUR, symbol="diamond"),
                                 name=f"τ = {tau:g}", hovertemplate=f"τ = {tau:g}: %{{y:.4g}} {unit} below<extra></extra>"))
        _tau_line(fig, tau, log=True)
        ax, ay = _label_offset(taus, y, tau, yv)
        fig.add_annotation(x=math.log10(tau), y=yv, text=f"{int(r[0])} of {v.size} dims ({s[0]:.1%})",
                           showarrow=True, arrowhead=0, ax=ax, ay=ay, font=dict(color=TAU_COLOUR),
                           bgcolor="rgba(255,255,255,0.85)")
    fig.update_xaxes(type="log")
    fig.update_layout(showlegend=False)
    return _style(fig, f"Dimensions with |{C_I}| below τ" + (" (share of d)" if normalised else ""), context,
                  "threshold τ (log scale)", f"dims with |{C_I}| < τ" + (" (% of d)" if normalised else " (count)"))


LABEL_OFFSET_PX = (70, 45)  # (x, y) from the marked point to its label
PLOT_HEIGHT_PX = 330  # the plot area of a 480 px figure (_style's margins)


def _label_offset(xs, ys, x: float, y: float) -> tuple[int, int]:
    """Pixel offset (ax, ay) of the label of a point on a rising curve (a count below τ, log x): below right,
    under the curve, where neither the curve nor the paper's markers (above it) are; above right near the x
    axis (the curve is still low there), and to the left near the right edge (plotly: ay < 0 is above)."""
    lx = np.log10(np.asarray(xs, dtype=np.float64)[np.asarray(xs) > 0])
    fx = (math.log10(x) - lx.min()) / max(lx.max() - lx.min(), 1e-12) if lx.size else 0.5
    ys = np.asarray(ys, dtype=np.float64)
    fy = (y - min(ys.min(), 0)) / max(ys.max() - min(ys.min(), 0), 1e-12)
    dx, dy = LABEL_OFFSET_PX
    below = int(min(dy, fy * PLOT_HEIGHT_PX - 20))  # stay above the x axis' tick labels
    if fx < 0.75:
        return dx, (below if below >= 25 else -dy)
    return -dx, (-dy if fy < 0.75 else dy)


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
    _legend_line(fig, -0.5, var.size - 0.5, mean, f"mean variance {mean:.3g}")
    fig.update_layout(bargap=0, barmode="overlay", legend=BOTTOM_LEGEND)
    rows = row_nouns(context)[1]
    fig = _style(fig, f"Variance of each dimension of c across {rows}", context, "dimension index i",
                 f"variance across {rows} (units of c²)")
    fig.update_layout(margin=dict(b=90))
    return fig


def variance_spectrum(var, context, log_y: bool = True, head_count: int | None = None) -> go.Figure:
    """Per-dimension variances sorted from largest (Fig. 9b); the first ``head_count`` ranks highlighted."""
    spec = stats.variance_spectrum(var)
    rank = np.arange(1, spec.size + 1)
    colours = np.where(rank <= (head_count or 0), HEAD_COLOUR, TAIL_COLOUR)
    fig = go.Figure(go.Scatter(x=rank, y=spec, mode="lines+markers", line=dict(color=TAIL_COLOUR, width=1.5),
                               marker=dict(size=4, color=colours), name="variance",
                               hovertemplate="rank %{x}: variance %{y:.4g}<extra></extra>"))
    mean = float(spec.mean())
    _legend_line(fig, 1, spec.size, mean, f"mean variance {mean:.3g}")
    fig.update_layout(legend=BOTTOM_LEGEND)
    if log_y:
        positive = spec[spec > 0]
        lo_hi = (positive.min(), positive.max()) if positive.size else (1e-12, 1.0)
        fig.update_yaxes(type="log", range=[math.log10(lo_hi[0]) - 0.15, math.log10(lo_hi[1]) + 0.15])
    fig = _style(fig, f"Variance spectrum: dimensions sorted by variance across {row_nouns(context)[1]}", context,
                 "rank of dimension (1 = largest variance)", "variance (units of c²" + (", log scale)" if log_y else ")"))
    fig.update_layout(margin=dict(b=90))
    return fig


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
    return _style(fig, f"Cumulative share of variance across {row_nouns(context)[1]}", context,
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

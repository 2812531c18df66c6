"""House style of every figure: palette, template and fonts, the two-line title that names the model and
settings, marker and τ lines, and the input checks the builders share. UI-free: no streamlit here.

No figure of the paper of its own; every module of ``dtviz.plots`` draws through these helpers, so a
screenshot of any view has the same colours, fonts and title layout.
"""
from __future__ import annotations

import html
import math
from collections import Counter

import numpy as np
import plotly.graph_objects as go

from dtviz.errors import DtvizInputError

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
CONTINUOUS = "Cividis"  # perceptually uniform and colour-blind safe
HEAD_COLOUR, TAIL_COLOUR, TAU_COLOUR = "#D55E00", "#0072B2", "#CC79A7"
TEMPLATE = "plotly_white"
FONT = dict(family="Arial, Helvetica, sans-serif", size=14)
# Tick numbers never with SI prefixes ("10µ" reads as micro-units of something): log axes as 1e-5,
# linear axes in full (12,000 and 0.0001, not 1.2e+4).
LOG_AXIS_NUMBERS = dict(exponentformat="e", showexponent="all")
LINEAR_AXIS_NUMBERS = dict(exponentformat="none", separatethousands=True)


def sub(symbol: str, index) -> str:
    """A subscript in plotly's HTML subset: sub("c", "i") -> "c<sub>i</sub>" (no raw "c_i" in figures)."""
    return f"{symbol}<sub>{index}</sub>"


C_I = sub("c", "i")  # the component c_i, as figure text


# ============================================================================================ helpers

def esc(text) -> str:
    """Text from a file (a class or prompt name, a model name) as literal figure text: plotly renders a subset of
    HTML in labels, hover and titles (links, styles), so < > & are escaped wherever such text enters a figure."""
    return html.escape(str(text), quote=False)


def context_text(context) -> str:
    """``context`` (string or the dashboard's dict) as one line: "builtin · d=128 · t=0 · y+t · τ=0.01"."""
    if context is None:
        return ""
    if not isinstance(context, dict):
        return esc(context)
    c = {k: v for k, v in context.items() if v is not None and v != "" and k not in ("row", "rows")}
    parts = []
    if "model" in c:
        parts.append(esc(c.pop("model")))
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
    parts += [f"{esc(k)}={esc(v)}" for k, v in c.items()]
    return " · ".join(parts)


def row_nouns(context) -> tuple[str, str]:
    """What the rows are, singular and plural, for axis titles and hover: the context dict's "row" / "rows"
    (the dashboard puts dtviz.sources.base.row_noun there), else ("class", "classes")."""
    if isinstance(context, dict) and context.get("row") and context.get("rows"):
        return str(context["row"]), str(context["rows"])
    return "class", "classes"


def _title(what: str, context, note: str | None = None) -> dict:
    """What is plotted on the first line, the model and settings on the second (kept in screenshots),
    an optional note on how it is drawn on a third."""
    lines = [what] + [f"<sup>{s}</sup>" for s in (context_text(context), note) if s]
    return dict(text="<br>".join(lines), x=0.01, xanchor="left")


def _style(fig: go.Figure, what: str, context, x_title: str | None = None, y_title: str | None = None,
           height: int = 480, note: str | None = None) -> go.Figure:
    fig.update_layout(template=TEMPLATE, title=_title(what, context, note), font=FONT, height=height,
                      margin=dict(l=70, r=30, t=110 if note else 90, b=60), hoverlabel=dict(bgcolor="white", font_size=13))
    _number_format(fig)
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


def _number_format(fig: go.Figure) -> None:
    """LOG_AXIS_NUMBERS on log axes, LINEAR_AXIS_NUMBERS on the others (call after setting axis types)."""
    def fmt(axis):
        axis.update(**(LOG_AXIS_NUMBERS if axis.type == "log" else LINEAR_AXIS_NUMBERS))

    fig.for_each_xaxis(fmt)
    fig.for_each_yaxis(fmt)


def _legend_line(fig: go.Figure, x0: float, x1: float, y: float, text: str, colour: str = "black",
                 dash: str = "dot") -> None:
    """A horizontal line from x0 to x1 at ``y``, named in the legend: a label drawn on the plot would sit
    on the data or, near an axis, on its tick labels."""
    fig.add_trace(go.Scatter(x=[x0, x1], y=[y, y], mode="lines", name=text, line=dict(color=colour, dash=dash, width=1.5),
                             hovertemplate=text + "<extra></extra>", showlegend=True))


def _tau_line(fig: go.Figure, tau: float | None, log: bool = False, text: str | None = None) -> None:
    """A dashed line at the threshold τ, labelled, so screenshots say which τ the counts refer to."""
    if tau is not None:
        _marker_line(fig, float(tau), text or f"τ = {tau:g}", "x", log)


def _categorical_colour(i: int) -> str:
    return OKABE_ITO[i % len(OKABE_ITO)]


def unique_labels(names) -> list[str]:
    """Class names made unique (plotly merges equal category labels): duplicates get " (#id)"; escaped (``esc``)."""
    names = [esc(n) for n in names]
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


def _bars_from_edges(counts, edges, what: str, colour: str, value_name: str) -> go.Bar:
    """Bars spanning their bins exactly (drawn from the left edge, so log axes work too)."""
    edges = np.asarray(edges, dtype=np.float64)
    return go.Bar(x=edges[:-1], y=counts, width=np.diff(edges), offset=0, marker=dict(color=colour, line=dict(width=0)),
                  customdata=np.stack([edges[:-1], edges[1:]], axis=1), name=what,
                  hovertemplate=f"{value_name} in [%{{customdata[0]:.4g}}, %{{customdata[1]:.4g}}): %{{y}} {what}<extra></extra>")

"""The remaining views, one builder each: head-vs-tail projection (paper Fig. 13, Figs. 20–25), the model
comparison (Table 1, Fig. 1), dynamics over t or training (Fig. 12), nearest neighbours, and the live
pruning page's dimension bars and sample tiles. UI-free.

    projection_panels, projection_frame                                    Fig. 13 (and 20–25)
    compare_bars, compare_frame                                            Table 1, Fig. 1
    lines                                                                  Fig. 12 (dynamics over t / steps)
    neighbour_bars                                                         nearest classes, full vs head
    dim_across_classes, image_tiles, tile_scale                            live pruning: one dim, sample grids
"""
from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import plotly.colors as pcolors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dtviz.errors import DtvizInputError
from dtviz.plots.style import (CONTINUOUS, HEAD_COLOUR, OKABE_ITO, TAU_COLOUR, _categorical_colour, _check_names,
                               _style, esc, row_nouns, sub, unique_labels)


# =============================================================================== projection: Fig. 13

LEGEND_GROUPS_MAX = 12  # more groups than this: colours without a legend (a legend of 1000 entries helps nobody)


def projection_panels(panels: dict, names, context, groups=None, method: str = "t-SNE", scores: dict | None = None) -> go.Figure:
    """Side-by-side 2-D embeddings, one panel per entry of ``panels`` (Fig. 13 (a)–(d), Figs. 20–25).

    ``scores``: panel title -> its class-structure score (dtviz.analysis.structure.knn_overlap: the share of each
    row's 10 nearest rows, in the panel's dims, that are its 10 nearest in all dims), written under the title.

    Colouring is the same in every panel: by ``groups`` labels (Okabe-Ito with a legend whose entries
    toggle a group in all panels; beyond 12 groups a cividis colour per group, no legend) or, without
    groups, by class id on a continuous cividis scale. Hover gives the class name (and group)."""
    if not panels:
        raise DtvizInputError("projection_panels needs at least one panel.")
    names = [esc(x) for x in names]
    n = len(names)
    for title, Y in panels.items():
        if np.asarray(Y).shape != (n, 2):
            raise DtvizInputError(f"panel {title!r}: expected ({n}, 2) coordinates, got {np.asarray(Y).shape}.")
    titles = list(panels)
    row, rows = row_nouns(context)
    # "(b) head only: 12 dims, …" on two lines: four titles side by side share the width
    scores = scores or {}
    shown = [t.replace(": ", "<br>", 1) + (f"<br>class structure kept: {scores[t]:.2f}" if t in scores else "")
             for t in titles]
    fig = make_subplots(rows=1, cols=len(titles), subplot_titles=shown, horizontal_spacing=0.04)
    fig.update_annotations(font_size=13)
    if groups is not None:
        groups = [esc(g) for g in groups]
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
                            showscale=k == len(titles) - 1, colorbar=dict(title=dict(text=f"{row} id"), thickness=14)),
                hovertemplate="%{text} (" + row + " %{customdata})<extra>" + title + "</extra>"), row=1, col=k + 1)
    fig.update_xaxes(title_text=f"{method} 1", showticklabels=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, zeroline=False)
    fig.update_yaxes(title_text=f"{method} 2", row=1, col=1)
    _style(fig, f"{method} of {row} embeddings by head vs. tail dimensions ({n} {rows})", context, height=500)
    fig.update_layout(margin=dict(t=160 if scores else 140))  # the panel titles sit below the two-line figure title
    fig.update_layout(legend=dict(orientation="h", y=-0.12, title=dict(text="group")))
    return fig


def _group_symbol(i: int) -> str:
    # colour repeats are told apart by shape (beyond 8 groups colours come from a continuous scale)
    return ["circle", "square", "diamond", "triangle-up", "cross", "x", "star", "triangle-down"][(i // len(OKABE_ITO)) % 8]


def projection_frame(panels: dict, names, groups=None, row: str = "class") -> pd.DataFrame:
    """The panels' coordinates as a table; ``row``: the first column's header (dtviz.sources.base.row_noun)."""
    df = pd.DataFrame({row: [str(x) for x in names]})
    if groups is not None:
        df["group"] = [str(g) for g in groups]
    for title, Y in panels.items():
        Y = np.asarray(Y, dtype=np.float64)
        df[f"{title} · 1"], df[f"{title} · 2"] = Y[:, 0], Y[:, 1]
    return df


# ================================================================================ compare: Table 1, Fig. 1

def compare_bars(rows: list, context) -> go.Figure:
    """nPR and cosine per source side by side (Table 1, Fig. 1): left nPR in % (of c̄ and per-class
    mean), right the mean off-diagonal cosine. ``rows`` as returned by ``dtviz.cli.main.table_rows``; rows of family
    "paper" (``dtviz.reference.compare_rows``) are the paper's reported values, drawn hatched; a value a row
    does not have (None) leaves its bar out."""
    if not rows:
        raise DtvizInputError("compare_bars needs at least one row.")
    sources = unique_labels([r["source"] for r in rows])
    hatch = dict(pattern=dict(shape=["/" if r.get("family") == "paper" else "" for r in rows], solidity=0.35))
    fig = make_subplots(rows=1, cols=2, subplot_titles=("nPR: share of d in use (%)", "mean off-diagonal cosine"),
                        horizontal_spacing=0.12)
    series = [("npr_mean_vector", "nPR of c̄ (mean vector)", OKABE_ITO[0]),
              ("npr_per_class_mean", "nPR, per-class mean", OKABE_ITO[1])]
    for key, name, colour in series:
        if all(key in r for r in rows) and any(r[key] is not None for r in rows):
            y = [None if r[key] is None else 100 * float(r[key]) for r in rows]
            fig.add_trace(go.Bar(x=sources, y=y, name=name, marker=dict(color=colour, **hatch),
                                 text=["" if v is None else f"{v:.2f}%" for v in y],
                                 textposition="outside", hovertemplate="%{x}<br>" + name + ": %{y:.3f}%<extra></extra>"), row=1, col=1)
    cos = [float(r["cosine_mean"]) for r in rows]
    fig.add_trace(go.Bar(x=sources, y=cos, name="mean cosine", marker=dict(color=OKABE_ITO[2], **hatch), text=[f"{v:.4f}" for v in cos],
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

def lines(x, series: dict, x_title: str, y_title: str, context, title: str | None = None, log_x: bool = False,
          log_y: bool = False) -> go.Figure:
    """Line chart of one or more series over a shared x (cosine and nPR over t or training step, Fig. 12); with
    ``log_y``, values ≤ 0 are left out (gaps)."""
    x = np.asarray(x)
    fig = go.Figure()
    for k, (name, y) in enumerate(series.items()):
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if y.size != x.size:
            raise DtvizInputError(f"series {name!r} has {y.size} values for {x.size} x values.")
        if log_y:  # a log axis has no place for 0 (a label table from zero at step 0): a gap, not a line to the floor
            y = np.where(y > 0, y, np.nan)
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=esc(name), line=dict(color=_categorical_colour(k), width=2.5),
                                 marker=dict(size=7, symbol=_group_symbol(k)),
                                 hovertemplate=f"{name}<br>{x_title}: %{{x}}<br>{y_title}: %{{y:.4g}}<extra></extra>"))
    if log_x:
        fig.update_xaxes(type="log")
    if log_y:
        fig.update_yaxes(type="log")
    what = title or f"{', '.join(map(str, series))} over {x_title}"
    _style(fig, what, context, x_title, y_title)
    # Legend at the bottom of the figure, left-aligned: at the top right it ran into the two-line title in
    # narrow columns. Anchored to the container, plotly grows the bottom margin to fit it (and its wrapped
    # rows) below the axis title instead of overlapping it.
    fig.update_layout(legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left"),
                      margin=dict(b=60))
    return fig


def silu_line(series: dict, context) -> dict:
    """nPR of SiLU(c̄), what adaLN reads, when the series has it (dtviz.analysis.dynamics) and is of c itself
    (adaLN reads SiLU(y + t), not SiLU of a part)."""
    if "npr_silu_mean_vector" not in series or (context or {}).get("part", "y+t") != "y+t":
        return {}
    return {"nPR of SiLU(c̄), what adaLN reads": 100 * np.asarray(series["npr_silu_mean_vector"])}


def over_t_figures(series: dict, context, x_title: str, over: str = "t", row: str = "class") -> list[dict]:
    """Cosine (mean, min, max over pairs) and nPR (of c̄ and per-row mean) of c over t or over a trajectory's
    sampling steps (``dtviz.analysis.dynamics.stats_over_t``), as named items (App. A.2, Sec. 5)."""
    name = "t" if over == "t" else "steps"
    return [{"name": f"cosine-over-{name}", "title": f"Cosine over {over}",
             "figure": lines(series["t"], {"mean": series["cosine_mean"], "min": series["cosine_min"], "max": series["cosine_max"]},
                             x_title, "cosine similarity (off-diagonal)", context, title=f"Cosine similarity of c over {over}")},
            {"name": f"npr-over-{name}", "title": f"nPR over {over}",
             "figure": lines(series["t"], {"nPR of c̄": 100 * np.asarray(series["npr_mean_vector"]),
                                           f"nPR, per-{row} mean": 100 * np.asarray(series["npr_per_class_mean"]),
                                           **silu_line(series, context)},
                             x_title, "nPR (% of d)", context, title=f"Normalised participation ratio of c over {over}")}]


def training_figures(series: dict, context) -> list[dict]:
    """The figures of one training run (``dtviz.analysis.dynamics.snapshot_series``), as named items: cosine and
    nPR of c over the steps (Fig. 12), and where c's size sits (``size_split``) when the snapshots have separate
    label and timestep parts."""
    step = series["step"]
    items = [{"name": "cosine-over-training", "title": "Cosine over training",
              "figure": lines(step, {"mean": series["cosine_mean"], "min": series["cosine_min"], "max": series["cosine_max"]},
                              "training step", "cosine similarity (off-diagonal)", context,
                              title="Cosine similarity of c over training")},
             {"name": "npr-over-training", "title": "nPR over training",
              "figure": lines(step, {"nPR of c̄": 100 * np.asarray(series["npr_mean_vector"]),
                                     "nPR, per-class mean": 100 * np.asarray(series["npr_per_class_mean"]),
                                     **silu_line(series, context)},
                              "training step", "nPR (% of d)", context, title="Normalised participation ratio of c over training")}]
    if "t_sq" in series and not np.isnan(np.asarray(series["t_sq"], dtype=np.float64)).all():
        items.append({"name": "size-split-over-training", "title": "Where c's size sits",
                      "figure": lines(step, {"‖ȳ‖²: the part every row of y shares": series["y_shared_sq"],
                                             "mean ‖y_k − ȳ‖²: each row's own part": series["y_own_sq"],
                                             "‖t_emb(t0)‖²": series["t_sq"]},
                                      "training step", "squared norm", context, title="Where c's size sits over training",
                                      log_y=True)})
    return items


# ================================================================================ nearest neighbours

def neighbour_bars(names_full, values_full, names_head, values_head, context, query: str | None = None) -> go.Figure:
    """The nearest classes by cosine in the full space (top) and in the head subspace (bottom)."""
    fig = make_subplots(rows=2, cols=1, subplot_titles=("full space (all d dims)", f"head subspace (dims with |{sub('c̄', 'i')}| ≥ τ)"),
                        vertical_spacing=0.14)
    noun, nouns = row_nouns(context)
    for row, (names, vals, colour) in enumerate(((names_full, values_full, OKABE_ITO[0]), (names_head, values_head, HEAD_COLOUR)), 1):
        names = unique_labels(names)
        vals = np.asarray(vals, dtype=np.float64).reshape(-1)
        fig.add_trace(go.Bar(y=names, x=vals, orientation="h", marker_color=colour, showlegend=False,
                             name="full space" if row == 1 else "head subspace",
                             text=[f"{v:.4f}" for v in vals], textposition="inside", insidetextanchor="end",
                             hovertemplate="%{y}: cosine %{x:.4f}<extra></extra>"), row=row, col=1)
        fig.update_yaxes(autorange="reversed", type="category", automargin=True, title_text=noun, row=row, col=1)
        # the axis spans the values, not 0–1: cosines of 0.97–0.98 on a 0–1 axis would all look the same
        lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 1.0)
        pad = max(0.25 * (hi - lo), 2e-3)
        fig.update_xaxes(title_text="cosine similarity to the query", range=[lo - pad, hi + pad], row=row, col=1)
    what = f"Nearest {nouns} to {esc(query)}" if query else f"Nearest {nouns} by cosine"
    k = max(len(names_full), len(names_head), 1)
    return _style(fig, what, context, height=2 * (26 * k + 60) + 220)


# ================================================================================== live pruning

DIM_BARS_MAX = 200  # rows drawn as bars; more as points on stems

def dim_across_classes(values, names, dim: int, context, tau: float | None = None, sort: bool = False) -> go.Figure:
    """The value of one dimension c_dim in every class (a bar per class; hover: class name and value),
    the mean over classes c̄_dim as a dashed line and, with ``tau``, the ±τ band of the tail.
    ``sort``: bars from largest to smallest value instead of by class id."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    names = [esc(n) for n in _check_names(names, values.size)]
    ids = np.argsort(-values, kind="stable") if sort else np.arange(values.size)
    x = np.arange(values.size)
    row, rows = row_nouns(context)
    hover = "%{customdata[1]} (" + row + " %{customdata[0]})<br>" + sub("c", dim) + " = %{y:.4g}<extra></extra>"
    custom = np.stack([ids, np.asarray(names, dtype=object)[ids]], axis=1)
    if values.size <= DIM_BARS_MAX:
        trace = go.Bar(x=x if sort else ids, y=values[ids], name=sub("c", dim), customdata=custom, hovertemplate=hover,
                       marker=dict(color=OKABE_ITO[0], line=dict(width=0)))
    else:  # a thousand bars touch and read as one block: a point per row, on a thin line from zero
        trace = go.Scatter(x=x if sort else ids, y=values[ids], name=sub("c", dim), customdata=custom, hovertemplate=hover,
                           mode="markers", marker=dict(color=OKABE_ITO[0], size=4),
                           error_y=dict(type="data", symmetric=False, array=np.zeros(values.size),
                                        arrayminus=values[ids], thickness=0.6, width=0, color="rgba(0,114,178,0.35)"))
    fig = go.Figure(trace)
    if tau is not None:
        fig.add_hrect(y0=-tau, y1=tau, fillcolor=TAU_COLOUR, opacity=0.25, line_width=0, layer="below")
    mean = float(values.mean())
    fig.add_hline(mean, line=dict(color="black", dash="dot", width=1.5))
    # the line is named in the note above the plot: a label on it would sit on the bars
    note = f"dotted line: mean over {rows} {sub('c̄', dim)} = {mean:.4g}"
    if tau is not None:
        note += f" · shaded band: |{sub('c', dim)}| < τ = {tau:g} (tail)"
    fig.update_layout(bargap=0.1 if values.size <= 64 else 0, showlegend=False)
    x_title = f"{rows}, sorted by value" if sort else f"{row} id"
    return _style(fig, f"Dimension {dim} of c across {values.size} {rows}", context, x_title, f"{sub('c', dim)} (value)",
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


# ================================================================================ claims scorecard

VERDICT_COLOURS = {"holds": "#d9f0d3", "partly": "#fdf1c7", "does not hold": "#f7d4d2", "not measurable here": "#eeeeee"}


def claims_table(rows, context) -> go.Figure:
    """The paper-claims scorecard (dtviz.evaluation.claims) as a table figure for a PNG / SVG export: claim,
    paper, this model, verdict (coloured), rule."""
    rows = list(rows)
    wrap = lambda text, width: "<br>".join(_wrap(str(text), width))  # noqa: E731
    cells = [[wrap(f"{r.id}: {r.claim}", 34) for r in rows], [wrap(r.paper, 34) for r in rows],
             [wrap(r.measured, 46) for r in rows], [r.verdict for r in rows], [wrap(r.rule, 46) for r in rows]]
    fill = [VERDICT_COLOURS.get(r.verdict, "white") for r in rows]
    fig = go.Figure(go.Table(
        columnwidth=[34, 34, 46, 14, 46],
        header=dict(values=["<b>claim</b>", "<b>paper</b>", "<b>this model</b>", "<b>verdict</b>", "<b>rule</b>"],
                    align="left", fill_color="#f2f2f2", font=dict(size=13)),
        cells=dict(values=cells, align="left", font=dict(size=12), height=30,
                   fill_color=[["white"] * len(rows)] * 3 + [fill] + [["white"] * len(rows)])))
    _style(fig, "The paper's claims, measured on this model", context, height=150 + 96 * len(rows))
    fig.update_layout(width=1600)
    return fig


def _wrap(text: str, width: int) -> list[str]:
    import html
    import textwrap

    return [html.escape(line) for line in textwrap.wrap(text, width)] or [""]

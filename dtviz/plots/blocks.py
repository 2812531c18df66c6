"""Per-block modulation figures (dtviz.analysis.blocks): the blocks × dims contribution heatmap and the relative change of
each block's modulation against τ. UI-free: no streamlit here."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from dtviz.errors import DtvizInputError
from dtviz.plots.style import CONTINUOUS, HEAD_COLOUR, _categorical_colour, _style, _tau_line, sub


def modulation_heatmap(contrib, chunk: str, context) -> go.Figure:
    """Rows = blocks (then the final layer), columns = dims of c ordered by |c̄| descending: ‖W[:, j]‖·mean|SiLU(c)_j|
    for ``chunk`` (``dtviz.analysis.blocks.Contributions``). Head dims (|c̄_j| ≥ τ) are the columns left of the marked line."""
    if chunk not in contrib.chunks:
        raise DtvizInputError(f"expected one of the chunks {', '.join(contrib.chunks)}; got {chunk!r}.")
    z = np.asarray(contrib.chunks[chunk], dtype=np.float64)  # (rows, d)
    dims = [str(int(j)) for j in contrib.order]
    custom = np.broadcast_to(contrib.abs_mean[None, :], z.shape)
    fig = go.Figure(go.Heatmap(
        z=z, x=dims, y=contrib.row_labels, colorscale=CONTINUOUS, customdata=custom, name=chunk,
        colorbar=dict(title=dict(text="‖W[:, j]‖·|SiLU(c)ⱼ|", side="right")),
        hovertemplate="%{y}, dim %{x}<br>contribution %{z:.4g}<br>|c̄ⱼ| %{customdata:.4g}<extra></extra>"))
    fig.update_xaxes(type="category", showticklabels=len(dims) <= 64)
    fig.update_yaxes(type="category", autorange="reversed")
    heads = int(np.asarray(contrib.head).sum())
    if 0 < heads < len(dims):
        fig.add_vline(heads - 0.5, line=dict(color=HEAD_COLOUR, width=2, dash="dash"))
        fig.add_annotation(x=heads - 0.5, xref="x", y=1, yref="paper", yanchor="bottom", xanchor="right", showarrow=False,
                           text=f"← head ({heads} dims, |{sub('c̄', 'j')}| ≥ τ) | tail →", font=dict(color=HEAD_COLOUR))
    what = f"Where each dim of c acts: {chunk} modulation per block"
    return _style(fig, what, context, f"dim j of c (sorted by |{sub('c̄', 'j')}|, largest first)", "block",
                  height=max(360, 28 * len(contrib.row_labels) + 200),
                  note="contribution = ‖W<sub>chunk</sub>[:, j]‖₂ · mean over rows of |SiLU(c)ⱼ|")


def modulation_change_curves(curves: dict, chunk: str, context, tau: float | None = None) -> go.Figure:
    """relative change ‖m(c) − m(P(c))‖ / ‖m(c)‖ of ``chunk`` against τ, one line per block (dtviz.analysis.blocks.change_curves);
    the final layer's "all" (or its own chunk) as a dashed black line."""
    if chunk not in curves:
        raise DtvizInputError(f"expected one of the chunks {', '.join(k for k in curves if k not in ('tau', 'blocks', 'final'))}; got {chunk!r}.")
    taus = np.asarray(curves["tau"], dtype=np.float64)
    values = np.asarray(curves[chunk], dtype=np.float64)  # (len(taus), blocks)
    fig = go.Figure()
    for k, block in enumerate(curves["blocks"]):
        fig.add_trace(go.Scatter(x=taus, y=values[:, k], mode="lines+markers", name=f"block {block}",
                                 line=dict(color=_categorical_colour(k), width=2), marker=dict(size=6),
                                 hovertemplate=f"block {block}<br>τ %{{x:.4g}}<br>change %{{y:.4g}}<extra></extra>"))
    final = curves.get("final", {}).get(chunk if chunk in curves.get("final", {}) else "all")
    if final is not None:
        fig.add_trace(go.Scatter(x=taus, y=final, mode="lines+markers", name="final layer",
                                 line=dict(color="black", width=2, dash="dash"), marker=dict(size=6),
                                 hovertemplate="final layer<br>τ %{x:.4g}<br>change %{y:.4g}<extra></extra>"))
    if tau is not None and np.isfinite(tau) and taus.size and taus.min() <= tau <= taus.max():
        _tau_line(fig, tau)
    _style(fig, f"Relative change of each block's {chunk} modulation when c is pruned", context, "τ",
           "‖m(c) − m(P(c))‖ / ‖m(c)‖ (mean over rows)")
    fig.update_layout(legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left"),
                      margin=dict(b=60))
    return fig


def modulation_change_bars(change, context, label: str = "") -> go.Figure:
    """One spec's relative change per block (the ``dtviz blocks`` numbers): grouped bars, one colour per chunk."""
    blocks = [b["block"] for b in change.blocks]
    chunks = list(dict.fromkeys(k for b in change.blocks for k in b["relative_change"]))
    fig = go.Figure()
    for k, name in enumerate(chunks):
        y = [b["relative_change"].get(name, np.nan) for b in change.blocks]
        fig.add_trace(go.Bar(x=[f"block {b}" for b in blocks], y=y, name=name, marker_color=_categorical_colour(k),
                             hovertemplate=f"{name}<br>%{{x}}: %{{y:.4g}}<extra></extra>"))
    if change.final.get("all") is not None and np.isfinite(change.final["all"]):
        # named in the legend: a label on the plot sat on the last block's bars
        value = float(change.final["all"])
        fig.add_hline(value, line=dict(color="black", dash="dash", width=1.5))
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=dict(color="black", dash="dash", width=1.5),
                                 name=f"final layer (all): {value:.3g}", hoverinfo="skip"))
    return _style(fig, f"Relative change per block and chunk{' — ' + label if label else ''}", context, "block",
                  "‖m(c) − m(P(c))‖ / ‖m(c)‖")

"""Sweep figures (dtviz sweep's table.csv, read by dtviz.evaluation.sweep_metrics): one metric against τ (or k), a line per
schedule, the unpruned baseline as a dashed line. UI-free: no streamlit here."""
from __future__ import annotations

import plotly.graph_objects as go

from dtviz.plots.style import _categorical_colour, _style


def sweep_metric_curves(x_name: str, curves: dict, baseline: float | None, metric_label: str, context) -> go.Figure:
    """``curves``: {schedule: (x (n,), values (n,))} from dtviz.evaluation.sweep_metrics.metric_curves."""
    x_title = "threshold τ" if x_name == "tau" else "removed dims k"
    fig = go.Figure()
    for i, (schedule, (x, y)) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=[float(v) for v in x], y=[float(v) for v in y], mode="lines+markers", name=str(schedule),
                                 line=dict(color=_categorical_colour(i), width=2.5),
                                 hovertemplate=f"{schedule}<br>{x_title}: %{{x}}<br>{metric_label}: %{{y:.4g}}<extra></extra>"))
    if baseline is not None:  # named in the legend: a label on the plot sat on the y axis' tick labels
        line = dict(color="black", width=1.5, dash="dash")
        fig.add_hline(baseline, line=line)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", line=line, name=f"baseline {baseline:.4g}",
                                 hoverinfo="skip"))
    _style(fig, f"{metric_label} against {x_title}, per schedule", context, x_title, metric_label)
    fig.update_layout(legend=dict(orientation="h", yref="container", y=0, yanchor="bottom", x=0, xanchor="left"),
                      margin=dict(b=60))
    return fig

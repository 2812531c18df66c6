"""Variance (paper Fig. 9): per-dimension variance across classes, its sorted spectrum and cumulative share."""
import streamlit as st

import dtviz_app as common
from dtviz import plots


def figures(ctx):
    var, head = ctx.stats.variance_, ctx.head
    context = ctx.plot_context()
    return (plots.variance_per_dim(var, context, head=head),
            plots.variance_spectrum(var, context, log_y=True, head_count=len(head)),
            plots.cumulative_variance(var, context))


def report_figures(ctx):
    per_dim, spectrum, cumulative = figures(ctx)
    return [{"name": "variance-per-dim", "title": "Variance per dimension", "figure": per_dim},
            {"name": "variance-spectrum", "title": "Sorted variance spectrum", "figure": spectrum},
            {"name": "variance-cumulative", "title": "Cumulative variance share", "figure": cumulative}]


def main():
    ctx = common.require_ctx()
    common.page_header(ctx, f"Variance across {ctx.rows}")
    row = ctx.table_row["variance"]
    cols = st.columns(3)
    cols[0].metric("Mean variance per dim", f"{row['mean']:.4g}", help=f"Population variance across {ctx.rows} (ddof = 0).")
    cols[1].metric("Share of variance in the top-20 dims", f"{100 * row['top20_share']:.1f}%")
    cols[2].metric("Head dims at τ (highlighted)", f"{ctx.at_tau['head_count']}")
    per_dim, spectrum, cumulative = figures(ctx)
    var, head = ctx.stats.variance_, ctx.head
    frame = lambda: plots.variance_frame(var, head)  # noqa: E731
    common.show_figure(per_dim, "variance-per-dim", frame, title="Variance per dimension")
    common.show_figure(spectrum, "variance-spectrum", frame, title="Sorted variance spectrum")
    common.show_figure(cumulative, "variance-cumulative", frame, title="Cumulative variance share")


if __name__ == "__main__":
    main()

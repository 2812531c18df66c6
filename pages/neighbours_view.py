"""Nearest neighbours: a row's (class's, prompt's) nearest rows by cosine in the full space vs in the head subspace."""
import pandas as pd
import streamlit as st

import dtviz_app as common
from dtviz import plots
from dtviz.analysis.neighbours import nearest

DEFAULT_K = 10


def neighbour_figure(ctx, i: int, k: int):
    names = ctx.names
    ids_full, cos_full = nearest(ctx.E, i, k=k)
    ids_head, cos_head = nearest(ctx.E, i, k=k, dims=ctx.head)
    fig = plots.neighbour_bars([names[j] for j in ids_full], cos_full, [names[j] for j in ids_head], cos_head,
                               ctx.plot_context(), query=names[i])
    data = pd.DataFrame({"rank": range(1, len(ids_full) + 1),
                         f"full_{ctx.row}": [names[j] for j in ids_full], "full_cosine": cos_full,
                         f"head_{ctx.row}": [names[j] for j in ids_head], "head_cosine": cos_head})
    return fig, data


def report_figures(ctx):
    if ctx.info.num_classes < 2:
        return []
    return [{"name": "neighbours", "title": f"Nearest neighbours of {ctx.names[0]}",
             "figure": neighbour_figure(ctx, 0, DEFAULT_K)[0]}]


def main():
    ctx = common.require_ctx()
    common.page_header(ctx, "Nearest neighbours")
    st.markdown(f"Nearest {ctx.rows} by cosine similarity of c in all {ctx.info.dim} dimensions, and in the "
                f"{ctx.at_tau['head_count']} head dimensions only (|c̄ᵢ| ≥ τ). If the head carries the semantics, "
                "the two lists agree.")
    if not common.too_few_rows(ctx, f"A {ctx.row}'s nearest neighbours"):
        neighbours_section(ctx)


@st.fragment
def neighbours_section(ctx):
    n = ctx.info.num_classes
    cols = st.columns([3, 1])
    with cols[0]:
        i = common.bound(st.selectbox, "nn_cls", 0, parse=common.int_in(0, n - 1), label=f"{ctx.row.capitalize()} (type to search)",
                         options=list(range(n)), format_func=lambda j: ctx.names[j])
    with cols[1]:
        k = common.bound(st.number_input, "nn_k", min(DEFAULT_K, n - 1), parse=common.int_in(1, max(n - 1, 1)),
                         label="Neighbours", min_value=1, max_value=max(n - 1, 1), step=1)
    if ctx.at_tau["head_count"] == 0:
        st.warning("The head is empty at this τ; lower τ (or use top-k) to compare with the head subspace.")
        return
    fig, data = neighbour_figure(ctx, int(i), int(k))
    common.show_figure(fig, "neighbours", data, title="Nearest neighbours: full space vs head subspace")
    st.dataframe(data, hide_index=True, width="stretch",
                 column_config={"full_cosine": st.column_config.NumberColumn(format="%.4f"),
                                "head_cosine": st.column_config.NumberColumn(format="%.4f")})


if __name__ == "__main__":
    main()

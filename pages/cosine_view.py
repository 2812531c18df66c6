"""Cosine similarity (paper Fig. 3): the full N×N heatmap, a zoomed sub-matrix, the pair histogram."""
import pandas as pd
import streamlit as st

import dtviz_app as common
from dtviz import plots
from dtviz.cli.main import select_classes
from dtviz.analysis.stats import offdiag_values
from dtviz.reference import reported_range

ORDERS = {"id": "{row} id", "cluster": "clustering"}  # {row}: class, prompt or condition (Ctx.row)
PICKS = {"random": "random {rows}", "chosen": "chosen {rows}"}
DEFAULT_N = 10


def heatmap_figure(ctx, order: str, height: int = 720):
    return common.cosine_heatmap(ctx.key, order, ctx.names, ctx.plot_context(with_tau=False), height)


def matrix_csv(ctx, idx):
    """The full matrix as CSV (in the heatmap's order), built only when the user asks for it."""
    C, names = ctx.stats.cosine_, ctx.names
    row = ctx.row
    return lambda: plots.cosine_frame(C, names, order=idx, row=row)


def submatrix_figure(ctx, ids):
    return plots.cosine_submatrix(ctx.stats.cosine_, list(ids), ctx.names, ctx.plot_context(with_tau=False))


def histogram_figure(ctx):
    values = offdiag_values(ctx.stats.cosine_)
    return plots.offdiag_histogram(values, ctx.plot_context(with_tau=False)), values


def report_figures(ctx):
    ids = select_classes(ctx.info.num_classes, None, min(DEFAULT_N, ctx.info.num_classes), 0)
    return [{"name": "cosine-heatmap", "title": f"Cosine similarity, all {ctx.rows}", "figure": heatmap_figure(ctx, "id", plots.heatmap_height(ctx.info.num_classes))[0]},
            {"name": "cosine-submatrix", "title": f"Cosine similarity, {len(ids)} random {ctx.rows}", "figure": submatrix_figure(ctx, ids)},
            {"name": "cosine-histogram", "title": "Off-diagonal cosine similarities", "figure": histogram_figure(ctx)[0]}]


def paper_range(part: str) -> str:
    """What the paper reports for this part of c: Table 1 for y+t, Table 4's AdaLN rows for y alone, nothing for t."""
    if part == "y":
        return f"The paper's AdaLN models, y alone: {reported_range('cosine', table=4, part='y', conditioning='AdaLN')} (Table 4)."
    if part == "t":
        return "The paper reports no cosine of t alone (one t row is shared by every class at a given t)."
    return f"The paper's models: {reported_range('cosine')} (Table 1)."


def label_part_note(ctx):
    """The label part alone: what a function-preserving shift does to its cosine (docs/claims.md, The label part)."""
    from dtviz.evaluation.claims import label_split, part_noun, split_sentence

    if "label_split" not in ctx._memo:
        ctx._memo["label_split"] = label_split(ctx.source, ctx.t if ctx.t is not None else ctx.source.t0)
    split = ctx._memo["label_split"]
    if split:
        st.caption(f"The {part_noun(ctx.source)} part alone. " + split_sentence(split, ctx.source.t_bias_name,
                                                                               part_noun(ctx.source))
                   + " (docs/claims.md, The label part; `dtviz claims`, alignment_y).")


def main():
    ctx = common.require_ctx()
    common.page_header(ctx, f"Cosine similarity of the {ctx.row} vectors")
    cos = ctx.table_row["cosine"]
    n = ctx.info.num_classes
    if common.too_few_rows(ctx, f"The cosine between {ctx.rows}"):
        return
    # one full-width row each: a 1000×1000 matrix needs the width (plots.heatmap_height), and so do the
    # printed values of the zoomed sub-matrix
    heatmap_section(ctx)
    st.markdown(f"**{n * (n - 1) // 2:,} {ctx.row} pairs** (i ≠ j): mean **{cos['mean']:.4f}**, "
                f"min **{cos['min']:.4f}**, max **{cos['max']:.4f}**. {paper_range(ctx.part)}")
    if ctx.part == "y":
        label_part_note(ctx)
    hist, values = histogram_figure(ctx)
    common.show_figure(hist, "cosine-histogram", pd.DataFrame({"cosine": values}),
                       title="Off-diagonal cosine similarities")
    submatrix_section(ctx)


@st.fragment
def heatmap_section(ctx):
    """The full matrix; changing the order reruns only this part."""
    order = common.bound(st.radio, "cos_order", "id", parse=common.choice(ORDERS), label=f"Order {ctx.rows} by",
                         options=tuple(ORDERS), format_func=lambda o: ORDERS[o].format(row=ctx.row), horizontal=True,
                         help=f"Clustering puts {ctx.rows} with similar vectors next to each other (average linkage).")
    fig, idx = heatmap_figure(ctx, order, plots.heatmap_height(ctx.info.num_classes))
    common.show_figure(fig, "cosine-heatmap", matrix_csv(ctx, idx), title=f"Cosine similarity, all {ctx.rows}")


@st.fragment
def submatrix_section(ctx):
    """Zoomed sub-matrix with values in the cells; its controls rerun only this part."""
    st.subheader(f"Zoom: a few {ctx.rows}")
    n_all = ctx.info.num_classes
    pick = common.bound(st.radio, "cos_pick", "random", parse=common.choice(PICKS), label=ctx.rows.capitalize(),
                        options=tuple(PICKS), format_func=lambda p: PICKS[p].format(rows=ctx.rows), horizontal=True)
    if pick == "random":
        cols = st.columns([1, 1, 3])
        with cols[0]:
            k = common.bound(st.number_input, "cos_n", min(DEFAULT_N, n_all), parse=common.int_in(2, min(40, n_all)), label="How many",
                             min_value=2, max_value=min(40, n_all), step=1)
        with cols[1]:
            seed = common.bound(st.number_input, "cos_seed", 0, parse=common.int_in(0), label="Seed", min_value=0,
                                max_value=common.MAX_INT, step=1)
        ids = select_classes(n_all, None, int(k), int(seed))
    else:
        default = select_classes(n_all, None, min(DEFAULT_N, n_all), 0)
        ids = common.bound(st.multiselect, "cos_ids", default, parse=common.ids_below(n_all), fmt=common.fmt_ints,
                           label=f"{ctx.rows.capitalize()} (type to search)", options=list(range(n_all)),
                           format_func=lambda i: ctx.names[i], max_selections=40)
        if len(ids) < 2:
            st.info(f"Choose at least two {ctx.rows}.")
            return
    common.show_figure(submatrix_figure(ctx, ids), "cosine-submatrix", title=f"Cosine similarity, selected {ctx.rows}")


if __name__ == "__main__":
    main()

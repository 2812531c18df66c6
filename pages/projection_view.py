"""Head vs tail projection (paper Fig. 13, appendix Figs. 20–25): the class vectors in 2-D from all dims,
the head only, the tail only, and without the strongest few head dims."""
import streamlit as st

import dtviz_app as common
from dtviz import plots
from dtviz.errors import DtvizInputError
from dtviz.projection import DEFAULT_TOP_HEAD, METHODS, head_tail_views

METHOD_LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
COLOURS = {"group": "class group", "class": "class id"}


def panels(ctx, method: str, top_head: int, progress=None) -> dict:
    """The four projections, each cached per (model, t, part, τ, method, panel)."""
    names = list(head_tail_views(ctx.E, ctx.head, top_head))
    out = {}
    for j, name in enumerate(names):
        if progress is not None:
            progress.progress(j / len(names), text=f"{METHOD_LABELS[method]} of “{name}” ({j + 1} of {len(names)})…")
        out[name] = common.projection(ctx.key, ctx.tau, top_head, method, name)
    if progress is not None:
        progress.empty()
    return out


def figure(ctx, coords: dict, method: str, colour: str):
    groups = common.class_groups(ctx.source) if colour == "group" else None
    return plots.projection_panels(coords, ctx.names, ctx.plot_context(), groups=groups,
                                   method=METHOD_LABELS[method]), groups


def report_figures(ctx):
    top = min(DEFAULT_TOP_HEAD, max(ctx.at_tau["head_count"], 1))
    fig, _ = figure(ctx, panels(ctx, "pca", top), "pca", "group")
    return [{"name": "projection", "title": "Head vs tail projection (PCA)", "figure": fig}]


def main():
    ctx = common.require_ctx()
    common.page_header(ctx, "Head vs tail projection")
    head_n = ctx.at_tau["head_count"]
    st.markdown(f"(a) all {ctx.info.dim} dims · (b) the {head_n} head dims (|c̄ᵢ| ≥ τ) · (c) the "
                f"{ctx.info.dim - head_n} tail dims · (d) all dims but the strongest few head dims. "
                "If the head carries the class information, (b) keeps the structure of (a) and (c) loses it.")
    projection_section(ctx)


@st.fragment
def projection_section(ctx):
    """Method, colouring and (d); changing them reruns only this part."""
    head_n = ctx.at_tau["head_count"]
    has_groups = common.class_groups(ctx.source) is not None
    cols = st.columns([2, 2, 1])
    with cols[0]:
        method = common.bound(st.radio, "proj_method", "pca", parse=common.choice(METHODS), label="Method",
                              options=("pca", "tsne", "umap"), format_func=METHOD_LABELS.get, horizontal=True,
                              help="PCA is instant; t-SNE (as in the paper) and UMAP take a few seconds per panel "
                                   "and are cached per model, t, part, τ and method.")
    with cols[1]:
        colour_options = tuple(COLOURS) if has_groups else ("class",)
        colour = common.bound(st.radio, "proj_colour", colour_options[0], parse=common.choice(colour_options),
                              label="Colour by", options=colour_options, format_func=COLOURS.get, horizontal=True)
    with cols[2]:
        max_top = max(head_n, 1)
        top = common.bound(st.number_input, "proj_top", min(DEFAULT_TOP_HEAD, max_top),
                           parse=common.int_in(1, max_top), label="(d): strongest head dims removed",
                           min_value=1, max_value=max_top, step=1)
    try:
        coords = panels(ctx, method, int(top), progress=st.progress(0.0, text="Projecting…"))
    except DtvizInputError as err:
        common.show_error(err, warning=True)
        return
    fig, groups = figure(ctx, coords, method, colour)
    common.show_figure(fig, "projection", lambda: plots.projection_frame(coords, ctx.names, groups),
                       title=f"Head vs tail projection ({METHOD_LABELS[method]})")


if __name__ == "__main__":
    main()

"""Head vs tail projection (paper Fig. 13, appendix Figs. 20–25): the class vectors in 2-D from all dims,
the head only, the tail only, and without the strongest few head dims — panels (a)–(d) as in the paper."""
import streamlit as st

import dtviz_app as common
from dtviz import plots
from dtviz.errors import DtvizInputError
from dtviz.analysis.projection import (DEFAULT_TOP_HEAD, METHODS, PCA_DIMS_BEFORE_EMBEDDING, head_tail_views, panel_titles,
                                       tsne_implementation, umap_compiled)
from dtviz.analysis.tsne import OPENTSNE_FFT_FROM, TSNE_EARLY_ITERATIONS, TSNE_ITERATIONS, tsne_perplexity

METHOD_LABELS = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}
DEFAULT_METHOD = "tsne"  # as the paper; openTSNE takes a few seconds per panel of 1000 classes (README)
COLOURS = {"group": "class group", "class": "class id"}


def titles(ctx, top_head: int) -> dict:
    """Panel key -> "(a) …" title: the same strings label the panels and make the caption."""
    return panel_titles(ctx.info.dim, ctx.at_tau["head_count"], top_head)


def panels(ctx, method: str, top_head: int, progress=None) -> dict:
    """The four projections keyed by their titles, each cached per (model, t, part, τ, method, panel)."""
    named = titles(ctx, top_head)
    keys = list(head_tail_views(ctx.E, ctx.head, top_head))
    out = {}
    for j, key in enumerate(keys):
        report = None
        if progress is not None:
            label = f"{METHOD_LABELS[method]} of {named[key].split(':')[0]} (panel {j + 1} of {len(keys)})"
            progress.progress(j / len(keys), text=f"{label}…")

            def report(done, total, j=j, label=label):
                progress.progress((j + done / total) / len(keys), text=f"{label}: iteration {done} of {total}")
        out[named[key]] = common.projection(ctx.key, ctx.tau, top_head, method, key, progress=report)
    if progress is not None:
        progress.empty()
    return out


def scores(ctx, top_head: int) -> dict:
    """Each panel's class-structure score (dtviz.plots.gallery.panel_scores: the claims page's head_is_class number)
    keyed by the panel's title; computed in the panel's dims before projecting, so every method shows the same."""
    from dtviz.plots.gallery import panel_scores

    if ctx.info.num_classes < 3:
        return {}
    named = titles(ctx, top_head)
    return {named[key]: value for key, value in panel_scores(ctx.E, ctx.head, top_head).items()}


def figure(ctx, coords: dict, method: str, colour: str, top_head: int):
    groups = common.class_groups(ctx.source) if colour == "group" else None
    return plots.projection_panels(coords, ctx.names, ctx.plot_context(), groups=groups,
                                   method=METHOD_LABELS[method], scores=scores(ctx, top_head)), groups


def report_figures(ctx):
    top = min(DEFAULT_TOP_HEAD, max(ctx.at_tau["head_count"], 1))
    fig, _ = figure(ctx, panels(ctx, "pca", top), "pca", "group", top)
    return [{"name": "projection", "title": "Head vs tail projection (PCA)", "figure": fig}]


def main():
    ctx = common.require_ctx()
    common.page_header(ctx, "Head vs tail projection")
    projection_section(ctx)


@st.fragment
def projection_section(ctx):
    """Method, colouring and (d); changing them reruns only this part."""
    head_n = ctx.at_tau["head_count"]
    has_groups = common.class_groups(ctx.source) is not None
    cols = st.columns([2, 2, 1])
    with cols[0]:
        method = common.bound(st.radio, "proj_method", DEFAULT_METHOD, parse=common.choice(METHODS), label="Method",
                              options=("tsne", "umap", "pca"), format_func=METHOD_LABELS.get, horizontal=True,
                              help="t-SNE as in the paper (progress in iterations); UMAP; PCA is instant. Each panel "
                                   "is cached per model, t, part, τ and method.")
    with cols[1]:
        colour_options = tuple(COLOURS) if has_groups else ("class",)
        colour = common.bound(st.radio, "proj_colour", colour_options[0], parse=common.choice(colour_options),
                              label="Colour by", options=colour_options, format_func=COLOURS.get, horizontal=True)
    with cols[2]:
        max_top = max(head_n, 1)
        top = common.bound(st.number_input, "proj_top", min(DEFAULT_TOP_HEAD, max_top),
                           parse=common.int_in(1, max_top), label="(d): strongest head dims removed",
                           min_value=1, max_value=max_top, step=1)
    named = titles(ctx, int(top))
    # the caption names the panels with exactly the figure's titles
    st.markdown(" · ".join(named.values()) + f". If the head carries the {ctx.row} information, (b) keeps the "
                "structure of (a) while the tail panels (c) and (d) lose it (paper Fig. 13). Under each title: the class "
                f"structure kept — the mean share of each {ctx.row}'s 10 nearest {ctx.rows} (in all dims, c − c̄) that "
                "are still its 10 nearest in the panel's dims, before projecting (1 = all kept). The Paper claims page's "
                "head_is_class row uses the same measure with the top-20 |c̄ᵢ| dims as the head; here the head is the "
                "sidebar's τ.")
    if method == "umap" and not umap_compiled():
        st.caption("UMAP's first run on this server also compiles its numba code (once per server process: "
                   "`make bench` measures it, docs/performance.md); later runs take a few seconds per panel.")
    if method == "tsne":
        gradient = "FFT" if ctx.info.num_classes >= OPENTSNE_FFT_FROM else "Barnes–Hut"
        by = f"openTSNE ({gradient} gradients)" if tsne_implementation() == "opentsne" else "scikit-learn"
        n = ctx.info.num_classes
        st.caption(f"t-SNE by {by}: perplexity {tsne_perplexity(n):.3g}, PCA initialisation, {TSNE_ITERATIONS} iterations "
                   f"({TSNE_EARLY_ITERATIONS} exaggerated), seed 0; a panel of more than {PCA_DIMS_BEFORE_EMBEDDING} dims is "
                   f"first reduced to {PCA_DIMS_BEFORE_EMBEDDING} by PCA.")
    try:
        coords = panels(ctx, method, int(top), progress=st.progress(0.0, text="Projecting…"))
    except DtvizInputError as err:
        common.show_error(err, warning=True)
        return
    fig, groups = figure(ctx, coords, method, colour, int(top))
    note = common.projection_note(ctx.info.num_classes, method)
    if note:  # more rows than this method may project per request: "n shown of N"
        st.caption(note)
    common.show_figure(fig, "projection", lambda: plots.projection_frame(coords, ctx.names, groups, row=ctx.row),
                       title=f"Head vs tail projection ({METHOD_LABELS[method]})")


if __name__ == "__main__":
    main()

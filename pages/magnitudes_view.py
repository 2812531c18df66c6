"""Magnitudes (paper Figs. 5, 6, 11): |cᵢ| histogram, per-dimension profile with τ, dims below τ."""
import streamlit as st

import dtviz_app as common
from dtviz import plots


def histogram_figure(ctx, log_x=True, log_y=True):
    return plots.magnitude_histogram(ctx.E, ctx.plot_context(), log_x=log_x, log_y=log_y, tau=ctx.tau)


def profile_vectors(ctx, ids) -> dict:
    vectors = {"mean vector c̄": ctx.stats.mean_vector_}
    vectors.update({ctx.names[i]: ctx.E[i] for i in ids})
    return vectors


def below_figure(ctx, normalised: bool):
    from dtviz.reference import pruning_markers

    return plots.dims_below_curve(ctx.stats.mean_vector_, ctx.plot_context(), tau=ctx.tau, normalised=normalised,
                                  reference=pruning_markers())  # the paper's REPA-XL points (Table 2)


def report_figures(ctx):
    return [{"name": "magnitude-histogram", "title": "Histogram of |cᵢ|", "figure": histogram_figure(ctx)},
            {"name": "dim-profile", "title": f"Per-dimension profile of c̄ and {ctx.row} 0",
             "figure": plots.dim_profile(profile_vectors(ctx, [0]), ctx.plot_context(), tau=ctx.tau)},
            {"name": "dims-below-tau", "title": "Dimensions below τ", "figure": below_figure(ctx, False)},
            {"name": "dims-below-tau-normalised", "title": "Share of dimensions below τ",
             "figure": below_figure(ctx, True)}]


def head_silu_text(ctx) -> str:
    """The prune_head k dims of c̄ as adaLN reads them (SiLU first), from the library's reading."""
    from dtviz.analysis.stats import head_through_silu
    from dtviz.evaluation.claim_sampling import HEAD_K
    from dtviz.evaluation.claims import head_silu_sentence

    return head_silu_sentence(head_through_silu(ctx.stats.mean_vector_, HEAD_K))


def main():
    ctx = common.require_ctx()
    common.page_header(ctx, "Magnitudes of c")
    at = ctx.at_tau
    cols = st.columns(4)
    cols[0].metric("Head: dims of c̄ with |c̄ᵢ| ≥ τ", f"{at['head_count']}")
    cols[1].metric("Tail: dims of c̄ with |c̄ᵢ| < τ", f"{at['tail_count']}")
    cols[2].metric(f"s_head: c̄ / per-{ctx.row} mean", f"{at['s_head']['mean_vector']:.3f} / {at['s_head']['per_class_mean']:.3f}")
    cols[3].metric(f"s_tail: c̄ / per-{ctx.row} mean", f"{at['s_tail']['mean_vector']:.3f} / {at['s_tail']['per_class_mean']:.3f}")
    st.caption(head_silu_text(ctx))

    st.subheader(f"Histogram of |cᵢ| over all {ctx.rows} and dimensions")
    c1, c2, _ = st.columns([1, 1, 4])
    with c1:
        # log x by default: on a linear axis the τ line (|cᵢ| ~ 0.01) sits on the y axis
        log_x = common.bound(st.toggle, "mag_logx", True, parse=common.parse_bool, fmt=common.fmt_bool,
                             label="log x (|cᵢ|)")
    with c2:
        log_y = common.bound(st.toggle, "mag_logy", True, parse=common.parse_bool, fmt=common.fmt_bool,
                             label="log y (count)")
    E = ctx.E
    common.show_figure(histogram_figure(ctx, log_x, log_y), "magnitude-histogram",
                       lambda: plots.magnitude_frame(E, log_x=log_x), title="Histogram of |cᵢ|")
    profile_section(ctx)
    st.subheader("How many dimensions of c̄ fall below τ")
    left, right = st.columns(2)
    with left:
        common.show_figure(below_figure(ctx, False), "dims-below-tau", title="Dimensions below τ")
    with right:
        common.show_figure(below_figure(ctx, True), "dims-below-tau-normalised", title="Share of dimensions below τ")
    from dtviz.reference import pruning_markers

    marks = pruning_markers()
    st.caption("Hollow “paper” markers: " + "; ".join(m["label"] for m in marks) + " (its Table 2), drawn at their "
               "share of d; those outside this model's τ range are left out.")


@st.fragment
def profile_section(ctx):
    st.subheader("Per-dimension profile")
    n = ctx.info.num_classes
    ids = common.bound(st.multiselect, "mag_cls", [0], parse=common.ids_below(n), fmt=common.fmt_ints,
                       label=f"{ctx.rows.capitalize()} to draw beside the mean vector c̄ (type to search)", options=list(range(n)),
                       format_func=lambda i: ctx.names[i], max_selections=6)
    vectors = profile_vectors(ctx, ids)
    common.show_figure(plots.dim_profile(vectors, ctx.plot_context(), tau=ctx.tau), "dim-profile",
                       lambda: plots.dim_profile_frame(vectors), title="Per-dimension profile of c")


if __name__ == "__main__":
    main()

"""Overview: the model card, the Table-1 row for the current settings, and the profile of c̄."""
import streamlit as st

import dtviz_app as common

GUIDE = (
    ("claims", "Paper claims", "each claim of the paper measured on this model, with a verdict and its rule"),
    ("cosine", "Cosine similarity", "the N×N heatmap, a zoomed sub-matrix and the pair histogram (Fig. 3)"),
    ("magnitudes", "Magnitudes", "|cᵢ| histogram, per-dimension profile and dims below τ (Figs. 5, 6, 11)"),
    ("variance", "Variance", "per-dimension variance across {rows} and its spectrum (Fig. 9)"),
    ("projection", "Head vs tail projection", "t-SNE / UMAP / PCA of full, head-only and tail-only c (Fig. 13)"),
    ("compare", "Compare models", "several sources side by side (Table 1, Fig. 1)"),
    ("dynamics", "Timestep & training dynamics", "cosine and nPR over t and over training steps (Fig. 12)"),
    ("neighbours", "Nearest neighbours", "a {row}'s nearest {rows} in the full space vs the head subspace"),
    ("blocks", "Per-block modulation", "where each dim of c acts in each block, and how pruning changes it (no sampling)"),
    ("sweep", "Sweep table", "a dtviz sweep folder: the Table-2 columns, sortable, each metric against τ (Table 2)"),
    ("pruning", "Live pruning", "prune c and watch the regenerated samples change: tail vs head (Table 2, Figs. 7, 8)"),
)


def profile_figure(ctx):
    from dtviz import plots

    vectors = {"mean vector c̄": ctx.stats.mean_vector_}
    return plots.dim_profile(vectors, ctx.plot_context(), tau=ctx.tau), lambda: plots.dim_profile_frame(vectors)


def report_figures(ctx):
    fig, _ = profile_figure(ctx)
    return [{"name": "overview-mean-profile", "title": "Profile of the mean vector c̄", "figure": fig}]


def paper_table(family: str | None = None) -> None:
    """The paper's Table 1 as reported (dtviz.reference), beside this model's row: the anchor of a screenshot.
    For an SD3 source, Table 5's SD3.0 rows too (the paper gives them cosine and nPR only)."""
    from dtviz.reference import CITATION, paper_rows

    lines = ["| paper's model | d | PR | nPR | cosine |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {r['name']} | {r['printed']['d']} | {r['printed']['pr']} | {r['printed']['npr']} | "
              f"{r['printed']['cosine']} |" for r in paper_rows(1)]
    extra = [r for r in paper_rows(5, part="y+t") if family == "sd3" and r["name"].startswith("SD3")]
    lines += [f"| {r['name']} | — | — | {r['printed']['npr']}% | {r['printed']['cosine']} |" for r in extra]
    title = "Table 1" + (" and Table 5" if extra else "")
    st.markdown(f"**The paper's reported values** ({title}: y+t at t0)\n\n" + "\n".join(lines))
    st.caption(CITATION)


def builtin_status(name: str) -> list[str]:
    """For a shipped model: where its c stands against the paper's regime (its model card's measured numbers)."""
    from dtviz.builtin.card import shipped_status
    from dtviz.sources.loading import BUILTINS

    return shipped_status(BUILTINS[name].path) if name in BUILTINS else []


def main():
    ctx = common.require_ctx()
    common.page_header(ctx, f"{common.plain(ctx.info.name)} — overview")  # a file's name is text, not markdown
    card = ctx.model_card()
    left, right = st.columns(2)
    with left:
        st.subheader("Model card")
        keys = ("model", "family", "family note", "d", ctx.rows, "parameters", "t convention", "device")
        st.markdown(common.card_markdown({k: card[k] for k in keys if k in card}, ("property", "value")))
        if ctx.info.extra.get("c_from_text") is False:  # PixArt-α/Σ, Sana: text only by cross-attention
            st.info("This model forms c from the timestep alone — text enters by cross-attention, not through c — "
                    "so c is the same vector for every prompt (cosine 1 between all rows). Its rows are still the "
                    "prompts; the views show one point repeated.", icon=":material/info:")
        shipped = builtin_status(ctx.info.name)
        if shipped:
            st.info(" ".join(shipped), icon=":material/school:")
        if not ctx.info.can_sample and ctx.info.sample_note:
            st.caption(f"Sampling: {common.shown(ctx.info.sample_note)}")
    with right:
        st.subheader("Table 1 row at the current settings")
        st.caption(f"{ctx.t_text}, part {ctx.part}. The paper does not say whether PR is taken of the mean vector "
                   f"or averaged over {ctx.rows}, so both readings are shown.")
        rest = {k: v for k, v in card.items() if k not in ("model", "family", "family note", "d", ctx.rows,
                                                               "parameters", "t convention", "device", "t", "part")}
        st.markdown(common.card_markdown(rest, ("statistic", "value")))
        paper_table(ctx.info.family.key)
    st.subheader("Per-dimension profile of the mean vector c̄")
    fig, data = profile_figure(ctx)
    common.show_figure(fig, "overview-mean-profile", data, title="Profile of the mean vector c̄")
    st.subheader("Views")
    for module, title, what in GUIDE:
        st.page_link(common.view_path(module), label=f"**{title}** — {what.format(row=ctx.row, rows=ctx.rows)}")


if __name__ == "__main__":
    main()

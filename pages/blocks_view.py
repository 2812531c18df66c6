"""Per-block modulation (issue 15): where each dim of c acts in each block's adaLN modulation, and how much each
block's modulation changes when c is pruned, against τ — without sampling (dtviz.analysis.blocks, dtviz.plots.blocks)."""
import numpy as np
import streamlit as st

import dtviz_app as common
from dtviz import plots
from dtviz.analysis.blocks import (AVERAGED_MAX_ROWS, averaged_rows, change_curves, class_read, contributions,
                                   modulation_change, modulations)
from dtviz.evaluation.claims import class_read_sentence
from dtviz.errors import DtvizInputError
from dtviz.pruning.spec import MASKS, MODES, PruneSpec
from dtviz_app.pruning_controls import MASK_LABELS, MODE_LABELS

CURVE_POINTS = 10


@st.cache_resource(max_entries=2, show_spinner="Reading the modulation weights…")
def _modulations(model_key: tuple, _source):
    return modulations(_source)


@st.cache_data(max_entries=32, ttl=3600, show_spinner="Computing the modulations…")
def _results(key: tuple, tau: float, mode: str, mask: str, _source, _mods) -> dict:
    """Contributions, the change at τ and the change-vs-τ curves for ``key`` = (ctx.key, rows)."""
    rows, t = key[-1], key[0][4]
    ids = np.asarray(rows)
    spec = PruneSpec(mode=mode, tau=tau, mask=mask)
    abs_mean = np.sort(np.abs(_source.embeddings(t=t).mean(0)))  # c̄ over all rows, as the header and the head
    # τ from 0 to the |c̄| below which 90% of the dims lie: the range where the tail grows from nothing to most of c
    taus = sorted(set(np.round(np.quantile(abs_mean, np.linspace(0, 0.9, CURVE_POINTS)), 6).tolist()) | {0.0, float(tau)})
    return {"contrib": contributions(_source, tau, t, ids, _mods),
            "change": modulation_change(_source, spec, t, ids, _mods)[0],
            "curves": change_curves(_source, taus, mode, mask, t, ids, _mods),
            "class_read": class_read(_source, t=t, classes=ids, mods=_mods).to_json() if len(ids) >= 2 else None}


def compute(ctx, mode: str = "tail", mask: str = "global") -> dict:
    mods = _modulations(ctx.model_key, ctx.source)
    return _results((ctx.key, averaged_rows(ctx.info.num_classes)), float(ctx.tau), mode, mask, ctx.source, mods)


def report_figures(ctx):
    res, context = compute(ctx), ctx.plot_context()
    return [{"name": "modulation-heatmap", "title": "Contribution of each dim to each block's modulation",
             "figure": plots.modulation_heatmap(res["contrib"], "all", context)},
            {"name": "modulation-change-vs-tau", "title": "Relative modulation change against τ",
             "figure": plots.modulation_change_curves(res["curves"], "all", context, ctx.tau)}]


def main():
    ctx = common.require_ctx()
    try:  # a matrix, a trajectory or PixArt/Sana has no per-block weights: say so, not an error box
        _modulations(ctx.model_key, ctx.source)
    except DtvizInputError as err:
        common.page_header(ctx, "Per-block modulation", metrics=False)
        st.info(str(err), icon=":material/info:")
        return
    n = ctx.info.num_classes
    used = min(n, AVERAGED_MAX_ROWS)
    common.page_header(ctx, "Per-block modulation", metrics=False,
                       caption=f"{ctx.title_context} · every block computes m = W·SiLU(c) + b from c (part y+t whatever "
                               f"the sidebar's part); averaged over {used} of {n} rows")
    cols = st.columns(3)
    with cols[0]:
        mode = common.bound(st.selectbox, "blk_mode", "tail", parse=common.choice(MODES), label="Prune",
                            options=list(MODES), format_func=MODE_LABELS.get)
    with cols[1]:
        mask = common.bound(st.selectbox, "blk_mask", "global", parse=common.choice(MASKS), label="Mask",
                            options=list(MASKS), format_func=MASK_LABELS.get)
    res = compute(ctx, mode, mask)
    chunks = list(res["contrib"].chunks)
    with cols[2]:
        chunk = common.bound(st.selectbox, "blk_chunk", "all", parse=common.choice(chunks), label="Modulation chunk",
                             options=chunks, help="DiT's order: shift, scale, gate for attention (msa) and MLP; "
                                                  "'all' = the whole modulation vector of the block")
    context = ctx.plot_context()
    spec = PruneSpec(mode=mode, tau=float(ctx.tau), mask=mask)
    st.subheader("Where each dimension of c acts")
    common.show_figure(plots.modulation_heatmap(res["contrib"], chunk, context), "modulation-heatmap",
                       title="Contribution of each dim to each block's modulation")
    st.caption("Columns are the dims of c sorted by |c̄ⱼ|; left of the dashed line the head (|c̄ⱼ| ≥ τ). The final layer "
               "has only shift and scale, so its row is empty for the other chunks.")
    if res["class_read"]:
        st.caption(f"Where adaLN reads the {ctx.row} (over the same {used} rows): "
                   + class_read_sentence(res["class_read"], ctx.row))
    what = f"{mode} |cᵢ| {'<' if mode == 'tail' else '≥'} τ = {spec.tau:g}, {MASK_LABELS[mask]}"  # no steps here: no sampling
    st.subheader(f"How much each block's modulation changes — {what}")
    common.show_figure(plots.modulation_change_bars(res["change"], context, what), "modulation-change",
                       title="Relative modulation change per block and chunk")
    change = res["change"]
    spread = " · ".join([f"block {b['block']} {b['change_vs_spread']:.3g}" for b in change.blocks]
                        + [f"final {change.final_vs_spread:.3g}"])
    st.caption("The same change against what varies between rows, ‖Δm‖ / sqrt(mean ‖m − m̄‖²) — a change that is "
               f"small against m can be large against the class signal in it: {spread}. `dtviz blocks` also gives its "
               "mean and maximum over the sampling schedule (t0 can understate a pruning).")
    curve_chunk = chunk if chunk in res["curves"] else "all"
    common.show_figure(plots.modulation_change_curves(res["curves"], curve_chunk, context, ctx.tau), "modulation-change-vs-tau",
                       title="Relative modulation change against τ")
    st.caption(f"‖m(c) − m(P(c))‖ / ‖m(c)‖ averaged over {used} of {n} rows (the null row never counted; a global "
               "mask and the head always from c̄ over all rows); `dtviz blocks SOURCE --tau τ --mode … --mask … --json` "
               "computes the same over all rows.")


if __name__ == "__main__":
    main()

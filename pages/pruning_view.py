"""Live pruning (paper section 5: Table 2, Figs. 7, 8, 10): sample with dimensions of c zeroed and compare
with the unpruned samples of the same noise; inspect one dimension across classes and ablate it alone."""
import math
import time

import numpy as np
import pandas as pd
import streamlit as st

import dtviz_app as common
from dtviz import budgets, plots
from dtviz.cli import select_classes
from dtviz.errors import DtvizInputError
from dtviz.generate import SAMPLER_LABELS
from dtviz.pruning import MASKS, MODES, PruneSpec, format_schedule, parse_schedule

PICKS = {"random": "random classes", "chosen": "chosen classes"}
SELECT_BY = {"tau": "threshold τ", "k": "count k"}
MODE_LABELS = {"tail": "tail (small |cᵢ|)", "head": "head (large |cᵢ|)"}
MASK_LABELS = {"global": "global, from c̄", "per-sample": "per sample, own |c|"}
SCHEDULES = {"every": "every step", "first": "first step", "last": "last K steps"}
DEFAULT_N, MAX_N, DEFAULT_CHOSEN, DEFAULT_LAST = 16, 64, 8, 10


def report_figures(ctx):
    dim = default_dim(ctx)
    return [{"name": "dimension-values", "title": f"Dimension {dim} of c across classes",
             "figure": dim_figure(ctx, dim, False)}]


def main():
    ctx = common.require_ctx()
    common.page_header(ctx, "Live pruning", metrics=False)
    gen, reason = common.generator(ctx)
    run = None
    if gen is None:
        st.info(f"No samples for this source — {common.shown(reason)} The dimension inspector below needs no sampling.",
                icon=":material/info:")
    else:
        st.markdown("Zero dimensions of c in every adaLN modulation while sampling, and compare with the unpruned "
                    "samples from the same noise. The pruned side recomputes when a control is released; the "
                    "baseline is computed once per classes, seed, sampler, steps and CFG.")
        run = sample_controls(ctx, gen)
        if run is not None:
            pruning_section(ctx, run)
    inspector_section(ctx, run)


# ------------------------------------------------------------------------------------------ samples

def sample_controls(ctx, gen) -> dict | None:
    """Classes, number of samples, seed, steps and CFG (changing them reruns the page: a new baseline)."""
    n_all = ctx.info.num_classes
    st.subheader("Samples")
    cols = st.columns([2, 5])
    with cols[0]:
        pick = common.bound(st.radio, "pr_pick", "random", parse=common.choice(PICKS), label="Classes",
                            options=tuple(PICKS), format_func=PICKS.get, horizontal=True)
    chosen = None
    if pick == "chosen":
        with cols[1]:
            chosen = common.bound(st.multiselect, "pr_ids", select_classes(n_all, None, min(DEFAULT_CHOSEN, n_all), 0),
                                  parse=common.ids_below(n_all), fmt=common.fmt_ints,
                                  label="Classes (type a name to search)", options=list(range(n_all)),
                                  format_func=lambda i: ctx.names[i], max_selections=MAX_N)
    cols = st.columns(5)
    with cols[0]:
        n = common.bound(st.number_input, "pr_n", DEFAULT_N, parse=common.int_in(1, MAX_N), label="Samples",
                         min_value=1, max_value=MAX_N, step=1,
                         help="Random classes: one sample per class. Chosen classes: the classes in turn.")
    with cols[1]:
        seed = common.bound(st.number_input, "pr_seed", 0, parse=common.int_in(0), label="Seed", min_value=0,
                                max_value=common.MAX_INT, step=1,
                            help="Draws the random classes and the initial noise; baseline and pruned samples share it.")
    with cols[2]:
        sampler = common.bound(st.selectbox, "pr_sampler", gen.sampler_names[0], parse=common.choice(gen.sampler_names),
                               label="Sampler", options=gen.sampler_names, format_func=SAMPLER_LABELS.get,
                               help=f"The model's default is {SAMPLER_LABELS[gen.defaults['name']]}.")
    with cols[3]:
        steps = common.bound(st.number_input, "pr_steps", int(gen.defaults["steps"]), parse=common.int_in(1, 1000),
                             label="Steps", min_value=1, max_value=1000, step=1,
                             help=f"Network evaluations per sample (the model's default is {gen.defaults['steps']}).")
    with cols[4]:
        cfg = common.bound(st.number_input, "pr_cfg", float(gen.defaults["cfg_scale"]), parse=_cfg_value,
                           fmt=common.fmt_float, label="CFG scale", min_value=0.0, max_value=20.0, step=0.5,
                           format="%g", help="Classifier-free guidance; 1 = none.")
    size = None
    if "height" in gen.defaults:  # a text-to-image pipeline: its image size, smaller on CPU (minutes per image)
        default = int(gen.defaults["height"]) if ctx.device != "cpu" else min(int(gen.defaults["height"]), 256)
        size = common.bound(st.number_input, "pr_size", default, parse=common.int_in(16, 2048), label="Image size (px)",
                            min_value=16, max_value=2048, step=16,
                            help=f"The pipeline's default is {gen.defaults['height']} px; on CPU a full-size SD3 / Flux "
                                 "image takes minutes, so the page starts smaller (fewer steps help too).")
    ids = chosen if pick == "chosen" else select_classes(n_all, None, min(int(n), n_all), int(seed))
    if not ids:
        st.info("Choose at least one class.")
        return None
    labels = tuple(int(ids[i % len(ids)]) for i in range(int(n)))
    if sampler == "sde" and steps < 2:
        st.info("The SDE sampler needs at least 2 steps.")
        return None
    try:  # per-request cap: one visitor's run holds the shared model for everyone (dtviz.budgets)
        budgets.check_sample_work(len(labels), int(steps))
    except DtvizInputError as err:
        st.warning(str(err), icon=":material/block:")
        return None
    return {"labels": labels, "steps": int(steps), "cfg": float(cfg), "seed": int(seed),
            "sampler": None if sampler == gen.defaults["name"] else sampler, "size": size}


def _cfg_value(raw: str) -> float:
    v = float(raw)
    if not 0 <= v <= 20:
        raise ValueError(raw)
    return v


def sampled(ctx, run: dict, spec=None) -> dict:
    """generate.sample_readout through the app's cache (the baseline when ``spec`` is None)."""
    return common.sample_run(ctx.model_key, run["labels"], run["steps"], run["cfg"], run["seed"], spec,
                             run["sampler"], run.get("size"))  # shows a progress bar while sampling


def side_by_side(ctx, run: dict, base: dict, result: dict, right_title: str, grids: tuple[str, str]) -> None:
    """The baseline and the pruned grid, same seeds in the same places; ``grids`` names them in the page."""
    names = [ctx.names[i] for i in run["labels"]]
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Baseline** · no pruning")
        common.image_grid(base["images"], names, grids[0])
    with right:
        st.markdown(right_title)
        common.image_grid(result["images"], names, grids[1])


def describe(spec: PruneSpec) -> str:
    """"tail |cᵢ| < τ = 0.01 · every step" etc., for the heading above the pruned grid."""
    if spec.dims is not None:
        what = "dims " + ", ".join(map(str, spec.dims))
    elif spec.tau is not None:
        what = f"{spec.mode}: |cᵢ| {'<' if spec.mode == 'tail' else '≥'} τ = {spec.tau:g}"
    else:
        what = f"{spec.mode}: the {spec.k} {'smallest' if spec.mode == 'tail' else 'largest'} |cᵢ|"
    kind, k = parse_schedule(spec.schedule)
    when = {"every": "every step", "first": "first step"}.get(kind, f"last {k} steps")
    parts = [what, when] + ([MASK_LABELS[spec.mask]] if spec.dims is None else []) + (["null rows too"] if spec.prune_null else [])
    return " · ".join(parts)


def readout(ctx, spec, base: dict, result: dict) -> None:
    """Removed dims, pixel drift and class accuracy of ``result`` against ``base``."""
    d = ctx.info.dim
    count, share = result["removed"]
    cols = st.columns(4)
    if spec.mask == "per-sample":
        cols[0].metric("Removed dims (mean per sample)", f"{count:.1f} / {d}  ({share:.1%})",
                       help="Each sample's own count from its c at t0; a per-sample mask is recomputed at every "
                            "pruned step, so the count can vary along the way.")
    else:
        cols[0].metric("Removed dims", f"{count} / {d}  ({share:.1%})",
                       help="Dims zeroed in every pruned row, chosen once from c̄ at t0 (at a τ, exactly the dims "
                            "`dtviz stats --tau` puts in the tail or head).")
    drift = result["drift"]
    mse = drift["mse"]
    cols[1].metric("Pixel drift (MSE)", f"{mse:.4f}" if mse == 0 or mse >= 1e-4 else f"{mse:.1e}",
                   help="Mean squared pixel difference from the baseline, pixels in [0, 1].")
    cols[2].metric("PSNR vs baseline", "∞ (identical)" if math.isinf(drift["psnr"]) else f"{drift['psnr']:.1f} dB")
    if result["accuracy"] is None:
        cols[3].metric("Class accuracy", "—", help="Only for models that ship a classifier (the built-in model).")
    else:
        acc, base_acc = result["accuracy"], base["accuracy"]
        cols[3].metric(f"Class accuracy (baseline {base_acc:.0%})", f"{acc:.0%}",
                       delta=None if acc == base_acc else f"{100 * (acc - base_acc):+.0f} points",
                       help="Share of the samples the built-in glyph classifier names as their own class.")


# ------------------------------------------------------------------------------------------ pruning

@st.fragment
def pruning_section(ctx, run: dict):
    """The pruning controls and the two grids; a change reruns only this part (the baseline is cached)."""
    st.subheader("Pruning")
    d = ctx.info.dim
    top = st.columns([2, 2, 5])
    with top[0]:
        mode = common.bound(st.radio, "pr_mode", "tail", parse=common.choice(MODES), label="Remove",
                            options=MODES, format_func=MODE_LABELS.get,
                            help="tail: zero the small dims (|cᵢ| < τ, or the k smallest); head: zero the large "
                                 "ones (|cᵢ| ≥ τ, or the k largest). The paper removes 2–8 head dims.")
    by_default = "k" if ctx.threshold == "topk" else "tau"
    common.follow("pr_by", by_default)
    with top[1]:
        by = common.bound(st.radio, "pr_by", by_default, parse=common.choice(SELECT_BY), label="Select dims by",
                          options=tuple(SELECT_BY), format_func=SELECT_BY.get)
    with top[2]:
        common.follow("pr_tau", ctx.tau_setting)
        tau = common.tau_input("pr_tau", ctx.tau_setting, show=by == "tau",
                               help="Starts at the sidebar's τ. The slider fires when released; the box takes any value.")
        k = None
        if by == "k":
            common.follow("pr_k", min(ctx.k, d))
            k = common.bound(st.columns([2, 3])[0].number_input, "pr_k", min(ctx.k, d), parse=common.int_in(0, d),
                             label="k (dims)", min_value=0, max_value=d, step=1,
                             help="tail: the k smallest |c̄ᵢ|; head: the k largest. Starts at the sidebar's k.")
    low = st.columns([2, 2, 2, 3])
    with low[0]:
        mask = common.bound(st.radio, "pr_mask", "global", parse=common.choice(MASKS), label="Mask from",
                            options=MASKS, format_func=MASK_LABELS.get,
                            help="global: one mask from c̄ at t0, for every sample. per sample: each row's own |c| "
                                 "at the step being run.")
    schedule, prune_null = when_controls("pr", run["steps"], low[1:])
    spec = PruneSpec(mode=mode, tau=tau if by == "tau" else None, k=None if k is None else int(k), mask=mask,
                     schedule=schedule, prune_null=prune_null)
    with st.spinner("Sampling the baseline…"):
        base = sampled(ctx, run)
    started = time.perf_counter()
    with st.spinner("Sampling with c pruned…"):
        result = sampled(ctx, run, spec)
    seconds = time.perf_counter() - started
    readout(ctx, spec, base, result)
    side_by_side(ctx, run, base, result, f"**Pruned** · {describe(spec)}", ("baseline", "pruned"))
    st.caption(f"{len(run['labels'])} samples, {run['steps']} steps, CFG {run['cfg']:g}, seed {run['seed']} · "
               f"pruned grid in {seconds:.2f} s{' (cached)' if seconds < 0.05 else ''} · hover a sample for its class.")


def when_controls(prefix: str, steps: int, cols) -> tuple[str, bool]:
    """Schedule (every / first / last K) and the null-row option in three columns; URL keys ``{prefix}_sched``,
    ``{prefix}_last``, ``{prefix}_null``. Returns (PruneSpec.schedule, PruneSpec.prune_null)."""
    with cols[0]:
        sched = common.bound(st.radio, f"{prefix}_sched", "every", parse=common.choice(SCHEDULES), label="Prune at",
                             options=tuple(SCHEDULES), format_func=SCHEDULES.get,
                             help="The paper's t_i (every step), t_0 (first) and t_{n-k,n} (last K).")
    last = DEFAULT_LAST
    if sched == "last":
        with cols[1]:
            last = common.bound(st.number_input, f"{prefix}_last", min(DEFAULT_LAST, steps),
                                parse=common.int_in(1, steps), label="K (last steps)", min_value=1,
                                max_value=steps, step=1)
    with cols[2]:
        prune_null = common.bound(st.toggle, f"{prefix}_null", False, parse=common.parse_bool, fmt=common.fmt_bool,
                                  label="Prune the null (CFG) rows too",
                                  help="Off (the paper's setting): only the conditional rows are pruned.")
    return format_schedule(sched, int(last)), prune_null


# ------------------------------------------------------------------------------------ one dimension

def default_dim(ctx) -> int:
    return int(np.argmax(np.abs(ctx.stats.mean_vector_)))


def dim_figure(ctx, dim: int, sort: bool):
    return plots.dim_across_classes(ctx.E[:, dim], ctx.names, dim, ctx.plot_context(), tau=ctx.tau, sort=sort)


@st.fragment
def inspector_section(ctx, run: dict | None):
    """One dimension's value across classes, and the samples with just that dimension zeroed."""
    st.subheader("Dimension inspector")
    mv = np.abs(ctx.stats.mean_vector_)
    order = [int(i) for i in np.argsort(-mv, kind="stable")]
    rank = {dim: r + 1 for r, dim in enumerate(order)}
    cols = st.columns([3, 2], vertical_alignment="bottom")
    with cols[0]:
        dim = common.bound(st.selectbox, "pr_dim", order[0], parse=common.int_in(0, ctx.info.dim - 1),
                           label="Dimension (largest |c̄ᵢ| first; type a number to search)", options=order,
                           format_func=lambda i: f"dim {i} · |c̄ᵢ| = {mv[i]:.4g} · rank {rank[i]}")
    with cols[1]:
        sort = common.bound(st.toggle, "pr_sort", False, parse=common.parse_bool, fmt=common.fmt_bool,
                            label="Sort classes by value")
    values = ctx.E[:, dim]
    common.show_figure(dim_figure(ctx, dim, sort), "dimension-values",
                       pd.DataFrame({"class_id": np.arange(len(values)), "class": ctx.names, f"c_{dim}": values}),
                       title=f"Dimension {dim} of c across classes")
    if run is None:
        return
    st.markdown(f"**Ablation:** the same samples with only dimension {dim} zeroed.")
    schedule, prune_null = when_controls("pr_dim", run["steps"], st.columns([2, 2, 5]))
    spec = PruneSpec(dims=(dim,), schedule=schedule, prune_null=prune_null)
    with st.spinner(f"Sampling without dimension {dim}…"):
        base, result = sampled(ctx, run), sampled(ctx, run, spec)
    readout(ctx, spec, base, result)
    side_by_side(ctx, run, base, result, f"**Without dimension {dim}** · {describe(spec)}",
                 ("ablation-baseline", "ablated"))


if __name__ == "__main__":
    main()

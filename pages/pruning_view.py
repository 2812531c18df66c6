"""Live pruning (paper section 5: Table 2, Figs. 7, 8, 10): sample with dimensions of c zeroed and compare with
the unpruned samples of the same noise; inspect one dimension across classes and ablate it alone.

It opens on the paper's central contrast, from the model's own statistics (dtviz.pruning.defaults): the tail
at the model's τ (s_tail(c̄) = 448/1152, the sidebar's) beside the head's k largest dims (3 % of d), with the
baseline — three grids, their read-outs and the τ control in one screen (1600×1000); the dimension inspector
below."""
import re
import time

import numpy as np
import pandas as pd
import streamlit as st

import dtviz_app as common
from dtviz import plots
from dtviz.sources import budgets
from dtviz.cli.args import select_classes
from dtviz.errors import DtvizInputError
from dtviz.sampling.flow import FLOW_SAMPLER_OPTIONS
from dtviz.sampling.generate import SAMPLER_LABELS
from dtviz.pruning.spec import MASKS, MODES, PruneSpec, format_schedule
from dtviz.pruning.defaults import pruning_defaults, reading_for
from dtviz.reference import paper_rows
from dtviz_app import pruning_controls
from dtviz_app.pruning_controls import MASK_LABELS, MODE_LABELS, describe, readout, readout_line

PICKS = {"random": "random {rows}", "chosen": "chosen {rows}"}  # {rows}: Ctx.rows
SELECT_BY = {"tau": "threshold τ", "k": "count k"}
SCHEDULES = {"every": "every step", "first": "first step", "last": "last K steps"}
DEFAULT_N, MAX_N, DEFAULT_CHOSEN, DEFAULT_LAST = 16, 64, 8, 10


def report_figures(ctx):
    dim = default_dim(ctx)
    return [{"name": "dimension-values", "title": f"Dimension {dim} of c across {ctx.rows}",
             "figure": dim_figure(ctx, dim, False)}]


def main():
    ctx = common.require_ctx()
    # the τ of this page is the one in its control bar: the caption names model, t and part only
    common.page_header(ctx, "Live pruning", metrics=False,
                       caption=f"{common.plain(ctx.model_label)} · {ctx.t_text} · zero dims of c in every adaLN "
                               "modulation while sampling; the same noise as the unpruned baseline")
    gen, reason = common.generator(ctx)
    run = None
    if gen is None:
        st.info(f"No samples for this source — {common.shown(reason)} The dimension inspector below needs no sampling.",
                icon=":material/info:")
    else:
        with st.expander(f"Samples: {ctx.rows}, count, seed, sampler, steps, CFG", icon=":material/tune:"):
            run = sample_controls(ctx, gen)
        if run is not None:
            pruning_section(ctx, run)
    inspector_section(ctx, run)


# ------------------------------------------------------------------------------------------ samples

def sample_controls(ctx, gen) -> dict | None:
    """Classes, number of samples, seed, steps and CFG (changing them reruns the page: a new baseline)."""
    n_all = ctx.info.num_classes
    cols = st.columns([2, 5])
    with cols[0]:
        pick = common.bound(st.radio, "pr_pick", "random", parse=common.choice(PICKS), label=ctx.rows.capitalize(),
                            options=tuple(PICKS), format_func=lambda p: PICKS[p].format(rows=ctx.rows), horizontal=True)
    chosen = None
    if pick == "chosen":
        with cols[1]:
            pruning_controls.class_search("pr_find", "pr_ids", ctx.names, MAX_N, ctx.row)
            chosen = common.bound(st.multiselect, "pr_ids", select_classes(n_all, None, min(DEFAULT_CHOSEN, n_all), 0),
                                  parse=common.ids_below(n_all), fmt=common.fmt_ints,
                                  label=f"Chosen {ctx.rows}", options=list(range(n_all)),
                                  format_func=lambda i: ctx.names[i], max_selections=MAX_N)
    cols = st.columns(5)
    with cols[0]:
        n = common.bound(st.number_input, "pr_n", DEFAULT_N, parse=common.int_in(1, MAX_N), label="Samples",
                         min_value=1, max_value=MAX_N, step=1,
                         help=f"Random {ctx.rows}: one sample per {ctx.row}. Chosen {ctx.rows}: the {ctx.rows} in turn.")
    with cols[1]:
        seed = common.bound(st.number_input, "pr_seed", 0, parse=common.int_in(0), label="Seed", min_value=0,
                                max_value=common.MAX_INT, step=1,
                            help=f"Draws the random {ctx.rows} and the initial noise; baseline and pruned samples share it.")
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
    spec = sampler_options_control(gen, sampler, int(steps))
    if spec is False:
        return None
    guidance = pruned_guidance_control(gen)
    ids = chosen if pick == "chosen" else select_classes(n_all, None, min(int(n), n_all), int(seed))
    if not ids:
        st.info(f"Choose at least one {ctx.row}.")
        return None
    labels = tuple(int(ids[i % len(ids)]) for i in range(int(n)))
    if sampler == "sde" and steps < 2:
        st.info("The SDE sampler needs at least 2 steps.")
        return None
    try:  # per-request cap: one visitor's run holds the shared model for everyone (dtviz.sources.budgets)
        budgets.check_sample_work(len(labels), int(steps))
    except DtvizInputError as err:
        st.warning(str(err), icon=":material/block:")
        return None
    return {"labels": labels, "steps": int(steps), "cfg": float(cfg), "seed": int(seed),
            "sampler": spec, "size": size, "pruned_guidance": guidance}


SAMPLER_OPTIONS_CHARS = re.compile(r"[A-Za-z0-9_.,=+-]{0,200}")


def _sampler_options(raw: str) -> str:
    """URL parser of the sampler options box: key=value pairs of letters, digits and . , = + - _ only."""
    if not SAMPLER_OPTIONS_CHARS.fullmatch(raw):
        raise ValueError(raw)
    return raw


def sampler_options_control(gen, sampler: str, steps: int):
    """The release options of a flow sampler (FLOW_SAMPLER_OPTIONS, e.g. SiT's SDE diffusion form), as the CLI's
    ``--sampler sde:diffusion_form=linear,...``. Returns the sampler spec for the run (None = the model's default),
    or False (after one warning sentence) when the options are not the sampler's."""
    allowed = FLOW_SAMPLER_OPTIONS.get(sampler, ())
    if not allowed:
        return None if sampler == gen.defaults["name"] else sampler
    text = common.bound(st.text_input, "pr_sampler_opts", "", parse=_sampler_options, label=f"{sampler} options",
                        max_chars=200, placeholder=",".join(f"{k}=…" for k in allowed[:2]),
                        help=f"key=value pairs, as the CLI's --sampler {sampler}:…; keys: {', '.join(allowed)} "
                             "(defaults: the release's, README Samplers).").strip()
    spec = f"{sampler}:{text}" if text else sampler
    try:
        gen.sampler(steps, spec)  # checks names and values, draws nothing
    except DtvizInputError as err:  # the message quotes the visitor's keys: shown as literal text
        common.show_error(err, warning=True)
        return False
    return None if spec == gen.defaults["name"] else spec


def pruned_guidance_control(gen) -> float | None:
    """Pruned-c guidance (dtviz.sampling.samplers.guided_denoiser): the pruned grids keep c whole and are guided away from
    the model with P(c), D = D_u + s·(D_c − D_u) + w·(D_c − D_P(c)); None when off or for a text-to-image pipeline."""
    if "height" in gen.defaults:  # a pipeline's own __call__ has no place for the extra forward
        return None
    cols = st.columns([2, 1, 4], vertical_alignment="bottom")
    on = common.bound(cols[0].toggle, "pr_pg", False, parse=common.parse_bool, fmt=common.fmt_bool,
                      label="Pruned-c guidance", help="Instead of sampling with the pruned c, guide with it: "
                      "D = D_u + s·(D_c − D_u) + w·(D_c − D_P(c)). One more network forward per step.")
    if not on:
        return None
    return float(common.bound(cols[1].number_input, "pr_pg_w", 1.0, parse=_guidance_value, fmt=common.fmt_float,
                              label="w", min_value=-10.0, max_value=10.0, step=0.5, format="%g"))


def _guidance_value(raw: str) -> float:
    v = float(raw)
    if not -10 <= v <= 10:
        raise ValueError(raw)
    return v


def _cfg_value(raw: str) -> float:
    v = float(raw)
    if not 0 <= v <= 20:
        raise ValueError(raw)
    return v


def sampled(ctx, run: dict, spec=None) -> dict:
    """quality.sample_readout through the app's cache (the baseline when ``spec`` is None)."""
    # pruned-c guidance only where a spec gives P; passed only when on, so the baseline's cache key is the one
    # sample_run's own baseline call uses
    guided = {} if spec is None or run.get("pruned_guidance") is None else {"pruned_guidance": run["pruned_guidance"]}
    return common.sample_run(ctx.model_key, run["labels"], run["steps"], run["cfg"], run["seed"], spec,
                             run["sampler"], run.get("size"), **guided)  # shows a progress bar while sampling


# ------------------------------------------------------------------------------------------ pruning

def control_bar(ctx, run: dict, defaults) -> tuple[PruneSpec, PruneSpec | None]:
    """The compact bar above the grids → (the pruned grid's spec, the contrast grid's spec or None)."""
    d = ctx.info.dim
    cols = st.columns([2.3, 1.7, 1.8, 1.5, 1.1, 1.6, 1.8], vertical_alignment="bottom")
    mode = common.bound(cols[0].radio, "pr_mode", "tail", parse=common.choice(MODES), label="Remove", options=MODES,
                        format_func=MODE_LABELS.get, horizontal=True,
                        help="tail: zero the small dims (|cᵢ| < τ, or the k smallest); head: zero the large ones "
                             "(|cᵢ| ≥ τ, or the k largest). The paper removes a few head dims (e.g. 4–6 of 1152, Sec. 5).")
    # the head is a few dims: chosen by count (the paper: "e.g., 4–6/1152"); the tail by the model's τ
    by_default = "k" if ctx.threshold == "topk" or mode == "head" else "tau"
    common.follow("pr_by", by_default)
    by = common.bound(cols[1].radio, "pr_by", by_default, parse=common.choice(SELECT_BY), label="Select dims by",
                      options=tuple(SELECT_BY), format_func=SELECT_BY.get, horizontal=True)
    mask = common.bound(cols[2].selectbox, "pr_mask", defaults.mask, parse=common.choice(MASKS), label="Mask from",
                        options=MASKS, format_func=MASK_LABELS.get,
                        help=f"global: one mask from c̄ at t0, for every sample. per sample: each row's own |c| at the "
                             f"step being run. Default for this model: {MASK_LABELS[defaults.mask]} — {defaults.why}.")
    schedule, prune_null = when_controls("pr", run["steps"], cols[3:6], compact=True)
    contrast = common.bound(cols[6].toggle, "pr_contrast", True, parse=common.parse_bool, fmt=common.fmt_bool,
                            label="Contrast grid", help="A third grid with the opposite pruning: the head's k largest "
                                                       "dims when you prune the tail, the tail at the sidebar's τ when you "
                                                       "prune the head — the paper's central contrast.")
    tau_default = float(ctx.tau)  # the sidebar's τ: one τ per model on every page
    common.follow("pr_tau", tau_default)
    tau, k = float(st.session_state.get("pr_tau", tau_default)), None
    if by == "tau":
        marks = ctx.stats.tau_marks(reading_for(mask))
        tau = pruning_controls.tau_control(
            "pr_tau", marks, tau_default,
            help=f"Starts at the sidebar's τ ({tau_default:.4g}: for this model's own default, 448/1152 of c̄'s dims lie "
                 "below it, as under the paper's τ = 0.01 on REPA-XL). The slider fires when released; the box takes "
                 "any value.")
    else:
        k_default = defaults.head_k if mode == "head" else min(ctx.k, d)
        common.follow("pr_k", k_default)
        k = int(common.bound(st.columns([1, 5])[0].number_input, "pr_k", k_default, parse=common.int_in(0, d),
                             label="k (dims)", min_value=0, max_value=d, step=1,
                             help=f"tail: the k smallest |c̄ᵢ|; head: the k largest (default {defaults.head_k}, "
                                  f"{defaults.head_k / d:.0%} of d: the paper removes e.g. 4–6 of 1152 at XL width, where about 1–2 % of "
                                  "the dims are large)."))
    spec = PruneSpec(mode=mode, tau=tau if by == "tau" else None, k=k, mask=mask, schedule=schedule,
                     prune_null=prune_null)
    if not contrast:
        return spec, None
    if mode == "tail":
        other = PruneSpec(mode="head", k=defaults.head_k, mask=mask, schedule=schedule, prune_null=prune_null)
    else:
        other = PruneSpec(mode="tail", tau=tau_default, mask=mask, schedule=schedule, prune_null=prune_null)
    return spec, other


def short(spec: PruneSpec) -> str:
    """"tail |cᵢ| < 0.29", "head, k = 2": a grid's one-line title (``describe`` in its tooltip)."""
    if spec.tau is not None:
        return f"{spec.mode} |cᵢ| {'<' if spec.mode == 'tail' else '≥'} {spec.tau:g}"
    return f"{spec.mode}, k = {spec.k}"


def paper_line() -> str:
    """Table 2 (REPA-XL, FID) in one line: the reference beside the grids."""
    rows = paper_rows(2)
    base = next(r for r in rows if r["baseline"])
    tail = next(r for r in rows if r["prune"] == "tail" and r["tau"] == 0.01 and r["schedule"] == "every")
    heads = [r for r in rows if r["prune"] == "head"]
    return (f"Paper (Table 2, {base['name']}, FID ↓): baseline {base['printed']['fid']}; tail τ = 0.01 removes "
            f"{tail['printed']['removed']} → {tail['printed']['fid']}; head "
            + " and ".join(f"{r['removed_dims']} dims → {r['printed']['fid']}" for r in heads) + ".")


@st.fragment
def pruning_section(ctx, run: dict):
    """The control bar and the grids; a change reruns only this part (the baseline is cached, and each grid
    stays on screen dimmed while its next version is sampled). A refused or stopped run is one sentence."""
    try:
        _pruning_section(ctx, run)
    except DtvizInputError as err:
        common.show_error(err, warning=True)


def _pruning_section(ctx, run: dict):
    defaults = pruning_defaults(ctx.stats, E=ctx.E)
    spec, other = control_bar(ctx, run, defaults)
    names = [ctx.names[i] for i in run["labels"]]
    panels = [("baseline", "**Baseline** · no pruning", None), ("pruned", f"**Pruned** · {short(spec)}", spec)]
    if other is not None:
        panels.append(("contrast", f"**Contrast** · {short(other)}", other))
    columns = st.columns(len(panels), gap="small")
    slots = {}
    for col, (name, title, pspec) in zip(columns, panels):
        with col:
            st.markdown(title, help=None if pspec is None else describe(pspec))
            # every grid's one-line read-out sits right under its title, so the grids line up and both read-outs
            # are in the first screen; the full metrics of the pruned grid follow below the grids. Two lines' height:
            # a third of a 1600-px page wraps the read-out once, and every grid must start at the same height
            slots[name] = (st.container(height=48, border=False), pruning_controls.grid_slot(name))
    metrics = st.container()
    results, seconds = {}, 0.0
    for col, (name, _, pspec) in zip(columns, panels):
        note, slot = slots[name]
        started = time.perf_counter()
        with note:
            results[name] = sampled(ctx, run, pspec)
        if name == "pruned":
            seconds = time.perf_counter() - started
        note.caption("the unpruned samples, same noise" if pspec is None else readout_line(ctx.info.dim, results[name]))
        pruning_controls.fill_grid(slot, results[name]["images"], names, name)
    with metrics:
        readout(ctx.info.dim, spec, results["baseline"], results["pruned"])
        other_null(ctx, run, spec, results["baseline"])
    st.caption(f"{len(run['labels'])} samples, {run['steps']} steps, CFG {run['cfg']:g}, seed {run['seed']} · pruned "
               f"grid in {seconds:.2f} s{' (cached)' if seconds < 0.05 else ''} · hover a sample for its {ctx.row} · "
               + (f"pruned-c guidance w = {run['pruned_guidance']:g}: the pruned grids keep c whole and guide with "
                  "P(c) (one more forward per step) · " if run.get("pruned_guidance") is not None else "")
               + paper_line())


def other_null(ctx, run: dict, spec: PruneSpec, base: dict) -> None:
    """The paper does not say whether the CFG null rows are pruned: the same pruning with the other choice, in one
    line (one more sampling run, cached like the others)."""
    from dataclasses import replace

    flipped = replace(spec, prune_null=not spec.prune_null)
    result = sampled(ctx, run, flipped)
    acc, base_acc = result.get("accuracy"), base.get("accuracy")
    what = "kept (only the conditional rows pruned)" if spec.prune_null else "pruned too (as pruning inside the forward does)"
    quality = (f"class acc. {acc:.0%} (base {base_acc:.0%})" if acc is not None else
               f"PSNR {result['drift']['psnr']:.1f} dB vs baseline")
    st.caption(f"With the CFG null rows {what}: {quality} · {readout_line(ctx.info.dim, result)}. The paper does not "
               "say which; dtviz prunes them by default, as zeroing c inside the model's forward does.")


def when_controls(prefix: str, steps: int, cols, compact: bool = False) -> tuple[str, bool]:
    """Schedule (every / first / last K) and the null-row option in three columns; URL keys ``{prefix}_sched``,
    ``{prefix}_last``, ``{prefix}_null``. Returns (PruneSpec.schedule, PruneSpec.prune_null)."""
    with cols[0]:
        sched = common.bound(st.selectbox if compact else st.radio, f"{prefix}_sched", "every",
                             parse=common.choice(SCHEDULES), label="Prune at", options=tuple(SCHEDULES),
                             format_func=SCHEDULES.get,
                             help="The paper's t_i (every step), t_0 (first) and t_{n-k,n} (last K).")
    last = DEFAULT_LAST
    if sched == "last":
        with cols[1]:
            last = common.bound(st.number_input, f"{prefix}_last", min(DEFAULT_LAST, steps),
                                parse=common.int_in(1, steps), label="K (last steps)", min_value=1,
                                max_value=steps, step=1)
    with cols[2]:
        prune_null = common.bound(st.toggle, f"{prefix}_null", True, parse=common.parse_bool, fmt=common.fmt_bool,
                                  label="Null rows too" if compact else "Prune the null (CFG) rows too",
                                  help="On (dtviz's default): the CFG null rows are pruned too, as zeroing c inside the "
                                       "model's forward prunes both halves of the CFG batch. Off: only the conditional "
                                       "rows. The paper does not say which; the line under the read-outs shows the other.")
    return format_schedule(sched, int(last)), prune_null


# ------------------------------------------------------------------------------------ one dimension

def default_dim(ctx) -> int:
    return int(np.argmax(np.abs(ctx.stats.mean_vector_)))


def dim_figure(ctx, dim: int, sort: bool):
    return plots.dim_across_classes(ctx.E[:, dim], ctx.names, dim, ctx.plot_context(), tau=ctx.tau, sort=sort)


@st.fragment
def inspector_section(ctx, run: dict | None):
    """One dimension's value across classes, and the samples with just that dimension zeroed."""
    try:
        _inspector_section(ctx, run)
    except DtvizInputError as err:
        common.show_error(err, warning=True)


def _inspector_section(ctx, run: dict | None):
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
                            label=f"Sort {ctx.rows} by value")
    values = ctx.E[:, dim]
    common.show_figure(dim_figure(ctx, dim, sort), "dimension-values",
                       pd.DataFrame({f"{ctx.row}_id": np.arange(len(values)), ctx.row: ctx.names, f"c_{dim}": values}),
                       title=f"Dimension {dim} of c across {ctx.rows}")
    if run is None:
        return
    st.markdown(f"**Ablation:** the same samples with only dimension {dim} zeroed.")
    schedule, prune_null = when_controls("pr_dim", run["steps"], st.columns([2, 2, 5]))
    spec = PruneSpec(dims=(dim,), schedule=schedule, prune_null=prune_null)
    with st.spinner(f"Sampling without dimension {dim}…"):
        base, result = sampled(ctx, run), sampled(ctx, run, spec)
    readout(ctx.info.dim, spec, base, result)
    names = [ctx.names[i] for i in run["labels"]]
    left, right = st.columns(2, gap="large")
    with left:
        st.markdown("**Baseline** · no pruning")
        common.image_grid(base["images"], names, "ablation-baseline")
    with right:
        st.markdown(f"**Without dimension {dim}** · {describe(spec)}")
        common.image_grid(result["images"], names, "ablated")


if __name__ == "__main__":
    main()

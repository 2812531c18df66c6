"""Timestep and training dynamics (paper Fig. 12 and Sec. 5 on late steps): cosine and nPR of c as a
function of t for one model, and over the training steps of a folder of checkpoints."""
import os

import pandas as pd
import streamlit as st

import dtviz_app as common
from dtviz import plots
from dtviz.analysis.dynamics import SERIES_KEYS, SPLIT_KEYS
from dtviz.errors import DtvizInputError
from dtviz.sources.loading import BUILTINS
DEFAULT_N = 11


def over_t_items(ctx, series: dict) -> list[dict]:
    conv = ctx.info.family.convention
    context = {**ctx.plot_context(with_tau=False), "t": None}
    if is_trajectory(ctx):  # a captured trajectory: its own denoising steps (Sec. 5: cosine rises toward the end)
        return plots.over_t_figures(series, context, f"sampling step ({conv.describe()})", "the sampling steps", ctx.row)
    return plots.over_t_figures(series, context, f"timestep t ({conv.describe()})", "t", ctx.row)


def training_items(series: dict, folder: str, part: str) -> list[dict]:
    context = {"model": os.path.basename(os.path.normpath(folder)) or folder, "t": "each checkpoint's t0", "part": part}
    return plots.training_figures(series, context)


def frame(series: dict, x: str, keys=SERIES_KEYS) -> pd.DataFrame:
    keys = [x, *keys]
    df = pd.DataFrame({k: series[k] for k in keys})
    if "path" in series:
        df["path"] = [common.link_name(p) for p in series["path"]]  # as links name them: no server path
    return df


def is_trajectory(ctx) -> bool:
    return ctx.info.family.key == "trajectory"


def steps_n(ctx, default: int) -> int:
    """Every captured step of a trajectory (its convention's grid returns them all), else ``default``."""
    return ctx.source.steps if is_trajectory(ctx) else default


def default_folder(ctx) -> str:
    return f"{ctx.source_key}/snapshots" if ctx.source_key in BUILTINS else ""  # a served name, not a server path


def report_figures(ctx):
    items = []
    if ctx.info.family.convention is not None:
        items += over_t_items(ctx, common.series_over_t(ctx.key, steps_n(ctx, DEFAULT_N)))
    folder = default_folder(ctx)
    if folder:
        items += training_items(common.series_over_training(common.open_folder(folder), ctx.part), folder, ctx.part)
    return items


def main():
    ctx = common.require_ctx()
    common.page_header(ctx, "Timestep & training dynamics")
    over_t_section(ctx)
    training_section(ctx)


@st.fragment
def over_t_section(ctx):
    st.subheader("Over the timestep t")
    conv = ctx.info.family.convention
    if conv is None:
        st.info("A precomputed matrix has no timestep; load a model checkpoint to see c(t).")
    elif is_trajectory(ctx):
        st.caption(f"Every captured step of the trajectory ({ctx.source.steps}), step 0 = t0, the first sampling step.")
        series = common.series_over_t(ctx.key, steps_n(ctx, DEFAULT_N))
        for item in over_t_items(ctx, series):
            common.show_figure(item["figure"], item["name"], frame(series, "t"), title=item["title"])
    else:
        n = common.bound(st.slider, "dyn_n", DEFAULT_N, parse=common.int_in(3, 101), label="Number of timesteps",
                         min_value=3, max_value=101, step=1,
                         help=f"Evenly spaced from noise (t0 = {conv.t0:g}) to data ({conv.data_at:g}).")
        series = common.series_over_t(ctx.key, int(n))
        for item in over_t_items(ctx, series):
            common.show_figure(item["figure"], item["name"], frame(series, "t"), title=item["title"])


@st.fragment
def training_section(ctx):
    st.subheader("Over training steps")
    folder = common.bound(st.text_input, "dyn_folder", default_folder(ctx),
                          label="Folder of checkpoints of one training run",
                          placeholder="runs/sit-xl/checkpoints",
                          help="Files named like step_000250.safetensors (or with 'step' metadata); each is read "
                               "at its own t0. The built-in model ships its training snapshots.").strip()
    if not folder:
        st.caption("Enter a folder to plot cosine and nPR over the training steps.")
        return
    try:
        series = common.series_over_training(common.open_folder(folder), ctx.part)  # inside the served roots only
    except DtvizInputError as err:
        common.show_error(err)
        return
    if series.get("note"):  # more checkpoints than one request may read: "n shown of N"
        st.caption(series["note"])
    for item in training_items(series, folder, ctx.part):
        keys = SERIES_KEYS
        if item["name"] == "size-split-over-training":
            keys = SPLIT_KEYS
            st.caption("Where c's size sits: the label rows' cosine is about ‖ȳ‖² / (‖ȳ‖² + mean ‖y_k − ȳ‖²), and the "
                       "y+t cosine rises with t_emb's share (`dtviz.analysis.dynamics.size_split`). Whether the shared part "
                       "sits in ȳ or in t_emb is training's choice: c and the samples depend only on their sum "
                       "(docs/claims.md, The label part).")
        common.show_figure(item["figure"], item["name"], frame(series, "step", keys), title=item["title"])


if __name__ == "__main__":
    main()

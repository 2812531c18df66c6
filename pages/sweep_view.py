"""A sweep folder (``dtviz sweep --out DIR``, paper Table 2): its table, sortable, and each metric against τ per
schedule. Reads table.csv through dtviz.evaluation.sweep_metrics; the folder must be inside the served roots."""
import streamlit as st

import dtviz_app as common
from dtviz import plots
from dtviz.errors import DtvizInputError
from dtviz.evaluation.sweep_metrics import METRIC_LABELS, metric_curves, read_sweep_table

EXAMPLE = "builtin/sweep-example"  # shipped with the built-in model, written by scripts/example_sweep.py
SHOWN = ("setting", "label", "removed_dims", "removed_share", "fid", "is", "clip", "kid", "precision", "recall",
         "class_accuracy", "template_accuracy", "drift_mse", "drift_psnr", "samples", "pruned_guidance")


def example_note() -> str:
    """How the shipped example sweep was made: the commands scripts/example_sweep.py ran (its command.txt)."""
    import os

    from dtviz.sources.builtins import BUILTIN_DIR

    path = os.path.join(BUILTIN_DIR, "sweep-example", "command.txt")
    if not os.path.isfile(path):
        return ""
    with open(path, encoding="utf-8") as fh:
        commands = [line.strip() for line in fh if line.strip()]
    return ("The built-in model's example sweep, shipped with dtviz (scripts/example_sweep.py): "
            + " and ".join(f"`{c}`" for c in commands) + ".")


def main():
    st.title("Sweep table")
    st.caption("A folder written by `dtviz sweep … --out DIR` (add `--metrics fid,is,kid,pr,clip` for the quality columns). "
               "Click a column header to sort.")
    text = common.bound(st.text_input, "swp_folder", EXAMPLE, label="Sweep folder",
                        placeholder="runs/sweep-tail",
                        help=f"Opens on {EXAMPLE}, a small sweep of the built-in model shipped with dtviz "
                             "(scripts/example_sweep.py wrote it); any folder written by dtviz sweep inside the "
                             "served folders works.").strip()
    if not text:
        st.info("Enter the folder of a sweep (inside the folders this server shares).")
        return
    if text == EXAMPLE:
        note = example_note()
        if not note:  # a checkout without the shipped example (scripts/example_sweep.py writes it)
            st.info("Enter the folder of a sweep (inside the folders this server shares).")
            return
        st.caption(note)
    try:
        df = read_sweep_table(common.open_name(text))  # inside the served roots only
    except DtvizInputError as err:
        common.show_error(err)
        return
    # a metric the sweep did not compute is an empty column: leave it out
    shown = [c for c in SHOWN if c in df.columns and not (c in METRIC_LABELS and df[c].isna().all())]
    st.dataframe(df[shown], hide_index=True, width="stretch")
    available = [m for m in METRIC_LABELS if m in df.columns and df[m].notna().any()]
    if not available:
        st.info("This sweep has no numeric metric columns to plot.")
        return
    metric = common.bound(st.selectbox, "swp_metric", available[0], parse=common.choice(available), label="Metric",
                          options=available, format_func=METRIC_LABELS.get)
    x, curves, baseline = metric_curves(df, metric)
    name = common.link_name(common.open_name(text))
    fig = plots.sweep_metric_curves(x, curves, baseline, METRIC_LABELS[metric], f"sweep {name}")
    common.show_figure(fig, f"sweep-{metric}", title=f"{METRIC_LABELS[metric]} against τ")


if __name__ == "__main__":
    main()

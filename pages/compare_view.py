"""Compare models (paper Table 1, Fig. 1): several sources side by side, each at its own t0."""
import os

import pandas as pd
import streamlit as st

import dtviz_app as common
from dtviz import plots
from dtviz.sources import budgets
from dtviz.cli.main import TABLE_COLUMNS
from dtviz.errors import DtvizInputError
from dtviz.sources.loading import BUILTIN, BUILTIN_DIR, BUILTINS
from dtviz.reference import CITATION, compare_rows, family_reference, paper_rows

SNAPSHOTS = os.path.join(BUILTIN_DIR, "snapshots")
SNAPSHOT_NAMES = f"{BUILTIN}/snapshots/"  # how links name them (dtviz.serving.roots: a built-in model's folder)


def known_sources(ctx) -> list[str]:
    """The built-in model, its training snapshots, the cached HF pipelines and the current source, by the
    names links use (relative to their served root; never an upload)."""
    options = list(BUILTINS)  # the shipped models by name (builtin, builtin-wide)
    try:
        options += sorted(SNAPSHOT_NAMES + f for f in os.listdir(SNAPSHOTS) if f.endswith(".safetensors"))
    except OSError:
        pass
    options += [f"hf:{r}" for r in common.cached_pipelines()]
    current = None if ctx is None or common.is_upload(ctx.source_key) else common.link_name(ctx.source_key)
    if current is not None and current not in options:
        options.append(current)
    return options


def default_sources(options) -> list[str]:
    first = [o for o in options if o.startswith(SNAPSHOT_NAMES)][:1]
    return [BUILTIN] + first


def label(source: str) -> str:
    """Options are already link names (relative to their root); a typed line is shown as typed (scrubbed on display)."""
    return source


def paper_default(ctx) -> list[str]:
    """The paper's DiT-XL/2 row (issue 11's anchor) and the row of the current source's family."""
    family = None if ctx is None or ctx.source_key in BUILTINS else ctx.info.family.key
    return list(dict.fromkeys(["DiT-XL/2", family_reference(family, None if ctx is None else ctx.info.dim)]))


def paper_options() -> list[str]:
    return [r["name"] for r in paper_rows(1) + paper_rows(5, part="y+t")]


def rows_for(ctx, sources):
    rows, errors = [], []
    for s in sources:
        try:
            real = common.open_name(s)  # inside the served roots, or the one refusal sentence
            common.refresh_if_changed(real)
            rows.append(common.compare_row(real, ctx.device, ctx.part, ctx.tau))
        except DtvizInputError as err:
            errors.append((s, str(err)))
    return rows, errors


def compare_figure(ctx, rows):
    context = {**ctx.plot_context(), "model": f"{len(rows)} models", "family": None, "d": None,
               "t": "each model's t0"}
    return plots.compare_bars(rows, context)


def report_figures(ctx):
    rows, _ = rows_for(ctx, default_sources(known_sources(ctx)))
    rows += compare_rows(paper_default(ctx)) if rows else []
    return [{"name": "compare", "title": "Compare models: nPR and cosine", "figure": compare_figure(ctx, rows)}] if rows else []


def main():
    ctx = common.require_ctx()
    common.page_header(ctx, "Compare models", metrics=False,
                       caption=f"Each model at its own t0 (the paper's convention) · part {ctx.part} · {ctx.tau_text} "
                               "(for s_tail) · the numbers of `dtviz table`")
    options = known_sources(ctx)
    chosen = common.bound(st.multiselect, "cmp_src", default_sources(options), parse=lambda raw: _known(raw, options),
                          fmt="\n".join, label="Sources", options=options, format_func=label)
    extra = common.bound(st.text_area, "cmp_more", "", label="More sources (one path or hf:<repo> per line)",
                         placeholder="models/DiT-XL-2-256x256.pt\nmodels/SiT-XL-2-256.pt", height=80)
    paper = common.bound(st.multiselect, "cmp_paper", paper_default(ctx), parse=lambda raw: _known(raw, paper_options()),
                         fmt="\n".join, label="The paper's reported rows beside yours (Tables 1 and 5; hatched bars, "
                                               "source “paper: …”)", options=paper_options())
    sources = list(dict.fromkeys(chosen + [line.strip() for line in extra.splitlines() if line.strip()]))
    if not sources:
        st.info("Choose at least one source.")
        return
    if len(sources) > budgets.MAX_COMPARE_SOURCES:  # each row opens a model: one request may not open dozens
        st.warning(f"{len(sources)} sources were given, but this server compares at most {budgets.MAX_COMPARE_SOURCES} "
                   f"at once; the first {budgets.MAX_COMPARE_SOURCES} are shown.", icon=":material/block:")
        sources = sources[:budgets.MAX_COMPARE_SOURCES]
    with st.spinner(f"Computing {len(sources)} Table-1 rows…"):
        rows, errors = rows_for(ctx, sources)
    for source, message in errors:
        common.show_error(f"{label(source)}: {message}")
    if not rows:
        return
    rows += compare_rows(paper)  # family "paper": reported values, not computed (dtviz.reference)
    if paper:
        st.caption(f"Rows “paper: …” are the paper's reported values at t0, y+t (its Table 1, one PR/nPR reading, "
                   f"shown as c̄'s; Table 5 gives cosine and nPR only); None: not reported. {CITATION}")
    table = pd.DataFrame(rows, columns=list(TABLE_COLUMNS))
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "dim": st.column_config.NumberColumn("d"), "num_classes": st.column_config.NumberColumn(
            "rows", help="The number of conditions: classes, prompts or matrix rows (num_classes counts them)"),
        "npr_mean_vector": st.column_config.NumberColumn("nPR (c̄)", format="percent"),
        "npr_per_class_mean": st.column_config.NumberColumn("nPR (per-row mean)", format="percent"),
        "pr_mean_vector": st.column_config.NumberColumn("PR (c̄)", format="%.2f"),
        "pr_per_class_mean": st.column_config.NumberColumn("PR (per-row mean)", format="%.2f"),
        "cosine_mean": st.column_config.NumberColumn("cosine", format="%.4f"),
        "s_tail_mean_vector": st.column_config.NumberColumn("s_tail (c̄)", format="%.3f"),
    })
    common.show_figure(compare_figure(ctx, rows), "compare", table, title="Compare models: nPR and cosine")


def _known(raw: str, options) -> list[str]:
    values = [v for v in raw.split("\n") if v]
    if any(v not in options for v in values):
        raise ValueError(raw)
    return values


if __name__ == "__main__":
    main()

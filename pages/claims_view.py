"""Paper claims: each of the paper's claims measured on the loaded model, with a verdict by the rule stated in its row
(dtviz.evaluation.claims, the numbers of `dtviz claims`). The statistics rows appear at once; the sampling rows run
as a background job of the server (dtviz_app.jobs) with a progress bar, and are kept for every visitor."""
import time

import streamlit as st

import dtviz_app as common
from dtviz.cli.args import format_seconds
from dtviz.errors import DtvizInputError
from dtviz_app import jobs
from dtviz_app.cache import canonical

VERDICT_COLOURS = {"holds": "green", "partly": "orange", "does not hold": "red", "not measurable here": "gray"}
PAGE_TITLES = {module: title for module, title, *_ in common.PAGES}
PAGE_SHORT = {"cosine": "Cosine", "magnitudes": "Magnitudes", "variance": "Variance", "projection": "Projection",
              "dynamics": "Dynamics", "pruning": "Live pruning", "sweep": "Sweep table", "blocks": "Blocks"}
SAMPLES = 256  # per sampling run, 12 runs: the same plan as `dtviz claims` by default


@st.cache_data(max_entries=16, ttl=3600, show_spinner="Measuring the statistics rows…")
def _statistics_rows(key: tuple, _source, t):
    from dtviz.evaluation.claims import statistics_claims

    return statistics_claims(_source, t=t)


def statistics_rows(ctx):
    return _statistics_rows(canonical(ctx.key), ctx.source, ctx.t)


def plan_for(ctx):
    from dtviz.evaluation.claim_sampling import default_plan

    return default_plan(ctx.source, samples=SAMPLES)


def job_key(ctx, plan) -> tuple:
    return ("claims-sampling", canonical(ctx.model_key), plan)


def start_sampling(ctx, plan):
    from dtviz.evaluation.claim_sampling import sampling_claims

    gen, reason = common.generator(ctx)
    if gen is None:
        raise DtvizInputError(reason)
    source = ctx.source
    return jobs.start(job_key(ctx, plan), lambda progress: sampling_claims(source, plan=plan, generator=gen,
                                                                            progress=progress))


def report_figures(ctx):
    from dtviz import plots

    rows = statistics_rows(ctx)
    return [{"name": "claims", "title": "Paper claims, measured", "figure": plots.claims_table(rows, ctx.plot_context(with_tau=False))}]


def row_view(r) -> None:
    with st.container(border=True):
        cols = st.columns([3.2, 2.5, 4.0, 1.7, 1.6], vertical_alignment="top")
        cols[0].markdown(f"**{r.claim}**")
        cols[0].caption(f"`{r.id}` · rule: {r.rule}")
        cols[1].caption("paper")
        cols[1].text(r.paper)
        cols[2].caption("this model")
        cols[2].text(r.measured)
        cols[3].badge(r.verdict, color=VERDICT_COLOURS[r.verdict])
        cols[4].page_link(common.view_path(r.page), label=PAGE_SHORT.get(r.page, r.page), icon=":material/arrow_forward:",
                          help=f"The page that shows it: {PAGE_TITLES.get(r.page, r.page)}")


def main():
    ctx = common.require_ctx()
    common.page_header(ctx, "Paper claims, measured on this model", metrics=False,
                       caption=f"{common.plain(ctx.title_context)} · statistics rows at {ctx.t_text}; each verdict follows "
                               "the rule in its row")
    st.markdown("Each row is one claim of the paper, measured here. The sampling rows prune c while sampling and read "
                "the class (or the pixel drift without a classifier) with the CFG null rows **pruned** (as pruning c "
                "inside the model's forward does; the paper does not say) and **kept**, beside two controls: only the "
                "label part removed from the same dims, and as many random dims.")
    rows = {r.id: r for r in statistics_rows(ctx)}
    sampling_section(ctx, rows)


def shipped_rows(ctx) -> list:
    """A built-in model's sampling rows as its model card measured them (scripts/model_card.py: the same plan)."""
    import json
    import os

    from dtviz.evaluation.claims import SAMPLING_IDS, Claim
    from dtviz.sources.builtins import BUILTINS

    if ctx.source_key not in BUILTINS:
        return []
    path = os.path.join(BUILTINS[ctx.source_key].path, "card.json")
    try:
        with open(path, encoding="utf-8") as fh:
            card = json.load(fh)
    except (OSError, ValueError):
        return []
    return [Claim(**r) for r in card.get("claims", []) if r.get("id") in SAMPLING_IDS]


@st.fragment(run_every=None)
def sampling_section(ctx, rows: dict) -> None:
    from dtviz.evaluation.claims import CLAIM_IDS, SAMPLING_IDS, not_measurable

    plan = plan_for(ctx)
    job = jobs.get(job_key(ctx, plan))
    if job is not None and job.finished and job.error is None:
        rows.update({r.id: r for r in job.result})
    elif job is None and (shipped := shipped_rows(ctx)):
        rows.update({r.id: r for r in shipped})
        st.caption("The sampling rows of this built-in model are those its model card measured when it was shipped "
                   "(scripts/model_card.py, the same plan); the button below measures them again.")
    for cid in SAMPLING_IDS:
        rows.setdefault(cid, not_measurable(cid, "not run yet: measure the sampling rows below."))
    ordered = [rows[c] for c in CLAIM_IDS]
    for r in ordered:
        row_view(r)
    gen, reason = common.generator(ctx)
    if gen is None:
        st.info(f"The sampling rows need samples: {common.shown(reason)}", icon=":material/info:")
    elif job is None or job.error is not None:
        if job is not None:
            st.warning(job.error, icon=":material/warning:")
        estimate = gen.estimate_seconds(plan.samples, runs=12) if hasattr(gen, "estimate_seconds") else None
        about = f", about {format_seconds(estimate)} here" if estimate else ""
        if st.button(f"Measure the sampling rows: 12 runs of {plan.samples} samples{about}", icon=":material/play_arrow:",
                     key="clm_run"):
            try:
                start_sampling(ctx, plan)
            except DtvizInputError as err:
                common.show_error(err, warning=True)
            st.rerun(scope="fragment")
    elif not job.finished:
        st.progress(job.done / job.total, text=f"Sampling run {min(job.done + 1, job.total)} of {job.total}: "
                                               f"{job.label} ({time.time() - job.started:.0f} s)")
        time.sleep(1.0)
        st.rerun(scope="fragment")
    exports(ctx, ordered, plan)


def exports(ctx, ordered, plan) -> None:
    from dtviz import plots
    from dtviz.evaluation.claims import claims_markdown

    settings = {"source": ctx.settings()["source"], "family": ctx.info.family.label, "t": ctx.t_text,
                "sampling": f"{plan.samples} samples per run, seed {plan.seed}, head k {plan.head_k}"}
    link = None
    try:
        link = st.context.url
    except Exception:  # no browser (tests)
        pass
    cols = st.columns([3, 2, 5])  # the buttons' labels in full at 1600 px
    cols[0].download_button("Markdown for a review", data=claims_markdown(ordered, ctx.info.name, settings, link),
                            file_name="dtviz-claims.md", mime="text/markdown", icon=":material/download:",
                            on_click="ignore", key="clm_md")
    fig = plots.claims_table(ordered, ctx.plot_context(with_tau=False))
    browser = chromium()
    cols[1].download_button("PNG of the table", data=lambda: png_bytes(fig), file_name="dtviz-claims.png",
                            mime="image/png", icon=":material/image:", on_click="ignore", key="clm_png",
                            disabled=browser is None,
                            help=None if browser else "The PNG is rendered by kaleido through the machine's Chromium, "
                                                      "and this server has none (apt-get install chromium).")
    common.page_report().add("claims", fig, "Paper claims, measured")


def chromium() -> str | None:
    """The Chromium (or Chrome) kaleido would render with, or None: dtviz never downloads one."""
    import shutil

    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome", "chrome")) if p), None)


def png_bytes(fig) -> bytes:
    """The table as PNG through kaleido and the machine's Chromium (dtviz.plots.gallery.render_static, killed
    after its timeout if kaleido hangs)."""
    from dtviz.plots.gallery import render_static

    try:
        return render_static(fig, "png", 1600, int(fig.layout.height or 1200), scale=1)
    except Exception as err:  # noqa: BLE001 — no Chromium here, or it hung: the Markdown export still works
        common.LOG.warning("PNG export failed: %s", err)
        return b""


if __name__ == "__main__":
    main()

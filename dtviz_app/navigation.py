"""The pages: their list (``PAGES``), where their files are, the context handed from app.py to the page
that runs, the page header with the headline numbers, and the hand-over of Streamlit's legacy first run.
"""
from __future__ import annotations

import math
import os
import unicodedata

import streamlit as st

from dtviz.reference import reference_label
from dtviz_app.access import plain, show_error
from dtviz_app.context import Ctx


# ================================================================================ pages

# module (pages/<module>_view.py), title, url path, prefix of its URL keys, icon
PAGES = (
    ("overview", "Overview & model card", "overview", None, ":material/home:"),
    ("claims", "Paper claims", "claims", "clm_", ":material/fact_check:"),
    ("cosine", "Cosine similarity", "cosine", "cos_", ":material/grid_on:"),
    ("magnitudes", "Magnitudes", "magnitudes", "mag_", ":material/bar_chart:"),
    ("variance", "Variance", "variance", "var_", ":material/stacked_line_chart:"),
    ("projection", "Head vs tail projection", "projection", "proj_", ":material/scatter_plot:"),
    ("compare", "Compare models", "compare", "cmp_", ":material/compare_arrows:"),
    ("dynamics", "Timestep & training dynamics", "dynamics", "dyn_", ":material/timeline:"),
    ("neighbours", "Nearest neighbours", "neighbours", "nn_", ":material/hub:"),
    ("blocks", "Per-block modulation", "blocks", "blk_", ":material/layers:"),
    ("sweep", "Sweep table", "sweep", "swp_", ":material/table_chart:"),
    ("pruning", "Live pruning", "pruning", "pr_", ":material/content_cut:"),
)
# A pages/ folder next to app.py makes Streamlit's first run on a fresh server use its legacy page discovery
# (pages/*.py, url path = file name) even with st.navigation: pages/<url path>.py stubs hand that run over
# to app.py (legacy_entry), so a cold deep link (/cosine?tau=0.1) opens without "Page not found".
VIEWS_DIR = "pages"
# The repo root (where app.py and pages/ are): one level above this package.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def view_path(module: str) -> str:
    """The page file of ``module``, relative to app.py (what st.Page, st.page_link and AppTest take)."""
    return f"{VIEWS_DIR}/{module}_view.py"


def page_module(module: str):
    """A page file imported as a module (its ``main()`` does not run), by path: no reliance on the
    views folder being on sys.path."""
    import importlib.util
    import sys

    name = f"dtviz_app_pages.{module}"
    if name not in sys.modules:
        path = os.path.join(ROOT, view_path(module))
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules[name] = mod
    return sys.modules[name]


# ================================================================================ page helpers

def set_ctx(ctx: Ctx | None) -> None:
    st.session_state["_ctx_holder"] = {"ctx": ctx}


def get_ctx() -> Ctx | None:
    return st.session_state.get("_ctx_holder", {}).get("ctx")


def require_ctx() -> Ctx:
    """The context for a page, or the load error in the page and a stop (the rest of the app keeps working)."""
    ctx = get_ctx()
    if ctx is None:
        err = st.session_state.get("_load_error")
        if err:
            show_error(err)
            st.caption("Choose another source in the sidebar; the other pages and the built-in model keep working.")
        else:
            st.info("Choose a model in the sidebar (the built-in glyph model works without any input).")
        st.stop()
    return ctx


def too_few_rows(ctx: Ctx, what: str) -> bool:
    """True (and one info line) when the source has a single row: ``what`` compares rows and has nothing to show."""
    if ctx.info.num_classes >= 2:
        return False
    st.info(f"{what} needs at least 2 {ctx.rows}; this source has 1 {ctx.row}.")
    return True


def page_header(ctx: Ctx, title: str, metrics: bool = True, caption: str | None = None) -> None:
    """The page title, the line that says model, t, part and τ, and the headline numbers."""
    st.title(title)
    st.caption(caption or plain(ctx.title_context))  # the model's name is the file's: shown literally
    if metrics:
        at, row = ctx.at_tau, ctx.table_row
        cols = st.columns(4)
        cols[0].metric("Head dims (|c̄ᵢ| ≥ τ)", f"{at['head_count']} / {ctx.info.dim}",
                       help=f"Dimensions of the mean vector c̄ with magnitude at least τ = {ctx.tau:.4g}.")
        cols[1].metric("s_tail(τ) of c̄", f"{at['s_tail']['mean_vector']:.3f}",
                       help=f"Share of dims with |c̄ᵢ| < τ (Eq. 2). Per-{ctx.row} mean: "
                            f"{at['s_tail']['per_class_mean']:.3f}.")
        # the family's row, as the claims page (the built-in glyph models train in SiT's convention: SiT-XL/2)
        ref = {m: reference_label(m, ctx.info.family.key, ctx.part, ctx.info.dim) for m in ("npr", "cosine")}
        cite = "The grey line: the paper's value (Table 1 for y+t, Table 4 for y, Table 5 for SD3; dtviz.reference)."
        cols[2].metric("nPR of c̄", f"{100 * row['npr']['mean_vector']:.2f}%", delta=ref["npr"], delta_color="off",
                       delta_arrow="off", help=f"PR / d of |c̄| (Eq. 1). Mean over {ctx.rows}: "
                                               f"{100 * row['npr']['per_class_mean']:.2f}%. {cite}")
        cos = (row.get("cosine") or {}).get("mean", float("nan"))
        cols[3].metric("Cosine (off-diag. mean)", f"{cos:.4f}" if math.isfinite(cos) else "—", delta=ref["cosine"],
                       delta_color="off", delta_arrow="off",
                       help=f"Mean pairwise cosine similarity of the {ctx.row} vectors, i ≠ j "
                            f"({'none: it needs at least 2 ' + ctx.rows if ctx.info.num_classes < 2 else 'all pairs'}). {cite}")


def class_groups(source) -> list[str] | None:
    """A class group per class where the model provides one: ``class_groups`` in the source's metadata, or the
    Unicode category of glyph classes (the built-in model's sidecar lists codepoints)."""
    extra = getattr(source.info, "extra", {}) or {}
    groups = extra.get("class_groups") or (getattr(source, "sidecar", None) or {}).get("class_groups")
    if groups and len(groups) == source.num_classes:
        return [str(g) for g in groups]
    codepoints = (getattr(source, "sidecar", None) or {}).get("codepoints")
    if codepoints and len(codepoints) >= source.num_classes:
        names = {"Lu": "uppercase letter", "Ll": "lowercase letter", "Lt": "titlecase letter", "Lm": "modifier letter",
                 "Lo": "other letter", "Nd": "digit", "No": "other number", "Sm": "math symbol", "Sc": "currency sign",
                 "Sk": "modifier symbol", "So": "other symbol"}
        out = []
        for cp in codepoints[:source.num_classes]:
            cat = unicodedata.category(chr(int(cp)))
            out.append(names.get(cat, "punctuation" if cat.startswith("P") else "other"))
        return out
    return None


# ========================================================================= Streamlit's legacy first run

def legacy_entry() -> None:
    """Run by pages/<url path>.py only on Streamlit's legacy first run (see pages/README.md): switch the
    process to st.navigation mode and rerun app.py, which then opens the requested page."""
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.rerun()

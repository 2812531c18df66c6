"""Streamlit glue shared by app.py and every page: the sidebar (source and settings), caching, URL state,
figure display with downloads, and report export.

This is the only part of the dashboard that knows about session state and query parameters; the pages
only compose ``dtviz`` library calls and the figure builders of ``dtviz.plots``. The core package
``dtviz/`` never imports streamlit.

Pages and app.py use it as ``import dtviz_app as common``; every name they use is re-exported here, so
the split into modules is an implementation detail. Each module imports only those above it:

    constants    choices, defaults, limits, the logger
    urlstate     settings mirrored in the URL: url_seed / url_store / bound and the parsers
    access       served roots for visitors' paths, plain-text errors without server paths, session uploads
    reading_controls  Flux-dev's guidance, a native file's null row / head count (the labels slot of the keys)
    cache        st.cache_resource / st.cache_data: models, arrays, statistics, samples, the heatmap
    context      Ctx: the opened source, the settings, cached accessors
    controls     the sidebar widgets and sidebar() itself
    navigation   PAGES, page files, the context handed to a page, page header, legacy first run
    figures      show_figure, image grids, CSV downloads, "Export report"
"""
from __future__ import annotations

from dtviz_app.constants import (DEFAULT_K, DEFAULT_TAU, FAMILY_CHOICES, GLOBAL_KEYS, LOG, PAGE_PREFIXES,
                                 PART_LABELS, PARTS, SOURCE_KINDS, SOURCE_LABELS, TAU_GRID, TAU_MAX, TAU_MIN,
                                 UPLOAD_LIMIT_MB, UPLOAD_ROOT, UPLOAD_TYPES)
from dtviz_app.urlstate import (MAX_INT, bound, choice, fmt_bool, fmt_float, fmt_ints, ids_below, int_in, parse_bool,
                                parse_ints, parse_positive, prune_url, url_seed, url_store)
from dtviz_app.access import (is_upload, link_name, open_folder, open_name, plain, served, session_upload_dir,
                               show_error, shown, sweep_uploads)
from dtviz_app.cache import (cached_pipelines, cluster_order, compare_row, condition_stats, cosine_heatmap,
                             embeddings, file_stamp, load_source, projection, projection_note,
                             refresh_if_changed, resolved_device, safe_load, series_over_t, series_over_training)
from dtviz_app.sampling import sample_run
from dtviz_app.context import Ctx, format_count, generator
from dtviz_app.controls import (card_markdown, detection_ambiguous, follow, save_upload, sidebar, snap_tau,
                                tau_input)
from dtviz_app.navigation import (PAGES, ROOT, VIEWS_DIR, class_groups, get_ctx, legacy_entry, page_header, too_few_rows,
                                  page_module, require_ctx, set_ctx, view_path)
from dtviz_app.figures import (PageReport, all_figures, export_buttons, image_grid, page_report, short_name,
                               show_figure, start_page)

__all__ = [
    # constants
    "LOG", "FAMILY_CHOICES", "PARTS", "PART_LABELS", "SOURCE_KINDS", "SOURCE_LABELS", "UPLOAD_TYPES",
    "UPLOAD_LIMIT_MB", "UPLOAD_ROOT", "DEFAULT_TAU", "DEFAULT_K", "TAU_GRID", "TAU_MIN", "TAU_MAX", "GLOBAL_KEYS",
    "PAGE_PREFIXES",
    # URL state
    "MAX_INT", "url_seed", "url_store", "bound", "choice", "parse_bool", "fmt_bool", "parse_ints", "ids_below", "int_in",
    "fmt_ints", "parse_positive", "fmt_float", "prune_url",
    # served roots, error text, uploads
    "served", "open_name", "open_folder", "link_name", "is_upload", "plain", "shown", "show_error", "session_upload_dir",
    "sweep_uploads",
    # caching
    "resolved_device", "load_source", "embeddings", "condition_stats", "cluster_order", "projection", "projection_note",
    "compare_row", "series_over_t", "series_over_training", "generator", "sample_run", "cosine_heatmap",
    "cached_pipelines", "file_stamp", "refresh_if_changed", "safe_load",
    # context
    "Ctx", "format_count",
    # sidebar
    "save_upload", "detection_ambiguous", "snap_tau", "tau_input", "follow", "sidebar", "card_markdown",
    # pages
    "PAGES", "VIEWS_DIR", "ROOT", "view_path", "page_module", "set_ctx", "get_ctx", "require_ctx",
    "page_header", "too_few_rows", "class_groups", "legacy_entry",
    # figures & report
    "PageReport", "start_page", "page_report", "show_figure", "short_name", "image_grid", "all_figures",
    "export_buttons",
]

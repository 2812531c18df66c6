"""Plotly figure builders for every view of the paper. UI-free: no streamlit here.

Each builder returns a ``go.Figure`` whose title says what is plotted and for which model/settings
(``context``: a string such as ``"builtin · t=0 · y+t · τ=0.01"`` or the dashboard's dict
``{"model", "t", "part", "tau", "family", "d"}``), with axis titles carrying units, colour-blind-safe
colours (cividis for continuous values, Okabe-Ito for categories) and fonts readable in a screenshot.

    cosine_heatmap, cluster_order, cosine_submatrix, offdiag_histogram      Fig. 3 (and 14–19)
    magnitude_histogram, dim_profile, dims_below_curve                     Figs. 5, 6, 11
    variance_per_dim, variance_spectrum, cumulative_variance               Fig. 9 (and 26–31)
    projection_panels                                                      Fig. 13 (and 20–25)
    compare_bars                                                           Table 1, Fig. 1
    lines, over_t_figures, training_figures                                Fig. 12 (dynamics over t / steps)
    neighbour_bars                                                         nearest classes, full vs head
    dim_across_classes, image_tiles, tile_scale                            live pruning: one dim, sample grids
    modulation_heatmap, modulation_change_bars, modulation_change_curves   per-block modulation (dtviz.analysis.blocks)
    sweep_metric_curves                                                    a sweep's metrics against τ per schedule
    claims_table                                                           the paper-claims scorecard
    figure_config, figure_csv, *_frame                                     downloads (PNG/SVG, CSV)
    gallery.view_figures, gallery.write_figure                             every view from a source (``dtviz plot``)

One module per group of views; import from here (``from dtviz import plots; plots.cosine_heatmap(…)``),
the split is an implementation detail:

    style      palette, template, fonts, titles, marker/τ lines, input checks (shared by all)
    heatmap    cosine: the full heatmap (exact or image + block hover), sub-matrix, off-diagonal histogram
    profiles   magnitudes and variance per dimension
    views      projection, compare, dynamics, nearest neighbours, live pruning
    blocks     per-block modulation: contribution heatmap, relative change per block and against τ
    export     mode-bar config and the data behind a figure (CSV)
"""
from __future__ import annotations

from dtviz.plots.blocks import modulation_change_bars, modulation_change_curves, modulation_heatmap
from dtviz.plots.export import figure_config, figure_csv, figure_frame
from dtviz.plots.heatmap import (HEATMAP_MAX_BYTES, cluster_order, cosine_frame, cosine_heatmap, cosine_submatrix,
                                 heatmap_height, heatmap_hover_layer, offdiag_histogram)
from dtviz.plots.profiles import (cumulative_variance, dim_profile, dim_profile_frame, dims_below_curve,
                                  magnitude_frame, magnitude_histogram, variance_frame, variance_per_dim,
                                  variance_spectrum)
from dtviz.plots.style import (CONTINUOUS, FONT, HEAD_COLOUR, OKABE_ITO, TAIL_COLOUR, TAU_COLOUR, TEMPLATE,
                               context_text, unique_labels)
from dtviz.plots.sweep import sweep_metric_curves
from dtviz.plots.views import (LEGEND_GROUPS_MAX, claims_table, compare_bars, compare_frame, dim_across_classes,
                               image_tiles, lines, neighbour_bars, over_t_figures, projection_frame, projection_panels,
                               tile_scale, training_figures)

__all__ = [
    "claims_table",
    # style
    "OKABE_ITO", "CONTINUOUS", "HEAD_COLOUR", "TAIL_COLOUR", "TAU_COLOUR", "TEMPLATE", "FONT",
    "context_text", "unique_labels",
    # cosine: Fig. 3
    "HEATMAP_MAX_BYTES", "cluster_order", "cosine_heatmap", "heatmap_height", "heatmap_hover_layer", "cosine_frame",
    "cosine_submatrix", "offdiag_histogram",
    # magnitudes and variance: Figs. 5, 6, 9, 11
    "magnitude_histogram", "magnitude_frame", "dim_profile", "dim_profile_frame", "dims_below_curve",
    "variance_per_dim", "variance_spectrum", "cumulative_variance", "variance_frame",
    # projection, compare, dynamics, neighbours, live pruning
    "LEGEND_GROUPS_MAX", "projection_panels", "projection_frame", "compare_bars", "compare_frame", "lines",
    "over_t_figures", "training_figures",
    "neighbour_bars", "dim_across_classes", "tile_scale", "image_tiles",
    # per-block modulation
    "modulation_heatmap", "modulation_change_bars", "modulation_change_curves",
    # sweep table (dtviz sweep)
    "sweep_metric_curves",
    # downloads
    "figure_config", "figure_frame", "figure_csv",
]

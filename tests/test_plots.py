"""Figure builders (dtviz.plots): the data in each figure is the data asked for, the cosine heatmap fits
its payload budget with names and values on hover, and every title carries the context."""
import base64
import io
import json

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import Image

from dtviz import plots
from dtviz.analysis import stats
from dtviz.errors import DtvizInputError

CTX = "testmodel · t=0 · y+t · τ=0.01"


def paper_like_embeddings(n, d=256, head=12, seed=0):
    """Class vectors like the paper's: a shared mean with a few large head dims that vary by class and a
    small tail — off-diagonal cosine ≈ 0.9–0.99, the hardest case for image compression."""
    rng = np.random.default_rng(seed)
    dims = rng.choice(d, head, replace=False)
    mean = rng.normal(0, 0.01, d)
    mean[dims] = rng.normal(0, 5, head)
    E = mean + rng.normal(0, 0.01, (n, d))
    E[:, dims] += rng.normal(0, 0.6, (n, head))
    return E


def colour_bar_range(fig):
    """(min, max) of the colour scale shown with a colour bar, from the heatmap or the helper point."""
    for tr in fig.data:
        if tr.type == "heatmap" and tr.showscale is not False and tr.zmin is not None:
            return tr.zmin, tr.zmax
        if tr.type == "scatter" and tr.marker is not None and tr.marker.showscale:
            return tr.marker.cmin, tr.marker.cmax
    raise AssertionError("no colour bar")


def decode_png(uri):
    assert uri.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))


# =========================================================================================== heatmap

def test_heatmap_1000_classes_fits_1mb_while_plain_plotly_heatmap_is_far_larger():
    C = stats.cosine_matrix(paper_like_embeddings(1000))
    names = [f"class {i:04d} name" for i in range(1000)]
    fig = plots.cosine_heatmap(C, names, CTX)
    size = len(fig.to_json().encode("utf-8"))
    plain = len(go.Figure(go.Heatmap(z=C, x=names, y=names)).to_json())
    assert size <= 1_000_000
    assert plain > 10 * size  # ≈ 13.6 MB of base64 float64 for the naive figure
    meta = fig.layout.meta["dtviz"]
    assert meta["mode"] == "image"
    # one image pixel per cell: the full matrix is drawn, not a downsampled one
    img = decode_png(next(t for t in fig.data if t.type == "image").source)
    assert img.size == (1000, 1000)
    assert colour_bar_range(fig) == pytest.approx((C.min(), C.max()))


def test_heatmap_image_colours_decode_back_to_the_values_within_one_level():
    C = stats.cosine_matrix(paper_like_embeddings(90, seed=3))
    fig = plots.cosine_heatmap(C, [f"c{i}" for i in range(90)], CTX, max_bytes=60_000)
    meta = fig.layout.meta["dtviz"]
    assert meta["mode"] == "image"
    img = decode_png(next(t for t in fig.data if t.type == "image").source)
    palette = np.array(img.getpalette()[:3 * meta["levels"]]).reshape(-1, 3)
    index = np.asarray(img)  # palette index per cell
    lo, hi = meta["range"]
    decoded = lo + (index + 0.5) / meta["levels"] * (hi - lo)
    assert np.abs(decoded - C).max() <= (hi - lo) / meta["levels"] / 2 + 1e-9
    # the palette is the colour bar's scale: increasing levels get brighter (cividis: dark blue → yellow)
    assert palette.sum(1)[-1] > palette.sum(1)[0]


def test_heatmap_small_n_hover_has_both_names_and_the_exact_value():
    rng = np.random.default_rng(1)
    E = rng.normal(size=(12, 8))
    C = stats.cosine_matrix(E)
    names = [f"class {i}" for i in range(11)] + ["class 3"]  # a duplicate name must stay a separate row
    fig = plots.cosine_heatmap(C, names, CTX)
    assert fig.layout.meta["dtviz"]["mode"] == "exact"
    hm = plots.heatmap_hover_layer(fig)
    assert list(hm.x) == list(hm.y) and len(set(hm.x)) == 12
    assert hm.x[3] == "class 3 (#3)" and hm.x[11] == "class 3 (#11)"
    assert "%{x}" in hm.hovertemplate and "%{y}" in hm.hovertemplate and "%{z" in hm.hovertemplate
    np.testing.assert_allclose(np.asarray(hm.z), C, atol=1e-6)  # z[row][col] is the cosine of y-name vs x-name
    assert colour_bar_range(fig) == pytest.approx((C.min(), C.max()))


def test_heatmap_block_hover_names_the_classes_under_the_cursor_and_their_mean():
    n = 61
    C = stats.cosine_matrix(paper_like_embeddings(n, seed=2))
    names = [f"n{i:02d}" for i in range(n)]
    fig = plots.cosine_heatmap(C, names, CTX, max_bytes=30_000)
    meta = fig.layout.meta["dtviz"]
    b = meta["block"]
    assert meta["mode"] == "image" and b >= 3 and b % 2 == 1
    hm = plots.heatmap_hover_layer(fig)
    image = next(t for t in fig.data if t.type == "image")
    assert image.x0 == hm.x[0] and image.dx == pytest.approx(1 / b)
    h = (b - 1) // 2
    # plotly puts category j at j and image pixel k at k·dx; so class k is under category round(k/b)
    for k in range(n):
        j = int(np.floor(k / b + 0.5))
        assert names[k] in hm.x[j].split(" · ") or _in_range_label(hm.x[j], names, k)
        assert j * b - h <= k <= j * b + h
    Z = np.asarray(hm.z)
    for r, c in [(0, 0), (2, 5), (len(hm.y) - 1, 1)]:
        rows = range(max(0, r * b - h), min(n, r * b + h + 1))
        cols = range(max(0, c * b - h), min(n, c * b + h + 1))
        vals = [C[i, j] for i in rows for j in cols if i != j]
        assert Z[r, c] == pytest.approx(np.mean(vals), abs=1e-6)
    assert "%{x}" in hm.hovertemplate and "%{y}" in hm.hovertemplate and "%{z" in hm.hovertemplate
    assert len(fig.to_json()) <= 30_000


def _in_range_label(label, names, k):
    """Labels of larger blocks read 'first … last (m classes)'."""
    first, _, rest = label.partition(" … ")
    last = rest.split(" (")[0]
    return names.index(first) <= k <= names.index(last)


def test_heatmap_order_permutes_rows_and_columns():
    rng = np.random.default_rng(4)
    C = stats.cosine_matrix(rng.normal(size=(9, 5)))
    names = [f"k{i}" for i in range(9)]
    order = np.array([3, 1, 8, 0, 2, 7, 6, 5, 4])
    hm = plots.heatmap_hover_layer(plots.cosine_heatmap(C, names, CTX, order=order))
    assert list(hm.x) == [names[i] for i in order]
    np.testing.assert_allclose(np.asarray(hm.z), C[np.ix_(order, order)], atol=1e-6)
    with pytest.raises(DtvizInputError):
        plots.cosine_heatmap(C, names, CTX, order=[0, 0, 1, 2, 3, 4, 5, 6, 7])


def test_heatmap_rejects_nan_and_wrong_names():
    C = np.eye(3)
    with pytest.raises(DtvizInputError, match="names"):
        plots.cosine_heatmap(C, ["a", "b"], CTX)
    C[0, 1] = np.nan
    with pytest.raises(DtvizInputError, match="NaN"):
        plots.cosine_heatmap(C, ["a", "b", "c"], CTX)


def test_cluster_order_is_a_stable_permutation_that_groups_planted_blocks():
    rng = np.random.default_rng(5)
    sizes = [5, 7, 4]
    centres = rng.normal(size=(3, 16)) * 4
    labels = np.repeat(np.arange(3), sizes)
    perm = rng.permutation(labels.size)
    labels = labels[perm]
    E = centres[labels] + rng.normal(scale=0.3, size=(labels.size, 16))
    C = stats.cosine_matrix(E)
    order = plots.cluster_order(C)
    assert sorted(order.tolist()) == list(range(labels.size))
    runs = [g for i, g in enumerate(labels[order]) if i == 0 or g != labels[order][i - 1]]
    assert len(runs) == 3  # each planted group is one contiguous run
    np.testing.assert_array_equal(order, plots.cluster_order(C))


def test_submatrix_cells_print_values_with_three_decimals():
    rng = np.random.default_rng(6)
    C = stats.cosine_matrix(rng.normal(size=(20, 6)))
    names = [f"class {i}" for i in range(20)]
    ids = [4, 17, 0]
    fig = plots.cosine_submatrix(C, ids, names, CTX)
    hm = fig.data[0]
    assert list(hm.x) == ["class 4", "class 17", "class 0"]
    assert hm.text[0][1] == f"{C[4, 17]:.3f}"
    assert all(len(cell.split(".")[1]) == 3 for row in hm.text for cell in row)
    with pytest.raises(DtvizInputError):
        plots.cosine_submatrix(C, [0, 99], names, CTX)


def test_offdiag_histogram_counts_every_pair_once():
    rng = np.random.default_rng(7)
    C = stats.cosine_matrix(rng.normal(size=(15, 4)))
    values = stats.offdiag_values(C)
    fig = plots.offdiag_histogram(values, CTX)
    assert sum(fig.data[0].y) == 15 * 14 // 2


# ======================================================================================= magnitudes

def test_magnitude_histogram_counts_all_entries_and_draws_tau():
    rng = np.random.default_rng(8)
    E = rng.normal(scale=0.05, size=(30, 40))
    fig = plots.magnitude_histogram(E, CTX, tau=0.01)
    assert sum(fig.data[0].y) == E.size
    assert any(s.type == "line" and s.x0 == pytest.approx(0.01) for s in fig.layout.shapes)
    below = int((np.abs(E) < 0.01).sum())
    assert any(f"{below:,} of {E.size:,}" in (a.text or "") for a in fig.layout.annotations)
    log = plots.magnitude_histogram(E, CTX, log_x=True, log_y=True, tau=0.01)
    assert log.layout.xaxis.type == "log" and log.layout.yaxis.type == "log"
    assert sum(log.data[0].y) == int((E != 0).sum())
    # on a log axis plotly places annotations in log10 units: the τ label must sit at log10(τ) = −2
    assert any(a.x == pytest.approx(-2.0) for a in log.layout.annotations if "τ" in (a.text or ""))


def test_dim_profile_draws_each_vector_and_the_tau_band():
    v = np.array([0.5, -0.005, 3.0, 0.02])
    fig = plots.dim_profile({"mean vector": v, "class 1": -v}, CTX, tau=0.01)
    assert [t.name for t in fig.data][:2] == ["mean vector", "class 1"]
    np.testing.assert_allclose(fig.data[1].y, -v)
    band = [s for s in fig.layout.shapes if s.type == "rect"]
    assert band and band[0].y0 == pytest.approx(-0.01) and band[0].y1 == pytest.approx(0.01)


def test_dims_below_curve_marks_the_count_at_tau():
    v = np.array([1e-4, 5e-3, 2e-2, 0.5, 4.0])
    fig = plots.dims_below_curve(v, CTX, tau=0.01)
    marker = next(t for t in fig.data if t.mode == "markers")
    assert marker.x[0] == 0.01 and marker.y[0] == 2
    assert fig.layout.xaxis.type == "log"
    share = plots.dims_below_curve(v, CTX, tau=0.01, normalised=True)
    assert next(t for t in share.data if t.mode == "markers").y[0] == pytest.approx(40.0)


# ========================================================================================= variance

def test_variance_views_highlight_head_and_show_the_mean():
    var = np.array([0.1, 5.0, 0.2, 3.0, 0.05])
    fig = plots.variance_per_dim(var, CTX, head=[1, 3])
    head = next(t for t in fig.data if t.name.startswith("head"))
    assert list(head.x) == [1, 3] and list(head.y) == [5.0, 3.0]
    # the mean line is named in the legend (a label on the plot sat on the tick labels or the bars)
    mean_line = next(t for t in fig.data if t.name == f"mean variance {var.mean():.3g}")
    assert list(mean_line.y) == [var.mean()] * 2 and not fig.layout.annotations
    spec = plots.variance_spectrum(var, CTX)
    assert any(t.name == f"mean variance {var.mean():.3g}" for t in spec.data) and not spec.layout.annotations
    assert list(spec.data[0].y) == sorted(var, reverse=True) and spec.layout.yaxis.type == "log"
    cum = plots.cumulative_variance(var, CTX)
    assert cum.data[0].y[-1] == pytest.approx(100.0)
    assert cum.data[0].y[1] == pytest.approx(100 * 8.0 / var.sum())


# ======================================================================================== projection

def test_projection_panels_colour_each_class_the_same_in_every_panel():
    rng = np.random.default_rng(9)
    panels = {"full c": rng.normal(size=(6, 2)), "head only": rng.normal(size=(6, 2))}
    names = [f"class {i}" for i in range(6)]
    groups = ["a", "b", "a", "c", "b", "a"]
    fig = plots.projection_panels(panels, names, CTX, groups=groups)
    by_panel = {}
    for tr in fig.data:
        for name in tr.text:
            by_panel.setdefault(name, set()).add((tr.marker.color, tr.marker.symbol))
        assert "%{text}" in tr.hovertemplate
    assert all(len(styles) == 1 for styles in by_panel.values())  # same colour in both panels
    assert len({next(iter(by_panel[n])) for n in ("class 0", "class 1", "class 3")}) == 3
    groups18 = [f"g{i}" for i in range(18)]  # more groups than a legend holds: colours without legend
    wide = plots.projection_panels({"a": np.zeros((18, 2)), "b": np.ones((18, 2))}, [f"c{i}" for i in range(18)], CTX,
                                   groups=groups18)
    assert list(wide.data[0].marker.color) == list(wide.data[1].marker.color)
    assert len(set(wide.data[0].marker.color)) == 18
    plain = plots.projection_panels(panels, names, CTX)
    assert list(plain.data[0].marker.color) == list(plain.data[1].marker.color)
    assert list(plain.data[0].text) == names
    with pytest.raises(DtvizInputError):
        plots.projection_panels({"bad": np.zeros((5, 2))}, names, CTX)


# ============================================================================= compare, lines, nearest

def test_compare_bars_show_npr_in_percent_and_cosine():
    rows = [{"source": "a", "npr_mean_vector": 0.015, "npr_per_class_mean": 0.02, "cosine_mean": 0.99},
            {"source": "b", "npr_mean_vector": 0.5, "npr_per_class_mean": 0.4, "cosine_mean": 0.2}]
    fig = plots.compare_bars(rows, CTX)
    npr = next(t for t in fig.data if t.name.startswith("nPR of"))
    cos = next(t for t in fig.data if t.name == "mean cosine")
    assert list(npr.y) == pytest.approx([1.5, 50.0]) and list(cos.y) == [0.99, 0.2]
    assert list(npr.x) == ["a", "b"]


def test_lines_and_neighbour_bars_carry_their_data():
    fig = plots.lines([0, 250, 500], {"cosine": [0.1, 0.5, 0.9], "nPR": [0.9, 0.5, 0.1]}, "training step", "value", CTX)
    assert [t.name for t in fig.data] == ["cosine", "nPR"] and list(fig.data[0].y) == [0.1, 0.5, 0.9]
    with pytest.raises(DtvizInputError):
        plots.lines([0, 1], {"x": [1, 2, 3]}, "t", "v", CTX)
    nb = plots.neighbour_bars(["b", "c"], [0.9, 0.8], ["c", "b"], [0.95, 0.7], CTX, query="a")
    assert list(nb.data[0].y) == ["b", "c"] and list(nb.data[1].x) == [0.95, 0.7]


def test_lines_legend_sits_below_the_plot_not_on_the_title():
    legend = plots.lines([0, 1], {"a": [1, 2], "b": [2, 1]}, "t", "v", CTX).layout.legend
    # anchored to the bottom of the figure: plotly makes room for it (and its wrapped rows) under the axis title
    assert legend.orientation == "h" and legend.yref == "container" and legend.y == 0 and legend.yanchor == "bottom"


def test_cosine_heatmap_height_for_half_width_columns():
    C = stats.cosine_matrix(paper_like_embeddings(90, seed=3))
    names = [f"c{i}" for i in range(90)]
    assert plots.cosine_heatmap(C, names, CTX).layout.height == 720
    assert plots.cosine_heatmap(C, names, CTX, height=540).layout.height == 540
    image = plots.cosine_heatmap(C, names, CTX, max_bytes=60_000, height=540)  # the image encoding too
    assert image.layout.meta["dtviz"]["mode"] == "image" and image.layout.height == 540


def test_dim_across_classes_names_every_class_on_hover():
    values = np.array([0.5, -1.0, 2.0, 0.0])
    names = ["a", "b", "c", "d"]
    fig = plots.dim_across_classes(values, names, 7, CTX, tau=0.1)
    bar = fig.data[0]
    assert list(bar.x) == [0, 1, 2, 3] and list(bar.y) == [0.5, -1.0, 2.0, 0.0]
    assert [row[1] for row in bar.customdata] == names and "customdata[1]" in bar.hovertemplate
    assert "Dimension 7" in fig.layout.title.text and CTX in fig.layout.title.text
    ranked = plots.dim_across_classes(values, names, 7, CTX, sort=True).data[0]
    assert list(ranked.y) == [2.0, 0.5, 0.0, -1.0] and [row[1] for row in ranked.customdata] == ["c", "a", "d", "b"]
    with pytest.raises(DtvizInputError):
        plots.dim_across_classes(values, names[:3], 7, CTX)


def test_image_tiles_are_nearest_neighbour_pngs():
    images = np.random.default_rng(0).random((2, 16, 16, 1)).astype(np.float32)
    tiles = plots.image_tiles(images)
    assert len(tiles) == 2 and all(t.startswith("data:image/png;base64,") for t in tiles)
    png = np.asarray(Image.open(io.BytesIO(base64.b64decode(tiles[0].split(",", 1)[1]))))
    assert png.shape == (80, 80)  # 16 px × 5 by default
    expected = (np.clip(images[0, ..., 0], 0, 1) * 255 + 0.5).astype(np.uint8)
    assert np.array_equal(png[::5, ::5], expected) and np.array_equal(png[4::5, 4::5], expected)  # crisp blocks
    rgb = plots.image_tiles(np.zeros((1, 8, 8, 3)), scale=2)[0]
    assert np.asarray(Image.open(io.BytesIO(base64.b64decode(rgb.split(",", 1)[1])))).shape == (16, 16, 3)
    with pytest.raises(DtvizInputError):
        plots.image_tiles(np.zeros((2, 8, 8)))


# ============================================================================= titles, config, CSV

def all_figures():
    rng = np.random.default_rng(10)
    E = rng.normal(size=(8, 6))
    C = stats.cosine_matrix(E)
    names = [f"n{i}" for i in range(8)]
    var = stats.per_dim_variance(E)
    return [
        plots.cosine_heatmap(C, names, CTX), plots.cosine_submatrix(C, [0, 1], names, CTX),
        plots.offdiag_histogram(stats.offdiag_values(C), CTX), plots.magnitude_histogram(E, CTX, tau=0.1),
        plots.dim_profile({"m": E[0]}, CTX, tau=0.1), plots.dims_below_curve(E[0], CTX, tau=0.1),
        plots.variance_per_dim(var, CTX, head=[0]), plots.variance_spectrum(var, CTX), plots.cumulative_variance(var, CTX),
        plots.projection_panels({"p": E[:, :2]}, names, CTX),
        plots.compare_bars([{"source": "s", "npr_mean_vector": 0.1, "npr_per_class_mean": 0.1, "cosine_mean": 0.5}], CTX),
        plots.lines([1, 2], {"a": [1, 2]}, "t", "v", CTX), plots.neighbour_bars(["a"], [0.5], ["b"], [0.4], CTX),
        plots.dim_across_classes(E[:, 0], names, 0, CTX, tau=0.1),
    ]


def test_every_figure_title_names_the_context_and_axes_have_titles():
    for fig in all_figures():
        assert CTX in fig.layout.title.text
        assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_context_dict_becomes_one_line():
    text = plots.context_text({"model": "builtin", "t": 0.0, "part": "y+t", "tau": 0.01, "family": "sit", "d": 128})
    assert text == "builtin · sit · d=128 · t=0.0 · part y+t · τ=0.01"
    assert "τ" not in plots.context_text({"model": "m", "tau": None})


def test_figure_config_downloads_png_or_svg_at_scale_2_or_more():
    cfg = plots.figure_config("cosine heatmap/1")
    assert cfg["displayModeBar"] is True
    assert cfg["toImageButtonOptions"]["format"] == "png" and cfg["toImageButtonOptions"]["scale"] >= 2
    assert "/" not in cfg["toImageButtonOptions"]["filename"]
    assert plots.figure_config("x", fmt="svg")["toImageButtonOptions"]["format"] == "svg"
    json.dumps(cfg)  # Streamlit sends it as JSON
    with pytest.raises(DtvizInputError):
        plots.figure_config("x", fmt="gif")


def test_figure_csv_has_the_plotted_data():
    values = np.array([0.1, 0.2, 0.2, 0.9])
    csv = plots.figure_csv(plots.offdiag_histogram(values, CTX, bins=4))
    lines = csv.strip().splitlines()
    assert lines[0].startswith("trace,x,y")
    assert sum(int(float(line.split(",")[2])) for line in lines[1:]) == 4
    C = stats.cosine_matrix(np.random.default_rng(11).normal(size=(5, 3)))
    long = plots.figure_frame(plots.cosine_heatmap(C, list("abcde"), CTX))
    assert len(long) == 25 and long.loc[(long.row == "b") & (long.column == "d"), "value"].item() == pytest.approx(C[1, 3], abs=1e-6)
    frame = plots.cosine_frame(C, list("abcde"), order=[4, 3, 2, 1, 0])
    assert list(frame.columns) == ["class", "e", "d", "c", "b", "a"] and frame.iloc[0, 1] == pytest.approx(1.0)


# ====================================================================== figures a reviewer pastes

def _figure_texts(fig) -> list[str]:
    """Every text a reader sees: titles, axis titles, annotations, trace names and hover templates."""
    layout = fig.layout
    texts = [layout.title.text or ""]
    texts += [ax.title.text or "" for ax in (getattr(layout, k) for k in layout if k.startswith(("xaxis", "yaxis")))]
    texts += [a.text or "" for a in layout.annotations]
    texts += [str(t.name or "") + str(getattr(t, "hovertemplate", "") or "") for t in fig.data]
    return texts


def test_figure_text_uses_real_subscripts_and_no_si_tick_prefixes():
    E = np.random.default_rng(11).normal(scale=0.05, size=(8, 6))
    figures = all_figures() + [plots.magnitude_histogram(E, CTX, log_x=True, log_y=True, tau=0.01),
                               plots.dims_below_curve(E[0], CTX, tau=0.01, normalised=True)]
    for fig in figures:
        for text in _figure_texts(fig):
            assert "c_" not in text and "c̄_" not in text, text  # "|c_i|" printed its underscore
        axes = [getattr(fig.layout, k) for k in fig.layout if k.startswith(("xaxis", "yaxis"))]
        for ax in axes:  # "10µ" on log axes: SI prefixes never; 1e-5 on log axes, full numbers on linear ones
            assert ax.exponentformat == ("e" if ax.type == "log" else "none"), (fig.layout.title.text, ax.type)
    hist = plots.magnitude_histogram(E, CTX, log_x=True, tau=0.01)
    assert hist.layout.xaxis.title.text.startswith("|c<sub>i</sub>|") and "|c<sub>i</sub>|" in hist.layout.title.text
    dim = plots.dim_across_classes(E[:, 3], [f"n{i}" for i in range(8)], 3, CTX, tau=0.01)
    assert dim.layout.yaxis.title.text == "c<sub>3</sub> (value)"


def _label_position(fig, annotation, width: int = 700) -> tuple[float, float]:
    """Where an arrow annotation's text sits, as a fraction of the plot area (x on a log axis)."""
    m, h = fig.layout.margin, fig.layout.height
    plot_w, plot_h = width - m.l - m.r, h - m.t - m.b
    line = fig.data[0]
    lx = np.log10(np.asarray(line.x, dtype=np.float64))
    ys = np.asarray(line.y, dtype=np.float64)
    fx = (annotation.x - lx.min()) / (lx.max() - lx.min())
    fy = (annotation.y - min(ys.min(), 0)) / (ys.max() - min(ys.min(), 0))
    return fx + annotation.ax / plot_w, fy - annotation.ay / plot_h


@pytest.mark.parametrize("tau", [1e-4, 0.01, 0.3, 3.0])
def test_dims_below_label_stays_inside_the_plot_away_from_the_ticks(tau):
    """The "N of d dims" label points into the plot: above a point near the x axis (below it, it sat on the
    tick labels), left of a point near the right edge."""
    v = np.geomspace(1e-4, 4.0, 128)
    fig = plots.dims_below_curve(v, CTX, tau=tau)
    label = next(a for a in fig.layout.annotations if "of 128 dims" in (a.text or ""))
    x, y = _label_position(fig, label)
    assert 0.05 < x < 0.95 and 0.08 < y < 0.95, (tau, x, y)


def test_tau_band_of_the_profile_shows_at_every_scale():
    """Head values of ±5 make a ±0.01 band thinner than a pixel: dashed lines at ±τ and the first vector's
    tail dims as markers keep it visible."""
    rng = np.random.default_rng(12)
    v = rng.normal(0, 0.02, 256)
    v[:8] = rng.normal(0, 5, 8)
    fig = plots.dim_profile({"mean vector": v, "class 1": v[::-1]}, CTX, tau=0.01)
    lines = sorted(s.y0 for s in fig.layout.shapes if s.type == "line")
    assert lines == pytest.approx([-0.01, 0.01]) and all(s.line.width >= 1 for s in fig.layout.shapes if s.type == "line")
    tail = next(t for t in fig.data if t.mode == "markers")
    assert list(tail.x) == list(np.flatnonzero(np.abs(v) < 0.01)) and f"{tail.x.size} tail dims" in tail.name
    band = next(s for s in fig.layout.shapes if s.type == "rect")
    assert (band.y0, band.y1) == (-0.01, 0.01)


def test_legends_sit_below_the_plot_not_on_the_title():
    var = np.array([0.1, 5.0, 0.2, 3.0, 0.05])
    for fig in (plots.variance_per_dim(var, CTX, head=[1]), plots.variance_spectrum(var, CTX),
                plots.dim_profile({"m": var}, CTX, tau=0.1)):
        legend = fig.layout.legend
        assert legend.yref == "container" and legend.y == 0 and legend.yanchor == "bottom"


def test_full_cosine_heatmap_gets_a_pixel_per_class():
    assert plots.heatmap_height(100) == 720
    m_tb = 110 + 60  # title with its note + x axis
    assert plots.heatmap_height(1000) - m_tb >= 950  # ~one pixel per class, in its own full-width row


def test_titles_state_what_is_drawn():
    series = {k: np.array(v) for k, v in {"step": [0, 1], "cosine_mean": [0.5, 0.6], "cosine_min": [0.1, 0.2],
                                           "cosine_max": [0.9, 0.9], "npr_mean_vector": [0.5, 0.4],
                                           "npr_per_class_mean": [0.5, 0.4]}.items()}
    items = plots.training_figures(series, {"model": "run", "part": "y+t"})
    assert [i["name"] for i in items] == ["cosine-over-training", "npr-over-training"]  # no split: no third figure
    for item in items:
        assert "sparsif" not in item["figure"].layout.title.text.lower()


def test_a_small_heatmap_is_as_wide_as_its_square_and_a_large_one_fills_the_page():
    """The dashboard draws a figure with a width at that width: the square, its colour bar and the whole title
    fit (no square pushed to one side of a 1600 px page); the 1000×1000 matrix keeps the page's width."""
    context = {"model": "a-model-with-a-rather-long-file-name-for-its-checkpoint.safetensors", "d": 16, "part": "y+t"}
    small = plots.cosine_heatmap(np.eye(3) * 0.5 + 0.5, ["a", "b", "c"], context, height=720)
    m = small.layout.margin
    assert small.layout.width >= m.l + (720 - m.t - m.b) + 100 and small.layout.width < 1100
    subtitle = small.layout.title.text.split("<br>")[1]
    assert small.layout.width >= 6 * len(subtitle.replace("<sup>", "").replace("</sup>", ""))
    big = plots.cosine_heatmap(np.eye(1000) * 0.5 + 0.5, [str(i) for i in range(1000)], context, height=plots.heatmap_height(1000))
    assert big.layout.width is None


def test_the_tau_label_of_the_dims_below_curve_sits_under_the_curve_away_from_the_paper_points():
    """A rising count: the label goes below right (under the curve), not over the curve and the paper's hollow
    markers, which sit above the point at the same τ (issue: '53 of 256 dims' covered a paper marker)."""
    from dtviz.reference import pruning_markers

    v = np.geomspace(1e-3, 2.0, 256)  # 30 % of the dims below τ = 0.01, as the built-in model's 21 %
    fig = plots.dims_below_curve(v, CTX, tau=0.01, reference=pruning_markers())
    label = next(a for a in fig.layout.annotations if "of 256 dims" in (a.text or ""))
    assert label.ax > 0 and label.ay > 0  # plotly: ay > 0 is below the point
    paper = next(t for t in fig.data if t.name == "paper")
    at_tau = [y for x, y in zip(paper.x, paper.y) if x == pytest.approx(0.01)]
    assert at_tau and at_tau[0] > label.y  # the paper's point is above ours; our label goes the other way
    builtin_like = np.concatenate([np.full(53, 0.005), np.geomspace(0.011, 1.3, 203)])  # 21 % below 0.01
    fig = plots.dims_below_curve(builtin_like, CTX, tau=0.01)
    assert next(a.ay for a in fig.layout.annotations if "of 256 dims" in (a.text or "")) > 0
    low = plots.dims_below_curve(v, CTX, tau=1.2e-3)  # near the x axis: above right
    assert next(a.ay for a in low.layout.annotations if "dims" in (a.text or "")) < 0


def test_neighbour_axis_spans_the_values_not_zero_to_one():
    """Cosines of 0.97–0.98 on a 0–1 axis all look the same: the axis spans the values (issue 21)."""
    fig = plots.neighbour_bars(["a", "b", "c"], [0.978, 0.974, 0.970], ["a", "b"], [0.99, 0.95], {"model": "m"})
    lo, hi = fig.layout.xaxis.range
    assert 0.9 < lo < 0.970 and 0.978 < hi < 1.0
    lo2, hi2 = fig.layout.xaxis2.range
    assert lo2 < 0.95 and hi2 > 0.99 and hi2 - lo2 < 0.2


def test_the_dimension_inspector_draws_points_past_200_rows():
    few = plots.dim_across_classes(np.arange(50.0), [f"c{i}" for i in range(50)], 3, {"model": "m"})
    many = plots.dim_across_classes(np.arange(1000.0), [f"c{i}" for i in range(1000)], 3, {"model": "m"})
    assert few.data[0].type == "bar" and many.data[0].type == "scatter" and many.data[0].mode == "markers"
    assert list(many.data[0].error_y.arrayminus[:3]) == [0.0, 1.0, 2.0]  # a stem from zero to each value


def test_a_log_y_line_leaves_out_values_it_cannot_show():
    fig = plots.lines([0, 1, 2], {"a": [0.0, 1e-3, 2.0]}, "x", "y", {"model": "m"}, log_y=True)
    assert fig.layout.yaxis.type == "log"
    y = np.asarray(fig.data[0].y, dtype=float)
    assert np.isnan(y[0]) and y[1:].tolist() == [1e-3, 2.0]
    linear = plots.lines([0, 1, 2], {"a": [0.0, 1e-3, 2.0]}, "x", "y", {"model": "m"})
    assert np.asarray(linear.data[0].y, dtype=float).tolist() == [0.0, 1e-3, 2.0]

"""Every view's figures from a source, as the dashboard draws them, for ``dtviz plot`` and the pages' reports.

    data = ViewData.of(source, t=None, part="y+t", tau="auto")    E, its statistics, names, τ, the title context
    view_figures("variance", data)                                 [{"name", "title", "figure"}, ...]
    write_figure(item, "fig.svg")                                  PNG / SVG / PDF, no browser download

A figure is a plotly ``go.Figure`` or, for sample grids, a PIL image (captioned tiles). Plotly figures are rendered
by kaleido with the Chromium already on the machine (Debian's ``chromium``); dtviz never downloads a browser.
"""
from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass, field

import numpy as np

from dtviz.errors import DtvizInputError

VIEWS = ("heatmap", "histogram", "profile", "variance", "dims-below", "projection", "blocks", "over-t", "training",
         "samples", "claims")
FORMATS = (".png", ".svg", ".pdf")


@dataclass
class ViewData:
    """What a view is drawn from: the source, E at (t, part) as float32 rows, its fitted ConditionStats, τ."""

    source: object
    t: float | None
    part: str
    tau: float
    E: np.ndarray
    stats: object
    extra: dict = field(default_factory=dict)

    @classmethod
    def of(cls, source, t: float | None = None, part: str = "y+t", tau="auto") -> "ViewData":
        from dtviz.analysis.stats import ConditionStats
        from dtviz.pruning.defaults import default_tau

        conv = source.family.convention
        t = None if conv is None else (source.t0 if t is None else conv.check(float(t)))
        E = source.embeddings(t=t, part=part)
        stats = ConditionStats().fit(E)
        if tau == "auto":
            at_t0 = t == source.t0 and part == "y+t"
            tau = default_tau(stats if at_t0 else ConditionStats(compute_cosine=False).fit(source.embeddings()))
        return cls(source, t, part, float(tau), E, stats)

    @property
    def names(self) -> list[str]:
        return list(self.source.class_names)

    @property
    def head(self) -> np.ndarray:
        return np.asarray(self.stats.at_tau(self.tau)["head_dims"], dtype=np.int64)

    def context(self, with_tau: bool = True) -> dict:
        return plot_context(self.source, self.t, self.part, f"{self.tau:.4g}" if with_tau else None)


def plot_context(source, t, part: str, tau_text: str | None) -> dict:
    """The ``context`` every figure builder puts under its title: model, family, d, t, part, τ, row nouns."""
    from dtviz.sources.base import row_noun

    info = source.info
    conv = info.family.convention
    when = None if conv is None or t is None else f"{t:g}" + (" (t0)" if t == source.t0 else "")
    if when is not None and info.family.key == "trajectory":
        when = source.step_text(int(t))
    row, rows = row_noun(source)
    return {"model": info.name, "family": info.family.label, "d": info.dim, "t": when, "part": part, "tau": tau_text,
            "row": row, "rows": rows}


# ------------------------------------------------------------------------------------------- views

def view_figures(view: str, data: ViewData, **options) -> list[dict]:
    """The figures of ``view`` (VIEWS) as the dashboard draws them with its default controls."""
    if view not in VIEWS:
        raise DtvizInputError(f"expected a view among {', '.join(VIEWS)}, but got {view!r}.")
    return BUILDERS[view](data, **options)


def _heatmap(data: ViewData, order: str = "id", **_) -> list[dict]:
    from dtviz import plots

    if data.source.num_classes < 2:
        raise DtvizInputError("the cosine heatmap needs at least 2 rows.")
    C = data.stats.cosine()
    idx = plots.cluster_order(C) if order == "cluster" else None
    fig = plots.cosine_heatmap(C, data.names, data.context(with_tau=False), order=idx,
                               height=plots.heatmap_height(data.source.num_classes))
    return [{"name": "cosine-heatmap", "title": "Cosine similarity", "figure": fig}]


def _histogram(data: ViewData, log_x: bool = True, log_y: bool = True, **_) -> list[dict]:
    from dtviz import plots

    fig = plots.magnitude_histogram(data.E, data.context(), log_x=log_x, log_y=log_y, tau=data.tau)
    return [{"name": "magnitude-histogram", "title": "Histogram of |cᵢ|", "figure": fig}]


def _profile(data: ViewData, rows=(0,), **_) -> list[dict]:
    from dtviz import plots

    vectors = {"mean vector c̄": data.stats.mean_vector_}
    vectors.update({data.names[i]: data.E[i] for i in rows if 0 <= i < len(data.E)})
    return [{"name": "dim-profile", "title": "Per-dimension profile", "figure": plots.dim_profile(vectors, data.context(), tau=data.tau)}]


def _variance(data: ViewData, **_) -> list[dict]:
    from dtviz import plots

    var, head, context = data.stats.variance_, data.head, data.context()
    return [{"name": "variance-per-dim", "title": "Variance per dimension", "figure": plots.variance_per_dim(var, context, head=head)},
            {"name": "variance-spectrum", "title": "Sorted variance spectrum",
             "figure": plots.variance_spectrum(var, context, log_y=True, head_count=len(head))},
            {"name": "variance-cumulative", "title": "Cumulative variance share", "figure": plots.cumulative_variance(var, context)}]


def _dims_below(data: ViewData, **_) -> list[dict]:
    from dtviz import plots
    from dtviz.reference import pruning_markers

    return [{"name": f"dims-below-tau{'-normalised' if norm else ''}",
             "title": "Share of dimensions below τ" if norm else "Dimensions below τ",
             "figure": plots.dims_below_curve(data.stats.mean_vector_, data.context(), tau=data.tau, normalised=norm,
                                              reference=pruning_markers())} for norm in (False, True)]


def _projection(data: ViewData, method: str = "pca", top_head: int | None = None, **_) -> list[dict]:
    from dtviz import plots
    from dtviz.analysis.projection import DEFAULT_TOP_HEAD, head_tail_views, panel_titles, project
    from dtviz.analysis.structure import knn_overlap

    head = data.head
    top = top_head or min(DEFAULT_TOP_HEAD, max(len(head), 1))
    titles = panel_titles(data.source.dim, len(head), top)
    views = head_tail_views(data.E, head, top)
    coords = {titles[key]: project(X, method) for key, X in views.items()}
    scores = panel_scores(data.E, head, top) if len(data.E) >= 3 else {}
    fig = plots.projection_panels(coords, data.names, data.context(), method={"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}[method],
                                  scores={titles[k]: v for k, v in scores.items()})
    return [{"name": "projection", "title": f"Head vs tail projection ({method})", "figure": fig}]


def panel_scores(E, head, top_head: int) -> dict:
    """Each projection panel's class-structure score: the share of each row's 10 nearest rows (Euclidean, c − c̄, in
    that panel's dims before projecting) that are its 10 nearest in all dims (dtviz.analysis.structure.knn_overlap)."""
    from dtviz.analysis.projection import panel_dims
    from dtviz.analysis.structure import knn_overlap

    return {key: knn_overlap(E, dims) for key, dims in panel_dims(np.asarray(E).shape[1], E, head, top_head).items()}


def _blocks(data: ViewData, mode: str = "tail", mask: str = "global", **_) -> list[dict]:
    from dtviz import plots
    from dtviz.analysis.blocks import change_curves, contributions, modulations

    mods = modulations(data.source)
    abs_mean = np.sort(np.abs(data.stats.mean_vector_))
    taus = sorted(set(np.round(np.quantile(abs_mean, np.linspace(0, 0.9, 12)), 6).tolist()) | {0.0, data.tau})
    ids = np.arange(min(data.source.num_classes, 256))
    context = data.context()
    return [{"name": "modulation-heatmap", "title": "Contribution of each dim to each block's modulation",
             "figure": plots.modulation_heatmap(contributions(data.source, data.tau, data.t, ids, mods), "all", context)},
            {"name": "modulation-change-vs-tau", "title": "Relative modulation change against τ",
             "figure": plots.modulation_change_curves(change_curves(data.source, taus, mode, mask, data.t, ids, mods),
                                                      "all", context, data.tau)}]


def _over_t(data: ViewData, n: int = 11, **_) -> list[dict]:
    from dtviz import plots
    from dtviz.analysis.dynamics import stats_over_t

    if data.source.family.convention is None:
        raise DtvizInputError("a matrix of c has no timestep to plot over.")
    from dtviz.sources.base import row_noun

    series = stats_over_t(data.source, part=data.part, n=n)
    context = {**data.context(with_tau=False), "t": None}
    conv = data.source.family.convention
    return plots.over_t_figures(series, context, f"timestep t ({conv.describe()})", "t", row_noun(data.source)[0])


def _training(data: ViewData, run=None, **_) -> list[dict]:
    """The dynamics page's training figures for ``run`` (a folder of checkpoints; default the snapshots/ shipped
    beside the source, as the built-in models have)."""
    import os

    from dtviz import plots
    from dtviz.analysis.dynamics import snapshot_series
    from dtviz.evaluation.claims import source_run_folder

    folder = run or source_run_folder(data.source)
    if folder is None:
        raise DtvizInputError("the training view needs a folder of the run's checkpoints (--run DIR); "
                              f"{data.source.info.name} ships none beside it.")
    series = snapshot_series(folder, part=data.part)
    context = {"model": os.path.basename(os.path.normpath(folder)) or folder, "t": "each checkpoint's t0", "part": data.part}
    return plots.training_figures(series, context)


def _samples(data: ViewData, classes=None, per_class: int = 1, seed: int = 0, steps=None, sampler=None, prune=None,
             scale=None, **_) -> list[dict]:
    from dtviz.sampling.generate import Generator, SampleSettings
    from dtviz.sampling.grid import sample_grid

    source = data.source
    ids = list(range(min(source.num_classes, 16))) if classes is None else list(classes)
    labels = np.repeat(np.asarray(ids, dtype=np.int64), per_class)
    images = Generator(source).sample(labels, SampleSettings(seed=seed, steps=steps, sampler=sampler), prune=prune)
    grid = sample_grid(images, labels, source.class_names, scale, per_class)
    what = "pruned " + prune.label() if prune is not None else "unpruned"
    return [{"name": "samples", "title": f"Samples ({what}), seed {seed}", "figure": grid}]


def _claims(data: ViewData, sampling: bool = False, **_) -> list[dict]:
    from dtviz import plots
    from dtviz.evaluation.claims import measure_claims

    rows = measure_claims(data.source, sampling=sampling)
    return [{"name": "claims", "title": "Paper claims, measured", "figure": plots.claims_table(rows, data.context(with_tau=False))}]


BUILDERS = {"heatmap": _heatmap, "histogram": _histogram, "profile": _profile, "variance": _variance,
            "dims-below": _dims_below, "projection": _projection, "blocks": _blocks, "over-t": _over_t,
            "training": _training, "samples": _samples, "claims": _claims}


# ------------------------------------------------------------------------------------------ writing

def output_paths(out: str, items: list[dict]) -> list[str]:
    """``out`` for one figure; ``stem-<name>.ext`` for each of several."""
    stem, ext = os.path.splitext(out)
    if ext.lower() not in FORMATS:
        raise DtvizInputError(f"--out must end in {', '.join(FORMATS)}; got {os.path.basename(out)!r}.")
    if len(items) == 1:
        return [out]
    return [f"{stem}-{item['name']}{ext}" for item in items]


def write_figure(item: dict, path: str, width: int = 1200, height: int = 750, scale: int = 2) -> str:
    """Write one figure (plotly or a PIL image) as PNG / SVG / PDF; returns the path."""
    fig, ext = item["figure"], os.path.splitext(path)[1].lower()
    if hasattr(fig, "save") and not hasattr(fig, "to_dict"):  # a PIL image: a sample grid
        return _write_image(fig, path, ext)
    data = render_static(fig, ext[1:], int(fig.layout.width or width), int(fig.layout.height or height),
                         scale if ext == ".png" else 1)
    with open(path, "wb") as fh:
        fh.write(data)
    return path


RENDER_TIMEOUT_S = 180  # one figure through kaleido; a healthy render takes seconds even on a loaded 2-core machine


def render_static(fig, fmt: str, width: int, height: int, scale: float = 1, timeout: float | None = None) -> bytes:
    """PNG / SVG / PDF bytes of a plotly figure, rendered by kaleido in a child process (dtviz.plots.render_worker)
    that is killed, with its Chromium, after ``timeout`` seconds (RENDER_TIMEOUT_S): kaleido can hang forever
    when its browser dies, and neither the CLI nor a server thread may wait on that."""
    import signal
    import subprocess
    import sys

    timeout = RENDER_TIMEOUT_S if timeout is None else timeout
    cmd = [sys.executable, "-m", "dtviz.plots.render_worker", fmt, str(int(width)), str(int(height)), str(scale)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                    os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)  # its own group: Chromium's processes are killed with it
    try:
        out, err = proc.communicate(fig.to_json().encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise DtvizInputError(f"rendering the figure as {fmt.upper()} through kaleido and Chromium did not finish in "
                              f"{timeout:g} s and was stopped; try again, or export PNG from the dashboard.") from None
    if proc.returncode != 0 or not out:
        text = err.decode("utf-8", "replace").lower()
        if "chrome" in text or "kaleido" in text or "modulenotfounderror" in text:
            raise DtvizInputError("dtviz plot renders figures with kaleido through the Chromium on this machine, and none "
                                  "was found: install Debian's chromium (apt-get install chromium) — dtviz never "
                                  "downloads a browser.")
        last = (err.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1][:200]
        raise DtvizInputError(f"rendering the figure as {fmt.upper()} failed: {last}")
    return out


def _write_image(image, path: str, ext: str) -> str:
    if ext == ".svg":  # a raster inside an SVG: the grid stays pixel-exact, and the caption text is part of it
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        uri = base64.b64encode(buf.getvalue()).decode("ascii")
        w, h = image.size
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">'
                     f'<image width="{w}" height="{h}" style="image-rendering:pixelated" '
                     f'href="data:image/png;base64,{uri}"/></svg>\n')
        return path
    image.convert("RGB").save(path, format="PDF" if ext == ".pdf" else "PNG")
    return path

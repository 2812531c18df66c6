"""Dashboard speed (issue: Dashboard): server-side timings with AppTest, payload and projections.

    cosine page, first render (cold caches)    target ≤ 3 s      built-in and an XL-shaped 1000-class checkpoint
    cosine page, τ change                      target ≤ 0.5 s
    1000×1000 heatmap payload                  target ≤ 1 MB     beside a plain plotly Heatmap of the same matrix
    t-SNE / UMAP of 1000×1152                  target ≤ 10 s     our cached path vs scikit-learn / umap-learn directly
"""
from __future__ import annotations

import glob
import os
import statistics
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def page_file(name: str) -> str:
    hits = glob.glob(os.path.join(ROOT, "*", f"{name}_view.py"))
    return os.path.relpath(hits[0], ROOT)


def _app(**query):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(os.path.join(ROOT, "app.py"), default_timeout=300)
    at.query_params.update({k: str(v) for k, v in query.items()})
    return at


def render_times(src: str) -> tuple[float, float]:
    """(cold first render of the cosine page, median τ change) for one source."""
    import streamlit as st

    st.cache_data.clear()
    st.cache_resource.clear()
    at = _app(src=src)
    t0 = time.perf_counter()
    at.run()
    at.switch_page(page_file("cosine")).run()
    cold = time.perf_counter() - t0
    assert not at.exception, [e.value for e in at.exception]
    changes = []
    for tau in (0.02, 0.05, 0.1, 0.2, 0.5):
        t0 = time.perf_counter()
        at.number_input(key="tau_box").set_value(tau).run()
        changes.append(time.perf_counter() - t0)
    return cold, statistics.median(changes)


def heatmap_payload() -> tuple[int, int, float, float]:
    import plotly.graph_objects as go

    from dtviz.plots import cosine_heatmap
    from dtviz.analysis.stats import cosine_matrix

    rng = np.random.default_rng(0)
    E = rng.normal(size=(1000, 1152)) * np.logspace(-3, 0.5, 1152) + 2 * (rng.random(1152) > 0.98)
    C = cosine_matrix(E)
    names = [f"class {i}" for i in range(1000)]
    t0 = time.perf_counter()
    ours = len(cosine_heatmap(C, names, "bench").to_json())
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    naive = len(go.Figure(go.Heatmap(z=C, x=names, y=names)).to_json())
    t_naive = time.perf_counter() - t0
    return ours, naive, t_ours, t_naive


def projections() -> list[tuple[str, float, float]]:
    from sklearn.manifold import TSNE

    from dtviz.analysis.projection import ProjectionCache, project, warm_up

    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 1152)) * np.logspace(-3, 0.5, 1152)
    t0 = time.perf_counter()
    warm_up()  # numba's one-off JIT for UMAP: paid once per process (the app does it in the background)
    rows = [("projection warm-up (imports + UMAP JIT, once per process)", time.perf_counter() - t0, None)]
    cache = ProjectionCache()
    for method in ("tsne", "umap"):
        t0 = time.perf_counter()
        cache.get_or_compute(("bench", method), lambda: project(X, method))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        cache.get_or_compute(("bench", method), lambda: project(X, method))
        cached = time.perf_counter() - t0
        t0 = time.perf_counter()
        if method == "tsne":
            TSNE(n_components=2, random_state=0, init="pca").fit_transform(X)
        else:
            import umap

            umap.UMAP(random_state=0).fit_transform(X)
        direct = time.perf_counter() - t0
        rows.append((f"{method}: 1000×1152, dtviz first call", first, direct))
        rows.append((f"{method}: 1000×1152, dtviz cached (τ/page revisit)", cached, direct))
    return rows


def main() -> list[tuple[str, float, float | None]]:
    from bench.core import make_xl_checkpoint

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        xl = make_xl_checkpoint(folder, backbone_mb=16)["safetensors"]
        os.environ["DTVIZ_ROOTS"] = os.pathsep.join([folder, ROOT])  # the dashboard serves the XL checkpoint's folder
        for label, src in (("builtin", "builtin"), ("XL-shaped 1000 classes", xl)):
            cold, tau = render_times(src)
            rows.append((f"cosine page first render (cold), {label}", cold, None))
            rows.append((f"cosine page τ change (server side), {label}", tau, None))
    ours, naive, t_ours, t_naive = heatmap_payload()
    print(f"heatmap 1000×1000 payload: dtviz {ours / 1e6:.2f} MB vs plain go.Heatmap {naive / 1e6:.2f} MB ({naive / ours:.1f}× smaller)")
    rows.append(("heatmap 1000×1000 figure build + JSON", t_ours, t_naive))
    rows.extend(projections())
    return rows

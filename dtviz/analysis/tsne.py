"""t-SNE for the head-vs-tail projection (paper Fig. 13): openTSNE when installed, scikit-learn otherwise.

openTSNE (Poličar et al., 2024) reports its iterations (the page's progress bar) and is the faster of the
two on one thread (bench/tsne_speed.py, bench/tsne_speed.md): Barnes–Hut gradients below
OPENTSNE_FFT_FROM points, FFT interpolation from there. Its affinities are built here from exact
neighbours, so openTSNE never imports pynndescent, whose numba compilation costs ~30 s on a busy
2-core machine. Both use one schedule: perplexity min(30, (N − 1)/3), PCA initialisation, 250 iterations
with exaggeration 12 then 500 more, each library's "auto" learning rate, a fixed seed.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from dtviz.errors import DtvizInputError

TSNE_ITERATIONS = 750
TSNE_EARLY_ITERATIONS = 250  # of TSNE_ITERATIONS, with exaggeration 12 (both libraries' default)
TSNE_PROGRESS_EVERY = 25  # iterations between progress reports
TSNE_IMPLEMENTATIONS = ("opentsne", "sklearn")
# openTSNE's gradient: Barnes–Hut below this many points, FFT interpolation from it (bench/tsne_speed.md,
# CPU s on one thread: 1000 points BH 2.9, FFT 8.4, scikit-learn 4.1; 10 000 points BH 51, FFT 29,
# scikit-learn 52; the two openTSNE curves cross near 4 500 points)
OPENTSNE_FFT_FROM = 5_000


def cpu_threads():
    """Limit BLAS/OpenMP to the idle cores. Oversubscribed threads (a training job on the other core)
    make OpenBLAS's LAPACK and t-SNE's OpenMP gradient 4–10× slower than one thread; on an idle
    machine all cores are used."""
    import os

    from threadpoolctl import threadpool_limits

    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:  # not available on this platform
        busy = 0.0
    return threadpool_limits(limits=max(1, min(cores, cores - int(busy + 0.5))))


def tsne_implementation(requested: str | None = None) -> str:
    """"opentsne" when installed (or asked for), else "sklearn"."""
    if requested is not None:
        if requested not in TSNE_IMPLEMENTATIONS:
            raise DtvizInputError(f"t-SNE implementation must be one of {', '.join(TSNE_IMPLEMENTATIONS)}; got {requested!r}.")
        return requested
    import importlib.util

    return "opentsne" if importlib.util.find_spec("openTSNE") is not None else "sklearn"


def tsne_perplexity(n: int) -> float:
    """Both libraries' perplexity for n points: 30, or (n − 1) / 3 when there are too few points for it."""
    return min(30.0, (n - 1) / 3)


def tsne(Z: np.ndarray, seed: int = 0, implementation: str | None = None,
         progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """(N, 2) t-SNE of the rows of Z (already reduced to ≤ 50 dims by ``project``)."""
    if tsne_implementation(implementation) == "opentsne":
        return _open_tsne(Z, seed, progress)
    return _tsne(Z, seed)


def _open_tsne(Z: np.ndarray, seed: int, progress=None, gradient: str | None = None) -> np.ndarray:
    """openTSNE with scikit-learn's schedule (250 exaggerated + 500 iterations; openTSNE's "auto" learning
    rate N / exaggeration), exact k-nearest neighbours (k = 3·perplexity); ``gradient`` "bh" or "fft"
    (default: by N, OPENTSNE_FFT_FROM)."""
    from openTSNE import TSNE
    from openTSNE.affinity import PerplexityBasedNN
    from openTSNE.nearest_neighbors import Sklearn

    n = Z.shape[0]
    perplexity = tsne_perplexity(n)
    k = min(n - 1, int(3 * perplexity))
    calls = [0]

    def report(iteration, error, embedding):  # openTSNE restarts the count in each of its two phases
        calls[0] += 1
        progress(min(calls[0] * TSNE_PROGRESS_EVERY, TSNE_ITERATIONS), TSNE_ITERATIONS)

    with cpu_threads():
        # neighbours built here: openTSNE's own choice imports pynndescent (30 s of numba JIT) to decide
        affinities = PerplexityBasedNN(perplexity=perplexity, n_jobs=1, random_state=int(seed),
                                       knn_index=Sklearn(Z, k, metric="euclidean", n_jobs=1, random_state=int(seed)))
        model = TSNE(n_components=2, initialization="pca", n_iter=TSNE_ITERATIONS - TSNE_EARLY_ITERATIONS,
                     early_exaggeration_iter=TSNE_EARLY_ITERATIONS, early_exaggeration=12.0,
                     negative_gradient_method=gradient or ("fft" if n >= OPENTSNE_FFT_FROM else "bh"),
                     random_state=int(seed), n_jobs=1,
                     callbacks=report if progress else None, callbacks_every_iters=TSNE_PROGRESS_EVERY)
        return np.asarray(model.fit(Z, affinities=affinities), dtype=np.float64)


def _tsne(Z: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE

    n = Z.shape[0]
    # 750 iterations (openTSNE's default): on 1000 points the KL is within 3 % of 1000 iterations and
    # neighbourhoods are the same (trustworthiness equal to 4 decimals), at 3/4 of the time.
    tsne = TSNE(n_components=2, perplexity=tsne_perplexity(n), init="pca", learning_rate="auto",
                max_iter=TSNE_ITERATIONS, random_state=int(seed), method="barnes_hut" if n > 50 else "exact")
    with cpu_threads():
        return tsne.fit_transform(Z).astype(np.float64)

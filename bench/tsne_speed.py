#!/usr/bin/env python
"""t-SNE implementations for the projection page: openTSNE (FFT-accelerated gradients) against
scikit-learn (Barnes–Hut), on one thread, with the settings dtviz uses (perplexity 30, PCA
initialisation, 250 early-exaggeration + 500 iterations = 750, seed 0).

    OMP_NUM_THREADS=1 python bench/tsne_speed.py [--repeats 3] [--sizes 1000,10000]

Inputs: 1000 points = the built-in model's 1000 class vectors (d = 128) after PCA to 50 dims (the page's
own workload); 10 000 points = 100 Gaussian clusters in 50 dims (seed 0). Runs are interleaved;
prints median wall and CPU time of each (CPU time is the work: on a shared machine wall time also
counts other processes) and, for 1000 points, the trustworthiness of 10 neighbours, so that speed is
not bought with a worse embedding. Results: bench/tsne_speed.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402



def inputs(n: int) -> np.ndarray:
    from dtviz.analysis.projection import PCA_DIMS_BEFORE_EMBEDDING, pca

    if n == 1000:
        import dtviz

        E = dtviz.load("builtin").embeddings()
        return pca(np.asarray(E, dtype=np.float64), PCA_DIMS_BEFORE_EMBEDDING)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 4, (100, PCA_DIMS_BEFORE_EMBEDDING))
    return centres[rng.integers(0, 100, n)] + rng.normal(0, 1, (n, PCA_DIMS_BEFORE_EMBEDDING))


IMPLEMENTATIONS = ("sklearn", "opentsne-bh", "opentsne-fft")


def run(implementation: str, X: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(wall s, CPU s of this process, embedding) of dtviz's own t-SNE code with one implementation."""
    from dtviz.analysis.tsne import _open_tsne, tsne

    w0, c0 = time.perf_counter(), time.process_time()
    if implementation == "sklearn":
        Y = tsne(X, 0, "sklearn")
    else:
        Y = _open_tsne(X, 0, gradient=implementation.split("-")[1])
    return time.perf_counter() - w0, time.process_time() - c0, Y


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--implementations", default=",".join(IMPLEMENTATIONS))
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    import platform

    print(f"{platform.machine()} · {os.cpu_count()} cores · load average {os.getloadavg()[0]:.1f} at start · one thread")
    print(f"{'points':>7s} {'implementation':13s} {'median wall s':>13s} {'median CPU s':>12s} {'wall runs s':22s} {'trust@10':>9s}")
    ap_impl = [s for s in args.implementations.split(",") if s]
    implementations = tuple(ap_impl)
    with threadpool_limits(limits=1):
        for n in (int(s) for s in args.sizes.split(",")):
            X = inputs(n)
            runs = {name: [] for name in implementations}
            for _ in range(args.repeats):  # interleaved, so a load change hits both alike
                for name in implementations:
                    runs[name].append(run(name, X))
            cpu = {}
            for name in implementations:
                walls, cpus, Y = [r[0] for r in runs[name]], [r[1] for r in runs[name]], runs[name][-1][2]
                cpu[name] = statistics.median(cpus)
                trust = ""
                if n <= 2000:
                    from sklearn.manifold import trustworthiness

                    trust = f"{trustworthiness(X, Y, n_neighbors=10):.4f}"
                print(f"{n:7d} {name:13s} {statistics.median(walls):13.2f} {cpu[name]:12.2f} "
                      f"{', '.join(f'{w:.1f}' for w in walls):22s} {trust:>9s}", flush=True)
            for name in implementations[1:]:
                print(f"{n:7d} {name} / {implementations[0]} CPU time: {cpu[name] / cpu[implementations[0]]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

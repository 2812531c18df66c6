"""Core speed (issue: Core, §6): an XL-shaped checkpoint on CPU.

    load + c for all 1000 classes + every statistic    target ≤ 1 s after imports
    a change of τ alone (τ-dependent numbers)           target ≤ 50 ms

Each is compared with a straightforward notebook re-computation (torch.load of everything, c and
every statistic recomputed from scratch) and printed as medians and ratios.
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time

import numpy as np
import torch
from safetensors.torch import save_file

import dtviz
from dtviz.analysis import stats

D, K = 1152, 1000


def make_xl_checkpoint(folder: str, backbone_mb: int = 256) -> dict:
    g = torch.Generator().manual_seed(0)
    state = {
        "y_embedder.embedding_table.weight": torch.randn(K + 1, D, generator=g) * 0.02,
        "t_embedder.mlp.0.weight": torch.randn(D, 256, generator=g) * 0.02, "t_embedder.mlp.0.bias": torch.zeros(D),
        "t_embedder.mlp.2.weight": torch.randn(D, D, generator=g) * 0.02, "t_embedder.mlp.2.bias": torch.zeros(D),
        # stands in for the 28 blocks: must not be read to compute c
        "blocks.0.attn.qkv.weight": torch.zeros(backbone_mb * 2 ** 18, 1),
    }
    paths = {"safetensors": os.path.join(folder, "xl.safetensors"), "pt": os.path.join(folder, "xl.pt")}
    save_file(state, paths["safetensors"])
    torch.save({"ema": state, "model": state, "args": None}, paths["pt"])
    return paths


def timed(fn, reps: int) -> float:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def dtviz_full(path: str, tau: float = 0.01) -> None:
    src = dtviz.load(path, device="cpu")
    E = src.embeddings()
    cs = stats.ConditionStats().fit(E)
    cs.table_row(), cs.at_tau(tau)
    stats.dims_below_curve(cs.mean_vector_, stats.default_tau_grid(cs.mean_vector_))
    stats.magnitude_histogram(E), stats.variance_spectrum(cs.variance_)


def notebook_full(path: str, tau: float = 0.01) -> None:
    """What a notebook does: load everything, recompute c and every number, per τ."""
    sd = torch.load(path, map_location="cpu", weights_only=False)["ema"]
    half = 128
    freqs = torch.exp(-np.log(10000) * torch.arange(half) / half)
    args = torch.tensor([999.0])[:, None] * freqs[None]
    feats = torch.cat([torch.cos(args), torch.sin(args)], -1)
    h = torch.nn.functional.silu(feats @ sd["t_embedder.mlp.0.weight"].T + sd["t_embedder.mlp.0.bias"])
    t_emb = h @ sd["t_embedder.mlp.2.weight"].T + sd["t_embedder.mlp.2.bias"]
    E = (sd["y_embedder.embedding_table.weight"][:K] + t_emb).numpy().astype(np.float64)
    C = np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in E[:200]] for a in E[:200]])  # typical loop, 200 only
    cm = E.mean(0)
    _ = (np.abs(cm).sum() ** 2 / (cm ** 2).sum(), [np.abs(r).sum() ** 2 / (r ** 2).sum() for r in E], C.mean())
    _ = [(np.abs(r) < tau).mean() for r in E], np.flatnonzero(np.abs(cm) >= tau), E.var(0)
    _ = [(np.abs(cm) < x).sum() for x in np.logspace(-5, 1, 200)]


def main() -> list[tuple[str, float, float]]:
    with tempfile.TemporaryDirectory() as folder:
        paths = make_xl_checkpoint(folder)
        dtviz_full(paths["safetensors"])  # warm-up: imports, allocator
        ours_st = timed(lambda: dtviz_full(paths["safetensors"]), 5)
        ours_pt = timed(lambda: dtviz_full(paths["pt"]), 5)
        naive = timed(lambda: notebook_full(paths["pt"]), 3)
        cs = stats.ConditionStats().fit(dtviz.load(paths["safetensors"]).embeddings())
        grid = stats.default_tau_grid(cs.mean_vector_)
        taus = iter(np.logspace(-4, 0, 10_000))

        def tau_change():
            tau = next(taus)
            cs.at_tau(tau)
            stats.dims_below_curve(cs.mean_vector_, grid)

        ours_tau = timed(tau_change, 50)
        naive_tau = timed(lambda: notebook_full(paths["pt"], 0.02), 3)
    rows = [
        ("XL load + c(1000) + all stats, safetensors", ours_st, naive),
        ("XL load + c(1000) + all stats, torch .pt (mmap)", ours_pt, naive),
        ("τ change: s_tail, head set, dims-below-τ", ours_tau, naive_tau),
    ]
    return rows


if __name__ == "__main__":
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"{'benchmark':52s} {'dtviz median':>14s} {'naive median':>14s} {'speed-up':>9s}")
    for name, ours, naive in main():
        print(f"{name:52s} {ours * 1000:11.1f} ms {naive * 1000:11.1f} ms {naive / ours:8.1f}×")

"""Built-in model: sampling 16 images with the default settings (issue: Built-in model, target ≤ 1 s)."""
from __future__ import annotations

import statistics
import time

import numpy as np

import os

import torch

import dtviz
from dtviz.sampling.generate import Generator, SampleSettings


def main() -> list[tuple[str, float, float | None]]:
    """Median of 7 runs, at 1 intra-op thread (what the app uses on a 2-core CPU) and at all cores."""
    gen = Generator(dtviz.load("builtin", device="cpu"))
    labels = np.arange(16) % gen.source.num_classes
    rows, before = [], torch.get_num_threads()
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        gen.sample(labels, SampleSettings(seed=0))  # warm-up
        times = []
        for seed in range(7):
            t0 = time.perf_counter()
            gen.sample(labels, SampleSettings(seed=seed))
            times.append(time.perf_counter() - t0)
        rows.append((f"builtin: 16 samples, {gen.defaults['steps']} steps, CFG {gen.defaults['cfg_scale']}, {threads} thread(s)",
                     statistics.median(times), None))
    torch.set_num_threads(before)
    return rows

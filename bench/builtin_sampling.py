"""Built-in model: sampling 16 images with the default settings (issue: Built-in model, target ≤ 1 s)."""
from __future__ import annotations

import statistics
import time

import numpy as np

import dtviz
from dtviz.generate import Generator, SampleSettings


def main() -> list[tuple[str, float, float | None]]:
    gen = Generator(dtviz.load("builtin", device="cpu"))
    labels = np.arange(16) % gen.source.num_classes
    gen.sample(labels, SampleSettings(seed=0))  # warm-up
    times = []
    for seed in range(7):
        t0 = time.perf_counter()
        gen.sample(labels, SampleSettings(seed=seed))
        times.append(time.perf_counter() - t0)
    return [(f"builtin: 16 samples, {gen.defaults['steps']} steps, CFG {gen.defaults['cfg_scale']}", statistics.median(times), None)]

"""Live pruning page (issue 5, "Live page"): slider release → pruned grid of 16 samples on the built-in model,
target ~1 s on 2 CPU cores.

    dtviz    the page's path: the baseline is cached, a release runs quality.sample_readout once for the
             pruned side (sampling + removed dims + pixel drift + class accuracy) and encodes the grid tiles
    baseline recomputing both sides on every release (baseline and pruned sampling, read-outs, tiles)

Run with the dashboard's thread count (device.interactive_threads: half the cores on CPU).
"""
from __future__ import annotations

import itertools

import torch

import dtviz
from bench.core import timed
from dtviz import plots
from dtviz.cli.args import select_classes
from dtviz.models.device import interactive_threads
from dtviz.evaluation.quality import sample_readout
from dtviz.sampling.generate import Generator, SampleSettings
from dtviz.pruning.spec import PruneSpec
from dtviz.evaluation.quality import classifier_for

TAUS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.15, 0.2)  # slider marks, so no two releases repeat in a row


def main() -> list[tuple[str, float, float | None]]:
    before = torch.get_num_threads()
    if not torch.cuda.is_available():
        torch.set_num_threads(interactive_threads())
    try:
        gen = Generator(dtviz.load("builtin", device="cpu"))
        clf = classifier_for(gen.source)
        labels = select_classes(gen.source.num_classes, None, 16, 0)
        settings = SampleSettings(seed=0)
        base = sample_readout(gen, labels, settings, classifier=clf)  # the page's cached baseline
        taus = itertools.cycle(TAUS)

        def release(mode="tail", mask="global"):
            spec = PruneSpec(mode=mode, tau=next(taus), mask=mask)
            plots.image_tiles(sample_readout(gen, labels, settings, spec, base["images"], clf)["images"])

        def recompute_both():
            again = sample_readout(gen, labels, settings, classifier=clf)
            plots.image_tiles(again["images"])
            spec = PruneSpec(tau=next(taus))
            plots.image_tiles(sample_readout(gen, labels, settings, spec, again["images"], clf)["images"])

        release()  # warm-up
        steps = gen.defaults["steps"]
        rows = [
            (f"pruning: τ release → grid, 16 samples × {steps} steps, global", timed(release, 7),
             timed(recompute_both, 3)),
            (f"pruning: τ release → grid, 16 samples × {steps} steps, per-sample",
             timed(lambda: release(mask="per-sample"), 5), None),
        ]
    finally:
        torch.set_num_threads(before)
    return rows


if __name__ == "__main__":
    for name, ours, base in main():
        print(f"{name:60s} {ours * 1000:9.1f} ms" + (f" {base * 1000:9.1f} ms {base / ours:5.1f}×" if base else ""))

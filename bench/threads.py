"""Threads and the wait policy on a shared CPU (issue 21 "Threads", issue 20 "live"): each row is a fresh process, so
OpenMP reads its wait policy at start-up as it does for `dtviz` and `dtviz serve`.

    dtviz --help                                  the parser answers before torch loads (target < 1 s)
    dtviz sample builtin --random 16, auto        every core, passive wait (the CLI's default)   vs  --threads 1
    live pruning release, dashboard policy        every core, passive wait (app.py)              vs  1 thread
    … each again with another process keeping one core busy ("loaded"): the default must be no slower than 1 thread

Medians of repeated runs; the baseline column is the single-thread run, so a ratio ≥ 1 means the default is no slower.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUSY = "import numpy as np\na = np.random.rand(600, 600)\nwhile True:\n    a = (a @ a) / 600.0\n"
LIVE = """
import json, os, statistics, sys, time
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(int(sys.argv[1]))
import dtviz
from dtviz.cli.args import select_classes
from dtviz.evaluation.quality import classifier_for, sample_readout
from dtviz.pruning.spec import PruneSpec
from dtviz.sampling.generate import Generator, SampleSettings
gen = Generator(dtviz.load("builtin", device="cpu"))
clf = classifier_for(gen.source)
labels = select_classes(gen.source.num_classes, None, 16, 0)
settings = SampleSettings(seed=0)
base = sample_readout(gen, labels, settings, classifier=clf)
times = []
for tau in (0.005, 0.01, 0.02, 0.03, 0.05, 0.07):
    t0 = time.perf_counter()
    sample_readout(gen, labels, settings, PruneSpec(tau=tau), base["images"], clf)
    times.append(time.perf_counter() - t0)
print(json.dumps(statistics.median(times[1:])))
"""


@contextmanager
def busy_core(on: bool):
    proc = subprocess.Popen([sys.executable, "-c", BUSY], env={**os.environ, "OMP_NUM_THREADS": "1"}) if on else None
    try:
        if proc is not None:
            time.sleep(1.0)
        yield
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()


def wall(args: list[str], env: dict | None = None, reps: int = 3) -> float:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(reps):
            t0 = time.perf_counter()
            subprocess.run(args, cwd=tmp, env={**os.environ, **(env or {})}, capture_output=True, check=True, timeout=600)
            out.append(time.perf_counter() - t0)
    return statistics.median(out)


def live(threads: int, policy: str | None) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    done = subprocess.run([sys.executable, "-c", LIVE.format(root=ROOT), str(threads)], env=env, capture_output=True,
                          text=True, check=True, timeout=900)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> list[tuple]:
    dtviz = [sys.executable, "-m", "dtviz"]
    cores = os.cpu_count() or 1
    rows = [("dtviz --help (parser before torch)", wall(dtviz + ["--help"], reps=5), None)]
    sample = dtviz + ["sample", "builtin", "--random", "16", "--out", "s"]
    for loaded in (False, True):
        tag = "loaded: 1 core busy" if loaded else "idle"
        with busy_core(loaded):
            # 5 runs each: on a loaded machine one run varies by ±15 %
            rows.append((f"CLI sample 16, --threads auto vs 1 ({tag})", wall(sample, reps=5),
                         wall(sample + ["--threads", "1"], reps=5)))
            rows.append((f"live τ release → 16-sample grid, {cores} threads passive vs 1 ({tag})",
                         live(cores, "PASSIVE"), live(1, None)))
    return rows


if __name__ == "__main__":
    for name, ours, base in main():
        ratio = f"{base / ours:5.2f}×" if base else ""
        print(f"{name:70s} {ours * 1000:9.0f} ms {'' if base is None else f'{base * 1000:9.0f} ms'} {ratio}")

#!/usr/bin/env python
"""Run every benchmark and print one table: medians of repeated runs, and ratios where a baseline exists.

    python bench/run.py            (or: make bench)

Targets are checked here, never in timed tests.
"""
from __future__ import annotations

import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from bench import builtin_sampling, cold_start, core, dashboard, pruning_live, resources, threads  # noqa: E402

SUITES = [("core", core.main), ("builtin sampling", builtin_sampling.main), ("dashboard", dashboard.main),
          ("live pruning", pruning_live.main), ("threads", threads.main), ("resources", resources.main),
          ("cold start", cold_start.main)]


def main() -> int:
    print(f"machine: {platform.machine()} {platform.processor()} · {os.cpu_count()} cores · torch {torch.__version__} · "
          f"threads {torch.get_num_threads()}")
    print(f"{'benchmark':60s} {'dtviz median':>14s} {'baseline median':>16s} {'ratio':>8s}")
    for _, run in SUITES:
        for name, ours, base, *unit in run():
            if unit:  # (name, ours, baseline, unit): a measured quantity, not a time (bench/resources.py)
                ratio = f"{base / ours:7.1f}×" if base and ours > 0 else "       –"
                print(f"{name:60s} {ours:11.1f} {unit[0]} {base:13.1f} {unit[0]} {ratio}")
                continue
            ratio = (f"{base / ours:7.1f}×" if base < 1000 * ours else "  >1000×") if base else "       –"
            base_s = f"{base * 1000:13.1f} ms" if base else " " * 16
            print(f"{name:60s} {ours * 1000:11.1f} ms {base_s} {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

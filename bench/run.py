#!/usr/bin/env python
"""Run every benchmark and print one table: medians of repeated runs, and ratios where a baseline exists.

    python bench/run.py                        (or: make bench)
    python bench/run.py --json docs/bench.json # also keep the rows: docs/performance.md's table is rendered from them
    python bench/run.py --only threads,live    # some suites

Targets are checked here, never in timed tests.
"""
from __future__ import annotations

import os
import platform
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# the dashboard's and the CLI's policy, before torch loads: the live-pruning row then runs as the app does
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from bench import builtin_sampling, cold_start, core, dashboard, pruning_live, resources, threads  # noqa: E402

SUITES = [("core", core.main), ("builtin sampling", builtin_sampling.main), ("dashboard", dashboard.main),
          ("live pruning", pruning_live.main), ("threads", threads.main), ("resources", resources.main),
          ("cold start", cold_start.main)]


def main(argv=None) -> int:
    import argparse
    import json
    import time

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default=None, metavar="FILE", help="also write the rows as JSON (docs/bench.json)")
    p.add_argument("--only", default=None, help="comma-separated suite names (" + ", ".join(n for n, _ in SUITES) + ")")
    args = p.parse_args(argv)
    wanted = None if args.only is None else {x.strip() for x in args.only.split(",")}
    machine = (f"{platform.machine()} {platform.processor()} · {os.cpu_count()} cores · torch {torch.__version__} · "
               f"threads {torch.get_num_threads()}")
    print(f"machine: {machine}")
    print(f"{'benchmark':60s} {'dtviz median':>14s} {'baseline median':>16s} {'ratio':>8s}")
    kept = []
    for suite, run in SUITES:
        if wanted is not None and suite not in wanted and not any(suite.startswith(w) for w in wanted):
            continue
        for name, ours, base, *unit in run():
            kept.append({"suite": suite, "name": name, "ours": ours, "baseline": base, "unit": unit[0] if unit else "s"})
            if unit:  # (name, ours, baseline, unit): a measured quantity, not a time (bench/resources.py)
                ratio = f"{base / ours:7.1f}×" if base and ours > 0 else "       –"
                print(f"{name:60s} {ours:11.1f} {unit[0]} {base:13.1f} {unit[0]} {ratio}")
                continue
            ratio = (f"{base / ours:7.1f}×" if base < 1000 * ours else "  >1000×") if base else "       –"
            base_s = f"{base * 1000:13.1f} ms" if base else " " * 16
            print(f"{name:60s} {ours * 1000:11.1f} ms {base_s} {ratio}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"machine": machine, "date": time.strftime("%Y-%m-%d"), "rows": kept}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python
"""The sweep the dashboard's Sweep page opens on: a small Table 2 of the built-in model, shipped in
assets/builtin/sweep-example/ (table.csv, table.md and command.txt; no images, to keep the repository small).

    python scripts/example_sweep.py            # about a minute on 2 CPU cores

Tail at the model's τ and twice it, and the head's 4 and 8 largest dims, at every step, the first and the last 3,
with the CFG null rows pruned and kept; 64 random classes, one sample each.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "assets", "builtin", "sweep-example")


def main() -> int:
    sys.path.insert(0, ROOT)
    import dtviz
    from dtviz.evaluation.claims import source_tau

    tau = source_tau(dtviz.load("builtin"))
    common = ["builtin", "--random", "64", "--schedule", "every,first,last:3", "--null-rows", "pruned,kept"]
    runs = {"tail": ["--mode", "tail", "--tau", f"{tau:.4g},{2 * tau:.4g}"], "head": ["--mode", "head", "--k", "4,8"]}
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tables, commands = [], []
        for name, args in runs.items():
            argv = ["sweep", *common, *args, "--out", os.path.join(tmp, name)]
            subprocess.run([sys.executable, "-m", "dtviz", *argv], check=True, cwd=ROOT)
            tables.append(open(os.path.join(tmp, name, "table.csv"), encoding="utf-8").read().splitlines())
            commands.append("dtviz " + " ".join(argv[:-2]) + " --out DIR")
            shutil.copy(os.path.join(tmp, name, "table.md"), os.path.join(OUT, f"table-{name}.md"))
    header, rows = tables[0][0], tables[0][1:] + [r for r in tables[1][1:] if not r.startswith("baseline,")]
    with open(os.path.join(OUT, "table.csv"), "w", encoding="utf-8") as fh:
        fh.write("\n".join([header, *rows]) + "\n")
    with open(os.path.join(OUT, "command.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(commands) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

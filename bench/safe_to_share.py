"""The figures of docs/reliability.md's "Budgets before work" table (issue 13), each measured in a fresh process.

    python bench/safe_to_share.py        # writes docs/safe-to-share.json; then python scripts/docs_numbers.py

Peak / kept RSS growth for hostile files (refused before reading) and a real CSV; the retained memory of five
spellings of one 6 000-row .npy through the dashboard's caches; the neighbours page of a 200 000-row matrix.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from tests.test_budgets import SPELLINGS, probe, sparse_csv, sparse_npy, zip_bomb  # noqa: E402

NEIGHBOURS = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    folder = sys.argv[1]
    os.environ["DTVIZ_ROOTS"] = folder
    np.save(os.path.join(folder, "m.npy"), np.random.default_rng(0).standard_normal((200_000, 2)).astype(np.float32))
    from streamlit.runtime import pages_manager
    original = pages_manager.PagesManager.__init__
    def init(self, *a, **k):  # the server's steady state (tests/test_app.py)
        original(self, *a, **k)
        pages_manager.PagesManager.uses_pages_directory = False
    pages_manager.PagesManager.__init__ = init
    from tests.test_app import new_app
    import dtviz_app
    at = new_app(src=os.path.join(folder, "m.npy"))
    at.run()
    at.switch_page(dtviz_app.view_path("neighbours"))
    started = time.perf_counter()
    at.run(timeout=600)
    assert not at.exception and not at.error
    print(f"{time.perf_counter() - started:.1f}")
""")


OUT = os.path.join(ROOT, "docs", "safe-to-share.json")


def main() -> dict:
    """Measure every row; write docs/safe-to-share.json (scripts/docs_numbers.py makes docs/reliability.md's table)."""
    folder = tempfile.mkdtemp()
    rows = []
    for make, ext, case in ((zip_bomb, ".npz", "a zip-bomb .npz (20 480² float32 zeros declared)"),
                            (sparse_npy, ".npy", "a sparse 2 GiB .npy"), (sparse_csv, ".csv", "a sparse 300 MB CSV")):
        path = make(os.path.join(folder, "hostile" + ext))
        got = probe(path)
        rows.append({"case": case, "file_mb": round(os.path.getsize(path) / 2 ** 20), "refused": got["message"] is not None,
                     "peak_mb": round(got["peak"] - got["before"]), "kept_mb": round(got["after"] - got["before"])})
        os.remove(path)
    path = os.path.join(folder, "real.csv")
    np.savetxt(path, np.random.default_rng(0).standard_normal((20_000, 256)).astype(np.float32), delimiter=",", fmt="%.6f")
    got = probe(path)
    rows.append({"case": "a real CSV of 20 000 × 256", "file_mb": round(os.path.getsize(path) / 2 ** 20), "refused": False,
                 "peak_mb": round(got["peak"] - got["before"]), "kept_mb": round(got["after"] - got["before"])})
    os.remove(path)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    spell = tempfile.mkdtemp()
    out = subprocess.run([sys.executable, "-c", SPELLINGS, spell, "6000"], capture_output=True, text=True, env=env, cwd=ROOT)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    spellings = {"copies": got["copies"], "cosine_mb": round(got["cosine_mb"]), "kept_mb": round(got["after"] - got["before"]),
                 "peak_mb": round(got["peak"] - got["before"])}

    nn = tempfile.mkdtemp()
    app_env = {**env, "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "tests")])}  # tests/apptest.py, as pytest
    out = subprocess.run([sys.executable, "-c", NEIGHBOURS, nn], capture_output=True, text=True, env=app_env, cwd=ROOT)
    seconds = re.findall(r"^\d+\.\d$", out.stdout, re.M)
    if not seconds:
        raise SystemExit("the neighbours page run failed: " + out.stderr[-300:])
    result = {"date": time.strftime("%Y-%m-%d"), "load": round(os.getloadavg()[0], 1), "files": rows,
              "spellings": spellings, "neighbours_200k_s": float(seconds[-1])}
    with open(OUT, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))

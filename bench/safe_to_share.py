"""The figures of the README's "Budgets before work" paragraph (issue 13), each measured in a fresh process.

    python bench/safe_to_share.py

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


def main() -> None:
    folder = tempfile.mkdtemp()
    for make, ext in ((zip_bomb, ".npz"), (sparse_npy, ".npy"), (sparse_csv, ".csv")):
        path = make(os.path.join(folder, "hostile" + ext))
        got = probe(path)
        print(f"{make.__name__:10s} {os.path.getsize(path) / 2 ** 20:7.0f} MB apparent: refused={got['message'] is not None}, "
              f"peak +{got['peak'] - got['before']:.0f} MB, kept +{got['after'] - got['before']:.0f} MB")
        os.remove(path)
    path = os.path.join(folder, "real.csv")
    np.savetxt(path, np.random.default_rng(0).standard_normal((20_000, 256)).astype(np.float32), delimiter=",", fmt="%.6f")
    got = probe(path)
    print(f"real CSV   {os.path.getsize(path) / 2 ** 20:7.0f} MB: shape {got['shape']}, peak +{got['peak'] - got['before']:.0f} MB")
    os.remove(path)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    spell = tempfile.mkdtemp()
    out = subprocess.run([sys.executable, "-c", SPELLINGS, spell, "6000"], capture_output=True, text=True, env=env, cwd=ROOT)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"5 spellings of a 6000-row .npy: {got['copies']} copy, cosine matrix {got['cosine_mb']:.0f} MB, "
          f"kept +{got['after'] - got['before']:.0f} MB, peak +{got['peak'] - got['before']:.0f} MB")

    nn = tempfile.mkdtemp()
    out = subprocess.run([sys.executable, "-c", NEIGHBOURS, nn], capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = re.findall(r"^\d+\.\d$", out.stdout, re.M)
    print(f"neighbours page, 200 000 rows (AppTest): {seconds[-1] if seconds else out.stderr[-300:]} s")


if __name__ == "__main__":
    main()

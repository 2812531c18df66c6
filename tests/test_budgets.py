"""Budgets before work (issue 13, findings 2, 3 and 7): sizes are checked before a file is read, and memory
stays bounded. Peak and retained RSS are measured in a fresh subprocess (ru_maxrss there is this file's
alone), against the bounds documented in the README's reliability section.

    a zip-bomb .npz: 20 480² float32 zeros declared (1.6 GB), 1.6 MB on disk   -> refused, peak growth < 150 MB
    a sparse 2 GiB .npy (header + truncate)                                    -> refused, peak growth < 150 MB
    a sparse 300 MB .csv                                                       -> refused, peak growth < 150 MB
    a real 40 MB CSV                                                           -> parsed, peak < 2× its float32 matrix + 100 MB
"""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

from dtviz.sources import budgets
from dtviz.errors import DtvizInputError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFUSED_PEAK_MB = 150  # peak RSS growth allowed for refusing a file (the README's figure)


# ================================================================================ hostile files

def npy_header(shape, descr="<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def zip_bomb(path: str, shape=(20_480, 20_480)) -> str:
    """An .npz whose one member 'embeddings.npy' inflates to a float32 zero array of ``shape``: the zeros are
    one deflate block (ended by a full flush, so it can be repeated) written many times; a valid zip (CRC too)."""
    header = npy_header(shape)
    chunk = bytes(64 << 20)
    total = int(np.prod(shape)) * 4
    assert total % len(chunk) == 0
    comp = zlib.compressobj(1, zlib.DEFLATED, -15)
    head = comp.compress(header) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(chunk) + comp.flush(zlib.Z_FULL_FLUSH)
    tail = comp.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header)
    for _ in range(total // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    size, csize = len(header) + total, len(head) + len(block) * (total // len(chunk)) + len(tail)
    name = b"embeddings.npy"
    with open(path, "wb") as fh:
        fh.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, csize, size, len(name), 0) + name)
        fh.write(head)
        for _ in range(total // len(chunk)):
            fh.write(block)
        fh.write(tail)
        cd_offset = fh.tell()
        central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, csize, size, len(name),
                              0, 0, 0, 0, 0, 0) + name
        fh.write(central)
        fh.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), cd_offset, 0))
    return path


def sparse_npy(path: str, shape=(524_288, 1024)) -> str:
    """A 2 GiB float32 .npy that takes no disk: the header, then a hole (truncate)."""
    header = npy_header(shape)
    with open(path, "wb") as fh:
        fh.write(header)
    os.truncate(path, len(header) + int(np.prod(shape)) * 4)
    return path


def sparse_csv(path: str, size: int = 300 * 2 ** 20) -> str:
    with open(path, "w") as fh:
        fh.write("a,b\n1,2\n")
    os.truncate(path, size)
    return path


# ================================================================================ RSS in a subprocess

PROBE = textwrap.dedent("""
    import gc, json, os, resource, sys
    import dtviz
    from dtviz.errors import DtvizInputError

    def rss_mb():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20

    import tempfile
    import numpy as np
    warm = tempfile.mkdtemp()  # the loaders' imports first, so the growth below is the file's alone
    np.savetxt(os.path.join(warm, "w.csv"), np.eye(2), delimiter=",")
    np.save(os.path.join(warm, "w.npy"), np.eye(2, dtype=np.float32))
    np.savez(os.path.join(warm, "w.npz"), embeddings=np.eye(2, dtype=np.float32))
    for name in ("w.csv", "w.npy", "w.npz"):
        dtviz.load(os.path.join(warm, name))
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:  # reset the peak (VmHWM) to now: imports' transients are not the file's
        fh.write("5")
    before = rss_mb()
    try:
        src = dtviz.load(sys.argv[1])
        message, shape = None, list(src.matrix.shape)
    except DtvizInputError as err:
        message, shape = str(err), None
    with open("/proc/self/status") as fh:
        peak = int(next(line for line in fh if line.startswith("VmHWM:")).split()[1]) / 1024
    src = None
    gc.collect()
    print(json.dumps({"message": message, "shape": shape, "before": before, "peak": peak, "after": rss_mb()}))
""")


def probe(path: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", PROBE, path], capture_output=True, text=True, timeout=120, env=env,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("make", [zip_bomb, sparse_npy, sparse_csv], ids=["zip-bomb-npz", "sparse-2GiB-npy", "sparse-csv"])
def test_oversized_files_are_refused_before_reading(tmp_path, make):
    ext = {"zip_bomb": ".npz", "sparse_npy": ".npy", "sparse_csv": ".csv"}[make.__name__]
    path = make(str(tmp_path / f"hostile{ext}"))
    assert os.path.getsize(path) > 1e6
    got = probe(path)
    assert got["message"] and "budget" in got["message"] and "\n" not in got["message"], got
    assert str(tmp_path) not in got["message"]  # the file's name only, never the server's path
    assert got["peak"] - got["before"] < REFUSED_PEAK_MB, got
    assert got["after"] - got["before"] < REFUSED_PEAK_MB, got


def test_a_real_csv_is_parsed_row_by_row(tmp_path):
    """40 MB of text -> a 20 000 × 256 float32 matrix (20 MB): the text is never held whole."""
    rng = np.random.default_rng(0)
    E = rng.standard_normal((20_000, 256)).astype(np.float32)
    path = str(tmp_path / "big.csv")
    np.savetxt(path, E, delimiter=",", fmt="%.6f", header=",".join(f"c{i}" for i in range(256)), comments="")
    got = probe(path)
    assert got["message"] is None and got["shape"] == [20_000, 256], got
    assert got["peak"] - got["before"] < 2 * E.nbytes / 2 ** 20 + 100, got


# ================================================================================ header checks (no subprocess)

def test_npz_member_header_is_checked_even_when_its_declared_size_is_small(tmp_path):
    """A member whose .npy header claims a huge shape is refused from the header alone."""
    path = str(tmp_path / "liar.npz")
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("embeddings.npy", npy_header((10 ** 6, 10 ** 6)) + bytes(64))
    with pytest.raises(DtvizInputError, match="budget"):
        budgets.check_npz(path, "liar.npz")


def test_sample_work_budget():
    budgets.check_sample_work(16, 250)
    with pytest.raises(DtvizInputError, match="64 samples × 1000 steps"):
        budgets.check_sample_work(64, 1000)


# ================================================================================ finding 2: spellings, one copy

SPELLINGS = textwrap.dedent("""
    import gc, json, os, resource, sys
    import numpy as np
    folder, n = sys.argv[1], int(sys.argv[2])
    np.save(os.path.join(folder, "m.npy"), np.random.default_rng(0).standard_normal((n, 2)).astype(np.float32))
    os.symlink(os.path.join(folder, "m.npy"), os.path.join(folder, "link.npy"))
    os.chdir(folder)
    from dtviz_app import cache

    def rss_mb():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20

    spellings = [os.path.join(folder, "m.npy"), folder + "/./m.npy", folder + "//m.npy", "m.npy", "link.npy"]
    gc.collect()
    before = rss_mb()
    held = []  # what the sessions keep (each page's context holds its statistics)
    for s in spellings:
        cache.safe_load(s, "auto", "cpu")
        held.append(cache.condition_stats(s, "matrix", "cpu", None, None, "y+t"))
    gc.collect()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before": before, "peak": peak, "after": rss_mb(), "copies": len({id(h) for h in held}),
                      "cosine_mb": held[0].cosine_.nbytes / 2 ** 20, "entries": len(cache.ARRAYS)}))
""")


def test_spellings_of_one_file_share_one_copy_of_the_cosine_matrix(tmp_path):
    """The issue's case, scaled to 6 000 rows (a 137 MiB cosine matrix): five spellings of one .npy (absolute,
    ``/./``, ``//``, relative, a symlink) are one cache entry and one copy; retained growth < 2 matrices."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", SPELLINGS, str(tmp_path), "6000"], capture_output=True, text=True,
                         timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["copies"] == 1, got
    assert got["after"] - got["before"] < 2 * got["cosine_mb"] + 50, got
    assert got["peak"] - got["before"] < 4 * got["cosine_mb"] + 100, got


# ================================================================================ finding 7: caps on fan-out

def test_projection_rows_over_the_cap_are_an_evenly_spaced_sample(tmp_path):
    """25 000 rows under PCA's cap of 20 000: 20 000 rows projected (first and last kept), the rest NaN (not
    drawn), and the page's note says "20,000 shown of 25,000 rows"."""
    from dtviz.analysis.projection import PANEL_FULL
    from dtviz_app import cache

    path = str(tmp_path / "big.npy")
    np.save(path, np.random.default_rng(1).standard_normal((25_000, 4)).astype(np.float32))
    cache.safe_load(path, "matrix", "cpu")
    coords = cache.projection((path, "matrix", "cpu", None, None, "y+t"), 0.01, 1, "pca", PANEL_FULL)
    shown = np.isfinite(coords).all(1)
    assert coords.shape == (25_000, 2) and shown.sum() == budgets.MAX_PROJECTION_ROWS["pca"] == 20_000
    assert shown[0] and shown[-1]
    assert cache.projection_note(25_000, "pca").startswith("20,000 shown of 25,000 rows")
    assert cache.projection_note(1_000, "tsne") is None


def test_dynamics_reads_at_most_the_cap_of_checkpoints(monkeypatch):
    """The built-in model's training snapshots under a cap of 4: the first and last and two evenly between."""
    from dtviz.sources.loading import BUILTIN_DIR
    from dtviz_app import cache

    steps = sorted(int(name.split("_")[1].split(".")[0]) for name in os.listdir(f"{BUILTIN_DIR}/snapshots"))
    assert len(steps) > 4
    expected = [steps[i] for i in np.round(np.linspace(0, len(steps) - 1, 4)).astype(int)]
    monkeypatch.setattr(cache, "MAX_DYNAMICS_FILES", 4)
    cache.series_over_training.clear()
    series = cache.series_over_training(f"{BUILTIN_DIR}/snapshots", "y+t")
    assert [int(s) for s in series["step"]] == expected
    assert series["note"].startswith(f"4 shown of {len(steps)} checkpoints")


def test_compare_takes_at_most_the_cap_of_sources(tmp_path, monkeypatch):
    """12 spellings of one file in cmp_more (the issue's +1.6 GB): the page compares 8 and says so."""
    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    import dtviz_app
    from dtviz.serving.roots import ENV_ROOTS
    from streamlit.runtime import pages_manager
    from tests.test_app import APP, TIMEOUT

    original = pages_manager.PagesManager.__init__

    def init(self, *args, **kwargs):  # the server's steady state (see tests/test_app.py)
        original(self, *args, **kwargs)
        pages_manager.PagesManager.uses_pages_directory = False

    monkeypatch.setattr(pages_manager.PagesManager, "__init__", init)
    monkeypatch.setenv(ENV_ROOTS, str(tmp_path))
    np.save(tmp_path / "m.npy", np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32))
    lines = [str(tmp_path) + "/" + "./" * i + "m.npy" for i in range(12)]
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.query_params.update({"cmp_more": "\n".join(lines)})
    at.switch_page(dtviz_app.view_path("compare")).run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert any("but this server compares at most 8 at once" in w for w in warnings), warnings
    opened = [s for s in at.dataframe[0].value["source"] if not str(s).startswith("paper:")]  # not the paper's rows
    assert len(opened) == budgets.MAX_COMPARE_SOURCES, opened

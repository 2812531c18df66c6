"""Hostile files, round 3 (a repeat of the issue-23 probe): what a file makes dtviz build beside the arrays the
round-2 budgets count — a Python name per row, a string per label, a model the size a config.json says — and what
an error sentence may echo. Each case is a generated file through the real `dtviz` command in a fresh process
(peak RSS over an honest file, as tests/test_hostile_files.py measures it) or through the loader a page calls.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import struct
import zipfile

import numpy as np
import pytest

import dtviz
from dtviz.errors import DtvizInputError
from dtviz.sources import budgets
from dtviz.sources.loading import BUILTIN_DIR
from dtviz.sources.matrix import read_labels_file
from tests.test_hostile_files import honest_peak, one_sentence, peak_rss_mb  # noqa: F401  (honest_peak: a fixture)

BUDGET_MB = 300  # issue 23: a small hostile file raises the peak by less than this


def sparse_npy(path: str, shape: tuple, dtype: str = "<f4", dense: bool = False) -> str:
    """A .npy whose data is a hole: a few KB on disk however many rows its header declares (``dense``: the zeros
    written, so the file holds what it declares)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False, "shape": shape})
    size = int(np.prod(shape)) * np.dtype(dtype).itemsize
    with open(path, "wb") as fh:
        fh.write(buf.getvalue())
        if dense:
            for start in range(0, size, 2 ** 24):
                fh.write(bytes(min(2 ** 24, size - start)))
        else:
            fh.truncate(len(buf.getvalue()) + size)
    return path


def test_millions_of_rows_are_refused_before_each_gets_a_name(tmp_path, honest_peak):
    path = sparse_npy(str(tmp_path / "rows.npy"), (8_000_000, 1), dense=True)
    peak, done, seconds = peak_rss_mb(["stats", path, "--json"])
    line = one_sentence(done.stderr)
    assert "8,000,000 rows" in line and f"{budgets.MAX_ROWS:,}" in line
    assert peak - honest_peak < BUDGET_MB and seconds < 30


def test_labels_are_counted_before_they_become_text(tmp_path, honest_peak):
    path = str(tmp_path / "labels.npz")
    # 1.5 M labels: 12 MB as an array, within the inflation budget (8 M deflate 686× and are refused for that)
    np.savez_compressed(path, embeddings=np.ones((4, 2), np.float32), labels=np.full(1_500_000, "ab", dtype="<U2"))
    assert os.path.getsize(path) < 200 * 1024
    peak, done, _ = peak_rss_mb(["stats", path, "--json"])
    assert "4 rows" in one_sentence(done.stderr) and "1500000 labels" in done.stderr
    assert peak - honest_peak < BUDGET_MB


def test_a_labels_sidecar_stops_reading_at_the_row_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(budgets, "MAX_ROWS", 1000)
    path = tmp_path / "m.npy.labels.txt"
    path.write_text("ab\n" * 5000)
    with pytest.raises(DtvizInputError, match="over this server's budget of 1,000"):
        read_labels_file(str(path))
    path.write_text("ab\n" * 1000)
    assert len(read_labels_file(str(path))) == 1000


def builtin_copy(folder, **model_settings) -> str:
    """The built-in model's weights with a config.json whose model settings are changed."""
    os.makedirs(folder, exist_ok=True)
    shutil.copy(os.path.join(BUILTIN_DIR, "model.safetensors"), folder)
    with open(os.path.join(BUILTIN_DIR, "config.json")) as fh:
        config = json.load(fh)
    config["model"].update(model_settings)
    with open(os.path.join(folder, "config.json"), "w") as fh:
        json.dump(config, fh)
    return str(folder)


def test_a_config_cannot_make_dtviz_build_a_larger_model_than_its_weights(tmp_path, honest_peak):
    folder = builtin_copy(tmp_path / "big", hidden_size=2048, depth=4)
    assert os.path.getsize(os.path.join(folder, "config.json")) < 16 * 1024
    peak, done, _ = peak_rss_mb(["sample", folder, "--random", "1", "--steps", "1", "--out", str(tmp_path / "out")])
    line = one_sentence(done.stderr)
    assert "hidden_size is 2048 where the weights' shapes give 512" in line
    assert peak - honest_peak < BUDGET_MB
    with pytest.raises(DtvizInputError, match="tokens per image"):  # no pos_embed to compare: the grid is bounded
        from dtviz.models import backbone_for
        backbone_for("dit").build(config={"input_size": 4096, "patch_size": 1, "hidden_size": 8, "depth": 1, "num_heads": 1})
    same = dtviz.load(builtin_copy(tmp_path / "same"))  # the shipped settings agree with the weights
    assert same.build_model() is not None


@pytest.mark.parametrize("settings, named", [({"in_channels": "SECRET-VALUE"}, "in_channels"),
                                             ({"SECRET-KEY": 1}, "1 of its names"),
                                             ({"SECRET-KEY": "x"}, "one of the model settings"),
                                             ({"depth": True}, "depth"), ({"mlp_ratio": -1e400}, "mlp_ratio")])
def test_model_settings_are_checked_and_their_values_never_echoed(tmp_path, settings, named):
    folder = builtin_copy(tmp_path / "cfg", **settings)
    with pytest.raises(DtvizInputError) as err:
        dtviz.load(folder).build_model()
    message = str(err.value)
    assert named in message and "SECRET" not in message and "Error" not in message and "\n" not in message


def test_config_names_must_be_plain_text(tmp_path):
    folder = builtin_copy(tmp_path / "names")
    with open(os.path.join(folder, "config.json")) as fh:
        config = json.load(fh)
    for key, value in (("name", {"a": 1}), ("class_names", [["nested"]] * 100)):
        broken = dict(config, **{key: value})
        with open(os.path.join(folder, "config.json"), "w") as fh:
            json.dump(broken, fh)
        with pytest.raises(DtvizInputError, match="expected"):
            dtviz.load(folder)


def test_an_npz_member_without_the_npy_suffix_is_budgeted_and_not_echoed(tmp_path):
    header = b"{'descr': 'SECRET-CONTENT-IN-HEADER', 'fortran_order': False, 'shape': (4, 4), }".ljust(117) + b"\n"
    with zipfile.ZipFile(tmp_path / "text.npz", "w") as zf:
        zf.writestr("embeddings", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header)
    with pytest.raises(DtvizInputError) as err:
        dtviz.load(str(tmp_path / "text.npz"))
    assert "SECRET" not in str(err.value)
    big = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }".ljust(117) + b"\n"
    with zipfile.ZipFile(tmp_path / "big.npz", "w") as zf:
        zf.writestr("embeddings", b"\x93NUMPY\x01\x00" + struct.pack("<H", len(big)) + big + b"\0" * 1024)
    with pytest.raises(DtvizInputError, match="over this server's budget"):
        dtviz.load(str(tmp_path / "big.npz"))


def test_odd_headers_get_a_sentence_without_an_exception_name(tmp_path):
    neg = tmp_path / "neg.npy"
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": (-1, 10 ** 9)})
    neg.write_bytes(buf.getvalue())
    deep = tmp_path / "deep.safetensors"
    deep.write_bytes(struct.pack("<Q", 200_000) + b"[" * 200_000)
    for path, expected in ((neg, "negative"), (deep, "not valid JSON")):
        with pytest.raises(DtvizInputError, match=expected) as err:
            dtviz.load(str(path))
        assert "Error" not in str(err.value)


def test_a_file_must_hold_the_bytes_it_declares(tmp_path, honest_peak):
    """Within the row and float budgets, a sparse .npy and a deflated member of zeros are refused by what they store
    (the analysis of a matrix at the float budget takes ~8× it; a 4 KB sparse file or a 1 MB upload must not)."""
    sparse = sparse_npy(str(tmp_path / "holes.npy"), (100_000, 600))  # 240 MB declared, a few KB stored
    assert os.stat(sparse).st_blocks * 512 < 64 * 1024
    zeros = str(tmp_path / "zeros.npz")
    np.savez_compressed(zeros, embeddings=np.zeros((20_000, 1024), np.float32))  # 80 MB deflated to ~80 KB
    assert os.path.getsize(zeros) < 2 ** 20
    for path, expected in ((sparse, "a sparse file"), (zeros, "inflates")):
        peak, done, _ = peak_rss_mb(["stats", path, "--json"])
        assert expected in one_sentence(done.stderr)
        assert peak - honest_peak < BUDGET_MB
    labels = str(tmp_path / "labels.npz")  # one label per row, each within 1000 characters, 80 MB as an array
    np.savez(labels, embeddings=np.ones((20_000, 1), np.float32), labels=np.full(20_000, "a" * 1000, dtype="<U1000"))
    with pytest.raises(DtvizInputError, match="labels of 76.3 MiB"):
        dtviz.load(labels)


def test_a_bug_in_a_page_shows_an_incident_id_not_the_exception(caplog):
    """A page that raises an unexpected error: the visitor reads one sentence with an incident id; neither the
    exception's class, nor its text (which may hold a server path) is shown; the log holds both under that id."""
    from streamlit.testing.v1 import AppTest

    def page():
        import re

        import streamlit as st

        from dtviz_app.access import show_bug

        try:
            raise KeyError("/srv/private/weights/model.pt")
        except KeyError:
            st.session_state["incident"] = show_bug("overview")
        assert re.fullmatch(r"[0-9a-f]{6}", st.session_state["incident"])

    with caplog.at_level("ERROR", logger="dtviz.app"):
        at = AppTest.from_function(page, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    shown = " ".join(e.value for e in at.error)
    incident = at.session_state["incident"]
    assert f"incident {incident}" in shown and shown.count(".") == 2  # one sentence per thought, two in all
    assert "KeyError" not in shown and "/srv" not in shown and "model.pt" not in shown
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    assert incident in logged

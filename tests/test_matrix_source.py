"""Precomputed embedding matrices: every format, labels, and the bad-input cases."""
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import dtviz
from tests.doc_pins import assert_documented
from dtviz.analysis import stats
from dtviz.errors import DtvizInputError

E = np.array([[1.0, 0.0, 0.5], [0.0, 2.0, -0.5], [1.0, 1.0, 0.0], [0.2, 0.1, 3.0]], dtype=np.float32)
NAMES = ["cat", "dog", "car", "sky"]


def _check(src, names=None):
    assert src.family.key == "matrix" and src.t0 is None
    np.testing.assert_allclose(src.embeddings(), E, rtol=1e-6)
    assert src.class_names == (names or [f"row {i}" for i in range(4)])
    assert not src.info.can_sample
    # statistics straight from the rows
    np.testing.assert_allclose(stats.participation_ratio(src.embeddings()), stats.participation_ratio(E))


def test_npy_with_sidecar_labels(tmp_path):
    path = tmp_path / "c.npy"
    np.save(path, E)
    _check(dtviz.load(str(path)))
    (tmp_path / "c.npy.labels.txt").write_text("\n".join(NAMES) + "\n")
    _check(dtviz.load(str(path)), NAMES)


def test_npz_pt_safetensors(tmp_path):
    np.savez(tmp_path / "c.npz", embeddings=E, labels=np.array(NAMES))
    _check(dtviz.load(str(tmp_path / "c.npz")), NAMES)
    torch.save(torch.from_numpy(E), tmp_path / "t.pt")
    _check(dtviz.load(str(tmp_path / "t.pt")))
    torch.save({"embeddings": torch.from_numpy(E), "labels": NAMES}, tmp_path / "d.pt")
    _check(dtviz.load(str(tmp_path / "d.pt")), NAMES)
    save_file({"embeddings": torch.from_numpy(E)}, str(tmp_path / "s.safetensors"))
    _check(dtviz.load(str(tmp_path / "s.safetensors")))


def test_csv_with_and_without_header_and_label_column(tmp_path):
    plain = "\n".join(",".join(f"{x:g}" for x in row) for row in E)
    (tmp_path / "a.csv").write_text(plain + "\n")
    _check(dtviz.load(str(tmp_path / "a.csv")))
    (tmp_path / "b.csv").write_text("d0,d1,d2\n" + plain + "\n")
    _check(dtviz.load(str(tmp_path / "b.csv")))
    labelled = "\n".join(n + "," + ",".join(f"{x:g}" for x in row) for n, row in zip(NAMES, E))
    (tmp_path / "c.csv").write_text("name,d0,d1,d2\n" + labelled + "\n")
    _check(dtviz.load(str(tmp_path / "c.csv")), NAMES)
    (tmp_path / "d.tsv").write_text(plain.replace(",", "\t"))
    _check(dtviz.load(str(tmp_path / "d.tsv")))


def test_matrix_has_no_timestep_or_parts(tmp_path):
    np.save(tmp_path / "c.npy", E)
    src = dtviz.load(str(tmp_path / "c.npy"))
    with pytest.raises(DtvizInputError, match="no timestep"):
        src.embeddings(part="y")
    with pytest.raises(DtvizInputError, match="no timestep"):
        src.embeddings(t=0.5)


def test_bad_matrices(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 4)))
    np.save(tmp_path / "vec.npy", np.ones(5))
    np.save(tmp_path / "cube.npy", np.ones((2, 2, 2)))
    np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(tmp_path / "text.npy", np.array([["a", "b"]]))
    (tmp_path / "ragged.csv").write_text("1,2,3\n4,5\n")
    (tmp_path / "words.csv").write_text("1,2,x\n4,5,y\n1,z,3\n")
    (tmp_path / "blank.csv").write_text("\n\n")
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x81" * 10)
    (tmp_path / "trunc.npy").write_bytes(open(tmp_path / "cube.npy", "rb").read()[:70])
    np.save(tmp_path / "ok.npy", E)
    (tmp_path / "three.txt").write_text("a\nb\nc\n")
    cases = {
        "empty.npy": "non-empty", "vec.npy": "2-D", "cube.npy": "2-D", "nan.npy": "NaN/Inf",
        "obj.npy": "pickled", "text.npy": "numbers", "ragged.csv": "same number of columns",
        "words.csv": "numbers", "blank.csv": "none", "bin.csv": "not text", "trunc.npy": "damaged",
    }
    for name, words in cases.items():
        with pytest.raises(DtvizInputError) as info:
            dtviz.load(str(tmp_path / name))
        assert words in str(info.value), f"{name}: {info.value}"
    with pytest.raises(DtvizInputError, match="one label per row"):
        dtviz.load(str(tmp_path / "ok.npy"), labels=str(tmp_path / "three.txt"))
    assert_documented("docs/reliability.md", f"{len(cases) + 1} matrix cases")  # + the label count

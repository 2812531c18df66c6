"""Native DiT-family checkpoints through the real loader: parity with an independent formula per
family, wrappers, detection, t0 conventions, and every bad-input case of the core issue."""
import hashlib
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import dtviz
from tests.doc_pins import assert_documented
from dtviz.errors import DtvizInputError
from tests.factories import family_state, save_checkpoint

FAMILY_T0 = {"dit": 999.0, "mdt": 999.0, "sit": 0.0, "lightningdit": 0.0, "repa": 1.0, "mg": 1.0}


def reference_c(state: dict, labels, t: float) -> np.ndarray:
    """DiT's formula in float64 numpy, independent of dtviz: table[y] + MLP(cat[cos, sin]).

    DiT itself forms t·f in float32, so at t = 999 the two differ by ~1e-5: tolerances are 1e-4,
    far below what a wrong formula (sin/cos swapped, other frequencies) produces.
    """
    g = {k: state[k].double().numpy() for k in state if k.startswith(("t_embedder", "y_embedder"))}
    half = g["t_embedder.mlp.0.weight"].shape[1] // 2
    freqs = np.exp(-np.log(10000.0) * np.arange(half) / half)
    feats = np.concatenate([np.cos(t * freqs), np.sin(t * freqs)])
    h = g["t_embedder.mlp.0.weight"] @ feats + g["t_embedder.mlp.0.bias"]
    h = h / (1 + np.exp(-h))  # SiLU
    t_emb = g["t_embedder.mlp.2.weight"] @ h + g["t_embedder.mlp.2.bias"]
    return g["y_embedder.embedding_table.weight"][np.asarray(labels)] + t_emb


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("family,wrapper,detected", [
    ("dit", "plain", "dit"),
    ("sit", "train", "dit"),  # DiT/SiT/MG share keys: ambiguous, default DiT
    ("repa", "train", "repa"),
    ("lightningdit", "lightning", "lightningdit"),
    ("mdt", "plain", "mdt"),
    ("mg", "safetensors", "dit"),
    ("dit", "ddp", "dit"),
])
def test_detection_wrappers_and_parity(tmp_path, family, wrapper, detected):
    state = family_state(family, num_classes=10, hidden=32)
    ext = ".safetensors" if wrapper == "safetensors" else ".pt"
    path = save_checkpoint(state, str(tmp_path / f"{family}{ext}"), wrapper)
    before = sha(path)
    src = dtviz.load(path, device="cpu")
    assert src.family.key == detected
    assert (src.num_classes, src.dim) == (10, 32)
    assert src.t0 == FAMILY_T0[detected]
    E = src.embeddings()
    assert E.dtype == np.float32 and E.shape == (10, 32)
    np.testing.assert_allclose(E, reference_c(state, range(10), src.t0), rtol=1e-4, atol=1e-4)
    assert sha(path) == before  # never writes to the user's file

    # the user's family choice sets the convention (and t0) for shared-key families
    forced = dtviz.load(path, family=family, device="cpu")
    assert forced.family.key == family and forced.t0 == FAMILY_T0[family]
    np.testing.assert_allclose(forced.embeddings(), reference_c(state, range(10), FAMILY_T0[family]), rtol=1e-4, atol=1e-4)


def test_ambiguous_family_is_reported(tmp_path):
    path = save_checkpoint(family_state("dit"), str(tmp_path / "m.pt"))
    note = dtviz.load(path).info.family_note
    assert "assumed DiT" in note and "SiT" in note


def test_training_wrapper_prefers_ema(tmp_path):
    state = family_state("sit")
    path = save_checkpoint(state, str(tmp_path / "train.pt"), "train")  # holds an argparse.Namespace
    src = dtviz.load(path, family="sit")
    np.testing.assert_allclose(src.embeddings(classes=[3]), reference_c(state, [3], 0.0), rtol=1e-4, atol=1e-4)


def test_parts_t_and_class_subsets(tmp_path):
    state = family_state("dit")
    src = dtviz.load(save_checkpoint(state, str(tmp_path / "m.pt")))
    table = state["y_embedder.embedding_table.weight"].numpy()
    np.testing.assert_allclose(src.embeddings(classes=[2, 5], part="y"), table[[2, 5]], rtol=1e-6)
    c = src.embeddings(classes=[2, 5], t=500)
    np.testing.assert_allclose(c, reference_c(state, [2, 5], 500.0), rtol=1e-4, atol=1e-4)
    t_part = src.embeddings(classes=[2, 5], t=500, part="t")
    np.testing.assert_allclose(t_part[0], t_part[1])
    np.testing.assert_allclose(src.embeddings(classes=[2, 5], t=500, part="y") + t_part, c, rtol=1e-4, atol=1e-4)
    # the null row (index num_classes) is never part of the class rows
    assert not np.allclose(src.embeddings(part="y"), table[-1], atol=1e-6)
    with pytest.raises(DtvizInputError, match="null class"):
        src.embeddings(classes=[10])
    with pytest.raises(DtvizInputError, match=r"\[0, 999\]"):
        src.embeddings(t=1500)
    with pytest.raises(DtvizInputError, match="part"):
        src.embeddings(part="x")


def test_half_precision_weights_are_read_as_float32(tmp_path):
    state = {k: v.to(torch.bfloat16) for k, v in family_state("dit").items()}
    src = dtviz.load(save_checkpoint(state, str(tmp_path / "bf16.pt")))
    assert src.embeddings().dtype == np.float32
    ref = reference_c({k: v.float() for k, v in state.items()}, range(10), 999.0)
    np.testing.assert_allclose(src.embeddings(), ref, rtol=1e-4, atol=1e-4)


def test_device_auto_falls_back_to_cpu_and_bad_device_is_clear(tmp_path):
    path = save_checkpoint(family_state("dit"), str(tmp_path / "m.pt"))
    assert dtviz.load(path).device.type == ("cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DtvizInputError, match="not available"):
            dtviz.load(path, device="cuda")
    with pytest.raises(DtvizInputError, match="device must be"):
        dtviz.load(path, device="gpu0")


def test_xl_shaped_safetensors_reads_only_embedder_tensors(tmp_path):
    """1001×1152 label table + real t-MLP shapes; the backbone is never touched when only c is asked."""
    d = 1152
    state = {"y_embedder.embedding_table.weight": torch.randn(1001, d) * 0.02,
             "t_embedder.mlp.0.weight": torch.randn(d, 256) * 0.02, "t_embedder.mlp.0.bias": torch.zeros(d),
             "t_embedder.mlp.2.weight": torch.randn(d, d) * 0.02, "t_embedder.mlp.2.bias": torch.zeros(d),
             "x_embedder.proj.weight": torch.randn(d, 4, 2, 2)}
    path = str(tmp_path / "xl.safetensors")
    save_file(state, path)
    src = dtviz.load(path)
    assert (src.num_classes, src.dim, src.family.key) == (1000, 1152, "dit")
    np.testing.assert_allclose(src.embeddings(classes=[0, 999]), reference_c(state, [0, 999], 999.0), rtol=1e-4, atol=1e-5)
    assert not src.info.can_sample  # partial model: analysis only


def test_every_family_builds_its_backbone_strictly_and_foreign_keys_are_refused(tmp_path):
    for family in ("dit", "repa", "lightningdit", "mdt"):  # REPA's projectors are training-only: ignored
        path = save_checkpoint(family_state(family), str(tmp_path / f"{family}.pt"))
        model = dtviz.load(path, device="cpu").build_model()
        assert type(model).__name__ == {"dit": "DiT", "repa": "DiT", "lightningdit": "LightningDiT", "mdt": "MDTv2"}[family]
    # a DiT file with a key DiT does not have: refused, not dropped silently
    state = family_state("dit")
    state["extra_head.weight"] = torch.zeros(96, 32)
    src = dtviz.load(save_checkpoint(state, str(tmp_path / "extra.pt")), device="cpu")
    with pytest.raises(DtvizInputError, match=r"1 key\(s\) a DiT does not have \(first: 'extra_head.weight'\)"):
        src.build_model()
    # MDTv1 (DiT blocks plus a side-interpolator): detected as MDT, analysis only, said so
    state["sideblocks.0.attn.qkv.weight"] = state.pop("extra_head.weight")
    src = dtviz.load(save_checkpoint(state, str(tmp_path / "v1.pt")), device="cpu")
    assert src.family.key == "mdt" and "MDTv1" in src.info.family_note and not src.info.can_sample
    assert "dtviz samples MDTv2 only" in src.info.sample_note
    assert src.embeddings().shape == (10, 32)


# ------------------------------------------------------------------------------------ bad input

def _write(path, data: bytes):
    with open(path, "wb") as fh:
        fh.write(data)
    return str(path)


def test_bad_inputs_give_one_clear_sentence(tmp_path):
    good = save_checkpoint(family_state("dit"), str(tmp_path / "good.pt"))
    raw = open(good, "rb").read()
    state = family_state("dit")
    no_table = {k: v for k, v in state.items() if not k.startswith("y_embedder")}
    no_tmlp = {k: v for k, v in state.items() if k != "t_embedder.mlp.2.weight"}
    mismatch = dict(state, **{"t_embedder.mlp.2.weight": torch.randn(32, 16)})
    nan = dict(state, **{"y_embedder.embedding_table.weight": state["y_embedder.embedding_table.weight"].clone().index_fill_(0, torch.tensor([1]), float("nan"))})
    inf_t = dict(state, **{"t_embedder.mlp.0.bias": torch.full((32,), float("inf"))})
    int_table = dict(state, **{"y_embedder.embedding_table.weight": torch.ones(11, 32, dtype=torch.int64)})
    one_row = dict(state, **{"y_embedder.embedding_table.weight": torch.randn(1, 32)})
    cases = {
        "missing": (str(tmp_path / "nope.pt"), "does not exist"),
        "directory": (str(tmp_path), "neither"),
        "zero bytes": (_write(tmp_path / "empty.pt", b""), "empty"),
        "random bytes": (_write(tmp_path / "rand.pt", np.random.default_rng(0).bytes(2048)), "not a checkpoint"),
        # the pickle PROTO opcode by chance, but no pickle protocol after it (1 random file in 256 starts so)
        "random bytes after 0x80": (_write(tmp_path / "rand80.pt", b"\x80\xf1" + np.random.default_rng(1).bytes(2046)),
                                    "not a checkpoint"),
        "truncated": (_write(tmp_path / "trunc.pt", raw[: len(raw) // 2]), "truncated"),
        "text file": (_write(tmp_path / "notes.ckpt", b"hello, this is not a checkpoint\n"), "not a checkpoint"),
        "unknown extension": (_write(tmp_path / "model.h5", b"xx"), "extensions"),
        "no label table": (save_checkpoint(no_table, str(tmp_path / "nt.pt")), "label table"),
        "no t-mlp": (save_checkpoint(no_tmlp, str(tmp_path / "nm.pt")), "timestep MLP"),
        "shape mismatch": (save_checkpoint(mismatch, str(tmp_path / "mm.pt")), "shape mismatch"),
        "nan table": (save_checkpoint(nan, str(tmp_path / "nan.pt")), "NaN/Inf"),
        "inf t-mlp": (save_checkpoint(inf_t, str(tmp_path / "inf.safetensors"), "safetensors"), "NaN/Inf"),
        "int table": (save_checkpoint(int_table, str(tmp_path / "int.pt")), "floating-point"),
        "one row table": (save_checkpoint(one_row, str(tmp_path / "one.pt")), "null row"),
        "list not dict": (_save(tmp_path / "list.pt", [torch.ones(3)]), "state dict"),
        "bad safetensors": (_write(tmp_path / "bad.safetensors", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}"), "safetensors"),
    }
    for name, (path, words) in cases.items():
        before = sha(path) if os.path.isfile(path) else None
        with pytest.raises(DtvizInputError) as info:
            dtviz.load(path)
        message = str(info.value)
        assert words in message, f"{name}: {message}"
        assert "\n" not in message and "Traceback" not in message, name
        if before:
            assert sha(path) == before, name
    # + the zip that is not a checkpoint and the two code-running pickles (the tests below)
    assert_documented("docs/reliability.md", f"{len(cases) + 3} native-checkpoint cases")


def _save(path, obj):
    torch.save(obj, path)
    return str(path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_code_running_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    state = dict(family_state("dit"))
    state["payload"] = _Exploit(str(marker))
    path = str(tmp_path / "evil.pt")
    torch.save(state, path)
    assert not marker.exists()
    with pytest.raises(DtvizInputError, match="refused"):
        dtviz.load(path)
    assert not marker.exists()
    # an old-style (non-zip) pickle too
    legacy = str(tmp_path / "evil_legacy.pt")
    with open(legacy, "wb") as fh:
        pickle.dump(_Exploit(str(marker)), fh, protocol=2)
    with pytest.raises(DtvizInputError):
        dtviz.load(legacy)
    assert not marker.exists()


def test_zip_that_is_not_a_checkpoint(tmp_path):
    path = str(tmp_path / "archive.pt")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    with pytest.raises(DtvizInputError, match="could not be read"):
        dtviz.load(path)

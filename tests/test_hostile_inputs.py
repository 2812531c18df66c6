"""A generated corpus of hostile and malformed inputs, run through the loader, the CLI and the running app.

Nothing here is a committed binary: ``build_corpus`` writes every input into a temp folder at test time.
Each input is run through
  (a) ``dtviz.load`` (+ ``.embeddings()`` and ``ConditionStats().fit`` when it loads),
  (b) ``dtviz stats <path> --json`` in-process (``dtviz.cli.main.main``): exit 0 or 2, one stderr line, no traceback,
  (c) for a representative subset, the dashboard (AppTest, ``?src=<path>``): one-sentence st.error, no exception,
      and switching back to the built-in model works afterwards.
Every file in the corpus is hashed before and after: nothing is modified or added. Code-running pickles
touch a marker file if they are ever unpickled; it must never appear. The counts are printed (``-s``) and
are the ones quoted in the README's Reliability section.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import pickle
import stat
import struct
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import dtviz
from tests.doc_pins import assert_documented
from dtviz.cli.main import main as cli_main
from dtviz.errors import DtvizInputError
from dtviz.analysis.stats import ConditionStats

from factories import family_state, save_checkpoint

CHECKPOINT_EXTS = (".pt", ".pth", ".bin", ".ckpt", ".safetensors", ".npy", ".npz", ".csv")
LABEL = "y_embedder.embedding_table.weight"
T_KEYS = ("t_embedder.mlp.0.weight", "t_embedder.mlp.0.bias", "t_embedder.mlp.2.weight", "t_embedder.mlp.2.bias")
MARKER = "PWNED_MARKER"


@dataclass
class Case:
    name: str
    path: str
    expect: str  # "load" | "fail" | "either"
    labels: str | None = None


class Evil:
    """Unpickling this runs code: it touches the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def embedder_state(num_classes: int = 5, d: int = 8, dtype=torch.float32, seed: int = 0) -> dict:
    """Only the five tensors c needs (label table with the null row, timestep MLP)."""
    g = torch.Generator().manual_seed(seed)
    return {LABEL: torch.randn(num_classes + 1, d, generator=g).to(dtype),
            T_KEYS[0]: (torch.randn(d, 256, generator=g) * 0.1).to(dtype), T_KEYS[1]: torch.randn(d, generator=g).to(dtype),
            T_KEYS[2]: (torch.randn(d, d, generator=g) * 0.1).to(dtype), T_KEYS[3]: torch.randn(d, generator=g).to(dtype)}


def safetensors_bytes(tensors: dict) -> bytes:
    buf = io.BytesIO()
    from safetensors.torch import save as st_save

    buf.write(st_save(tensors))
    return buf.getvalue()


def lying_safetensors(path: str, how: str) -> None:
    """A safetensors file whose JSON header lies about offsets, shapes or its own length."""
    raw = safetensors_bytes({"embeddings": torch.ones(4, 3)})
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    if how == "offsets":
        header["embeddings"]["data_offsets"] = [0, 10 ** 9]
    elif how == "shape":
        header["embeddings"]["shape"] = [4000, 3000]
    elif how == "length":
        with open(path, "wb") as fh:
            fh.write(struct.pack("<Q", 2 ** 40) + raw[8:])
        return
    text = json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + data)


def build_corpus(root: str) -> list[Case]:
    rng = np.random.default_rng(0)
    cases: list[Case] = []
    marker = os.path.join(root, MARKER)

    def p(name: str) -> str:
        return os.path.join(root, name)

    def write(name: str, data: str | bytes) -> str:
        """Write text or bytes to p(name); returns the path."""
        with open(p(name), "wb" if isinstance(data, bytes) else "w") as fh:
            fh.write(data)
        return p(name)

    def add(name: str, path: str, expect: str, labels: str | None = None) -> None:
        cases.append(Case(name, path, expect, labels))

    # --- paths: missing, directories where a file is expected, unreadable
    add("missing .pt", p("nope.pt"), "fail")
    add("missing .npy", p("nope.npy"), "fail")
    add("missing, no extension", p("nope"), "fail")
    os.makedirs(p("dir.pt"))
    add("directory named .pt", p("dir.pt"), "fail")
    os.makedirs(p("dir.npy"))
    add("directory named .npy", p("dir.npy"), "fail")
    os.makedirs(p("empty_dir"))
    add("empty directory", p("empty_dir"), "fail")
    write("notes.md", "hello\n")
    add("unknown extension", p("notes.md"), "fail")
    np.save(p("unreadable.npy"), rng.normal(size=(4, 3)).astype(np.float32))
    os.chmod(p("unreadable.npy"), 0)
    # root reads it anyway (os.access says yes): then it must load; otherwise it must fail clearly
    add("unreadable (chmod 000)", p("unreadable.npy"), "either")

    # --- zero bytes and random bytes with every extension
    for ext in CHECKPOINT_EXTS:
        open(p(f"zero{ext}"), "wb").close()
        add(f"zero bytes {ext}", p(f"zero{ext}"), "fail")
        write(f"random{ext}", rng.bytes(4096))
        add(f"random bytes {ext}", p(f"random{ext}"), "fail")
    write("random_pickle_head.pt", b"\x80\x04" + rng.bytes(2048))
    add("random bytes after a pickle opcode", p("random_pickle_head.pt"), "fail")
    write("random_zip_head.pt", b"PK\x03\x04" + rng.bytes(2048))
    add("random bytes after a zip signature", p("random_zip_head.pt"), "fail")

    # --- truncated files
    good = embedder_state()
    torch.save(good, p("full.pt"))
    blob = open(p("full.pt"), "rb").read()
    for frac in (0.5, 0.95):
        write(f"trunc{int(frac * 100)}.pt", blob[:int(len(blob) * frac)])
        add(f"truncated .pt ({int(frac * 100)}%)", p(f"trunc{int(frac * 100)}.pt"), "fail")
    torch.save(good, p("legacy.pt"), _use_new_zipfile_serialization=False)
    blob = open(p("legacy.pt"), "rb").read()
    write("trunc_legacy.pt", blob[:len(blob) // 2])
    add("truncated legacy pickle .pt", p("trunc_legacy.pt"), "fail")
    save_file(good, p("full.safetensors"))
    blob = open(p("full.safetensors"), "rb").read()
    write("trunc.safetensors", blob[:len(blob) // 2])
    add("truncated .safetensors", p("trunc.safetensors"), "fail")
    np.save(p("full.npy"), rng.normal(size=(20, 6)).astype(np.float32))
    blob = open(p("full.npy"), "rb").read()
    write("trunc.npy", blob[:len(blob) - 50])
    add("truncated .npy", p("trunc.npy"), "fail")
    np.savez(p("full.npz"), embeddings=rng.normal(size=(20, 6)))
    blob = open(p("full.npz"), "rb").read()
    write("trunc.npz", blob[:len(blob) // 2])
    add("truncated .npz", p("trunc.npz"), "fail")

    # --- valid containers that are not state dicts
    with zipfile.ZipFile(p("plain_zip.pt"), "w") as zf:
        zf.writestr("readme.txt", "not a checkpoint")
    add("valid zip, not a checkpoint", p("plain_zip.pt"), "fail")
    torch.save([1, 2, 3], p("list.pt"))
    add("torch.save of a list", p("list.pt"), "fail")
    torch.save("hello", p("string.pth"))
    add("torch.save of a string", p("string.pth"), "fail")
    with open(p("plain_pickle.ckpt"), "wb") as fh:
        pickle.dump({"a": 1, "b": [1, 2]}, fh, protocol=2)
    add("plain pickle of a dict of ints", p("plain_pickle.ckpt"), "fail")
    torch.save({"weights": {"a": "b"}, "step": 3}, p("dict_of_strings.bin"))
    add("dict of strings", p("dict_of_strings.bin"), "fail")
    torch.save({}, p("empty_dict.pt"))
    add("empty dict", p("empty_dict.pt"), "fail")

    # --- state dicts with missing or inconsistent entries
    s = embedder_state()
    del s[LABEL]
    torch.save(s, p("no_label_table.pt"))
    add("no label table", p("no_label_table.pt"), "fail")
    s = embedder_state()
    del s[T_KEYS[2]]
    torch.save(s, p("no_t_mlp.pt"))
    add("no timestep MLP", p("no_t_mlp.pt"), "fail")
    s = embedder_state()
    s[T_KEYS[2]] = torch.zeros(8, 9)
    torch.save(s, p("shape_mismatch.pt"))
    add("inconsistent t-MLP shape", p("shape_mismatch.pt"), "fail")
    s = embedder_state()
    s[T_KEYS[3]] = torch.zeros(7)
    save_file(s, p("bias_mismatch.safetensors"))
    add("inconsistent bias shape (.safetensors)", p("bias_mismatch.safetensors"), "fail")
    s = embedder_state()
    s[LABEL] = torch.zeros(6)
    torch.save(s, p("table_1d.pt"))
    add("1-D label table", p("table_1d.pt"), "fail")
    s = embedder_state()
    s[LABEL] = torch.zeros(1, 8)
    torch.save(s, p("table_null_only.pt"))
    add("label table with only the null row", p("table_null_only.pt"), "fail")
    s = embedder_state()
    s[LABEL] = "not a tensor"
    torch.save(s, p("table_not_tensor.pt"))
    add("label table is a string", p("table_not_tensor.pt"), "fail")

    # --- dtypes and non-finite values
    s = embedder_state()
    s[LABEL][2, 3] = float("nan")
    torch.save(s, p("nan_table.pt"))
    add("NaN in label table", p("nan_table.pt"), "fail")
    s = embedder_state()
    s[T_KEYS[0]][0, 0] = float("inf")
    save_file(s, p("inf_mlp.safetensors"))
    add("Inf in t-MLP", p("inf_mlp.safetensors"), "fail")
    torch.save(embedder_state(dtype=torch.float16), p("fp16.pt"))
    add("float16 weights", p("fp16.pt"), "load")
    save_file(embedder_state(dtype=torch.bfloat16), p("bf16.safetensors"))
    add("bfloat16 weights", p("bf16.safetensors"), "load")
    s = embedder_state()
    s[LABEL] = torch.randint(0, 5, (6, 8))
    torch.save(s, p("int_table.pt"))
    add("int label table", p("int_table.pt"), "fail")
    s = {k: v.to(torch.int32) for k, v in embedder_state().items()}
    save_file(s, p("int_all.safetensors"))
    add("all-int weights", p("int_all.safetensors"), "fail")

    # --- extreme sizes
    torch.save(embedder_state(num_classes=1), p("one_class.pt"))
    add("1-class table", p("one_class.pt"), "load")
    save_file(embedder_state(num_classes=100_000, d=8), p("100k_classes.safetensors"))
    add("100 000-class table, d = 8", p("100k_classes.safetensors"), "either")
    torch.save(embedder_state(num_classes=4, d=1), p("d1.pt"))
    add("d = 1", p("d1.pt"), "load")
    save_checkpoint(family_state("dit", num_classes=3, hidden=16, depth=1), p("tiny_full.pt"), wrapper="train")
    add("tiny full DiT in a training wrapper (control)", p("tiny_full.pt"), "load")

    # --- embedding matrices
    np.save(p("empty.npy"), np.zeros((0, 0), dtype=np.float32))
    add("empty .npy", p("empty.npy"), "fail")
    np.save(p("rows0.npy"), np.zeros((0, 5), dtype=np.float32))
    add(".npy with 0 rows", p("rows0.npy"), "fail")
    np.save(p("oned.npy"), np.arange(5, dtype=np.float32))
    add("1-D .npy", p("oned.npy"), "fail")
    np.save(p("threed.npy"), np.zeros((2, 3, 4), dtype=np.float32))
    add("3-D .npy", p("threed.npy"), "fail")
    np.save(p("strings.npy"), np.array([["a", "b"], ["c", "d"]]))
    add("string .npy", p("strings.npy"), "fail")
    np.save(p("nan.npy"), np.array([[1.0, np.nan], [0.0, 1.0]]))
    add("NaN matrix .npy", p("nan.npy"), "fail")
    np.save(p("d1_matrix.npy"), rng.normal(size=(6, 1)).astype(np.float32))
    add("N×1 matrix", p("d1_matrix.npy"), "load")
    np.save(p("one_row.npy"), rng.normal(size=(1, 6)).astype(np.float32))
    add("1×d matrix", p("one_row.npy"), "load")
    np.savez(p("no_2d.npz"), a=np.arange(3), b=np.arange(4))
    add(".npz without a 2-D array", p("no_2d.npz"), "fail")
    np.savez(p("two_2d.npz"), a=np.ones((2, 2)), b=np.ones((3, 3)))
    add(".npz with two 2-D arrays", p("two_2d.npz"), "fail")
    np.savez(p("good.npz"), embeddings=rng.normal(size=(5, 4)), labels=np.array(list("abcde")))
    add(".npz with embeddings and labels (control)", p("good.npz"), "load")
    write("ragged.csv", "1,2,3\n4,5\n6,7,8\n")
    add("ragged CSV", p("ragged.csv"), "fail")
    write("words.csv", "1,2,x\n4,y,6\nz,8,9\n")
    add("non-numeric CSV", p("words.csv"), "fail")
    write("header.csv", "d0,d1,d2\n" + "\n".join(",".join(f"{v:.4f}" for v in row) for row in rng.normal(size=(5, 3))) + "\n")
    add("CSV with a header", p("header.csv"), "load")
    write("noheader.csv", "\n".join(",".join(f"{v:.4f}" for v in row) for row in rng.normal(size=(5, 3))) + "\n")
    add("CSV without a header", p("noheader.csv"), "load")
    write("blank.csv", "\n\n  \n")
    add("blank CSV", p("blank.csv"), "fail")
    write("one_number.csv", "3.5\n")
    add("CSV with one number", p("one_number.csv"), "load")
    write("latin1.csv", "é,1\nü,2\n".encode("latin-1"))
    add("CSV that is not UTF-8", p("latin1.csv"), "fail")
    np.save(p("labelled.npy"), rng.normal(size=(4, 3)).astype(np.float32))
    write("labels_3.txt", "a\nb\nc\n")
    add("labels file with fewer labels than rows", p("labelled.npy"), "fail", labels=p("labels_3.txt"))
    np.save(p("sidecar.npy"), rng.normal(size=(4, 3)).astype(np.float32))
    write("sidecar.npy.labels.txt", "a\nb\nc\nd\ne\nf\n")
    add("sidecar labels with more labels than rows", p("sidecar.npy"), "fail")
    write("binary_labels.txt", b"\xff\xfe\x00\x81" * 10)
    add("labels file that is not text", p("labelled.npy"), "fail", labels=p("binary_labels.txt"))
    torch.save({"embeddings": torch.randn(5, 4), "labels": ["a", "b"]}, p("labels_mismatch.pt"))
    add(".pt matrix whose labels do not match rows", p("labels_mismatch.pt"), "fail")
    torch.save(torch.randn(6, 3), p("tensor.pt"))
    add(".pt holding a bare tensor (control)", p("tensor.pt"), "load")

    # --- code-running pickles: must be refused, the marker must never appear
    with open(p("evil_legacy.pt"), "wb") as fh:
        pickle.dump(Evil(marker), fh, protocol=2)
    add("code-running legacy pickle .pt", p("evil_legacy.pt"), "fail")
    torch.save({"state_dict": Evil(marker)}, p("evil_zip.ckpt"))
    add("code-running pickle inside a torch zip .ckpt", p("evil_zip.ckpt"), "fail")
    np.save(p("evil.npy"), np.array([Evil(marker)], dtype=object), allow_pickle=True)
    add("code-running object array .npy", p("evil.npy"), "fail")
    np.savez(p("evil.npz"), embeddings=np.array([Evil(marker)], dtype=object))
    add("code-running object array .npz", p("evil.npz"), "fail")

    # --- safetensors headers that lie
    for how in ("offsets", "shape", "length"):
        lying_safetensors(p(f"lying_{how}.safetensors"), how)
        add(f"safetensors header lying about {how}", p(f"lying_{how}.safetensors"), "fail")

    # --- folders: diffusers pipelines and dtviz model folders
    for name, config in (("diff_no_config", None), ("diff_bad_config", "{ not json"), ("diff_list_config", "[1, 2]"),
                         ("diff_wrong_class", json.dumps({"_class_name": "UNet2DConditionModel"}))):
        os.makedirs(p(f"{name}/transformer"))
        with open(p(f"{name}/model_index.json"), "w") as fh:
            json.dump({"_class_name": "DiTPipeline", "transformer": ["diffusers", "DiTTransformer2DModel"]}, fh)
        if config is not None:
            write(f"{name}/transformer/config.json", config)
        add(f"diffusers folder: {name[5:].replace('_', ' ')}", p(name), "fail")
    os.makedirs(p("diff_bad_index"))
    write("diff_bad_index/model_index.json", "{{{")
    add("diffusers folder: broken model_index.json", p("diff_bad_index"), "fail")
    os.makedirs(p("diff_no_transformer"))
    with open(p("diff_no_transformer/model_index.json"), "w") as fh:
        json.dump({"_class_name": "DiTPipeline"}, fh)
    add("diffusers folder without transformer/", p("diff_no_transformer"), "fail")
    os.makedirs(p("native_bad_sidecar"))
    save_file(embedder_state(), p("native_bad_sidecar/model.safetensors"))
    write("native_bad_sidecar/config.json", "{ nope")
    add("dtviz model folder with a broken config.json", p("native_bad_sidecar"), "fail")
    return cases


def hash_tree(root: str) -> dict[str, str]:
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def one_sentence(message: str) -> bool:
    return bool(message.strip()) and "\n" not in message.strip() and "Traceback" not in message and len(message) < 600


def run_library(case: Case) -> tuple[str, str]:
    """('load' | 'fail' | 'crash', detail)."""
    try:
        src = dtviz.load(case.path, device="cpu", labels=case.labels)
        E = src.embeddings()
        assert E.shape == (src.num_classes, src.dim) and np.isfinite(E).all(), E.shape
        row = ConditionStats().fit(E).summary(0.01)
        assert row["dim"] == src.dim
        return "load", f"{src.num_classes}×{src.dim}"
    except DtvizInputError as err:
        msg = str(err)
        return ("fail", msg) if one_sentence(msg) else ("crash", f"unclear message: {msg!r}")
    except Exception as err:  # noqa: BLE001 — anything else is a library bug to fix
        return "crash", f"{type(err).__name__}: {err}"


def run_cli(case: Case) -> tuple[str, str]:
    argv = ["stats", case.path, "--json", "--device", "cpu"] + (["--labels", case.labels] if case.labels else [])
    out, err = io.StringIO(), io.StringIO()
    try:
        # every user-visible warning would be one more stderr line: record them all, every time
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            code = cli_main(argv)
    except BaseException as exc:  # noqa: BLE001 — a traceback would reach the user
        return "crash", f"{type(exc).__name__}: {exc}"
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    lines += [f"{w.category.__name__}: {w.message}" for w in seen
              if issubclass(w.category, (UserWarning, RuntimeWarning)) and not issubclass(w.category, ResourceWarning)]
    if code == 0:
        json.loads(out.getvalue())
        return ("load", "") if not lines else ("crash", f"stderr on success: {lines}")
    if code == 2 and len(lines) == 1 and lines[0].startswith("dtviz: error:") and "Traceback" not in lines[0]:
        return "fail", lines[0]
    return "crash", f"exit {code}, stderr {lines!r}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("hostile"))
    cases = build_corpus(root)
    yield root, cases
    os.chmod(os.path.join(root, "unreadable.npy"), stat.S_IRUSR | stat.S_IWUSR)


def test_corpus_is_large_and_distinct(corpus):
    root, cases = corpus
    assert len(cases) >= 40
    assert len({(c.path, c.labels) for c in cases}) == len(cases)
    assert len({c.name for c in cases}) == len(cases)


def test_every_input_through_library_and_cli(corpus, capsys):
    root, cases = corpus
    before = hash_tree(root)
    problems, handled = [], 0
    for case in cases:
        lib, lib_detail = run_library(case)
        cli, cli_detail = run_cli(case)
        good = lib != "crash" and cli != "crash" and lib == cli and (case.expect == "either" or lib == case.expect)
        handled += good
        if not good:
            problems.append(f"{case.name}: expected {case.expect}; library {lib} ({lib_detail}); cli {cli} ({cli_detail})")
    assert not os.path.exists(os.path.join(root, MARKER)), "a pickle ran code while loading"
    after = hash_tree(root)
    assert after == before, "an input file was modified, added or removed"
    with capsys.disabled():
        print(f"\nhostile inputs: {len(cases)} tried, {handled} handled (library + CLI); input hashes unchanged")
    assert not problems, "\n".join(problems)
    assert_documented("docs/reliability.md", f"{len(cases)} tried, {len(cases)} handled")


# ------------------------------------------------------------------------------------- the running app

APP_SUBSET = ("missing .pt", "directory named .pt", "zero bytes .safetensors", "random bytes .ckpt",
              "no label table", "NaN in label table", "code-running legacy pickle .pt",
              "safetensors header lying about offsets", "ragged CSV", "diffusers folder: bad config", "1-D .npy")


@pytest.fixture
def app_test(monkeypatch):
    pytest.importorskip("streamlit")
    from test_app import new_app, ok

    from streamlit.runtime import pages_manager

    original = pages_manager.PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        pages_manager.PagesManager.uses_pages_directory = False

    monkeypatch.setattr(pages_manager.PagesManager, "__init__", init)
    return new_app, ok


def test_subset_in_the_running_app(corpus, app_test, capsys):
    import dtviz_app
    from dtviz.serving.roots import refusal

    new_app, ok = app_test
    root, cases = corpus
    by_name = {c.name: c for c in cases}
    before = hash_tree(root)
    handled = 0
    for name in APP_SUBSET:
        case = by_name[name]
        at = new_app(src=case.path)
        at.run()
        assert not at.exception, (name, [e.value for e in at.exception])
        errors = [e.value for e in at.error]
        assert errors and all(one_sentence(m) for m in errors), (name, errors)
        with pytest.raises(DtvizInputError) as info:
            dtviz.load(case.path, device="cpu")
        if os.path.exists(case.path):  # shown as plain text, the path relative to its served root
            assert dtviz_app.shown(str(info.value)) in errors, (name, errors)
        else:  # served roots: a missing path gets the refusal (no existence oracle)
            assert errors == [dtviz_app.plain(refusal(os.path.basename(case.path)))] * len(errors), (name, errors)
        at.radio(key="src_kind").set_value("builtin").run()
        ok(at)
        handled += 1
    assert not os.path.exists(os.path.join(root, MARKER))
    assert hash_tree(root) == before
    with capsys.disabled():
        print(f"\nhostile inputs in the app: {len(APP_SUBSET)} tried, {handled} handled")
    assert_documented("docs/reliability.md", f"{len(APP_SUBSET)} tried, {len(APP_SUBSET)} handled")


# ------------------------------------------------------------------------------------------ uploads

def test_upload_limit_is_the_library_constant_and_matches_the_server_config():
    import tomllib

    import dtviz_app
    from dtviz.sources import matrix

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, ".streamlit", "config.toml"), "rb") as fh:
        config = tomllib.load(fh)
    assert config["server"]["maxUploadSize"] * 2 ** 20 == matrix.MAX_UPLOAD_BYTES
    assert dtviz_app.UPLOAD_LIMIT_MB * 2 ** 20 == matrix.MAX_UPLOAD_BYTES
    matrix.check_upload_size("ok.npy", matrix.MAX_UPLOAD_BYTES)  # at the limit: fine

    class Big:
        name, size = "huge.npy", matrix.MAX_UPLOAD_BYTES + 1

        def getvalue(self):  # never read: the size check comes first
            raise AssertionError("an upload over the limit was read")

    with pytest.raises(DtvizInputError) as info:
        dtviz_app.save_upload(Big())
    msg = str(info.value)
    assert one_sentence(msg) and "'huge.npy'" in msg and "limited to 200 MB" in msg and "local path" in msg


def test_upload_over_the_limit_shows_the_sentence_in_the_app(app_test, monkeypatch):
    new_app, ok = app_test
    from dtviz.sources import matrix

    monkeypatch.setattr(matrix, "MAX_UPLOAD_BYTES", 1000)  # read at call time by the glue
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32))  # 1408 bytes
    at = new_app()
    at.run()
    at.radio(key="src_kind").set_value("upload").run()
    at.file_uploader(key="src_upload").upload("big.npy", buf.getvalue()).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("'big.npy'" in m and "limited to" in m for m in errors), errors
    assert all(one_sentence(m) for m in errors)
    at.radio(key="src_kind").set_value("builtin").run()
    ok(at)


# ---------------------------------------------------------------------------- many classes: no N×N matrix

def test_many_classes_skip_the_cosine_matrix_but_keep_the_exact_mean(monkeypatch):
    from dtviz.analysis import stats

    E = np.random.default_rng(3).normal(size=(40, 6))
    E[5] = 0  # a zero row counts as similarity 0, as in cosine_matrix
    full = ConditionStats().fit(E)
    monkeypatch.setattr(stats, "MAX_COSINE_CLASSES", 10)
    big = ConditionStats().fit(E)
    assert big.cosine_ is None and np.isnan(big.cosine_summary_["min"])
    assert big.cosine_summary_["mean"] == pytest.approx(full.cosine_summary_["mean"], abs=1e-12)
    with pytest.raises(DtvizInputError, match="cosine matrix"):
        big.cosine()
    assert full.cosine() is full.cosine_

"""Served roots (issue 13: findings 1, 9, 10, 11): a link reads only what the server's owner served.

Library (dtviz.serving.roots): inside loads; outside, ``..``, a symlink escape, ``~`` and absolute paths get one
identical sentence whether the file exists or not, with no path and no content. Dashboard (AppTest): the same
through ``?src=``, the text box, ``cmp_more`` and the dynamics folder; markdown in a source name is shown as
literal text; error text shows no absolute path; uploads live in a per-session folder that another session
cannot open and that is removed when its session is gone. CLI: ``dtviz serve`` builds the Streamlit command
and a real server answers its health check on 127.0.0.1.
"""
from __future__ import annotations

import gc
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from tests.cli_output import error_lines

import dtviz
from dtviz.errors import DtvizInputError
from dtviz.serving.roots import ENV_ROOTS, ServedRoots, refusal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "hunter2-row"


@pytest.fixture()
def tree(tmp_path):
    """served/ (a matrix, a folder, a symlink out) beside outside/ (a private matrix and a text file)."""
    served, outside = tmp_path / "served", tmp_path / "outside"
    (served / "runs").mkdir(parents=True)
    outside.mkdir()
    rng = np.random.default_rng(0)
    np.save(served / "E.npy", rng.normal(size=(6, 4)).astype(np.float32))
    np.save(outside / "secret.npy", rng.normal(size=(6, 4)).astype(np.float32))
    (outside / "secret.txt").write_text(f"{SECRET}\n1 2 3\n")
    os.chmod(outside / "secret.npy", 0o600)
    os.symlink(outside / "secret.npy", served / "escape.npy")
    os.symlink(outside, served / "escape_dir")
    return served, outside


def refused(roots: ServedRoots, text: str) -> str:
    with pytest.raises(DtvizInputError) as info:
        roots.resolve(text)
    return str(info.value)


# ------------------------------------------------------------------------------------------ library

def test_inside_resolves_and_loads(tree):
    served, _ = tree
    roots = ServedRoots.of([served])
    real = roots.resolve("E.npy")
    assert real == os.path.realpath(served / "E.npy") == roots.resolve(str(served / "E.npy"))
    assert roots.resolve("runs/../E.npy") == real  # `..` that stays inside is fine
    assert dtviz.load(real).num_classes == 6
    assert roots.name(real) == "E.npy"
    assert roots.resolve("builtin") == "builtin"
    assert roots.resolve("hf:facebook/DiT-XL-2-256") == "hf:facebook/DiT-XL-2-256"
    snaps = roots.resolve("builtin/snapshots")
    assert os.path.isdir(snaps) and roots.name(snaps) == "builtin/snapshots"


def test_outside_gets_one_sentence_whatever_exists(tree, tmp_path, monkeypatch):
    served, outside = tree
    roots = ServedRoots.of([served])
    home = tmp_path / "home"
    home.mkdir()
    np.save(home / "secret.npy", np.zeros((2, 2), np.float32))
    monkeypatch.setenv("HOME", str(home))
    existing = [str(outside / "secret.npy"), "../outside/secret.npy", "~/secret.npy",
                f"{served}/../outside/secret.npy", "runs/../../outside/secret.npy"]
    missing = [str(tmp_path / "nowhere" / "secret.npy"), "../nowhere/secret.npy", "runs/../../nowhere/secret.npy",
               "~/nowhere/secret.npy", f"{served}/../nowhere/secret.npy"]
    messages = {refused(roots, text) for text in existing + missing}
    assert messages == {refusal("secret.npy")}  # one sentence: exists or not, file or symlink, ~ or ..
    message = messages.pop()
    assert str(tmp_path) not in message and "/" not in message and SECRET not in message
    # symlinks out of the root: the sentence of the same name where nothing is there at all
    empty = ServedRoots.of([served / "runs"])
    for link in ("escape.npy", "escape_dir/secret.npy", "escape_dir"):
        assert refused(roots, link) == refused(empty, link) == refusal(link)
    # a folder, a missing file and an unreadable name inside the roots: the same kind of sentence
    assert refused(roots, "runs/nothing.npy") == refusal("runs/nothing.npy")
    assert refused(roots, "\x00x") == refusal("\x00x")


def test_files_read_beside_a_served_path_must_be_served_too(tree):
    """A matrix's <file>.labels.txt and the checkpoints of a dynamics folder: a symlink out refuses."""
    served, outside = tree
    roots = ServedRoots.of([served])
    np.save(served / "L.npy", np.zeros((2, 3), np.float32))
    os.symlink(outside / "secret.txt", served / "L.npy.labels.txt")
    assert refused(roots, "L.npy") == refusal("L.npy")
    (served / "L.npy.labels.txt").unlink()
    (served / "L.npy.labels.txt").write_text("a\nb\n")
    assert dtviz.load(roots.resolve("L.npy")).class_names == ["a", "b"]
    run = served / "run"
    run.mkdir()
    (run / "step_000100.safetensors").write_bytes(b"x")
    assert roots.resolve_folder("run", (".safetensors",)) == os.path.realpath(run)
    os.symlink(outside / "secret.npy", run / "step_000200.safetensors")
    with pytest.raises(DtvizInputError) as info:
        roots.resolve_folder("run", (".safetensors",))
    assert str(info.value) == refusal("run")
    # a pipeline / model folder whose part is a symlink out: refused as a whole, by the same sentence
    pipe = served / "pipe"
    (pipe / "transformer").mkdir(parents=True)
    (pipe / "model_index.json").write_text("{}")
    assert roots.resolve("pipe") == os.path.realpath(pipe)
    os.symlink(outside / "secret.npy", pipe / "transformer" / "diffusion_pytorch_model.safetensors")
    assert refused(roots, "pipe") == refusal("pipe")


def test_excluded_folder_inside_a_root_is_refused(tree):
    served, _ = tree
    (served / "uploads").mkdir()
    np.save(served / "uploads" / "u.npy", np.zeros((2, 2), np.float32))
    roots = ServedRoots.of([served], excluded=[served / "uploads"])
    assert refused(roots, "uploads/u.npy") == refusal("uploads/u.npy")


def test_bad_roots_and_environment(tree, tmp_path):
    served, _ = tree
    with pytest.raises(DtvizInputError, match="--root expects a folder"):
        ServedRoots.of([served / "E.npy"])
    env = {ENV_ROOTS: os.pathsep.join([str(served), str(tmp_path / "gone")])}
    assert ServedRoots.from_env(env).roots == (os.path.realpath(served),)
    assert ServedRoots.from_env({}, cwd=str(served)).roots == (os.path.realpath(served),)
    gone = ServedRoots.from_env({ENV_ROOTS: str(tmp_path / "gone")}, cwd=str(served))
    assert gone.roots == () and refused(gone, "E.npy") == refusal("E.npy") and gone.resolve("builtin") == "builtin"


def test_scrub_leaves_no_absolute_path(tree, monkeypatch, tmp_path):
    served, _ = tree
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    roots = ServedRoots.of([served])
    text = (f"could not open {str(served / 'runs' / 'x.pt')!r}; {served}; see {tmp_path}/home/.ssh/id_rsa and "
            f"/usr/lib/python3/site.py, hf:facebook/DiT-XL-2-256, 1/2 of N×d")
    out = roots.scrub(text)
    assert out == ("could not open 'runs/x.pt'; .; see ~/.ssh/id_rsa and …/site.py, hf:facebook/DiT-XL-2-256, "
                   "1/2 of N×d"), out
    # a library message about a folder inside the roots names it relative to the root
    with pytest.raises(DtvizInputError) as info:
        dtviz.load(roots.resolve("runs"))
    assert "'runs'" in roots.scrub(str(info.value)) and str(served) not in roots.scrub(str(info.value))


# ------------------------------------------------------------------------------------------ dashboard

streamlit = pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

import dtviz_app  # noqa: E402

APP = os.path.join(ROOT, "app.py")
TIMEOUT = 120


@pytest.fixture()
def app_roots(tree, monkeypatch):
    """The dashboard serves served/ only (as `dtviz serve` started there would)."""
    from streamlit.runtime import pages_manager

    original = pages_manager.PagesManager.__init__

    def init(self, *args, **kwargs):  # the server's steady state (see tests/test_app.py)
        original(self, *args, **kwargs)
        pages_manager.PagesManager.uses_pages_directory = False

    monkeypatch.setattr(pages_manager.PagesManager, "__init__", init)
    served, outside = tree
    monkeypatch.setenv(ENV_ROOTS, str(served))
    return served, outside


def new_app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update({k: str(v) for k, v in query.items()})
    return at


def texts(at: AppTest) -> str:
    """Every text the server writes into the page (errors, captions, markdown, titles); not the inputs, which
    hold what the visitor typed."""
    parts = []
    for kind in ("error", "warning", "info", "caption", "markdown", "title", "text", "code", "metric"):
        parts += [str(e.value) for e in at.get(kind)]
    return "\n".join(parts)


def test_app_opens_inside_and_names_it_relative(app_roots):
    served, _ = app_roots
    at = new_app(src=str(served / "E.npy"))  # an absolute path inside the root: opens, the link says E.npy
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.main.caption[0].value.startswith("E.npy")
    assert at.query_params["src"] == "E.npy"
    again = new_app(src="E.npy")
    again.run()
    assert not again.error and again.main.caption[0].value.startswith("E.npy")


def test_app_refuses_outside_with_one_sentence(app_roots, tmp_path, monkeypatch):
    served, outside = app_roots
    monkeypatch.setenv("HOME", str(outside))
    cases = {str(outside / "secret.npy"): str(tmp_path / "nowhere" / "secret.npy"),
             "../outside/secret.npy": "../nowhere/secret.npy",
             "escape.npy": "missing.npy",
             "~/secret.txt": "~/nowhere/secret.txt"}
    for present, absent in cases.items():
        shown = []
        for src in (present, absent):
            at = new_app(src=src)
            at.run()
            assert not at.exception
            shown.append([e.value for e in at.error])
            page = texts(at)
            assert str(tmp_path) not in page and SECRET not in page, page
        if present != "escape.npy":  # the symlink's own name differs from the missing file's
            assert shown[0] == shown[1], (present, shown)
        assert shown[0] and all(m == dtviz_app.plain(refusal(os.path.basename(present) if "/" in present or
                                                              present.startswith("~") else present))
                                for m in shown[0]), shown[0]
    # the same through the text box
    at = new_app()
    at.run()
    at.radio(key="src_kind").set_value("path").run()
    at.text_input(key="src_path").set_value(str(outside / "secret.npy")).run()
    assert [e.value for e in at.error][:1] == [dtviz_app.plain(refusal("secret.npy"))]


def test_compare_and_dynamics_refuse_outside(app_roots, tmp_path):
    served, outside = app_roots
    lines = [str(outside / "secret.npy"), str(tmp_path / "nowhere" / "secret.npy")]
    at = new_app()
    at.run()
    at.query_params.update({"cmp_more": "\n".join(lines)})
    at.switch_page(dtviz_app.view_path("compare")).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 2 and errors[0] == errors[1], errors  # existing or not: the same line
    assert str(tmp_path) not in texts(at)
    assert len(at.dataframe) == 1 and "builtin" in list(at.dataframe[0].value["source"])  # the others still compare
    at.query_params.update({"dyn_folder": str(outside)})
    at.switch_page(dtviz_app.view_path("dynamics")).run()
    assert not at.exception
    assert [e.value for e in at.error] == [dtviz_app.plain(refusal("outside"))]
    assert str(tmp_path) not in texts(at)


def rendered(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["strikethrough", "table"]).render(text)


def test_markdown_in_a_source_name_is_literal_text(app_roots):
    name = ("**session expired** [re-enter password](http://evil.example/login) ![x](http://evil.example/i.png) "
            ":red[x] $x$")
    at = new_app(src=name)
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and all(m == dtviz_app.plain(refusal(name)) for m in errors), errors
    html = rendered(errors[0])
    assert "<a" not in html and "<img" not in html and "<strong>" not in html and "<em>" not in html, html
    assert "**session expired** [re-enter password](http://evil.example" in html  # the text, literally
    # a served file whose name is markdown: the library's sentence about it, literally
    served, _ = app_roots
    odd = "**bold** [link](x) ![i](y) :red[z].npy"
    (served / odd).write_bytes(b"junk")
    at = new_app(src=odd)
    at.run()
    errors = [e.value for e in at.error]
    assert errors and not at.exception
    html = rendered(errors[0])
    assert odd in html and "<a" not in html and "<img" not in html and "<strong>" not in html, html
    # a good matrix with such a name: the captions that name it render no link or image
    good = "[x](evil.example) ![i](evil.png) <img src=x>.npy"
    np.save(served / good, np.ones((3, 2), np.float32))
    at = new_app(src=good)
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    captions = [c.value for c in at.caption if "evil" in c.value]
    assert len(captions) >= 2, [c.value for c in at.caption]  # the sidebar's and the page's
    # the overview's title holds the name too: literal text, no link or image
    title = rendered(at.title[0].value)
    assert "<a" not in title and "<img" not in title and "[x](evil.example)" in title, title
    for caption in captions:
        html = rendered(caption)
        assert "<a" not in html and "<img" not in html and good in html.replace("&lt;", "<").replace("&gt;", ">"), html
    for raw in ("# big", "- item", "1. item", "<b>x</b> `code` ~~s~~ | a | b |", "_em_ __strong__ a_b_c *x*"):
        html = rendered(dtviz_app.plain(raw))
        assert re.sub(r"</?p>\n?", "", html).replace("&lt;", "<").replace("&gt;", ">") == raw, (raw, html)


def test_errors_show_no_absolute_path(app_roots):
    served, _ = app_roots
    (served / "bad.npy").write_bytes(b"not a matrix")
    at = new_app(src="bad.npy")
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert errors and not any(str(served) in m for m in errors), errors
    with pytest.raises(DtvizInputError) as info:
        dtviz.load(str(served / "bad.npy"))
    assert dtviz_app.shown(str(info.value)) in errors


def upload(at: AppTest, name: str, rows: int, seed: int = 0) -> str:
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(seed).normal(size=(rows, 4)).astype(np.float32))
    at.radio(key="src_kind").set_value("upload").run()
    at.file_uploader(key="src_upload").upload(name, buf.getvalue()).run()
    return at.session_state["_ctx_holder"]["ctx"].source_key


def test_uploads_per_session_private_and_removed(app_roots, monkeypatch):
    import tempfile

    from dtviz.sources import matrix

    served, _ = app_roots
    # even a root that contains the server's temp folder does not serve the uploads
    monkeypatch.setenv(ENV_ROOTS, os.pathsep.join([str(served), tempfile.gettempdir()]))
    one, two = new_app(), new_app()
    one.run()
    two.run()
    path_one, path_two = upload(one, "a.npy", 6), upload(two, "b.npy", 7)
    folder_one, folder_two = (os.path.dirname(os.path.dirname(p)) for p in (path_one, path_two))
    assert os.path.dirname(folder_one) == os.path.dirname(folder_two) == dtviz_app.UPLOAD_ROOT
    assert folder_one != folder_two and os.path.isfile(path_one) and os.path.isfile(path_two)
    assert oct(os.stat(folder_one).st_mode & 0o777) == "0o700"
    assert dtviz_app.UPLOAD_ROOT not in texts(one) and "src" not in one.query_params
    # another session cannot use the stored path as a link
    thief = new_app(src=path_one)
    thief.run()
    assert [e.value for e in thief.error][:1] == [dtviz_app.plain(refusal("a.npy"))]
    # quota: the oldest upload of a session makes room for the newest
    monkeypatch.setattr(matrix, "MAX_UPLOAD_BYTES", 300)  # quota 600 bytes: two 6×4 matrices (224 bytes) fit
    paths = [upload(one, f"m{i}.npy", 6, seed=i + 1) for i in range(3)]
    kept = [p for p in [path_one, *paths] if os.path.isfile(p)]
    assert kept == paths[1:], kept
    # the session ends: its folder goes, the other session's stays
    del one
    gc.collect()
    assert not os.path.exists(folder_one) and os.path.isfile(path_two)
    del two
    gc.collect()
    assert not os.path.exists(folder_two)


def test_sweep_removes_folders_of_sessions_the_server_forgot(app_roots, monkeypatch):
    from streamlit import runtime

    at = new_app()
    at.run()
    path = upload(at, "a.npy", 6)
    folder = os.path.dirname(os.path.dirname(path))
    known = set()

    class Manager:  # Streamlit's SessionManager API: get_session_info(id) is None once a session is gone
        def get_session_info(self, session_id):
            return object() if session_id in known else None

    class FakeRuntime:
        _session_mgr = Manager()

    monkeypatch.setattr(runtime.Runtime, "exists", staticmethod(lambda: True))
    monkeypatch.setattr(runtime.Runtime, "instance", staticmethod(lambda: FakeRuntime))
    from dtviz_app import access

    known.update(access._OWNERS.values())
    assert dtviz_app.sweep_uploads(force=True) == [] and os.path.isdir(folder)
    known.clear()
    assert dtviz_app.sweep_uploads(force=True) == [folder] and not os.path.exists(folder)


# ------------------------------------------------------------------------------------------ dtviz serve

def test_serve_help_and_command(tree, tmp_path, capsys):
    served, outside = tree
    out = subprocess.run([sys.executable, "-m", "dtviz", "serve", "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert out.returncode == 0 and "--root" in out.stdout and "--host" in out.stdout and "127.0.0.1" in out.stdout
    from dtviz.cli.main import build_parser
    from dtviz.serving.serve import APP as SERVE_APP, serve_command
    from dtviz.sources.matrix import MAX_UPLOAD_BYTES

    args = build_parser()[0].parse_args(["serve", "--root", str(outside), "--port", "8642"])
    argv, env = serve_command(args, cwd=str(served))
    assert argv[:5] == [sys.executable, "-m", "streamlit", "run", SERVE_APP] and SERVE_APP == APP
    options = dict(zip(argv[5::2], argv[6::2]))
    assert options["--server.address"] == "127.0.0.1" and options["--server.port"] == "8642"
    assert options["--server.headless"] == "true"
    assert options["--server.maxUploadSize"] == str(MAX_UPLOAD_BYTES // 2 ** 20)
    # the repo's .streamlit/config.toml holds wherever the server is started: no traceback for visitors
    assert options["--client.showErrorDetails"] == "type" and options["--client.toolbarMode"] == "viewer"
    assert options["--runner.magicEnabled"] == "false" and len(argv) == 5 + 2 * len(options)
    assert env[ENV_ROOTS].split(os.pathsep) == [os.path.realpath(outside)]  # with --root, only the roots
    from dtviz.cli.main import main

    assert main(["serve", "--root", str(served / "E.npy")]) == 2  # refused before any server starts
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 1 and "--root expects a folder, but" in err and "E.npy" in err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_real_server_on_loopback_refuses_outside_over_websocket(tree, tmp_path):
    """`dtviz serve` started in served/: healthy on 127.0.0.1 only; websocket sessions (Streamlit's protocol, as
    a browser speaks it) open E.npy, and get one identical sentence for an existing and a missing outside file."""
    from urllib.parse import urlencode

    from test_concurrency import ws_session

    served, outside = tree
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "dtviz", "serve", "--port", str(port)], cwd=str(served),
                            env={**os.environ, "PYTHONPATH": ROOT}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, body = time.monotonic() + 20, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.3)
        assert body == "ok", (body, proc.poll())
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        if listening.strip():  # ss is there: the only listener is the loopback address
            assert all("127.0.0.1:" in line for line in listening.strip().splitlines()), listening
        inside = ws_session(port, urlencode({"src": "E.npy"}), timeout=60)
        assert inside["status"] == 0 and not inside["errors"] and not inside["exceptions"], inside
        present = ws_session(port, urlencode({"src": "../outside/secret.npy"}), timeout=60)
        absent = ws_session(port, urlencode({"src": "../nowhere/secret.npy"}), timeout=60)
        assert present["errors"] == absent["errors"] and not present["exceptions"], (present, absent)
        assert set(present["errors"]) == {dtviz_app.plain(refusal("secret.npy"))}, present["errors"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

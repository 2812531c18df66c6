"""What a visitor may open and see: served roots (dtviz.serving.roots) for every path from the URL or a text box,
error text shown as plain text without server paths, and per-session upload folders.

    open_name(text)    a visitor's source / folder → what dtviz.load takes (or the one refusal sentence)
    open_folder(text)  the same for a folder of training checkpoints (each file inside the roots too)
    link_name(source)  a source as the URL names it: relative to its root, never an upload
    shown(text)        error text as it is displayed: no absolute path, markdown escaped (plain text)
    show_error(text)   st.error / st.warning of shown(text)
    save_upload(up)    an upload into this session's folder (quota; removed when the session ends)
"""
from __future__ import annotations

import atexit
import hashlib
import os
import re
import secrets
import shutil
import threading
import time
import weakref

import streamlit as st

from dtviz.errors import DtvizInputError
from dtviz.serving.roots import ServedRoots
from dtviz_app.constants import LOG, UPLOAD_ROOT


# ================================================================================ served roots

_SERVED: dict[tuple, ServedRoots] = {}


def served() -> ServedRoots:
    """The roots of this server (``DTVIZ_ROOTS`` from ``dtviz serve``, else the folder it was started in);
    the upload folder is never served."""
    key = (os.environ.get("DTVIZ_ROOTS", ""), os.getcwd())
    if key not in _SERVED:
        _SERVED[key] = ServedRoots.from_env(excluded=(UPLOAD_ROOT,))
    return _SERVED[key]


def may_read(real: str) -> bool:
    """The dashboard's rule for every file a loader opens (dtviz.sources.access): under a served root or a built-in
    model, in the local Hugging Face cache (hf: sources, cached VAEs), or a session upload."""
    from dtviz.serving.roots import _hub_cache, _inside

    return (served().allows(real) or _inside(real, os.path.realpath(_hub_cache()))
            or _inside(real, os.path.realpath(UPLOAD_ROOT)))


def install_read_policy() -> None:
    """Called once by app.py: loaders then open only files ``may_read`` allows (configs above a served folder,
    symlinks out of it, … are not read)."""
    from dtviz.sources.access import set_policy

    set_policy(may_read)


def open_name(text: str) -> str:
    """A source or folder typed by a visitor (URL, text box) → the string for the loader; DtvizInputError with
    the one refusal sentence when it is not inside a served root (same sentence whether it exists or not)."""
    return served().resolve(text)


def open_folder(text: str) -> str:
    """A folder of training checkpoints typed by a visitor: inside the roots, and every checkpoint in it too."""
    from dtviz.analysis.dynamics import SNAPSHOT_EXTENSIONS

    return served().resolve_folder(text, tuple(SNAPSHOT_EXTENSIONS))


def link_name(source: str) -> str:
    """How a link names an opened source: relative to its root (uploads are never part of a link)."""
    return served().name(source)


def is_upload(source: str | None) -> bool:
    return bool(source) and (str(source).startswith(UPLOAD_ROOT + os.sep)
                             or os.path.realpath(str(source)).startswith(os.path.realpath(UPLOAD_ROOT) + os.sep))


# ================================================================================ error text

# Characters that start markdown (or Streamlit's :color[…] / :material/…: / $math$) constructs: escaped, so
# the visitor's text shows literally. A backslash escape renders as the character itself (CommonMark).
_MARKDOWN = re.compile(r"([\\`*~\[\]<>#|$:&@])")
# "_" opens or closes emphasis only beside a non-alphanumeric character (CommonMark): step_000250 stays as is.
_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
_UPLOAD_FILE = re.compile(r"[0-9a-f]{8,}[/\\][0-9a-f]{8,}[/\\]")  # <session>/<content hash>/ of a stored upload


def plain(text: str) -> str:
    """``text`` as literal text inside st.error / st.caption: markdown escaped, on one line."""
    text = " ".join(str(text).split())
    text = _UNDERSCORE.sub(r"\\_", _MARKDOWN.sub(r"\\\1", text))
    text = re.sub(r"(?i)\bwww\.", lambda m: m.group(0)[:3] + "\\.", text)  # bare www. autolinks
    text = re.sub(r"^([-+=])", r"\\\1", text)  # a list item or heading underline at the start
    return re.sub(r"^(\d+)([.)])", r"\1\\\2", text)  # an ordered list item at the start


def scrub(text: str) -> str:
    """Error text with no absolute path: a stored upload by its file name, the rest relative to its root."""
    out = str(text)
    for base in dict.fromkeys((UPLOAD_ROOT, os.path.realpath(UPLOAD_ROOT))):
        out = re.sub(re.escape(base + os.sep) + _UPLOAD_FILE.pattern, "", out)
    return served().scrub(out, extra={UPLOAD_ROOT: "upload"})


def shown(text: str) -> str:
    """Exactly what an error box displays for ``text`` (tests compare with this)."""
    return plain(scrub(text))


def show_error(text, warning: bool = False) -> None:
    (st.warning if warning else st.error)(shown(str(text)))


def show_bug(page: str) -> str:
    """A bug inside a page (call from an ``except`` block): the traceback goes to the server log under a short
    incident id and the visitor sees one sentence with that id — no exception text, class name or path, which
    could describe the server's files or code to a stranger. Returns the id."""
    incident = secrets.token_hex(3)
    LOG.exception("page %s failed (incident %s)", page, incident)
    st.error(f"This view failed on an unexpected error (incident {incident} in the server log). "
             "The other pages keep working.")
    return incident


# ================================================================================ uploads

_OWNERS: dict[str, str] = {}  # upload folder → session id (this process only: UPLOAD_ROOT is its own)
_LOCK = threading.Lock()
_SWEPT = [0.0]
SWEEP_EVERY_S = 30.0
_SWEEPER: list[threading.Thread] = []


def upload_quota_bytes() -> int:
    """Bytes one session may keep uploaded: a matrix and a labels file at the upload limit."""
    from dtviz.sources import matrix

    return 2 * matrix.MAX_UPLOAD_BYTES  # read at call time (tests lower it)


class _Guard:
    """Kept in the session's state: when the session is gone (garbage collected), its folder is removed."""

    def __init__(self, folder: str):
        self.folder = folder
        weakref.finalize(self, _drop, folder)


def _drop(folder: str) -> None:
    with _LOCK:
        _OWNERS.pop(folder, None)
    shutil.rmtree(folder, ignore_errors=True)


def _session_id() -> str:
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else "no-session"


def session_upload_dir() -> str:
    """This session's private upload folder (0700, a random name under the server's own temp folder), made on
    first use; it lives as long as the session's state (a finalizer) or the server's record of the session
    (sweep_uploads), whichever ends first."""
    guard = st.session_state.get("_upload_guard")
    if guard is None or not os.path.isdir(guard.folder):
        folder = os.path.join(UPLOAD_ROOT, secrets.token_hex(12))
        os.makedirs(folder, mode=0o700)
        with _LOCK:
            _OWNERS[folder] = _session_id()
        guard = st.session_state["_upload_guard"] = _Guard(folder)
        _start_sweeper()
    return guard.folder


def _start_sweeper() -> None:
    """A daemon thread that sweeps while there are uploads, also when nobody visits."""
    with _LOCK:
        if _SWEEPER:
            return
        _SWEEPER.append(threading.Thread(target=_sweep_forever, name="dtviz-upload-sweeper", daemon=True))
    _SWEEPER[0].start()


def _sweep_forever() -> None:
    while True:
        time.sleep(SWEEP_EVERY_S)
        try:
            sweep_uploads(force=True)
        except Exception:  # noqa: BLE001 — never let the sweeper die on one odd folder
            LOG.exception("sweeping the uploads failed")


def sweep_uploads(force: bool = False) -> list[str]:
    """Remove the upload folders of sessions the server no longer knows (closed, or expired after a
    disconnect); rate-limited. Returns the removed folders."""
    now = time.monotonic()
    if not force and now - _SWEPT[0] < SWEEP_EVERY_S:
        return []
    _SWEPT[0] = now
    try:
        from streamlit.runtime import Runtime

        if not Runtime.exists():
            return []
        manager = Runtime.instance()._session_mgr  # no public accessor in Streamlit 1.67
    except Exception:  # another Streamlit version: the finalizer still removes the folders
        return []
    with _LOCK:
        gone = [folder for folder, sid in _OWNERS.items() if manager.get_session_info(sid) is None]
    for folder in gone:
        LOG.info("removing the uploads of a closed session")
        _drop(folder)
    return gone


def _files(folder: str) -> list[tuple[float, int, str]]:
    found = []
    for base, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(base, name)
            try:
                st_ = os.stat(path)
            except OSError:
                continue
            found.append((st_.st_mtime, st_.st_size, path))
    return sorted(found)


def _make_room(folder: str, size: int) -> None:
    """Delete this session's oldest uploads until ``size`` more bytes fit in its quota."""
    quota = upload_quota_bytes()
    if size > quota:
        raise DtvizInputError(f"uploads are limited to {quota / 2 ** 20:.0f} MB per session, but this file has "
                              f"{size / 2 ** 20:.1f} MB; open larger files by path.")
    files = _files(folder)
    used = sum(s for _, s, _ in files)
    for _, s, path in files:
        if used + size <= quota:
            break
        os.remove(path)
        used -= s
        try:
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass


def save_upload(up) -> str:
    """Write an upload to this session's private folder (never next to the user's files); the path carries
    the content hash, so it doubles as the cache key. Never shown, never part of a link, never opened by
    another session (the upload folder is not served)."""
    from dtviz.sources import matrix

    matrix.check_upload_size(up.name, up.size)  # MAX_UPLOAD_BYTES, read at call time
    sweep_uploads()
    data = up.getvalue()
    digest = hashlib.sha1(data).hexdigest()[:16]
    name = re.sub(r"[^\w.+-]", "_", os.path.basename(up.name)) or "upload.npy"
    folder = session_upload_dir()
    path = os.path.join(folder, digest, name)
    if not os.path.isfile(path):
        _make_room(folder, len(data))
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with open(path + ".part", "wb") as fh:
            fh.write(data)
        os.replace(path + ".part", path)
    os.utime(path)  # in use: the last to make room
    return path


atexit.register(shutil.rmtree, UPLOAD_ROOT, True)

"""``dtviz serve``: launch the dashboard (``streamlit run app.py``) on served roots, bound to 127.0.0.1.

The folder it is started in is the root when no ``--root DIR`` is given; with ``--root`` only those folders are served (dtviz.serving.roots: every path a
visitor names must lie under one). The roots reach the app in ``DTVIZ_ROOTS``; the server runs headless,
with the upload limit of ``dtviz.sources.matrix.MAX_UPLOAD_BYTES``. Streamlit reads ``.streamlit/config.toml``
from the current folder, which need not be the repo, so the repo's options (no traceback for visitors, the
viewer toolbar, …) are passed on the command line too.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

from dtviz.serving.roots import ENV_ROOTS, ServedRoots

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP = os.path.join(REPO, "app.py")
CONFIG = os.path.join(REPO, ".streamlit", "config.toml")
DEFAULT_HOST = "127.0.0.1"  # as TensorBoard since 2.0: other machines only by the owner's explicit choice
DEFAULT_PORT = 8501


def add_serve_parser(sub) -> None:
    p = sub.add_parser("serve", help="launch the dashboard on served folders (default: this folder, 127.0.0.1:8501)",
                       description="Launch the dashboard. Visitors can open only sources under the served folders "
                                   "(each --root, or without one this folder), the built-in models and the local Hugging Face "
                                   "cache. It listens on 127.0.0.1 only unless --host says otherwise; to share it, "
                                   "use an ssh tunnel or a reverse proxy with authentication (see the README).")
    p.add_argument("--root", action="append", default=[], metavar="DIR",
                   help="a folder visitors may open sources from (repeatable); with --root only these are served, "
                        "without it the folder the server is started in")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the whole network)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--base-url", default=None, metavar="URL",
                   help="the dashboard's public address behind your proxy or tunnel (e.g. https://lab.example.org/dtviz): "
                        "the \"Open this view\" link of exported reports points there (default: env DTVIZ_BASE_URL)")


def repo_options(path: str = CONFIG) -> dict[str, str]:
    """``--section.key`` → value of every option in the repo's .streamlit/config.toml."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    with open(path, "rb") as fh:
        config = tomllib.load(fh)
    text = {True: "true", False: "false"}
    return {f"--{section}.{key}": text.get(value, str(value)) if isinstance(value, bool) else str(value)
            for section, values in config.items() for key, value in values.items()}


def serve_command(args: argparse.Namespace, cwd: str | None = None) -> tuple[list[str], dict]:
    """(argv, environment) of the Streamlit server for ``dtviz serve`` ``args`` (DtvizInputError for a bad root)."""
    from dtviz.errors import DtvizInputError
    from dtviz.sources.matrix import MAX_UPLOAD_BYTES

    if not 0 < args.port < 65536:
        raise DtvizInputError(f"--port expects a number from 1 to 65535, but got {args.port}.")
    # --root: only those folders; without one, the folder the server was started in (cmd_serve says which)
    roots = ServedRoots.of(list(args.root) if args.root else [cwd or os.getcwd()])
    options = {**repo_options(),
               "--server.address": args.host, "--server.port": str(args.port), "--server.headless": "true",
               "--server.maxUploadSize": str(MAX_UPLOAD_BYTES // 2 ** 20), "--browser.gatherUsageStats": "false"}
    argv = [sys.executable, "-m", "streamlit", "run", APP, *(x for item in options.items() for x in item)]
    # OpenMP waits passively in the server: two threads stay fast when another job holds a core (device.interactive_threads)
    env = {"OMP_WAIT_POLICY": "PASSIVE", **os.environ, ENV_ROOTS: os.pathsep.join(roots.roots)}
    if getattr(args, "base_url", None):
        from dtviz.report import ENV_BASE_URL, check_base_url

        env[ENV_BASE_URL] = check_base_url(args.base_url)
    return argv, env


def cmd_serve(args: argparse.Namespace) -> int:
    argv, env = serve_command(args)
    roots = env[ENV_ROOTS].split(os.pathsep)
    which = "the --root folder(s)" if args.root else "the folder it was started in (no --root given)"
    print(f"dtviz: serving {which} on http://{args.host}:{args.port} : " + ", ".join(roots), file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"dtviz: warning: --host {args.host} lets every machine that reaches it open the served folders; "
              "prefer an ssh tunnel or a reverse proxy with authentication.", file=sys.stderr)
    if os.name == "posix":  # become the server: signals (Ctrl-C, a kill) reach Streamlit itself, no orphan
        os.execve(argv[0], argv, env)
    try:
        return subprocess.call(argv, env=env)
    except KeyboardInterrupt:
        return 0

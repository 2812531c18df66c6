"""Which files a loader may open. On the command line every file (the user owns the machine); in a dashboard that
serves visitors, only files inside the served folders — the source itself is checked when a link names it
(dtviz.serving.roots), and every further file a loader opens for it (a config.json beside or above it, a labels
file, pipeline parts, a VAE folder) goes through ``allowed`` here, after symlinks are resolved.

The dashboard sets the rule once, process-wide, at start-up (``set_policy``); nothing else does.
"""
from __future__ import annotations

import os
from typing import Callable

from dtviz.errors import DtvizInputError

_POLICY: Callable[[str], bool] | None = None


def set_policy(allows: Callable[[str], bool] | None) -> None:
    """``allows(real_path) -> bool`` for every file or folder a loader opens; None: no restriction (the CLI)."""
    global _POLICY
    _POLICY = allows


def restricted() -> bool:
    return _POLICY is not None


def allowed(path: str) -> bool:
    """True when the file or folder ``path`` (symlinks resolved) may be opened under the current rule."""
    return _POLICY is None or bool(_POLICY(os.path.realpath(os.path.expanduser(str(path)))))


def check_allowed(path: str, what: str) -> str:
    """``path`` itself, or one sentence naming only its base name when it lies outside the served folders."""
    if not allowed(path):
        name = os.path.basename(str(path).rstrip("/\\")) or "?"
        raise DtvizInputError(f"{what} {name!r} lies outside the folders this server serves, so it is not read.")
    return path

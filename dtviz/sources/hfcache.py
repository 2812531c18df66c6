"""Where huggingface_hub keeps downloaded models on this machine (read only: dtviz never downloads)."""
from __future__ import annotations

import os


def hub_cache_dir() -> str:
    """Where huggingface_hub keeps models, read from the environment at call time (its constants are fixed at import).

    HF_HUB_CACHE, else the legacy HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub
    with XDG_CACHE_HOME defaulting to ~/.cache.
    """
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return os.path.expandvars(os.path.expanduser(os.environ[var]))
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    home = os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
    return os.path.join(os.path.expandvars(os.path.expanduser(home)), "hub")

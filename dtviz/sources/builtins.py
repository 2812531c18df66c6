"""The models shipped with dtviz (assets/<name>/): their names, folders and one line each on what they show.

Import-light (no torch): the command line's help and the served-folder rules read it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from dtviz.errors import DtvizInputError

BUILTIN = "builtin"
ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "assets")


@dataclass(frozen=True)
class Builtin:
    """A model shipped with dtviz: its source name, its folder under assets/, what it is in one line (``summary``:
    the picker's caption) and where to read more (``more``, optional: the picker's list adds it in parentheses)."""
    name: str
    folder: str
    summary: str
    more: str = ""

    @property
    def description(self) -> str:
        return f"{self.summary} ({self.more})" if self.more else self.summary

    @property
    def path(self) -> str:
        return os.path.join(ASSETS, self.folder)


# name -> shipped model; the dashboard's source picker lists them in this order.
BUILTINS = {b.name: b for b in (
    Builtin(BUILTIN, "builtin", "the default glyph DiT: width 512, depth 2, 100 classes, label table from zero",
            "what the paper's claims say of it: its Paper claims page"),
    Builtin("builtin-v2", "builtin-v2", "the previous default: width 256, depth 4, 1000 classes, DiT's label init",
            "std 0.02"),
    Builtin("builtin-wide", "builtin-wide", "the first glyph DiT: width 128, 1000 classes, label table initialised "
                                            "wide", "std 0.5"),
)}
BUILTIN_DIR = BUILTINS[BUILTIN].path


def builtin_names(default: bool = True) -> str:
    """The names for a help text: "'builtin' (default), 'builtin-v2', …" (without "(default)" when ``default`` is false)."""
    return ", ".join(repr(n) + (" (default)" if default and n == BUILTIN else "") for n in BUILTINS)


def builtin_dir(name: str = BUILTIN) -> str:
    """The folder of the shipped model ``name`` (a key of BUILTINS)."""
    if name not in BUILTINS:
        raise DtvizInputError(f"expected one of the built-in models {', '.join(map(repr, BUILTINS))}, but got {name!r}.")
    return BUILTINS[name].path

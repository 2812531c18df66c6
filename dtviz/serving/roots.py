"""Served roots: which files a dashboard visitor may open (as TensorBoard's ``--logdir``, Jupyter's ``root_dir``).

A shared link is untrusted input, so every path that reaches the dashboard (``?src=``, the source text box,
``cmp_more``, the dynamics folder) goes through ``ServedRoots.resolve``: the path is resolved (``~``, ``..``,
symlinks: ``os.path.realpath``) and refused unless the real path lies under a served folder and can be read.
The refusal is ONE sentence that is the same whether the file exists or not and names only what the visitor
typed (its base name, for absolute or ``..`` paths) — no existence oracle, no server path.

Always available: the built-in models (the names of ``dtviz.sources.builtins.BUILTINS``;
their folders as ``builtin/snapshots/…``) and ``hf:<org>/<name>`` (the local Hugging Face cache; the loader
checks the repo id). Links name sources relative to their root (``ServedRoots.name``); error text goes
through ``ServedRoots.scrub`` so it shows no absolute path. The CLI (the local user) is not restricted.

``dtviz serve`` passes the roots to the app in the environment variable ``DTVIZ_ROOTS`` (os.pathsep-separated
real paths); without it the folder the server was started in is the one root.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from dtviz.errors import DtvizInputError
from dtviz.sources.builtins import BUILTINS

ENV_ROOTS = "DTVIZ_ROOTS"
SHOWN_MAX = 60  # characters of a refused name that the sentence repeats
LINK_CHECK_MAX = 2000  # entries of a folder source whose symlinks are checked

# An absolute path left in a message after the known prefixes were replaced: keep only its last part.
_ABSOLUTE = re.compile(r"(?<![\w~.>/\\])/(?:[^\s'\"/:,;()]+/)+([^\s'\"/:,;()]*)")


def refusal(text: str) -> str:
    """The one sentence for every refused path: inside or outside, present or not, file or folder."""
    return (f"there is no readable file or folder {_shown(text)!r} inside the folders this server serves; check the "
            "name (it is read relative to each served folder).")


def _shown(text: str) -> str:
    """What the sentence repeats: a plain relative name as typed, else only its base name (never a server path)."""
    text = str(text).strip()
    parts = text.replace("\\", "/").split("/")
    if os.path.isabs(text) or text.startswith("~") or ".." in parts or not text.isprintable():
        text = os.path.basename(text.rstrip("/\\")) or "?"
        text = "".join(ch if ch.isprintable() else "?" for ch in text)
    return text if len(text) <= SHOWN_MAX else text[:SHOWN_MAX - 1] + "…"


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def builtin_roots() -> dict[str, str]:
    """name → real folder of each shipped model (always served, as ``<name>/…``)."""
    return {name: os.path.realpath(b.path) for name, b in BUILTINS.items()}


@dataclass(frozen=True)
class ServedRoots:
    """The folders a dashboard serves. ``roots``: real paths, in order (the first is the default: where the
    server was started); ``excluded``: real folders never served even inside a root (the upload folder)."""
    roots: tuple[str, ...]
    excluded: tuple[str, ...] = ()

    # ---------------------------------------------------------------------------- construction

    @classmethod
    def of(cls, folders, excluded=()) -> "ServedRoots":
        """Roots from folder names given by the server's owner (``dtviz serve --root``); each must be a folder."""
        roots = []
        for folder in folders:
            real = os.path.realpath(os.path.expanduser(str(folder)))
            if not os.path.isdir(real):
                raise DtvizInputError(f"--root expects a folder, but {str(folder)!r} is not one.")
            if real not in roots:
                roots.append(real)
        return cls(tuple(roots), tuple(os.path.realpath(e) for e in excluded))

    @classmethod
    def from_env(cls, environ=None, cwd: str | None = None, excluded=()) -> "ServedRoots":
        """``DTVIZ_ROOTS`` when set (by ``dtviz serve``; folders gone since are dropped, never replaced by the
        current folder), else the current folder."""
        environ = os.environ if environ is None else environ
        listed = [r for r in environ.get(ENV_ROOTS, "").split(os.pathsep) if r]
        if listed:
            folders = [os.path.realpath(r) for r in listed if os.path.isdir(r)]
        else:
            folders = [os.path.realpath(cwd or os.getcwd())]
        return cls(tuple(dict.fromkeys(folders)), tuple(os.path.realpath(e) for e in excluded))

    # ---------------------------------------------------------------------------- policy

    def allows(self, real: str) -> bool:
        """True when the real path ``real`` lies under a root or a built-in model's folder, outside ``excluded``."""
        if any(_inside(real, e) for e in self.excluded):
            return False
        return any(_inside(real, r) for r in (*self.roots, *builtin_roots().values()))

    def resolve(self, source: str) -> str:
        """The source string for ``dtviz.load``: a built-in name or ``hf:…`` unchanged, else the real path of a
        readable file or folder under a root. Anything else: DtvizInputError(refusal(source))."""
        text = str(source).strip()
        if text in BUILTINS or text.startswith("hf:"):
            return text
        if not text or "\x00" in text:
            raise DtvizInputError(refusal(text))
        head, _, rest = text.replace("\\", "/").partition("/")
        builtins = builtin_roots()
        if head in builtins and rest:
            candidates = [os.path.join(builtins[head], rest)]
        else:
            path = os.path.expanduser(text)
            candidates = [path] if os.path.isabs(path) else [os.path.join(r, path) for r in self.roots]
        for candidate in candidates:
            real = os.path.realpath(candidate)
            if (self.allows(real) and os.path.exists(real) and os.access(real, os.R_OK) and self._sidecar_ok(real)
                    and self._links_inside(real)):
                return real
        raise DtvizInputError(refusal(text))

    def _sidecar_ok(self, real: str) -> bool:
        """A matrix's labels file (``<file>.labels.txt``, read by dtviz.sources.matrix) must be served too: a
        symlink there must not turn a served matrix into a reader of any text file."""
        sidecar = real + ".labels.txt"
        return not os.path.lexists(sidecar) or self.allows(os.path.realpath(sidecar))

    def _links_inside(self, real: str) -> bool:
        """A folder source (a pipeline, a model folder, training checkpoints) is read file by file: every symlink
        in it, two levels down, must point inside the served folders too. Huge folders (not a model) are checked
        up to ``LINK_CHECK_MAX`` entries; the loader refuses them anyway."""
        if not os.path.isdir(real):
            return True
        seen = 0
        for base, dirs, files in os.walk(real):
            depth = base[len(real):].count(os.sep)
            for entry in (*dirs, *files):
                path = os.path.join(base, entry)
                if os.path.islink(path) and not self.allows(os.path.realpath(path)):
                    return False
                seen += 1
                if seen >= LINK_CHECK_MAX:
                    return True
            if depth >= 1:
                dirs[:] = []  # the folder and one level below: pipeline parts (transformer/, vae/, …)
        return True

    def resolve_folder(self, source: str, extensions: tuple[str, ...] = ()) -> str:
        """``resolve`` for a folder whose files are read one by one (training checkpoints; ``extensions`` kept
        for callers): a file in it that is a symlink out of the roots refuses the whole folder, same sentence."""
        return self.resolve(source)

    def name(self, source: str) -> str:
        """The name of a source in a link: relative to its root (``builtin/…`` for a shipped model's files).
        A relative name an earlier root would read differently keeps the real path (rare: same names in two
        roots). A path outside every root (an upload): its base name."""
        text = str(source)
        if text in BUILTINS or text.startswith("hf:"):
            return text
        real = os.path.realpath(text)
        for head, root in builtin_roots().items():
            if _inside(real, root):
                rel = os.path.relpath(real, root)
                return head if rel == "." else f"{head}/{rel}"
        for root in self.roots:
            if _inside(real, root):
                rel = os.path.relpath(real, root)
                try:
                    round_trip = self.resolve(rel)
                except DtvizInputError:
                    round_trip = None
                return rel if round_trip == real else real
        return os.path.basename(real.rstrip(os.sep)) or "?"

    # ---------------------------------------------------------------------------- messages

    def scrub(self, text: str, extra: dict[str, str] | None = None) -> str:
        """``text`` with every absolute path made relative to its root (``builtin/…`` for shipped models; the
        Hugging Face cache, ``extra`` prefixes and the home folder by a short placeholder); any other absolute
        path is cut to its last part."""
        prefixes = {root: "" for root in self.roots}
        prefixes.update({root: head + os.sep for head, root in builtin_roots().items()})
        prefixes[_hub_cache()] = "<Hugging Face cache>" + os.sep
        for prefix, label in (extra or {}).items():
            prefixes[os.path.realpath(prefix)] = label + os.sep
            prefixes[prefix] = label + os.sep
        home = os.path.expanduser("~")
        if home not in ("", os.sep):
            prefixes.setdefault(os.path.realpath(home), "~" + os.sep)
            prefixes.setdefault(home, "~" + os.sep)
        out = str(text)
        for prefix in sorted(prefixes, key=len, reverse=True):  # the deepest first (a root inside the home folder)
            if not prefix or prefix == os.sep:
                continue
            base = prefix.rstrip(os.sep)
            out = out.replace(base + os.sep, prefixes[prefix])
            bare = (prefixes[prefix].rstrip(os.sep) or ".").replace("\\", r"\\")  # the folder itself
            out = re.sub(re.escape(base) + r"(?![\w.-])", bare, out)
        return _ABSOLUTE.sub(lambda m: "…/" + m.group(1), out)


def _hub_cache() -> str:
    try:
        from dtviz.sources.hfcache import hub_cache_dir

        return hub_cache_dir()
    except Exception:  # the diffusers adapter is optional
        return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")


__all__ = ["ENV_ROOTS", "ServedRoots", "refusal", "builtin_roots"]

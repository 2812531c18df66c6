"""The prompt picker of the sidebar: the rows of a text-to-image source (SD3, Flux, PixArt, Sana).

A shipped set (dtviz.sources.prompts.PROMPT_SETS), prompts typed in a box, or an uploaded .txt file; the result is what
``dtviz.load`` takes as the pipeline's prompts (a set name, or the path of a private copy in UPLOAD_ROOT named by
its content hash, so it doubles as the cache key). The set and the typed prompts are in the URL; a link's typed
prompts are bounded (URL_MAX_PROMPTS prompts, URL_MAX_CHARS characters) — a link is untrusted input.
"""
from __future__ import annotations

import hashlib
import os

import streamlit as st

from dtviz.errors import DtvizInputError
from dtviz.sources.prompts import DEFAULT_PROMPT_SET, MAX_PROMPT_FILE_BYTES, PROMPT_SETS, parse_prompts
from dtviz_app.constants import UPLOAD_ROOT
from dtviz_app.urlstate import Expected, _notes, bound, choice, url_seed, url_store

MODES = {"set": "shipped set", "text": "type", "upload": "file"}
URL_MAX_PROMPTS = 200
URL_MAX_CHARS = 8000


def is_text_to_image(source: str | None) -> bool:
    """Whether the picked source is a text-to-image pipeline folder (a local folder or an hf: cache entry)."""
    if not source:
        return False
    from dtviz.sources.t2i_pipeline import is_t2i_folder

    if source.startswith("hf:"):
        from dtviz.sources.diffusers_dit import list_cached_pipelines

        repo = source[3:].lower()
        return any(p["repo_id"].lower() == repo and is_t2i_folder(p["path"]) for p in list_cached_pipelines())
    return os.path.isdir(source) and is_t2i_folder(source)


def parse_url_prompts(raw: str) -> str:
    """A link's typed prompts, within the URL bounds (else ignored with a note)."""
    if len(raw) > URL_MAX_CHARS:
        raise Expected(f"at most {URL_MAX_CHARS} characters of prompts")
    prompts = [line for line in raw.splitlines() if line.strip()]
    if len(prompts) > URL_MAX_PROMPTS:
        raise Expected(f"at most {URL_MAX_PROMPTS} prompts")
    return "\n".join(prompts)


def write_prompts(prompts: list[str]) -> str:
    """A private copy of checked prompts, named by content hash (never next to the user's files)."""
    data = ("\n".join(prompts) + "\n").encode("utf-8")
    root = os.path.join(UPLOAD_ROOT, hashlib.sha1(data).hexdigest()[:16])
    path = os.path.join(root, "prompts.txt")
    if not os.path.isfile(path):
        os.makedirs(root, mode=0o700, exist_ok=True)
        with open(path + ".part", "wb") as fh:
            fh.write(data)
        os.replace(path + ".part", path)
    return path


def prompt_picker(source: str | None) -> str | None:
    """Draw the prompt widgets when ``source`` is a text-to-image pipeline; returns its prompts argument (None: not
    one). Bad prompts raise DtvizInputError (one sentence, shown by the sidebar)."""
    if not is_text_to_image(source):
        return None
    mode = bound(st.radio, "pmode", "set", parse=choice(MODES), label="Prompts (the rows)", options=tuple(MODES),
                 format_func=MODES.get, horizontal=True,
                 help="A text-to-image model's rows are prompts: c is formed from each prompt's pooled CLIP "
                      "projection and t.")
    if mode == "set":
        return bound(st.selectbox, "pset", DEFAULT_PROMPT_SET, parse=choice(PROMPT_SETS), label="Prompt set",
                     options=tuple(PROMPT_SETS), format_func=lambda n: f"{n} — {PROMPT_SETS[n][1]}")
    if mode == "text":
        url_seed("ptext", "", parse_url_prompts)
        text = st.text_area("Prompts, one per line", key="ptext", height=140, max_chars=URL_MAX_CHARS,
                            placeholder="a photo of a dog\na watercolor of a lighthouse")
        url_store("ptext", text.strip() or None, None)
        note = _notes().pop("ptext", None)  # a link's prompts over the bounds: ignored, said so (our words only)
        if note:
            st.caption(note)
        if not text.strip():
            st.caption("Type at least one prompt; until then the shipped set "
                       f"'{DEFAULT_PROMPT_SET}' is used.")
            return DEFAULT_PROMPT_SET
        return write_prompts(parse_prompts(text, "the typed prompts"))
    up = st.file_uploader("Prompts file (.txt, one prompt per line)", type=["txt"], key="prompt_upload",
                          max_upload_size=max(1, MAX_PROMPT_FILE_BYTES // 2**20))
    if up is None:
        st.caption(f"Until a file is chosen the shipped set '{DEFAULT_PROMPT_SET}' is used. Uploaded prompts are "
                   "not part of the shareable link.")
        return DEFAULT_PROMPT_SET
    if up.size > MAX_PROMPT_FILE_BYTES:
        raise DtvizInputError(f"expected a prompts file of at most {MAX_PROMPT_FILE_BYTES // 2**20} MB, but the "
                              f"upload has {up.size / 2**20:.1f} MB.")
    try:
        text = up.getvalue().decode("utf-8")
    except UnicodeDecodeError:
        raise DtvizInputError("expected a UTF-8 text file of prompts, but the upload is not one.") from None
    if "\x00" in text:
        raise DtvizInputError("expected a text file of prompts, but the upload holds binary data.")
    return write_prompts(parse_prompts(text, "the uploaded file"))

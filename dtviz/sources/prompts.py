"""Prompts: the rows ("conditions") of a text-to-image source.

A prompt list comes from a text file (one prompt per line, blank lines skipped), from text typed in the
dashboard, or from a shipped set in ``assets/prompts/``:

    imagenet-photo   "a photo of a {class}" over the 1000 ImageNet-1K class names (torchvision's list, in class
                     id order), so a text-to-image row is comparable with a class-conditional one
    varied           50 varied prompts (scenes, styles, objects)

Bounds: at most MAX_PROMPTS prompts of at most MAX_PROMPT_CHARS characters each, and a file of at most
MAX_PROMPT_FILE_BYTES — a shared link or an upload is untrusted input.
"""
from __future__ import annotations

import os

from dtviz.errors import DtvizInputError

PROMPTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "assets", "prompts")
PROMPT_SETS = {
    "imagenet-photo": ("imagenet_photo.txt", '"a photo of a {class}" over the 1000 ImageNet class names'),
    "varied": ("varied.txt", "50 varied prompts"),
}
DEFAULT_PROMPT_SET = "varied"
MAX_PROMPTS = 10_000
MAX_PROMPT_CHARS = 1_000
MAX_PROMPT_FILE_BYTES = 4 * 1024 * 1024


def prompt_set_path(name: str) -> str:
    """The file of a shipped set (PROMPT_SETS)."""
    if name not in PROMPT_SETS:
        raise DtvizInputError(f"expected a shipped prompt set ({', '.join(PROMPT_SETS)}) or a prompts file; got {name!r}.")
    return os.path.join(PROMPTS_DIR, PROMPT_SETS[name][0])


def parse_prompts(text: str, where: str = "the prompts") -> list[str]:
    """One prompt per line (surrounding blanks stripped, empty lines skipped), within the bounds above."""
    prompts = [line.strip() for line in str(text).splitlines() if line.strip()]
    if not prompts:
        raise DtvizInputError(f"expected at least one prompt (one per line) in {where}, but found none.")
    if len(prompts) > MAX_PROMPTS:
        raise DtvizInputError(f"expected at most {MAX_PROMPTS} prompts in {where}, but found {len(prompts)}.")
    long = next((i for i, p in enumerate(prompts) if len(p) > MAX_PROMPT_CHARS), None)
    if long is not None:
        raise DtvizInputError(f"expected prompts of at most {MAX_PROMPT_CHARS} characters in {where}, but prompt "
                              f"{long + 1} has {len(prompts[long])}.")
    return prompts


def read_prompts(path: str) -> list[str]:
    """A prompts file (UTF-8 text, one prompt per line), or the name of a shipped set."""
    path = str(path)
    if path in PROMPT_SETS:
        path = prompt_set_path(path)
    name = os.path.basename(path)
    if not os.path.isfile(path):
        raise DtvizInputError(f"expected a prompts text file (one prompt per line) or one of {', '.join(PROMPT_SETS)}, "
                              f"but {name!r} does not exist.")
    size = os.path.getsize(path)
    if size > MAX_PROMPT_FILE_BYTES:
        raise DtvizInputError(f"expected a prompts file of at most {MAX_PROMPT_FILE_BYTES // (1024 * 1024)} MB, "
                              f"but {name!r} has {size / 2**20:.1f} MB.")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as err:
        raise DtvizInputError(f"expected a UTF-8 text file of prompts, but {name!r} could not be read as one ({type(err).__name__}).") from None
    if "\x00" in text:
        raise DtvizInputError(f"expected a text file of prompts, but {name!r} holds binary data.")
    return parse_prompts(text, repr(name))


def resolve_prompts(prompts) -> list[str]:
    """None → the default shipped set; a list → checked; a str → a file or a shipped set name."""
    if prompts is None:
        return read_prompts(DEFAULT_PROMPT_SET)
    if isinstance(prompts, str):
        return read_prompts(prompts)
    return parse_prompts("\n".join(str(p).replace("\n", " ") for p in prompts), "the prompt list")

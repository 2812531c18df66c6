"""One picture of many samples: tiles upscaled by an integer factor (nearest neighbour, so no pixel is
invented) with each sample's class name under it. ``dtviz sample`` writes it as ``grid.png``.

Rows hold whole classes: with K samples per class a row has K·⌈8/K⌉ tiles (8 for K = 1 or 2, K for
K ≥ 8), so one class never wraps to the next row unless it alone is wider than a row.
"""
from __future__ import annotations

import math
import os

import numpy as np

TARGET_TILE_PX = 128  # default scale: the smallest integer factor giving tiles at least this wide
CAPTION_LINES = 2


# ---------------------------------------------------------------------------------------- layout

def default_scale(height: int) -> int:
    """16 px samples -> 8, 256 px -> 1."""
    return max(1, math.ceil(TARGET_TILE_PX / max(1, height)))


def grid_columns(num_samples: int, per_class: int) -> int:
    """Tiles per row: a multiple of ``per_class`` near 8, never more than the samples."""
    per_class = max(1, per_class)
    return max(1, min(num_samples, per_class * max(1, round(8 / per_class))))


def _font(size: int):
    """DejaVu Sans (shipped with matplotlib: wide Unicode coverage for glyph names), else PIL's default."""
    from PIL import ImageFont

    try:
        import matplotlib

        return ImageFont.truetype(os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf"), size)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size)


def _caption_lines(draw, text: str, font, width: int) -> list[str]:
    """``text`` broken at spaces into at most CAPTION_LINES lines of ``width`` px; the last line holds
    the rest, cut letter by letter with an ellipsis when it does not fit."""
    def fits(s: str) -> bool:
        return draw.textlength(s, font=font) <= width

    words, lines = text.split(), []
    while words and len(lines) < CAPTION_LINES - 1:
        n = 1
        while n < len(words) and fits(" ".join(words[:n + 1])):
            n += 1
        if not fits(words[0]):  # one word wider than the tile: let the last line cut it
            break
        lines.append(" ".join(words[:n]))
        words = words[n:]
    if words:
        last = " ".join(words)
        if not fits(last):
            while len(last) > 1 and not fits(last + "…"):
                last = last[:-1]
            last = last.rstrip() + "…"
        lines.append(last)
    return lines or [""]


# ------------------------------------------------------------------------------------------ grid

def sample_grid(images: np.ndarray, labels, class_names, scale: int | None = None, per_class: int = 1):
    """(N, H, W, C) uint8 or [0, 1] samples -> one PIL RGB image: tiles upscaled ×``scale`` (nearest),
    each captioned with ``class_names[label]``. ``scale`` None = default_scale(H)."""
    from PIL import Image, ImageDraw

    from dtviz.errors import DtvizInputError
    from dtviz.sampling.generate import to_uint8

    images = np.asarray(images)
    if images.dtype != np.uint8:
        images = to_uint8(images)
    n, h, w = images.shape[:3]
    scale = default_scale(h) if scale is None else int(scale)
    if scale < 1:
        raise DtvizInputError(f"--scale must be a whole number >= 1; got {scale}.")
    tile_w, tile_h = w * scale, h * scale
    font = _font(max(10, min(16, tile_w // 9)))
    line_h = int(font.size * 1.25)
    gap = max(2, scale)
    cols = grid_columns(n, per_class)
    rows = max(1, math.ceil(n / cols))
    cell_w, cell_h = tile_w + gap, tile_h + CAPTION_LINES * line_h + 2 * gap
    canvas = Image.new("RGB", (cols * cell_w + gap, rows * cell_h + gap), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (img, label) in enumerate(zip(images, labels)):
        x, y = gap + (i % cols) * cell_w, gap + (i // cols) * cell_h
        tile = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).convert("RGB")
        canvas.paste(tile.resize((tile_w, tile_h), Image.NEAREST), (x, y))
        for j, line in enumerate(_caption_lines(draw, str(class_names[int(label)]), font, tile_w)):
            draw.text((x, y + tile_h + gap + j * line_h), line, fill="black", font=font)
    return canvas

"""Glyph classes rendered from the DejaVu fonts that matplotlib ships: the built-in model's data.

Nothing can be downloaded here, so the training set is made from what installed packages carry.
A class is one Unicode character; a sample is that character drawn in a random DejaVu face with
random scale, shift and a small rotation, anti-aliased down to ``size``×``size`` in [0, 1].
Classes are picked greedily so that no two canonical renderings are closer than ``min_distance``
(which drops look-alikes such as Latin O / Greek Ο / Cyrillic О).
"""
from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass

import numpy as np

# Faces used for jitter; all classes must exist in every one of them.
FACES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSans-Oblique.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
    "DejaVuSansMono.ttf",
)
_CATEGORIES = ("Lu", "Ll", "Lo", "Nd", "No", "Sm", "So", "Sc", "Po")
_RENDER = 64  # drawn at 4x then box-filtered down, for anti-aliasing


def font_dir() -> str:
    import matplotlib

    return os.path.join(matplotlib.get_data_path(), "fonts", "ttf")


def class_name(codepoint: int) -> str:
    """'A  U+0041  LATIN CAPITAL LETTER A' — what the class is, for hovers and tables."""
    ch = chr(codepoint)
    return f"{ch}  U+{codepoint:04X}  {unicodedata.name(ch, 'UNNAMED')}"


@dataclass
class GlyphRenderer:
    size: int = 16

    def __post_init__(self):
        from PIL import ImageFont

        self._fonts = [ImageFont.truetype(os.path.join(font_dir(), f), _RENDER * 3 // 4) for f in FACES]

    def render(self, codepoint: int, face: int = 0, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0,
               angle: float = 0.0) -> np.ndarray:
        """One glyph, (size, size) float32 in [0, 1], centred on its ink box, scaled to fit."""
        from PIL import Image, ImageDraw

        font = self._fonts[face]
        canvas = Image.new("L", (_RENDER * 2, _RENDER * 2), 0)
        draw = ImageDraw.Draw(canvas)
        ch = chr(codepoint)
        left, top, right, bottom = draw.textbbox((0, 0), ch, font=font)
        w, h = max(right - left, 1), max(bottom - top, 1)
        draw.text((_RENDER - left - w / 2, _RENDER - top - h / 2), ch, fill=255, font=font)
        if angle:
            canvas = canvas.rotate(angle, resample=Image.BILINEAR, center=(_RENDER, _RENDER))
        # One scale for all glyphs (capitals fill ~75% of the frame, so case stays visible), shrunk
        # only where a wide glyph would not fit; then the jitter scale and shift.
        fit = min(1.35, 0.9 * _RENDER / max(w, h)) * scale
        side = int(round(_RENDER / fit))
        cx, cy = _RENDER - dx * side / self.size, _RENDER - dy * side / self.size
        box = (int(cx - side / 2), int(cy - side / 2), int(cx - side / 2) + side, int(cy - side / 2) + side)
        img = canvas.crop(box).resize((self.size, self.size), Image.BOX)
        return np.asarray(img, dtype=np.float32) / 255.0


def candidate_codepoints() -> list[int]:
    """Code points drawn by every face in FACES, of visible categories, ASCII alphanumerics first."""
    from fontTools.ttLib import TTFont

    common = None
    for face in FACES:
        cmap = set(TTFont(os.path.join(font_dir(), face), lazy=True).getBestCmap())
        common = cmap if common is None else common & cmap
    cps = [cp for cp in common if cp > 32 and unicodedata.category(chr(cp)) in _CATEGORIES]
    ascii_alnum = [cp for cp in cps if chr(cp).isascii() and chr(cp).isalnum()]
    rest = [cp for cp in sorted(cps) if cp not in set(ascii_alnum)]
    return sorted(ascii_alnum) + rest


def select_classes(num_classes: int, size: int = 16, min_distance: float = 3.0, min_ink: float = 0.06) -> list[int]:
    """Greedy pick of ``num_classes`` glyphs whose canonical renderings differ by >= min_distance (L2)."""
    renderer = GlyphRenderer(size)
    chosen: list[int] = []
    kept = np.zeros((0, size * size), dtype=np.float32)
    for cp in candidate_codepoints():
        img = renderer.render(cp).reshape(-1)
        if img.mean() < min_ink:  # dots and hairlines are not recognisable at 16 px
            continue
        if len(kept) and np.sqrt(((kept - img) ** 2).sum(1)).min() < min_distance:
            continue
        chosen.append(cp)
        kept = np.concatenate([kept, img[None]])
        if len(chosen) == num_classes:
            return chosen
    raise ValueError(f"only {len(chosen)} distinct glyphs found, {num_classes} requested")


def render_dataset(codepoints: list[int], per_class: int, size: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(N, 1, size, size) images in [0, 1] and (N,) labels; jitter drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    renderer = GlyphRenderer(size)
    images = np.empty((len(codepoints) * per_class, 1, size, size), dtype=np.float32)
    labels = np.repeat(np.arange(len(codepoints)), per_class)
    for i, label in enumerate(labels):
        images[i, 0] = renderer.render(
            codepoints[label],
            face=int(rng.integers(len(FACES))),
            scale=float(rng.uniform(0.8, 1.1)),
            dx=float(rng.uniform(-1.0, 1.0)),
            dy=float(rng.uniform(-1.0, 1.0)),
            angle=float(rng.uniform(-10, 10)),
        )
    return images, labels

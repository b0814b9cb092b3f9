"""Render a text line as ink coverage (float32 in [0, 1], 1 = ink) at the HR size."""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .corpus import find_fonts, load_words, random_text


@functools.lru_cache(maxsize=2048)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _font_for_height(path: str, text_height: float) -> ImageFont.FreeTypeFont:
    """The font at ``path`` whose ascent + descent is about ``text_height`` pixels."""
    ref = _font(path, 100)
    asc, desc = ref.getmetrics()
    size = max(6, int(round(100 * text_height / max(asc + desc, 1))))
    return _font(path, size)


def render_line(
    rng: np.random.Generator,
    height: int,
    min_width: int,
    *,
    fill: tuple[float, float] = (0.55, 0.95),
    max_angle: float = 1.5,
    neighbour_prob: float = 0.15,
    fonts: tuple[str, ...] | None = None,
    words: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Ink coverage ``(height, W)`` of one random line, ``W >= min_width``.

    The font's ascent + descent fills a random fraction ``fill`` of ``height`` at a random
    vertical offset (crops hold some margin); with ``neighbour_prob`` strokes of the
    lines above or below show at the border (as in loosely cut real crops); the line is
    rotated by up to ``max_angle`` degrees. Words are added until the text is at least
    ``min_width`` wide.
    """
    fonts = fonts or find_fonts()
    words = words or load_words()
    path = fonts[int(rng.integers(len(fonts)))]
    text_h = height * rng.uniform(*fill)
    font = _font_for_height(path, text_h)
    asc, desc = font.getmetrics()
    text = random_text(rng, int(rng.integers(2, 6)), words)
    width = font.getlength(text)
    while width < min_width:
        text += " " + random_text(rng, int(rng.integers(1, 4)), words)
        width = font.getlength(text)
    margin_x = int(rng.integers(0, max(2, height // 2)))
    canvas_w = max(min_width, int(np.ceil(width)) + 2 * margin_x)
    img = Image.new("L", (canvas_w, height), 0)
    draw = ImageDraw.Draw(img)
    slack = height - (asc + desc)
    y = rng.uniform(min(0.0, slack), max(0.0, slack)) if slack else 0.0
    draw.text((margin_x, y), text, font=font, fill=255)
    if rng.random() < neighbour_prob:
        pitch = (asc + desc) * rng.uniform(1.05, 1.4)
        other = random_text(rng, int(rng.integers(3, 8)), words)
        draw.text((margin_x + rng.uniform(-20, 20), y + (pitch if rng.random() < 0.5 else -pitch)),
                  other, font=font, fill=255)
    if max_angle > 0:
        img = img.rotate(float(rng.uniform(-max_angle, max_angle)), resample=Image.Resampling.BICUBIC,
                         fillcolor=0)
    return np.asarray(img, dtype=np.float32) / 255.0

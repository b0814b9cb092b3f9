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


def _fit(font: ImageFont.FreeTypeFont, text: str, width: float) -> str:
    """The longest prefix of ``text`` (trailing spaces dropped) no wider than ``width``."""
    lo, hi = 0, len(text)
    while lo < hi:  # font.getlength grows with the prefix length
        mid = (lo + hi + 1) // 2
        if font.getlength(text[:mid]) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip()


def render_text_line(
    rng: np.random.Generator,
    height: int,
    width: int,
    *,
    fill: tuple[float, float] = (0.55, 0.95),
    max_angle: float = 1.0,
    neighbour_prob: float = 0.15,
    short_prob: float = 0.3,
    fonts: tuple[str, ...] | None = None,
    words: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, str]:
    """Ink coverage ``(height, width)`` of one whole random line and its exact text (generator v2).

    Unlike :func:`render_line` nothing of the line is cut off at the sides: the text
    (:func:`~preproc.train.corpus.random_line_text`) is truncated to what fits inside
    the canvas, so the returned text is exactly what is visible - what a recognition
    (CTC) loss needs. With ``short_prob`` the line takes only 30-100 % of the width (lines
    of varied length); strokes of a neighbouring line may show at the top or bottom
    (``neighbour_prob``; not part of the text); rotation up to ``max_angle`` degrees.
    """
    from .corpus import FONT_DIRS_V2, random_line_text

    fonts = fonts or find_fonts(FONT_DIRS_V2)
    words = words or load_words()
    path = fonts[int(rng.integers(len(fonts)))]
    font = _font_for_height(path, height * rng.uniform(*fill))
    asc, desc = font.getmetrics()
    margin_x = int(rng.integers(1, max(2, height // 4)))
    avail = width - 2 * margin_x
    if rng.random() < short_prob:
        avail *= rng.uniform(0.3, 1.0)
    text = ""
    for _ in range(4):
        line = random_line_text(rng, words)
        while font.getlength(line) < avail:
            line += " " + random_line_text(rng, words)
        text = _fit(font, line, avail)
        if text:
            break
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    slack = width - 2 * margin_x - font.getlength(text)
    x = margin_x + rng.uniform(0, max(0.0, slack))
    vslack = height - (asc + desc)
    y = rng.uniform(min(0.0, vslack), max(0.0, vslack)) if vslack else 0.0
    draw.text((x, y), text, font=font, fill=255)
    if rng.random() < neighbour_prob:
        pitch = (asc + desc) * rng.uniform(1.05, 1.4)
        other = random_line_text(rng, words)
        draw.text((rng.uniform(-20, 20), y + (pitch if rng.random() < 0.5 else -pitch)), other, font=font, fill=255)
    if max_angle > 0:
        img = img.rotate(float(rng.uniform(-max_angle, max_angle)), resample=Image.Resampling.BICUBIC, fillcolor=0)
    return np.asarray(img, dtype=np.float32) / 255.0, text

"""Line isolation: remove strokes of neighbouring lines from an enhanced single-line crop.

Line crops cut from a page (receipts, forms, book lines) often catch the descenders of
the line above or the ascenders of the line below at their top or bottom edge. In the
crop as it is these fragments are faint and small, and Tesseract ignores them; after a
text super-resolution model has restored them to full-contrast black strokes at 2-4x the
size, Tesseract's single-line mode takes them for part of the line and often returns
nothing at all (measured in docs/results.md, "Line isolation").

The rule is structural, with no learned threshold: on the ink mask (Otsu, ink the
minority polarity, as the gate measures it) the *main band* is the run of inked rows
holding the most ink, and its *body* the rows of that band with at least half its peak
row count (the x-height body of the gate). A connected ink component is a fragment and
is painted with the background when it

* touches the top or the bottom edge of the crop, does not reach into the body rows, and
  is at most half as tall as the main band; or
* lies in another band of inked rows that is nearer the crop's edge than the main band
  (the neighbours' strokes, separated from the line by the line gap).

Letters always reach into the body (ascenders and descenders are attached to it), so a
line's own text is never removed; i-dots, accents and quotes sit nearer the line than the
crop's edge unless the crop is cut tightly through them. Crops with more than one line (a second band
at least half as tall as the main one) are left as they are.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from .gate import ink_bands, ink_mask
from .io import to_gray


def _find(gray: np.ndarray, ink: np.ndarray | None) -> tuple[np.ndarray | None, dict[str, Any]]:
    """:func:`find_fragments` on a grey image and its ink mask."""
    if ink is None:
        return None, {"fragments": 0, "reason": "no contrast"}
    profile = ink.sum(axis=1).astype(np.float64)
    if profile.max() <= 0:
        return None, {"fragments": 0, "reason": "no ink"}
    bands = ink_bands(profile)
    if not bands:
        return None, {"fragments": 0, "reason": "no ink band"}
    main = max(bands, key=lambda ab: profile[ab[0]:ab[1]].sum())
    main_h = main[1] - main[0]
    others = [b for b in bands if b != main and (b[1] - b[0]) >= 0.5 * main_h]
    if others:
        return None, {"fragments": 0, "reason": f"{len(others) + 1} text lines"}
    p = profile[main[0]:main[1]]
    body = np.flatnonzero(p >= 0.5 * p.max()) + main[0]
    body_top, body_bottom = int(body.min()), int(body.max()) + 1
    h = gray.shape[0]
    # Bands apart from the line, nearer the crop's edge than the line: the neighbours' strokes
    # (i-dots and accents of a line without ascenders sit nearer the line than the edge).
    outside = [(a, b) for a, b in bands if (b <= main[0] and a < main[0] - b) or (a >= main[1] and h - b < a - main[1])]
    n, labels, stats, _ = cv2.connectedComponentsWithStats(ink.astype(np.uint8), connectivity=8)
    drop = []
    for i in range(1, n):
        top, height = int(stats[i, cv2.CC_STAT_TOP]), int(stats[i, cv2.CC_STAT_HEIGHT])
        bottom = top + height
        at_edge = top == 0 or bottom == h
        in_body = top < body_bottom and bottom > body_top
        in_outside_band = any(a <= top and bottom <= b for a, b in outside)
        if (at_edge and not in_body and height <= 0.5 * main_h) or in_outside_band:
            drop.append(i)
    if not drop:
        return None, {"fragments": 0, "reason": "none found"}
    return np.isin(labels, drop), {"fragments": len(drop)}


def find_fragments(image: np.ndarray) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The mask of neighbouring-line fragments of an ``(H, W, 3)`` or ``(H, W)`` float crop.

    Returns ``(mask or None, info)``; ``info`` says what was found (``fragments``, and
    ``reason`` when nothing is removed).
    """
    gray = to_gray(image) if image.ndim == 3 else image
    return _find(gray, ink_mask(gray))


def remove_fragments(image: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """``image`` with neighbouring-line fragments painted with the background level.

    ``image``: ``(H, W, 3)`` float32 in [0, 1]. The background level is the median of the
    non-ink pixels. Returns the image (the same object when nothing was removed) and the
    ``info`` of :func:`find_fragments`.
    """
    gray = to_gray(image)
    ink = ink_mask(gray)
    mask, info = _find(gray, ink)
    if mask is None:
        return image, info
    background = np.median(image[~ink], axis=0) if (~ink).any() else np.ones(3, np.float32)
    # Grow the mask by one pixel: the anti-aliased rim of a stroke is below the threshold.
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    grown &= ~(ink & ~mask)  # never touch another component's ink
    out = image.copy()
    out[grown] = background
    return out, info

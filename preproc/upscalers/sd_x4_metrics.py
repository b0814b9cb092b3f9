"""Measures for tiled upscaling: seam energy along tile borders, and a smooth test image.

Used by the SD x4 tests and ``benchmarks/sd_x4_tiling.py --quality``; they apply to any
tiled upscaler.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..tiling import TileBox


def border_energy_ratio(image: np.ndarray, boxes: Sequence[TileBox], scale: int = 4) -> tuple[float, float]:
    """Squared gradient across tile borders over its mean everywhere, per axis ``(x, y)``.

    ``image`` is the ``(H*scale, W*scale, C)`` output; ``boxes`` the tile plan in input
    pixels. A border is every interior tile edge (the start of a tile after the first,
    the end of a tile before the last). 1 means borders look like the rest of the image;
    a hard seam raises it. Compare with the untiled output at the same lines, which has
    the model's own structure there.
    """
    h, w = image.shape[0] // scale, image.shape[1] // scale
    xs = sorted({b.x0 * scale for b in boxes if b.x0 > 0} | {b.x1 * scale for b in boxes if b.x1 < w})
    ys = sorted({b.y0 * scale for b in boxes if b.y0 > 0} | {b.y1 * scale for b in boxes if b.y1 < h})
    img = image.astype(np.float64)
    if img.ndim == 2:
        img = img[..., None]
    gx = (np.diff(img, axis=1) ** 2).sum(-1)  # gx[:, c - 1]: between columns c - 1 and c
    gy = (np.diff(img, axis=0) ** 2).sum(-1)
    rx = float(np.mean([gx[:, c - 1].mean() for c in xs]) / gx.mean()) if xs else 1.0
    ry = float(np.mean([gy[r - 1].mean() for r in ys]) / gy.mean()) if ys else 1.0
    return rx, ry


def smooth_image(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth colour test image ``(height, width, 3)`` float32 in [0.1, 0.9] (sines)."""
    yy, xx = np.mgrid[0:height, 0:width] / 48.0
    return np.stack(
        [0.5 + 0.4 * np.sin(3 * xx), 0.5 + 0.4 * np.cos(2 * yy), 0.5 + 0.3 * np.sin(2 * xx + yy)], -1
    ).astype(np.float32)

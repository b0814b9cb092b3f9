"""The seam measure used by the SD x4 tests: it must see a seam where there is one."""

from __future__ import annotations

import numpy as np

from preproc.tiling import plan_tiles
from preproc.upscalers.sd_x4_metrics import border_energy_ratio, smooth_image


def test_a_pasted_offset_at_the_tile_border_is_seen_and_a_smooth_image_is_not():
    boxes = plan_tiles(48, 64, 32, 8, 8, 8)  # 2 x 3 tiles, borders at x 16, 32, 48 and y 16, 32
    rng = np.random.default_rng(0)
    img = np.repeat(np.repeat(smooth_image(), 4, 0), 4, 1) + 0.01 * rng.standard_normal((192, 256, 3))
    rx, ry = border_energy_ratio(img, boxes)
    assert 0.5 < rx < 1.5 and 0.5 < ry < 1.5
    seamed = img.copy()
    seamed[:, 32 * 4 :] += 0.05  # a brightness step where the second tile column starts
    sx, sy = border_energy_ratio(seamed, boxes)
    assert sx > 2 * rx and abs(sy - ry) < 0.05


def test_one_tile_has_no_border():
    assert border_energy_ratio(np.zeros((32, 32, 3)), plan_tiles(8, 8, 8, 0, 8, 8)) == (1.0, 1.0)

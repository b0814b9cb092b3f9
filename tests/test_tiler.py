"""The two proofs of the tiling adapter, plus padding, batching and out-of-memory retry.

(1) Shift-equivariance: bicubic is shift-equivariant at integer scale, so tiled output
    must equal one-shot output except where a tile's own border (clamped by bicubic)
    leaks in through the small blend weights near the tile edge. Bound: 1/255.
(2) No seams: a backend that adds a different constant to each tile. With a smooth
    blend the largest jump between neighbouring output pixels is at most the constants'
    spread times the largest step of the ramp, ``spread * pi / (2 * r)`` for a cosine
    ramp over ``r = overlap * scale`` output pixels (``0.5 * (cos a - cos b) <= 0.5 * pi / r``);
    hard pasting shows the full step between constants.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from preproc.upscalers import SizeRequirements, TiledUpscaler, Upscaler
from preproc.upscalers.classic import BicubicUpscaler

RNG = np.random.default_rng(1)


def smooth_image(h: int, w: int) -> np.ndarray:
    """A natural-ish test image: random noise blurred, plus some edges."""
    x = torch.from_numpy(RNG.random((1, 3, h, w), dtype=np.float32))
    x = F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
    img = x[0].permute(1, 2, 0).numpy().copy()
    img[h // 3 : h // 2, :, :] *= 0.3  # a dark band with hard edges
    return np.ascontiguousarray(img)


def test_bicubic_tiled_equals_one_shot():
    img = smooth_image(90, 130)
    up = BicubicUpscaler(scale=4)
    whole, info1 = TiledUpscaler(up, tile=None).run(img)
    tiled, info = TiledUpscaler(up, tile=40, overlap=8, batch_size=3).run(img)
    assert info1.tiles == 1 and info.tiles > 4
    assert tiled.shape == whole.shape == (360, 520, 3)
    diff = np.abs(tiled - whole)
    assert diff.max() <= 1 / 255, diff.max()
    # and away from tile borders it is exact to float precision
    assert np.median(diff) < 1e-6


class ConstantPerTile(Upscaler):
    """Nearest x4 plus a constant that differs from tile to tile (a worst-case seam maker)."""

    name = "constant-per-tile"
    scale = 4

    def __init__(self):
        super().__init__(device="cpu")
        self.calls = 0

    def upscale(self, batch: torch.Tensor) -> torch.Tensor:
        out = F.interpolate(batch.float(), scale_factor=4, mode="nearest")
        for i in range(out.shape[0]):
            out[i] += 0.1 * (self.calls % 5)
            self.calls += 1
        return out


def max_neighbour_step(img: np.ndarray) -> float:
    return float(max(np.abs(np.diff(img, axis=0)).max(), np.abs(np.diff(img, axis=1)).max()))


@pytest.mark.parametrize("overlap", [4, 8])
def test_no_seams_with_smooth_blend_but_steps_with_paste(overlap):
    img = np.full((70, 100, 3), 0.3, dtype=np.float32)  # flat: every step comes from a seam
    spread = 0.4  # constants 0.0 .. 0.4
    r = overlap * 4
    bound = spread * math.pi / (2 * r)
    blended, info = TiledUpscaler(ConstantPerTile(), tile=32, overlap=overlap, blend="cosine").run(img)
    assert info.tiles >= 9
    assert max_neighbour_step(blended) <= bound + 1e-6, (max_neighbour_step(blended), bound)
    pasted, _ = TiledUpscaler(ConstantPerTile(), tile=32, overlap=overlap, blend="none").run(img)
    assert max_neighbour_step(pasted) >= 0.1 - 1e-6  # the full step between neighbouring constants


def test_linear_blend_bound():
    img = np.full((64, 64, 3), 0.3, dtype=np.float32)
    out, _ = TiledUpscaler(ConstantPerTile(), tile=24, overlap=6, blend="linear").run(img)
    assert max_neighbour_step(out) <= 0.4 / (6 * 4) + 1e-6


class NeedsMultiple(Upscaler):
    """Nearest x2 that refuses sizes below 16 or not multiple of 8, like a UNet would."""

    name = "needs-multiple"
    scale = 2
    size_requirements = SizeRequirements(minimum=16, multiple_of=8)

    def __init__(self):
        super().__init__(device="cpu")
        self.seen: list[tuple[int, int]] = []

    def upscale(self, batch):
        h, w = batch.shape[-2:]
        assert h >= 16 and w >= 16 and h % 8 == 0 and w % 8 == 0, (h, w)
        self.seen.append((h, w))
        return F.interpolate(batch.float(), scale_factor=2, mode="nearest")


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (17, 9), (40, 33)])
def test_small_or_odd_crops_are_padded_and_cropped_back(shape):
    img = RNG.random(shape + (3,), dtype=np.float32)
    up = NeedsMultiple()
    out, info = TiledUpscaler(up, tile=24, overlap=4).run(img)
    assert out.shape == (shape[0] * 2, shape[1] * 2, 3)
    np.testing.assert_allclose(out[::2, ::2], img, atol=1e-6)  # nearest: the input comes back
    assert up.seen


class OOMOnBigBatches(Upscaler):
    """Raises an out-of-memory error for batches larger than one tile of 16 px."""

    name = "oom"
    scale = 2

    def __init__(self):
        super().__init__(device="cpu")
        self.failures = 0

    def upscale(self, batch):
        if batch.shape[0] > 1 or batch.shape[-1] > 16:
            self.failures += 1
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return F.interpolate(batch.float(), scale_factor=2, mode="nearest")


def test_out_of_memory_halves_batch_then_tile(caplog):
    img = RNG.random((40, 40, 3), dtype=np.float32)
    up = OOMOnBigBatches()
    out, info = TiledUpscaler(up, tile=32, overlap=4, batch_size=4).run(img)
    assert out.shape == (80, 80, 3)
    np.testing.assert_allclose(out[::2, ::2], img, atol=1e-6)
    assert info.batch_size == 1 and info.tile <= 16 and up.failures >= 3
    assert "out of memory" in caplog.text


def test_other_errors_are_not_swallowed():
    class Broken(Upscaler):
        name = "broken"

        def upscale(self, batch):
            raise ValueError("model exploded")

    with pytest.raises(ValueError, match="exploded"):
        TiledUpscaler(Broken(device="cpu"), tile=16, overlap=4).run(np.zeros((40, 40, 3), np.float32))

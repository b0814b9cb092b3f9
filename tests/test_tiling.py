"""Property tests of the tile planner, blend weights and accumulator (pure geometry)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from preproc.errors import ConfigError
from preproc.tiling import (
    BlendAccumulator,
    axis_weights,
    effective_tile,
    grid_shape,
    padded_length,
    plan_axis,
    plan_tiles,
    ramp,
    tile_weights,
)


@st.composite
def axis_cases(draw):
    m = draw(st.sampled_from([1, 1, 2, 4, 8]))
    minimum = draw(st.integers(1, 16))
    length = padded_length(draw(st.integers(1, 700)), m, minimum)
    tile = draw(st.integers(max(minimum, m), 300))
    t = effective_tile(tile, m, minimum)
    overlap = draw(st.integers(0, max(0, t - 1)))
    ov = -(-overlap // m) * m
    assume(ov < t)
    return length, tile, overlap, m, minimum


@settings(max_examples=400, deadline=None)
@given(axis_cases())
def test_plan_axis_properties(case):
    length, tile, overlap, m, minimum = case
    spans = plan_axis(length, tile, overlap, m, minimum)
    t = effective_tile(tile, m, minimum)
    # inside the image, sizes and starts multiples as required, one size for all
    for s in spans:
        assert 0 <= s.start < s.stop <= length
        assert s.start % m == 0 and s.size % m == 0 and s.size >= min(minimum, length)
    assert len({s.size for s in spans}) == 1
    # full coverage
    assert spans[0].start == 0 and spans[-1].stop == length
    for a, b in zip(spans, spans[1:]):
        assert b.start <= a.stop, "gap between tiles"
        # overlaps at least the requested one, and recorded consistently
        assert a.stop - b.start >= overlap
        assert a.overlap_after == b.overlap_before == a.stop - b.start
    assert spans[0].overlap_before == 0 and spans[-1].overlap_after == 0
    # minimal count per axis
    if length <= t:
        assert len(spans) == 1
    else:
        ov = -(-overlap // m) * m
        n = len(spans)
        assert n == math.ceil((length // m - ov // m) / (t // m - ov // m))
        assert (n - 1) * t - (n - 2) * ov < length, "one tile fewer would also cover"
    # evenly spread: the overlaps differ by at most one multiple
    ovs = [a.stop - b.start for a, b in zip(spans, spans[1:])]
    if ovs:
        assert max(ovs) - min(ovs) <= m


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 300), st.integers(1, 300), st.integers(8, 128), st.integers(0, 7))
def test_plan_tiles_cover_every_pixel(h, w, tile, overlap):
    boxes = plan_tiles(h, w, tile, overlap)
    cover = np.zeros((h, w), dtype=int)
    for b in boxes:
        cover[b.y0 : b.y1, b.x0 : b.x1] += 1
    assert cover.min() >= 1
    rows, cols = grid_shape(boxes)
    assert rows * cols == len(boxes)


@settings(max_examples=60, deadline=None)
@given(st.integers(20, 200), st.integers(20, 200), st.integers(16, 64), st.integers(0, 7),
       st.sampled_from(["cosine", "linear", "gaussian"]), st.floats(0.0, 1.0, width=32, allow_subnormal=False), st.sampled_from([1, 2, 4]))
def test_constant_tiles_reproduce_constant_exactly(h, w, tile, overlap, kind, c, scale):
    boxes = plan_tiles(h, w, tile, overlap)
    acc = BlendAccumulator((3, h * scale, w * scale))
    const = np.float32(c)
    for b in boxes:
        sb = b.scaled(scale)
        acc.add(np.full((3, sb.height, sb.width), const, np.float32), sb, tile_weights(b, kind, scale))
    out = acc.result()
    assert out.dtype == np.float32
    assert np.all(out == const)


def test_constant_exact_with_torch():
    boxes = plan_tiles(50, 70, 24, 6)
    acc = BlendAccumulator((3, 50, 70), like=torch.zeros(1))
    for b in boxes:
        acc.add(torch.full((3, b.height, b.width), 0.3), b, tile_weights(b, "cosine"))
    out = acc.result()
    assert out.dtype == torch.float32 and bool((out == torch.tensor(0.3)).all())


@pytest.mark.parametrize("kind", ["cosine", "linear"])
@pytest.mark.parametrize("n", [1, 2, 5, 16, 33])
def test_ramp_is_positive_and_complementary(kind, n):
    r = ramp(n, kind)
    assert r.shape == (n,) and (r > 0).all() and (r < 1).all()
    np.testing.assert_allclose(r + r[::-1], 1.0, atol=1e-12)
    assert (np.diff(r) > 0).all()


@settings(max_examples=100, deadline=None)
@given(st.integers(10, 400), st.integers(8, 100), st.integers(0, 30), st.sampled_from(["cosine", "linear", "gaussian"]))
def test_weights_positive_and_partition_of_unity(length, tile, overlap, kind):
    assume(overlap < tile)
    spans = plan_axis(length, tile, overlap)
    total = np.zeros(length)
    for s in spans:
        w = axis_weights(s, kind)
        assert (w > 0).all()
        total[s.start : s.stop] += w
    if kind != "gaussian" and all(s.overlap_before + s.overlap_after <= s.size for s in spans):
        # ramps cover exactly the actual overlaps, so the weights sum to 1 everywhere
        # (when a tile's two ramps would collide, the accumulator's normalisation takes over)
        np.testing.assert_allclose(total, 1.0, atol=1e-9)


def test_plan_errors_name_the_values():
    with pytest.raises(ConfigError, match="overlap 40 .* smaller than the tile 32"):
        plan_axis(100, 32, 40)
    with pytest.raises(ConfigError, match="pad it to 104"):
        plan_axis(101, 32, 4, multiple_of=8)
    with pytest.raises(ConfigError, match="tile must be >= 1"):
        plan_axis(10, 0, 0)
    with pytest.raises(ConfigError, match="blend must be one of"):
        tile_weights(plan_tiles(10, 10, 10, 0)[0], "hann")  # type: ignore[arg-type]

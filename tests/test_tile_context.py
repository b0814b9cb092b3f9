"""Tiles that see their surroundings: a context margin the model sees and the blender discards."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

import preproc
from preproc.errors import ConfigError
from preproc.tiling import plan_axis
from preproc.upscalers import TiledUpscaler, create_upscaler, upscaler_class
from preproc.upscalers.realesrgan import ESRGAN_CONTEXT, weights_available
from preproc.upscalers.tiled import context_window

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def scene(w: int = 120, h: int = 90, seed: int = 0) -> np.ndarray:
    """A deterministic test picture: text, outlines and mild noise (every tile has structure)."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (w, h), (200, 190, 170))
    d = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 14)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, max(1, w - 30))), int(rng.integers(0, max(1, h - 30)))
        d.ellipse([x0, y0, x0 + int(rng.integers(10, 40)), y0 + int(rng.integers(10, 40))],
                  outline=tuple(int(v) for v in rng.integers(0, 255, 3)), width=2)
    d.text((5, 10), "Tiles see", font=font, fill=(20, 20, 20))
    d.text((8, 50), "context 48", font=font, fill=(120, 10, 10))
    a = np.asarray(img, np.float32) / 255.0
    return np.clip(a + rng.normal(0, 0.03, a.shape).astype(np.float32), 0, 1)


# --- the window geometry -----------------------------------------------------------------
@given(length=st.integers(8, 400), tile=st.integers(8, 120), overlap=st.integers(0, 3), context=st.integers(0, 40))
def test_windows_have_one_size_and_hold_their_tile(length, tile, overlap, context):
    spans = plan_axis(length, tile, min(overlap, tile // 2 - 1) if tile > 2 else 0)
    wins = [context_window(s.start, s.stop, length, context) for s in spans]
    assert len({b - a for a, b in wins}) == 1
    for s, (a, b) in zip(spans, wins):
        assert 0 <= a <= s.start and s.stop <= b <= length
        # the full margin wherever the image has it, on each side
        assert s.start - a >= min(context, s.start) or b == length
        assert b - s.stop >= min(context, length - s.stop) or a == 0


def test_negative_context_is_refused():
    with pytest.raises(ConfigError, match="context"):
        TiledUpscaler(create_upscaler("bicubic"), tile=16, context=-1)


# --- real backends -------------------------------------------------------------------------
def test_backends_declare_their_context():
    assert create_upscaler("bicubic").context == 2
    if weights_available("animevideov3"):
        assert create_upscaler("realesrgan-compact").context == 18  # 18 3x3 convolutions at input size
    if upscaler_class("text-sr").is_available():
        assert create_upscaler("text-sr").context == 18


@pytest.mark.skipif(not weights_available("animevideov3"), reason="Real-ESRGAN weights not installed")
def test_compact_tiles_with_its_receptive_field_equal_one_shot():
    """Context = the whole receptive field: each tile's kept part is exactly the one-shot output."""
    up = create_upscaler("realesrgan-compact")
    img = scene(100, 70)
    one, _ = TiledUpscaler(up, tile=None).run(img)
    tiled, info = TiledUpscaler(up, tile=32, overlap=8).run(img)
    assert info.tiles > 4 and info.context == 18
    assert np.abs(tiled - one).max() < 1e-4
    bare, _ = TiledUpscaler(up, tile=32, overlap=8, context=0).run(img)
    assert np.abs(bare - one).max() > 0.02  # without it the tile borders show


def test_one_call_crops_report_no_context():
    r = preproc.enhance(scene(40, 12), task="generic", upscaler="bicubic", scale=4)
    assert r.meta["tile_context"] == 0
    t = preproc.enhance(scene(60, 40), task="generic", upscaler="bicubic", scale=4, tile=24, overlap=6)
    assert t.meta["tiles"] > 1 and t.meta["tile_context"] == 2


@pytest.mark.slow
@pytest.mark.skipif(not weights_available("x4plus"), reason="Real-ESRGAN x4plus weights not installed")
def test_x4plus_tiled_at_48_reaches_40_db_of_one_shot():
    """The issue's case: x4plus, 120x90, tile 48 / overlap 16 (36.0 dB without context)."""
    up = create_upscaler("realesrgan", dtype="fp32")
    assert up.context == ESRGAN_CONTEXT
    img = scene()
    one, info1 = TiledUpscaler(up, tile=None).run(img)
    tiled, info = TiledUpscaler(up, tile=48, overlap=16).run(img)
    assert info1.tiles == 1 and info.tiles == 12
    assert psnr(tiled, one) >= 40.0

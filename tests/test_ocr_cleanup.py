"""Classical text clean-up steps: polarity, contrast stretch, unsharp mask, adaptive binarisation."""

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from preproc.cleanup import (
    adaptive_binarize,
    clean_text,
    contrast_stretch,
    normalize_polarity,
    unsharp_mask,
)
from preproc.errors import ConfigError
from preproc.recognize import ocr

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _line(text="Cash 20.00 Change 6.48", ink=60, paper=200, size=28) -> np.ndarray:
    font = ImageFont.truetype(FONT, size)
    img = Image.new("L", (420, 48), paper)
    ImageDraw.Draw(img).text((8, 8), text, font=font, fill=ink)
    return np.asarray(img, dtype=np.float32) / 255.0


def test_contrast_stretch_maps_percentiles_to_black_and_white():
    g = _line(ink=90, paper=170)
    out = contrast_stretch(g, 1, 99)
    assert out.min() == 0.0 and out.max() == 1.0
    assert np.percentile(out, 50) == pytest.approx(1.0)  # paper is the majority
    flat = np.full((10, 10), 0.4, np.float32)
    assert np.array_equal(contrast_stretch(flat), flat)
    with pytest.raises(ConfigError, match="low=90, high=10"):
        contrast_stretch(g, 90, 10)


def test_polarity_turns_light_text_dark():
    light_on_dark = _line(ink=230, paper=30)
    out = normalize_polarity(light_on_dark)
    assert np.median(out) > 0.5  # paper now light
    dark_on_light = _line()
    assert normalize_polarity(dark_on_light) is dark_on_light


def test_unsharp_mask_raises_edge_contrast():
    g = np.zeros((20, 20), np.float32)
    g[:, 10:] = 1.0
    import cv2

    soft = cv2.GaussianBlur(g, (0, 0), 1.5) * 0.6 + 0.2
    sharp = unsharp_mask(soft, sigma=1.5, amount=1.5)
    assert np.abs(np.diff(sharp[10])).max() > np.abs(np.diff(soft[10])).max()
    with pytest.raises(ConfigError, match="sigma=0"):
        unsharp_mask(soft, sigma=0)


def test_adaptive_binarize_is_binary_and_finds_the_ink_under_uneven_light():
    g = _line()
    ramp = np.linspace(-0.25, 0.25, g.shape[1], dtype=np.float32)[None, :]
    uneven = np.clip(g + ramp, 0, 1)
    b = adaptive_binarize(uneven)
    assert set(np.unique(b)) <= {0.0, 1.0}
    ink = g < 0.5
    assert (b[ink] == 0).mean() > 0.7  # most ink pixels are black
    assert (b[~ink] == 1).mean() > 0.9  # paper stays white on both the dark and the light side
    with pytest.raises(ConfigError, match="odd number >= 3 but is 8"):
        adaptive_binarize(g, block=8)


@pytest.mark.parametrize("binarize", [False, True])
def test_clean_text_keeps_a_line_readable(binarize):
    g = _line(ink=230, paper=40)  # light on dark, low contrast for Tesseract
    out = clean_text(g, binarize=binarize)
    assert out.mode == "L" and out.size == (g.shape[1], g.shape[0])
    assert np.median(np.asarray(out)) > 200
    assert ocr(out).text == "Cash 20.00 Change 6.48"

"""Line isolation: fragments of neighbouring lines go, the line's own ink stays."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import preproc
from preproc.line_isolation import find_fragments, remove_fragments

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _font(size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        pytest.skip("DejaVu Sans (fonts-dejavu-core) is not installed")


def _line(text: str, height: int = 96, width: int = 480, size: int = 44, y: int = 22,
          top_strokes: bool = False, bottom_strokes: bool = False, second_line: bool = False) -> np.ndarray:
    """Grey float ``(height, width)``: black text on white, optional neighbour strokes at the edges."""
    img = Image.new("L", (width, height), 255)
    d = ImageDraw.Draw(img)
    d.text((10, y), text, font=_font(size), fill=0)
    for x in range(8, width - 20, 26):
        if top_strokes:  # descenders of the line above, cut by the crop's top edge
            d.rectangle((x, 0, x + 12, 5), fill=0)
        if bottom_strokes:  # tops of the line below
            d.rectangle((x + 5, height - 7, x + 15, height - 1), fill=0)
    if second_line:
        d.text((10, y + size + 4), text, font=_font(size), fill=0)
    return np.asarray(img, np.float32) / 255.0


def _rgb(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[..., None], 3, axis=2)


def test_fragments_at_both_edges_are_removed_and_the_text_is_untouched():
    clean = _line("Description of goods")
    noisy = _line("Description of goods", top_strokes=True, bottom_strokes=True)
    out, info = remove_fragments(_rgb(noisy))
    assert info["fragments"] >= 30  # every stroke at the top and at the bottom
    text = clean < 0.5
    assert np.array_equal(out[..., 0][text], noisy[text])  # not one pixel of the line's ink changed
    assert np.abs(out[..., 0] - clean).max() < 1e-6  # fragments painted with the (white) background


def test_a_line_without_fragments_is_returned_as_it_is():
    img = _rgb(_line("jiggly quips, Tgyp (j)"))  # ascenders, descenders, i-dots, brackets
    out, info = remove_fragments(img)
    assert out is img and info["fragments"] == 0


def test_descenders_cut_by_the_crop_edge_are_kept():
    # A tight crop: the descenders of g, y, p run into the bottom edge; they belong to the line.
    tight = _line("gyp jig gap", height=60, size=48, y=12)
    assert (tight[-1] < 0.5).any()  # the descenders do touch the edge
    out, info = remove_fragments(_rgb(tight))
    assert info["fragments"] == 0 and np.array_equal(out[..., 0], tight)


def test_two_line_crops_are_left_alone():
    img = _rgb(_line("first line", height=130, y=8, top_strokes=True, second_line=True))
    mask, info = find_fragments(img)
    assert mask is None and info["reason"] == "2 text lines"


def test_flat_and_blank_crops():
    for img in (np.ones((40, 100, 3), np.float32), np.zeros((5, 5, 3), np.float32)):
        out, info = remove_fragments(img)
        assert out is img and info["fragments"] == 0


def test_light_text_on_dark_background():
    noisy = 1.0 - _line("Total 12.30", top_strokes=True)
    out, info = remove_fragments(_rgb(noisy))
    assert info["fragments"] > 0
    assert np.abs(out[..., 0] - (1.0 - _line("Total 12.30"))).max() < 1e-6  # painted dark, like the background


@pytest.mark.parametrize("isolate", [True, False])
def test_enhance_applies_it_for_ocr_and_reports_it(isolate):
    # A 24 px crop of a line with strokes of the neighbouring lines at both edges.
    hr = _line("DESCRIPTION 12.50", top_strokes=True, bottom_strokes=True)
    lr = Image.fromarray(np.rint(hr * 255).astype(np.uint8), "L").resize((120, 24), Image.Resampling.BOX)
    res = preproc.enhance(lr, task="ocr", upscaler="bicubic", scale=4, isolate_line=isolate)
    out = np.asarray(res.image, np.float32) / 255.0
    edge_ink = (out[:3] < 0.5).sum() + (out[-3:] < 0.5).sum()
    if isolate:
        assert res.meta["line_fragments_removed"] > 0
        assert edge_ink == 0
    else:
        assert "line_fragments_removed" not in res.meta
        assert edge_ink > 0


def test_ocr_preset_has_it_on_and_the_others_off():
    from preproc.presets import get_preset

    assert get_preset("ocr").isolate_line is True
    assert get_preset("face").isolate_line is False and get_preset("generic").isolate_line is False


def test_tesseract_reads_the_isolated_line():
    from preproc.errors import RecognizerUnavailableError
    from preproc.recognize.ocr import TesseractOCR

    try:
        ocr = TesseractOCR("eng", mode="line")
    except RecognizerUnavailableError as e:
        pytest.skip(str(e))
    hr = _line("DESCRIPTION 12.50", top_strokes=True, bottom_strokes=True)
    lr = Image.fromarray(np.rint(hr * 255).astype(np.uint8), "L").resize((240, 48), Image.Resampling.BOX)
    res = preproc.enhance(lr, task="ocr", upscaler="bicubic", scale=3)
    assert res.meta["line_fragments_removed"] > 0
    assert ocr.read(res.image).text.strip() == "DESCRIPTION 12.50"


def test_i_dots_of_a_line_without_ascenders_are_kept():
    img = _line("mini minimum war", y=30)  # no ascender: the dots form their own band, near the line
    mask, info = find_fragments(_rgb(img))
    assert mask is None and info["fragments"] == 0


def test_fragments_a_little_off_the_edge_are_removed_too():
    # The neighbours' strokes end a few rows short of the edge (a blank row or two of margin).
    noisy = _line("Description of goods", height=100, y=24)
    d = Image.fromarray(np.rint(noisy * 255).astype(np.uint8), "L")
    draw = ImageDraw.Draw(d)
    for x in range(8, 450, 26):
        draw.rectangle((x, 90, x + 10, 96), fill=0)
    noisy = np.asarray(d, np.float32) / 255.0
    out, info = remove_fragments(_rgb(noisy))
    assert info["fragments"] >= 15
    assert np.abs(out[..., 0] - _line("Description of goods", height=100, y=24)).max() < 1e-6

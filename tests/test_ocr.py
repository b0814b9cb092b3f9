"""Tesseract adapter: both engines on real rendered lines, modes, and install errors."""

import json
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from preproc.errors import ConfigError, RecognizerUnavailableError
from preproc.recognize import OcrResult, TesseractOCR, find_tessdata, ocr

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "ocr-sample"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def _sample(i: int):
    rec = [json.loads(line) for line in (SAMPLE / "manifest.jsonl").read_text().splitlines()][i]
    return Image.open(SAMPLE / rec["image"]), rec["text"]


def _render(lines: list[str]) -> Image.Image:
    font = ImageFont.truetype(FONT, 26)
    img = Image.new("L", (620, 16 + 40 * len(lines)), 255)
    d = ImageDraw.Draw(img)
    for k, line in enumerate(lines):
        d.text((10, 8 + 40 * k), line, font=font, fill=0)
    return img


@pytest.mark.parametrize("engine", ["tesserocr", "pytesseract"])
def test_reads_a_clean_line_with_text_confidence_and_boxes(engine):
    img, text = _sample(4)  # "Room 12B is on the third floor"
    res = TesseractOCR(engine=engine)(img)
    assert isinstance(res, OcrResult) and res.engine == engine
    assert res.text == text
    assert res.confidence > 80
    assert [w.text for w in res.words] == text.split()
    for w in res.words:
        x0, y0, x1, y1 = w.box
        assert 0 <= x0 < x1 <= img.width and 0 <= y0 < y1 <= img.height
    xs = [w.box[0] for w in res.words]
    assert xs == sorted(xs)


def test_engines_agree_on_text():
    a, b = TesseractOCR(engine="tesserocr"), TesseractOCR(engine="pytesseract")
    for i in (0, 9, 19):
        img, _ = _sample(i)
        assert a(img).text == b(img).text


def test_auto_engine_prefers_tesserocr_when_installed():
    assert TesseractOCR().engine == "tesserocr"
    assert TesseractOCR(config="-c tessedit_char_whitelist=0123456789").engine == "pytesseract"


@pytest.mark.parametrize("engine", ["tesserocr", "pytesseract"])
def test_block_mode_reads_several_lines(engine):
    img = _render(["First line of the note", "Second line, 42 items"])
    res = TesseractOCR(mode="block", engine=engine)(img)
    assert res.text.split("\n") == ["First line of the note", "Second line, 42 items"]
    line = TesseractOCR(mode="line", engine=engine)(img)
    assert "\n" not in line.text


def test_blank_image_has_no_confident_text():
    res = ocr(Image.new("L", (200, 40), 255))
    assert res.confidence < 20


def test_accepts_arrays_and_paths():
    img, text = _sample(4)
    import numpy as np

    assert ocr(np.asarray(img)).text == text
    assert ocr(SAMPLE / "images" / "line-004.png").text == text


def test_missing_language_names_the_package():
    with pytest.raises(RecognizerUnavailableError, match="tesseract-ocr-zzz"):
        TesseractOCR(lang="zzz", engine="tesserocr")
    with pytest.raises(RecognizerUnavailableError, match="tesseract-ocr-zzz"):
        TesseractOCR(lang="zzz", engine="pytesseract")


def test_missing_binary_names_the_package(monkeypatch):
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(RecognizerUnavailableError, match="tesseract-ocr"):
        TesseractOCR(engine="pytesseract")


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown OCR mode 'paragraph'"):
        TesseractOCR(mode="paragraph")
    with pytest.raises(ConfigError, match="unknown OCR engine 'easyocr'"):
        TesseractOCR(engine="easyocr")
    with pytest.raises(ConfigError, match=r"\[0, 13\] but is 14"):
        TesseractOCR(mode=14)


def test_find_tessdata_locates_english():
    d = find_tessdata("eng")
    assert d is not None and (d / "eng.traineddata").is_file()
    assert find_tessdata("eng+zzz") is None

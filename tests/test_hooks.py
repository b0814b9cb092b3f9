"""Built-in hooks: record, keep_if_better (recognition hooks), and select."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import preproc
from preproc.compare import area_resize
from preproc.errors import ConfigError
from preproc.hooks import KeepIfBetter, RecognitionHook, keep_if_better, record
from preproc.recognize import TesseractOCR
from preproc.select import select

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "ocr-sample"


def _small_line(i=4, height=12) -> Image.Image:
    img = Image.open(SAMPLE / "images" / f"line-{i:03d}.png")
    return area_resize(img, round(img.width * height / img.height), height)


def _ink_fraction(image: Image.Image) -> dict:
    """A real (if crude) recognizer: the confidence is the share of dark pixels."""
    a = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    return {"confidence": float((a < 0.5).mean())}


def test_record_keeps_both_images_in_meta():
    crop = _small_line()
    out = preproc.enhance(crop, task="ocr", upscaler="bicubic", hooks=[record])
    rec = out.meta["record"]
    assert rec["before_size"] == list(crop.size)
    assert rec["after_size"] == list(out.image.size)
    assert rec["after"].size == out.image.size and rec["before"].size == crop.size
    assert rec["after_mode"] == "L" and out.meta["hooks"] == ["record"]


def test_keep_if_better_with_tesseract_keeps_the_more_confident_image():
    crop = _small_line()
    out = preproc.enhance(crop, task="ocr", upscaler="bicubic", hooks=[keep_if_better])
    k = out.meta["keep_if_better"]
    rec = out.meta["recognition"]
    assert k["confidence_before"] == rec["before"]["confidence"]
    assert k["confidence_after"] == rec["after"]["confidence"]
    if k["confidence_after"] < k["confidence_before"]:
        assert k["kept"] == "original" and out.image.size == crop.size
    else:
        assert k["kept"] == "enhanced" and out.image.size != crop.size
    assert out.image.mode == "L"


def test_keep_if_better_vetoes_a_worse_enhancement():
    crop = _small_line()
    blank = Image.new("L", (crop.width * 4, crop.height * 4), 255)
    hook = KeepIfBetter(TesseractOCR())
    meta = {"task": "ocr"}
    kept = hook(crop, blank, meta)
    assert meta["keep_if_better"]["kept"] == "original"
    assert kept is not None and kept.size == crop.size and kept.mode == "L"
    # and lets a better one through
    meta2 = {"task": "ocr"}
    assert hook(blank.resize(crop.size), crop.convert("L"), meta2) is None
    assert meta2["keep_if_better"]["kept"] == "enhanced"


def test_margin_and_custom_recognizer():
    dark = Image.new("L", (10, 10), 0)
    lighter = Image.new("L", (10, 10), 0)
    lighter.paste(255, (0, 0, 10, 1))  # 10 % less ink
    meta = {}
    assert KeepIfBetter(_ink_fraction)(dark, lighter, meta) is not None
    meta = {}
    assert KeepIfBetter(_ink_fraction, margin=0.2)(dark, lighter, meta) is None


def test_recognition_hook_sees_both_recognitions():
    seen = {}

    class Spy(RecognitionHook):
        def decide(self, before, after, meta, rec_before, rec_after):
            seen["b"], seen["a"] = rec_before, rec_after

    crop = _small_line()
    preproc.enhance(crop, task="ocr", upscaler="bicubic", hooks=[Spy(TesseractOCR())])
    assert seen["b"].text and seen["a"].text
    assert seen["b"].engine == "tesserocr"


def test_recognizer_without_confidence_and_unknown_default_are_errors():
    img = Image.new("L", (8, 8), 255)
    with pytest.raises(ConfigError, match="without a `confidence`"):
        KeepIfBetter(lambda im: {"text": "x"})(img, img, {})
    with pytest.raises(ConfigError, match="no default recognizer for task 'face'"):
        keep_if_better(img, img, {"task": "face"})


def test_select_returns_the_most_confident_candidate():
    crop = _small_line(height=10)
    res = select(crop, candidates=("none", "bicubic", "cleanup"))
    assert set(res.confidences) == {"none", "bicubic", "cleanup"}
    assert res.confidences[res.name] == max(res.confidences.values())
    assert res.recognition.confidence == res.confidences[res.name]
    with pytest.raises(ConfigError, match="unknown variant 'sharpen'"):
        select(crop, candidates=("none", "sharpen"))

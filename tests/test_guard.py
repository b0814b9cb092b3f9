"""The OCR guard: guard_choice's rules, compare's +guard combine, keep_if_better with real Tesseract."""

from pathlib import Path

import pytest
from PIL import Image

from preproc.compare.task import area_resize, create_task
from preproc.hooks import (
    GUARD_MARGINS,
    GUARD_UNREADABLE,
    KeepIfBetter,
    guard_choice,
    recognizer_kind,
)
from preproc.recognize import TesseractOCR

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "ocr-sample"


def rec(text: str, conf: float) -> dict:
    return {"text": text, "confidence": conf}


def test_margin_is_required_to_switch():
    assert guard_choice(rec("Total 48.95", 91), rec("Tota1 48.95", 85), margin=5)[0]
    assert not guard_choice(rec("Total 48.95", 89), rec("Tota1 48.95", 85), margin=5)[0]
    assert guard_choice(rec("abc", 85), rec("abd", 85), margin=0)[0]  # ties keep the enhanced


def test_default_margin_comes_from_the_fitted_table():
    m = GUARD_MARGINS["tesseract"]
    o = rec("Room 126", 60)
    assert guard_choice(rec("Room 128", 60 + m), o, "tesseract")[0]
    if m > 0:
        assert not guard_choice(rec("Room 128", 60 + m - 0.01), o, "tesseract")[0]
    assert set(GUARD_MARGINS) >= {"tesseract", "rapidocr", "default"}


def test_length_sanity_rejects_a_hallucinated_or_lost_line():
    keep, why = guard_choice(rec("Invoice 2231 is due on 14 March 2027", 95), rec("Invoice 2231", 70), margin=0)
    assert not keep and "lengths differ" in why
    keep, why = guard_choice(rec("In", 99), rec("Invoice 2231", 70), margin=0)
    assert not keep and "lengths differ" in why


def test_digit_share_sanity():
    keep, why = guard_choice(rec("1234 5678", 95), rec("Iasd Sero", 70), margin=0)
    assert not keep and "digit shares" in why


def test_empty_and_unreadable_readings():
    assert not guard_choice(rec("", 99), rec("abc", 10), margin=0)[0]
    assert guard_choice(rec("abc", 1), rec("", 0), margin=50)[0]
    # a crop read as a couple of letters with confidence 0 is no reference for the sanity checks
    assert guard_choice(rec("Room 126 is on the third floor", 80), rec("Bn", 0), margin=5)[0]
    assert not guard_choice(rec("Room 126 is on the third floor", 0), rec("Bn", GUARD_UNREADABLE - 1), margin=5)[0]


def test_recognitions_without_text_compare_confidence():
    assert guard_choice({"confidence": 0.5}, {"confidence": 0.5})[0]
    assert not guard_choice({"confidence": 0.4}, {"confidence": 0.5})[0]


def test_recognizer_kind():
    from preproc.recognize.ocr import ocr

    assert recognizer_kind(ocr) == "tesseract"
    assert recognizer_kind(TesseractOCR(engine="pytesseract")) == "tesseract"
    assert recognizer_kind(lambda im: {"confidence": 1}) == "default"


def test_compare_guard_combine_uses_guard_choice():
    tk = create_task("ocr", guard_margin=5)
    try:
        enh, orig = rec("Total 48.95", 89), rec("Tota1 48.95", 85)
        assert tk.combine("guard", [enh, orig]) == (1, orig)
        assert tk.combine("guard", [rec("Total 48.95", 91), orig])[0] == 0
        # select stays "most confident"
        assert tk.combine("select", [enh, orig])[0] == 0
    finally:
        tk.close()


def _line(i: int, height: int) -> Image.Image:
    img = Image.open(SAMPLE / "images" / f"line-{i:03d}.png")
    return area_resize(img, round(img.width * height / img.height), height)


def test_keep_if_better_keeps_the_crop_against_a_garbled_enhancement():
    crop = _line(4, 14)
    garbled = _line(7, 14).resize((crop.width * 3, crop.height * 3)).convert("L")  # another line entirely, sharp
    hook = KeepIfBetter(TesseractOCR())
    meta = {"task": "ocr"}
    out = hook(crop, garbled, meta)
    k = meta["keep_if_better"]
    # either the other line is less sure or fails a sanity check; it never passes silently as "better"
    r0, r1 = meta["recognition"]["before"], meta["recognition"]["after"]
    if k["kept"] == "enhanced":
        assert r1["confidence"] >= r0["confidence"] + GUARD_MARGINS["tesseract"]
    else:
        assert out is not None and out.size == crop.size and out.mode == "L"
    assert k["why"]


@pytest.mark.parametrize("margin", [0.0, 1000.0])
def test_huge_margin_always_keeps_a_readable_crop(margin):
    crop = _line(0, 16)
    better = crop.resize((crop.width * 2, crop.height * 2), Image.Resampling.BICUBIC).convert("L")
    meta = {"task": "ocr"}
    out = KeepIfBetter(TesseractOCR(), margin=margin)(crop, better, meta)
    if margin == 1000.0:
        assert meta["keep_if_better"]["kept"] == "original" and out is not None

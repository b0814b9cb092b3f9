"""The OCR guard: guard_choice's rules, compare's +guard combine, keep_if_better with real Tesseract."""

from pathlib import Path

import pytest
from PIL import Image

from preproc.compare.ocr import backend_of
from preproc.compare.task import area_resize, create_task
from preproc.compare.variants import Variant
from preproc.hooks import (
    GUARD_RULES,
    GUARD_UNREADABLE,
    KeepIfBetter,
    guard_choice,
    guard_rule,
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


def test_default_rule_comes_from_the_fitted_table():
    rule = guard_rule("tesseract", "realesrgan")
    assert rule == GUARD_RULES["tesseract/realesrgan"]
    assert guard_rule("tesseract", "text-sr@2") == GUARD_RULES["tesseract/text-sr"]
    # the default's small-crop model takes text-sr's rule, as compare's default+guard does
    assert guard_rule("tesseract", "text-sr-small") == GUARD_RULES["tesseract/text-sr"]
    assert guard_rule("rapidocr", "text-sr-small") == GUARD_RULES["rapidocr/text-sr"]
    assert guard_rule("tesseract", "lanczos") == GUARD_RULES["tesseract"]  # not fitted alone: the joint rule
    assert guard_rule("easyocr") == GUARD_RULES["default"]
    m = rule.margin
    o = rec("Room 126", 60)
    assert guard_choice(rec("Room 128", 60 + m), o, "tesseract", "realesrgan")[0]
    if m > 0:
        assert not guard_choice(rec("Room 128", 60 + m - 0.01), o, "tesseract", "realesrgan")[0]


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
    # a crop that reads as nothing: the margin alone decides (a huge margin always keeps the crop)
    assert guard_choice(rec("abc", 60), rec("", 0), margin=50)[0]
    assert not guard_choice(rec("abc", 40), rec("", 0), margin=50)[0]
    # a crop read as a couple of letters with confidence 0 is no reference for the sanity checks
    assert guard_choice(rec("Room 126 is on the third floor", 80), rec("Bn", 0), margin=5)[0]
    assert not guard_choice(rec("Room 126 is on the third floor", 80), rec("Bn", GUARD_UNREADABLE), margin=5)[0]
    assert not guard_choice(rec("Room 126 is on the third floor", 3), rec("Bn", 0), margin=5)[0]


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


def test_compare_guard_uses_the_backends_rule():
    tk = create_task("ocr")
    try:
        m_x4 = guard_rule("tesseract", "realesrgan").margin
        m_tsr = guard_rule("tesseract", "text-sr").margin
        assert m_x4 > m_tsr  # the hallucinating backend needs the larger margin
        enh, orig = rec("Total 48.95", 85 + (m_x4 + m_tsr) / 2), rec("Total 48.96", 85)
        x4 = Variant("realesrgan+guard", "guard", ("realesrgan", "none"))
        tsr = Variant("text-sr+guard", "guard", ("text-sr", "none"))
        assert tk.combine_variant(x4, [enh, orig])[0] == 1
        assert tk.combine_variant(tsr, [enh, orig])[0] == 0
    finally:
        tk.close()


def test_backend_of_candidates():
    from preproc.upscalers.auto import resolve_auto

    assert backend_of("text-sr@2") == "text-sr" and backend_of("realesrgan") == "realesrgan"
    assert backend_of("default") == resolve_auto("ocr")[0]
    assert backend_of("none") is None and backend_of("cleanup") is None


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
        assert r1["confidence"] >= r0["confidence"] + GUARD_RULES["tesseract"].margin
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

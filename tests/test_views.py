"""Candidate views (``NAME~VIEW``): a candidate's image redrawn before reading, computed once per crop."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from preproc.compare import parse_variants
from preproc.compare.ocr import OcrTask, backend_of
from preproc.compare.variants import (
    CandidateContext,
    base_candidate,
    candidate_fn,
    candidate_unavailable,
    register_candidate,
    view_fn,
    weights_identity,
)
from preproc.errors import ConfigError


def _crop(text: str = "Total 12.30") -> Image.Image:
    img = Image.new("L", (60, 11), 255)
    ImageDraw.Draw(img).text((2, 0), text, fill=0)
    return img


def test_a_candidate_and_its_views_cost_one_enhancement(monkeypatch):
    ctx = CandidateContext("ocr")
    calls: list[str] = []
    real = ctx.upscale

    def counting(image, upscaler, scale=None):
        calls.append(upscaler)
        return real(image, upscaler, scale)

    monkeypatch.setattr(ctx, "upscale", counting)
    crop = _crop()
    plain = candidate_fn("bicubic", "ocr")(crop, ctx)
    thick = candidate_fn("bicubic~thick", "ocr")(crop, ctx)
    big = candidate_fn("bicubic~x1.5", "ocr")(crop, ctx)
    assert calls == ["bicubic"]
    a, t = np.asarray(plain.convert("L")), np.asarray(thick.convert("L"))
    assert t.shape == a.shape and (t <= a).all() and (t < 128).sum() > (a < 128).sum()  # bolder, never lighter
    assert big.size == (round(plain.width * 1.5), round(plain.height * 1.5))
    inverted = Image.eval(plain, lambda v: 255 - v)                     # light text on dark: bolder too
    assert (np.asarray(view_fn("thick")(inverted).convert("L")) > 128).sum() > (np.asarray(inverted.convert("L")) > 128).sum()
    candidate_fn("bicubic~thick", "ocr")(_crop("other line"), ctx)  # another crop: enhanced again
    assert calls == ["bicubic", "bicubic"]


def test_the_memo_is_bounded(monkeypatch):
    from preproc.compare import variants

    ctx = CandidateContext("ocr")
    fn = candidate_fn("none", "ocr")
    for i in range(variants.MEMO_SIZE + 5):
        fn(_crop(f"line {i}"), ctx)
    assert len(ctx._memo) == variants.MEMO_SIZE


def test_views_are_checked_and_named_by_their_base():
    for bad in ("default~blur", "default~x9", "default~x0.1", "default~xx", "~thick"):
        with pytest.raises(ConfigError):
            candidate_fn(bad, "ocr")
    with pytest.raises(ConfigError, match="unknown variant"):
        candidate_fn("nonsense~thick", "ocr")
    with pytest.raises(ConfigError, match="'~'"):
        register_candidate("mine~thick", lambda crop, ctx: crop)
    assert base_candidate("text-sr@2~thick") == "text-sr" and base_candidate("default~x1.4") == "default"
    assert backend_of("text-sr-v3~thick") == "text-sr-v3"
    assert candidate_unavailable("text-sr~thick") == candidate_unavailable("text-sr")
    # a view reads the same weights as its candidate: the compare cache fingerprint says so
    ids = weights_identity(["text-sr", "text-sr~thick", "default", "default~x1.4"], "ocr")
    assert ids["text-sr~thick"] == ids["text-sr"] and ids["default~x1.4"] == ids["default"]
    assert view_fn("x2")(Image.new("L", (5, 3))).size == (10, 6)


def test_vote_takes_views_as_candidates():
    (v,) = parse_variants(["vote:default/default~thick/text-sr@2~x1.4/none"], "ocr", OcrTask.modes,
                          OcrTask.default_candidates, OcrTask.mode_candidates)
    assert v.mode == "vote" and v.candidates == ("default", "default~thick", "text-sr@2~x1.4", "none")


def test_the_default_vote_reads_eight_renderings_from_three_enhancements(monkeypatch):
    from pathlib import Path

    from preproc.compare.task import area_resize
    from preproc.io import load_image
    from preproc.recognize import TesseractOCR
    from preproc.vote import DEFAULT_CANDIDATES, read_voted

    try:
        tess = TesseractOCR(mode="line", engine="tesserocr")
    except Exception as e:  # noqa: BLE001 - no tesserocr here
        pytest.skip(str(e))
    sample = sorted((Path(__file__).resolve().parents[1] / "datasets" / "ocr-sample" / "images").glob("*.png"))[0]
    arr = load_image(sample)
    crop = area_resize(arr, round(arr.shape[1] * 9 / arr.shape[0]), 9)
    ctx = CandidateContext("ocr", device="cpu")
    calls: list[tuple[str, float | None]] = []
    real = ctx.upscale

    def counting(image, upscaler, scale=None):
        calls.append((upscaler, scale))
        return real(image, upscaler, scale)

    monkeypatch.setattr(ctx, "upscale", counting)
    res = read_voted(crop, recognizer=tess, context=ctx, agree_first=())  # every candidate, no early stop
    assert [r["name"] for r in res.readings] == list(DEFAULT_CANDIDATES) and not res.early
    assert sorted(calls, key=str) == sorted([("auto", None), ("text-sr-v3", None), ("text-sr", 2.0)], key=str)
    assert res.text

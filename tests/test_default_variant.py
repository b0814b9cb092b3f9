"""The ``default`` compare variant is exactly ``preproc.enhance(crop, task=...)`` with no upscaler named."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import preproc
from preproc.compare import parse_variants
from preproc.compare.task import area_resize, create_task
from preproc.compare.variants import (
    CandidateContext,
    candidate_fn,
    candidate_names,
    describe_candidates,
)
from preproc.upscalers.auto import resolve_auto

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "ocr-sample"


def _ocr_crop(height: int) -> Image.Image:
    img = Image.open(SAMPLE / "images" / "line-000.png").convert("RGB")
    return area_resize(img, round(img.width * height / img.height), height)


@pytest.mark.parametrize("task", ["ocr", "face", "generic"])
def test_default_is_a_candidate_of_every_task(task):
    assert "default" in candidate_names(task)
    (v,) = parse_variants(["default"], task, ("select",), ("none",))
    assert v.mode == "single" and v.candidates == ("default",)
    (g,) = parse_variants(["default+guard"], task, ("select",), ("none",))
    assert g.candidates == ("default", "none")


@pytest.mark.parametrize("height", [10, 64])  # 10 px: enhanced; 64 px: the OCR gate skips
def test_ocr_default_equals_enhance(height):
    crop = _ocr_crop(height)
    ctx = CandidateContext("ocr")
    got = candidate_fn("default", "ocr")(crop, ctx)
    want = preproc.enhance(crop, task="ocr")
    assert got.mode == want.image.mode and got.size == want.image.size
    assert np.array_equal(np.asarray(got), np.asarray(want.image))
    if height == 64:
        assert want.meta["skipped"] and got.size == crop.size


def test_face_default_equals_enhance():
    rng = np.random.default_rng(0)
    crop = Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8))
    ctx = CandidateContext("face")
    got = candidate_fn("default", "face")(crop, ctx)
    want = preproc.enhance(crop, task="face")
    assert np.array_equal(np.asarray(got), np.asarray(want.image))
    assert got.size == want.image.size and got.size != crop.size  # a 24 px face gets enlarged


@pytest.mark.parametrize("task", ["ocr", "face"])
def test_describe_names_the_auto_backend(task):
    backend, _ = resolve_auto(task, "cpu")
    desc = describe_candidates(["none", "default"], task, "cpu")
    assert list(desc) == ["default"] and desc["default"].startswith(f"{backend} (auto for task {task!r}")
    assert describe_candidates(["none", "bicubic"], task, "cpu") == {}


def test_compare_report_says_what_default_resolved_to(tmp_path):
    rep = preproc.compare(SAMPLE, task="ocr", variants=["none", "default"], sizes=[10], limit=2,
                          out=tmp_path / "o", device="cpu", progress=False)
    backend, _ = resolve_auto("ocr", "cpu")
    assert rep.settings["resolved"]["default"].startswith(backend)
    assert f"`default` = {backend}" in (tmp_path / "o" / "report.md").read_text()
    row = next(r for r in rep.rows if r["variant"] == "default")
    assert row["n"] == 2 and row["failures"] == 0
    # the same reading as recognising enhance()'s output directly
    tk = create_task("ocr")
    try:
        rec = tk.load(SAMPLE, 2)[0]
        crop = tk.degrade(rec, 10, None)
        direct = tk.recognize(preproc.enhance(crop, task="ocr", device="cpu").image, rec)
    finally:
        tk.close()
    cached = [line for line in (tmp_path / "o" / "cache.jsonl").read_text().splitlines()
              if '"default"' in line and rec.id in line]
    assert cached and direct["text"] in cached[0]


def test_default_fingerprint_covers_every_model_the_rule_can_pick():
    from preproc.cache import file_digest
    from preproc.compare.variants import weights_identity
    from preproc.upscalers import text_sr

    ident = weights_identity(["default", "text-sr"], "ocr", "cpu")
    small, main = file_digest(text_sr.SMALL_WEIGHTS)[:16], file_digest(text_sr.SHIPPED_WEIGHTS)[:16]
    assert ident["default"] == f"{small}+{main}" and ident["text-sr"] == main
    assert "crops at most 11 px tall get text-sr-small" in describe_candidates(["default"], "ocr", "cpu")["default"]

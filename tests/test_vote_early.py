"""The vote's early stop: the AGREE_FIRST readings first; when they agree, nothing else is read."""

from pathlib import Path

import pytest
from PIL import Image

import preproc
from preproc.compare.cache import ResultCache
from preproc.compare.task import area_resize
from preproc.compare.variants import CandidateContext
from preproc.errors import ConfigError
from preproc.recognize import TesseractOCR
from preproc.vote import AGREE_FIRST, DEFAULT_CANDIDATES, agree, agree_first_order, read_voted

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "ocr-sample"


def _line(i: int, height: int) -> Image.Image:
    img = Image.open(SAMPLE / "images" / f"line-{i:03d}.png")
    return area_resize(img, round(img.width * height / img.height), height)


@pytest.fixture(scope="module")
def tess():
    t = TesseractOCR(mode="line")
    if t.engine != "tesserocr":
        pytest.skip("per-symbol confidences need tesserocr")
    yield t
    t.close()


def _counting_context(monkeypatch) -> tuple[CandidateContext, list]:
    ctx = CandidateContext("ocr", device="cpu")
    calls: list = []
    real = ctx.upscale

    def counting(image, upscaler, scale=None):
        calls.append((upscaler, scale))
        return real(image, upscaler, scale)

    monkeypatch.setattr(ctx, "upscale", counting)
    return ctx, calls


# --- the rule ------------------------------------------------------------------------------
def test_agreement_needs_two_equal_non_empty_texts():
    assert agree([{"text": "Total 12.30"}, {"text": " Total  12.30 "}])  # whitespace runs are one space
    assert not agree([{"text": "Total 12.30"}, {"text": "Total 12.38"}])
    assert not agree([{"text": ""}, {"text": " "}])      # agreeing on nothing is no reading
    assert not agree([{"text": "Total"}])                # one reading agrees with nobody


def test_agree_first_order_keeps_candidate_order_and_needs_two():
    cands = list(DEFAULT_CANDIDATES)
    first, rest = agree_first_order(cands, AGREE_FIRST)
    assert [cands[i] for i in first] == ["default", "default~thick", "default~x1.4"]
    assert sorted(first + rest) == list(range(len(cands)))
    assert agree_first_order(["default", "text-sr-v3", "none"], AGREE_FIRST) == ([], [0, 1, 2])
    assert agree_first_order(cands, ()) == ([], list(range(len(cands))))


# --- read_voted ------------------------------------------------------------------------------
def test_agreeing_first_readings_stop_the_vote_after_one_enhancement(tess, monkeypatch):
    crop = _line(0, 20)  # a clean 20 px line: the default's three renderings read alike
    ctx, calls = _counting_context(monkeypatch)
    res = read_voted(crop, recognizer=tess, context=ctx)
    assert res.early
    assert [r["name"] for r in res.readings] == ["default", "default~thick", "default~x1.4"]
    assert calls == [("auto", None)]                         # text-sr-v3 and text-sr@2 were never run
    assert res.text == " ".join(res.readings[0]["text"].split()) and res.confidence == 100.0
    full = read_voted(crop, recognizer=tess, context=ctx, agree_first=())
    assert not full.early and len(full.readings) == len(DEFAULT_CANDIDATES)


def test_disagreeing_first_readings_read_everything_and_vote_as_without_the_stop(tess, monkeypatch):
    crop = _line(3, 6)  # at 6 px the crop as it is and the enhanced image read differently
    ctx, _ = _counting_context(monkeypatch)
    cands = ("default", "text-sr@2", "none")
    first = [read_voted(crop, (c,), recognizer=tess, context=ctx).text for c in ("none", "default")]
    assert first[0] != first[1]                              # the precondition of this test
    res = read_voted(crop, cands, recognizer=tess, context=ctx, agree_first=("none", "default"))
    assert not res.early and [r["name"] for r in res.readings] == list(cands)
    plain = read_voted(crop, cands, recognizer=tess, context=ctx, agree_first=())
    assert res.text == plain.text and res.confidence == plain.confidence


# --- compare ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_compare_vote_stops_early_and_counts_only_what_it_read(tmp_path):
    kw = dict(task="ocr", variants=["default", "default~thick", "default~x1.4", "vote"], sizes=[20], limit=3,
              device="cpu", progress=False)
    rep = preproc.compare(SAMPLE, out=tmp_path / "early", **kw)
    rows = {r["variant"]: r for r in rep.rows}
    early = rows["vote"]["chosen"].get("vote, early", 0)
    assert early >= 1 and sum(rows["vote"]["chosen"].values()) == 3
    assert rep.settings["combine_options"]["vote_early"] is True
    full = preproc.compare(SAMPLE, out=tmp_path / "full", task_options={"vote_early": False}, **kw)
    rows_full = {r["variant"]: r for r in full.rows}
    assert rows_full["vote"]["chosen"] == {"vote": 3}
    # seconds, from the run's own cache: an early line costs its three readings, the others all eight
    cache, _ = ResultCache.of_run(tmp_path / "early")
    per_line = []
    for sid in {k[0] for k in cache.entries}:
        entries = {c: cache.get((sid, 20, None, c)) for c in DEFAULT_CANDIDATES}
        first = AGREE_FIRST if agree([entries[c]["rec"] for c in AGREE_FIRST]) else DEFAULT_CANDIDATES
        per_line.append(sum(entries[c]["seconds"] for c in first))
    assert rows["vote"]["seconds_per_item"] == pytest.approx(sum(per_line) / len(per_line))
    if early == 3:
        assert rows["vote"]["cer"] == pytest.approx(rows["default"]["cer"])


def test_vote_early_option_is_a_bool():
    from preproc.compare.ocr import OcrTask

    with pytest.raises(ConfigError, match="vote_early"):
        OcrTask(vote_early="no")

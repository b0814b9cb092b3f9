"""Voting across readings: alignment on known strings, confidence weighting, real Tesseract symbols."""

from pathlib import Path

import pytest
from PIL import Image

import preproc
from preproc.compare import parse_variants
from preproc.compare.task import area_resize
from preproc.errors import ConfigError
from preproc.metrics import corpus_scores
from preproc.recognize import TesseractOCR
from preproc.vote import (
    EPS,
    Reading,
    char_confidences,
    confusion_network,
    read_voted,
    reading_from,
    vote,
    vote_readings,
)

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "ocr-sample"


def R(text: str, w: float = 0.9, name: str = "") -> Reading:
    return Reading(tuple(text), tuple([w] * len(text)), name)


# --- alignment and voting on known strings ---------------------------------------------
def test_majority_fixes_a_substitution_a_deletion_and_an_insertion():
    readings = [R("hello world"), R("hallo world"), R("helo world"), R("hello worlld")]
    assert vote_readings(readings)[0] == "hello world"


def test_identical_readings_give_that_reading_with_full_confidence():
    assert vote_readings([R("Total 48.95")] * 3) == ("Total 48.95", 100.0)


def test_single_reading_passes_through():
    assert vote_readings([R("abc def", 0.3)])[0] == "abc def"


def test_network_slots_hold_epsilon_for_a_missing_character():
    net = confusion_network([R("abcd", 0.9), R("abd", 0.8)])
    assert len(net) == 4
    assert net[2] == pytest.approx({"c": 0.9, EPS: 0.8})
    assert net[0] == pytest.approx({"a": 1.7})


def test_confidence_weighting_beats_a_weak_majority():
    strong, weak = R("48.95", 0.95), R("48.05", 0.2)
    assert vote_readings([strong, weak, weak])[0] == "48.95"
    # equal weights: the majority wins
    assert vote_readings([R("48.95"), R("48.05"), R("48.05")])[0] == "48.05"


def test_per_character_weights_pick_per_character():
    a = Reading(tuple("cat"), (0.9, 0.1, 0.9), "a")  # unsure of its 'a'
    b = Reading(tuple("cot"), (0.2, 0.9, 0.2), "b")  # sure only of its 'o'
    assert vote_readings([a, b])[0] == "cot"


def test_power_sharpens_weights():
    one = R("AB", 0.9)
    two = [R("XY", 0.6), R("XY", 0.6)]
    assert vote([{"text": "AB", "confidence": 90}, *[{"text": "XY", "confidence": 60}] * 2], power=1)[0] == "XY"
    assert vote([{"text": "AB", "confidence": 90}, *[{"text": "XY", "confidence": 60}] * 2], power=4)[0] == "AB"
    assert vote_readings([one, *two])[0] == "XY"


def test_empty_and_tie_cases():
    assert vote_readings([R("", 0.0), R("abc")])[0] == "abc"
    assert vote_readings([R("")]) == ("", 0.0)
    # a tie goes to the more confident reading (the backbone)
    assert vote_readings([R("ab", 0.5), R("xy", 0.6)])[0] == "xy"
    with pytest.raises(ConfigError, match="at least one reading"):
        vote_readings([])
    with pytest.raises(ConfigError, match="3 characters but 2 weights"):
        Reading(tuple("abc"), (1.0, 1.0))


def test_spaces_are_characters_and_runs_collapse():
    assert vote_readings([R("ab cd"), R("abcd"), R("ab cd")])[0] == "ab cd"
    assert vote_readings([R("ab  cd"), R("ab  cd")])[0] == "ab cd"


def test_char_confidences_align_symbols_with_text():
    syms = [("a", 90.0), ("b", 80.0), ("c", 70.0)]
    assert char_confidences("ab c", syms) == [90.0, 80.0, 70.0, 70.0]  # a space: its neighbours' minimum
    assert char_confidences("ab x", syms) is None  # the symbols do not spell the text
    assert char_confidences("abc d", syms) is None


def test_reading_from_prefers_char_conf_then_words_then_the_line():
    r = reading_from({"text": "ab", "confidence": 50, "char_conf": [100, 0]})
    assert r.weights == (1.0, 0.0)
    r = reading_from({"text": "ab", "confidence": 50})
    assert r.weights == (0.5, 0.5)


# --- real Tesseract ------------------------------------------------------------------
def _line(i: int, height: int) -> Image.Image:
    img = Image.open(SAMPLE / "images" / f"line-{i:03d}.png")
    return area_resize(img, round(img.width * height / img.height), height)


@pytest.fixture(scope="module")
def tess():
    t = TesseractOCR()
    if t.engine != "tesserocr":
        pytest.skip("per-symbol confidences need tesserocr")
    yield t
    t.close()


def test_tesseract_symbols_spell_the_text_and_keep_the_plain_reading(tess):
    img = preproc.enhance(_line(3, 10), task="ocr", upscaler="bicubic").image
    plain = tess.read(img)
    full = tess.read(img, symbols=True)
    again = tess.read(img)
    assert plain.symbols is None and again.symbols is None
    assert full.text == plain.text == again.text and full.confidence == plain.confidence
    confs = char_confidences(full.text, full.symbols)
    assert confs is not None and len(confs) == len(full.text)
    assert all(0.0 <= c <= 100.0 for c in confs)
    assert any(s.alternatives for s in full.symbols)  # LSTM choices (lstm_choice_mode=2)
    assert [s.word for s in full.symbols][-1] == len(full.text.split()) - 1


def test_pytesseract_reader_refuses_symbols():
    t = TesseractOCR(engine="pytesseract")
    with pytest.raises(ConfigError, match="need engine='tesserocr'"):
        t.read(_line(0, 16), symbols=True)


@pytest.mark.slow
def test_read_voted_on_sample_lines_is_no_worse_than_its_worst_reading(tess):
    refs, voted, worst = [], [], []
    for i in range(6):
        crop = _line(i, 9)
        res = read_voted(crop, ("text-sr", "bicubic", "none"), recognizer=tess, device="cpu")
        assert [r["name"] for r in res.readings] == ["text-sr", "bicubic", "none"]
        ref = [ln for ln in (SAMPLE / "manifest.jsonl").read_text().splitlines()][i]
        import json

        text = json.loads(ref)["text"]
        refs.append(text)
        voted.append(res.text)
        worst.append(max((r["text"] for r in res.readings),
                         key=lambda t, text=text: corpus_scores([text], [t], [True])["cer"]))
        if len({r["text"] for r in res.readings}) == 1:
            assert res.text == res.readings[0]["text"]
    cer_vote = corpus_scores(refs, voted, [True] * len(refs))["cer"]
    cer_worst = corpus_scores(refs, worst, [True] * len(refs))["cer"]
    assert cer_vote <= cer_worst


def test_compare_vote_mode(tmp_path):
    (v,) = parse_variants(["vote:bicubic/none"], "ocr", ("select", "vote"), ("none",))
    assert v.mode == "vote" and v.candidates == ("bicubic", "none")
    rep = preproc.compare(SAMPLE, task="ocr", variants=["none", "bicubic", "vote:bicubic/none/lanczos"], sizes=[10],
                          limit=3, device="cpu", progress=False)
    row = next(r for r in rep.rows if r["mode"] == "vote")
    assert row["n"] == 3 and row["chosen"] == {"vote": 3} and row["cer"] is not None


def test_alternatives_add_votes_only_when_asked():
    # two readings disagree on one character; the second's alternatives back the first's choice
    a = {"text": "c4t", "confidence": 60, "char_conf": [90, 60, 90]}
    b = {"text": "cat", "confidence": 70, "char_conf": [90, 70, 90], "char_alts": [[], [["4", 90]], []]}
    c = {"text": "cat", "confidence": 55, "char_conf": [90, 55, 90]}
    assert vote([a, b, c])[0] == "cat"
    d = {"text": "c4t", "confidence": 60, "char_conf": [90, 60, 90]}
    assert vote([a, b, c, d], alt_weight=0.0)[0] == "cat"
    assert vote([a, b, c, d], alt_weight=1.0)[0] == "c4t"
    with pytest.raises(ConfigError, match="alternative lists"):
        Reading(tuple("ab"), (1.0, 1.0), "x", ((),))


def test_bare_vote_in_compare_reads_what_read_voted_reads():
    # `--variants vote` must be the vote a user gets from preproc.read_voted, whatever else the run computes.
    from preproc.compare import parse_variants
    from preproc.compare.ocr import OcrTask
    from preproc.vote import DEFAULT_CANDIDATES

    got = {v.name: v for v in parse_variants(["none", "cleanup", "vote", "select"], "ocr", OcrTask.modes,
                                             OcrTask.default_candidates, OcrTask.mode_candidates)}
    assert got["vote"].candidates == DEFAULT_CANDIDATES
    # other bare modes: the task's defaults plus everything the run computes, as before
    assert got["select"].candidates == ("none", "bicubic", "cleanup", "default", "text-sr-v3", "text-sr@2",
                                        "default~thick", "text-sr-v3~thick", "default~x1.4", "text-sr-v3~x1.4")

"""RapidOCR adapter: the real PP-OCR engine on rendered lines, the protocol, a missing package."""

import builtins
import json
from pathlib import Path

import pytest
from PIL import Image

import preproc
from preproc.compare.task import area_resize, create_task
from preproc.errors import ConfigError, RecognizerUnavailableError
from preproc.hooks import KeepIfBetter, recognizer_kind
from preproc.metrics import corpus_scores

pytest.importorskip("rapidocr")
pytest.importorskip("onnxruntime")

from preproc.recognize.rapid import RapidOCR  # noqa: E402

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "ocr-sample"
ROWS = [json.loads(x) for x in (SAMPLE / "manifest.jsonl").read_text().splitlines()]


def _line(i: int, height: int) -> Image.Image:
    img = Image.open(SAMPLE / ROWS[i]["image"])
    return area_resize(img, round(img.width * height / img.height), height)


@pytest.fixture(scope="module")
def rapid():
    r = RapidOCR()
    yield r
    r.close()


def test_reads_rendered_lines(rapid):
    refs, hyps = [], []
    for i in range(4):
        res = rapid.read(_line(i, 16))
        assert res.engine == "rapidocr" and 0.0 < res.confidence <= 100.0
        assert res.symbols is None and [w.text for w in res.words] == res.text.split()
        refs.append(ROWS[i]["text"])
        hyps.append(res.text)
    assert corpus_scores(refs, hyps, [True] * len(refs))["cer"] < 0.05


def test_symbols_give_one_confidence_per_character(rapid):
    res = rapid.read(_line(1, 12), symbols=True)
    assert "".join(s.text for s in res.symbols) == res.text.replace(" ", "")
    assert all(0.0 <= s.confidence <= 100.0 for s in res.symbols)
    assert res.symbols[-1].word == len(res.text.split()) - 1


def test_blank_image_reads_as_little_or_nothing(rapid):
    res = rapid.read(Image.new("RGB", (200, 32), "white"))
    assert len(res.text) <= 2


def test_bad_threads_is_a_config_error():
    with pytest.raises(ConfigError, match="threads"):
        RapidOCR(threads=0)


@pytest.mark.parametrize("missing", ["rapidocr", "onnxruntime"])
def test_missing_package_names_the_pip_package(monkeypatch, missing):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == missing or name.startswith(missing + "."):
            raise ImportError(f"No module named {missing!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(RecognizerUnavailableError, match=rf"needs the {missing} package.*pip install rapidocr onnxruntime"):
        RapidOCR()


def test_compare_task_option_and_fingerprint():
    tk = create_task("ocr", recognizer="rapidocr")
    try:
        assert tk.options()["recognizer"] == "rapidocr" and tk.options()["engine_used"] == "rapidocr"
        rec = tk.recognize(_line(0, 12), None)
        assert rec["text"] and len(rec["char_conf"]) == len(rec["text"])
    finally:
        tk.close()
    assert "recognizer" not in create_task("ocr").options()  # Tesseract runs keep their old fingerprint
    with pytest.raises(ConfigError, match="unknown OCR recognizer 'easyocr'"):
        create_task("ocr", recognizer="easyocr")


def test_keep_if_better_takes_rapidocr(rapid):
    assert recognizer_kind(rapid) == "rapidocr"
    crop = _line(2, 10)
    out = preproc.enhance(crop, task="ocr", upscaler="bicubic", hooks=[KeepIfBetter(rapid)])
    k = out.meta["keep_if_better"]
    assert k["kept"] in ("original", "enhanced") and "why" in k
    assert out.meta["recognition"]["before"]["engine"] == "rapidocr"
    assert (out.image.size == crop.size) == (k["kept"] == "original")


def test_cli_recognizer_flag(tmp_path, capsys):
    from preproc.cli import main as cli_main

    rc = cli_main(["compare", "--task", "ocr", "--dataset", str(SAMPLE), "--variants", "none,bicubic",
                   "--sizes", "12", "--limit", "2", "--out", str(tmp_path / "o"), "--recognizer", "rapidocr",
                   "--no-progress", "--sheet-samples", "0"])
    assert rc == 0
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    assert rep["settings"]["task_options"]["recognizer"] == "rapidocr"
    assert all(r["n"] == 2 for r in rep["rows"])

"""The comparison framework: variants, the OCR task end to end, resume, failures, a custom task, the CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import preproc
from preproc.cli import main as cli_main
from preproc.compare import CompareTask, area_resize, parse_variants, register_task, spread
from preproc.compare.variants import candidate_unavailable
from preproc.datasets import read_manifest, read_pairs
from preproc.errors import ConfigError, DatasetError, UnknownTaskError

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "ocr-sample"
OCR_MODES = ("select",)
OCR_DEFAULTS = ("none", "bicubic", "cleanup")


# --- variants --------------------------------------------------------------------------
def test_parse_single_guard_and_select():
    vs = parse_variants(["none", "bicubic", "lanczos+guard", "select"], "ocr", OCR_MODES, OCR_DEFAULTS)
    by = {v.name: v for v in vs}
    assert by["none"].mode == "single" and by["none"].candidates == ("none",)
    assert by["lanczos+guard"].mode == "guard" and by["lanczos+guard"].candidates == ("lanczos", "none")
    # a bare select: the task's defaults, then everything else the run computes
    assert by["select"].candidates == ("none", "bicubic", "cleanup", "lanczos")


def test_parse_explicit_select_list():
    (v,) = parse_variants(["select:bicubic/cleanup-bin"], "ocr", OCR_MODES, OCR_DEFAULTS)
    assert v.mode == "select" and v.candidates == ("bicubic", "cleanup-bin")


@pytest.mark.parametrize(
    "names, match",
    [
        (["bilinear"], "unknown variant 'bilinear'"),
        (["none+guard"], r"\+guard applies to one enhancing variant"),
        (["select+guard"], r"\+guard applies"),
        (["select:bicubic"], "at least two candidates"),
        (["bicubic:none/x"], "only the modes select take"),
        (["none", "none"], "repeated"),
        ([], "no variants"),
    ],
)
def test_parse_errors(names, match):
    with pytest.raises(ConfigError, match=match):
        parse_variants(names, "ocr", OCR_MODES, OCR_DEFAULTS)


def test_cleanup_is_an_ocr_only_candidate():
    with pytest.raises(ConfigError, match="for task.*ocr.*not 'face'"):
        parse_variants(["cleanup"], "face", ("fuse",), ("bicubic",))


def test_spread_is_even_and_deterministic():
    assert spread(list(range(10)), None) == list(range(10))
    assert spread(list(range(10)), 5) == [0, 2, 4, 6, 8]
    assert spread(list(range(10)), 3) == [0, 3, 6]
    assert spread(list(range(3)), 10) == [0, 1, 2]
    with pytest.raises(ConfigError):
        spread([1, 2], 0)


def test_unavailable_backend_is_reported():
    if "sd-x4" not in preproc.upscaler_names():
        pytest.skip("sd-x4 backend not registered")
    from preproc.upscalers import upscaler_class

    why = candidate_unavailable("sd-x4")
    assert (why is None) == upscaler_class("sd-x4").is_available()
    assert candidate_unavailable("bicubic") is None and candidate_unavailable("cleanup") is None


# --- datasets ----------------------------------------------------------------------------
def test_manifest_errors_name_the_problem(tmp_path):
    with pytest.raises(DatasetError, match="has no manifest.jsonl"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"id": "a", "image": "a.png"}\n{"id": "a", "image": "b.png"}\n')
    with pytest.raises(DatasetError, match="duplicate id 'a'"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"id": "a", "image": "a.png"}\nnot json\n')
    with pytest.raises(DatasetError, match=r"manifest.jsonl:2: not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"id": "a", "image": "a.png"}\n')
    with pytest.raises(DatasetError, match="no 'text' field"):
        read_manifest(tmp_path, require=("text",))
    (tmp_path / "pairs.jsonl").write_text('{"a": "a", "b": "zz", "same": false}\n')
    with pytest.raises(DatasetError, match=r"id\(s\) \['zz'\] not in the manifest"):
        read_pairs(tmp_path, read_manifest(tmp_path))


# --- the OCR task end to end ---------------------------------------------------------------
@pytest.fixture(scope="module")
def ocr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cmp")
    report = preproc.compare(SAMPLE, task="ocr", variants=["none", "bicubic", "bicubic+guard", "select"],
                             sizes=[8, 12], jpeg=[None, 75], limit=4, out=out, sheet_samples=2, progress=False)
    return report, out


def test_report_rows_and_files(ocr_run):
    report, out = ocr_run
    doc = json.loads((out / "report.json").read_text())
    rows = doc["rows"]
    assert len(rows) == 4 * 2 * 2
    for r in rows:
        for key in ("variant", "size", "jpeg", "n", "cer", "word_acc", "seconds_per_item", "failures"):
            assert key in r
        assert r["n"] == 4 and r["failures"] == 0
        assert 0.0 <= r["word_acc"] <= 1.0 and r["cer"] >= 0.0 and r["seconds_per_item"] > 0
    md = (out / "report.md").read_text()
    assert "| variant | 8 | 12 |" in md and "bicubic+guard" in md
    for name in ("plot_cer.png", "plot_cer_q75.png", "plot_word_acc.png", "contact_sheet.png"):
        assert Image.open(out / name).size[0] > 100
    assert len(list((out / "samples").iterdir())) == 2


def test_guard_and_select_choose_by_confidence(ocr_run):
    report, out = ocr_run
    cache = {}
    for line in (out / "cache.jsonl").read_text().splitlines():
        o = json.loads(line)
        cache[tuple(o["key"][:3]) + (o["key"][3],)] = o["rec"]
    ids = [r.id for r in spread(read_manifest(SAMPLE), 4)]
    for size in (8, 12):
        guard = report.row("bicubic+guard", size)
        sel = report.row("select", size)
        assert sum(sel["chosen"].values()) == sel["n"] == 4
        assert sel["candidates"] == ["none", "bicubic", "cleanup"]
        # +guard: the OCR task's fitted rule (preproc.hooks.guard_choice, Tesseract, backend bicubic)
        from preproc.hooks import guard_choice

        want_orig = sum(not guard_choice(cache[(i, size, None, "bicubic")], cache[(i, size, None, "none")],
                                         "tesseract", "bicubic")[0] for i in ids)
        assert guard["chosen"].get("none", 0) == want_orig
        # select is at least as confident as every candidate on every sample, so its
        # seconds are the sum of its candidates'
        assert sel["seconds_per_item"] > report.row("bicubic", size)["seconds_per_item"]


def test_rerun_resumes_from_the_cache(ocr_run, tmp_path):
    report, out = ocr_run
    before = (out / "cache.jsonl").read_text()
    again = preproc.compare(SAMPLE, task="ocr", variants=["none", "bicubic", "bicubic+guard", "select"],
                            sizes=[8, 12], jpeg=[None, 75], limit=4, out=out, sheet_samples=2, progress=False)
    assert (out / "cache.jsonl").read_text() == before  # nothing recomputed
    assert [r["cer"] for r in again.rows] == [r["cer"] for r in report.rows]


def test_result_cache_of_a_finished_run_holds_its_own_lines_only(ocr_run, tmp_path):
    from preproc.compare.cache import ResultCache

    _, out = ocr_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    lines = (run / "cache.jsonl").read_text().splitlines()
    own = {tuple(o["key"]): o["rec"] for o in map(json.loads, lines)}
    foreign = json.loads(lines[0])
    foreign["fp"], foreign["rec"] = "0" * 16, {"text": "from another run"}
    (run / "cache.jsonl").write_text("\n".join([*lines, json.dumps(foreign)]) + "\n")
    cache, settings = ResultCache.of_run(run)
    assert settings == json.loads((out / "report.json").read_text())["settings"]
    assert {k: v["rec"] for k, v in cache.entries.items()} == own  # the foreign line is not read
    with pytest.raises(DatasetError, match="report.json"):
        ResultCache.of_run(tmp_path / "nothing-here")


def test_interrupted_cache_line_is_ignored(tmp_path):
    out = tmp_path / "o"
    preproc.compare(SAMPLE, variants=["none"], sizes=[10], limit=2, out=out, progress=False)
    lines = (out / "cache.jsonl").read_text().splitlines()
    (out / "cache.jsonl").write_text(lines[0] + "\n" + lines[1][: len(lines[1]) // 2])  # torn last write
    rep = preproc.compare(SAMPLE, variants=["none"], sizes=[10], limit=2, out=out, progress=False)
    assert rep.rows[0]["n"] == 2
    assert len((out / "cache.jsonl").read_text().splitlines()) == 3  # one line recomputed


def test_a_failing_sample_is_recorded_and_skipped(tmp_path):
    ds = tmp_path / "ds"
    (ds / "images").mkdir(parents=True)
    recs = read_manifest(SAMPLE)[:2]
    lines = []
    for r in recs:
        shutil.copy(r.image, ds / "images" / r.image.name)
        lines.append(json.dumps({"id": r.id, "image": f"images/{r.image.name}", "text": r.get("text")}))
    (ds / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    lines.append(json.dumps({"id": "broken", "image": "images/broken.png", "text": "x"}))
    (ds / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    rep = preproc.compare(ds, variants=["none", "bicubic"], sizes=[10], out=tmp_path / "o", progress=False)
    for r in rep.rows:
        assert r["n"] == 2 and r["failures"] == 1
        assert any("CorruptImageError" in k or "NotAnImageError" in k for k in r["errors"])


def test_bad_arguments_fail_early(tmp_path):
    with pytest.raises(ConfigError, match="JPEG quality"):
        preproc.compare(SAMPLE, variants=["none"], sizes=[8], jpeg=101)
    with pytest.raises(ConfigError, match="positive integers"):
        preproc.compare(SAMPLE, variants=["none"], sizes=[0])
    with pytest.raises(UnknownTaskError, match="no comparison task named 'ocrx'"):
        preproc.compare(SAMPLE, task="ocrx")
    with pytest.raises(DatasetError, match="not a folder"):
        preproc.compare(tmp_path / "missing")


# --- the task interface, as another task (faces) uses it ------------------------------------
class DarkTask(CompareTask):
    """A toy task: 'recognises' the mean darkness; its metric is the mean of it. Adds a `fuse` mode."""

    name = "dark"
    preset = "generic"
    metrics = ("darkness",)
    higher_is_better = {"darkness": True}
    default_sizes = (6,)
    default_candidates = ("none",)
    modes = ("select", "fuse")

    def load(self, dataset, limit):
        return spread(read_manifest(dataset), limit)

    def degrade(self, record, size, jpeg):
        img = Image.open(record.image)
        return area_resize(img, size * 4, size)

    def recognize(self, image, record):
        d = 1.0 - float(np.asarray(image.convert("L"), np.float32).mean()) / 255.0
        return {"confidence": d, "darkness": d}

    def combine(self, mode, recs):
        if mode == "fuse":
            d = float(np.mean([r["darkness"] for r in recs]))
            return -1, {"confidence": d, "darkness": d}
        return super().combine(mode, recs)

    def evaluate(self, records, recs):
        return {"darkness": float(np.mean([r["darkness"] for r in recs])), "n": len(recs) * 10}


def test_a_registered_task_with_its_own_mode(tmp_path):
    register_task("dark", DarkTask)
    rep = preproc.compare(SAMPLE, task="dark", variants=["none", "nearest", "fuse", "select"], limit=3,
                          out=tmp_path, progress=False)
    by = {r["variant"]: r for r in rep.rows}
    assert by["fuse"]["candidates"] == ["none", "nearest"]
    assert by["fuse"]["chosen"] == {"fuse": 3}
    assert by["none"]["n"] == 30  # the task's own unit count
    expected = (by["none"]["darkness"] + by["nearest"]["darkness"]) / 2
    assert by["fuse"]["darkness"] == pytest.approx(expected)
    assert by["select"]["darkness"] >= max(by["none"]["darkness"], by["nearest"]["darkness"]) - 1e-9
    assert (tmp_path / "plot_darkness.png").is_file()


# --- the CLI ---------------------------------------------------------------------------------
def test_cli_compare(tmp_path, capsys):
    rc = cli_main(["compare", "--task", "ocr", "--dataset", str(SAMPLE), "--sizes", "10", "--jpeg", "75",
                   "--variants", "none,cleanup", "--limit", "2", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    doc = json.loads((tmp_path / "report.json").read_text())
    assert {(r["variant"], r["size"], r["jpeg"]) for r in doc["rows"]} == {("none", 10, 75), ("cleanup", 10, 75)}
    assert "| cleanup |" in capsys.readouterr().out


def test_cli_reports_errors_without_traceback(tmp_path, capsys):
    rc = cli_main(["compare", "--dataset", str(SAMPLE), "--variants", "bilinear", "--out", str(tmp_path)])
    assert rc == 2
    assert "unknown variant 'bilinear'" in capsys.readouterr().err


def test_preproc_compare_is_both_callable_and_the_package():
    import preproc.compare.ocr  # noqa: F401 - importing a submodule must not shadow the function

    assert callable(preproc.compare)
    assert preproc.compare.CompareTask is CompareTask
    assert preproc.compare.ocr.OcrTask.name == "ocr"


@pytest.mark.slow
def test_demo_runs_on_the_bundled_sample(tmp_path, capsys):
    from preproc.demo import demo_variants, main

    assert main(["--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for v in demo_variants():
        assert f"| {v} |" in out
    doc = json.loads((tmp_path / "report.json").read_text())
    assert all(r["n"] == 30 and r["failures"] == 0 for r in doc["rows"])


def test_contact_sheet_images_are_remade_on_resume(tmp_path):
    kw = dict(variants=["none", "bicubic"], sizes=[10], limit=2, out=tmp_path, sheet_samples=1, progress=False)
    preproc.compare(SAMPLE, **kw)
    images = sorted((tmp_path / "samples").rglob("*.png"))
    assert len(images) == 2
    shutil.rmtree(tmp_path / "samples")
    preproc.compare(SAMPLE, **kw)
    assert sorted((tmp_path / "samples").rglob("*.png")) == images


def test_bicubic_candidate_keeps_the_whole_line_at_a_fractional_gate_scale():
    from preproc.compare.variants import CandidateContext

    img = Image.open(SAMPLE / "images" / "line-000.png")
    crop = area_resize(img, round(img.width * 30 / img.height), 30)
    out = CandidateContext("ocr").upscale(crop, "bicubic")
    scale = out.height / crop.height
    assert scale != int(scale)  # the gate chose a fractional scale here
    # shrunk back to the crop's size it matches the crop: nothing cut off and stretched
    back = np.asarray(out.resize(crop.size, Image.Resampling.BOX), np.float32)
    assert np.abs(back - np.asarray(crop.convert("L"), np.float32)).mean() / 255 < 0.04


def test_no_resume_starts_a_new_cache(tmp_path):
    kw = dict(variants=["none"], sizes=[10], limit=2, out=tmp_path, progress=False)
    preproc.compare(SAMPLE, **kw)
    with open(tmp_path / "cache.jsonl", "a") as f:
        f.write('{"fp": "another run", "key": ["x", 10, null, "none"]}\n')
    preproc.compare(SAMPLE, **kw)  # resumes: nothing added, the foreign line is kept
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 3
    preproc.compare(SAMPLE, resume=False, **kw)
    lines = (tmp_path / "cache.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "another run" not in "".join(lines)


@pytest.mark.parametrize("rows, cols", [(slice(0, 40), 30), (20, slice(10, 50))])
def test_sparse_ink_crops_do_not_break_the_gate(rows, cols):
    """A one-pixel-wide vertical stroke (one ink pixel per row) or a one-row rule: nothing to measure."""
    from preproc.gate import estimate_x_height

    a = np.ones((40, 60, 3), np.float32)
    a[rows, cols] = 0.0
    assert estimate_x_height(a) is None
    out = preproc.enhance(a, task="ocr", upscaler="bicubic")
    assert out.meta["gate_measured"]["x_height"] is None


def test_new_weights_of_the_same_backend_are_not_read_from_the_cache(tmp_path):
    # The same backend name with other weights (a new shipped text-sr, another model= file) must
    # be computed anew on resume, never taken from the old run's cache.
    from preproc.train.model import build_net, save_weights

    a = save_weights(build_net(8, 2), tmp_path / "a.safetensors")
    b = save_weights(build_net(8, 3), tmp_path / "b.safetensors")
    kw = dict(variants=["text-sr"], sizes=[10], limit=2, out=tmp_path / "o", progress=False)
    first = preproc.compare(SAMPLE, overrides={"model": str(a)}, **kw)
    assert len((tmp_path / "o" / "cache.jsonl").read_text().splitlines()) == 2
    preproc.compare(SAMPLE, overrides={"model": str(a)}, **kw)  # same weights: resumed, nothing added
    assert len((tmp_path / "o" / "cache.jsonl").read_text().splitlines()) == 2
    second = preproc.compare(SAMPLE, overrides={"model": str(b)}, **kw)
    assert len((tmp_path / "o" / "cache.jsonl").read_text().splitlines()) == 4  # recomputed
    wa, wb = first.settings["weights"]["text-sr"], second.settings["weights"]["text-sr"]
    assert wa != wb and len(wa) == 16


def test_weights_identity_of_shipped_and_weightless_candidates():
    from preproc.compare.variants import weights_identity
    from preproc.upscalers import text_sr

    got = weights_identity(["default", "text-sr@2", "text-sr-v1", "bicubic", "none", "cleanup"], "ocr", "cpu")
    assert set(got) == {"default", "text-sr@2", "text-sr-v1"}  # bicubic, none, cleanup load no weights
    import hashlib

    main = hashlib.sha256(text_sr.SHIPPED_WEIGHTS.read_bytes()).hexdigest()[:16]
    small = hashlib.sha256(text_sr.SMALL_WEIGHTS.read_bytes()).hexdigest()[:16]
    assert got["text-sr@2"] == main != got["text-sr-v1"]
    assert got["default"] == f"{small}+{main}"  # small crops get text-sr-small: both files count

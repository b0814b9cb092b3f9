"""Fuzz ``preproc compare`` with broken datasets: missing fields, missing or broken images,
duplicate ids, non-UTF-8 and non-JSON lines, an empty set, broken ``pairs.jsonl`` for faces.

Contract: a report (every record is either measured or counted as a failure, and the
report files are complete) or a ``PreprocError`` naming the dataset file; no other
exception, no hang. OCR runs the real Tesseract with the ``none`` variant (cheap); the
face task is fuzzed through its loading step (``FaceTask.load``, where manifests and pairs
are read and checked), so no face model is loaded per example.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fuzzkit import case, fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import VALID_FILES

from preproc.compare import compare
from preproc.compare.task import create_task
from preproc.errors import DatasetError

pytestmark = pytest.mark.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {"good.png": VALID_FILES["rgb.png"], "good.jpg": VALID_FILES["photo.jpg"],
          "cut.png": VALID_FILES["rgb.png"][:100], "empty.png": b"", "text.png": b"not an image"}
IMAGE_NAMES = [*IMAGES, "missing.png", "sub", "../outside.png", "/nonexistent/abs.png"]


def _ocr_available() -> bool:
    try:
        create_task("ocr").close()
    except Exception:  # noqa: BLE001 - no Tesseract here
        return False
    return True


# one record: good, or damaged in one of the ways users damage manifests
FIELD_VALUES = st.one_of(st.text(max_size=8), st.integers(), st.none(), st.lists(st.integers(), max_size=2),
                         st.booleans(), st.floats(allow_nan=True))


@st.composite
def records(draw, task: str = "ocr") -> dict:
    rec = {"id": draw(st.text(min_size=1, max_size=6)), "image": draw(st.sampled_from(IMAGE_NAMES))}
    if task == "ocr":
        rec["text"] = draw(st.text(max_size=12))
    else:
        rec["identity"] = draw(st.sampled_from(["p1", "p2", "p3"]))
    if draw(st.integers(0, 4)) == 0:
        rec[draw(st.sampled_from(sorted(rec)))] = draw(FIELD_VALUES)  # a wrong type
    if draw(st.integers(0, 5)) == 0:
        rec.pop(draw(st.sampled_from(sorted(rec))))  # a missing field
    if draw(st.integers(0, 6)) == 0:
        rec["box"] = draw(st.one_of(st.lists(st.integers(-5, 50), max_size=5), st.text(max_size=3)))
    return rec


RAW_LINES = st.sampled_from([b"", b"   ", b"{not json", b"[1, 2]", b"null", b"\xff\xfe{}", b'{"id": "caf\xe9"}',
                             b"\xef\xbb\xbf{}", b"\x00", b'"just a string"', b"{}"])


@st.composite
def jsonl(draw, items) -> bytes:
    """JSON lines of ``items`` with, sometimes, raw damaged lines and duplicates mixed in."""
    lines = [json.dumps(x).encode() for x in draw(items)]
    if lines and draw(st.integers(0, 4)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), lines[draw(st.integers(0, len(lines) - 1))])  # duplicate
    if draw(st.integers(0, 3)) == 0:
        lines.insert(draw(st.integers(0, len(lines))), draw(RAW_LINES))
    return b"".join(ln + b"\n" for ln in lines)


def make_dataset(folder: Path, manifest: bytes, pairs: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in IMAGES.items():
        (folder / name).write_bytes(data)
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "manifest.jsonl").write_bytes(manifest)
    if pairs is not None:
        (folder / "pairs.jsonl").write_bytes(pairs)
    return folder


def _names(folder: Path) -> list[str]:
    return [str(folder), str(folder / "manifest.jsonl"), str(folder / "pairs.jsonl")]


@pytest.mark.slow
@fuzz_settings(10, long=60)
@given(manifest=jsonl(st.lists(records("ocr"), max_size=5)))
@example(manifest=b"")  # an empty set: an empty report before the fix
@example(manifest=b'{"id": "a", "image": "good.png", "text": "x"}\n\xff\xfe\n')  # UnicodeDecodeError before the fix
@example(manifest=b'\xef\xbb\xbf{"id": "a", "image": "good.png", "text": "x"}\n')  # a BOM is fine
def test_ocr_compare_on_broken_manifests(manifest, tmp_path_factory):
    if not _ocr_available():
        pytest.skip("Tesseract is not installed")
    folder = make_dataset(tmp_path_factory.mktemp("ds") / "set", manifest)
    out = folder.parent / "out"
    with case("compare/ocr-manifest", names=_names(folder), seconds=300) as c:
        c.result = compare(folder, task="ocr", variants=["none"], sizes=[10], out=out, progress=False,
                           sheet_samples=1)
    if c.result is None:
        assert isinstance(c.error, DatasetError) or "manifest" in str(c.error), c.error
        return
    n_records = c.result.settings["samples"]
    assert n_records >= 1
    for row in c.result.rows:
        assert row["n"] + row["failures"] == n_records, row  # every record measured or counted as failed
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))  # complete, parseable
    assert report["task"] == "ocr"
    assert not [p for p in out.rglob(".*.tmp*")], "temporary files left behind"


FACE_RECORDS = [{"id": "a", "image": "good.png", "identity": "p1"}, {"id": "b", "image": "good.jpg", "identity": "p2"},
                {"id": "c", "image": "good.png", "identity": "p1"}]
PAIR_ITEMS = st.lists(st.fixed_dictionaries(
    {"a": st.sampled_from(["a", "b", "c", "zz"]), "b": st.sampled_from(["a", "b", "c"])},
    optional={"same": st.one_of(st.booleans(), st.sampled_from(["false", "true", 0, 1, None, 2])),
              "set": st.sampled_from(["s1", "s2", 3])}), max_size=6)


@fuzz_settings(40)
@given(manifest=st.one_of(st.just(b"".join(json.dumps(r).encode() + b"\n" for r in FACE_RECORDS)),
                          jsonl(st.lists(records("face"), max_size=4))),
       pairs=st.one_of(st.just(b'{"a": "a", "b": "c", "same": true, "set": "s1"}\n{"a": "a", "b": "b", "same": false}\n'),
                       jsonl(PAIR_ITEMS), st.none()), limit=st.sampled_from([None, None, 1, 2, 4]),
       pair_set=st.sampled_from([None, None, "s1", "nope"]))
@example(manifest=b"".join(json.dumps(r).encode() + b"\n" for r in FACE_RECORDS),
         pairs=b'{"a": "a", "b": "b", "same": "false"}\n{"a": "a", "b": "c", "same": true}\n', limit=None, pair_set=None)
@example(manifest=b"".join(json.dumps(r).encode() + b"\n" for r in FACE_RECORDS), pairs=b"\n", limit=None,
         pair_set=None)  # no pairs: the message did not name the file
def test_face_dataset_loading_on_broken_pairs(manifest, pairs, limit, pair_set, tmp_path_factory):
    folder = make_dataset(tmp_path_factory.mktemp("face") / "set", manifest, pairs)
    with case("compare/face-load", seconds=60) as c:
        task = create_task("face", pair_set=pair_set)
        c.result = task.load(folder, limit)
    if isinstance(c.error, DatasetError):
        assert any(n in str(c.error) for n in _names(folder)), c.error  # names the dataset's file
    elif c.error is not None:
        assert str(limit) in str(c.error), c.error  # a bad argument: the message gives its value
    else:
        pairs_read = task._pairs
        assert any(p.same for p in pairs_read) and not all(p.same for p in pairs_read)
        ids = {r.id for r in c.result}
        assert all(p.a in ids and p.b in ids for p in pairs_read)


@pytest.mark.slow
def test_compare_cli_broken_manifest_exit_code(tmp_path):
    """The command reports a broken dataset as an error naming the file, with exit status 2."""
    if not _ocr_available():
        pytest.skip("Tesseract is not installed")
    folder = make_dataset(tmp_path / "set", b'{"id": "a", "image": "good.png", "text": "x"}\n\xff\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with case("cli/compare-broken", seconds=300):
        proc = subprocess.run([sys.executable, "-m", "preproc", "compare", "--task", "ocr", "--dataset", str(folder),
                               "--variants", "none", "--sizes", "10", "--out", str(tmp_path / "out"), "--no-progress"],
                              capture_output=True, text=True, timeout=280, env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "manifest.jsonl:2" in proc.stderr and "UTF-8" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_pairs_same_must_be_a_boolean(tmp_path):
    """``"same": "false"`` was read as True (``bool("false")``)."""
    from preproc.datasets import read_pairs

    folder = make_dataset(tmp_path / "set", b"".join(json.dumps(r).encode() + b"\n" for r in FACE_RECORDS),
                          b'{"a": "a", "b": "b", "same": "false"}\n')
    with case("compare/face-load", names=[str(folder / "pairs.jsonl")]) as c:
        read_pairs(folder)
    assert isinstance(c.error, DatasetError) and "'same'" in str(c.error)


COMPARE_BAD_ARGS = [["--sizes", "0"], ["--sizes", ""], ["--limit", "0"], ["--jpeg", "101"], ["--variants", ","],
                    ["--variants", "bogus"], ["--variants", "none+guard"], ["--variants", "select:none"],
                    ["--task", "bogus"], ["--task-opt", "bogus=1"], ["--task-opt", "mode=weird"], ["OUT_IS_A_FILE"],
                    ["DATASET_IS_A_FILE"]]


@pytest.mark.parametrize("extra", COMPARE_BAD_ARGS, ids=lambda e: "_".join(e))
def test_compare_cli_bad_arguments_exit_2_without_a_traceback(extra, tmp_path, capsys):
    """In-process (``preproc.cli.main``): each bad argument is one error line and exit status 2."""
    from preproc.cli import main

    if not _ocr_available():
        pytest.skip("Tesseract is not installed")
    folder = make_dataset(tmp_path / "set", b'{"id": "a", "image": "good.png", "text": "x"}\n')
    out, dataset = tmp_path / "out", folder
    if extra == ["OUT_IS_A_FILE"]:  # NotADirectoryError before the fix
        out.write_text("a file")
        extra = []
    elif extra == ["DATASET_IS_A_FILE"]:
        dataset, extra = folder / "good.png", []
    argv = ["compare", "--task", "ocr", "--dataset", str(dataset), "--variants", "none", "--sizes", "10",
            "--out", str(out), "--no-progress", *extra]
    with case("cli/compare-arguments", seconds=300):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse's own refusals (exit 2 too)
            rc = e.code
    err = capsys.readouterr().err
    assert rc == 2 and "error" in err and "Traceback" not in err, (rc, err)


PY_ARGS = st.fixed_dictionaries({}, optional={
    "dataset": st.sampled_from([None, 5, "DATASET_AS_PATH"]),
    "limit": st.sampled_from([None, 1, "3", 1.5, 0, True]),
    "sizes": st.sampled_from([None, [10], "10", [10.5], [float("nan")], [None], (s for s in [10]), [0]]),
    "jpeg": st.sampled_from([None, 0, 75, [None, 75], "x", float("nan"), 101]),
    "variants": st.sampled_from([["none"], "none", None, [1], (v for v in ["none"]), []]),
    "task_options": st.sampled_from([None, {}, 5, {"bogus": 1}]),
    "overrides": st.sampled_from([None, {}, 5]),
    "sheet_samples": st.sampled_from([0, 1, "x", -1]),
    "out": st.sampled_from([None, 5]),
})


@pytest.mark.slow
@fuzz_settings(25, long=100)
@given(args=PY_ARGS)
@example(args={"dataset": None})  # TypeError before the fix
@example(args={"limit": "3"})  # TypeError
@example(args={"sizes": [float("nan")]})  # ValueError
@example(args={"jpeg": "x"})  # ValueError
@example(args={"variants": None})  # TypeError
@example(args={"variants": [1]})  # AttributeError
@example(args={"task_options": 5})  # TypeError
@example(args={"sheet_samples": "x"})  # TypeError
@example(args={"out": 5})  # TypeError
def test_compare_python_arguments(args, tmp_path_factory):
    """``preproc.compare(...)`` with every argument fuzzed: a report or a typed error (a ConfigError for bad types)."""
    if not _ocr_available():
        pytest.skip("Tesseract is not installed")
    folder = make_dataset(tmp_path_factory.mktemp("args") / "set", b'{"id": "a", "image": "good.png", "text": "x"}\n')
    kw = {"dataset": folder, "task": "ocr", "variants": ["none"], "sizes": [10], "out": folder.parent / "out",
          "progress": False, **args}
    if kw["dataset"] == "DATASET_AS_PATH":
        kw["dataset"] = str(folder)
    with case("compare/python-arguments", seconds=300) as c:
        c.result = compare(**kw)
    if c.result is not None:
        assert c.result.rows

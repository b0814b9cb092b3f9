"""A real ``python -m preproc enhance`` killed with SIGKILL at several points, then re-run.

After the re-run every input appears exactly once in ``meta.jsonl`` (written or failed),
every PNG decodes and equals an uninterrupted run's, no temporary file is left, and no
item that had finished before the kill was done again (its journal line and its PNG are
untouched). The kill points are reached deterministically through
``$PREPROC_TEST_CRASH_AT`` (preproc/commands/enhance.py), and once by polling the
journal from outside.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from preproc.commands.enhance import CRASH_ENV

ROOT = Path(__file__).resolve().parents[1]
N_GOOD = 14
BAD = {"broken.png": b"\x89PNG\r\n\x1a\n not really", "notes.jpg": b"plain text, not a JPEG"}
ARGS = ["--task", "ocr", "--upscaler", "text-sr", "--batch-size", "4", "--no-progress"]


def make_inputs(d: Path) -> list[str]:
    """Small text lines of several widths (some in a sub-folder), a truncated PNG and a non-image."""
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(1)
    keys = []
    for i in range(N_GOOD):
        text = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz 0123456789"), size=4 + 3 * (i % 5)))
        img = Image.new("L", (8 + 7 * len(text), 14), 255)
        ImageDraw.Draw(img).text((3, 1), text, fill=0)
        img = img.resize((img.width * 10 // 14, 10), Image.BILINEAR)
        rel = Path("sub" if i % 3 == 0 else ".") / f"line{i:02d}.png"
        img.save(d / rel)
        keys.append(rel.as_posix().removeprefix("./"))
    full = d / "sub" / "line00.png"
    (d / "truncated.png").write_bytes(full.read_bytes()[:40])
    for name, data in BAD.items():
        (d / name).write_bytes(data)
    return sorted(keys + ["truncated.png", *BAD])


def enhance_cmd(src: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "preproc", "enhance", str(src), "-o", str(out), *ARGS]


def run_cli(src: Path, out: Path, crash: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash:
        env[CRASH_ENV] = crash
    return subprocess.run(enhance_cmd(src, out), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def journal_lines(out: Path) -> list[str]:
    """The whole lines of the journal (a torn tail is not a line)."""
    p = out / "meta.jsonl"
    if not p.is_file():
        return []
    data = p.read_text()
    return data[: data.rfind("\n") + 1].splitlines()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, list[str]]:
    d = tmp_path_factory.mktemp("resume") / "in"
    return d, make_inputs(d)


@pytest.fixture(scope="module")
def clean_run(inputs, tmp_path_factory) -> Path:
    """An uninterrupted run: the reference outputs."""
    src, _ = inputs
    out = tmp_path_factory.mktemp("clean") / "out"
    res = run_cli(src, out)
    assert res.returncode == 1, res.stderr  # the corrupt inputs fail, the run goes on
    return out


def assert_same_png(got_path: Path, want_path: Path) -> None:
    """The PNG decodes whole and equals the reference to 1 grey level on at most 0.1 % of its pixels.

    Not bit-equal: a resumed run puts other crops together in ``enhance_many``'s buckets,
    and float rounding then moves a rare pixel across a rounding edge (measured: 1 pixel
    of 118,400 by one level).
    """
    got = np.asarray(Image.open(got_path)).astype(int)
    want = np.asarray(Image.open(want_path)).astype(int)
    assert got.shape == want.shape, got_path
    diff = np.abs(got - want)
    assert diff.max() <= 1 and (diff > 0).mean() <= 1e-3, (got_path, diff.max(), (diff > 0).sum())


def out_name(key: str) -> str:
    return str(Path(key).with_suffix(".png"))


def check_resumed(src: Path, keys: list[str], out: Path, reference: Path, before: list[str], pngs_before: dict) -> None:
    """Run again and check the rules of a resumed job."""
    res = run_cli(src, out)
    assert res.returncode == 1, res.stderr
    lines = journal_lines(out)
    recs = [json.loads(x) for x in lines]
    assert sorted(r["key"] for r in recs) == sorted(out_name(k) for k in keys)  # every input exactly once
    assert lines[: len(before)] == before  # what had finished was neither redone nor rewritten
    assert all(r["fingerprint"] == recs[0]["fingerprint"] for r in recs)
    failed = sorted(Path(r["input"]).name for r in recs if not r["ok"])
    assert failed == sorted(["truncated.png", *BAD])
    assert all(("CorruptImageError" in r["error"] or "NotAnImageError" in r["error"]) for r in recs if not r["ok"])
    for path, mtime in pngs_before.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was written again"
    made = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.name != "meta.jsonl" and p.is_file())
    assert made == sorted(out_name(r["key"]) for r in recs if r["ok"])  # no temporary or stray file
    for r in recs:
        if r["ok"]:
            assert_same_png(out / r["key"], reference / r["key"])
    assert (f"{len(before)} were already done" in res.stderr) == bool(before)


def snapshot(out: Path) -> tuple[list[str], dict]:
    lines = journal_lines(out)
    done = [json.loads(x) for x in lines]
    pngs = {out / r["key"]: (out / r["key"]).stat().st_mtime_ns for r in done if r["ok"]}
    return lines, pngs


@pytest.mark.slow
@pytest.mark.parametrize("crash, n_done", [("start:1", 0), ("record:6", 6), ("write:7", None)])
def test_sigkill_then_resume(inputs, clean_run, tmp_path, crash, n_done):
    src, keys = inputs
    out = tmp_path / "out"
    res = run_cli(src, out, crash)
    assert res.returncode == -signal.SIGKILL, res.stderr
    before, pngs = snapshot(out)
    if n_done is not None:
        assert len(before) == n_done
    if crash.startswith("write"):
        temps = [p for p in out.rglob(".*.tmp*")]
        assert len(temps) == 1 and temps[0].stat().st_size > 0  # the half-written PNG, under a temporary name
        final = temps[0].with_name(temps[0].name.split(".tmp")[0][1:])
        assert not final.exists()
        assert 0 < len(before) < len(keys)
    check_resumed(src, keys, out, clean_run, before, pngs)


@pytest.mark.slow
def test_sigkill_from_outside_with_a_torn_journal_line(inputs, clean_run, tmp_path):
    """Killed at an arbitrary moment once a few items are done; a torn line is added as a crash mid-append leaves it."""
    src, keys = inputs
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    proc = subprocess.Popen(enhance_cmd(src, out), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while len(journal_lines(out)) < 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    before, pngs = snapshot(out)
    assert proc.returncode == -signal.SIGKILL and 3 <= len(before) < len(keys)
    with open(out / "meta.jsonl", "a") as f:  # a record cut off in the middle
        f.write('{"key": "line99.png", "fingerprint": "')
    check_resumed(src, keys, out, clean_run, before, pngs)


@pytest.mark.slow
def test_force_redoes_and_changed_settings_redo(inputs, clean_run, tmp_path):
    src, keys = inputs
    out = tmp_path / "out"
    assert run_cli(src, out).returncode == 1
    first = journal_lines(out)
    assert len(first) == len(keys)
    res = subprocess.run(enhance_cmd(src, out) + ["--force"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 1 and "already done" not in res.stderr
    again = [json.loads(x) for x in journal_lines(out)]
    assert len(again) == len(keys)  # compacted back to one line per input
    assert {r["key"]: r["seconds"] for r in again if r["ok"]} != {json.loads(x)["key"]: json.loads(x).get("seconds")
                                                                  for x in first if json.loads(x)["ok"]}
    res = subprocess.run(enhance_cmd(src, out) + ["--scale", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "already done" not in res.stderr  # another fingerprint: nothing counts as done
    assert Image.open(out / "line01.png").height == 20


# --- preproc compare -------------------------------------------------------------------
SAMPLE = ROOT / "datasets" / "ocr-sample"
COMPARE_ARGS = ["--task", "ocr", "--dataset", str(SAMPLE), "--variants", "none,bicubic", "--sizes", "6,8,10,12",
                "--jpeg", "none,75", "--limit", "12", "--sheet-samples", "2", "--no-progress"]


@pytest.mark.slow
def test_compare_survives_sigkill_and_resumes_from_its_cache(tmp_path):
    """``preproc compare`` killed mid-run: the re-run recomputes only what was missing, the report matches a clean run."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "preproc", "compare", *COMPARE_ARGS, "--out", str(out)]
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    log = open(tmp_path / "stderr.txt", "w+")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
    cache = out / "cache.jsonl"
    try:
        deadline = time.monotonic() + 240
        while (not cache.is_file() or cache.read_text().count("\n") < 40) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        log.close()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()  # killed mid-run
    assert not (out / "report.json").exists()
    before = cache.read_text()
    whole = before[: before.rfind("\n") + 1].splitlines()
    with open(cache, "a") as f:  # and a line torn mid-append
        f.write('{"fp": "x", "key": ["a", 8')
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = cache.read_text().splitlines()
    assert lines[: len(whole)] == whole
    keys = [tuple(json.loads(x)["key"]) for x in lines if x.startswith("{") and x.endswith("}")]
    assert len(keys) == len(set(keys)) == 12 * 4 * 2 * 2  # each result once: nothing finished was redone
    ref = tmp_path / "ref"
    subprocess.run(cmd[:-1] + [str(ref)], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    got = json.loads((out / "report.json").read_text())
    want = json.loads((ref / "report.json").read_text())
    strip = ("seconds", "seconds_per_item")
    assert [{k: v for k, v in r.items() if not k.startswith(strip)} for r in got["rows"]] == \
        [{k: v for k, v in r.items() if not k.startswith(strip)} for r in want["rows"]]


def test_inputs_that_would_share_an_output_name_keep_their_suffixes(tmp_path):
    from preproc.commands.enhance import collect_inputs

    d = tmp_path / "in"
    (d / "s").mkdir(parents=True)
    for name in ("a.jpg", "a.png", "b.png", "s/a.png"):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(d / name)
    got = sorted(rel.as_posix() for _, rel in collect_inputs([str(d)]))
    assert got == ["a.jpg.png", "a.png.png", "b.png", "s/a.png"]

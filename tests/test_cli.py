"""The `preproc enhance` command: files and folders, failures recorded, atomic outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from preproc.cli import main

ROOT = Path(__file__).resolve().parents[1]


def make_inputs(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (12, 40), dtype=np.uint8)).save(d / "a.png")
    Image.fromarray(rng.integers(0, 256, (10, 30, 3), dtype=np.uint8)).save(d / "sub" / "b.jpg")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return d


def test_enhance_folder_reports_failures_and_goes_on(tmp_path, capsys):
    d = make_inputs(tmp_path)
    out = tmp_path / "out"
    rc = main(["enhance", str(d), "-o", str(out), "--upscaler", "bicubic", "--scale", "2", "--no-progress"])
    assert rc == 1  # one file failed
    assert (out / "a.png").exists() and (out / "sub" / "b.png").exists()
    assert Image.open(out / "a.png").size == (80, 24)
    recs = [json.loads(line) for line in (out / "meta.jsonl").read_text().splitlines()]
    assert len(recs) == 3
    bad = [r for r in recs if not r["ok"]]
    assert len(bad) == 1 and "broken.png" in bad[0]["input"] and "NotAnImageError" in bad[0]["error"]
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]
    assert "2 written" in capsys.readouterr().err


def test_enhance_all_ok_exit_zero_and_overrides(tmp_path):
    src = tmp_path / "x.png"
    Image.fromarray(np.full((20, 20), 128, np.uint8)).save(src)
    out = tmp_path / "o"
    rc = main(["enhance", str(src), "-o", str(out), "--task", "generic", "--upscaler", "nearest",
               "--set", "output_mode=L", "--no-progress"])
    assert rc == 0
    img = Image.open(out / "x.png")
    assert img.mode == "L" and img.size == (80, 80)


def test_bad_option_is_a_clean_error(tmp_path, capsys):
    src = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(src)
    rc = main(["enhance", str(src), "-o", str(tmp_path / "o"), "--set", "nosie_level=3"])
    assert rc == 2
    assert "unknown option(s) 'nosie_level'" in capsys.readouterr().err


def test_console_script_runs_as_module(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    res = subprocess.run([sys.executable, "-m", "preproc", "--help"], capture_output=True, text=True, cwd=ROOT, env=env)
    assert res.returncode == 0 and "enhance" in res.stdout

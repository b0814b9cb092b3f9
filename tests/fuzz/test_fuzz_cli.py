"""Fuzz the ``preproc enhance`` command on folders of good, damaged and odd files (real subprocesses).

Contract: the exit status is 0 when every input was written and 1 when some failed; every
image file found is either a complete, decodable PNG of the size its record states or a
failure recorded in ``meta.jsonl`` (naming the input); nothing else is left in the output
folder (no partial or temporary files); the command ends within the harness' bound.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from bombs import HUGE, OVER_OUR_LIMIT
from fuzzkit import LONG, case, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from strategies import VALID_FILES

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore")]

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pgm", ".ppm", ".pbm"}
KINDS = ["valid", "truncated", "flipped", "empty", "wrong-ext", "bomb", "big", "dir", "fifo", "loop", "dangling",
         "same-stem", "nested", "text"]


def make_item(folder: Path, kind: str, i: int, rng: random.Random) -> None:
    """One entry of kind ``kind`` in ``folder``."""
    name = rng.choice(sorted(VALID_FILES))
    data = VALID_FILES[name]
    stem, ext = f"{kind}{i}", Path(name).suffix
    if kind == "valid":
        (folder / f"{stem}{ext}").write_bytes(data)
    elif kind == "truncated":
        (folder / f"{stem}{ext}").write_bytes(data[: rng.randrange(len(data))])
    elif kind == "flipped":
        b = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        (folder / f"{stem}{ext}").write_bytes(bytes(b))
    elif kind == "empty":
        (folder / f"{stem}{ext}").write_bytes(b"")
    elif kind == "wrong-ext":
        other = rng.choice([e for e in (".png", ".jpg", ".tif", ".webp", ".gif", ".bmp") if e != ext])
        (folder / f"{stem}{other}").write_bytes(data)
    elif kind == "bomb":
        bname = rng.choice(sorted(HUGE))
        (folder / f"{stem}{Path(bname).suffix}").write_bytes(HUGE[bname])
    elif kind == "big":
        bname = rng.choice(sorted(OVER_OUR_LIMIT))
        (folder / f"{stem}{Path(bname).suffix}").write_bytes(OVER_OUR_LIMIT[bname])
    elif kind == "dir":
        d = folder / f"{stem}.png"
        d.mkdir()
        (d / "inside.png").write_bytes(data if ext == ".png" else VALID_FILES["rgb.png"])
    elif kind == "fifo":
        os.mkfifo(folder / f"{stem}.png")
    elif kind == "loop":
        (folder / f"{stem}a.png").symlink_to(folder / f"{stem}b.png")
        (folder / f"{stem}b.png").symlink_to(folder / f"{stem}a.png")
        (folder / f"{stem}dir").symlink_to(folder, target_is_directory=True)  # a folder loop
    elif kind == "dangling":
        (folder / f"{stem}.png").symlink_to(folder / "nowhere.png")
    elif kind == "same-stem":
        (folder / f"{stem}.png").write_bytes(VALID_FILES["rgb.png"])
        (folder / f"{stem}.jpg").write_bytes(VALID_FILES["photo.jpg"])
    elif kind == "nested":
        d = folder / f"{stem}" / "deeper"
        d.mkdir(parents=True)
        (d / f"x{ext}").write_bytes(data)
    elif kind == "text":
        (folder / f"{stem}.png").write_text("this is not an image\n")


def image_files(folder: Path) -> list[Path]:
    """What the command should find: regular image files under ``folder``, not following folder links."""
    out = []
    for dirpath, _dirs, files in os.walk(folder):  # os.walk does not follow symlinked folders
        for f in files:
            p = Path(dirpath) / f
            if p.suffix.lower() in SUFFIXES and p.is_file():
                out.append(p)
    return sorted(out)


def run_cli(args: list[str], seconds: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    try:
        return subprocess.run([sys.executable, "-m", "preproc", *args], capture_output=True, text=True,
                              timeout=seconds, env=env, cwd=str(ROOT))
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"preproc {' '.join(args)} did not finish within {seconds} s (a hang)") from e


def check_outcome(inputs: list[Path], out_dir: Path, proc: subprocess.CompletedProcess) -> tuple[int, int]:
    """Every input a complete PNG or a recorded failure; nothing else in ``out_dir``. Returns (written, failed)."""
    journal = out_dir / "meta.jsonl"
    assert journal.is_file(), proc.stderr[-3000:]
    latest: dict[str, dict] = {}
    for line in journal.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)  # every line whole
        latest[rec["input"]] = rec
    written = failed = 0
    outputs = set()
    for src in inputs:
        rec = latest.get(str(src))
        assert rec is not None, f"{src} has neither an output nor a recorded failure\n{proc.stderr[-2000:]}"
        if rec["ok"]:
            dst = Path(rec["output"])
            with Image.open(dst) as im:
                assert im.format == "PNG"
                im.load()  # complete: decodes to the last row
                assert list(im.size) == rec["output_size"]
            outputs.add(dst.resolve())
            written += 1
        else:
            assert rec["error"] and ":" in rec["error"], rec
            failed += 1
    left = {p.resolve() for p in out_dir.rglob("*") if p.is_file()} - outputs - {journal.resolve()}
    assert not left, f"unexpected files in the output folder (partial or temporary?): {sorted(map(str, left))}"
    assert proc.returncode == (1 if failed else 0), (proc.returncode, failed, proc.stderr[-2000:])
    return written, failed


def _run_folder_case(kinds: list[str], seed: int, upscaler: str, scale: str | None, base: Path, rerun: bool) -> None:
    """One folder of ``kinds``, plus a FIFO and a missing file named on the command line."""
    src, out = base / "in", base / "out"
    src.mkdir()
    rng = random.Random(seed)
    for i, k in enumerate(kinds):
        make_item(src, k, i, rng)
    fifo, missing = base / "named-pipe.png", base / "missing.png"
    os.mkfifo(fifo)  # named directly, a FIFO used to block the command forever
    inputs = [*image_files(src), fifo, missing]
    args = ["enhance", str(src), str(fifo), str(missing), "-o", str(out), "--upscaler", upscaler, "--no-progress"]
    if scale:
        args += ["--scale", scale]
    with case("cli/enhance-folder", seconds=600):
        proc = run_cli(args)
        written, failed = check_outcome(inputs, out, proc)
        if rerun:  # a re-run resumes and keeps the contract
            check_outcome(inputs, out, run_cli(args))
    assert failed >= 2
    errors = {r["input"]: r["error"] for r in map(json.loads, (out / "meta.jsonl").read_text().splitlines())
              if not r["ok"]}
    assert "regular file" in errors[str(fifo)] and str(fifo) in errors[str(fifo)]
    assert str(missing) in errors[str(missing)]


def test_enhance_cli_on_every_kind_of_file(tmp_path):
    """The fast profile's case: one folder holding one of every kind (one real run of the command)."""
    _run_folder_case(KINDS, 0, "bicubic", None, tmp_path, rerun=LONG)


@pytest.mark.skipif(not LONG, reason="long profile only (make fuzz): each example is two real runs of the command")
@fuzz_settings(1, long=4)
@given(kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=10), seed=st.integers(0, 2**16),
       upscaler=st.sampled_from(["bicubic", "nearest", "text-sr"]), scale=st.sampled_from([None, "2", "3.5"]))
def test_enhance_cli_on_a_folder_of_anything(kinds, seed, upscaler, scale, tmp_path_factory):
    _run_folder_case(kinds, seed, upscaler, scale, tmp_path_factory.mktemp("cli"), rerun=True)


def _main(argv: list[str], capsys) -> tuple[int, str]:
    from preproc.cli import main

    with case("cli/enhance-arguments", seconds=300):
        rc = main(argv)
    return rc, capsys.readouterr().err


def test_enhance_cli_output_folder_inside_the_input_folder(tmp_path, capsys):
    """Its PNGs are outputs, not inputs: a re-run used to enhance them again, one folder deeper each time."""
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes(VALID_FILES["rgb.png"])
    for _ in range(2):
        rc, err = _main(["enhance", str(src), "-o", str(src / "out"), "--upscaler", "bicubic", "--no-progress"], capsys)
        assert rc == 0, err
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png")) == ["a.png", "out/a.png"]


@pytest.mark.parametrize("extra", [["--scale", "nan"], ["--scale", "-1"], ["--set", 'tile="x"'], ["--set", "nope=1"],
                                   ["--batch-size", "0"], ["--set", "backend_options=5"], ["OUT_IS_A_FILE"]])
def test_enhance_cli_bad_arguments_exit_2_without_a_traceback(extra, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes(VALID_FILES["rgb.png"])
    out = tmp_path / "out"
    if extra == ["OUT_IS_A_FILE"]:  # FileExistsError traceback before the fix
        out.write_text("a file")
        extra = []
    rc, err = _main(["enhance", str(src), "-o", str(out), "--upscaler", "bicubic", "--no-progress", *extra], capsys)
    assert rc == 2 and "error:" in err and "Traceback" not in err, err

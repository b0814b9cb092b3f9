"""Fuzz ``load_image`` with files: truncated at every offset, bytes flipped, empty, directories,
pipes, symlink loops, unreadable, wrong extensions, and header-only decompression bombs.

Contract per case: the internal image or a ``PreprocError`` naming the path; no hang; a
bomb is refused before its pixels are allocated (peak memory measured in a subprocess).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bombs import HUGE, OVER_OUR_LIMIT
from fuzzkit import LONG, case, examples, fuzz_settings
from hypothesis import given
from hypothesis import strategies as st
from strategies import VALID_FILES
from test_fuzz_load import check_loaded

from preproc.errors import ImageFileError, ImageTooLargeError, NotAnImageError
from preproc.io import load_image

pytestmark = pytest.mark.filterwarnings("ignore")  # PIL warns about the corrupt files it is fed

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _load_file(path: Path, kind: str, **kw):
    with case(kind, names=[str(path)], seconds=30) as c:
        c.result = load_image(path, **kw)
    if c.result is not None:
        check_loaded(c.result)
    return c


def _offsets(n: int) -> list[int]:
    """Every offset in the long profile; in the fast one the first and last 48 and every 5th."""
    if LONG:
        return list(range(n))
    return sorted(set(range(min(n, 48))) | set(range(max(0, n - 48), n)) | set(range(0, n, 5)))


@pytest.mark.parametrize("name", sorted(VALID_FILES))
def test_valid_file_reads(name, tmp_path):
    p = tmp_path / name
    p.write_bytes(VALID_FILES[name])
    c = _load_file(p, "file/valid")
    assert c.error is None, c.error


@pytest.mark.parametrize("name", sorted(VALID_FILES))
def test_truncated_at_every_offset(name, tmp_path):
    data = VALID_FILES[name]
    p = tmp_path / name
    for off in _offsets(len(data)):
        p.write_bytes(data[:off])
        _load_file(p, "file/truncated")


@fuzz_settings(150)
@given(name=st.sampled_from(sorted(VALID_FILES)), flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                                            st.integers(0, 255)), min_size=1, max_size=8),
       data=st.data())
def test_flipped_bytes(name, flips, data, tmp_path_factory):
    raw = bytearray(VALID_FILES[name])
    for where, byte in flips:
        raw[int(where * len(raw))] = byte
    if data.draw(st.booleans(), label="also truncated"):
        raw = raw[: data.draw(st.integers(0, len(raw)), label="cut at")]
    p = tmp_path_factory.mktemp("flip") / name
    p.write_bytes(bytes(raw))
    _load_file(p, "file/flipped")


@pytest.mark.parametrize("src", sorted(VALID_FILES))
def test_wrong_extension(src, tmp_path):
    """The content decides, not the name: every valid file under every other extension reads."""
    for ext in (".png", ".jpg", ".tif", ".webp", ".gif", ".bmp", ".txt", ""):
        p = tmp_path / f"wrong{ext}"
        p.write_bytes(VALID_FILES[src])
        c = _load_file(p, "file/wrong-extension")
        assert c.error is None, c.error


@pytest.mark.parametrize("ext", [".png", ".jpg", ".tif", ".webp", ".gif", ".bmp", ""])
def test_zero_length_file(ext, tmp_path):
    p = tmp_path / f"empty{ext}"
    p.write_bytes(b"")
    c = _load_file(p, "file/empty")
    assert isinstance(c.error, NotAnImageError)


def test_special_paths(tmp_path):
    """A directory, a FIFO (would block open() forever), a symlink loop, a dangling link, a device."""
    d = tmp_path / "dir.png"
    d.mkdir()
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    loop_a, loop_b = tmp_path / "loop_a.png", tmp_path / "loop_b.png"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(tmp_path / "nowhere.png")
    for p in (d, fifo, loop_a, dangling, Path("/dev/null"), Path("/dev/zero")):
        c = _load_file(p, "file/special")
        assert isinstance(c.error, ImageFileError), (p, c.error)


def test_unreadable_file(tmp_path):
    """chmod 000. Root ignores permission bits (so as root the file reads); the refusal is
    checked by switching this process' effective user to ``nobody`` around the call
    (root may switch back), in a folder anyone may enter.
    """
    import tempfile

    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="preproc-fuzz-", dir="/tmp"))
    folder.chmod(0o755)
    p = folder / "secret.png"
    p.write_bytes(VALID_FILES["rgb.png"])
    p.chmod(0)
    try:
        if os.geteuid() == 0:
            c = _load_file(p, "file/unreadable-as-root")
            assert c.error is None  # root reads it: nothing to refuse
            Image.init()  # PIL's plugins are imported now, while we may read the interpreter's files
            os.seteuid(65534)
            try:
                c = _load_file(p, "file/unreadable")
            finally:
                os.seteuid(0)
        else:
            c = _load_file(p, "file/unreadable")
        assert isinstance(c.error, ImageFileError) and "permission denied" in str(c.error), c.error
    finally:
        p.unlink()
        folder.rmdir()


def test_small_pixel_limit_refuses_before_decoding(tmp_path):
    for name, data in VALID_FILES.items():
        p = tmp_path / name
        p.write_bytes(data)
        c = _load_file(p, "file/over-max-pixels", max_pixels=100)
        assert isinstance(c.error, ImageTooLargeError), (name, c.error)


BOMB_SCRIPT = r"""
import json, sys
import numpy as np
import preproc
from preproc.errors import PreprocError


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])


def reset_peak():
    # VmHWM (this process' peak RSS) back to the current RSS. Not ru_maxrss: that one is
    # carried over from the parent across fork+exec (a big pytest process would hide everything).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


preproc.load_image(np.zeros((2, 2)))  # imports and first-call allocations out of the way
out = []
for path in sys.argv[1:]:
    reset_peak()
    base = status_kib("VmRSS")
    try:
        preproc.load_image(path)
        res = "result"
    except PreprocError as e:
        res = type(e).__name__ + ": " + str(e)
    except BaseException as e:
        res = "BROKEN " + type(e).__name__ + ": " + str(e)
    out.append({"path": path, "outcome": res, "peak_growth_kib": status_kib("VmHWM") - base})
print(json.dumps(out))
"""


def test_decompression_bombs_refused_before_decoding(tmp_path):
    """Header-only bombs (up to 100,000 x 100,000 claimed) are refused and the peak RSS barely moves.

    Run in a fresh process; before each call its peak RSS (``VmHWM``) is reset to the current
    RSS, after it the growth is read. A real 3,000 x 3,000 image, decoded, is the control
    that shows the meter sees allocations.
    """
    from PIL import Image

    paths = []
    for name, data in {**HUGE, **OVER_OUR_LIMIT}.items():
        p = tmp_path / name
        p.write_bytes(data)
        paths.append(str(p))
    control = tmp_path / "control-3000x3000.png"  # a real image, decoded: shows that the meter sees allocations
    Image.new("L", (3000, 3000), 128).save(control)
    with case("file/bomb-batch", seconds=180):
        out = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, *paths, str(control)], capture_output=True, text=True,
                             timeout=170, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    ctl = rows.pop()
    assert ctl["outcome"] == "result" and ctl["peak_growth_kib"] > 64 * 1024, ctl  # 3000^2 x 3 float32 = 103 MiB
    for r in rows:
        ok = r["outcome"].startswith("ImageTooLargeError") and r["path"] in r["outcome"]
        from fuzzkit import count

        count("file/bomb", "error" if ok else "broken", json.dumps(r))
        assert ok, r
        assert r["peak_growth_kib"] < 64 * 1024, r  # refused before decoding: far below one row of pixels' worth


def test_bomb_count_is_sane():
    assert examples(1) >= 1 and len(HUGE) >= 8

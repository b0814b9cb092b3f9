"""Fuzz ``preproc.load_image`` with arrays, PIL images, tensors and arbitrary objects.

Contract per case: a float32 ``(H, W, 3)`` array in [0, 1], or a ``PreprocError`` whose
message names the input; never another exception, never a hang (the harness' watchdog).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from fuzzkit import case, fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image
from strategies import PIL_MODES, arrays, image_arrays, pil_images, tensors

from preproc.errors import DtypeError, ShapeError, UnsupportedInputError
from preproc.io import load_image

SMALL_LIMITS = st.one_of(st.none(), st.integers(1, 200), st.integers(1, 200), st.sampled_from([0, -1, "100", 1.5, True]))


def check_loaded(a: np.ndarray, h: int | None = None, w: int | None = None) -> None:
    """The internal form: float32 (H, W, 3), C-contiguous, finite, in [0, 1]."""
    assert isinstance(a, np.ndarray) and a.dtype == np.float32 and a.ndim == 3 and a.shape[2] == 3
    assert a.flags.c_contiguous
    assert np.isfinite(a).all() and a.min() >= 0.0 and a.max() <= 1.0
    if h is not None:
        assert a.shape[:2] == (h, w)


def _hw_of_array(arr: np.ndarray) -> tuple[int, int]:
    return arr.shape[0], arr.shape[1]


@fuzz_settings(150)
@given(arr=arrays(), max_pixels=SMALL_LIMITS)
@example(arr=np.zeros((3, 3), dtype=">u2"), max_pixels=None)  # big-endian uint16 is uint16
@example(arr=np.full((2, 2), 1e300), max_pixels=None)  # finite but huge: the message says so
@example(arr=np.zeros((4, 4, 3), dtype=np.longdouble), max_pixels=None)
@example(arr=np.zeros((0, 5, 3), dtype=np.uint8), max_pixels=None)
@example(arr=np.zeros((20, 20), dtype=np.uint8), max_pixels=100)
@example(arr=np.matrix(np.zeros((3, 3))), max_pixels=None)  # ValueError before the fix
@example(arr=np.zeros((3, 3)), max_pixels="100")  # TypeError in the comparison before the fix
@example(arr=np.ma.masked_array(np.zeros((3, 3)), mask=[[1, 0, 0]] * 3), max_pixels=None)
@example(arr=np.broadcast_to(np.zeros((1, 1, 3)), (4, 4, 3)), max_pixels=None)  # read-only, zero strides
def test_any_array(arr, max_pixels):
    with case("load_image/array", names=["numpy array", str(arr.shape), "max_pixels"]) as c:
        c.result = load_image(arr, max_pixels=max_pixels)
    if c.result is not None:
        check_loaded(c.result, *_hw_of_array(arr))


@fuzz_settings(100)
@given(arr=image_arrays())
@example(arr=np.arange(12, dtype=">u2").reshape(3, 4))  # DtypeError before the fix
@example(arr=np.full((2, 3, 3), 0.5, dtype=">f4"))
def test_accepted_arrays(arr):
    """Accepted dtypes and shapes: a result unless the values are out of range or a side is 0."""
    with case("load_image/image-array", names=["numpy array", str(arr.shape)]) as c:
        c.result = load_image(arr, max_pixels=None)
    if c.error is not None:
        assert not isinstance(c.error, (DtypeError, ShapeError)), c.error
        return
    check_loaded(c.result, *_hw_of_array(arr))
    if arr.dtype.kind == "u" and (arr.ndim == 2 or arr.shape[2] in (1, 3)):
        scale = 255.0 if arr.dtype.itemsize == 1 else 65535.0
        gray = (arr if arr.ndim == 2 else arr[..., 0]).astype(np.float64) / scale
        np.testing.assert_allclose(c.result[..., 0], gray, atol=1e-6)


@pytest.mark.parametrize("mode", PIL_MODES)
def test_every_pil_mode_reads(mode):
    """Every mode Pillow can make gives the internal form (not an error)."""
    img = Image.new(mode, (5, 3))
    with case("load_image/pil-mode", names=[mode]) as c:
        c.result = load_image(img)
    assert c.error is None, f"mode {mode}: {c.error}"
    check_loaded(c.result, 3, 5)


@fuzz_settings(120)
@given(img=pil_images(), max_pixels=SMALL_LIMITS)
def test_any_pil_image(img, max_pixels):
    with case("load_image/pil", names=["PIL image", img.mode, "max_pixels"]) as c:
        c.result = load_image(img, max_pixels=max_pixels)
    if c.result is not None:
        check_loaded(c.result, img.size[1], img.size[0])


@fuzz_settings(150)
@given(t=tensors(), max_pixels=SMALL_LIMITS)
@example(t=torch.zeros(3, 4, 4, device="meta"), max_pixels=None)
@example(t=torch.zeros(3, 4, 4).to_sparse(), max_pixels=None)
@example(t=torch.zeros(1, 3, 40, 40).transpose(2, 3), max_pixels=100)
@example(t=torch.nested.nested_tensor([torch.zeros(3, 2, 2), torch.zeros(3, 3, 3)]), max_pixels=None)  # RuntimeError
@example(t=torch.quantize_per_tensor(torch.zeros(3, 4, 4), 0.1, 0, torch.quint8), max_pixels=None)
def test_any_tensor(t, max_pixels):
    names = ["torch tensor", str(tuple(t.shape)) if not t.is_nested else "nested", "max_pixels"]
    with case("load_image/tensor", names=names) as c:
        c.result = load_image(t, max_pixels=max_pixels)
    if c.result is not None:
        check_loaded(c.result, t.shape[-2], t.shape[-1])


@fuzz_settings(60)
@given(x=st.one_of(st.none(), st.integers(), st.floats(), st.binary(max_size=20), st.lists(st.integers(), max_size=4),
                   st.dictionaries(st.text(max_size=3), st.integers(), max_size=2), st.complex_numbers(),
                   st.just(object()), st.just(Image), st.just(np.float32(0.5)), st.just(torch.float32)))
def test_objects_that_are_not_images(x):
    with case("load_image/object", names=[type(x).__name__]) as c:
        load_image(x)
    assert isinstance(c.error, UnsupportedInputError)


@fuzz_settings(80)
@given(s=st.text(max_size=40) | st.text(min_size=300, max_size=5000))
@example(s="a\0b.png")  # a NUL byte in a path
@example(s="x" * 5000 + ".png")  # longer than any file name may be
@example(s="")
def test_any_string_as_path(s):
    with case("load_image/path-text", names=[repr(s)[1:-1][:60], repr(str(__import__("pathlib").Path(s)))[1:-1][:60]]) as c:
        load_image(s)
    # a fuzzed string may name something that exists (".", "/"); it is never an image here
    assert c.error is not None


def test_huge_finite_floats_are_reported_as_out_of_range():
    """1e300 is out of range, not "NaN or infinite" (it used to be cast to float32 first)."""
    with case("load_image/array", names=["numpy array"]) as c:
        load_image(np.full((2, 2), 1e300))
    assert "float values in" in str(c.error) and "infinite" not in str(c.error), c.error


def test_failed_file_loads_do_not_leak_file_handles(tmp_path):
    """A file that opens but fails to decode (or is over the pixel limit) is closed again."""
    from strategies import VALID_FILES

    cut = tmp_path / "cut.png"
    cut.write_bytes(VALID_FILES["rgb.png"][:300])
    big = tmp_path / "big.png"
    big.write_bytes(VALID_FILES["rgb.png"])
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        for p, kw in ((cut, {}), (big, {"max_pixels": 10})):
            with case("load_image/fd-leak", names=[str(p)]) as c:
                load_image(p, **kw)
            assert c.error is not None
    assert len(os.listdir("/proc/self/fd")) <= before + 2


@fuzz_settings(60)
@given(name=st.sampled_from(sorted(__import__("strategies").VALID_FILES)), cut=st.floats(0, 1), close=st.booleans(),
       max_pixels=SMALL_LIMITS)
@example(name="rgb.png", cut=0.5, close=False, max_pixels=None)  # raw OSError when decoded lazily, before the fix
@example(name="rgb.png", cut=1.0, close=True, max_pixels=None)  # ValueError "Operation on closed image"
def test_lazily_opened_pil_images(name, cut, close, max_pixels):
    """An ``Image.open()`` result is decoded only when read: truncated data or a closed file surface in load_image."""
    import io

    from strategies import VALID_FILES

    data = VALID_FILES[name]
    try:
        img = Image.open(io.BytesIO(data[: int(cut * len(data))]))
    except Exception:  # noqa: BLE001 - PIL refuses to open it at all: not an input load_image sees
        return
    if close:
        img.close()
    with case("load_image/pil-lazy", names=["PIL image", "max_pixels"]) as c:
        c.result = load_image(img, max_pixels=max_pixels)
    if c.result is not None:
        check_loaded(c.result, img.size[1], img.size[0])

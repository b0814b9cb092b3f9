"""Input handling: every accepted form gives the same internal image; every bad input a typed error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from preproc.errors import (
    CorruptImageError,
    DtypeError,
    EmptyImageError,
    ImageNotFoundError,
    ImageTooLargeError,
    InputError,
    NotAnImageError,
    PreprocError,
    ShapeError,
    UnsupportedInputError,
    ValueRangeError,
)
from preproc.io import load_image, save_image_atomic, to_pil

RNG = np.random.default_rng(0)
RGB_U8 = RNG.integers(0, 256, size=(7, 9, 3), dtype=np.uint8)
RGB_F = RGB_U8.astype(np.float32) / 255.0


def check_form(a: np.ndarray, h: int = 7, w: int = 9) -> None:
    assert a.dtype == np.float32 and a.shape == (h, w, 3) and a.flags.c_contiguous
    assert a.min() >= 0.0 and a.max() <= 1.0


# --- accepted inputs -------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I", "F", "CMYK", "YCbCr"])
def test_pil_modes(mode):
    base = Image.fromarray(RGB_U8, "RGB")
    img = base.convert(mode) if mode not in ("I;16", "F", "I") else base.convert("L").convert(mode)
    check_form(load_image(img))


def test_pil_rgb_matches_numpy_and_tensor():
    a = load_image(Image.fromarray(RGB_U8, "RGB"))
    np.testing.assert_allclose(a, RGB_F, atol=1e-7)
    np.testing.assert_allclose(load_image(RGB_U8), RGB_F, atol=1e-7)
    np.testing.assert_allclose(load_image(torch.from_numpy(RGB_F).permute(2, 0, 1)), RGB_F, atol=1e-7)
    np.testing.assert_allclose(load_image(torch.from_numpy(RGB_F).permute(2, 0, 1)[None]), RGB_F, atol=1e-7)
    np.testing.assert_allclose(load_image(torch.from_numpy(RGB_U8).permute(2, 0, 1)), RGB_F, atol=1e-7)


def test_i16_scaled_by_range():
    arr = np.full((4, 5), 65535, dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    out = load_image(img)
    np.testing.assert_allclose(out, 1.0)
    np.testing.assert_allclose(load_image(arr // 2), 0.5, atol=1e-4)


def test_alpha_composited_on_white():
    rgba = np.zeros((3, 3, 4), dtype=np.uint8)  # black, fully transparent
    out = load_image(rgba)
    np.testing.assert_allclose(out, 1.0)
    rgba[..., 3] = 255  # opaque black
    np.testing.assert_allclose(load_image(rgba), 0.0)
    la = Image.fromarray(np.stack([np.zeros((3, 3)), np.full((3, 3), 128)], -1).astype(np.uint8), "LA")
    np.testing.assert_allclose(load_image(la), 1 - 128 / 255, atol=1e-6)


@pytest.mark.parametrize("shape", [(7, 9), (7, 9, 1), (7, 9, 3), (7, 9, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.bool_])
def test_numpy_shapes_and_dtypes(shape, dtype):
    if dtype == np.bool_:
        arr = RNG.integers(0, 2, size=shape).astype(bool)
    elif np.issubdtype(dtype, np.floating):
        arr = RNG.random(shape).astype(dtype)
    else:
        arr = RNG.integers(0, np.iinfo(dtype).max, size=shape).astype(dtype)
    check_form(load_image(arr))


def test_float_slight_overshoot_is_clipped():
    arr = np.full((2, 2, 3), 1.02, dtype=np.float32)
    np.testing.assert_allclose(load_image(arr), 1.0)


def test_path_and_pathlike(tmp_path):
    p = tmp_path / "x.png"
    Image.fromarray(RGB_U8).save(p)
    np.testing.assert_allclose(load_image(str(p)), RGB_F, atol=1e-7)
    np.testing.assert_allclose(load_image(p), RGB_F, atol=1e-7)


def test_gray_replicated_to_rgb():
    out = load_image(np.array([[0, 255]], dtype=np.uint8))
    assert out.shape == (1, 2, 3)
    np.testing.assert_allclose(out[0, 1], 1.0)


# --- rejected inputs: type and key words of the message ---------------------------------
@pytest.mark.parametrize(
    "bad, exc, words",
    [
        (np.zeros((0, 5, 3), np.uint8), EmptyImageError, ["zero-sized", "0x5"]),
        (np.zeros((4, 0), np.uint8), EmptyImageError, ["zero-sized"]),
        (np.zeros((2, 3, 4, 5), np.uint8), ShapeError, ["4 dimensions", "(H,W)"]),
        (np.zeros((5,), np.uint8), ShapeError, ["1 dimensions"]),
        (np.zeros((4, 4, 2), np.uint8), ShapeError, ["2 channels", "1 (gray), 3 (RGB) or 4"]),
        (np.zeros((4, 4, 3), np.int64), DtypeError, ["int64", "uint8"]),
        (np.zeros((4, 4, 3), np.complex64), DtypeError, ["complex64"]),
        (np.full((4, 4), np.nan, np.float32), ValueRangeError, ["NaN", "16"]),
        (np.full((4, 4), np.inf, np.float32), ValueRangeError, ["infinite"]),
        (np.full((4, 4), 200.0, np.float32), ValueRangeError, ["[200, 200]", "divide by 255"]),
        (np.full((4, 4), -1.0, np.float32), ValueRangeError, ["[-1, -1]", "[0, 1]"]),
        (torch.zeros(2, 3, 4, 4), ShapeError, ["batch of 2"]),
        (torch.zeros(5, 4, 4), ShapeError, ["5 channels"]),
        (torch.zeros(4, 4), ShapeError, ["2 dimensions"]),
        (torch.zeros(3, 4, 4, dtype=torch.int32), DtypeError, ["torch.int32"]),
        (torch.full((3, 2, 2), float("nan")), ValueRangeError, ["NaN"]),
        ([[0, 1], [1, 0]], UnsupportedInputError, ["builtins.list", "PIL image"]),
        (42, UnsupportedInputError, ["builtins.int"]),
    ],
)
def test_bad_arrays(bad, exc, words):
    with pytest.raises(exc) as info:
        load_image(bad)
    assert isinstance(info.value, (InputError, PreprocError))
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_missing_file(tmp_path):
    with pytest.raises(ImageNotFoundError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_directory_is_not_an_image(tmp_path):
    with pytest.raises(NotAnImageError, match="directory"):
        load_image(tmp_path)


def test_not_an_image(tmp_path):
    p = tmp_path / "notes.png"
    p.write_text("this is text, not a PNG")
    with pytest.raises(NotAnImageError, match="not an image"):
        load_image(p)


def test_truncated_file(tmp_path):
    p = tmp_path / "full.png"
    Image.fromarray(RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(p)
    cut = tmp_path / "cut.png"
    cut.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(CorruptImageError, match="truncated or corrupt"):
        load_image(cut)


def test_decompression_bomb_refused_before_decoding(tmp_path):
    p = tmp_path / "big.png"
    Image.new("L", (3000, 3000)).save(p)
    with pytest.raises(ImageTooLargeError) as info:
        load_image(p, max_pixels=1_000_000)
    assert "9,000,000" in str(info.value) and "max_pixels" in str(info.value)
    assert load_image(p, max_pixels=None).shape == (3000, 3000, 3)


def test_array_over_pixel_limit():
    with pytest.raises(ImageTooLargeError, match="limit of 100"):
        load_image(np.zeros((20, 20), np.uint8), max_pixels=100)


def test_to_pil_and_atomic_save(tmp_path):
    img = to_pil(RGB_F)
    assert img.mode == "RGB" and np.array_equal(np.asarray(img), RGB_U8)
    assert to_pil(RGB_F, "L").mode == "L"
    out = save_image_atomic(img, tmp_path / "sub" / "o.png")
    assert out.exists() and not list(out.parent.glob(".*tmp*"))
    np.testing.assert_array_equal(np.asarray(Image.open(out)), RGB_U8)

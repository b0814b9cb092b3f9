"""Hypothesis strategies for everything a user might pass as an image.

Arrays of every numpy dtype (byte orders, structured, strings, datetimes included), 0-4
dimensions, 0-5 channels, NaN/inf/negative/huge values; PIL images of every mode Pillow
can make; torch tensors of every dtype, non-contiguous, sparse, on the ``meta`` device;
valid image files of six formats and their damaged versions. Sizes stay small: the pixel
limit is exercised through a small ``max_pixels`` instead of big allocations.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

# --- numpy -----------------------------------------------------------------------------
NUMERIC_DTYPES = [np.dtype(t) for t in (
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", "longdouble", "complex64", "complex128",
)]
#: the same with the other byte order (big-endian uint16 from a FITS or network reader)
SWAPPED_DTYPES = [d.newbyteorder() for d in NUMERIC_DTYPES if d.itemsize > 1 and d.kind != "b"]
OTHER_DTYPES = [np.dtype(t) for t in ("O", "U3", "S2", "M8[s]", "m8[ms]", "V4")] + [np.dtype([("r", "u1"), ("g", "u1")])]
ALL_DTYPES = NUMERIC_DTYPES + SWAPPED_DTYPES + OTHER_DTYPES

#: floats users produce: in range, slightly out, NaN, inf, negative, huge, subnormal
SPECIAL_FLOATS = [0.0, 1.0, 0.5, -0.0, 1.04, -0.04, 1.06, 255.0, -1.0, float("nan"), float("inf"), float("-inf"),
                  1e300, -1e300, 5e-324, 65504.0, 3.4e38]


@st.composite
def shapes(draw, max_side: int = 12) -> tuple[int, ...]:
    """0-4 dimensions; images have 0-5 channels in the last (or first) axis."""
    ndim = draw(st.integers(0, 4))
    side = st.integers(0, max_side)
    if ndim == 0:
        return ()
    if ndim == 1:
        return (draw(side),)
    if ndim == 2:
        return (draw(side), draw(side))
    if ndim == 3:
        c = draw(st.integers(0, 5))
        return (draw(side), draw(side), c) if draw(st.booleans()) else (c, draw(side), draw(side))
    return (draw(st.integers(0, 2)), draw(side), draw(side), draw(st.integers(0, 5)))


def _elements(dtype: np.dtype):
    if dtype.kind == "f":
        width = min(64, dtype.itemsize * 8)
        fl = st.floats(allow_nan=True, allow_infinity=True, width=width)
        with np.errstate(over="ignore", under="ignore"):
            specials = [np.array(v).astype(dtype).item() for v in SPECIAL_FLOATS]
        return st.one_of(st.sampled_from(specials), fl, st.floats(0, 1, width=width))
    if dtype.kind == "c":
        return st.complex_numbers(allow_nan=True, allow_infinity=True, width=dtype.itemsize * 8)
    return None  # hypothesis' default for the dtype


@st.composite
def arrays(draw, max_side: int = 12) -> np.ndarray:
    """A numpy array of any dtype and shape, sometimes a non-contiguous view."""
    dtype = draw(st.sampled_from(ALL_DTYPES))
    shape = draw(shapes(max_side))
    if dtype.kind in "OUSMmV":
        return np.zeros(shape, dtype=dtype)
    base = dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype
    a = draw(hnp.arrays(base, shape, elements=_elements(base)))
    a = a.astype(dtype)
    if a.ndim >= 2 and draw(st.booleans()):
        a = np.swapaxes(np.swapaxes(a, 0, 1).copy(), 0, 1)  # same values, Fortran-like strides
    return a


@st.composite
def image_arrays(draw, max_side: int = 12) -> np.ndarray:
    """Arrays of the accepted dtypes and shapes (the values still fuzzed)."""
    dtype = draw(st.sampled_from([np.dtype(t) for t in ("uint8", "uint16", "bool", "float16", "float32", "float64")]
                                 + [np.dtype(">u2"), np.dtype(">f4")]))
    h, w = draw(st.integers(0, max_side)), draw(st.integers(0, max_side))
    shape = draw(st.sampled_from([(h, w), (h, w, 1), (h, w, 3), (h, w, 4)]))
    base = dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype
    return draw(hnp.arrays(base, shape, elements=_elements(base))).astype(dtype)


# --- PIL ------------------------------------------------------------------------------
def pil_modes() -> list[str]:
    """Every mode Pillow can create an image of here."""
    out = []
    for m in Image.MODES:
        try:
            Image.new(m, (1, 1))
        except (ValueError, OSError):
            continue
        out.append(m)
    return out


PIL_MODES = pil_modes()


@st.composite
def pil_images(draw, max_side: int = 8) -> Image.Image:
    """A PIL image of any mode and size (0 included), filled with random bytes."""
    mode = draw(st.sampled_from(PIL_MODES))
    size = (draw(st.integers(0, max_side)), draw(st.integers(0, max_side)))
    nbytes = len(Image.new(mode, size).tobytes())
    data = draw(st.binary(min_size=nbytes, max_size=nbytes))
    img = Image.frombytes(mode, size, data) if nbytes else Image.new(mode, size)
    if mode in ("P", "PA") and draw(st.booleans()):
        img.putpalette(draw(st.binary(min_size=3, max_size=768)))
    return img


# --- torch ------------------------------------------------------------------------------
TORCH_DTYPES = [
    torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128,
    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64, torch.bool,
    torch.uint16, torch.uint32, torch.uint64, torch.float8_e4m3fn, torch.float8_e5m2,
]


@st.composite
def tensors(draw, max_side: int = 10) -> torch.Tensor:
    """A tensor of any dtype, 0-5 dims, maybe non-contiguous, sparse, requiring grad or on ``meta``."""
    # half the draws are of the accepted kinds (float / uint8, 3 or 4 dims), so that results are tried too
    dtype = draw(st.sampled_from(TORCH_DTYPES) | st.sampled_from([torch.float32, torch.uint8, torch.float16]))
    ndim = draw(st.integers(0, 5) | st.sampled_from([3, 4]))
    side = st.integers(1, max_side) | st.integers(0, max_side)
    if ndim in (3, 4):
        shape = [draw(st.sampled_from([1, 3, 4]) | st.integers(0, 5)), draw(side), draw(side)]
        if ndim == 4:
            shape = [draw(st.just(1) | st.integers(0, 2))] + shape
    else:
        shape = [draw(st.integers(0, 4)) for _ in range(ndim)]
    values = draw(st.sampled_from(["uniform", "wide", "special"]) | st.just("uniform"))
    t = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(draw(st.integers(0, 2**16))))
    if values == "wide":
        t = t * 600 - 300
    elif values == "special" and t.numel():
        flat = t.view(-1)
        flat[draw(st.integers(0, flat.numel() - 1))] = draw(st.sampled_from(SPECIAL_FLOATS))
    t = t.to(dtype)
    layout = draw(st.sampled_from(["contiguous", "transposed", "strided", "sparse", "meta", "grad"])
                  | st.just("contiguous"))
    if layout == "transposed" and t.ndim >= 3:
        t = t.transpose(-1, -2).contiguous().transpose(-1, -2)
    elif layout == "strided" and t.ndim >= 3:
        t = torch.cat([t, t], dim=-1)[..., ::2]
    elif layout == "sparse" and dtype not in (torch.float8_e4m3fn, torch.float8_e5m2, torch.uint16, torch.uint32, torch.uint64):
        t = t.to_sparse()
    elif layout == "meta":
        t = t.to("meta")
    elif layout == "grad" and (t.dtype.is_floating_point or t.dtype.is_complex) and t.dtype not in (torch.float8_e4m3fn, torch.float8_e5m2):
        t = t.clone().requires_grad_(True)
    return t


# --- files ------------------------------------------------------------------------------
def _sample_image(seed: int = 0, size: tuple[int, int] = (16, 12)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8))


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    img.save(b, format=fmt, **kw)
    return b.getvalue()


def valid_files() -> dict[str, bytes]:
    """Small valid files: name (with the right extension) -> bytes."""
    img = _sample_image()
    return {
        "rgb.png": encode(img, "PNG"),
        "gray16.png": encode(Image.fromarray(np.arange(12 * 16, dtype=np.uint16).reshape(12, 16) * 300), "PNG"),
        "rgba.png": encode(img.convert("RGBA"), "PNG"),
        "photo.jpg": encode(img, "JPEG", quality=80),
        "progressive.jpg": encode(img, "JPEG", quality=80, progressive=True),
        "plain.tif": encode(img, "TIFF"),
        "lzw.tif": encode(img, "TIFF", compression="tiff_lzw"),
        "lossy.webp": encode(img, "WEBP", quality=80),
        "lossless.webp": encode(img, "WEBP", lossless=True),
        "anim.gif": encode(img.convert("P"), "GIF", save_all=True,
                           append_images=[_sample_image(1).convert("P")], duration=50),
        "rgb.bmp": encode(img, "BMP"),
    }


VALID_FILES = valid_files()

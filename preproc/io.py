"""Load and validate images: one function turns anything a user passes into one form.

The internal form is a ``float32`` numpy array of shape ``(H, W, 3)``, RGB, values in
``[0, 1]``, C-contiguous. Accepted inputs:

* ``PIL.Image.Image`` of mode 1, L, LA, P, PA, RGB, RGBA, CMYK, YCbCr, I, I;16*, F.
* numpy arrays ``(H, W)``, ``(H, W, 1|3|4)``; dtype uint8, uint16, bool, or float
  (float values in ``[0, 1]``; a tolerance of ``FLOAT_TOLERANCE`` is clipped, more is
  an error).
* torch tensors ``(C, H, W)`` or ``(1, C, H, W)`` with C in 1, 3, 4; float in ``[0, 1]``
  (or uint8), on any device.
* ``str`` / ``os.PathLike`` naming an image file.

Alpha is composited on **white** (documents and screenshots have light backgrounds;
black would turn transparent text backgrounds into dark blobs). 16-bit and 32-bit
integer PIL modes are scaled by their dtype's range; mode ``F`` is taken as ``[0, 1]``,
or as ``[0, 255]`` (what PIL's own ``convert("F")`` gives) when its values lie in that range.
"""

from __future__ import annotations

import numbers
import os
import warnings
from pathlib import Path
from typing import Any, Union

import numpy as np
from PIL import Image

from .errors import (
    CorruptImageError,
    DtypeError,
    EmptyImageError,
    ImageFileError,
    ImageNotFoundError,
    ImageTooLargeError,
    NotAnImageError,
    PreprocError,
    ShapeError,
    UnsupportedInputError,
    ValueRangeError,
)

ImageLike = Union[Image.Image, np.ndarray, "torch.Tensor", str, os.PathLike]  # noqa: F821

#: Default limit on pixels (H*W) of one image: 100 megapixels. ``None`` disables it.
DEFAULT_MAX_PIXELS: int | None = 100_000_000
#: Float inputs may stray this far outside [0, 1] (resampling overshoot) and are clipped.
FLOAT_TOLERANCE = 0.05

ACCEPTED = (
    "a PIL image, a numpy array (H,W) or (H,W,1|3|4) of uint8/uint16/bool/float in [0,1], "
    "a torch tensor (C,H,W) or (1,C,H,W) float in [0,1], or a path to an image file"
)


def _describe(x: Any) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None:
        return f"{type(x).__module__}.{type(x).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(x).__module__}.{type(x).__name__}"


def load_image(x: ImageLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return ``x`` as a float32 ``(H, W, 3)`` RGB array in ``[0, 1]``.

    Raises a :class:`~preproc.errors.InputError` subclass naming what was given and
    what is accepted when ``x`` cannot be used.
    """
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(max_pixels, numbers.Integral)):
        from .errors import ConfigError

        raise ConfigError(f"max_pixels has to be an integer or None but is {max_pixels!r}")
    if isinstance(x, (str, os.PathLike)):
        pil = open_image_file(x, max_pixels=max_pixels)
        return _from_pil(pil, max_pixels=max_pixels)
    if isinstance(x, Image.Image):
        return _from_pil(x, max_pixels=max_pixels)
    if isinstance(x, np.ndarray):
        return _from_array(x, max_pixels=max_pixels)
    torch = _torch_if_loaded()
    if torch is not None and isinstance(x, torch.Tensor):
        return _from_tensor(x, max_pixels=max_pixels)
    raise UnsupportedInputError(f"cannot read an image from {_describe(x)}; expected {ACCEPTED}")


def _torch_if_loaded():
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return None
    return torch


def _check_pixels(h: int, w: int, max_pixels: int | None, what: str) -> None:
    if h == 0 or w == 0:
        raise EmptyImageError(f"{what} has a zero-sized side ({h}x{w} pixels); expected H>0 and W>0")
    if max_pixels is not None and h * w > max_pixels:
        raise ImageTooLargeError(
            f"{what} has {h}x{w} = {h * w:,} pixels, more than the limit of {max_pixels:,} "
            "(max_pixels; pass max_pixels=None to lift it for trusted input)"
        )


def open_image_file(path: str | os.PathLike, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open and fully decode an image file, with typed errors for each way it can fail.

    The header's size is checked against ``max_pixels`` *before* decoding, so a
    decompression bomb is refused without allocating its pixels.
    """
    p = Path(path)
    try:
        exists, is_dir, is_file = p.exists(), p.is_dir(), p.is_file()
    except (OSError, ValueError) as e:  # a NUL byte, a name too long for the file system
        raise ImageFileError(f"{str(p)[:200]!r} cannot be used as an image path: {e}") from e
    if not exists:
        raise ImageNotFoundError(f"image file not found: {str(p)!r}")
    if is_dir:
        raise NotAnImageError(f"{str(p)!r} is a directory, expected an image file")
    if not is_file:  # a FIFO would block open() forever; a device has no end
        raise NotAnImageError(f"{str(p)!r} is not a regular file (a pipe, socket or device); expected an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(p)
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"{str(p)!r}: {e}") from e
    except Image.UnidentifiedImageError as e:
        raise NotAnImageError(
            f"{str(p)!r} is not an image PIL can decode (size {p.stat().st_size} bytes); "
            "expected PNG, JPEG, TIFF, BMP, WebP, GIF or another PIL format"
        ) from e
    except PermissionError as e:
        raise ImageFileError(f"{str(p)!r} cannot be read: permission denied") from e
    except OSError as e:
        raise CorruptImageError(f"{str(p)!r} could not be opened: {e}") from e
    w, h = img.size
    try:
        _check_pixels(h, w, max_pixels, f"image file {str(p)!r}")
    except PreprocError:
        img.close()
        raise
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError as e:
        img.close()
        raise ImageTooLargeError(f"{str(p)!r}: {e}") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        img.close()
        raise CorruptImageError(f"{str(p)!r} is truncated or corrupt: {e}") from e
    except BaseException:
        img.close()  # do not keep the file open
        raise
    return img


def _from_pil(img: Image.Image, *, max_pixels: int | None) -> np.ndarray:
    w, h = img.size
    _check_pixels(h, w, max_pixels, f"PIL image (mode {img.mode})")
    try:  # an image from Image.open() is decoded only now: its file may be truncated, or closed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"PIL image (mode {img.mode}, {w}x{h}): {e}") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise CorruptImageError(f"PIL image (mode {img.mode}, {w}x{h}) could not be decoded: {e}") from e
    mode = img.mode
    if mode == "P" or mode == "PA":
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode in ("1", "L"):
        a = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
        return _gray_to_rgb(a)
    if mode == "LA":
        a = np.asarray(img, dtype=np.float32) / 255.0
        return _composite(np.repeat(a[..., :1], 3, axis=2), a[..., 1])
    if mode == "La":  # premultiplied: on white, out = L*a + (1-a) = Lp + (1-a); PIL cannot convert it
        a = np.asarray(img, dtype=np.float32) / 255.0
        return _gray_to_rgb(np.clip(a[..., 0] + (1.0 - a[..., 1]), 0.0, 1.0))
    if mode == "RGB":
        return np.ascontiguousarray(np.asarray(img, dtype=np.float32) / 255.0)
    if mode in ("RGBA", "RGBa"):
        a = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        return _composite(a[..., :3], a[..., 3])
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img)
        if mode == "I":
            hi = 65535.0 if arr.max(initial=0) > 255 else 255.0
        else:
            hi = 65535.0
        return _gray_to_rgb(np.clip(arr.astype(np.float32) / hi, 0.0, 1.0))
    if mode == "F":
        f = np.asarray(img, dtype=np.float32)
        # PIL's own convert("F") keeps the 0..255 scale; arrays made by users are usually 0..1.
        if np.isfinite(f).all() and f.max(initial=0) > 1.0 + FLOAT_TOLERANCE and f.min(initial=0) >= 0 and f.max() <= 255:
            f = f / 255.0
        return _from_array(f, max_pixels=max_pixels, what="PIL image (mode F)")
    # CMYK, YCbCr, LAB, HSV...: PIL knows how to get RGB.
    try:
        rgb = img.convert("RGB")
    except (ValueError, OSError) as e:
        raise UnsupportedInputError(f"PIL image of mode {mode!r} cannot be converted to RGB: {e}") from e
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.float32) / 255.0)


def _gray_to_rgb(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2).astype(np.float32, copy=False))


def _composite(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite on white: out = rgb*a + (1-a)."""
    a = alpha[..., None]
    return np.ascontiguousarray((rgb * a + (1.0 - a)).astype(np.float32))


def _from_array(arr: np.ndarray, *, max_pixels: int | None, what: str | None = None) -> np.ndarray:
    what = what or f"numpy array of shape {arr.shape} and dtype {arr.dtype}"
    arr = np.asarray(arr)  # subclasses (np.matrix cannot grow a channel axis) as plain arrays
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ShapeError(f"{what} has {arr.ndim} dimensions; expected (H,W) or (H,W,C) with C in 1, 3, 4")
    h, w, c = arr.shape
    if c not in (1, 3, 4):
        raise ShapeError(f"{what} has {c} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA), channels last")
    _check_pixels(h, w, max_pixels, what)
    kind, size = arr.dtype.kind, arr.dtype.itemsize  # by kind: a big-endian uint16 is a uint16
    if kind == "b":
        f = arr.astype(np.float32)
    elif kind == "u" and size == 1:
        f = arr.astype(np.float32) / 255.0
    elif kind == "u" and size == 2:
        f = arr.astype(np.float32) / 65535.0
    elif kind == "f":
        _check_float_range(arr, what)  # before the cast: 1e300 is out of range, not "infinite"
        f = arr.astype(np.float32)
        np.clip(f, 0.0, 1.0, out=f)
    else:
        raise DtypeError(f"{what}: dtype {arr.dtype} is not supported; expected uint8, uint16, bool or float in [0, 1]")
    if c == 1:
        return _gray_to_rgb(f[..., 0])
    if c == 4:
        return _composite(f[..., :3], f[..., 3])
    return np.ascontiguousarray(f)


def _check_float_range(f: np.ndarray, what: str) -> None:
    """Finite and within ``FLOAT_TOLERANCE`` of [0, 1] (any float dtype; ``f`` is not changed)."""
    if not np.isfinite(f).all():
        n = int((~np.isfinite(f)).sum())
        raise ValueRangeError(f"{what} contains {n} NaN or infinite values; expected finite floats in [0, 1]")
    lo, hi = float(f.min()), float(f.max())
    if lo < -FLOAT_TOLERANCE or hi > 1.0 + FLOAT_TOLERANCE:
        hint = " (looks like 0..255: divide by 255)" if hi > 1.5 and hi <= 255.0 and lo >= 0 else ""
        raise ValueRangeError(f"{what} has float values in [{lo:.4g}, {hi:.4g}]; expected [0, 1]{hint}")


def _from_tensor(t, *, max_pixels: int | None) -> np.ndarray:
    import torch

    if t.is_nested:  # it has no single shape
        raise UnsupportedInputError(f"a nested torch tensor of {t.size(0)} tensors; expected one image tensor (C,H,W)")
    what = f"torch tensor of shape {tuple(t.shape)} and dtype {t.dtype} on {t.device}"
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise ShapeError(f"{what} is a batch of {t.shape[0]}; expected one image (C,H,W) or (1,C,H,W)")
        t = t[0]
    if t.ndim != 3:
        raise ShapeError(f"{what} has {t.ndim} dimensions; expected (C,H,W) or (1,C,H,W)")
    if t.shape[0] not in (1, 3, 4):
        raise ShapeError(f"{what} has {t.shape[0]} channels; expected 1, 3 or 4, channels first (C,H,W)")
    _check_pixels(int(t.shape[1]), int(t.shape[2]), max_pixels, what)  # before copying it
    if t.device.type == "meta":
        raise UnsupportedInputError(f"{what} has no data (meta device); expected a tensor on a real device")
    if t.layout != torch.strided:
        raise UnsupportedInputError(f"{what} has layout {t.layout}; expected a dense tensor (call .to_dense())")
    if t.dtype == torch.uint8:
        arr = t.detach().to("cpu").permute(1, 2, 0).numpy()
        return _from_array(arr, max_pixels=max_pixels, what=what)
    if not t.dtype.is_floating_point:
        raise DtypeError(f"{what}: dtype {t.dtype} is not supported; expected a float tensor in [0, 1] or uint8")
    arr = t.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy()
    return _from_array(np.ascontiguousarray(arr), max_pixels=max_pixels, what=what)


def to_pil(arr: np.ndarray, mode: str = "RGB") -> Image.Image:
    """Turn a float ``(H, W, 3)`` array in [0, 1] into a PIL image of ``mode`` ("RGB" or "L")."""
    u8 = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    img = Image.fromarray(u8, "RGB")
    return img if mode == "RGB" else img.convert(mode)


def to_gray(arr: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of a ``(H, W, 3)`` array, shape ``(H, W)``."""
    return (arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114).astype(np.float32)


def save_image_atomic(img: Image.Image, path: str | os.PathLike, **save_kwargs: Any) -> Path:
    """Save ``img`` to ``path`` through a temporary file and a rename, so a crash never leaves half a file."""
    from .cache import atomic_target

    p = Path(path)
    fmt = save_kwargs.pop("format", None) or Image.registered_extensions().get(p.suffix.lower())
    with atomic_target(p) as tmp:
        img.save(tmp, format=fmt, **save_kwargs)
    return p

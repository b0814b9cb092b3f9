"""Many crops, one model call: shape buckets, padding and per-crop masks.

:meth:`preproc.Enhancer.enhance_many` groups crops whose gate chose the same backend (and,
for interpolation backends, the same scale) and runs each group through the backend in
*buckets*: crops of similar size, padded at the bottom/right to the bucket's size with the
tiler's reflect padding (:func:`~preproc.upscalers.tiled.pad_reflect`), stacked, upscaled in
one call, and cropped back. Crops that the backend would tile go through the tiler one by
one, as in :meth:`~preproc.Enhancer.enhance`.

Why the results equal the one-by-one results. A convolution network pads every layer
with zeros at the image border; a crop padded into a larger bucket would instead see the
padding (reflected pixels) through every layer, and on text-sr the output near the padded
border moves by up to 0.70 (of 1.0; tests/test_enhance_many.py). So the padded region is
*masked*: before every spatial convolution, the activations outside each crop's own region
are set to zero (:class:`ConvMask`), which is exactly the zero padding that convolution
applies to the crop alone. Pointwise layers, pixel shuffle and nearest upsampling do not
move values across the region border, so each crop's output equals its own call to float
rounding (max abs difference ~2e-6 in fp32). This holds for the plain convolution
networks listed in :data:`MASKABLE_ARCHS`; for other architectures only crops of equal
size share a call. Bicubic and nearest interpolation at an integer scale read past the
border by clamping, which edge padding reproduces exactly; at a fractional scale the
sample positions depend on the image size, so again only equal sizes share a call.

Buckets bound the waste: :func:`plan_buckets` sorts crops by (height, width) and fills a
bucket while its padded pixels stay within ``max_waste`` of the bucket's area, up to
``batch_size`` crops and the backend's pixel budget per call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .errors import ConfigError, PreprocError
from .upscalers.base import RunInfo

if TYPE_CHECKING:
    from .presets import Preset
    from .upscalers.base import Upscaler

logger = logging.getLogger(__name__)

#: spandrel architecture ids whose output per crop is reproduced exactly under
#: :class:`ConvMask`: only convolutions (stride 1, "same" zero padding), pointwise
#: activations, additions/concatenations, pixel (un)shuffle and nearest upsampling.
MASKABLE_ARCHS = frozenset({"ESRGAN", "Compact"})

#: Default share of a bucket's pixels that may be padding.
DEFAULT_MAX_WASTE = 0.25


# --- bucket plans (pure) ---------------------------------------------------------------
@dataclass(frozen=True)
class Bucket:
    """Crops (indices into the planned list) that share one call, and the size they are padded to."""

    indices: tuple[int, ...]
    height: int
    width: int

    @property
    def size(self) -> int:
        return len(self.indices)


def _ceil_to(v: int, m: int) -> int:
    return -(-v // m) * m


def plan_buckets(
    sizes: Sequence[tuple[int, int]],
    *,
    batch_size: int = 16,
    max_waste: float = DEFAULT_MAX_WASTE,
    max_pixels: int | None = None,
    multiple_of: int = 1,
    exact: bool = False,
) -> list[Bucket]:
    """Group crops of ``sizes`` (``(h, w)`` each) into buckets padded to a common size.

    Every index appears in exactly one bucket; a bucket holds at most ``batch_size``
    crops, its padded size is the largest height and width of its crops rounded up to
    ``multiple_of``, its padding is at most ``max_waste`` of its pixels (a crop that
    would break that starts a new bucket) and its total pixels at most ``max_pixels``
    (a single crop larger than that gets a bucket of its own). ``exact=True``: only crops
    of equal size share a bucket. Buckets come out in the order of their first crop.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= max_waste < 1:
        raise ConfigError(f"max_waste must be in [0, 1), got {max_waste}")
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i][0], sizes[i][1], i))
    buckets: list[list[int]] = []
    cur: list[int] = []
    cur_h = cur_w = cur_area = 0
    for i in order:
        h, w = sizes[i]
        if h < 1 or w < 1:
            raise ConfigError(f"crop {i} has size {h}x{w}; expected positive sides")
        if cur:
            nh, nw = _ceil_to(max(cur_h, h), multiple_of), _ceil_to(max(cur_w, w), multiple_of)
            n = len(cur) + 1
            total = n * nh * nw
            fits = (
                n <= batch_size
                and (cur_area + h * w) >= (1 - max_waste) * total
                and (max_pixels is None or total <= max_pixels)
                and (not exact or (h, w) == (cur_h, cur_w))
            )
            if fits:
                cur.append(i)
                cur_h, cur_w, cur_area = max(cur_h, h), max(cur_w, w), cur_area + h * w
                continue
            buckets.append(cur)
        cur, cur_h, cur_w, cur_area = [i], h, w, h * w
    if cur:
        buckets.append(cur)
    out = []
    for b in buckets:
        bh = _ceil_to(max(sizes[i][0] for i in b), multiple_of)
        bw = _ceil_to(max(sizes[i][1] for i in b), multiple_of)
        out.append(Bucket(tuple(sorted(b)), bh, bw))
    out.sort(key=lambda b: b.indices[0])
    return out


def padded_stack(images: Sequence[np.ndarray], height: int, width: int, mode: str = "reflect") -> torch.Tensor:
    """``(B, 3, height, width)`` float32 from ``(h, w, 3)`` images padded at the bottom/right.

    ``mode``: ``"reflect"`` (the tiler's :func:`~preproc.upscalers.tiled.pad_reflect`) or
    ``"edge"`` (replicate the last row/column).
    """
    from .upscalers.tiled import pad_reflect

    out = np.empty((len(images), 3, height, width), dtype=np.float32)
    for k, im in enumerate(images):
        h, w = im.shape[:2]
        if h > height or w > width:
            raise ConfigError(f"crop {k} of {h}x{w} does not fit the bucket of {height}x{width}")
        if mode == "edge":
            padded = np.pad(im, ((0, height - h), (0, width - w), (0, 0)), mode="edge")
        else:
            padded = pad_reflect(im, height, width)
        out[k] = padded.transpose(2, 0, 1)
    return torch.from_numpy(out)


# --- masks inside a network ------------------------------------------------------------
class ConvMask:
    """Zero each crop's padded region before every spatial convolution of ``module``.

    The zeroing is done in place on the layer's input (only the padded pixels), so the
    model must run under ``torch.inference_mode`` / ``no_grad`` and the batch given to it
    must be the caller's to spend. Hooks are registered once (forward pre-hooks on ``Conv2d`` layers with a kernel larger
    than 1x1) and do nothing unless a mask is active *in the calling thread*
    (:meth:`active`), so a model shared by threads stays correct. The mask at a layer's
    resolution is the crop regions scaled by that layer's size over the input size
    (integer ratios: 2x and 4x upsampling stages, 1/2 after pixel-unshuffle).
    """

    def __init__(self, module: torch.nn.Module):
        self._local = threading.local()
        self._handles = []
        for m in module.modules():
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1):
                if m.stride != (1, 1) or m.padding_mode != "zeros" or m.padding != (m.kernel_size[0] // 2, m.kernel_size[1] // 2):
                    self.remove()
                    raise ConfigError(
                        f"cannot mask {type(module).__name__}: a convolution with stride {m.stride}, padding "
                        f"{m.padding} ({m.padding_mode}); masks need stride 1 and 'same' zero padding"
                    )
                self._handles.append(m.register_forward_pre_hook(self._pre))

    def remove(self) -> None:
        """Unregister the hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []

    @contextmanager
    def active(self, sizes: Sequence[tuple[int, int]], shape: tuple[int, int]) -> Iterator[None]:
        """Within this block, calls in this thread mask crop ``i`` to ``sizes[i]`` of a batch of ``shape``."""
        prev = getattr(self._local, "state", None)
        if all(tuple(s) == tuple(shape) for s in sizes):
            self._local.state = None  # nothing padded: nothing to mask
        else:
            self._local.state = (tuple(map(tuple, sizes)), tuple(shape), {})
        try:
            yield
        finally:
            self._local.state = prev

    def _pre(self, module: torch.nn.Module, args: tuple) -> None:
        state = getattr(self._local, "state", None)
        if state is None:
            return
        x = args[0]
        sizes, (H, W), cache = state
        mh, mw = x.shape[-2:]
        regions = cache.get((mh, mw))
        if regions is None:
            regions = []
            for k, (h, w) in enumerate(sizes):
                rh, rw = h * mh / H, w * mw / W
                if rh != int(rh) or rw != int(rw):
                    raise ConfigError(
                        f"a layer of size {mh}x{mw} in a batch of {H}x{W}: crop {h}x{w} does not map to whole pixels"
                    )
                if (rh, rw) != (mh, mw):
                    regions.append((k, int(rh), int(rw)))
            cache[(mh, mw)] = regions
        if x.shape[0] != len(sizes):
            raise ConfigError(f"masked batch of {len(sizes)} crops got a layer input of batch {x.shape[0]}")
        # In place, and only the padded pixels: what lies there is never part of any
        # crop's output, so zeroing it in an activation that a skip connection also reads
        # changes nothing that is kept (and costs far less than multiplying by a mask).
        for k, rh, rw in regions:
            x[k, :, rh:, :] = 0
            x[k, :, :rh, rw:] = 0


# --- running buckets through a backend -------------------------------------------------
@dataclass
class Upscaled:
    """One crop's share of a batched call: the output, what was done, and its share of the time."""

    image: np.ndarray
    info: RunInfo
    seconds: float


def upscale_many(
    up: Upscaler,
    images: Sequence[np.ndarray],
    preset: Preset,
    *,
    batch_size: int = 16,
    max_waste: float = DEFAULT_MAX_WASTE,
) -> list[Upscaled | PreprocError]:
    """Upscale ``(h, w, 3)`` float32 crops by ``up.scale``, several per call; one slot per crop.

    Every crop must fit one call (:meth:`~preproc.upscalers.Upscaler.fits_one_call`) and
    ``up`` must allow batching (:meth:`~preproc.upscalers.Upscaler.can_batch`). Each crop
    is first padded to the backend's size rules as the tiler pads it, then the crops are
    bucketed (:func:`plan_buckets`) and each bucket is upscaled in one call. A bucket
    whose call raises a :class:`~preproc.errors.PreprocError` is retried crop by crop, so
    the error lands in the slot of the crop that caused it; on out-of-memory the bucket
    is split in halves.
    """
    from .upscalers.tiled import pad_reflect

    req = up.size_requirements
    padded = []
    for im in images:
        h, w = im.shape[:2]
        padded.append(pad_reflect(im, *req.padded_size(h, w)))
    mode = up.batch_padding()
    buckets = plan_buckets(
        [p.shape[:2] for p in padded],
        batch_size=batch_size,
        max_waste=max_waste,
        max_pixels=up.max_batch_pixels(),
        multiple_of=req.multiple_of,
        exact=mode is None,
    )
    out: list[Upscaled | PreprocError | None] = [None] * len(images)
    for b in buckets:
        _run_bucket(up, images, padded, list(b.indices), preset, "edge" if mode == "edge" else "reflect", out)
    return out  # type: ignore[return-value]


def _run_bucket(
    up: Upscaler,
    images: Sequence[np.ndarray],
    padded: Sequence[np.ndarray],
    idx: list[int],
    preset: Preset,
    pad_mode: str,
    out: list,
) -> None:
    from .devices import is_out_of_memory

    sizes = [padded[i].shape[:2] for i in idx]
    bh, bw = max(s[0] for s in sizes), max(s[1] for s in sizes)  # already multiples of the size rule
    t0 = time.perf_counter()
    try:
        batch = padded_stack([padded[i] for i in idx], bh, bw, pad_mode)
        with torch.inference_mode():
            res = up.upscale_padded(batch.to(up.device, up.dtype), sizes).float().clamp(0, 1).cpu().numpy()
    except PreprocError as exc:
        if len(idx) == 1:
            out[idx[0]] = exc
            return
        logger.info("a batch of %d crops failed (%s); running them one by one", len(idx), exc)
        for i in idx:
            _run_bucket(up, images, padded, [i], preset, pad_mode, out)
        return
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled, the rest re-raised
        if not is_out_of_memory(exc):
            raise
        if up.device.type == "cuda":
            torch.cuda.empty_cache()
        if len(idx) == 1:
            raise
        half = len(idx) // 2
        logger.warning("out of memory with %d crops per call: splitting the batch", len(idx))
        _run_bucket(up, images, padded, idx[:half], preset, pad_mode, out)
        _run_bucket(up, images, padded, idx[half:], preset, pad_mode, out)
        return
    share = (time.perf_counter() - t0) / len(idx)
    extra = {**up.run_extra(), "batch": len(idx), "batch_padded_to": [bh, bw]}
    for k, i in enumerate(idx):
        h, w = images[i].shape[:2]
        ph, pw = sizes[k]
        oh, ow = max(1, round(h * up.scale)), max(1, round(w * up.scale))
        img = np.ascontiguousarray(res[k].transpose(1, 2, 0)[:oh, :ow])
        info = RunInfo(
            tiles=1, grid=(1, 1), tile=up.plan_tile(h, w, preset), overlap=0, batch_size=1,
            padded_to=(ph, pw) if (ph, pw) != (h, w) else None, extra=dict(extra),
        )
        out[i] = Upscaled(img, info, share)

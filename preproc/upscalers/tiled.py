"""The tiling adapter: pad -> plan -> batch tiles -> upscale -> blend -> crop back.

Memory is bounded by the tile, not the image: tiles go to the model's device in
batches, the blended output accumulates on the CPU. On out-of-memory the batch size
halves, then the tile side halves, and the run continues (a warning says so).

Context (Real-ESRGAN's ``tile_pad`` idea). A network computes each output pixel from a
neighbourhood of input pixels (its receptive field); a tile cut from the image sees no
pixels beyond its own border, so the network invents them (zero padding) and the
tile's edge comes out wrong. So the model sees each tile with a margin of
``context`` input pixels on every side (:attr:`~preproc.upscalers.Upscaler.context`,
declared by the backend from its receptive field), and only the tile itself goes to the
blender. The margin is separate from the blend ``overlap``: the overlap hides what
error is left with a smooth seam, the context removes the error. At the image border
there is nothing to see, so the window is shifted inward instead (all windows keep one
size and still go through the model in batches): a tile at the border gets the margin
on its inner side only, and the border itself is handled as in a one-shot call.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm.auto import tqdm

from ..devices import is_out_of_memory, memory_budget
from ..errors import ConfigError
from ..tiling import BLEND_KINDS, BlendAccumulator, TileBox, grid_shape, plan_tiles, tile_weights
from .base import RunInfo, Upscaler

logger = logging.getLogger(__name__)


def pad_reflect(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pad ``(H, W, C)`` at the bottom/right to ``height`` x ``width`` by mirror reflection.

    numpy's reflect mode repeats the reflection when the pad is larger than the image,
    so even a 1-pixel crop can be padded to any size.
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    mode = "reflect" if h > 1 and w > 1 else "edge"
    return np.pad(image, ((0, height - h), (0, width - w), (0, 0)), mode=mode)


class TiledUpscaler:
    """Run an :class:`Upscaler` over an image of any size in overlapping tiles.

    ``tile`` and ``overlap`` are in input pixels; ``tile=None`` asks the backend for a
    tile from its memory budget (or no tiling when it needs none). ``blend`` is one of
    ``cosine``, ``linear``, ``gaussian`` or ``none`` (hard paste, for comparison only).
    ``context``: input pixels the model sees around each tile and the blender discards
    (None: the backend's :attr:`~preproc.upscalers.Upscaler.context`; 0: none).
    """

    def __init__(
        self,
        upscaler: Upscaler,
        *,
        tile: int | None = None,
        overlap: int = 16,
        blend: str = "cosine",
        batch_size: int = 4,
        progress: bool | None = None,
        memory_budget_bytes: int | str | None = None,
        context: int | None = None,
    ):
        if blend not in BLEND_KINDS:
            raise ConfigError(f"blend must be one of {', '.join(BLEND_KINDS)}; got {blend!r}")
        if tile is not None and tile < 1:
            raise ConfigError(f"tile must be a positive number of input pixels or None, got {tile}")
        if overlap < 0:
            raise ConfigError(f"overlap must be >= 0 input pixels, got {overlap}")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if context is not None and context < 0:
            raise ConfigError(f"context must be >= 0 input pixels or None, got {context}")
        self.upscaler = upscaler
        self.context = int(upscaler.context if context is None else context)
        self.tile = tile
        self.overlap = overlap
        self.blend = blend
        self.batch_size = batch_size
        self.progress = progress
        self.memory_budget_bytes = memory_budget_bytes

    def _auto_tile(self) -> int | None:
        budget = memory_budget(self.upscaler.device, self.memory_budget_bytes)
        return self.upscaler.tile_for_budget(budget)

    def run(self, image: np.ndarray) -> tuple[np.ndarray, RunInfo]:
        """Upscale ``(H, W, 3)`` float32 in [0, 1]; return ``(H*s, W*s, 3)`` and a :class:`RunInfo`."""
        up = self.upscaler
        h, w = image.shape[:2]
        ph, pw = up.size_requirements.padded_size(h, w)
        padded = pad_reflect(image, ph, pw)
        tile = self.tile if self.tile is not None else self._auto_tile()
        batch_size = self.batch_size
        while True:
            try:
                out, info = self._run_padded(padded, tile, batch_size)
                break
            except Exception as exc:  # noqa: BLE001 - only OOM is retried, the rest re-raised
                if not is_out_of_memory(exc):
                    raise
                if up.device.type == "cuda":
                    torch.cuda.empty_cache()
                if batch_size > 1:
                    batch_size //= 2
                    logger.warning("out of memory: retrying with %d tiles per batch", batch_size)
                    continue
                current = tile or max(ph, pw)
                new = current // 2
                floor = max(up.size_requirements.minimum, 2 * self.overlap + up.size_requirements.multiple_of, 16)
                if new < floor:
                    raise
                logger.warning("out of memory at tile %d px: retrying with tile %d px", current, new)
                tile = new
        # round(), not int(): a fractional scale (bicubic at the gate's 3.43x) must keep
        # the whole image, not a crop of int(scale) times the input (the classic backends'
        # output size is round(side * scale) too).
        oh, ow = max(1, round(h * up.scale)), max(1, round(w * up.scale))
        info.padded_to = (ph, pw) if (ph, pw) != (h, w) else None
        return out[:oh, :ow], info

    def _run_padded(self, image: np.ndarray, tile: int | None, batch_size: int) -> tuple[np.ndarray, RunInfo]:
        up = self.upscaler
        ph, pw = image.shape[:2]
        req = up.size_requirements
        boxes = plan_tiles(ph, pw, tile or max(ph, pw), self.overlap, req.multiple_of, req.minimum)
        if len(boxes) > 1 and float(up.scale) != int(up.scale):
            raise ConfigError(f"tiling needs an integer scale; {up.name} has scale {up.scale}")
        s = int(up.scale) if len(boxes) > 1 else up.scale
        src = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # (3, H, W) on CPU
        if len(boxes) == 1:
            with torch.inference_mode():
                res = up.upscale(src[None].to(up.device, up.dtype))[0].float().clamp(0, 1).cpu()
            out = res.numpy().transpose(1, 2, 0)
            return np.ascontiguousarray(out), RunInfo(tiles=1, grid=(1, 1), tile=tile, overlap=0, batch_size=1)
        acc = BlendAccumulator((3, ph * s, pw * s), paste=self.blend == "none")
        ctx = -(-self.context // req.multiple_of) * req.multiple_of  # windows keep the size rules
        bar = tqdm(total=len(boxes), desc=f"{up.name} tiles", unit="tile", disable=_disable(self.progress), leave=False)
        try:
            for i in range(0, len(boxes), batch_size):
                chunk = boxes[i : i + batch_size]
                wins = [(context_window(b.y0, b.y1, ph, ctx), context_window(b.x0, b.x1, pw, ctx)) for b in chunk]
                batch = torch.stack([src[:, y0:y1, x0:x1] for (y0, y1), (x0, x1) in wins])
                with torch.inference_mode():
                    res = up.upscale(batch.to(up.device, up.dtype)).float().clamp(0, 1).cpu().numpy()
                for b, ((wy, _), (wx, _)), r in zip(chunk, wins, res):
                    sb: TileBox = b.scaled(s)
                    oy, ox = (b.y0 - wy) * s, (b.x0 - wx) * s
                    r = r[:, oy : oy + sb.height, ox : ox + sb.width]  # the context is discarded
                    acc.add(r, sb, tile_weights(b, self.blend if self.blend != "none" else "cosine", s))
                bar.update(len(chunk))
        finally:
            bar.close()
        out = acc.result().transpose(1, 2, 0)
        info = RunInfo(tiles=len(boxes), grid=grid_shape(boxes), tile=max(boxes[0].height, boxes[0].width),
                       overlap=self.overlap, batch_size=batch_size, context=ctx)
        return np.ascontiguousarray(out), info


def context_window(start: int, stop: int, length: int, context: int) -> tuple[int, int]:
    """The model's input window for the tile ``[start, stop)`` of an axis of ``length``.

    ``context`` pixels on each side, shifted inward at the image border (the window keeps
    the size ``stop - start + 2 * context``, or the whole axis when that is shorter), so
    every window of a plan has one size and the tile lies inside its window.
    """
    size = min(stop - start + 2 * context, length)
    lo = min(max(start - context, 0), length - size)
    return lo, lo + size


def _disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None lets tqdm turn itself off when stderr is not a TTY."""
    if progress is None:
        return None
    return not progress

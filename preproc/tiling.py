"""Tile plans, blend weights and a blending accumulator: pure geometry, no models.

A *tile plan* covers an image with the fewest equally sized tiles per axis, spread
evenly so that neighbours overlap by at least the requested amount. Blend weights fall
smoothly to zero-ish (never exactly zero) inside each overlap and stay 1 elsewhere, so
the weighted average of overlapping tiles has no hard step anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .errors import ConfigError

BlendKind = Literal["cosine", "linear", "gaussian", "none"]
BLEND_KINDS: tuple[str, ...] = ("cosine", "linear", "gaussian", "none")


@dataclass(frozen=True)
class Span:
    """A half-open interval ``[start, stop)`` on one axis, with the overlap on each side."""

    start: int
    stop: int
    overlap_before: int = 0  #: pixels shared with the previous span (0 at the image border)
    overlap_after: int = 0  #: pixels shared with the next span (0 at the image border)

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class TileBox:
    """One tile: rows ``[y0, y1)`` and columns ``[x0, x1)`` of the image, and its overlaps."""

    y: Span
    x: Span

    @property
    def y0(self) -> int:
        return self.y.start

    @property
    def y1(self) -> int:
        return self.y.stop

    @property
    def x0(self) -> int:
        return self.x.start

    @property
    def x1(self) -> int:
        return self.x.stop

    @property
    def height(self) -> int:
        return self.y.size

    @property
    def width(self) -> int:
        return self.x.size

    def scaled(self, s: int) -> TileBox:
        """The same box in an image ``s`` times larger (integer scale)."""

        def sc(p: Span) -> Span:
            return Span(p.start * s, p.stop * s, p.overlap_before * s, p.overlap_after * s)

        return TileBox(sc(self.y), sc(self.x))


def _ceil_to(v: int, m: int) -> int:
    return -(-v // m) * m


def _floor_to(v: int, m: int) -> int:
    return (v // m) * m


def padded_length(length: int, multiple_of: int = 1, minimum: int = 1) -> int:
    """The smallest length >= ``length`` and >= ``minimum`` that is a multiple of ``multiple_of``."""
    if length <= 0:
        raise ConfigError(f"length must be positive, got {length}")
    return _ceil_to(max(length, minimum), multiple_of)


def effective_tile(tile: int, multiple_of: int = 1, minimum: int = 1) -> int:
    """``tile`` rounded down to a multiple of ``multiple_of`` but not below ``minimum`` (rounded up)."""
    return max(_floor_to(tile, multiple_of), _ceil_to(minimum, multiple_of))


def plan_axis(length: int, tile: int, overlap: int, multiple_of: int = 1, minimum: int = 1) -> list[Span]:
    """Cover ``[0, length)`` with the fewest spans of one size, overlapping by >= ``overlap``.

    ``length`` must already satisfy the model's size rules (a multiple of ``multiple_of``
    and >= ``minimum``; see :func:`padded_length`). The tile is rounded down to a multiple
    of ``multiple_of``; span starts are multiples of it too, so the smallest overlap that
    can be kept is ``overlap`` rounded up to a multiple, and the count is minimal under
    that rule: ``n = ceil((length - ov) / (tile - ov))``. When ``length <= tile`` one span
    covers everything.
    """
    for name, v in (("tile", tile), ("multiple_of", multiple_of), ("minimum", minimum)):
        if v < 1:
            raise ConfigError(f"{name} must be >= 1, got {v}")
    if overlap < 0:
        raise ConfigError(f"overlap must be >= 0, got {overlap}")
    if length < minimum or length % multiple_of:
        raise ConfigError(
            f"length {length} breaks the size rules (minimum {minimum}, multiple of {multiple_of}); "
            f"pad it to {padded_length(length, multiple_of, minimum)} first"
        )
    t = effective_tile(tile, multiple_of, minimum)
    if length <= t:
        return [Span(0, length)]
    ov = _ceil_to(overlap, multiple_of)
    if ov >= t:
        raise ConfigError(
            f"overlap {overlap} (rounded to {ov}, a multiple of {multiple_of}) must be smaller than the tile {t}"
        )
    # Work in units of multiple_of so every start is a multiple.
    m = multiple_of
    L, T, V = length // m, t // m, ov // m
    n = math.ceil((L - V) / (T - V))
    starts = [round(i * (L - T) / (n - 1)) * m for i in range(n)]
    spans = []
    for i, s in enumerate(starts):
        before = (starts[i - 1] + t - s) if i > 0 else 0
        after = (s + t - starts[i + 1]) if i < n - 1 else 0
        spans.append(Span(s, s + t, before, after))
    return spans


def plan_tiles(
    height: int,
    width: int,
    tile: int | tuple[int, int],
    overlap: int,
    multiple_of: int = 1,
    minimum: int = 1,
) -> list[TileBox]:
    """Tile boxes covering a ``height`` x ``width`` image, row-major. See :func:`plan_axis`."""
    th, tw = (tile, tile) if isinstance(tile, int) else tile
    ys = plan_axis(height, th, overlap, multiple_of, minimum)
    xs = plan_axis(width, tw, overlap, multiple_of, minimum)
    return [TileBox(y, x) for y in ys for x in xs]


def grid_shape(boxes: Sequence[TileBox]) -> tuple[int, int]:
    """(rows, columns) of a plan from :func:`plan_tiles`."""
    return len({b.y for b in boxes}), len({b.x for b in boxes})


# --- blend weights -------------------------------------------------------------------
def ramp(n: int, kind: BlendKind = "cosine") -> np.ndarray:
    """A rising ramp of ``n`` samples, strictly inside (0, 1), with ``r[i] + r[n-1-i] == 1``.

    Two tiles that overlap by exactly ``n`` pixels and use this ramp (one rising, one
    falling) have weights summing to 1 across the overlap.
    """
    if n <= 0:
        return np.zeros(0, dtype=np.float64)
    t = (np.arange(n, dtype=np.float64) + 0.5) / n
    if kind == "linear":
        return t
    if kind == "cosine":
        return 0.5 - 0.5 * np.cos(np.pi * t)
    raise ConfigError(f"ramp kind must be 'cosine' or 'linear', got {kind!r}")


def axis_weights(span: Span, kind: BlendKind = "cosine", scale: int = 1) -> np.ndarray:
    """1-D weights for one span (length ``span.size * scale``), positive everywhere.

    ``cosine``/``linear``: 1 in the middle, a ramp over each overlap with a neighbour, no
    ramp at the image border. ``gaussian``: a Gaussian over the whole span (sigma = size/4,
    as in Mixture of Diffusers), floored at 1e-3 so it stays positive. ``none``: all ones
    (hard paste: later tiles overwrite is *not* what happens; equal weights average).
    """
    n = span.size * scale
    if kind == "none":
        return np.ones(n, dtype=np.float64)
    if kind == "gaussian":
        x = np.arange(n, dtype=np.float64) + 0.5
        sigma = n / 4.0
        w = np.exp(-0.5 * ((x - n / 2.0) / sigma) ** 2)
        # No falloff toward an image border: nothing else covers those pixels.
        if span.overlap_before == 0:
            w[: n // 2] = 1.0
        if span.overlap_after == 0:
            w[n // 2 :] = 1.0
        return np.maximum(w, 1e-3)
    w = np.ones(n, dtype=np.float64)
    a, b = span.overlap_before * scale, span.overlap_after * scale
    if a:
        w[:a] = ramp(a, kind)
    if b:
        w[n - b :] = np.minimum(w[n - b :], ramp(b, kind)[::-1])
    return w


def tile_weights(box: TileBox, kind: BlendKind = "cosine", scale: int = 1) -> np.ndarray:
    """2-D weights ``(h*scale, w*scale)`` for one tile: the outer product of its axis weights."""
    if kind not in BLEND_KINDS:
        raise ConfigError(f"blend must be one of {', '.join(BLEND_KINDS)}; got {kind!r}")
    return np.outer(axis_weights(box.y, kind, scale), axis_weights(box.x, kind, scale))


class BlendAccumulator:
    """Weighted sum of tiles divided by the sum of weights, for numpy or torch.

    ``shape`` is ``(C, H, W)``. Accumulates in float64 by default so that a constant
    image is reproduced *exactly* after casting back to float32. With ``blend="none"``
    the accumulator pastes (later tiles overwrite earlier ones): the hard-seam baseline.
    """

    def __init__(self, shape: tuple[int, int, int], *, like=None, dtype=None, paste: bool = False):
        self.paste = paste
        self._torch = like is not None and not isinstance(like, np.ndarray)
        if self._torch:
            import torch

            dt = dtype or torch.float64
            self.acc = torch.zeros(shape, dtype=dt, device=like.device)
            self.wsum = torch.zeros(shape[1:], dtype=dt, device=like.device)
        else:
            dt = dtype or np.float64
            self.acc = np.zeros(shape, dtype=dt)
            self.wsum = np.zeros(shape[1:], dtype=dt)

    def add(self, tile, box: TileBox, weights: np.ndarray | None = None) -> None:
        """Add ``tile`` (``(C, h, w)``) at ``box`` (in this accumulator's pixel units)."""
        ys, xs = slice(box.y0, box.y1), slice(box.x0, box.x1)
        if weights is None:
            weights = np.ones((box.height, box.width))
        if self._torch:
            import torch

            w = torch.as_tensor(weights, dtype=self.acc.dtype, device=self.acc.device)
            t = tile.to(self.acc.dtype)
        else:
            w = weights.astype(self.acc.dtype, copy=False)
            t = np.asarray(tile, dtype=self.acc.dtype)
        if self.paste:
            self.acc[:, ys, xs] = t
            self.wsum[ys, xs] = 1.0
        else:
            self.acc[:, ys, xs] += t * w
            self.wsum[ys, xs] += w

    def result(self, dtype=None):
        """The blended image ``(C, H, W)``; raises if some pixel was never covered."""
        covered = (self.wsum > 0).all()
        if not bool(covered):
            raise ConfigError("the tile plan left pixels uncovered (a bug: please report it)")
        out = self.acc / self.wsum
        if self._torch:
            import torch

            return out.to(dtype or torch.float32)
        return out.astype(dtype or np.float32)

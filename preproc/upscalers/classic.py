"""Classical interpolation backends: the baselines every claim is measured against."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ConfigError
from .base import Upscaler


class _Interpolation(Upscaler):
    #: Made per call at the gate's exact scale (cheap), not cached.
    any_scale = True

    def __init__(self, scale: float = 4, device=None, dtype=None):
        super().__init__(device=device, dtype=dtype)
        if not scale > 0:
            raise ConfigError(f"scale must be > 0, got {scale}")
        self.scale = float(scale) if float(scale) != int(scale) else int(scale)

    def _size(self, h: int, w: int) -> tuple[int, int]:
        return max(1, round(h * self.scale)), max(1, round(w * self.scale))

    #: Whether the border handling equals edge padding (clamped taps), so that
    #: edge-padded crops of different sizes can share one call at an integer scale.
    clamps_at_border: bool = False

    def batch_padding(self) -> str | None:
        """``"edge"`` at an integer scale for clamping kernels; otherwise only equal sizes share a call.

        At a fractional scale the sample positions depend on the image size (``in / out``),
        so padding would move them.
        """
        return "edge" if self.clamps_at_border and float(self.scale) == int(self.scale) else None


class BicubicUpscaler(_Interpolation):
    """Bicubic interpolation (PyTorch, a = -0.75, half-pixel centres; antialiased when shrinking)."""

    name = "bicubic"
    context = 2  # the cubic kernel reads 2 input pixels on each side
    clamps_at_border = True

    def upscale(self, batch: torch.Tensor) -> torch.Tensor:
        size = self._size(*batch.shape[-2:])
        x = batch.float()
        return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=self.scale < 1).clamp_(0, 1)


class NearestUpscaler(_Interpolation):
    """Nearest-neighbour (pixel replication at integer scales)."""

    name = "nearest"
    context = 1
    clamps_at_border = True

    def upscale(self, batch: torch.Tensor) -> torch.Tensor:
        return F.interpolate(batch.float(), size=self._size(*batch.shape[-2:]), mode="nearest-exact")


class LanczosUpscaler(_Interpolation):
    """Lanczos-3 through PIL on float32 planes (PIL's resampler, what most users know)."""

    name = "lanczos"
    context = 3  # Lanczos-3 reads 3 input pixels on each side (PIL renormalises at the border)

    def upscale(self, batch: torch.Tensor) -> torch.Tensor:
        h, w = batch.shape[-2:]
        oh, ow = self._size(h, w)
        arr = batch.detach().float().cpu().numpy()
        out = np.empty(arr.shape[:2] + (oh, ow), dtype=np.float32)
        for i in range(arr.shape[0]):
            for c in range(arr.shape[1]):
                plane = Image.fromarray(arr[i, c], mode="F")
                out[i, c] = np.asarray(plane.resize((ow, oh), Image.Resampling.LANCZOS))
        return torch.from_numpy(out).clamp_(0, 1)

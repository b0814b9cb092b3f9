"""The upscaler protocol: what every backend declares and does.

A backend is a thin object around a model: it declares its scale factor and its size
rules as data (:class:`SizeRequirements`), owns its device and dtype, and upscales a
*batch* of tiles. Tiling, padding and blending are done for it by
:class:`~preproc.upscalers.tiled.TiledUpscaler`; a backend that tiles internally (SD x4
tiles its latent) overrides :meth:`Upscaler.run` instead.

Two more declarations serve the tiler and the batcher (:mod:`preproc.batching`):

* :attr:`Upscaler.context`: how many input pixels around a tile the model must see so
  that the tile's output does not feel the tile border (its receptive field). The tiler
  feeds each tile with this margin and the blender discards it.
* :meth:`Upscaler.batch_padding`: how crops of different sizes can share one
  :meth:`~Upscaler.upscale` call and still give each crop its own one-call result.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

if TYPE_CHECKING:
    from ..presets import Preset

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SizeRequirements:
    """What input sizes a model accepts (the idea of spandrel's ``SizeRequirements``)."""

    minimum: int = 1
    """The smallest height and width the model accepts; smaller inputs are padded."""
    multiple_of: int = 1
    """Height and width must be multiples of this; other sizes are padded."""

    def padded_size(self, height: int, width: int) -> tuple[int, int]:
        """The size an image of ``height`` x ``width`` is padded to before the model sees it."""
        from ..tiling import padded_length

        return (
            padded_length(height, self.multiple_of, self.minimum),
            padded_length(width, self.multiple_of, self.minimum),
        )


@dataclass
class RunInfo:
    """What a run did, for ``EnhanceResult.meta``."""

    tiles: int = 1
    grid: tuple[int, int] = (1, 1)
    tile: int | None = None
    overlap: int = 0
    batch_size: int = 1
    padded_to: tuple[int, int] | None = None
    extra: dict[str, Any] | None = None
    #: Input pixels of context the model saw around each tile (0: one call, or none).
    context: int = 0

    def as_meta(self) -> dict[str, Any]:
        d = {
            "tiles": self.tiles,
            "tile_grid": list(self.grid),
            "tile": self.tile,
            "overlap": self.overlap,
            "tile_batch_size": self.batch_size,
            "padded_to": list(self.padded_to) if self.padded_to else None,
            "tile_context": self.context,
        }
        if self.extra:
            d.update(self.extra)
        return d


class Upscaler(ABC):
    """Base class of every backend.

    Subclasses set ``name``, ``scale`` and ``size_requirements`` and implement
    :meth:`upscale`. ``device``/``dtype`` are the caller's (diffusers' convention):
    given at construction, changed with :meth:`to`.
    """

    name: ClassVar[str] = "base"
    #: Integer scale factor of one :meth:`upscale` call (classical backends may be fractional).
    scale: float = 4
    size_requirements: SizeRequirements = SizeRequirements()
    #: Whether this backend can run without network access once installed.
    offline: ClassVar[bool] = True
    #: Input pixels of context a tile needs on each side (the receptive-field radius, or
    #: where that is huge, the radius that holds nearly all of the influence): the tiler
    #: feeds the model this margin around every tile and discards its output. 0: none.
    context: int = 0
    #: Whether whole crops may go through :meth:`upscale` in batches
    #: (:meth:`preproc.Enhancer.enhance_many`). None: yes exactly when the backend keeps the
    #: default :meth:`run` (one :meth:`upscale` call for a crop that fits one tile); a
    #: backend with its own sampling loop (SD x4) is then run one crop at a time.
    batchable: ClassVar[bool | None] = None

    def __init__(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None):
        from ..devices import resolve_device, resolve_dtype

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.default_dtype(self.device))

    # --- to override -------------------------------------------------------------
    def default_dtype(self, device: torch.device) -> torch.dtype:
        """The dtype used when the caller gives none (float32 unless a backend knows better)."""
        return torch.float32

    @abstractmethod
    def upscale(self, batch: torch.Tensor) -> torch.Tensor:
        """Upscale ``batch`` ``(B, 3, h, w)`` float in [0, 1] to ``(B, 3, h*scale, w*scale)``.

        ``h`` and ``w`` satisfy :attr:`size_requirements`. Output is float, in [0, 1],
        on any device (the caller moves it).
        """

    def tile_for_budget(self, budget_bytes: int) -> int | None:
        """Largest input tile side that fits ``budget_bytes``; ``None`` means no tiling needed."""
        return None

    def batch_padding(self) -> str | None:
        """How crops of different sizes share one :meth:`upscale` call, exactly.

        ``"mask"``: padded to a common size and masked (:meth:`upscale_padded`), so that
        each crop's output equals its own call; ``"edge"``: edge-padded, which is exact
        for this backend as it is; ``None``: only crops of equal size share a call.
        """
        return None

    def upscale_padded(self, batch: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> torch.Tensor:
        """Upscale a batch of crops padded at the bottom/right; ``sizes[i]`` is crop i's ``(h, w)``.

        Each crop's region of the output (``h*scale`` x ``w*scale`` at the top left) equals
        :meth:`upscale` of the crop alone when :meth:`batch_padding` is not None. The
        default (for ``"edge"`` and equal sizes) is :meth:`upscale` of the whole batch.
        """
        return self.upscale(batch)

    def max_batch_pixels(self) -> int | None:
        """Most input pixels (all crops of a batch together) one call should hold; None: no limit."""
        return None

    def run_extra(self) -> dict[str, Any]:
        """Extra ``meta`` fields of every run of this backend (e.g. the precision)."""
        return {}

    @classmethod
    def is_available(cls) -> bool:
        """Whether this backend can be constructed here without downloading anything."""
        return True

    # --- provided ----------------------------------------------------------------
    def to(self, device: str | torch.device | None = None, dtype: str | torch.dtype | None = None) -> Upscaler:
        """Move to another device/dtype (subclasses move their modules in :meth:`_moved`)."""
        from ..devices import resolve_device, resolve_dtype

        if device is not None:
            self.device = resolve_device(device)
        if dtype is not None:
            self.dtype = resolve_dtype(dtype)
        self._moved()
        return self

    def _moved(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Hook for subclasses holding torch modules."""

    def can_batch(self) -> bool:
        """Whether whole crops may be batched through :meth:`upscale` (see :attr:`batchable`)."""
        if self.batchable is not None:
            return bool(self.batchable)
        return type(self).run is Upscaler.run

    def plan_tile(self, height: int, width: int, preset: Preset) -> int | None:
        """The input tile side :meth:`run` uses for a ``height`` x ``width`` crop (None: one call).

        The default: ``preset.tile``, else what the memory budget allows
        (:meth:`tile_for_budget`).
        """
        if preset.tile is not None:
            return preset.tile
        from ..devices import memory_budget

        return self.tile_for_budget(memory_budget(self.device))

    def fits_one_call(self, height: int, width: int, preset: Preset) -> bool:
        """Whether :meth:`run` upscales a ``height`` x ``width`` crop in a single :meth:`upscale` call."""
        from ..tiling import effective_tile

        tile = self.plan_tile(height, width, preset)
        if tile is None:
            return True
        req = self.size_requirements
        ph, pw = req.padded_size(height, width)
        t = effective_tile(tile, req.multiple_of, req.minimum)
        return ph <= t and pw <= t

    def run(
        self,
        image: np.ndarray,
        preset: Preset,
        *,
        generator: torch.Generator | None = None,
        progress: bool | None = None,
    ) -> tuple[np.ndarray, RunInfo]:
        """Upscale one ``(H, W, 3)`` float image by :attr:`scale`, tiled per ``preset``.

        Returns the ``(H*scale, W*scale, 3)`` float32 array and what was done.
        """
        from .tiled import TiledUpscaler

        h, w = image.shape[:2]
        tiler = TiledUpscaler(
            self,
            tile=self.plan_tile(h, w, preset),
            overlap=preset.overlap,
            blend=preset.blend,
            batch_size=preset.batch_size,
            progress=progress,
        )
        out, info = tiler.run(image)
        extra = self.run_extra()
        if extra:
            info.extra = {**(info.extra or {}), **extra}
        return out, info

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scale={self.scale}, device={self.device}, dtype={self.dtype})"

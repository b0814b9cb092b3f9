"""The base of the backends whose weights preproc trains and ships (``text-sr``, ``face-sr``).

Their files come from :func:`preproc.train.model.save_weights` (fp16 safetensors with the
architecture in the metadata) and are read by :func:`~preproc.train.model.load_weights`,
with its checks and messages; any other ``model=`` goes to spandrel's loader as for the
Real-ESRGAN backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from .realesrgan import SpandrelUpscaler


class ShippedWeightsUpscaler(SpandrelUpscaler):
    """A compact net of ours: :meth:`default_weights` names the shipped file, :meth:`is_own_file`
    says which ``model=`` values are our weight files."""

    bytes_per_pixel: ClassVar[float] = 2048.0

    @classmethod
    def default_weights(cls) -> Path:
        """The weights file this backend loads when no ``model`` is given."""
        raise NotImplementedError

    @classmethod
    def is_own_file(cls, model: Any) -> bool:
        """Whether ``model`` is read by :func:`preproc.train.model.load_weights`."""
        raise NotImplementedError

    def __init__(self, model: Any = None, device=None, dtype=None, *, memory_budget: int | str | None = None):
        source = None
        if model is None:
            model = self.default_weights()
        if self.is_own_file(model):
            from ..train.model import load_weights

            source = str(model)
            model = load_weights(model).state_dict()
        super().__init__(model, device, dtype, memory_budget=memory_budget)
        if source is not None:
            self.model_id = f"{self.name} ({source})"

    @classmethod
    def is_available(cls) -> bool:
        """True when the shipped weights are present (and spandrel is installed)."""
        try:
            import spandrel  # noqa: F401
        except ImportError:
            return False
        return cls.default_weights().is_file()

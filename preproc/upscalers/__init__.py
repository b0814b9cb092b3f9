"""Super-resolution backends behind one protocol (see :mod:`preproc.upscalers.base`)."""

from .base import RunInfo, SizeRequirements, Upscaler
from .registry import create_upscaler, register_upscaler, upscaler_class, upscaler_names
from .tiled import TiledUpscaler, pad_reflect

__all__ = [
    "RunInfo",
    "SizeRequirements",
    "TiledUpscaler",
    "Upscaler",
    "create_upscaler",
    "pad_reflect",
    "register_upscaler",
    "upscaler_class",
    "upscaler_names",
]

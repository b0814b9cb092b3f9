"""preproc: make small, low-resolution text and face crops readable for machines."""

import logging

from . import compare  # a package that is also callable: preproc.compare(dataset, ...)
from .enhance import Enhancer, EnhanceResult, enhance, enhance_many
from .errors import PreprocError
from .io import load_image
from .page import PageResult, read_page
from .presets import Preset, get_preset
from .upscalers import create_upscaler, register_upscaler, upscaler_names
from .vote import read_voted

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "EnhanceResult",
    "PageResult",
    "Enhancer",
    "Preset",
    "PreprocError",
    "compare",
    "create_upscaler",
    "enhance",
    "enhance_many",
    "get_preset",
    "load_image",
    "read_page",
    "read_voted",
    "register_upscaler",
    "upscaler_names",
]

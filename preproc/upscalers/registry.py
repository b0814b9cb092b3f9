"""Backends by name. Entries are ``module:Class`` strings imported on first use, so
``import preproc`` does not import diffusers or spandrel."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ..errors import UnknownOptionError, UnknownUpscalerError
from .base import Upscaler

_REGISTRY: dict[str, str] = {
    "bicubic": "preproc.upscalers.classic:BicubicUpscaler",
    "lanczos": "preproc.upscalers.classic:LanczosUpscaler",
    "nearest": "preproc.upscalers.classic:NearestUpscaler",
    "sd-x4": "preproc.upscalers.sd_x4:SDx4Upscaler",
    "realesrgan": "preproc.upscalers.realesrgan:RealESRGANUpscaler",
    "realesrgan-compact": "preproc.upscalers.realesrgan:RealESRGANCompactUpscaler",
    "text-sr": "preproc.upscalers.text_sr:TextSRUpscaler",
    "face-sr": "preproc.upscalers.face_sr:FaceSRUpscaler",
    "text-sr-v1": "preproc.upscalers.text_sr:TextSRV1Upscaler",
    "text-sr-v2": "preproc.upscalers.text_sr:TextSRV2Upscaler",
    "text-sr-v3": "preproc.upscalers.text_sr:TextSRV3Upscaler",
    "text-sr-small": "preproc.upscalers.text_sr:TextSRSmallUpscaler",
}


def register_upscaler(name: str, target: str | type[Upscaler]) -> None:
    """Register a backend under ``name``: a class or a ``"module:Class"`` string."""
    if isinstance(target, type):
        target = f"{target.__module__}:{target.__qualname__}"
    _REGISTRY[name] = target


def upscaler_names() -> list[str]:
    """Names of all registered backends."""
    return sorted(_REGISTRY)


def upscaler_class(name: str) -> type[Upscaler]:
    """The class registered under ``name``."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise UnknownUpscalerError(
            f"no upscaler named {name!r}; available: {', '.join(upscaler_names())}"
        ) from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def create_upscaler(name: str, **kwargs: Any) -> Upscaler:
    """Construct the backend registered under ``name`` with ``kwargs`` (device, dtype, model...).

    A keyword the backend's constructor does not take (a typo in ``backend_options``) is an
    :class:`~preproc.errors.UnknownOptionError` listing the ones it takes.
    """
    cls = upscaler_class(name)
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        known = [k for k, p in params.items() if k != "self" and p.kind is not inspect.Parameter.VAR_POSITIONAL]
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            raise UnknownOptionError(f"backend {name!r} does not take option(s) {', '.join(map(repr, unknown))}; "
                                     f"it takes {', '.join(known)}")
    return cls(**kwargs)

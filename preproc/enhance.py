"""``enhance()`` and :class:`Enhancer`: the flow of one crop.

load & validate -> preset -> gate -> upscaler (tiled) -> resize to the gate's scale ->
colour fix -> output mode -> hooks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from . import gate
from .devices import resolve_device
from .hooks import Hook, run_hooks
from .io import DEFAULT_MAX_PIXELS, ImageLike, load_image, to_pil
from .post import color_fix, resize_to
from .presets import Preset, get_preset
from .upscalers import Upscaler, create_upscaler, upscaler_class
from .upscalers.auto import resolve_auto

logger = logging.getLogger(__name__)


@dataclass
class EnhanceResult:
    """The enhanced image (PIL) and what happened (``meta``: backend, scale, tiles, seconds, seed...)."""

    image: Image.Image
    meta: dict[str, Any] = field(default_factory=dict)

    def to_numpy(self) -> np.ndarray:
        """The image as a uint8 array (``(H, W)`` for mode L, ``(H, W, 3)`` for RGB)."""
        return np.asarray(self.image)


class Enhancer:
    """A reusable enhancer: keeps loaded models between calls.

    ``Enhancer(task="ocr", upscaler="realesrgan", device="cuda", dtype="fp16")``; every
    :class:`~preproc.presets.Preset` field can be given as a keyword here (defaults for
    every call) or to :meth:`enhance` (this call only).
    """

    def __init__(
        self,
        task: str = "ocr",
        upscaler: str | None = None,
        *,
        model: Any = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        progress: bool | None = None,
        **overrides: Any,
    ):
        if upscaler is not None:
            overrides["upscaler"] = upscaler
        self._model_object = None
        if model is not None and not isinstance(model, str):
            self._model_object = model  # an already loaded pipeline or module
        elif model is not None:
            overrides["model"] = model
        self.preset: Preset = get_preset(task, **overrides)
        self.device = resolve_device(device)
        self.dtype = dtype
        self.max_pixels = max_pixels
        self.progress = progress
        self._backends: dict[tuple, Upscaler] = {}
        self._lock = threading.Lock()

    # --- backends ------------------------------------------------------------------
    def backend_name(self, preset: Preset | None = None) -> tuple[str, str]:
        """``(name, reason)`` of the backend ``preset`` resolves to."""
        p = preset or self.preset
        if p.upscaler == "auto":
            return resolve_auto(p.task, self.device)
        return p.upscaler, "named by the caller"

    def get_upscaler(self, name: str, preset: Preset | None = None, scale: float | None = None) -> Upscaler:
        """The backend ``name``, loaded once and cached (interpolation backends are made per scale)."""
        p = preset or self.preset
        cls = upscaler_class(name)
        if getattr(cls, "any_scale", False):
            return cls(scale=scale or 4, device=self.device)
        key = (name, p.model, id(self._model_object))
        with self._lock:
            if key not in self._backends:
                kwargs: dict[str, Any] = {"device": self.device, "dtype": self.dtype}
                model = self._model_object if self._model_object is not None else p.model
                if model is not None:
                    kwargs["model"] = model
                kwargs.update(p.backend_options)
                t0 = time.perf_counter()
                self._backends[key] = create_upscaler(name, **kwargs)
                logger.info("loaded %s in %.2f s", self._backends[key], time.perf_counter() - t0)
            return self._backends[key]

    # --- the flow ----------------------------------------------------------------
    def enhance(
        self,
        crop: ImageLike,
        *,
        scale: float | None = None,
        hooks: list[Hook] | tuple[Hook, ...] = (),
        generator: torch.Generator | None = None,
        seed: int | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> EnhanceResult:
        """Enhance one crop; see :func:`preproc.enhance`."""
        t0 = time.perf_counter()
        preset = self.preset.replace(**overrides) if overrides else self.preset
        if overrides:
            from .presets import validate

            validate(preset)
        image = load_image(crop, max_pixels=self.max_pixels)
        h, w = image.shape[:2]
        decision = gate.decide(image, preset, scale)
        meta: dict[str, Any] = {
            "task": preset.task,
            "input_size": [w, h],
            "gate": decision.reason,
            "gate_measured": decision.measured,
            "skipped": decision.skip,
            "scale": decision.scale,
        }
        if seed is not None:
            if generator is not None:
                from .errors import ConfigError

                raise ConfigError("give either `seed` or `generator`, not both")
            generator = torch.Generator("cpu").manual_seed(seed)
        meta["seed"] = seed if seed is not None else (generator.initial_seed() if generator is not None else None)
        if decision.skip:
            out = image
            meta.update(upscaler=None, upscaler_reason="gate skipped enhancement")
        else:
            name, why = self.backend_name(preset)
            up = self.get_upscaler(name, preset, decision.scale)
            t_up = time.perf_counter()
            res, info = up.run(image, preset, generator=generator, progress=self.progress if progress is None else progress)
            meta.update(
                upscaler=name,
                upscaler_reason=why,
                model=getattr(up, "model_id", preset.model),
                native_scale=up.scale,
                device=str(up.device),
                dtype=str(up.dtype).removeprefix("torch."),
                upscaler_seconds=time.perf_counter() - t_up,
                **info.as_meta(),
            )
            oh, ow = max(1, round(h * decision.scale)), max(1, round(w * decision.scale))
            out = resize_to(res, oh, ow)
            if preset.color_fix and getattr(up, "needs_color_fix", False):
                out = color_fix(out, image)
                meta["color_fix"] = True
        meta["output_size"] = [out.shape[1], out.shape[0]]
        result = to_pil(out, preset.output_mode)
        if hooks:
            before = to_pil(image, "RGB")
            result = run_hooks(list(hooks), before, result, meta)
        meta["seconds"] = time.perf_counter() - t0
        return EnhanceResult(result, meta)

    __call__ = enhance


_CACHE: OrderedDict[tuple, Enhancer] = OrderedDict()
_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()


def enhance(
    crop: ImageLike,
    task: str = "ocr",
    upscaler: str | None = None,
    scale: float | None = None,
    *,
    model: Any = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    hooks: list[Hook] | tuple[Hook, ...] = (),
    generator: torch.Generator | None = None,
    seed: int | None = None,
    progress: bool | None = None,
    **overrides: Any,
) -> EnhanceResult:
    """Enhance one crop for a recognizer.

    ``crop``: PIL image, numpy array ``(H,W[,C])``, torch tensor ``(C,H,W)`` or a path.
    ``task``: ``"ocr"``, ``"face"`` or ``"generic"`` (picks the preset).
    ``upscaler``: a backend name (``preproc.upscaler_names()``) or None for the task's rule.
    ``scale``: force a scale instead of the gate's choice (``1`` leaves the crop as it is).
    ``overrides``: any :class:`~preproc.presets.Preset` field (``tile``, ``noise_level``...).

    Loaded models are kept between calls (the last two configurations); for explicit
    control, keep an :class:`Enhancer`.
    """
    key = (task, upscaler, model if isinstance(model, (str, type(None))) else id(model), str(device), str(dtype))
    with _CACHE_LOCK:
        enh = _CACHE.pop(key, None)
        if enh is None:
            enh = Enhancer(task, upscaler, model=model, device=device, dtype=dtype)
        _CACHE[key] = enh
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return enh.enhance(crop, scale=scale, hooks=hooks, generator=generator, seed=seed, progress=progress, **overrides)

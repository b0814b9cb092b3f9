"""``enhance()`` and :class:`Enhancer`: the flow of one crop.

load & validate -> preset -> gate -> upscaler (tiled) -> resize to the gate's scale ->
colour fix -> output mode -> hooks.
"""

from __future__ import annotations

import itertools
import logging
import numbers
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from . import gate
from .devices import resolve_device
from .errors import (
    ImageTooLargeError,
    ModelUnavailableError,
    PreprocError,
    UnknownUpscalerError,
    WeightsError,
)
from .hooks import Hook, check_hooks, run_hooks
from .io import DEFAULT_MAX_PIXELS, ImageLike, load_image, to_pil
from .line_isolation import remove_fragments
from .post import color_fix, resize_to
from .presets import Preset, get_preset
from .upscalers import RunInfo, Upscaler, create_upscaler, upscaler_class
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


@dataclass
class _Prepared:
    """One crop between the gate and the model (shared by the one-by-one and the batched paths)."""

    image: np.ndarray
    preset: Preset
    decision: gate.GateDecision
    meta: dict[str, Any]
    generator: torch.Generator | None
    name: str | None = None
    why: str | None = None
    up: Upscaler | None = None
    prep_seconds: float = 0.0


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
    def backend_name(self, preset: Preset | None = None, height: int | None = None) -> tuple[str, str]:
        """``(name, reason)`` of the backend ``preset`` resolves to for a crop ``height`` px tall
        (None: for a crop of any size; the auto rule gives small OCR crops their own model)."""
        p = preset or self.preset
        if p.upscaler == "auto":
            return resolve_auto(p.task, self.device, height)
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
    def _preset(self, overrides: dict[str, Any]) -> Preset:
        """The preset of a call: the enhancer's, with this call's ``overrides`` checked and applied."""
        if not overrides:
            return self.preset
        from .presets import validate

        preset = self.preset.replace(**overrides)
        validate(preset)
        return preset

    def _prepare(
        self, crop: ImageLike, preset: Preset, scale: float | None, generator: torch.Generator | None, seed: int | None
    ) -> _Prepared:
        """Load and validate ``crop``, run the gate and pick the backend: everything before the model."""
        t0 = time.perf_counter()
        image = load_image(crop, max_pixels=self.max_pixels)
        h, w = image.shape[:2]
        decision = gate.decide(image, preset, scale)
        if not decision.skip and self.max_pixels is not None:
            oh, ow = max(1, round(h * decision.scale)), max(1, round(w * decision.scale))
            if oh * ow > self.max_pixels:  # bound the output too: scale=3000 must not allocate gigabytes
                what = repr(str(crop)) if isinstance(crop, (str, os.PathLike)) else f"a {w}x{h} crop"
                raise ImageTooLargeError(
                    f"{what} at scale {decision.scale:g} would be {ow}x{oh} = {ow * oh:,} pixels, more than the "
                    f"limit of {self.max_pixels:,} (max_pixels); pass a smaller scale, or max_pixels=None"
                )
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
            generator = torch.Generator("cpu").manual_seed(check_seed(seed))
        meta["seed"] = seed if seed is not None else (generator.initial_seed() if generator is not None else None)
        job = _Prepared(image, preset, decision, meta, generator)
        if not decision.skip:
            job.name, job.why = self.backend_name(preset, h)
            job.up = self.get_upscaler(job.name, preset, decision.scale)
        job.prep_seconds = time.perf_counter() - t0
        return job

    def _upscale_one(self, job: _Prepared, progress: bool | None) -> tuple[np.ndarray, RunInfo, float]:
        """The backend's own :meth:`~preproc.upscalers.Upscaler.run` on one prepared crop (tiled if need be)."""
        t_up = time.perf_counter()
        res, info = job.up.run(job.image, job.preset, generator=job.generator, progress=progress)
        return res, info, time.perf_counter() - t_up

    def _finish(
        self, job: _Prepared, upscaled: tuple[np.ndarray, RunInfo, float] | None, hooks: list[Hook] | tuple[Hook, ...]
    ) -> EnhanceResult:
        """Everything after the model: resize to the gate's scale, colour fix, output mode, hooks, meta."""
        t_fin = time.perf_counter()
        image, preset, meta = job.image, job.preset, job.meta
        h, w = image.shape[:2]
        spent = job.prep_seconds
        if upscaled is None:
            out = image
            meta.update(upscaler=None, upscaler_reason="gate skipped enhancement")
        else:
            res, info, seconds = upscaled
            spent += seconds
            up = job.up
            meta.update(
                upscaler=job.name,
                upscaler_reason=job.why,
                model=getattr(up, "model_id", preset.model),
                native_scale=up.scale,
                device=str(up.device),
                dtype=str(up.dtype).removeprefix("torch."),
                upscaler_seconds=seconds,
                **info.as_meta(),
            )
            oh, ow = max(1, round(h * job.decision.scale)), max(1, round(w * job.decision.scale))
            out = resize_to(res, oh, ow)
            if preset.color_fix and getattr(up, "needs_color_fix", False):
                out = color_fix(out, image)
                meta["color_fix"] = True
            if preset.isolate_line:
                out, isolated = remove_fragments(out)
                meta["line_fragments_removed"] = isolated["fragments"]
        meta["output_size"] = [out.shape[1], out.shape[0]]
        result = to_pil(out, preset.output_mode)
        if hooks:
            before = to_pil(image, "RGB")
            result = run_hooks(list(hooks), before, result, meta)
        # This crop's own time: its preparation, its model time (in a batch: its share of
        # the call) and its post-processing, not the time it waited for batch-mates.
        meta["seconds"] = spent + time.perf_counter() - t_fin
        return EnhanceResult(result, meta)

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
        check_hooks(hooks)
        preset = self._preset(overrides)
        job = self._prepare(crop, preset, scale, generator, seed)
        upscaled = None
        if not job.decision.skip:
            upscaled = self._upscale_one(job, self.progress if progress is None else progress)
        return self._finish(job, upscaled, hooks)

    def iter_enhance(
        self,
        crops: Iterable[ImageLike],
        *,
        batch_size: int = 16,
        scale: float | None = None,
        seed: int | None = None,
        progress: bool | None = None,
        hooks: list[Hook] | tuple[Hook, ...] = (),
        **overrides: Any,
    ) -> Iterator[EnhanceResult | PreprocError]:
        """Enhance many crops, several per model call; yields one slot per crop, in input order.

        Each slot is the crop's :class:`EnhanceResult` (equal to :meth:`enhance` of that crop
        with the same arguments, to float rounding) or the :class:`~preproc.errors.PreprocError`
        its loading, validation, enhancement or hooks raised (a corrupt file, a NaN array, a
        wrong shape): a bad crop never spoils the others. Crops whose gate chose the same
        backend (and, for interpolation backends, the same scale) go through it in buckets
        of up to ``batch_size`` crops of similar size (:mod:`preproc.batching`); crops the
        backend would tile, and backends with their own sampling loop (SD x4), run one by one.

        Crops are read ``window`` at a time (8 x ``batch_size``), so an endless iterator
        streams with bounded memory; results of a window come out once it is done.
        ``seed`` seeds every crop's generator alike, as ``enhance(crop, seed=seed)`` would.
        A batched crop's ``meta`` also has ``batch`` (crops in its call) and
        ``batch_padded_to`` (the call's input size); its ``upscaler_seconds`` and
        ``seconds`` count its share of the call, not the time it waited for the others.
        ``progress``: a progress bar over crops (None: the enhancer's setting, off when not a
        TTY). Errors in the arguments themselves (an unknown option, ``batch_size < 1``)
        raise at once instead of filling slots.
        """
        from .errors import ConfigError

        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
            raise ConfigError(f"`batch_size` has to be an integer >= 1 but is {batch_size!r}")
        if isinstance(crops, (str, bytes, os.PathLike, Image.Image)) or not hasattr(crops, "__iter__"):
            raise ConfigError(f"crops has to be an iterable of crops (e.g. a list) but is a {type(crops).__name__}; "
                              "for one crop call enhance(), or wrap it in a list")
        if scale is not None:
            gate.check_scale(scale)  # an argument error: raised at once, not once per crop
        if seed is not None:
            check_seed(seed)
        check_hooks(hooks)
        preset = self._preset(overrides)
        show = self.progress if progress is None else progress
        total = len(crops) if hasattr(crops, "__len__") else None  # type: ignore[arg-type]
        bar = tqdm(total=total, desc="enhance", unit="crop", disable=None if show is None else not show, leave=False)
        window = 8 * batch_size
        try:
            it = iter(crops)
            while True:
                chunk = list(itertools.islice(it, window))
                if not chunk:
                    break
                yield from self._enhance_window(chunk, preset, batch_size, scale, seed, hooks)
                bar.update(len(chunk))
        finally:
            bar.close()

    def enhance_many(
        self,
        crops: Iterable[ImageLike],
        *,
        batch_size: int = 16,
        scale: float | None = None,
        seed: int | None = None,
        progress: bool | None = None,
        hooks: list[Hook] | tuple[Hook, ...] = (),
        **overrides: Any,
    ) -> list[EnhanceResult | PreprocError]:
        """:meth:`iter_enhance` as a list: one :class:`EnhanceResult` or :class:`PreprocError` per crop, in order.

        Errors are returned, not raised, so one bad crop in a million neither stops the job
        nor loses the finished ones; check with ``isinstance(slot, PreprocError)``.
        """
        return list(
            self.iter_enhance(
                crops, batch_size=batch_size, scale=scale, seed=seed, progress=progress, hooks=hooks, **overrides
            )
        )

    def _enhance_window(
        self,
        crops: list[ImageLike],
        preset: Preset,
        batch_size: int,
        scale: float | None,
        seed: int | None,
        hooks: list[Hook] | tuple[Hook, ...],
    ) -> list[EnhanceResult | PreprocError]:
        """One window of :meth:`iter_enhance`: prepare every crop, batch what can be, finish each."""
        from .batching import upscale_many

        slots: list[Any] = [None] * len(crops)
        jobs: dict[int, _Prepared] = {}
        for i, crop in enumerate(crops):
            try:
                jobs[i] = self._prepare(crop, preset, scale, None, seed)
            except (ModelUnavailableError, UnknownUpscalerError, WeightsError):
                raise  # the backend cannot load: no crop's fault, and every crop would fail
            except PreprocError as exc:
                slots[i] = exc
        upscaled: dict[int, Any] = {}
        groups: dict[tuple, list[int]] = {}
        for i, job in jobs.items():
            if job.decision.skip:
                upscaled[i] = None
                continue
            h, w = job.image.shape[:2]
            try:
                batchable = job.up.can_batch() and job.up.fits_one_call(h, w, preset)
            except PreprocError as exc:
                slots[i] = exc
                continue
            if batchable:
                # Interpolation backends are made per call at the gate's scale: group by scale.
                which = float(job.up.scale) if getattr(job.up, "any_scale", False) else id(job.up)
                groups.setdefault((job.name, which), []).append(i)
            else:
                try:
                    upscaled[i] = self._upscale_one(job, False)
                except PreprocError as exc:
                    slots[i] = exc
        for idx in groups.values():
            up = jobs[idx[0]].up
            for i, r in zip(idx, upscale_many(up, [jobs[i].image for i in idx], preset, batch_size=batch_size)):
                if isinstance(r, PreprocError):
                    slots[i] = r
                else:
                    upscaled[i] = (r.image, r.info, r.seconds)
        for i, job in jobs.items():
            if slots[i] is not None:
                continue
            try:
                slots[i] = self._finish(job, upscaled[i], hooks)
            except PreprocError as exc:
                slots[i] = exc
        return slots

    __call__ = enhance


def check_seed(seed: Any) -> int:
    """``seed`` as torch takes it: an integer in [-2**63, 2**64), else a :class:`~preproc.errors.ConfigError`."""
    from .errors import ConfigError

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not -(2**63) <= seed < 2**64:
        raise ConfigError(f"`seed` has to be an integer in [-2**63, 2**64) or None but is {seed!r}")
    return int(seed)


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
    enh = _cached_enhancer(task, upscaler, model, device, dtype)
    return enh.enhance(crop, scale=scale, hooks=hooks, generator=generator, seed=seed, progress=progress, **overrides)


def _cached_enhancer(task: str, upscaler: str | None, model: Any, device: Any, dtype: Any) -> Enhancer:
    """The module-level functions' :class:`Enhancer` for these settings (the last two are kept)."""
    key = (task, upscaler, model if isinstance(model, (str, type(None))) else id(model), str(device), str(dtype))
    with _CACHE_LOCK:
        enh = _CACHE.pop(key, None)
        if enh is None:
            enh = Enhancer(task, upscaler, model=model, device=device, dtype=dtype)
        _CACHE[key] = enh
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return enh


def enhance_many(
    crops: Iterable[ImageLike],
    task: str = "ocr",
    upscaler: str | None = None,
    scale: float | None = None,
    *,
    batch_size: int = 16,
    model: Any = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    hooks: list[Hook] | tuple[Hook, ...] = (),
    seed: int | None = None,
    progress: bool | None = None,
    **overrides: Any,
) -> list[EnhanceResult | PreprocError]:
    """Enhance many crops, several per model call: one slot per crop, in input order.

    Each slot is what :func:`enhance` would return for that crop (to float rounding), or
    the :class:`~preproc.errors.PreprocError` that crop raised (returned, not raised).
    Arguments as in :func:`enhance`; ``batch_size`` caps the crops per model call. See
    :meth:`Enhancer.enhance_many` and, for streaming, :meth:`Enhancer.iter_enhance`.
    """
    enh = _cached_enhancer(task, upscaler, model, device, dtype)
    return enh.enhance_many(
        crops, batch_size=batch_size, scale=scale, seed=seed, progress=progress, hooks=hooks, **overrides
    )

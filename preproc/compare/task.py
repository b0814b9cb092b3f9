"""The comparison task interface (:class:`CompareTask`) and the task registry.

See :mod:`preproc.compare` for how a task fits into a run and how to add one.
"""

from __future__ import annotations

import importlib
import inspect
import io
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image

from ..datasets import Record
from ..errors import ConfigError, UnknownOptionError, UnknownTaskError
from ..io import load_image, to_pil

#: A recognition: a JSON-serialisable dict. ``"confidence"`` (float, higher = surer, or
#: None) is the one key the framework reads (``+guard`` and ``select`` compare it).
Recognition = dict[str, Any]


class CompareTask(ABC):
    """One recognition task inside :func:`preproc.compare.compare`.

    A task knows its data and its recognizer; the framework owns variants, caching,
    failures, timing and reports. Class attributes declare what the report shows.
    Constructor keywords are task options (``--task-opt KEY=VALUE`` on the CLI); keep
    them JSON-serialisable, they are part of the cache fingerprint (:meth:`options`).
    """

    #: Registry name (``--task NAME``).
    name: ClassVar[str] = ""
    #: Preset of :func:`preproc.enhance` used when a variant runs an upscaler.
    preset: ClassVar[str] = "generic"
    #: Metric names in report order; the first one is plotted first.
    metrics: ClassVar[tuple[str, ...]] = ()
    #: Per metric: True when higher is better (used for the report's "best" marks).
    higher_is_better: ClassVar[dict[str, bool]] = {}
    #: What ``size`` means, for table headers and plot axes.
    size_label: ClassVar[str] = "size (px)"
    #: Sizes used when the caller gives none.
    default_sizes: ClassVar[tuple[int, ...]] = ()
    #: Candidates a bare ``select`` (or another multi-candidate mode) always includes; the
    #: learned backends named by the run's other variants are added after them.
    default_candidates: ClassVar[tuple[str, ...]] = ("none", "bicubic")
    #: Bare modes with a fixed candidate set of their own instead of the pool above.
    mode_candidates: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Multi-candidate modes this task can combine (``select`` picks by confidence).
    modes: ClassVar[tuple[str, ...]] = ("select",)

    def __init__(self, **options: Any):
        if options:
            raise ConfigError(f"task {self.name!r} takes no options; got {sorted(options)}")
        self._options: dict[str, Any] = {}

    def options(self) -> dict[str, Any]:
        """The task's options (JSON-able): part of the cache fingerprint."""
        return dict(self._options)

    def combine_options(self) -> dict[str, Any]:
        """Options that change only how candidates are combined (JSON-able): recorded in the
        report's settings, not in the fingerprint. Empty by default."""
        return {}

    # --- data ----------------------------------------------------------------------
    @abstractmethod
    def load(self, dataset: Path, limit: int | None) -> list[Record]:
        """The records to run, in a deterministic order; at most about ``limit`` when given.

        Read ``dataset`` with :func:`preproc.datasets.read_manifest` (and
        ``read_pairs``); use :func:`spread` to subsample evenly. Raise
        :class:`~preproc.errors.DatasetError` for a dataset this task cannot use.
        """

    @abstractmethod
    def degrade(self, record: Record, size: int, jpeg: int | None) -> Image.Image:
        """The low-resolution crop of ``record`` at ``size`` (task units), JPEG ``jpeg`` or lossless."""

    # --- recognition ---------------------------------------------------------------
    @abstractmethod
    def recognize(self, image: Image.Image, record: Record) -> Recognition:
        """Recognise one candidate image; a JSON-able dict with a ``"confidence"`` key."""

    def combine(self, mode: str, recognitions: Sequence[Recognition]) -> tuple[int, Recognition]:
        """Combine the recognitions of a multi-candidate variant: ``(index chosen, result)``.

        ``guard`` (candidates: enhanced, original) and ``select`` keep the most confident
        candidate, the earliest on ties (so ``guard`` keeps the enhanced image unless the
        original is strictly more confident). Override for other modes (faces: ``fuse``
        averages embeddings and returns index ``-1``).
        """
        if mode not in ("guard", "select"):
            raise ConfigError(f"task {self.name!r} cannot combine candidates by {mode!r}; it knows guard, select")
        return most_confident(recognitions)

    def combine_variant(self, variant: Any, recognitions: Sequence[Recognition]) -> tuple[int, Recognition]:
        """Combine the recognitions of ``variant`` (a :class:`~preproc.compare.variants.Variant`:
        its ``mode`` and candidate names, in the order of ``recognitions``).

        The runner calls this; the default is :meth:`combine` with the mode. Override when
        the decision depends on which candidates they are (OCR's ``+guard`` uses a rule
        fitted per backend).
        """
        return self.combine(variant.mode, recognitions)

    @abstractmethod
    def evaluate(self, records: Sequence[Record], recognitions: Sequence[Recognition]) -> dict[str, Any]:
        """Aggregate metrics over the successful samples (``records[i]`` recognised as ``recognitions[i]``).

        Return every name in :attr:`metrics` (float, or None when undefined). A task
        whose unit of evaluation is not the sample (face pairs) may return ``"n"``.
        """

    def caption(self, recognition: Recognition) -> str:
        """A short label of a recognition for the contact sheet."""
        c = recognition.get("confidence")
        return "" if c is None else f"conf {c:.2f}"

    def html_samples(self, ctx: Any) -> dict[str, Any]:
        """The per-sample data of ``report.html``'s browser, from an
        :class:`~preproc.compare.html_report.HtmlContext` (the combined results of every
        variant, setting and record). The OCR and face tasks' versions live in
        :mod:`preproc.compare.html_report` (``SAMPLERS``); other tasks get one item per
        record with its caption and confidence. Override to show a task's own unit.
        """
        from .html_report import default_html_samples

        return default_html_samples(self, ctx)

    def write_extras(self, report: Any, out_dir: Path) -> list[Path]:
        """Task-specific report files (faces: ROC curves, a face grid); none by default.

        Called by the report after ``report.json``/``report.md``/plots are written.
        """
        return []

    def close(self) -> None:  # noqa: B027 - optional, most tasks hold nothing
        """Release what the recognizer holds (called once at the end of a run)."""


def most_confident(recognitions: Sequence[Recognition]) -> tuple[int, Recognition]:
    """The earliest recognition with the highest ``confidence`` (None counts as -inf)."""
    if not recognitions:
        raise ConfigError("no recognitions to choose from")
    best = 0
    for i, r in enumerate(recognitions):
        if _conf(r) > _conf(recognitions[best]):
            best = i
    return best, recognitions[best]


def _conf(r: Recognition) -> float:
    c = r.get("confidence")
    return float("-inf") if c is None else float(c)


# --- helpers for tasks ---------------------------------------------------------------
def spread(items: Sequence[Any], limit: int | None) -> list[Any]:
    """At most ``limit`` items picked evenly across ``items`` (all of them when ``limit`` is None).

    Deterministic, and proportional to how the dataset is ordered (e.g. by source), unlike
    taking the first ``limit``.
    """
    items = list(items)
    if limit is None or limit >= len(items):
        return items
    if limit < 1:
        raise ConfigError(f"limit has to be >= 1 or None but is {limit}")
    n = len(items)
    return [items[(i * n) // limit] for i in range(limit)]


def area_resize(image: Image.Image | np.ndarray | str | Path, width: int, height: int) -> Image.Image:
    """``image`` resized to ``width`` x ``height`` with area interpolation (how low resolution is simulated).

    ``image``: anything :func:`preproc.load_image` takes (a float32 ``(H, W, 3)`` array
    in [0, 1] is used as it is). Returns an RGB PIL image.
    """
    ready = isinstance(image, np.ndarray) and image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3
    arr = image if ready else load_image(image)
    interp = cv2.INTER_AREA if height <= arr.shape[0] and width <= arr.shape[1] else cv2.INTER_CUBIC
    out = cv2.resize(arr, (max(1, int(width)), max(1, int(height))), interpolation=interp)
    return to_pil(np.clip(out, 0.0, 1.0), "RGB")


def jpeg_roundtrip(image: Image.Image, quality: int | None) -> Image.Image:
    """``image`` encoded as JPEG at ``quality`` (1-95) and decoded again; unchanged when None."""
    if quality is None:
        return image
    if not 1 <= int(quality) <= 100:
        raise ConfigError(f"JPEG quality has to be in [1, 100] but is {quality}")
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    out = Image.open(buf)
    out.load()
    return out.convert("RGB")


# --- registry --------------------------------------------------------------------------
_TASKS: dict[str, str] = {
    "ocr": "preproc.compare.ocr:OcrTask",
    # the face task lives in preproc/compare/face.py (issue 6)
    "face": "preproc.compare.face:FaceTask",
    "page": "preproc.compare.page:PageTask",  # whole pages (issue 15)
}


def register_task(name: str, target: str | type[CompareTask]) -> None:
    """Register a task under ``name``: a :class:`CompareTask` subclass or a ``"module:Class"`` string."""
    if isinstance(target, type):
        target = f"{target.__module__}:{target.__qualname__}"
    _TASKS[name] = target


def task_names() -> list[str]:
    """Names of the registered tasks."""
    return sorted(_TASKS)


def create_task(name: str | CompareTask, **options: Any) -> CompareTask:
    """The task registered under ``name`` built with ``options`` (a task object passes through)."""
    if isinstance(name, CompareTask):
        if options:
            raise ConfigError("task options apply to a task name, not to a task object")
        return name
    try:
        target = _TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"no comparison task named {name!r}; available: {', '.join(task_names())}") from None
    module, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise UnknownTaskError(f"comparison task {name!r} is registered as {target} but {module} is not installed") from None
    params = inspect.signature(cls.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        known = [k for k in params if k != "self"]
        unknown = sorted(set(options) - set(known))
        if unknown:  # a typo in --task-opt: say which options there are (a TypeError before)
            raise UnknownOptionError(f"task {name!r} has no option(s) {', '.join(map(repr, unknown))}; "
                                     f"its options: {', '.join(known) or 'none'}")
    return cls(**options)

"""Pick, per crop, the enhancement the recognizer reads most confidently.

No single enhancement wins on every crop (a general learned upscaler can make OCR
worse than bicubic), so :func:`select` makes several candidates of one crop (the names
of :mod:`preproc.compare.variants`: ``none``, ``bicubic``, ``cleanup``, any upscaler),
recognises each, and keeps the most confident: :class:`~preproc.hooks.KeepIfBetter`
generalised to more than two images. ``preproc compare --variants select`` measures it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .errors import ConfigError
from .hooks import Recognizer, confidence_of, default_recognizer
from .io import ImageLike, load_image, to_pil


@dataclass
class SelectResult:
    """The chosen candidate's name, image and recognition, and every candidate's confidence and seconds."""

    name: str
    image: Image.Image
    recognition: Any
    confidences: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def select(
    crop: ImageLike,
    candidates: Sequence[str] = ("none", "bicubic", "cleanup"),
    recognizer: Recognizer | None = None,
    task: str = "ocr",
    *,
    device: str | None = None,
    context: Any = None,
) -> SelectResult:
    """Make each of ``candidates`` from ``crop``, recognise them, return the most confident.

    Ties go to the earlier candidate, so list the cheapest/safest first. ``recognizer``
    defaults to Tesseract single-line for ``task="ocr"``. Pass the same ``context``
    (a :class:`preproc.compare.CandidateContext`) between calls to keep models loaded.
    """
    from .compare.variants import CandidateContext, candidate_fn

    if not candidates:
        raise ConfigError("select needs at least one candidate, e.g. ('none', 'bicubic')")
    rec = recognizer or default_recognizer(task)
    ctx = context or CandidateContext(task, device=device)
    image = crop if isinstance(crop, Image.Image) else to_pil(load_image(crop))
    best: SelectResult | None = None
    confs: dict[str, float] = {}
    secs: dict[str, float] = {}
    for name in candidates:
        t0 = time.perf_counter()
        img = candidate_fn(name, task)(image, ctx)
        result = rec(img)
        secs[name] = time.perf_counter() - t0
        confs[name] = confidence_of(result)
        if best is None or confs[name] > confs[best.name]:
            best = SelectResult(name, img, result)
    assert best is not None
    best.confidences, best.seconds = confs, secs
    return best

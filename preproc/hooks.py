"""Hooks: see the crop before and the image after, record, or veto.

A hook is any callable ``hook(before, after, meta) -> PIL.Image | None``:

* ``before``: the input crop as a PIL image (RGB);
* ``after``: the enhanced image as it stands (the output of earlier hooks);
* ``meta``: the result's metadata, a dict the hook may add to (use your own key);
* return ``None`` to keep ``after``, or an image to replace it (return ``before`` to veto).

Hooks run in order, also when the gate skipped enhancement (then ``after`` is the crop).

Recognition hooks (:class:`RecognitionHook`) also see both recognitions: they run a
recognizer on ``before`` and ``after`` and call
``decide(before, after, meta, rec_before, rec_after)``. A recognizer is any callable
``recognizer(image) -> result`` whose result has a ``confidence`` (attribute or key;
higher = surer): :class:`preproc.recognize.TesseractOCR` (mean word confidence 0-100),
or a face detector's probability.

Built-ins:

* :func:`record`: keeps everything in ``meta["record"]``: copies of both images, their
  sizes and modes;
* :data:`keep_if_better` (a :class:`KeepIfBetter`): runs the recognizer on both images
  and keeps the original when the enhanced one is recognised with less confidence; the
  two recognitions go into ``meta["recognition"]`` and the decision into
  ``meta["keep_if_better"]``. ``KeepIfBetter(recognizer, margin=5)`` for another
  recognizer or a margin. Without a recognizer it uses Tesseract (single line) for the
  ``ocr`` task and refuses other tasks.

Example::

    from preproc.hooks import keep_if_better, record
    out = preproc.enhance(crop, task="ocr", upscaler="realesrgan", hooks=[record, keep_if_better])
    out.meta["keep_if_better"]   # {"kept": "original", "confidence_before": 71.2, ...}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PIL import Image

Hook = Callable[[Image.Image, Image.Image, dict], "Image.Image | None"]
#: ``recognizer(image) -> result`` with ``result.confidence`` or ``result["confidence"]``.
Recognizer = Callable[[Image.Image], Any]


def run_hooks(hooks: list[Hook] | tuple[Hook, ...], before: Image.Image, after: Image.Image, meta: dict) -> Image.Image:
    """Apply ``hooks`` in order; returns the final image and records each hook in ``meta["hooks"]``."""
    names = meta.setdefault("hooks", [])
    for hook in hooks:
        out = hook(before, after, meta)
        names.append(getattr(hook, "__name__", type(hook).__name__))
        if out is not None:
            if not isinstance(out, Image.Image):
                from .errors import ConfigError

                raise ConfigError(f"hook {names[-1]} returned {type(out).__name__}; expected a PIL image or None")
            after = out
    return after


def record(before: Image.Image, after: Image.Image, meta: dict) -> None:
    """Hook: keep everything in ``meta["record"]`` (copies of both images, sizes ``[w, h]``, modes)."""
    meta["record"] = {
        "before": before.copy(),
        "after": after.copy(),
        "before_size": list(before.size),
        "after_size": list(after.size),
        "before_mode": before.mode,
        "after_mode": after.mode,
    }


def confidence_of(result: Any) -> float:
    """The ``confidence`` of a recognition (attribute or key); a :class:`ConfigError` if it has none."""
    conf = result.get("confidence") if isinstance(result, dict) else getattr(result, "confidence", None)
    if conf is None:
        from .errors import ConfigError

        raise ConfigError(f"recognizer returned {type(result).__name__} without a `confidence`; "
                          "expected an object or dict with a numeric confidence (higher = surer)")
    return float(conf)


def _summary(result: Any) -> dict[str, Any]:
    """A JSON-able summary of a recognition for ``meta``."""
    if hasattr(result, "to_dict"):
        try:
            return result.to_dict(words=False)
        except TypeError:
            return result.to_dict()
    if isinstance(result, dict):
        return {k: v for k, v in result.items() if isinstance(v, (str, int, float, bool, type(None)))}
    return {"confidence": confidence_of(result)}


def default_recognizer(task: str | None) -> Recognizer:
    """The recognizer a recognition hook uses when given none: Tesseract single-line for ``ocr``."""
    if task == "ocr":
        from .recognize.ocr import ocr

        return ocr
    from .errors import ConfigError

    raise ConfigError(f"no default recognizer for task {task!r}; pass one, e.g. KeepIfBetter(recognizer)")


class RecognitionHook:
    """A hook that recognises ``before`` and ``after`` and decides with both recognitions.

    Subclasses implement :meth:`decide`. ``recognizer=None`` picks
    :func:`default_recognizer` from ``meta["task"]`` on first use. Both recognitions are
    summarised in ``meta["recognition"] = {"before": ..., "after": ...}``.
    """

    __name__ = "recognition_hook"

    def __init__(self, recognizer: Recognizer | None = None):
        self.recognizer = recognizer

    def __call__(self, before: Image.Image, after: Image.Image, meta: dict) -> Image.Image | None:
        rec = self.recognizer or default_recognizer(meta.get("task"))
        rec_before = rec(before)
        rec_after = rec_before if meta.get("skipped") and after.size == before.size else rec(after)
        meta["recognition"] = {"before": _summary(rec_before), "after": _summary(rec_after)}
        return self.decide(before, after, meta, rec_before, rec_after)

    def decide(self, before: Image.Image, after: Image.Image, meta: dict, rec_before: Any, rec_after: Any) -> Image.Image | None:
        """Return None to keep ``after``, or the image to use instead."""
        raise NotImplementedError


class KeepIfBetter(RecognitionHook):
    """Keep the original crop when the enhanced image is recognised with less confidence.

    The enhanced image is kept when ``confidence(after) >= confidence(before) - margin``
    (``margin`` in the recognizer's units, e.g. Tesseract's 0-100). The original comes
    back in the mode of ``after`` (``L`` for OCR), at its own size.
    Records ``meta["keep_if_better"] = {"kept", "confidence_before", "confidence_after"}``.
    """

    __name__ = "keep_if_better"

    def __init__(self, recognizer: Recognizer | None = None, margin: float = 0.0):
        super().__init__(recognizer)
        self.margin = float(margin)

    def decide(self, before: Image.Image, after: Image.Image, meta: dict, rec_before: Any, rec_after: Any) -> Image.Image | None:
        c0, c1 = confidence_of(rec_before), confidence_of(rec_after)
        keep_original = c1 < c0 - self.margin
        meta["keep_if_better"] = {
            "kept": "original" if keep_original else "enhanced",
            "confidence_before": c0,
            "confidence_after": c1,
        }
        if not keep_original:
            return None
        return before if before.mode == after.mode else before.convert(after.mode)


#: The built-in guard with the task's default recognizer: ``hooks=[keep_if_better]``.
keep_if_better = KeepIfBetter()

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
  and keeps the enhanced one only when :func:`guard_choice` says so: for OCR readings
  (results with a ``text``) the enhanced reading has to be more confident than the
  crop's by a margin fitted on rendered lines (:data:`GUARD_RULES`, per recognizer and
  backend; ``benchmarks/fit_guard.py``) and agree with it in length and digit share; for
  other recognitions (faces) the plain confidence comparison. The two recognitions go
  into ``meta["recognition"]`` and the decision into ``meta["keep_if_better"]``.
  ``KeepIfBetter(recognizer, margin=5)`` for another recognizer or margin. Without a
  recognizer it uses Tesseract (single line) for the ``ocr`` task and refuses other tasks.

Example::

    from preproc.hooks import keep_if_better, record
    out = preproc.enhance(crop, task="ocr", upscaler="realesrgan", hooks=[record, keep_if_better])
    out.meta["keep_if_better"]   # {"kept": "original", "confidence_before": 71.2, ...}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

Hook = Callable[[Image.Image, Image.Image, dict], "Image.Image | None"]
#: ``recognizer(image) -> result`` with ``result.confidence`` or ``result["confidence"]``.
Recognizer = Callable[[Image.Image], Any]


def check_hooks(hooks: Any) -> None:
    """``hooks`` must be a list or tuple of callables: a :class:`~preproc.errors.ConfigError` otherwise."""
    from .errors import ConfigError

    if not isinstance(hooks, (list, tuple)):
        raise ConfigError(f"hooks has to be a list or tuple of callables but is {type(hooks).__name__}")
    for h in hooks:
        if not callable(h):
            raise ConfigError(f"hook {h!r} is not callable; a hook is called as hook(before, after, meta)")


def run_hooks(hooks: list[Hook] | tuple[Hook, ...], before: Image.Image, after: Image.Image, meta: dict) -> Image.Image:
    """Apply ``hooks`` in order; returns the final image and records each hook in ``meta["hooks"]``."""
    check_hooks(hooks)
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


@dataclass(frozen=True)
class GuardRule:
    """How sure an enhanced OCR reading has to be to replace the crop's (:func:`guard_choice`).

    ``margin``: confidence points (0-100) it has to beat the crop's reading by;
    ``max_length_ratio``: the most its length (without spaces) may differ from the crop
    reading's, as a factor; ``max_digit_share_diff``: the most the shares of digits of the
    two readings may differ. ``inf`` switches a check off.
    """

    margin: float
    max_length_ratio: float = math.inf
    max_digit_share_diff: float = math.inf


#: The rules, fitted on rendered, degraded lines (never on the development set) by
#: ``benchmarks/fit_guard.py`` (docs/ocr.md section 9, docs/results.md). Keys:
#: ``"RECOGNIZER/BACKEND"`` for a backend fitted on its own, ``"RECOGNIZER"`` for any
#: other backend (fitted to be safe for text-sr and Real-ESRGAN x4plus at once), and
#: ``"default"`` for recognizers never fitted. RECOGNIZER is :func:`recognizer_kind`'s.
GUARD_RULES: dict[str, GuardRule] = {
    "tesseract/text-sr": GuardRule(0.0, math.inf, 0.3),
    "tesseract/realesrgan": GuardRule(30.0, 1.3, 0.3),
    "tesseract": GuardRule(30.0, 1.6, 0.3),
    "rapidocr/text-sr": GuardRule(15.0, 1.6, 0.3),
    "rapidocr": GuardRule(15.0, 1.6, 0.3),
    "default": GuardRule(30.0, 1.6, 0.3),
}
#: Backends that take another's fitted rule: ``text-sr-small`` is ``text-sr`` fine-tuned on small
#: lines, the default's model for crops at most 11 px tall (so ``default+guard`` in compare and
#: ``keep_if_better`` on ``enhance``'s output apply one rule to the default, whatever the crop's size).
GUARD_BACKEND_ALIASES: dict[str, str] = {"text-sr-small": "text-sr"}
#: A crop reading below this confidence is not trusted as a reference for the length and
#: character-class checks (Tesseract reads a blank crop as a few letters with confidence 0).
GUARD_UNREADABLE = 20.0


def guard_rule(recognizer: str = "default", backend: str | None = None) -> GuardRule:
    """The fitted :class:`GuardRule` for ``recognizer`` (a :func:`recognizer_kind`) and ``backend``.

    ``backend``: the upscaler that made the enhanced image (``"text-sr"``,
    ``"realesrgan"``; ``"text-sr@2"`` counts as ``text-sr``), None when unknown.
    """
    if backend:
        from .compare.variants import base_candidate

        base = base_candidate(backend)
        base = GUARD_BACKEND_ALIASES.get(base, base)
        if f"{recognizer}/{base}" in GUARD_RULES:
            return GUARD_RULES[f"{recognizer}/{base}"]
    return GUARD_RULES.get(recognizer, GUARD_RULES["default"])


def recognizer_kind(recognizer: Any) -> str:
    """``"tesseract"``, ``"rapidocr"`` or ``"default"``: whose fitted guard margin applies."""
    engine = str(getattr(recognizer, "engine", "") or "")
    if engine in ("tesserocr", "pytesseract") or getattr(recognizer, "__name__", "") == "ocr":
        return "tesseract"
    return "rapidocr" if engine == "rapidocr" else "default"


def _text_of(result: Any) -> str | None:
    t = result.get("text") if isinstance(result, dict) else getattr(result, "text", None)
    return None if t is None else str(t)


def _digit_share(text: str) -> float:
    chars = [c for c in text if not c.isspace()]
    return sum(c.isdigit() for c in chars) / len(chars) if chars else 0.0


def guard_choice(
    enhanced: Any,
    original: Any,
    recognizer: str = "default",
    backend: str | None = None,
    *,
    margin: float | None = None,
    max_length_ratio: float | None = None,
    max_digit_share_diff: float | None = None,
) -> tuple[bool, str]:
    """Whether to keep the enhanced image's reading over the crop's: ``(keep_enhanced, why)``.

    For OCR readings (results with a ``text``): the enhanced reading is kept when it is
    non-empty, its confidence is at least the crop's plus ``margin``, and, unless the crop
    read nothing or with a confidence below :data:`GUARD_UNREADABLE` (no reference to
    check against), its length is within ``max_length_ratio`` of the crop reading's and
    their digit shares differ by at most ``max_digit_share_diff``; each defaults to the
    fitted :func:`guard_rule` of ``recognizer`` and ``backend``. With a huge
    margin the crop is always kept. Recognitions without text: the enhanced one when
    ``confidence >= crop's + margin`` (margin 0 unless given).
    """
    rule = guard_rule(recognizer, backend)
    m = rule.margin if margin is None else float(margin)
    c_enh, c_orig = confidence_of(enhanced), confidence_of(original)
    t_enh, t_orig = _text_of(enhanced), _text_of(original)
    if t_enh is None or t_orig is None:
        keep = c_enh >= c_orig + (0.0 if margin is None else m)
        return keep, f"confidence {c_enh:.1f} vs {c_orig:.1f}"
    n_enh, n_orig = len(t_enh.replace(" ", "")), len(t_orig.replace(" ", ""))
    if n_enh == 0:
        return False, "the enhanced image reads as nothing"
    sure = c_enh >= c_orig + m
    if n_orig == 0 or c_orig < GUARD_UNREADABLE:
        # no reliable reference for the sanity checks: the margin alone decides
        why = "the crop reads as nothing" if n_orig == 0 else f"the crop's reading is unreliable ({c_orig:.1f})"
        return sure, f"{why}; confidence {c_enh:.1f} {'>=' if sure else '<'} {c_orig:.1f} + margin {m:g}"
    ratio = max(n_enh, n_orig) / min(n_enh, n_orig)
    lim = rule.max_length_ratio if max_length_ratio is None else max_length_ratio
    if ratio > lim:
        return False, f"lengths differ {ratio:.2f}x (> {lim})"
    dd = abs(_digit_share(t_enh) - _digit_share(t_orig))
    lim_d = rule.max_digit_share_diff if max_digit_share_diff is None else max_digit_share_diff
    if dd > lim_d:
        return False, f"digit shares differ by {dd:.2f} (> {lim_d})"
    if sure:
        return True, f"confidence {c_enh:.1f} >= {c_orig:.1f} + margin {m:g}"
    return False, f"confidence {c_enh:.1f} < {c_orig:.1f} + margin {m:g}"


class KeepIfBetter(RecognitionHook):
    """Keep the original crop unless the enhanced image is read better (:func:`guard_choice`).

    For OCR readings the enhanced image is kept when its reading is at least ``margin``
    confidence points surer than the crop's (default: the :func:`guard_rule` fitted on
    rendered lines for this recognizer, :func:`recognizer_kind`, and ``meta["upscaler"]``)
    and agrees with it in length and digit share; for other recognitions (faces) when
    ``confidence(after) >= confidence(before) - margin`` (``margin`` default 0). The
    original comes back in the mode of ``after`` (``L`` for OCR), at its own size.
    Records ``meta["keep_if_better"] = {"kept", "confidence_before", "confidence_after", "why"}``.
    """

    __name__ = "keep_if_better"

    def __init__(self, recognizer: Recognizer | None = None, margin: float | None = None):
        super().__init__(recognizer)
        self.margin = None if margin is None else float(margin)

    def decide(self, before: Image.Image, after: Image.Image, meta: dict, rec_before: Any, rec_after: Any) -> Image.Image | None:
        c0, c1 = confidence_of(rec_before), confidence_of(rec_after)
        if _text_of(rec_before) is not None and _text_of(rec_after) is not None:
            kind = recognizer_kind(self.recognizer or default_recognizer(meta.get("task")))
            keep_enhanced, why = guard_choice(rec_after, rec_before, kind, meta.get("upscaler"), margin=self.margin)
        else:
            m = 0.0 if self.margin is None else self.margin
            keep_enhanced, why = c1 >= c0 - m, f"confidence {c1:.1f} vs {c0:.1f} (margin {m:g})"
        keep_original = not keep_enhanced
        meta["keep_if_better"] = {
            "kept": "original" if keep_original else "enhanced",
            "confidence_before": c0,
            "confidence_after": c1,
            "why": why,
        }
        if not keep_original:
            return None
        return before if before.mode == after.mode else before.convert(after.mode)


#: The built-in guard with the task's default recognizer: ``hooks=[keep_if_better]``.
keep_if_better = KeepIfBetter()

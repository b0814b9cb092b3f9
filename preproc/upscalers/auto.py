"""The ``"auto"`` backend rule: which backend a task gets when the caller names none.

The rule is an ordered list per task; the first backend whose weights are available
here (``Upscaler.is_available()``, no download) is used, and ``meta["upscaler_reason"]``
says why. Measured facts behind the order are in ``docs/backends.md``.
"""

from __future__ import annotations

from .registry import upscaler_class, upscaler_names

#: Preference order per task. Bicubic ends every list: it always works, and on OCR and
#: faces it beats general-purpose GAN upscalers (docs/results.md).
AUTO_ORDER: dict[str, list[str]] = {
    "ocr": ["bicubic"],
    "face": ["bicubic"],
    "generic": ["realesrgan", "bicubic"],
}


def resolve_auto(task: str) -> tuple[str, str]:
    """``(backend name, reason)`` for ``task`` under the auto rule."""
    skipped = []
    for name in AUTO_ORDER.get(task, ["bicubic"]):
        if name not in upscaler_names():
            skipped.append(f"{name} (not installed)")
            continue
        if upscaler_class(name).is_available():
            why = f"auto for task {task!r}: first available of {AUTO_ORDER.get(task)}"
            if skipped:
                why += f"; skipped {', '.join(skipped)}"
            return name, why
        skipped.append(f"{name} (weights unavailable)")
    return "bicubic", f"auto for task {task!r}: nothing else available ({', '.join(skipped)})"

"""The ``"auto"`` backend rule: which backend a task gets when the caller names none.

The rule is an ordered list per task; the first backend that is registered, whose
weights are available here (``Upscaler.is_available()``, no download) and whose device
needs are met is used, and ``meta["upscaler_reason"]`` says which and why. Measured
facts behind the order are in ``docs/backends.md``:

* ``ocr``: ``text-sr``, our compact net fine-tuned on rendered text, when its shipped
  weights are present (lowest Tesseract CER of every single variant on the development
  set, docs/results.md); then bicubic. General-purpose learned upscalers (Real-ESRGAN
  x4plus, the untuned compact net) do worse than bicubic for Tesseract.
* ``face``: bicubic. x4plus erases identity on small faces; no learned backend beat
  bicubic for face embedders (docs/results.md).
* ``generic``: SD x4 on a GPU when its weights are here; otherwise Real-ESRGAN x4plus
  (SD x4 costs minutes per 128 px crop on a CPU), then bicubic.
"""

from __future__ import annotations

import torch

from .registry import upscaler_class, upscaler_names

#: Preference order per task. Bicubic ends every list: it always works, and on OCR and
#: faces it beats general-purpose GAN upscalers (docs/backends.md).
AUTO_ORDER: dict[str, list[str]] = {
    "ocr": ["text-sr", "bicubic"],
    "face": ["bicubic"],
    "generic": ["sd-x4", "realesrgan", "bicubic"],
}

#: Backends the rule only picks on a CUDA device, with the reason shown when skipped.
NEEDS_GPU: dict[str, str] = {
    "sd-x4": "no GPU: ~3 min per 128 px crop on a CPU",
}

#: Why each task's list is what it is (appended to the reason in ``meta``).
TASK_NOTES: dict[str, str] = {
    "ocr": "text-sr is trained for Tesseract; general-purpose upscalers do worse than bicubic (docs/backends.md)",
    "face": "general-purpose upscalers do not beat bicubic for face embedders; face-sr is better fused with bicubic than alone (docs/results.md)",
    "generic": "learned upscaler preferred; SD x4 only on a GPU (docs/backends.md)",
}


def _device_type(device: str | torch.device | None) -> str:
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device).type


def resolve_auto(task: str, device: str | torch.device | None = None) -> tuple[str, str]:
    """``(backend name, reason)`` for ``task`` on ``device`` under the auto rule.

    ``device=None`` means the default device (CUDA when available). The reason names the
    chosen backend, the order tried and every backend skipped, with why.
    """
    order = AUTO_ORDER.get(task, ["bicubic"])
    dev = _device_type(device)
    skipped = []
    for name in order:
        if name not in upscaler_names():
            skipped.append(f"{name} (not installed)")
            continue
        if name in NEEDS_GPU and dev != "cuda":
            skipped.append(f"{name} ({NEEDS_GPU[name]})")
            continue
        if not upscaler_class(name).is_available():
            skipped.append(f"{name} (weights unavailable)")
            continue
        why = f"auto for task {task!r} on {dev}: first usable of {order}"
        if skipped:
            why += f"; skipped {', '.join(skipped)}"
        note = TASK_NOTES.get(task)
        return name, f"{why}; {note}" if note else why
    return "bicubic", f"auto for task {task!r} on {dev}: nothing else usable ({', '.join(skipped)})"

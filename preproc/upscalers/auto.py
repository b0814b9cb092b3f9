"""The ``"auto"`` backend rule: which backend a task gets when the caller names none.

The rule is an ordered list per task; the first backend that is registered, whose
weights are available here (``Upscaler.is_available()``, no download) and whose device
needs are met is used, and ``meta["upscaler_reason"]`` says which and why. Measured
facts behind the order are in ``docs/backends.md``:

* ``ocr``: ``text-sr``, our compact net fine-tuned on rendered text, when its shipped
  weights are present (lowest Tesseract CER of every single variant on the development
  set, docs/results.md); then bicubic. A crop at most 11 px tall (one small line) gets
  ``text-sr-small`` instead, the same net fine-tuned on 6-12 px lines only
  (:data:`SMALL_CROPS`; better at 8 and 10 px, worse at 12 px on the selection lines).
  General-purpose learned upscalers (Real-ESRGAN x4plus, the untuned compact net) do
  worse than bicubic for Tesseract.
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

#: Per task: ``(height, backend)``: a crop at most ``height`` px tall goes to ``backend`` when it is
#: usable here, before the task's list. ``text-sr-small`` was trained on 6-12 px lines; on the 291
#: selection lines it beat ``text-sr`` at 8 and 10 px (CER -0.009 to -0.012 at 8 px lossless and
#: q75 and 10 px lossless; -0.002 at 10 px q75) and lost at 12 px (+0.005), so the bound lies
#: between (docs/text_sr.md).
SMALL_CROPS: dict[str, tuple[int, str]] = {"ocr": (11, "text-sr-small")}

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


def _usable(name: str, dev: str) -> str | None:
    """None when backend ``name`` can run here on a ``dev`` device, else why not."""
    if name not in upscaler_names():
        return "not installed"
    if name in NEEDS_GPU and dev != "cuda":
        return NEEDS_GPU[name]
    if not upscaler_class(name).is_available():
        return "weights unavailable"
    return None


def resolve_auto(task: str, device: str | torch.device | None = None, height: int | None = None) -> tuple[str, str]:
    """``(backend name, reason)`` for ``task`` on ``device`` under the auto rule.

    ``device=None`` means the default device (CUDA when available). ``height``: the crop's
    height in pixels, for the small-crop rule (:data:`SMALL_CROPS`); None: the rule for
    crops of any size. The reason names the chosen backend, the order tried and every
    backend skipped, with why.
    """
    order = AUTO_ORDER.get(task, ["bicubic"])
    dev = _device_type(device)
    skipped = []
    small = SMALL_CROPS.get(task)
    if small is not None and height is not None and height <= small[0]:
        not_usable = _usable(small[1], dev)
        if not_usable is None:
            return small[1], (f"auto for task {task!r} on {dev}: a crop {height} px tall (at most {small[0]} px) "
                              f"gets {small[1]}, trained on small lines (docs/text_sr.md)")
        skipped.append(f"{small[1]} for a {height} px crop ({not_usable})")
    for name in order:
        not_usable = _usable(name, dev)
        if not_usable is not None:
            skipped.append(f"{name} ({not_usable})")
            continue
        why = f"auto for task {task!r} on {dev}: first usable of {order}"
        if skipped:
            why += f"; skipped {', '.join(skipped)}"
        note = TASK_NOTES.get(task)
        return name, f"{why}; {note}" if note else why
    return "bicubic", f"auto for task {task!r} on {dev}: nothing else usable ({', '.join(skipped)})"


def auto_backends(task: str, device: str | torch.device | None = None) -> list[str]:
    """Every backend the auto rule can give a crop of ``task`` here (the small-crop one first)."""
    names = [resolve_auto(task, device)[0]]
    small = SMALL_CROPS.get(task)
    if small is not None and _usable(small[1], _device_type(device)) is None:
        names.insert(0, small[1])
    return names

"""Hooks: see the crop before and the image after, record, or veto.

A hook is any callable ``hook(before, after, meta) -> PIL.Image | None``:

* ``before``: the input crop as a PIL image (RGB);
* ``after``: the enhanced image as it stands (the output of earlier hooks);
* ``meta``: the result's metadata, a dict the hook may add to (use your own key);
* return ``None`` to keep ``after``, or an image to replace it (return ``before`` to veto).

Hooks run in order, also when the gate skipped enhancement (then ``after`` is the crop).
"""

from __future__ import annotations

from collections.abc import Callable

from PIL import Image

Hook = Callable[[Image.Image, Image.Image, dict], "Image.Image | None"]


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

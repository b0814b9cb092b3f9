"""``text-sr``: the project's own x4 text super-resolution model, shipped with the package.

A grey SRVGGNetCompact (0.6 M parameters, fp16 file of ~1.2 MB) trained on synthetic
text lines (``preproc train-text-sr``, docs/text_sr.md): the shipped model is the first
one (``text-sr-v1``, pixel losses, from Real-ESRGAN animevideov3) fine-tuned on the v2
line generator with a recognition (CTC) loss through a frozen CRNN of ours (that is
``text-sr-v2``), then four times more with the CTC loss of a *Tesseract proxy*: a CRNN fitted
to Tesseract's own readings of the previous model's outputs (the last round for 6,000
steps; in 1,500 steps it is ``text-sr-v3``). It reads
the luma of the crop and writes dark text on a light background (contrast and polarity
normalised for OCR), replicated to RGB. Tiling, batching and precision are
:class:`~preproc.upscalers.realesrgan.SpandrelUpscaler`'s.

``text-sr-small`` is the shipped model fine-tuned on 6-12 px lines only
(``preproc/weights/text_sr_small_x4.safetensors``); the auto rule gives it OCR crops at most
11 px tall (:data:`preproc.upscalers.auto.SMALL_CROPS`), the shipped model the rest.

``text-sr-v1``, ``text-sr-v2`` and ``text-sr-v3`` keep the earlier models available for comparison
(``preproc/weights/text_sr_v1_x4.safetensors``, ``text_sr_v2_x4.safetensors``, ``text_sr_v3_x4.safetensors``). ``model=`` takes another text-sr
weights file (from ``preproc train-text-sr --out``) or anything the Real-ESRGAN
backends accept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from .shipped import ShippedWeightsUpscaler

#: The weights shipped inside the package.
SHIPPED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "text_sr_x4.safetensors"
#: The first text-sr model (pixel losses only), kept for comparison as backend ``text-sr-v1``.
V1_WEIGHTS = SHIPPED_WEIGHTS.with_name("text_sr_v1_x4.safetensors")
#: The second (CTC loss through our CRNN, issue 10 round two), kept as backend ``text-sr-v2``.
V2_WEIGHTS = SHIPPED_WEIGHTS.with_name("text_sr_v2_x4.safetensors")
#: The third (round four through the Tesseract proxy, 1,500 steps), kept as backend ``text-sr-v3``.
V3_WEIGHTS = SHIPPED_WEIGHTS.with_name("text_sr_v3_x4.safetensors")
#: The small-line model (text-sr fine-tuned on 6-12 px lines), backend ``text-sr-small``: what the
#: auto rule gives OCR crops of at most :data:`~preproc.upscalers.auto.SMALL_CROPS` pixels' height.
SMALL_WEIGHTS = SHIPPED_WEIGHTS.with_name("text_sr_small_x4.safetensors")


def shipped_weights() -> Path:
    """Path of the shipped text-sr weights (it may be absent in a source checkout)."""
    return SHIPPED_WEIGHTS


def cpu_has_native_bf16() -> bool:
    """Whether this CPU runs bf16 natively (AVX512-BF16 or AMX); without it bf16 is emulated and slower."""
    import torch

    try:
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    except (AttributeError, RuntimeError):  # private helpers: absent in other torch versions
        return False


def _is_text_sr_file(model: Any) -> bool:
    if not isinstance(model, (str, os.PathLike)) or not str(model).endswith(".safetensors"):
        return False
    if not Path(model).is_file():
        return False
    from ..train.model import read_metadata

    try:
        return read_metadata(model).get("format") == "preproc-text-sr"
    except Exception:  # noqa: BLE001 - not ours: let the generic loader report it
        return False


class TextSRUpscaler(ShippedWeightsUpscaler):
    """The text-sr model (x4, grey in, grey out replicated to RGB); see the module docstring."""

    name: ClassVar[str] = "text-sr"

    def default_dtype(self, device):
        """bf16 (autocast) on a CPU with native bf16 instructions, else the compact nets' default.

        Measured on 200 development lines (docs/performance.md, "text-sr in bf16"): 2-3x
        faster per line in batches, Tesseract CER within +0.005 (8 px lossless, 1.9 SE)
        and within one SE at 10 px and with JPEG 75. ``dtype="fp32"`` gives the fp32 model.
        """
        import torch

        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return super().default_dtype(device)

    #: The module constant naming the weights used when no ``model`` is given (read at call time).
    _weights_constant: ClassVar[str] = "SHIPPED_WEIGHTS"

    @classmethod
    def default_weights(cls) -> Path:
        """The weights file this backend loads when no ``model`` is given."""
        return globals()[cls._weights_constant]

    @classmethod
    def is_own_file(cls, model: Any) -> bool:
        """A text-sr weights file (by its metadata), or the shipped one."""
        return _is_text_sr_file(model) or Path(str(model)) == cls.default_weights()


class TextSRV1Upscaler(TextSRUpscaler):
    """The first text-sr model (L1 + edge loss only, docs/text_sr.md), kept for comparison."""

    name: ClassVar[str] = "text-sr-v1"
    _weights_constant: ClassVar[str] = "V1_WEIGHTS"


class TextSRV2Upscaler(TextSRUpscaler):
    """The second text-sr model (CTC loss through our CRNN, docs/text_sr.md), kept for comparison."""

    name: ClassVar[str] = "text-sr-v2"
    _weights_constant: ClassVar[str] = "V2_WEIGHTS"


class TextSRV3Upscaler(TextSRUpscaler):
    """The third text-sr model (the last proxy round in 1,500 steps, docs/text_sr.md), kept for comparison."""

    name: ClassVar[str] = "text-sr-v3"
    _weights_constant: ClassVar[str] = "V3_WEIGHTS"


class TextSRSmallUpscaler(TextSRUpscaler):
    """The shipped model fine-tuned on 6-12 px lines (docs/text_sr.md): the OCR default for crops at most 11 px tall."""

    name: ClassVar[str] = "text-sr-small"
    _weights_constant: ClassVar[str] = "SMALL_WEIGHTS"

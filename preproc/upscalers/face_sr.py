"""``face-sr``: the project's own x4 face super-resolution model, trained to keep identity.

An RGB SRVGGNetCompact (0.6 M parameters, fp16 file of ~1.2 MB) fine-tuned from
Real-ESRGAN animevideov3 on small, degraded faces with L1 plus an identity loss through
dlib's face ResNet (``preproc train-face-sr``, docs/faces.md). Tiling, batching and
precision are :class:`~preproc.upscalers.realesrgan.SpandrelUpscaler`'s.

Training data of the shipped weights: LFW (Labeled Faces in the Wild, deep-funneled
images of the View 1 DevTrain list; news photographs of public figures; the LFW site
states no license), only the identities in no evaluation pair; the weights' metadata
list the command, the split rule and every training identity. The identity loss used
dlib's face ResNet (public domain, Davis King). See docs/faces.md for what that means
for shipping.

``model=`` takes another face-sr weights file (``preproc train-face-sr --out``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

from .shipped import ShippedWeightsUpscaler

#: The weights shipped inside the package.
SHIPPED_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "face_sr_x4.safetensors"


def shipped_weights() -> Path:
    """Path of the shipped face-sr weights (it may be absent in a source checkout)."""
    return SHIPPED_WEIGHTS


def training_identities(model: str | os.PathLike | None = None) -> list[str]:
    """The identities a face-sr weights file was trained on (from its metadata)."""
    from ..errors import WeightsError
    from ..train.model import read_metadata

    path = Path(model) if model is not None else SHIPPED_WEIGHTS
    try:
        meta = read_metadata(path)
    except Exception as e:  # noqa: BLE001 - any read error: a bad or foreign file
        raise WeightsError(f"cannot read the metadata of {str(path)!r}: {e}") from e
    if meta.get("format") != "preproc-face-sr" or "train_identities" not in meta:
        raise WeightsError(f"{str(path)!r} is not a face-sr weights file with its training identities")
    return list(json.loads(meta["train_identities"]))


class FaceSRUpscaler(ShippedWeightsUpscaler):
    """The face-sr model (x4, RGB); see the module docstring."""

    name: ClassVar[str] = "face-sr"
    default_weights_path: ClassVar[Path] = SHIPPED_WEIGHTS

    @classmethod
    def default_weights(cls) -> Path:
        """The weights file this backend loads when no ``model`` is given."""
        return cls.default_weights_path

    @classmethod
    def is_own_file(cls, model: Any) -> bool:
        """Any ``.safetensors`` path: face-sr files (``preproc train-face-sr --out``) are ours."""
        return isinstance(model, (str, os.PathLike)) and str(model).endswith(".safetensors")

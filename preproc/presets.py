"""Task presets: one frozen dataclass, one instance per task, every field overridable.

``get_preset("ocr", noise_level=10)`` returns the OCR preset with one field changed;
an unknown task or keyword raises an error listing the valid ones.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, UnknownOptionError, UnknownTaskError


@dataclass(frozen=True)
class Preset:
    """Everything that decides how one crop is enhanced.

    Sizes are in pixels of the *input* crop unless stated otherwise.
    """

    task: str
    #: Backend name, or ``"auto"`` (see :mod:`preproc.upscalers.auto` for the rule).
    upscaler: str = "auto"
    #: Model of the backend: a hub id, a local folder or a weights file (None: the backend's default).
    model: str | None = None

    # --- the gate -------------------------------------------------------------------
    #: OCR: the x-height (px) the gate scales text to; Tesseract reads best at about 20-30 px.
    target_x_height: float | None = None
    #: OCR: a crop whose *measured* x-height is at least this (px) is left as it is (None: only
    #: ``min_scale`` decides). Off by default: measured on 590 report lines, skipping at 10 px
    #: made 16-20 px lines worse and did not mend 24 px (docs/results.md, "The gate at 20-24 px").
    skip_x_height: float | None = None
    #: OCR: the largest height (px) the gate lets a line's measured ink (ascender to descender)
    #: grow to; None: no bound. Tesseract's LSTM reads every line at a fixed height (36 px for
    #: the eng models), so enlarging past it adds nothing and, where the x-height is misread
    #: (all-caps and digit lines), over-enlarged lines read worse (docs/results.md).
    max_line_height: float | None = None
    #: Faces: the face side (px) the gate scales to (facenet's input is 160).
    target_face_side: float | None = None
    #: Faces: measure the face side with MTCNN (facenet-pytorch) when it is installed.
    detect_face: bool = True
    #: Faces: when no face is measured, the face side is taken as this fraction of the
    #: crop's shorter side (0.5: a face box with half a side of context around it).
    face_fraction: float = 0.5
    #: Faces: the crop was already cut around one face by the caller (an aligned crop): the
    #: gate measures the crop (``face_fraction`` of its shorter side) instead of detecting.
    aligned: bool = False
    #: Fixed scale when no target applies (generic task).
    default_scale: float = 4.0
    #: Largest and smallest scale the gate chooses; below ``min_scale`` the crop is left as it is.
    max_scale: float = 4.0
    min_scale: float = 1.15

    # --- tiling ---------------------------------------------------------------------
    #: Input tile side; None lets the backend pick from its memory budget.
    tile: int | None = None
    overlap: int = 16
    blend: str = "cosine"
    batch_size: int = 4

    # --- diffusion (sd-x4) ----------------------------------------------------------
    prompt: str = ""
    negative_prompt: str = ""
    num_inference_steps: int = 25
    guidance_scale: float = 4.0
    noise_level: int = 20
    color_fix: bool = True

    # --- post -----------------------------------------------------------------------
    #: PIL mode of the result: "L" for OCR (what Tesseract reads), "RGB" otherwise.
    output_mode: str = "RGB"
    #: OCR: after enhancing a single-line crop, paint over strokes of the neighbouring lines
    #: that the crop caught at its top or bottom edge (:mod:`preproc.line_isolation`). On by
    #: default for OCR: enhanced to full contrast, they make Tesseract's line mode read
    #: nothing (docs/results.md, "Line isolation").
    isolate_line: bool = False
    #: Free-form options for a backend (e.g. ``{"tile_batch": 8}``); see each backend.
    backend_options: dict[str, Any] = field(default_factory=dict)

    def replace(self, **overrides: Any) -> Preset:
        """A copy with some fields changed; unknown keywords raise :class:`UnknownOptionError`."""
        check_fields(overrides)
        return dataclasses.replace(self, **overrides)


PRESETS: dict[str, Preset] = {
    "ocr": Preset(
        task="ocr",
        target_x_height=24.0,
        max_scale=4.0,
        prompt="a sharp, clean scan of printed black text on a white background, legible letters",
        negative_prompt="blurry, noisy, distorted letters, artifacts, handwriting, watermark",
        # SD x4 invents strokes: low augmentation noise keeps it close to the input,
        # moderate guidance avoids over-sharpened, hallucinated glyphs.
        noise_level=10,
        guidance_scale=4.0,
        num_inference_steps=25,
        output_mode="L",
        isolate_line=True,
    ),
    "face": Preset(
        task="face",
        target_face_side=160.0,
        max_scale=8.0,
        prompt="a sharp, detailed photograph of a human face, natural skin",
        negative_prompt="blurry, cartoon, painting, deformed, distorted face, artifacts",
        noise_level=20,
        guidance_scale=4.0,
        num_inference_steps=25,
    ),
    "generic": Preset(
        task="generic",
        default_scale=4.0,
        min_scale=1.0,
        prompt="a sharp, detailed, high quality photograph",
        negative_prompt="blurry, noisy, artifacts",
        noise_level=20,
        guidance_scale=9.0,
        num_inference_steps=50,
    ),
}

PRESET_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Preset) if f.name != "task")


def check_fields(overrides: dict[str, Any]) -> None:
    """Raise :class:`UnknownOptionError` naming the unknown keywords and the valid ones."""
    unknown = sorted(set(overrides) - set(PRESET_FIELDS))
    if unknown:
        raise UnknownOptionError(
            f"unknown option(s) {', '.join(map(repr, unknown))}; valid options: {', '.join(PRESET_FIELDS)}"
        )


def get_preset(task: str = "ocr", **overrides: Any) -> Preset:
    """The preset for ``task`` (``ocr``, ``face``, ``generic``) with ``overrides`` applied."""
    try:
        base = PRESETS[task]
    except KeyError:
        raise UnknownTaskError(f"unknown task {task!r}; valid tasks: {', '.join(PRESETS)}") from None
    preset = base.replace(**overrides) if overrides else base
    validate(preset)
    return preset


#: The type each field's annotation asks for: (accepted kinds, None allowed).
_KINDS = {"int": (numbers.Integral,), "float": (numbers.Real,), "bool": (bool,), "str": (str,),
          "dict[str, Any]": (Mapping,)}


def check_types(p: Preset) -> None:
    """Every field of the type its annotation states (no bools for numbers, finite floats)."""
    for f in dataclasses.fields(p):
        ann = str(f.type)
        optional = ann.endswith(" | None")
        kinds = _KINDS.get(ann.removesuffix(" | None"))
        value = getattr(p, f.name)
        if kinds is None or (optional and value is None):
            continue
        number = kinds[0] in (numbers.Integral, numbers.Real)
        if not isinstance(value, kinds) or (number and isinstance(value, bool)) or (
            number and not math.isfinite(value)
        ):
            want = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string",
                    "dict[str, Any]": "a dict"}[ann.removesuffix(" | None")]
            raise ConfigError(f"`{f.name}` has to be {want}{' or None' if optional else ''} but is {value!r}")


def validate(p: Preset) -> None:
    """Type and range checks with messages carrying the offending value (diffusers' ``check_inputs`` style)."""
    from .tiling import BLEND_KINDS

    check_types(p)
    for name in ("target_x_height", "skip_x_height", "max_line_height", "target_face_side", "default_scale"):
        v = getattr(p, name)
        if v is not None and v <= 0:
            raise ConfigError(f"`{name}` has to be > 0{' or None' if name != 'default_scale' else ''} but is {v}")
    if p.tile is not None and p.tile < 8:
        raise ConfigError(f"`tile` has to be >= 8 input pixels or None but is {p.tile}")
    if p.overlap < 0 or (p.tile is not None and p.overlap * 2 >= p.tile):
        raise ConfigError(f"`overlap` has to be >= 0 and < tile/2 but is {p.overlap} (tile {p.tile})")
    if p.blend not in BLEND_KINDS:
        raise ConfigError(f"`blend` has to be one of {', '.join(BLEND_KINDS)} but is {p.blend!r}")
    if p.batch_size < 1:
        raise ConfigError(f"`batch_size` has to be >= 1 but is {p.batch_size}")
    if not 0 <= p.noise_level <= 350:
        raise ConfigError(f"`noise_level` has to be in [0, 350] but is {p.noise_level}")
    if p.num_inference_steps < 1:
        raise ConfigError(f"`num_inference_steps` has to be >= 1 but is {p.num_inference_steps}")
    if p.max_scale < 1 or p.min_scale < 1 or p.min_scale > p.max_scale:
        raise ConfigError(f"scales need 1 <= min_scale <= max_scale; got min {p.min_scale}, max {p.max_scale}")
    if not 0 < p.face_fraction <= 1:
        raise ConfigError(f"`face_fraction` has to be in (0, 1] but is {p.face_fraction}")
    if p.output_mode not in ("RGB", "L"):
        raise ConfigError(f"`output_mode` has to be 'RGB' or 'L' but is {p.output_mode!r}")

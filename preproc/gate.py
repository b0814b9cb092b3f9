"""The gate: decide whether a crop needs enhancing, and by how much.

OCR: the x-height of the text is estimated from the horizontal projection profile of
the ink (Otsu threshold, ink = the minority polarity). Within each band of inked rows,
the rows holding at least half of the band's peak ink count are the x-height body
(ascenders and descenders are sparse, the lower-case body is dense). The scale brings
the median x-height to the preset's target (Tesseract's sweet spot is an x-height of
about 20-30 px, tessdoc "Improving the quality of the output"), clamped to
``[min_scale, max_scale]``; at or below ``min_scale`` the crop is left as it is.

Faces: the caller's crop is trusted. For an aligned crop (``Preset.aligned``: the crop
was already cut around one face by the caller's detector) the face side is
``face_fraction`` of the crop's shorter side, nothing is detected. For a photo the face
side is measured with MTCNN (facenet-pytorch's detector, the one the face recognizer
uses; the longer side of the *most confident* face box) when ``detect_face`` is on and
facenet-pytorch is installed; otherwise, or when no face is found, it is assumed to be
``face_fraction`` of the crop's shorter side (and ``meta`` says so). The scale
brings the face side to ``target_face_side`` (160 px: facenet's input; dlib's 150 px chip
holds a face of about 100 px), so the face reaches the embedder's input size before
alignment rather than being resized there.
"""

from __future__ import annotations

import logging
import math
import numbers
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .io import to_gray
from .presets import Preset

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided and why."""

    scale: float
    skip: bool
    reason: str
    measured: dict[str, Any] = field(default_factory=dict)


def otsu_threshold(gray: np.ndarray) -> float:
    """Otsu's threshold of a float image in [0, 1] (256 bins)."""
    hist, edges = np.histogram(gray, bins=256, range=(0.0, 1.0))
    hist = hist.astype(np.float64)
    total = hist.sum()
    if total == 0:
        return 0.5
    centers = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = total - w0
    m0 = np.cumsum(hist * centers)
    mt = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 / total - m0) ** 2 / (w0 * w1 / total)
    between[~np.isfinite(between)] = -1
    return float(centers[int(np.argmax(between))])


def ink_mask(gray: np.ndarray) -> np.ndarray | None:
    """Boolean ink mask (text pixels), or None when the image has no contrast."""
    if float(gray.max() - gray.min()) < 0.08:
        return None
    t = otsu_threshold(gray)
    dark = gray < t
    # Ink is the minority: light text on a dark background flips the polarity.
    return dark if dark.mean() <= 0.5 else ~dark


def ink_bands(profile: np.ndarray) -> list[tuple[int, int]]:
    """Runs ``[a, b)`` of inked rows of a row ``profile`` (ink pixels per row): rows with more
    than 2 % of the peak row's ink (and more than one pixel)."""
    inked = profile > max(1.0, 0.02 * float(profile.max(initial=0)))
    edges = np.diff(np.concatenate([[0], inked.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def drop_specks(bands: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``bands`` without specks: those under 2 rows or a quarter of the tallest band."""
    if not bands:
        return []
    tallest = max(b - a for a, b in bands)
    return [(a, b) for a, b in bands if (b - a) >= max(2, 0.25 * tallest)]


def estimate_x_height(image: np.ndarray) -> dict[str, Any] | None:
    """Estimate the text's x-height and line height in pixels of an ``(H, W, 3)`` crop.

    Returns ``{"x_height", "line_height", "lines"}`` (medians over text lines), or None
    when no text-like structure is found (blank or flat crop).
    """
    mask = ink_mask(to_gray(image))
    if mask is None:
        return None
    profile = mask.sum(axis=1).astype(np.float64)
    if profile.max() <= 0:
        return None
    bands = ink_bands(profile)
    if not bands:  # ink too sparse to form a row band (e.g. a single pixel per row)
        return None
    bands = drop_specks(bands)
    if not bands:  # only one-row specks: nothing to measure
        return None
    xs, ls = [], []
    for a, b in bands:
        p = profile[a:b]
        xs.append(int((p >= 0.5 * p.max()).sum()))
        ls.append(b - a)
    return {"x_height": float(np.median(xs)), "line_height": float(np.median(ls)), "lines": len(bands)}


_DETECTOR: Any = None
_DETECTOR_LOCK = threading.Lock()


def _face_detector() -> Any:
    """The shared MTCNN of the gate (built once), or None when facenet-pytorch is missing."""
    global _DETECTOR
    with _DETECTOR_LOCK:
        if _DETECTOR is None:
            from .errors import RecognizerUnavailableError
            from .recognize.face import FaceDetector

            try:
                _DETECTOR = FaceDetector(min_face_size=10, device="cpu")
            except RecognizerUnavailableError as e:
                logger.info("face gate: no detector (%s); face sizes are assumed", e)
                _DETECTOR = False
        return _DETECTOR or None


def measure_face(image: np.ndarray, preset: Preset) -> dict[str, Any]:
    """The face side in pixels of an ``(H, W, 3)`` crop, and how it was obtained.

    Returns ``{"face_side", "source"}`` plus ``"face_prob"`` when measured (source
    ``"mtcnn"``); otherwise the source says why the side was assumed.
    """
    h, w = image.shape[:2]
    assumed = float(min(h, w)) * preset.face_fraction
    if preset.aligned:
        return {"face_side": assumed, "source": f"aligned crop: {preset.face_fraction:g} of the crop"}
    if not preset.detect_face:
        return {"face_side": assumed, "source": f"assumed {preset.face_fraction:g} of the crop (detect_face off)"}
    det = _face_detector()
    if det is None:
        return {"face_side": assumed, "source": f"assumed {preset.face_fraction:g} of the crop (no detector installed)"}
    with _DETECTOR_LOCK:
        faces = det.detect(image)  # most confident first
    face = faces[0] if faces else None
    if face is None:
        return {"face_side": assumed, "source": f"no face detected; assumed {preset.face_fraction:g} of the crop"}
    return {"face_side": face.side, "source": "mtcnn", "face_prob": face.prob}


def check_scale(scale: Any) -> float:
    """An explicit ``scale`` as a float: a finite number > 0, else :class:`~preproc.errors.ConfigError`."""
    from .errors import ConfigError

    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):  # no silent coercion of "2" or True
        raise ConfigError(f"scale has to be a number > 0 (or None: the gate decides) but is {scale!r}")
    s = float(scale)
    if not math.isfinite(s) or s <= 0:
        raise ConfigError(f"scale has to be a finite number > 0 (or None: the gate decides) but is {scale!r}")
    return s


def decide(image: np.ndarray, preset: Preset, scale: float | None = None) -> GateDecision:
    """The gate's decision for an ``(H, W, 3)`` crop under ``preset``; an explicit ``scale`` wins."""
    h, w = image.shape[:2]
    if scale is not None:
        scale = check_scale(scale)
        if scale <= 1.0:
            return GateDecision(1.0, True, f"scale={scale} given: nothing to upscale")
        return GateDecision(float(scale), False, f"scale={scale} given by the caller")
    measured: dict[str, Any] = {}
    if preset.target_x_height:
        est = estimate_x_height(image)
        if est is None:
            # No measurable text: treat the whole crop as one line whose x-height is half its height.
            xh = h / 2.0
            measured = {"x_height": None, "assumed_x_height": xh}
            why = f"no text found to measure; assumed x-height {xh:.1f} px (half the crop height)"
        else:
            xh = est["x_height"]
            measured = est
            why = f"x-height {xh:.1f} px, target {preset.target_x_height:g} px"
            if preset.skip_x_height is not None and xh >= preset.skip_x_height:
                return GateDecision(1.0, True, f"{why}: at least skip_x_height {preset.skip_x_height:g} px, "
                                    "already large enough for Tesseract, left as it is", measured)
        want = preset.target_x_height / max(xh, 1.0)
        if est is not None and preset.max_line_height is not None and est["line_height"]:
            bound = preset.max_line_height / est["line_height"]
            if bound < want:
                want = bound
                why += (f", bounded by max_line_height {preset.max_line_height:g} px "
                        f"(ink line height {est['line_height']:.0f} px)")
    elif preset.target_face_side:
        measured = measure_face(image, preset)
        side = max(float(measured["face_side"]), 1.0)
        want = preset.target_face_side / side
        how = "measured by MTCNN" if measured["source"] == "mtcnn" else measured["source"]
        why = f"face side {side:.0f} px ({how}), target {preset.target_face_side:g} px"
    else:
        want = preset.default_scale
        why = f"fixed scale {want:g} for task {preset.task!r}"
    if want < preset.min_scale:
        return GateDecision(1.0, True, f"{why}: already large enough, left as it is", measured)
    s = min(want, preset.max_scale)
    if s < want:
        why += f" (capped at max_scale {preset.max_scale:g})"
    return GateDecision(float(s), False, why, measured)

"""The gate: decide whether a crop needs enhancing, and by how much.

OCR: the x-height of the text is estimated from the horizontal projection profile of
the ink (Otsu threshold, ink = the minority polarity). Within each band of inked rows,
the rows holding at least half of the band's peak ink count are the x-height body
(ascenders and descenders are sparse, the lower-case body is dense). The scale brings
the median x-height to the preset's target (Tesseract's sweet spot is an x-height of
about 20-30 px, tessdoc "Improving the quality of the output"), clamped to
``[min_scale, max_scale]``; at or below ``min_scale`` the crop is left as it is.

Faces: the crop is taken as the face box; the scale brings its shorter side to the
embedder's input side (160 px for facenet).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .io import to_gray
from .presets import Preset


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
    inked = profile > max(1.0, 0.02 * profile.max())
    bands: list[tuple[int, int]] = []
    start = None
    for i, v in enumerate(inked):
        if v and start is None:
            start = i
        elif not v and start is not None:
            bands.append((start, i))
            start = None
    if start is not None:
        bands.append((start, len(inked)))
    # Drop specks: bands much thinner than the tallest one.
    tallest = max(b - a for a, b in bands)
    bands = [(a, b) for a, b in bands if (b - a) >= max(2, 0.25 * tallest)]
    xs, ls = [], []
    for a, b in bands:
        p = profile[a:b]
        xs.append(int((p >= 0.5 * p.max()).sum()))
        ls.append(b - a)
    return {"x_height": float(np.median(xs)), "line_height": float(np.median(ls)), "lines": len(bands)}


def decide(image: np.ndarray, preset: Preset, scale: float | None = None) -> GateDecision:
    """The gate's decision for an ``(H, W, 3)`` crop under ``preset``; an explicit ``scale`` wins."""
    h, w = image.shape[:2]
    if scale is not None:
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
        want = preset.target_x_height / max(xh, 1.0)
    elif preset.target_face_side:
        side = float(min(h, w))
        measured = {"face_side": side}
        want = preset.target_face_side / side
        why = f"face side {side:.0f} px, target {preset.target_face_side:g} px"
    else:
        want = preset.default_scale
        why = f"fixed scale {want:g} for task {preset.task!r}"
    if want < preset.min_scale:
        return GateDecision(1.0, True, f"{why}: already large enough, left as it is", measured)
    s = min(want, preset.max_scale)
    if s < want:
        why += f" (capped at max_scale {preset.max_scale:g})"
    return GateDecision(float(s), False, why, measured)

"""The appearance and degradation model: ink coverage -> (LR input, HR target).

What users meet, and how it is simulated (HR = 4 x LR; all in grey, float in [0, 1]):

* **Target**: what Tesseract reads best - dark ink (0) on a white background (1),
  antialiased edges, whatever the input looked like (contrast and polarity are
  normalised, uneven background removed).
* **Input appearance**: paper grey 0.55-1.0, ink darker by at least 0.25 (random
  contrast); light text on a dark background with ``invert_prob``; uneven background
  (a linear illumination ramp plus smooth blotches) with ``uneven_prob``.
* **Blur** before downscaling (Gaussian, sigma 0.3-1.6 HR px) with ``blur_prob``.
* **Downscaling** x4 by area averaging (50 %), antialiased bicubic (25 %), bilinear
  without antialiasing (15 %) or nearest neighbour (10 %, aliased screenshots).
* **Noise** (Gaussian, sigma 0.004-0.04) with ``noise_prob``; always quantised to 8 bit.
* **JPEG** (quality 30-95) with ``jpeg_prob``.

Slight rotation is done by :func:`~preproc.train.render.render_line` (target and input alike).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Degradation:
    """Probabilities and ranges of the degradation model (see the module docstring)."""

    invert_prob: float = 0.1
    uneven_prob: float = 0.4
    blur_prob: float = 0.35
    blur_sigma: tuple[float, float] = (0.3, 1.6)
    noise_prob: float = 0.4
    noise_sigma: tuple[float, float] = (0.004, 0.04)
    jpeg_prob: float = 0.7
    jpeg_quality: tuple[int, int] = (30, 95)
    #: Weights of area, bicubic (antialiased), bilinear (aliased), nearest downscaling.
    resize_weights: tuple[float, float, float, float] = (0.5, 0.25, 0.15, 0.1)


def target_from_coverage(coverage: np.ndarray) -> np.ndarray:
    """The HR target: black ink on white, ``1 - coverage``."""
    return 1.0 - coverage


def appearance(coverage: np.ndarray, rng: np.random.Generator, deg: Degradation) -> np.ndarray:
    """The HR *input* look of ``coverage``: random contrast, polarity and background."""
    h, w = coverage.shape
    paper = rng.uniform(0.55, 1.0)
    ink = rng.uniform(0.0, paper - 0.25)
    if rng.random() < deg.invert_prob:
        paper, ink = 1.0 - paper, 1.0 - ink
    bg = np.full((h, w), paper, dtype=np.float32)
    if rng.random() < deg.uneven_prob:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        ang = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(ang) * xx / max(w, 1) + np.sin(ang) * yy / max(h, 1))
        bg += rng.uniform(-0.2, 0.2) * ramp
        small = rng.normal(0, 1, (max(2, h // 16), max(2, w // 16))).astype(np.float32)
        bg += rng.uniform(0, 0.08) * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return bg + (ink - bg) * coverage


def _resize_down(img: np.ndarray, size: tuple[int, int], kind: int) -> np.ndarray:
    w, h = size
    if kind == 0:
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    if kind == 1:
        pil = Image.fromarray(img, mode="F").resize((w, h), Image.Resampling.BICUBIC)
        return np.asarray(pil, dtype=np.float32)
    if kind == 2:
        return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_NEAREST)


def degrade(hr_input: np.ndarray, scale: int, rng: np.random.Generator, deg: Degradation) -> np.ndarray:
    """LR version ``(H/scale, W/scale)`` of the HR input look, uint8-quantised, float32 in [0, 1]."""
    h, w = hr_input.shape
    img = hr_input.astype(np.float32)
    if rng.random() < deg.blur_prob:
        img = cv2.GaussianBlur(img, (0, 0), sigmaX=float(rng.uniform(*deg.blur_sigma)))
    p = np.asarray(deg.resize_weights, dtype=np.float64)
    kind = int(rng.choice(len(p), p=p / p.sum()))
    img = _resize_down(img, (w // scale, h // scale), kind)
    if rng.random() < deg.noise_prob:
        img = img + rng.normal(0, rng.uniform(*deg.noise_sigma), img.shape).astype(np.float32)
    u8 = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
    if rng.random() < deg.jpeg_prob:
        q = int(rng.integers(deg.jpeg_quality[0], deg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            u8 = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return u8.astype(np.float32) / 255.0

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

Generator v2 (:meth:`Degradation.v2`) adds, on the HR input only (the target stays clean):

* **Ink spread / erosion** (morphological dilation or erosion of the ink, 1-2 HR px) with
  ``spread_prob`` - bleeding print, thin faded print.
* **Faded thermal ink**: ink strength modulated by a smooth field and by per-column
  streaks (a worn print head), 35-100 % of full contrast, with ``fade_prob``.
* **Paper texture**: fine grain (blurred noise) with ``texture_prob``.
* **Binarisation** at the midpoint of paper and ink (binarised book scans, 1-bit
  faxes) with ``binarize_prob``, before the downscaling.
* **Gamma** 0.6-1.7 with ``gamma_prob`` (scanner and camera tone curves).

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
    # generator v2 (0 = off, as in v1; an effect that is off draws no random numbers)
    spread_prob: float = 0.0
    fade_prob: float = 0.0
    texture_prob: float = 0.0
    binarize_prob: float = 0.0
    gamma_prob: float = 0.0

    @classmethod
    def v2(cls) -> Degradation:
        """The degradation model of generator v2 (the module docstring lists the effects)."""
        return cls(spread_prob=0.25, fade_prob=0.2, texture_prob=0.25, binarize_prob=0.12, gamma_prob=0.3)


def target_from_coverage(coverage: np.ndarray) -> np.ndarray:
    """The HR target: black ink on white, ``1 - coverage``."""
    return 1.0 - coverage


def appearance(coverage: np.ndarray, rng: np.random.Generator, deg: Degradation) -> np.ndarray:
    """The HR *input* look of ``coverage``: random contrast, polarity and background."""
    h, w = coverage.shape
    if deg.spread_prob and rng.random() < deg.spread_prob:
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(rng.integers(2, 4)),) * 2)
        coverage = (cv2.dilate if rng.random() < 0.5 else cv2.erode)(coverage, k)
    if deg.fade_prob and rng.random() < deg.fade_prob:
        field = rng.uniform(0, 1, (max(2, h // 24), max(2, w // 24))).astype(np.float32)
        field = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
        streaks = cv2.GaussianBlur(rng.uniform(0, 1, (1, w)).astype(np.float32), (0, 0), sigmaX=2.0)
        lo = rng.uniform(0.35, 0.8)
        coverage = coverage * np.clip(lo + (1 - lo) * (0.6 * field + 0.4 * streaks / max(streaks.max(), 1e-6)), 0, 1)
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
    img = bg + (ink - bg) * coverage
    if deg.texture_prob and rng.random() < deg.texture_prob:
        grain = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0),
                                 sigmaX=float(rng.uniform(0.7, 2.0)))
        img = img + rng.uniform(0.02, 0.08) * grain / max(float(grain.std()), 1e-6)
    if deg.binarize_prob and rng.random() < deg.binarize_prob:
        img = np.where(img < (paper + ink) / 2, ink, paper).astype(np.float32)
    if deg.gamma_prob and rng.random() < deg.gamma_prob:
        img = np.clip(img, 0, 1) ** rng.uniform(0.6, 1.7)
    return img.astype(np.float32)


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

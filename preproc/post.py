"""Post-processing after the upscaler: resize to the gate's scale, colour fix, output mode."""

from __future__ import annotations

import cv2
import numpy as np


def resize_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``(H, W, 3)`` float32 to ``height`` x ``width``: area when shrinking, bicubic when growing."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    interp = cv2.INTER_AREA if height <= h and width <= w else cv2.INTER_CUBIC
    out = cv2.resize(image, (width, height), interpolation=interp)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def color_fix(output: np.ndarray, reference: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """Match the low frequencies of ``output`` to ``reference`` (StableSR-style colour fix).

    ``reference`` (the input crop) is resized to the output's size; both are low-passed
    with a Gaussian of ``sigma`` output pixels (default: the scale factor times 2, i.e.
    a couple of input pixels), and the output keeps its own high frequencies on top of
    the reference's low ones. Fixes the colour and brightness drift of diffusion
    upscalers without touching the detail they add.
    """
    oh, ow = output.shape[:2]
    ref = resize_to(reference.astype(np.float32), oh, ow)
    if sigma is None:
        sigma = max(1.0, 2.0 * oh / reference.shape[0])
    low_out = cv2.GaussianBlur(output, (0, 0), sigma)
    low_ref = cv2.GaussianBlur(ref, (0, 0), sigma)
    return np.clip(output - low_out + low_ref, 0.0, 1.0).astype(np.float32)

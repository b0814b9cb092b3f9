"""Classical clean-up of text images before OCR.

The steps OCRmyPDF's ``--clean`` and Tesseract's guide ("Improving the quality of the
output": rescaling, binarisation, noise removal, dark-on-light polarity) recommend, as
small pure functions on grey float images ``(H, W)`` in ``[0, 1]``:

* :func:`normalize_polarity`: dark text on a light background (Tesseract 4+ expects it);
* :func:`contrast_stretch`: map the ``low``/``high`` percentiles to black and white;
* :func:`unsharp_mask`: sharpen edges softened by interpolation and JPEG;
* :func:`adaptive_binarize`: local (Gaussian-weighted) threshold, for uneven light.

:func:`clean_text` chains them; the comparison variants ``cleanup`` and ``cleanup-bin``
apply it after a bicubic upscale to the gate's scale (:mod:`preproc.compare.variants`).
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from .errors import ConfigError
from .gate import ink_mask
from .io import ImageLike, load_image, to_gray


def normalize_polarity(gray: np.ndarray) -> np.ndarray:
    """``gray`` with dark ink on light paper: inverted when the ink (the minority) is lighter."""
    mask = ink_mask(gray)
    if mask is None or not mask.any() or mask.all():
        return gray
    if float(gray[mask].mean()) > float(gray[~mask].mean()):
        return (1.0 - gray).astype(np.float32)
    return gray


def contrast_stretch(gray: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Linearly map the ``low``-th and ``high``-th percentiles (0-100) of ``gray`` to 0 and 1, clipped.

    A flat image (percentiles within 1/255) is returned unchanged.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ConfigError(f"percentiles need 0 <= low < high <= 100; got low={low}, high={high}")
    lo, hi = np.percentile(gray, [low, high])
    if hi - lo < 1.0 / 255.0:
        return gray
    return np.clip((gray - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def unsharp_mask(gray: np.ndarray, sigma: float = 1.0, amount: float = 1.0) -> np.ndarray:
    """``gray + amount * (gray - blur(gray, sigma))``, clipped to [0, 1]; ``sigma`` in pixels."""
    if sigma <= 0 or amount < 0:
        raise ConfigError(f"unsharp mask needs sigma > 0 and amount >= 0; got sigma={sigma}, amount={amount}")
    blur = cv2.GaussianBlur(gray, (0, 0), sigma)
    return np.clip(gray + amount * (gray - blur), 0.0, 1.0).astype(np.float32)


def adaptive_binarize(gray: np.ndarray, block: int | None = None, offset: float = 0.04) -> np.ndarray:
    """Binarise against a Gaussian-weighted local mean: 0 (ink) or 1 (paper), float32.

    ``block``: odd neighbourhood side in pixels (default: the odd number nearest the
    image height, clamped to [11, 101], i.e. about one text line); ``offset``: how much
    darker than the local mean a pixel must be to count as ink (gray units, 0-1).
    """
    h = gray.shape[0]
    if block is None:
        block = int(min(101, max(11, h)))
        block += 1 - block % 2
    if block < 3 or block % 2 == 0:
        raise ConfigError(f"`block` has to be an odd number >= 3 but is {block}")
    u8 = (np.clip(gray, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    out = cv2.adaptiveThreshold(u8, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, offset * 255.0)
    return (out > 127).astype(np.float32)


def clean_text(
    image: ImageLike,
    *,
    binarize: bool = False,
    stretch: tuple[float, float] = (1.0, 99.0),
    sharpen_sigma: float | None = 1.0,
    sharpen_amount: float = 1.0,
) -> Image.Image:
    """Polarity, contrast stretch, unsharp mask and (optionally) adaptive binarisation; a PIL ``"L"`` image.

    Sharpening ``sigma`` is in pixels of ``image``: apply this after upscaling, at the
    resolution the recognizer reads. ``sharpen_sigma=None`` skips sharpening.
    """
    gray = to_gray(load_image(image))
    gray = normalize_polarity(gray)
    gray = contrast_stretch(gray, *stretch)
    if sharpen_sigma is not None:
        gray = unsharp_mask(gray, sharpen_sigma, sharpen_amount)
    if binarize:
        gray = adaptive_binarize(gray)
    return Image.fromarray((gray * 255.0 + 0.5).astype(np.uint8), "L")

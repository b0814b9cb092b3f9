"""Leptonica's ``pixScale`` of an 8-bit grey image, as Tesseract scales a line to its network's height.

``ImageData::PreScale`` calls ``pixScale(pix, f, f)`` with ``f = 36 / height`` (float).
Leptonica (``src/scale1.c``, ``src/enhance.c``) then picks by the factor:

* ``f == 1``: a copy;
* ``f < 0.7``: area mapping (``scaleGrayAreaMapLow``: each output pixel the mean of the
  source area it covers, corners at 1/16 px), then unsharp masking of half-width 1 and
  fraction 0.2 (when ``f > 0.2``);
* ``0.7 <= f < 1.4``: linear interpolation (``scaleGrayLILow``: the source point of output
  pixel ``j`` is ``j * ws / wd``, quantised to 1/16 px, edges clamped), then unsharp
  masking of half-width 2 and fraction 0.4 (``pixUnsharpMaskingGray2D``: ``I + f (I - box
  mean)`` on the interior, the border rows and columns copied);
* ``f >= 1.4``: linear interpolation alone.

Every step is a linear map (separable matrices) plus, in Leptonica, integer rounding.
:func:`pix_scale` computes it in torch: differentiable without the rounding, or with
``exact=True`` bit-exact with Leptonica's integer arithmetic (for
:func:`~preproc.recognize.tesseract_torch.reference_probs`). Leptonica's special paths for
factors of exactly 2, 4, 1/2, 1/4, 1/8 and 1/16 are not reproduced (``exact=True`` refuses
them; the differentiable path uses the general rule there).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

_SPECIAL = {2.0, 4.0, 0.5, 0.25, 0.125, 0.0625}


def output_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """``(wd, hd)`` of ``pixScale``: ``(int)(f * side + 0.5)`` in float32."""
    f = np.float32(factor)
    return int(np.float32(f * np.float32(width)) + np.float32(0.5)), int(np.float32(f * np.float32(height)) + np.float32(0.5))


@lru_cache(maxsize=4096)
def _li_matrix(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of 1/16 weights (sum 16) of ``scaleGrayLILow`` along one axis: ``(dst, src)``."""
    sc = np.float32(16.0) * np.float32(src) / np.float32(dst)
    m = np.zeros((dst, src))
    for j in range(dst):
        pm = int(np.float32(sc * np.float32(j)))
        p, frac = pm >> 4, pm & 15
        m[j, p] += 16 - frac
        m[j, p + 1 if p <= src - 2 else p] += frac
    return m, np.zeros(dst, bool), np.zeros(dst, int)


@lru_cache(maxsize=4096)
def _area_matrix(src: int, dst: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``scaleGrayAreaMapLow`` along one axis: weights in 1/16 px ``(dst, src)``, which outputs
    fall back to the source pixel at their upper-left corner (near the far edge), and that corner."""
    sc = np.float32(16.0) * np.float32(src) / np.float32(dst)
    m = np.zeros((dst, src))
    edge = np.zeros(dst, bool)
    corner = np.zeros(dst, int)
    for j in range(dst):
        u = int(np.float32(sc * np.float32(j)))
        lo = int(float(sc) * (j + 1.0))
        up, uf, lp, lf = u >> 4, u & 15, lo >> 4, lo & 15
        corner[j] = up
        if lp > src - 2:
            edge[j] = True
            m[j, up] = 16.0
            continue
        m[j, up] += 16 - uf
        m[j, up + 1:lp] += 16
        m[j, lp] += lf
    return m, edge, corner


def _unsharp(x: torch.Tensor, halfwidth: int, fract: float, exact: bool) -> torch.Tensor:
    """``pixUnsharpMaskingGray2D``: ``I + fract (I - mean of the (2hw+1)^2 box)`` inside, borders kept."""
    h, w = x.shape[-2:]
    k = 2 * halfwidth + 1
    if h < k or w < k:
        return x
    dtype = torch.float32
    xf = x.to(dtype)
    rows = xf.unfold(-1, k, 1).sum(-1)                     # horizontal sums (h, w - 2hw)
    box = rows.unfold(-2, k, 1).sum(-1) * torch.tensor(1.0 / (k * k), dtype=dtype)
    inner = xf[..., halfwidth:h - halfwidth, halfwidth:w - halfwidth]
    f = torch.tensor(np.float32(fract), dtype=dtype)
    sharp = inner + f * (inner - box)
    if exact:
        sharp = torch.trunc(sharp + 0.5)
    sharp = sharp.clamp(0, 255).to(x.dtype)
    out = x.clone()
    out[..., halfwidth:h - halfwidth, halfwidth:w - halfwidth] = sharp
    return out


def pix_scale(x: torch.Tensor, factor: float, exact: bool = False) -> torch.Tensor:
    """Leptonica's ``pixScale(pix, factor, factor)`` of grey levels ``(..., H, W)`` in 0-255.

    ``exact``: Leptonica's integer rounding at every step (no gradient through it;
    compute in float64 for exact sums); otherwise the same linear maps without rounding.
    """
    f = float(np.float32(factor))
    h, w = x.shape[-2:]
    if f == 1.0:
        return x.clone()
    if exact and f in _SPECIAL:
        raise ValueError(f"Leptonica scales by exactly {f} on a special path that is not reproduced")
    wd, hd = output_size(w, h, f)
    (my, ey, cy), (mx, ex, cx) = (_area_matrix if f < 0.7 else _li_matrix)(h, hd), \
        (_area_matrix if f < 0.7 else _li_matrix)(w, wd)
    area = np.outer(my.sum(1), mx.sum(1))                  # 256 for LI; the covered subpixels for area maps
    ty, tx = (torch.tensor(m, dtype=x.dtype, device=x.device) for m in (my, mx))
    s = ty @ x @ tx.T
    if exact:
        out = torch.floor((s + 128) / torch.tensor(area, dtype=x.dtype, device=x.device))
    else:
        out = s / torch.tensor(area, dtype=x.dtype, device=x.device)
    if ey.any() or ex.any():
        src = x[..., cy[:, None], cx[None, :]]
        mask = torch.tensor(ey[:, None] | ex[None, :], device=x.device)
        out = torch.where(mask, src, out)
    if f < 0.7:
        if f > 0.2:
            out = _unsharp(out, 1, 0.2, exact)
    elif f < 1.4:
        out = _unsharp(out, 2, 0.4, exact)
    return out

"""Deterministic batches of (LR, HR) text patches: batch ``i`` of seed ``s`` is always the same.

Generator ``version`` 1 (the first text-sr model): patches cut from longer lines, no
text. Version 2: whole lines with their exact text (for the recognition loss), more
fonts, receipt-like text and more degradations (:meth:`Degradation.v2`); batches are
``(lr, hr, texts)``.

Every batch draws from its own generator ``np.random.default_rng([seed, i])``, so the
data do not depend on worker processes, on resuming, or on what came before.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConfigError
from .degrade import Degradation, appearance, degrade, target_from_coverage
from .render import render_line, render_text_line


@dataclass(frozen=True)
class DataConfig:
    """Shapes of the training pairs."""

    #: Scale factor between target and input.
    scale: int = 4
    #: LR crop heights drawn per batch (inclusive range, pixels); the whole line height
    #: is one patch, so the net always sees the crop's full vertical context.
    lr_heights: tuple[int, int] = (7, 16)
    #: LR pixels per patch; the patch width is ``max(min_width, pixels // height)``.
    patch_pixels: int = 384
    min_width: int = 24
    batch_size: int = 16
    degradation: Degradation = field(default_factory=Degradation)
    #: Generator version (module docstring): 1 cut patches, 2 whole lines with text.
    version: int = 1

    @classmethod
    def v2(cls, **kw) -> DataConfig:
        """Generator v2 with its degradation model (:meth:`Degradation.v2`) and 512-pixel patches."""
        kw.setdefault("patch_pixels", 512)
        kw.setdefault("degradation", Degradation.v2())
        return cls(version=2, **kw)

    def __post_init__(self) -> None:
        if self.version not in (1, 2):
            raise ConfigError(f"data version has to be 1 or 2 but is {self.version}")
        lo, hi = self.lr_heights
        if not 4 <= lo <= hi:
            raise ConfigError(f"lr_heights must satisfy 4 <= low <= high, got {self.lr_heights}")
        if self.batch_size < 1 or self.scale < 1:
            raise ConfigError(f"batch_size and scale must be >= 1, got {self.batch_size}, {self.scale}")


def make_pair(rng: np.random.Generator, lr_h: int, lr_w: int, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """One ``(lr (lr_h, lr_w), hr (s*lr_h, s*lr_w))`` pair of float32 grey patches."""
    s = cfg.scale
    cov = render_line(rng, s * lr_h, s * (lr_w + 8))
    cov = cov[:, : (cov.shape[1] // s) * s]
    lr = degrade(appearance(cov, rng, cfg.degradation), s, rng, cfg.degradation)
    hr = target_from_coverage(cov)
    x0 = int(rng.integers(0, lr.shape[1] - lr_w + 1))
    return lr[:, x0 : x0 + lr_w], hr[:, s * x0 : s * (x0 + lr_w)]


def make_text_pair(rng: np.random.Generator, lr_h: int, lr_w: int, cfg: DataConfig) -> tuple[np.ndarray, np.ndarray, str]:
    """One whole line (generator v2): ``lr (lr_h, lr_w)``, ``hr (s*lr_h, s*lr_w)`` and its text."""
    s = cfg.scale
    cov, text = render_text_line(rng, s * lr_h, s * lr_w)
    lr = degrade(appearance(cov, rng, cfg.degradation), s, rng, cfg.degradation)
    return lr, target_from_coverage(cov), text


def make_text_batch(seed: int, index: int, cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Batch ``index`` of ``seed`` with texts: ``lr (B, 1, h, w)``, ``hr (B, 1, s*h, s*w)``, ``B`` strings
    (generator v2 for any ``cfg.version``)."""
    rng = np.random.default_rng([seed, index])
    lr_h = int(rng.integers(cfg.lr_heights[0], cfg.lr_heights[1] + 1))
    lr_w = max(cfg.min_width, cfg.patch_pixels // lr_h)
    triples = [make_text_pair(rng, lr_h, lr_w, cfg) for _ in range(cfg.batch_size)]
    lr = torch.from_numpy(np.stack([p[0] for p in triples]))[:, None]
    hr = torch.from_numpy(np.stack([p[1] for p in triples]))[:, None]
    return lr, hr, [p[2] for p in triples]


def make_batch(seed: int, index: int, cfg: DataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch ``index`` of ``seed``: ``lr (B, 1, h, w)`` and ``hr (B, 1, s*h, s*w)`` in [0, 1]."""
    if cfg.version == 2:
        return make_text_batch(seed, index, cfg)[:2]
    rng = np.random.default_rng([seed, index])
    lr_h = int(rng.integers(cfg.lr_heights[0], cfg.lr_heights[1] + 1))
    lr_w = max(cfg.min_width, cfg.patch_pixels // lr_h)
    pairs = [make_pair(rng, lr_h, lr_w, cfg) for _ in range(cfg.batch_size)]
    lr = torch.from_numpy(np.stack([p[0] for p in pairs]))[:, None]
    hr = torch.from_numpy(np.stack([p[1] for p in pairs]))[:, None]
    return lr, hr


class TextPairBatches(torch.utils.data.Dataset):
    """Map-style dataset of batches ``start, start+1, ...`` (use ``batch_size=None`` in a DataLoader);
    ``(lr, hr)`` for generator v1, ``(lr, hr, texts)`` for v2."""

    def __init__(self, seed: int, cfg: DataConfig, length: int, start: int = 0):
        self.seed, self.cfg, self.length, self.start = seed, cfg, length, start

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> tuple:
        if self.cfg.version == 2:
            return make_text_batch(self.seed, self.start + i, self.cfg)
        return make_batch(self.seed, self.start + i, self.cfg)

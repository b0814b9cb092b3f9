"""Validation during training: Tesseract CER on a fixed subset of the development set.

Low resolution is simulated as in ``preproc compare``: the crop is resized to a line
height of ``size`` px (area interpolation, width in proportion), optionally JPEG
round-tripped, then upscaled x4 (the net, or bicubic for the baseline) and read by
Tesseract (single-line mode, :mod:`preproc.recognize.ocr`). CER as in
:mod:`preproc.metrics`: total edits / total reference characters (case-folded where
the record says so; whitespace runs collapsed). The subset is picked evenly across the manifest (fixed for a given size),
so the numbers of different checkpoints compare.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from ..datasets import Record, read_manifest
from ..errors import ConfigError

logger = logging.getLogger(__name__)

Upscale = Callable[[np.ndarray], np.ndarray]


def even_subset(items: Sequence, n: int | None) -> list:
    """``n`` items spread evenly over ``items`` (all when ``n`` is None or large)."""
    items = list(items)
    if n is None or n >= len(items):
        return items
    return [items[(i * len(items)) // n] for i in range(n)]


#: One in this many line groups (per source, in hash order) is a checkpoint-selection line.
SELECTION_EVERY = 3


def split_group(record_id: str) -> str:
    """The unit a split keeps together: a SROIE receipt (``sroie-<receipt>``), else the line id."""
    m = re.match(r"^(sroie-\d+)-\d+$", record_id)
    return m.group(1) if m else record_id


def _split_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def split_dev_lines(records: Sequence[Record]) -> tuple[list[Record], list[Record]]:
    """The one split of a development set into (checkpoint-selection, report) records.

    Deterministic and independent of the manifest's order: within each ``source``, the
    groups of :func:`split_group` (a SROIE receipt, else one line) are sorted by the
    SHA-256 of their key and every :data:`SELECTION_EVERY`-th (positions 0, 3, 6, ...)
    goes to selection, the rest to report - about a third of every source selects
    checkpoints, two thirds are reported on. Both lists keep the input order.
    """
    by_source: dict[str, set[str]] = {}
    for r in records:
        by_source.setdefault(str(r.get("source", "")), set()).add(split_group(r.id))
    selection_groups: set[tuple[str, str]] = set()
    for source, groups in by_source.items():
        for i, g in enumerate(sorted(groups, key=_split_hash)):
            if i % SELECTION_EVERY == 0:
                selection_groups.add((source, g))
    sel = [r for r in records if (str(r.get("source", "")), split_group(r.id)) in selection_groups]
    rep = [r for r in records if (str(r.get("source", "")), split_group(r.id)) not in selection_groups]
    return sel, rep


def select_split(records: Sequence[Record], split: str | None) -> list[Record]:
    """``records`` restricted to ``split``: ``"selection"``, ``"report"`` or None/``"all"`` (all)."""
    if split in (None, "", "all"):
        return list(records)
    sel, rep = split_dev_lines(records)
    if split == "selection":
        return sel
    if split == "report":
        return rep
    raise ConfigError(f"split has to be 'selection', 'report' or 'all' but is {split!r}")


def degrade_crop(path: Path, size: int, jpeg: int | None) -> np.ndarray:
    """The crop at ``path`` as grey float32 ``(size, W)``: area-resized, optionally JPEG'd (RGB, as compare does)."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    h, w = rgb.shape[:2]
    nw = max(1, round(w * size / h))
    interp = cv2.INTER_AREA if size <= h else cv2.INTER_CUBIC
    small = Image.fromarray(np.clip(np.rint(cv2.resize(rgb, (nw, size), interpolation=interp) * 255), 0, 255)
                            .astype(np.uint8))
    if jpeg is not None:
        buf = io.BytesIO()
        small.save(buf, format="JPEG", quality=int(jpeg))
        small = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.asarray(small.convert("L"), dtype=np.float32) / 255.0


class TesseractLine:
    """Tesseract in single-line mode through :class:`preproc.recognize.ocr.TesseractOCR`
    (tesserocr when installed, ~15 ms a line; else pytesseract)."""

    def __init__(self, lang: str = "eng"):
        from ..recognize.ocr import TesseractOCR

        self._ocr = TesseractOCR(lang, mode="line")

    def read(self, grey: np.ndarray) -> str:
        """Text of a grey float image in [0, 1]."""
        return self._ocr.read(Image.fromarray(np.clip(np.rint(grey * 255), 0, 255).astype(np.uint8), "L")).text


@dataclass(frozen=True)
class ValCase:
    """One degraded validation crop and its reference text."""

    image: np.ndarray
    text: str
    size: int
    jpeg: int | None
    case_sensitive: bool = True


def build_cases(dataset: str | os.PathLike, n_lines: int | None = 60, sizes: Sequence[int] = (8, 10, 12),
                jpegs: Sequence[int | None] = (None, 75), split: str | None = "selection") -> list[ValCase]:
    """The fixed validation cases: ``n_lines`` lines spread evenly over the ``split`` lines
    (:func:`split_dev_lines`; checkpoint selection by default) x sizes x JPEG settings."""
    records: list[Record] = even_subset(select_split(read_manifest(dataset, require=("text",)), split), n_lines)
    return [ValCase(degrade_crop(r.image, size, q), str(r.get("text")), size, q, bool(r.get("case_sensitive", True)))
            for r in records for size in sizes for q in jpegs]


def _key(size: int, jpeg: int | None) -> str:
    return f"{size}px" + (f"_q{jpeg}" if jpeg is not None else "")


def evaluate(cases: Sequence[ValCase], upscale: Upscale, ocr: Any) -> dict[str, float]:
    """CER per ``"<size>px[_q<jpeg>]"`` and their mean (``"mean"``) for one upscaling function."""
    from ..metrics import score_line

    edits: dict[str, int] = {}
    chars: dict[str, int] = {}
    for c in cases:
        s = score_line(c.text, ocr.read(upscale(c.image)), c.case_sensitive)
        k = _key(c.size, c.jpeg)
        edits[k] = edits.get(k, 0) + s.char_edits
        chars[k] = chars.get(k, 0) + max(s.chars, 1)
    out = {k: edits[k] / chars[k] for k in edits}
    out["mean"] = float(np.mean(list(out.values())))
    return out


def identity(image: np.ndarray) -> np.ndarray:
    """The crop as it is (the ``none`` baseline)."""
    return image


def bicubic_x4(image: np.ndarray) -> np.ndarray:
    """Bicubic x4 (the ``bicubic`` baseline), as :class:`preproc.upscalers.classic.BicubicUpscaler` does."""
    t = torch.from_numpy(image)[None, None]
    return torch.nn.functional.interpolate(t, scale_factor=4, mode="bicubic", align_corners=False)[0, 0].clamp(0, 1).numpy()


def net_upscaler(net: torch.nn.Module, device: torch.device | str = "cpu") -> Upscale:
    """An :data:`Upscale` function running a grey x4 ``net`` in fp32."""

    def run(image: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(image)[None, None].to(device)
            return net(x)[0, 0].float().clamp(0, 1).cpu().numpy()

    return run

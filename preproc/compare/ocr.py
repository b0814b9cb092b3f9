"""The OCR comparison task: text lines -> Tesseract -> character error rate and word accuracy.

Records need ``text``; ``case_sensitive: false`` makes a line's comparison
case-insensitive (:mod:`preproc.metrics` states the normalisation). ``size`` is the
line height in pixels: the crop is area-downscaled to that height (width in
proportion), then JPEG-compressed when asked. Recognition: :class:`TesseractOCR` in
single-line mode (``--task-opt mode=block`` for multi-line crops). ``--task-opt
split=selection|report`` keeps only that side of the development-set split
(:func:`preproc.train.validate.split_dev_lines`; default ``all``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ..datasets import Record, read_manifest
from ..io import load_image
from ..metrics import corpus_scores
from ..recognize.ocr import TesseractOCR
from .task import CompareTask, Recognition, area_resize, jpeg_roundtrip, spread


class OcrTask(CompareTask):
    """Tesseract on text-line crops; metrics ``cer`` (lower is better) and ``word_acc``."""

    name = "ocr"
    preset = "ocr"
    metrics = ("cer", "word_acc")
    higher_is_better = {"cer": False, "word_acc": True}
    size_label = "line height (px)"
    default_sizes = (8, 10, 12, 16)
    default_candidates = ("none", "bicubic", "cleanup")
    modes = ("select",)

    def __init__(self, lang: str = "eng", mode: str | int = "line", engine: str = "auto", split: str = "all"):
        from ..train.validate import select_split

        select_split([], split)  # validates the name
        self._split = split
        self._options = {"lang": lang, "mode": mode, "engine": engine}
        if split != "all":  # only then: the fingerprint of whole-set runs stays as it was
            self._options["split"] = split
        self.ocr = TesseractOCR(lang, mode, engine)
        # the engine actually used is part of the cache fingerprint (their results differ slightly)
        self._options["engine_used"] = self.ocr.engine

    def load(self, dataset: Path, limit: int | None) -> list[Record]:
        from ..train.validate import select_split

        return spread(select_split(read_manifest(dataset, require=("text",)), self._split), limit)

    def degrade(self, record: Record, size: int, jpeg: int | None) -> Image.Image:
        arr = load_image(record.image)
        h, w = arr.shape[:2]
        return jpeg_roundtrip(area_resize(arr, max(1, round(w * size / h)), size), jpeg)

    def recognize(self, image: Image.Image, record: Record) -> Recognition:
        r = self.ocr.read(image)
        return {"text": r.text, "confidence": round(r.confidence, 3)}

    def evaluate(self, records: Sequence[Record], recognitions: Sequence[Recognition]) -> dict[str, Any]:
        s = corpus_scores(
            [str(r.get("text")) for r in records],
            [str(x.get("text", "")) for x in recognitions],
            [bool(r.get("case_sensitive", True)) for r in records],
        )
        return {"cer": s["cer"], "word_acc": s["word_acc"]}

    def caption(self, recognition: Recognition) -> str:
        text = str(recognition.get("text", ""))
        text = text if len(text) <= 44 else text[:43] + "…"
        return f"{text!r} ({recognition.get('confidence') or 0:.0f})"

    def close(self) -> None:
        self.ocr.close()

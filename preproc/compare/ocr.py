"""The OCR comparison task: text lines -> Tesseract -> character error rate and word accuracy.

Records need ``text``; ``case_sensitive: false`` makes a line's comparison
case-insensitive (:mod:`preproc.metrics` states the normalisation). ``size`` is the
line height in pixels: the crop is area-downscaled to that height (width in
proportion), then JPEG-compressed when asked. Recognition: :class:`TesseractOCR` in
single-line mode (``--task-opt mode=block`` for multi-line crops). ``--task-opt
split=selection|report`` keeps only that side of the development-set split
(:func:`preproc.train.validate.split_dev_lines`; default ``all``).
``--task-opt recognizer=rapidocr`` reads with :class:`~preproc.recognize.rapid.RapidOCR`
(PP-OCR recognition) instead of Tesseract.

Each recognition stores ``text``, ``confidence`` (0-100) and ``char_conf`` (one confidence
per character of ``text``), which the multi-candidate modes use: ``select`` (most
confident reading), ``vote`` (:mod:`preproc.vote`: readings aligned character by
character, confidence-weighted votes; as :func:`preproc.read_voted`, it stops at the
readings of :data:`preproc.vote.AGREE_FIRST` when they agree and counts only their
seconds; ``--task-opt vote_early=false`` votes over every candidate) and ``+guard``
(:func:`preproc.hooks.guard_choice`: the enhanced reading only when it is clearly surer
than the crop's and agrees with it in length and character classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from ..datasets import Record, read_manifest
from ..errors import ConfigError
from ..hooks import guard_choice
from ..io import load_image
from ..metrics import corpus_scores
from ..recognize.ocr import TesseractOCR
from ..vote import (
    AGREE_FIRST,
    WEIGHTINGS,
    agree,
    agree_first_order,
    char_alternatives,
    char_confidences,
    vote,
    word_confidences,
)
from ..vote import DEFAULT_CANDIDATES as VOTE_CANDIDATES
from .task import CompareTask, Recognition, area_resize, jpeg_roundtrip, spread


def backend_of(candidate: str) -> str | None:
    """The upscaler behind a candidate name: ``text-sr@2`` -> ``text-sr``, ``default`` -> the
    auto rule's OCR backend here, ``none``/``cleanup`` -> None (not an upscaler)."""
    from ..upscalers import upscaler_names
    from ..upscalers.auto import resolve_auto
    from .variants import base_candidate

    base = base_candidate(candidate)
    if base == "default":
        return resolve_auto("ocr")[0]
    return base if base in upscaler_names() else None


#: ``--task-opt recognizer=...``
RECOGNIZERS = ("tesseract", "rapidocr")


class OcrTask(CompareTask):
    """Tesseract on text-line crops; metrics ``cer`` (lower is better) and ``word_acc``."""

    name = "ocr"
    preset = "ocr"
    metrics = ("cer", "word_acc")
    higher_is_better = {"cer": False, "word_acc": True}
    size_label = "line height (px)"
    default_sizes = (8, 10, 12, 16)
    default_candidates = ("none", "bicubic", "cleanup")
    modes = ("select", "vote")
    #: A bare ``vote`` reads what :func:`preproc.read_voted` reads by default.
    mode_candidates = {"vote": VOTE_CANDIDATES}

    def __init__(self, lang: str = "eng", mode: str | int = "line", engine: str = "auto", split: str = "all",
                 recognizer: str = "tesseract", vote_power: float = 1.0, vote_weighting: str = "char",
                 vote_alt_weight: float = 0.0, guard_margin: float | None = None, vote_early: bool = True):
        from ..train.validate import select_split

        select_split([], split)  # validates the name
        if vote_weighting not in WEIGHTINGS:
            raise ConfigError(f"unknown vote_weighting {vote_weighting!r}; expected one of {', '.join(WEIGHTINGS)}")
        if recognizer not in RECOGNIZERS:
            raise ConfigError(f"unknown OCR recognizer {recognizer!r}; expected one of {', '.join(RECOGNIZERS)}")
        self._split = split
        self._options = {"lang": lang, "mode": mode, "engine": engine}
        if split != "all":  # only then: the fingerprint of whole-set runs stays as it was
            self._options["split"] = split
        if recognizer != "tesseract":
            self._options["recognizer"] = recognizer
        # combine-only settings: not in the fingerprint (recognitions do not depend on them)
        self.vote_power = float(vote_power)
        self.vote_weighting = vote_weighting
        self.vote_alt_weight = float(vote_alt_weight)
        if vote_early not in (True, False):  # --task-opt vote_early=false arrives as a bool (JSON)
            raise ConfigError(f"vote_early has to be true or false, not {vote_early!r}")
        self.vote_early = bool(vote_early)
        self.guard_margin = guard_margin if guard_margin is None else float(guard_margin)
        self.recognizer = recognizer
        if recognizer == "rapidocr":
            from ..recognize.rapid import RapidOCR

            self.ocr: Any = RapidOCR()
        else:
            self.ocr = TesseractOCR(lang, mode, engine)
        # the engine actually used is part of the cache fingerprint (their results differ slightly)
        self._options["engine_used"] = self.ocr.engine

    def combine_options(self) -> dict[str, Any]:
        return {"vote_power": self.vote_power, "vote_weighting": self.vote_weighting,
                "vote_alt_weight": self.vote_alt_weight, "vote_early": self.vote_early,
                "guard_margin": self.guard_margin}

    def load(self, dataset: Path, limit: int | None) -> list[Record]:
        from ..train.validate import select_split

        return spread(select_split(read_manifest(dataset, require=("text",)), self._split), limit)

    def degrade(self, record: Record, size: int, jpeg: int | None) -> Image.Image:
        arr = load_image(record.image)
        h, w = arr.shape[:2]
        return jpeg_roundtrip(area_resize(arr, max(1, round(w * size / h)), size), jpeg)

    def recognize(self, image: Image.Image, record: Record) -> Recognition:
        symbols = getattr(self.ocr, "engine", "") in ("tesserocr", "rapidocr")
        r = self.ocr.read(image, symbols=True) if symbols else self.ocr.read(image)
        out: Recognition = {"text": r.text, "confidence": round(r.confidence, 3)}
        confs = char_confidences(r.text, r.symbols) if r.symbols is not None else None
        if confs is not None:
            out["char_conf"] = [round(c, 1) for c in confs]
            alts = char_alternatives(r.text, r.symbols)
            if alts is not None and any(alts):
                out["char_alts"] = alts
        if r.words and len(r.words) == len(r.text.split()):
            out["word_conf"] = [round(c, 1) for c in word_confidences(r.text, r.words, r.confidence)]
        return out

    def combine(self, mode: str, recognitions: Sequence[Recognition]) -> tuple[int, Recognition]:
        """``vote``: :func:`preproc.vote.vote` over the readings (index -1); ``guard``:
        :func:`preproc.hooks.guard_choice` (enhanced, original); ``select``: the most confident."""
        if mode == "vote":
            text, conf = vote(recognitions, power=self.vote_power, weighting=self.vote_weighting,
                              alt_weight=self.vote_alt_weight)
            return -1, {"text": text, "confidence": conf}
        if mode == "guard":
            return self._guard(recognitions, None)
        return super().combine(mode, recognitions)

    def combine_variant(self, variant: Any, recognitions: Sequence[Recognition]) -> tuple[int, Recognition]:
        """As :meth:`combine`; ``NAME+guard`` uses the guard rule fitted for backend ``NAME``."""
        if variant.mode == "guard":
            return self._guard(recognitions, backend_of(variant.candidates[0]))
        if variant.mode == "vote":
            # as read_voted: the AGREE_FIRST candidates first; when they agree, the rest are not read
            first, _ = agree_first_order(variant.candidates, AGREE_FIRST if self.vote_early else ())
            if first and agree([recognitions[i] for i in first]):
                _, combined = self.combine("vote", [recognitions[i] for i in first])
                return -1, {**combined, "candidates_used": first}
        return self.combine(variant.mode, recognitions)

    def _guard(self, recognitions: Sequence[Recognition], backend: str | None) -> tuple[int, Recognition]:
        enhanced, original = recognitions
        keep, _ = guard_choice(enhanced, original, self.engine_key, backend, margin=self.guard_margin)
        return (0, enhanced) if keep else (1, original)

    @property
    def engine_key(self) -> str:
        """The recognizer whose fitted guard margin applies (``tesseract`` or ``rapidocr``)."""
        return "rapidocr" if self.recognizer == "rapidocr" else "tesseract"

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

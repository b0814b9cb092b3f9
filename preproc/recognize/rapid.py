"""RapidOCR (PP-OCR recognition on onnxruntime) behind the same protocol as :class:`TesseractOCR`.

``RapidOCR()(image) -> OcrResult``: recognition only (no text detection, no angle
classifier), for crops that hold one text line, as compare's OCR task and the hooks
pass them. The model is the PP-OCR recognition net that ships in the ``rapidocr`` wheel
(nothing is downloaded). Confidences are put on Tesseract's 0-100 scale (the engine's
0-1 score times 100), so the hooks' margins read the same way; ``symbols=True`` gives
per-character confidences (the CTC peak of each character, also times 100) for
:mod:`preproc.vote`.

Install: ``pip install rapidocr onnxruntime`` (or ``preproc[rapidocr]``). Without them the
constructor raises :class:`~preproc.errors.RecognizerUnavailableError` naming the package.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError, RecognizerUnavailableError
from ..io import ImageLike, load_image, to_pil
from .ocr import OcrResult, Symbol, Word

logger = logging.getLogger(__name__)

INSTALL = "pip install rapidocr onnxruntime (or pip install 'preproc[rapidocr]')"


def _import_rapidocr() -> Any:
    """The ``rapidocr.RapidOCR`` class, or a RecognizerUnavailableError naming what to install."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise RecognizerUnavailableError(
            f"the rapidocr recognizer needs the onnxruntime package ({e}); install it: {INSTALL}"
        ) from None
    try:
        from rapidocr import RapidOCR as _Engine
    except ImportError as e:
        raise RecognizerUnavailableError(
            f"the rapidocr recognizer needs the rapidocr package ({e}); install it: {INSTALL}"
        ) from None
    return _Engine


class RapidOCR:
    """PP-OCR line recognition: ``RapidOCR()(image) -> OcrResult`` (text, confidence 0-100).

    ``threads``: onnxruntime intra-op threads (1 keeps it beside other work on a small
    machine; -1 lets onnxruntime choose). ``lang``: RapidOCR's recognition language type
    (``"ch"``, the default, is its multilingual model that reads Latin text too).
    ``params``: extra RapidOCR settings (``{"Rec.rec_batch_num": 1}``...). Calls are
    serialised (safe to share between threads).
    """

    engine = "rapidocr"

    def __init__(self, threads: int = 1, lang: str | None = None, params: dict[str, Any] | None = None):
        engine_cls = _import_rapidocr()
        if not isinstance(threads, int) or (threads < 1 and threads != -1):
            raise ConfigError(f"threads has to be a positive int or -1 but is {threads!r}")
        cfg: dict[str, Any] = {
            "Global.use_det": False,
            "Global.use_cls": False,
            "Global.use_rec": True,
            "Global.log_level": "warning",
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1 if threads != -1 else -1,
        }
        if lang is not None:
            cfg["Rec.lang_type"] = lang
        cfg.update(params or {})
        try:
            self._engine = engine_cls(params=cfg)
        except Exception as e:  # noqa: BLE001 - any failure to load the bundled model
            raise RecognizerUnavailableError(f"rapidocr could not load its recognition model ({type(e).__name__}: {e}); "
                                             f"reinstall it: {INSTALL}") from e
        self.lang = lang or "ch"
        self.threads = threads
        self._lock = threading.Lock()

    def read(self, image: ImageLike, symbols: bool = False) -> OcrResult:
        """Recognise the one text line in ``image``; ``symbols=True`` adds per-character confidences."""
        pil = image if isinstance(image, Image.Image) else to_pil(load_image(image))
        bgr = np.ascontiguousarray(np.asarray(pil.convert("RGB"))[:, :, ::-1])
        with self._lock:
            out = self._engine(bgr, return_word_box=symbols)
        txts = tuple(getattr(out, "txts", None) or ())
        scores = tuple(getattr(out, "scores", None) or ())
        text = " ".join(" ".join(t.split()) for t in txts if t and t.strip())
        conf = 100.0 * float(np.mean(scores)) if scores and text else 0.0
        w, h = pil.size
        words = [Word(t, round(conf, 2), (0, 0, w, h)) for t in text.split()]
        syms = _symbols(out, txts[0] if len(txts) == 1 else text) if symbols else None
        return OcrResult(text, round(conf, 2), words, "rapidocr", syms)

    __call__ = read

    def close(self) -> None:
        """Drop the engine (the object cannot read afterwards)."""
        with self._lock:
            self._engine = None

    def __repr__(self) -> str:
        return f"RapidOCR(lang={self.lang!r}, threads={self.threads})"


def _symbols(out: Any, text: str) -> list[Symbol]:
    """Per-character confidences from RapidOCR's word results (one conf per character of the line)."""
    res: list[Symbol] = []
    infos = getattr(out, "word_results", None) or ()
    confs: list[float] = []
    for info in infos:
        confs.extend(float(c) for c in (getattr(info, "confs", None) or ()))
    word = 0
    prev_space = False
    # confs run over the characters of the raw line text, spaces included (3.10); when the
    # counts do not match, fall back to the line score for every character
    line_conf = float(np.mean(getattr(out, "scores", None) or [0.0]))
    per_char = confs if len(confs) == len(text) else None
    if per_char is None and len(confs) == sum(not ch.isspace() for ch in text):
        it = iter(confs)
        per_char = [0.0 if ch.isspace() else next(it) for ch in text]
    for i, ch in enumerate(text):
        if ch == " ":
            prev_space = True
            continue
        if prev_space and res:
            word += 1
        prev_space = False
        c = per_char[i] if per_char is not None else line_conf
        res.append(Symbol(ch, round(100.0 * c, 2), word, ()))
    return res

"""Tesseract OCR: text, mean word confidence and word boxes of a crop.

Two engines, same results (the same ``eng.traineddata``):

* ``"pytesseract"``: the ``tesseract`` command through pytesseract, what most users
  already run; one process per call (~90 ms even for a blank line here);
* ``"tesserocr"``: libtesseract in-process through the ``tesserocr`` wheel, about 6x
  less time per line (``../shared/FACTS.md``); used by ``engine="auto"`` when it is
  installed and the language data is found.

``mode="line"`` is Tesseract's page segmentation mode 7 (one text line), ``"block"``
mode 6 (one uniform block of text); an ``int`` is passed as ``--psm`` as it is.
Confidences are Tesseract's, 0-100 per word; ``OcrResult.confidence`` is their mean
(0 when nothing was read). The text has runs of spaces collapsed and empty lines dropped.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import ConfigError, RecognizerUnavailableError
from ..io import ImageLike, load_image, to_pil

logger = logging.getLogger(__name__)

MODES = {"line": 7, "block": 6, "word": 8, "auto": 3}
ENGINES = ("auto", "tesserocr", "pytesseract")
INSTALL_TESSERACT = (
    "install Tesseract: Debian/Ubuntu `sudo apt-get install tesseract-ocr tesseract-ocr-eng`, "
    "macOS `brew install tesseract`, Windows: the UB Mannheim installer"
)
#: Where distributions put tessdata (searched after $TESSDATA_PREFIX and `tesseract --list-langs`).
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
    "/opt/homebrew/share/tessdata",
)


@dataclass(frozen=True)
class Word:
    """One recognised word: text, confidence 0-100, box ``(x0, y0, x1, y1)`` in pixels of the input."""

    text: str
    confidence: float
    box: tuple[int, int, int, int]


@dataclass(frozen=True)
class Symbol:
    """One recognised character: text, confidence 0-100, word index, and the engine's alternatives.

    ``alternatives``: ``((text, confidence), ...)`` best first (Tesseract's LSTM choices,
    ``lstm_choice_mode=2``); may be empty. Spaces are not symbols: a new ``word`` index
    means a space before it.
    """

    text: str
    confidence: float
    word: int
    alternatives: tuple[tuple[str, float], ...] = ()


@dataclass
class OcrResult:
    """Text (lines joined by ``\\n``), mean word confidence 0-100, the words, and the engine used.

    ``symbols`` holds per-character confidences when the reader was asked for them
    (``read(image, symbols=True)``), else None.
    """

    text: str
    confidence: float
    words: list[Word] = field(default_factory=list)
    engine: str = ""
    symbols: list[Symbol] | None = None

    def to_dict(self, words: bool = True) -> dict[str, Any]:
        """JSON-able form (``words=False`` leaves the word and symbol lists out)."""
        d = asdict(self)
        if not words:
            d.pop("words")
            d.pop("symbols")
        return d


def _psm(mode: str | int) -> int:
    if isinstance(mode, int) and not isinstance(mode, bool):
        if not 0 <= mode <= 13:
            raise ConfigError(f"Tesseract page segmentation mode has to be in [0, 13] but is {mode}")
        return mode
    try:
        return MODES[mode]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown OCR mode {mode!r}; expected one of {', '.join(MODES)} or a --psm number") from None


def _lang_package(lang: str) -> str:
    return " ".join(f"tesseract-ocr-{code.lower().replace('_', '-')}" for code in lang.split("+"))


def tesseract_program_output(*args: str) -> str:
    """What the ``tesseract`` program prints (stdout and stderr) for ``args``; "" when it is missing or fails."""
    exe = shutil.which("tesseract")
    if not exe:
        return ""
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout + out.stderr


def find_tessdata(lang: str = "eng") -> Path | None:
    """A tessdata folder holding ``<lang>.traineddata`` for every language of ``lang`` (``"eng+deu"``), or None."""
    candidates: list[Path] = []
    if os.environ.get("TESSDATA_PREFIX"):
        p = Path(os.environ["TESSDATA_PREFIX"])
        candidates += [p, p / "tessdata"]
    m = re.search(r'"([^"]+)"', tesseract_program_output("--list-langs"))
    if m:
        candidates.append(Path(m.group(1)))
    candidates += [Path(d) for d in TESSDATA_DIRS]
    for d in candidates:
        if all((d / f"{code}.traineddata").is_file() for code in lang.split("+")):
            return d
    return None


def _tesserocr_symbols(it: Any) -> list[Symbol]:
    """Every symbol of a recognised page: text, confidence, word index, LSTM alternatives."""
    from tesserocr import RIL, iterate_level

    out: list[Symbol] = []
    word = -1
    if it is None:
        return out
    for s in iterate_level(it, RIL.SYMBOL):
        try:
            text = s.GetUTF8Text(RIL.SYMBOL) or ""
        except RuntimeError:
            continue
        if not text.strip():
            continue
        if word < 0 or s.IsAtBeginningOf(RIL.WORD):
            word += 1
        alts: list[tuple[str, float]] = []
        try:
            for c in s.GetChoiceIterator():
                t = c.GetUTF8Text()
                if t:
                    alts.append((t, round(float(c.Confidence()), 2)))
        except (RuntimeError, AttributeError):
            alts = []
        out.append(Symbol(text, round(float(s.Confidence(RIL.SYMBOL)), 2), word, tuple(alts)))
    return out


def _join_lines(lines: list[list[str]]) -> str:
    return "\n".join(" ".join(ws) for ws in lines if ws)


def _mean(confs: list[float]) -> float:
    return float(sum(confs) / len(confs)) if confs else 0.0


class TesseractOCR:
    """Tesseract behind one call: ``TesseractOCR(mode="line")(image) -> OcrResult``.

    ``lang``: Tesseract language code(s), ``"eng"`` or ``"eng+deu"``. ``mode``:
    ``line``, ``block``, ``word``, ``auto`` or a ``--psm`` number. ``engine``: ``auto``
    (tesserocr when installed, else pytesseract), ``tesserocr`` or ``pytesseract``.
    ``dpi``: the resolution Tesseract assumes (crops carry none; 70 is its own fallback).
    ``config``: extra ``-c``-style settings for pytesseract, e.g. ``"-c tessedit_char_whitelist=0123456789"``.
    Raises :class:`~preproc.errors.RecognizerUnavailableError` naming the package to
    install when Tesseract or the language data is missing. Safe to share between threads
    (calls are serialised).
    """

    def __init__(
        self,
        lang: str = "eng",
        mode: str | int = "line",
        engine: str = "auto",
        *,
        tessdata: str | os.PathLike | None = None,
        dpi: int = 70,
        config: str = "",
    ):
        if engine not in ENGINES:
            raise ConfigError(f"unknown OCR engine {engine!r}; expected one of {', '.join(ENGINES)}")
        self.lang = lang
        self.psm = _psm(mode)
        self.dpi = int(dpi)
        self.config = config
        self._lock = threading.Lock()
        self._api = None
        self._choices = False
        if engine == "auto" and config:
            engine = "pytesseract"  # extra command-line settings are pytesseract's
        if engine in ("auto", "tesserocr"):
            try:
                import tesserocr  # noqa: F401
            except ImportError:
                if engine == "tesserocr":
                    raise RecognizerUnavailableError(
                        "engine='tesserocr' needs the tesserocr package: pip install tesserocr "
                        "(or preproc[fast-ocr]); engine='pytesseract' works without it"
                    ) from None
                engine = "pytesseract"
        if engine in ("auto", "tesserocr"):
            self._init_tesserocr(tessdata, required=engine == "tesserocr")
            engine = "tesserocr" if self._api is not None else "pytesseract"
        if engine == "pytesseract":
            self._check_pytesseract()
        self.engine = engine

    # --- set-up ------------------------------------------------------------------
    def _init_tesserocr(self, tessdata: str | os.PathLike | None, required: bool) -> None:
        from tesserocr import PyTessBaseAPI

        path = Path(tessdata) if tessdata is not None else find_tessdata(self.lang)
        if path is None:
            msg = (f"no tessdata folder with {self.lang}.traineddata found (looked in $TESSDATA_PREFIX, "
                   f"`tesseract --list-langs`, {', '.join(TESSDATA_DIRS)}); install {_lang_package(self.lang)} "
                   "or pass tessdata=")
            if required:
                raise RecognizerUnavailableError(msg)
            logger.info("tesserocr not used: %s", msg)
            return
        try:
            api = PyTessBaseAPI(path=str(path), lang=self.lang, psm=self.psm)
        except RuntimeError as e:
            raise RecognizerUnavailableError(
                f"Tesseract could not load language {self.lang!r} from {str(path)!r} ({e}); "
                f"install {_lang_package(self.lang)} or pass tessdata= a folder with {self.lang}.traineddata"
            ) from e
        api.SetVariable("user_defined_dpi", str(self.dpi))
        self._api = api

    def _check_pytesseract(self) -> None:
        import pytesseract

        try:
            langs = set(pytesseract.get_languages(config=""))
        except pytesseract.TesseractNotFoundError:
            raise RecognizerUnavailableError(
                f"the tesseract program was not found (pytesseract looked for "
                f"{pytesseract.pytesseract.tesseract_cmd!r}); {INSTALL_TESSERACT}"
            ) from None
        missing = [c for c in self.lang.split("+") if c not in langs]
        if missing:
            raise RecognizerUnavailableError(
                f"Tesseract has no language data for {', '.join(missing)} (it has {', '.join(sorted(langs)) or 'none'}); "
                f"install {_lang_package('+'.join(missing))}"
            )

    # --- recognition ---------------------------------------------------------------
    def read(self, image: ImageLike, symbols: bool = False) -> OcrResult:
        """Recognise ``image`` (anything :func:`preproc.load_image` takes; PIL L/RGB pass through).

        ``symbols=True`` also fills ``OcrResult.symbols`` (per-character confidences and
        LSTM alternatives; tesserocr engine only, it costs well under a millisecond a
        line); text and word confidences are the same either way.
        """
        passthrough = isinstance(image, Image.Image) and image.mode in ("L", "RGB") and min(image.size) > 0
        pil = image if passthrough else to_pil(load_image(image))  # a 0-sized image: load_image says so
        with self._lock:
            if self._api is not None:
                return self._read_tesserocr(pil, symbols)
            if symbols:
                raise ConfigError("per-symbol confidences need engine='tesserocr' (pip install tesserocr); "
                                  f"this reader uses {self.engine!r}")
            return self._read_pytesseract(pil)

    __call__ = read

    def _read_tesserocr(self, pil: Image.Image, symbols: bool = False) -> OcrResult:
        from tesserocr import RIL, iterate_level

        api = self._api
        # lstm_choice_mode 2 keeps the LSTM's alternatives per symbol; it does not change the
        # best path (same text, same confidences), so it is switched only for symbol reads
        if symbols != self._choices:
            api.SetVariable("lstm_choice_mode", "2" if symbols else "0")
            self._choices = symbols
        api.SetImage(pil)
        api.Recognize()
        words: list[Word] = []
        lines: list[list[str]] = []
        syms: list[Symbol] | None = [] if symbols else None
        it = api.GetIterator()
        if it is not None:
            for w in iterate_level(it, RIL.WORD):
                try:
                    text = (w.GetUTF8Text(RIL.WORD) or "").strip()
                except RuntimeError:  # tesserocr raises on an empty word
                    continue
                if not text:
                    continue
                if not lines or w.IsAtBeginningOf(RIL.TEXTLINE):
                    lines.append([])
                lines[-1].append(text)
                box = w.BoundingBox(RIL.WORD) or (0, 0, 0, 0)
                words.append(Word(text, float(w.Confidence(RIL.WORD)), tuple(int(v) for v in box)))
            if syms is not None:
                syms.extend(_tesserocr_symbols(api.GetIterator()))
        api.Clear()
        return OcrResult(_join_lines(lines), _mean([w.confidence for w in words]), words, "tesserocr", syms)

    def _read_pytesseract(self, pil: Image.Image) -> OcrResult:
        import pytesseract

        config = f"--psm {self.psm} --dpi {self.dpi} {self.config}".strip()
        try:
            d = pytesseract.image_to_data(pil, lang=self.lang, config=config, output_type=pytesseract.Output.DICT)
        except pytesseract.TesseractNotFoundError:
            raise RecognizerUnavailableError(f"the tesseract program was not found; {INSTALL_TESSERACT}") from None
        words: list[Word] = []
        lines: list[list[str]] = []
        last = None
        for i, raw in enumerate(d["text"]):
            text = (raw or "").strip()
            conf = float(d["conf"][i])
            if not text or conf < 0:
                continue
            key = (d["block_num"][i], d["par_num"][i], d["line_num"][i])
            if key != last:
                lines.append([])
                last = key
            lines[-1].append(text)
            x, y, w, h = (int(d[k][i]) for k in ("left", "top", "width", "height"))
            words.append(Word(text, conf, (x, y, x + w, y + h)))
        return OcrResult(_join_lines(lines), _mean([w.confidence for w in words]), words, "pytesseract")

    def close(self) -> None:
        """Free libtesseract's memory (tesserocr engine); the object cannot read afterwards."""
        with self._lock:
            if self._api is not None:
                self._api.End()
                self._api = None

    def __repr__(self) -> str:
        return f"TesseractOCR(lang={self.lang!r}, psm={self.psm}, engine={self.engine!r})"


_DEFAULT: dict[tuple, TesseractOCR] = {}
_DEFAULT_LOCK = threading.Lock()


def ocr(image: ImageLike, lang: str = "eng", mode: str | int = "line", engine: str = "auto") -> OcrResult:
    """Recognise ``image`` with a shared :class:`TesseractOCR` of these settings (made on first use)."""
    key = (lang, mode, engine)
    with _DEFAULT_LOCK:
        rec = _DEFAULT.get(key)
        if rec is None:
            rec = _DEFAULT[key] = TesseractOCR(lang, mode, engine)
    return rec.read(image)

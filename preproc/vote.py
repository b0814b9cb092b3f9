"""Vote across readings: several renderings of one line, read, aligned character by character.

No single enhancement wins every line; :func:`vote` combines the readings of several
(``text-sr`` at the gate's scale and at x2, bicubic, the crop as it is...) the way ROVER
does for speech (Fiscus 1997) and Lund et al. (2013) for OCR of several binarisations:

1. each reading is a string of characters (spaces included) with a weight per character:
   the recognizer's per-symbol confidence (Tesseract's ``RIL.SYMBOL`` confidence, RapidOCR's
   CTC peak; :func:`reading_from`), ``(conf / 100) ** power``;
2. the readings are aligned progressively into a *confusion network* (a list of slots,
   each a tally of votes per character, ``""`` = epsilon, i.e. "no character here"): the
   most confident reading is the backbone; each further reading is aligned to the network
   by edit distance where putting character ``c`` into a slot costs ``1 - share of c in
   the slot`` (so agreeing with the majority is free), leaving a slot out costs ``1 -
   share of epsilon`` and a new slot costs 1. A reading that leaves a slot out votes
   epsilon there with its mean weight; a new slot gets epsilon votes from every earlier
   reading;
3. each slot outputs the character with the most votes (epsilon: nothing); ties go to the
   earlier (more confident) reading.

Library entry point: :func:`read_voted` (enhance a crop several ways, read each, vote);
``preproc compare --variants vote:text-sr/text-sr@2/bicubic/none`` measures it. Both read
the candidates of :data:`AGREE_FIRST` first and stop when their readings agree
(:func:`agree`): most lines then cost one enhancement and three reads instead of three
and eight.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .errors import ConfigError
from .io import ImageLike, load_image, to_pil

logger = logging.getLogger(__name__)

EPS = ""
#: What :func:`read_voted` reads when no candidates are given: the OCR default (text-sr at
#: the gate's scale; text-sr-small for crops at most 11 px tall), the previous text-sr model
#: at the gate's scale (a second opinion: the same round trained 1,500 steps instead of
#: 6,000), text-sr at x2, the crop as it is, and two views of each of the first two models'
#: images (``~thick``: strokes a pixel bolder; ``~x1.4``: resized by 1.4; the enhancement is
#: computed once, each view costs a read). Picked among candidate sets on the 291 selection
#: lines (lowest mean CER at 8-24 px, lossless and JPEG 75; docs/results.md, "Vote with a
#: second model", "Round five" and "Round eight"); the set fitted on rendered lines had
#: bicubic in place of the second model, the set of round three text-sr-v2.
DEFAULT_CANDIDATES: tuple[str, ...] = ("default", "text-sr-v3", "text-sr@2", "none",
                                        "default~thick", "text-sr-v3~thick", "default~x1.4", "text-sr-v3~x1.4")


#: Read first by :func:`read_voted` (and a compare ``vote``): three renderings of the OCR
#: default's one enhancement (as it is, bolder, x1.4). When their readings spell the same
#: text, the vote stops there (:func:`agree`), saving two enhancements and five reads. Picked
#: on the selection lines among five such rules (``benchmarks/vote_early.py``): it stops on
#: 14-68 % of the lines at 8-24 px, and where it stops the eight readings would have voted
#: the same text on all but 0-6 lines per setting (CER 0.98-1.00x of the full vote's; the
#: cost 0.59-0.91x). docs/results.md, "Round nine". ``()``: always read everything.
AGREE_FIRST: tuple[str, ...] = ("default", "default~x1.4", "default~thick")


@dataclass(frozen=True)
class Reading:
    """One reading to vote with: characters (spaces included) and a weight per character."""

    chars: tuple[str, ...]
    weights: tuple[float, ...]
    name: str = ""
    #: Per character: other characters the recognizer considered, with their vote weights
    #: (Tesseract's LSTM choices); empty tuple: none.
    alternatives: tuple[tuple[tuple[str, float], ...], ...] = ()

    def __post_init__(self) -> None:
        if len(self.chars) != len(self.weights):
            raise ConfigError(f"reading {self.name!r}: {len(self.chars)} characters but {len(self.weights)} weights")
        if self.alternatives and len(self.alternatives) != len(self.chars):
            raise ConfigError(f"reading {self.name!r}: {len(self.chars)} characters but "
                              f"{len(self.alternatives)} alternative lists")

    def alts(self, j: int) -> tuple[tuple[str, float], ...]:
        return self.alternatives[j] if self.alternatives else ()

    @property
    def text(self) -> str:
        return "".join(self.chars)

    @property
    def mean_weight(self) -> float:
        return sum(self.weights) / len(self.weights) if self.weights else 0.0


@dataclass
class VoteResult:
    """The voted text, its confidence 0-100 (mean vote share of the chosen characters), the readings read."""

    text: str
    confidence: float
    readings: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    #: True when the first readings agreed and the rest were not read (:data:`AGREE_FIRST`).
    early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "confidence": self.confidence, "readings": self.readings, "seconds": self.seconds,
                "early": self.early}


def _weight(conf: float, power: float) -> float:
    return max(0.0, min(1.0, float(conf) / 100.0)) ** power


WEIGHTINGS = ("char", "word", "min", "line")


def reading_from(result: Any, name: str = "", power: float = 1.0, weighting: str = "char",
                 alt_weight: float = 0.0) -> Reading:
    """A :class:`Reading` from a recognition: an ``OcrResult`` or a compare recognition dict.

    ``weighting``: which confidence weighs a character: ``char`` (its own, the default),
    ``word`` (its word's; Tesseract's word confidence is about its weakest character's),
    ``min`` (the lower of the two) or ``line`` (the line's). Per-character confidences
    come from ``char_conf`` (a list aligned with ``text``, what compare's OCR task stores)
    or ``symbols`` (``OcrResult.symbols``); word confidences from ``word_conf`` (aligned
    likewise) or ``words``; whatever is missing falls back to the word's, then the
    line's ``confidence``. Confidences are 0-100; weight = ``(conf / 100) ** power``.
    ``alt_weight > 0`` adds the recognizer's alternatives per character (``char_alts``, or
    the symbols' ``alternatives``) as votes of ``alt_weight * (conf / 100) ** power``.
    """
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown vote weighting {weighting!r}; expected one of {', '.join(WEIGHTINGS)}")
    get = result.get if isinstance(result, dict) else lambda k, d=None: getattr(result, k, d)
    text = str(get("text", "") or "")
    line_conf = float(get("confidence", 0.0) or 0.0)
    line = [line_conf] * len(text)
    word: list[float] | None = None
    wc = get("word_conf", None)
    if wc is not None and len(wc) == len(text):
        word = [float(c) for c in wc]
    elif get("words", None):
        word = _word_confidences(text, get("words"), line_conf)
    char: list[float] | None = None
    cc = get("char_conf", None)
    if cc is not None and len(cc) == len(text):
        char = [float(c) for c in cc]
    elif get("symbols", None):
        char = char_confidences(text, get("symbols"))
    word = word or line
    char = char or word
    confs = {"char": char, "word": word, "line": line,
             "min": [min(a, b) for a, b in zip(char, word, strict=True)]}[weighting]
    alts: tuple = ()
    if alt_weight > 0:
        ca = get("char_alts", None)
        if ca is None and get("symbols", None):
            ca = char_alternatives(text, get("symbols"))
        if ca is not None and len(ca) == len(text):
            alts = tuple(tuple((str(a), alt_weight * _weight(float(c), power)) for a, c in lst) for lst in ca)
    return Reading(tuple(text), tuple(_weight(c, power) for c in confs), name, alts)


def char_alternatives(text: str, symbols: Sequence[Any], limit: int = 3) -> list[list[list[Any]]] | None:
    """Per character of ``text``: up to ``limit`` other single characters the recognizer
    considered, ``[[char, conf], ...]`` (spaces and multi-character symbols: ``[]``); None
    when the symbols do not spell ``text``."""
    flat: list[tuple[str, list[list[Any]]]] = []
    for s in symbols:
        t = str(_sym(s, "text", 0))
        raw = (s.get("alternatives") if isinstance(s, dict) else getattr(s, "alternatives", ())) or ()
        alts = [[a, round(float(c), 1)] for a, c in raw if a != t and len(a) == 1 and float(c) > 0][:limit]
        for k, ch in enumerate(t):
            flat.append((ch, alts if len(t) == 1 and k == 0 else []))
    out: list[list[list[Any]]] = []
    k = 0
    for ch in text:
        if ch.isspace():
            out.append([])
            continue
        if k >= len(flat) or flat[k][0] != ch:
            return None
        out.append(flat[k][1])
        k += 1
    return out if k == len(flat) else None


def _sym(s: Any, key: str, i: int) -> Any:
    return s.get(key) if isinstance(s, dict) else (getattr(s, key) if hasattr(s, key) else s[i])


def char_confidences(text: str, symbols: Sequence[Any]) -> list[float] | None:
    """Confidences aligned with ``text``: symbols' in order; a space gets its neighbours' minimum.

    ``symbols``: :class:`~preproc.recognize.ocr.Symbol` objects (or dicts / ``(text, conf,
    ...)`` tuples). None when the symbols do not spell ``text`` (e.g. a multi-line result
    joined differently).
    """
    flat: list[tuple[str, float]] = []
    for s in symbols:
        t, c = str(_sym(s, "text", 0)), float(_sym(s, "confidence", 1))
        flat.extend((ch, c) for ch in t)
    out: list[float | None] = []
    k = 0
    for ch in text:
        if ch.isspace():
            out.append(None)
            continue
        if k >= len(flat) or flat[k][0] != ch:
            return None
        out.append(flat[k][1])
        k += 1
    if k != len(flat):
        return None
    res: list[float] = []
    for i, c in enumerate(out):
        if c is not None:
            res.append(c)
            continue
        left = next((x for x in reversed(out[:i]) if x is not None), None)
        right = next((x for x in out[i + 1:] if x is not None), None)
        res.append(min(v for v in (left, right, 100.0) if v is not None))
    return res


def word_confidences(text: str, words: Sequence[Any], line_conf: float = 0.0) -> list[float]:
    """Per character of ``text``: the confidence of the word it is in (spaces: the line's)."""
    return _word_confidences(text, words, line_conf)


def _word_confidences(text: str, words: Sequence[Any], line_conf: float) -> list[float]:
    confs: list[float] = []
    wi = 0
    for i, ch in enumerate(text):
        if ch.isspace():
            confs.append(line_conf)
            if i + 1 < len(text) and not text[i + 1].isspace():
                wi += 1
            continue
        w = words[wi] if wi < len(words) else None
        c = (w.get("confidence") if isinstance(w, dict) else getattr(w, "confidence", None)) if w is not None else None
        confs.append(float(c) if c is not None else line_conf)
    return confs


# --- the alignment ---------------------------------------------------------------------
Slot = dict[str, float]


def _share(slot: Slot, ch: str) -> float:
    tot = sum(slot.values())
    return slot.get(ch, 0.0) / tot if tot > 0 else 0.0


def align(network: list[Slot], reading: Reading, prior_weight: float) -> list[Slot]:
    """``network`` with ``reading`` aligned into it (a new list; see the module docstring).

    ``prior_weight``: the summed mean weights of the readings already in the network (the
    epsilon votes a new slot gets).
    """
    n, m = len(network), len(reading.chars)
    inf = float("inf")
    # cost[i][j]: best cost of aligning slots[:i] with chars[:j]; back: 0 match, 1 skip slot, 2 insert
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back = [[0] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    skip = [1.0 - _share(s, EPS) for s in network]
    chars = reading.chars
    # first row: only insertions
    for j in range(1, m + 1):
        cost[0][j], back[0][j] = float(j), 2
    for i in range(1, n + 1):
        row, prev = cost[i], cost[i - 1]
        brow = back[i]
        slot = network[i - 1]
        tot = sum(slot.values())
        get = slot.get
        sk = skip[i - 1]
        row[0], brow[0] = prev[0] + sk, 1
        for j in range(1, m + 1):
            # match / substitute: free when the slot agrees fully with the character
            best = prev[j - 1] + (1.0 - get(chars[j - 1], 0.0) / tot if tot > 0 else 1.0)
            how = 0
            c = prev[j] + sk
            if c < best:
                best, how = c, 1
            c = row[j - 1] + 1.0
            if c < best:
                best, how = c, 2
            row[j], brow[j] = best, how
    # trace back
    ops: list[tuple[int, int, int]] = []
    i, j = n, m
    while i or j:
        how = back[i][j]
        ops.append((how, i - 1, j - 1))
        if how == 0:
            i, j = i - 1, j - 1
        elif how == 1:
            i -= 1
        else:
            j -= 1
    ops.reverse()
    gap = reading.mean_weight
    out: list[Slot] = []
    for how, si, cj in ops:
        if how == 0:
            slot = dict(network[si])
            slot[reading.chars[cj]] = slot.get(reading.chars[cj], 0.0) + reading.weights[cj]
            for a, w in reading.alts(cj):
                slot[a] = slot.get(a, 0.0) + w
        elif how == 1:
            slot = dict(network[si])
            slot[EPS] = slot.get(EPS, 0.0) + gap
        else:
            slot = {EPS: prior_weight, reading.chars[cj]: reading.weights[cj]} if prior_weight > 0 else \
                {reading.chars[cj]: reading.weights[cj]}
            for a, w in reading.alts(cj):
                slot[a] = slot.get(a, 0.0) + w
        out.append(slot)
    return out


def confusion_network(readings: Sequence[Reading]) -> list[Slot]:
    """The readings aligned into one network, the most confident (highest mean weight) first."""
    order = sorted(range(len(readings)), key=lambda k: -readings[k].mean_weight)
    network: list[Slot] = []
    prior = 0.0
    for k in order:
        network = align(network, readings[k], prior)
        prior += readings[k].mean_weight
    return network


def vote_readings(readings: Sequence[Reading]) -> tuple[str, float]:
    """``(voted text, confidence 0-100)`` of aligned ``readings`` (see the module docstring).

    The confidence is the mean vote share of the characters output (100: every reading
    agrees on every character); 0 for an empty result.
    """
    if not readings:
        raise ConfigError("vote needs at least one reading")
    network = confusion_network(readings)
    chars: list[str] = []
    shares: list[float] = []
    for slot in network:
        # dicts keep insertion order: on a tie the earlier (more confident) reading's choice wins
        best = max(slot, key=lambda c: (slot[c], -list(slot).index(c)))
        if best != EPS:
            chars.append(best)
            shares.append(_share(slot, best))
    text = " ".join("".join(chars).split())
    return text, round(100.0 * sum(shares) / len(shares), 2) if shares else 0.0


def _text_of(result: Any) -> str:
    text = result.get("text", "") if isinstance(result, dict) else getattr(result, "text", "")
    return " ".join(str(text or "").split())


def agree(results: Sequence[Any]) -> bool:
    """True when at least two recognitions spell the same non-empty text (whitespace runs
    count as one space): the early stop of :func:`read_voted` (:data:`AGREE_FIRST`)."""
    texts = {_text_of(r) for r in results}
    return len(results) >= 2 and len(texts) == 1 and bool(next(iter(texts)))


def agree_first_order(candidates: Sequence[str], agree_first: Sequence[str] | None) -> tuple[list[int], list[int]]:
    """``(first, rest)``: indices into ``candidates`` of the ones read first (those in
    ``agree_first``, in ``candidates`` order; empty unless at least two) and of the others."""
    wanted = set(agree_first or ())
    first = [i for i, c in enumerate(candidates) if c in wanted]
    if len(first) < 2:
        first = []
    return first, [i for i in range(len(candidates)) if i not in first]


def vote(results: Sequence[Any], power: float = 1.0, names: Sequence[str] | None = None,
         weighting: str = "char", alt_weight: float = 0.0) -> tuple[str, float]:
    """Vote over recognitions (``OcrResult`` objects or compare dicts); see :func:`vote_readings`
    and :func:`reading_from` for ``power``, ``weighting`` and ``alt_weight``."""
    names = list(names) if names is not None else [str(i) for i in range(len(results))]
    return vote_readings([reading_from(r, n, power, weighting, alt_weight)
                          for r, n in zip(results, names, strict=True)])


# --- the library entry point ---------------------------------------------------------------
def read_voted(
    crop: ImageLike,
    candidates: Sequence[str] = DEFAULT_CANDIDATES,
    *,
    recognizer: Callable[..., Any] | None = None,
    power: float = 1.0,
    device: Any = None,
    context: Any = None,
    agree_first: Sequence[str] | None = AGREE_FIRST,
) -> VoteResult:
    """Read ``crop`` as several renderings and vote: the OCR text of a line crop.

    ``candidates``: compare candidate names (:mod:`preproc.compare.variants`): ``default``
    (what ``enhance(crop, task="ocr")`` returns), ``none``, any upscaler name such as
    ``text-sr`` or ``bicubic`` (at the OCR gate's scale), ``NAME@S`` (at scale ``S``),
    ``NAME~VIEW`` (``NAME``'s image redrawn: ``thick``, ``x1.4``; enhanced once for all its views),
    ``cleanup``; one that cannot run here (no weights) is skipped with a warning.
    ``recognizer``: called as ``recognizer(image, symbols=True)`` when it
    takes that keyword (:class:`~preproc.recognize.TesseractOCR`,
    :class:`~preproc.recognize.rapid.RapidOCR`), else ``recognizer(image)``; default a shared
    single-line Tesseract. ``context``: a :class:`~preproc.compare.CandidateContext` to reuse
    loaded models across calls (one is kept per device otherwise).

    ``agree_first``: the candidates read first (those of them in ``candidates``, if at least
    two); when their readings spell the same text (:func:`agree`) that text is the result
    and the other candidates are not computed (``VoteResult.early``). Otherwise every
    candidate is read and the vote is exactly the vote over all of them. Default
    :data:`AGREE_FIRST`; ``()`` reads every candidate.

    Example::

        r = preproc.read_voted(crop)     # DEFAULT_CANDIDATES: 8 readings of 3 enhancements, or 3 of 1
        r.text, r.confidence, r.readings # readings: name, text, confidence, seconds (the ones read)
        r.early                          # True when the first three agreed
    """
    from .compare.variants import candidate_fn, candidate_unavailable

    if not candidates:
        raise ConfigError("read_voted needs at least one candidate, e.g. ('default', 'none')")
    usable = []
    for name in candidates:
        why = candidate_unavailable(name)
        if why:
            logger.warning("read_voted: candidate %s skipped: %s", name, why)
        else:
            usable.append(name)
    if not usable:
        raise ConfigError(f"none of the candidates {list(candidates)} can run here")
    candidates = usable
    t0 = time.perf_counter()
    ctx = context or _context(device)
    rec = recognizer or _default_reader()
    pil = crop if isinstance(crop, Image.Image) else to_pil(load_image(crop))
    results: dict[int, Any] = {}
    readings: dict[int, dict[str, Any]] = {}

    def read(i: int) -> None:
        t = time.perf_counter()
        res = _read(rec, candidate_fn(candidates[i], "ocr")(pil, ctx))
        results[i] = res
        conf = res.get("confidence") if isinstance(res, dict) else getattr(res, "confidence", None)
        text = res.get("text") if isinstance(res, dict) else getattr(res, "text", "")
        readings[i] = {"name": candidates[i], "text": text, "confidence": conf,
                       "seconds": round(time.perf_counter() - t, 4)}

    first, rest = agree_first_order(candidates, agree_first)
    for i in first:
        read(i)
    early = bool(first) and agree([results[i] for i in first])
    if not early:
        for i in rest:
            read(i)
    order = sorted(results)
    text, conf = vote([results[i] for i in order], power=power, names=[candidates[i] for i in order])
    return VoteResult(text, conf, [readings[i] for i in order], round(time.perf_counter() - t0, 4), early)


_CONTEXTS: dict[str, Any] = {}
_READER: list[Any] = []


def _context(device: Any) -> Any:
    from .compare.variants import CandidateContext

    key = str(device)
    if key not in _CONTEXTS:
        _CONTEXTS[key] = CandidateContext("ocr", device=device)
    return _CONTEXTS[key]


def _default_reader() -> Any:
    if not _READER:
        from .recognize.ocr import TesseractOCR

        _READER.append(TesseractOCR(mode="line"))
    return _READER[0]


def _takes_symbols(rec: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(rec).parameters
    except (TypeError, ValueError):
        return False
    return "symbols" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _read(rec: Callable[..., Any], img: Image.Image) -> Any:
    return rec(img, symbols=True) if _takes_symbols(rec) else rec(img)

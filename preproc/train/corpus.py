"""Fonts and words for synthetic text lines, from Debian packages the set-up installs.

Fonts (generator v1): ``fonts-dejavu-core``, ``fonts-liberation``, ``fonts-freefont-ttf``.
Generator v2 adds receipt, typewriter, book and UI faces (:data:`FONT_DIRS_V2`):
``fonts-courier-prime``, ``fonts-gnutypewriter``, ``fonts-noto-mono``,
``fonts-dotgothic16`` (dot-matrix look), ``fonts-urw-base35`` (Nimbus Roman/Sans/Mono,
Bookman, Century Schoolbook, Palatino clones), ``fonts-crosextra-caladea`` /
``-carlito``, ``fonts-open-sans``, ``fonts-roboto-unhinted``. Words: ``wamerican``
(``/usr/share/dict/american-english``). No text of any evaluation set is used; numbers,
prices, dates and codes are generated.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from ..errors import DatasetError

FONT_DIRS: tuple[str, ...] = (
    "/usr/share/fonts/truetype/dejavu",
    "/usr/share/fonts/truetype/liberation",
    "/usr/share/fonts/truetype/freefont",
)
FONT_DIRS_V2: tuple[str, ...] = FONT_DIRS + (
    "/usr/share/fonts/opentype/courier-prime",
    "/usr/share/fonts/truetype/gnutypewriter",
    "/usr/share/fonts/truetype/noto",
    "/usr/share/fonts/truetype/dotgothic16",
    "/usr/share/fonts/opentype/urw-base35",
    "/usr/share/fonts/truetype/crosextra",
    "/usr/share/fonts/truetype/open-sans",
    "/usr/share/fonts/truetype/roboto/unhinted",
)
#: The Debian packages behind :data:`FONT_DIRS_V2` (scripts/setup.sh installs them).
FONT_PACKAGES_V2 = ("fonts-dejavu-core fonts-liberation fonts-freefont-ttf fonts-courier-prime fonts-gnutypewriter "
                    "fonts-noto-mono fonts-dotgothic16 fonts-urw-base35 fonts-crosextra-caladea "
                    "fonts-crosextra-carlito fonts-open-sans fonts-roboto-unhinted")
WORDS_FILE = "/usr/share/dict/american-english"
#: Font files left out: symbol fonts and hairline weights are not what text crops hold.
_EXCLUDE = ("Math", "ExtraLight", "Thin", "StandardSymbols", "D050000L", "Z003", "CondLight")
_PUNCT_AFTER = [",", ".", ":", ";", ")", "%", "!", "?"]
_PUNCT_BEFORE = ["(", "$", "#", "*", '"']
_SEPARATORS = ["-", "&", "/", "@", "x", "="]


@functools.lru_cache(maxsize=4)
def find_fonts(dirs: tuple[str, ...] = FONT_DIRS) -> tuple[str, ...]:
    """Sorted paths of the usable ``.ttf`` files under ``dirs``.

    Raises :class:`DatasetError` naming the Debian packages when none is found, and for
    :data:`FONT_DIRS_V2` when any of its folders is missing (the training data of a seed
    would silently differ).
    """
    if dirs == FONT_DIRS_V2:
        missing = [d for d in dirs if not Path(d).is_dir()]
        if missing:
            raise DatasetError(f"font folders {', '.join(missing)} not found; generator v2 needs the Debian "
                               f"packages {FONT_PACKAGES_V2} (scripts/setup.sh)")
    pattern = "*.ttf" if dirs == FONT_DIRS else "*.[ot]tf"  # v1: exactly its old font list
    found = sorted(
        str(p)
        for d in dirs
        for p in (Path(d).glob(pattern) if dirs == FONT_DIRS else Path(d).rglob(pattern))
        if not any(x in p.name for x in _EXCLUDE)
    )
    if not found:
        raise DatasetError(
            f"no .ttf fonts found in {', '.join(dirs)}; install the Debian packages "
            "fonts-dejavu-core fonts-liberation fonts-freefont-ttf (scripts/setup.sh)"
        )
    return tuple(found)


@functools.lru_cache(maxsize=2)
def load_words(path: str = WORDS_FILE) -> tuple[str, ...]:
    """ASCII words of the word list at ``path`` (possessives dropped), in file order."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(f"word list {path} not found; install the Debian package wamerican")
    words = tuple(
        w for w in p.read_text(encoding="utf-8", errors="ignore").split()
        if w.isascii() and w.isalpha()
    )
    if len(words) < 100:
        raise DatasetError(f"word list {path} holds only {len(words)} usable words; expected a dictionary")
    return words


def _number(rng: np.random.Generator) -> str:
    kind = rng.integers(6)
    if kind == 0:
        return str(int(rng.integers(0, 10 ** int(rng.integers(1, 6)))))
    if kind == 1:
        return f"{rng.integers(0, 1000)}.{rng.integers(0, 100):02d}"
    if kind == 2:
        return f"{rng.integers(1, 29):02d}/{rng.integers(1, 13):02d}/{rng.integers(1990, 2030)}"
    if kind == 3:
        return f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}"
    if kind == 4:
        return f"{rng.integers(1, 100)},{rng.integers(0, 1000):03d}.{rng.integers(0, 100):02d}"
    letters = "ABCDEFGHJKLMNPQRSTUVWXYZ"
    n = int(rng.integers(2, 5))
    code = "".join(letters[i] for i in rng.integers(0, len(letters), n))
    return f"{code}{rng.integers(0, 10000)}"


def _word(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    w = words[int(rng.integers(len(words)))]
    case = rng.random()
    if case < 0.45:
        w = w.lower()
    elif case < 0.7:
        w = w.capitalize()
    else:
        w = w.upper()
    return w


def random_text(rng: np.random.Generator, n_tokens: int, words: tuple[str, ...] | None = None) -> str:
    """A line of ``n_tokens`` tokens: dictionary words in mixed case (~75 %), numbers,
    prices, dates, times and codes (~25 %), with occasional punctuation."""
    words = words if words is not None else load_words()
    toks = []
    for _ in range(n_tokens):
        t = _number(rng) if rng.random() < 0.25 else _word(rng, words)
        r = rng.random()
        if r < 0.15:
            t += _PUNCT_AFTER[int(rng.integers(len(_PUNCT_AFTER)))]
        elif r < 0.2:
            t = _PUNCT_BEFORE[int(rng.integers(len(_PUNCT_BEFORE)))] + t
        toks.append(t)
        if rng.random() < 0.05:
            toks.append(_SEPARATORS[int(rng.integers(len(_SEPARATORS)))])
    return " ".join(toks)


_UNITS = ["x", "@", "KG", "PCS", "EA", "ML", "G"]
_LABELS = ["TOTAL", "SUBTOTAL", "CASH", "CHANGE", "TAX", "GST", "QTY", "ROUNDING", "Tel", "Fax", "No", "Date",
           "Invoice", "Page", "Ref", "Item", "Amount", "Balance", "Discount", "Table"]


def _code(rng: np.random.Generator) -> str:
    alnum = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    n = int(rng.integers(4, 13))
    s = "".join(alnum[i] for i in rng.integers(0, len(alnum), n))
    if rng.random() < 0.4:
        k = int(rng.integers(1, n))
        s = s[:k] + "-/."[int(rng.integers(3))] + s[k:]
    return s


def _receipt_line(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    kind = rng.integers(5)
    if kind == 0:  # item line: QTY x PRICE AMOUNT
        name = " ".join(_word(rng, words).upper() for _ in range(int(rng.integers(1, 4))))
        q, p = int(rng.integers(1, 20)), rng.integers(10, 100000) / 100
        return f"{name} {q} {_UNITS[int(rng.integers(len(_UNITS)))]} {p:.2f} {q * p:.2f}"
    if kind == 1:  # label: value
        lab = _LABELS[int(rng.integers(len(_LABELS)))]
        lab = lab.upper() if rng.random() < 0.6 else lab
        val = _number(rng) if rng.random() < 0.7 else _code(rng)
        return f"{lab}{':' if rng.random() < 0.6 else ''} {'RM' if rng.random() < 0.2 else ''}{val}"
    if kind == 2:  # phone / registration numbers
        return (f"{_LABELS[int(rng.integers(len(_LABELS)))].upper()} {rng.integers(1, 100):02d}-"
                f"{rng.integers(1000, 10000)} {rng.integers(1000, 10000)}")
    if kind == 3:  # address-like
        return (f"NO. {rng.integers(1, 300)}, {_word(rng, words).upper()} {_word(rng, words).upper()}, "
                f"{rng.integers(10000, 99999)} {_word(rng, words).upper()}")
    return " ".join(_code(rng) if rng.random() < 0.5 else _number(rng) for _ in range(int(rng.integers(1, 5))))


def random_line_text(rng: np.random.Generator, words: tuple[str, ...] | None = None) -> str:
    """A line of generator v2: prose-like words (50 %, :func:`random_text`), receipt lines
    (30 %: items with quantities and prices, labels with values, phone numbers,
    addresses, codes), digit-heavy lines (10 %) and punctuation-rich text (10 %)."""
    words = words if words is not None else load_words()
    r = rng.random()
    if r < 0.5:
        return random_text(rng, int(rng.integers(2, 10)), words)
    if r < 0.8:
        return _receipt_line(rng, words)
    if r < 0.9:
        return " ".join(_number(rng) for _ in range(int(rng.integers(1, 6))))
    punct = list(",.;:!?'\"()[]-/&%#*+=<>_")
    toks = []
    for _ in range(int(rng.integers(2, 8))):
        t = _word(rng, words)
        if rng.random() < 0.5:
            t = t + punct[int(rng.integers(len(punct)))]
        if rng.random() < 0.2:
            t = punct[int(rng.integers(len(punct)))] + t
        toks.append(t)
    return " ".join(toks)

"""Fonts and words for synthetic text lines, from Debian packages the set-up installs.

Fonts: ``fonts-dejavu-core``, ``fonts-liberation``, ``fonts-freefont-ttf``. Words:
``wamerican`` (``/usr/share/dict/american-english``). No text of any evaluation set is
used; numbers, prices, dates and codes are generated.
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
WORDS_FILE = "/usr/share/dict/american-english"
#: Font files left out: symbol fonts and hairline weights are not what text crops hold.
_EXCLUDE = ("Math", "ExtraLight")
_PUNCT_AFTER = [",", ".", ":", ";", ")", "%", "!", "?"]
_PUNCT_BEFORE = ["(", "$", "#", "*", '"']
_SEPARATORS = ["-", "&", "/", "@", "x", "="]


@functools.lru_cache(maxsize=4)
def find_fonts(dirs: tuple[str, ...] = FONT_DIRS) -> tuple[str, ...]:
    """Sorted paths of the usable ``.ttf`` files under ``dirs``.

    Raises :class:`DatasetError` naming the Debian packages when none is found.
    """
    found = sorted(
        str(p)
        for d in dirs
        for p in Path(d).glob("*.ttf")
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

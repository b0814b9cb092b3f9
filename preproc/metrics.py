"""OCR metrics by edit distance (rapidfuzz's Levenshtein): character error rate and word accuracy.

Normalisation, applied to reference and hypothesis alike (:func:`normalize_text`):
leading/trailing whitespace stripped and every run of whitespace (spaces, tabs, line
breaks) collapsed to one space; with ``case_sensitive=False`` both are case-folded
(``str.casefold``). Nothing else is changed (punctuation and quotes count).

* ``cer = edits(ref, hyp) / len(ref)`` over characters (0 is perfect; can exceed 1 when
  the hypothesis is much longer than the reference).
* ``word_acc = 1 - edits(ref_words, hyp_words) / len(ref_words)``, clipped at 0: the
  word-level edit distance (substitutions, insertions, deletions of whole words).

Corpus figures (:func:`corpus_scores`) are micro-averages: total edits over total
reference characters (words), so long lines weigh more than short ones, as in jiwer
and the ICDAR/ISRI tools.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from .errors import ConfigError


def normalize_text(text: str, case_sensitive: bool = True) -> str:
    """``text`` with whitespace collapsed (and case-folded unless ``case_sensitive``)."""
    out = " ".join(text.split())
    return out if case_sensitive else out.casefold()


@dataclass(frozen=True)
class LineScore:
    """Edit counts of one line after normalisation."""

    char_edits: int
    chars: int
    word_edits: int
    words: int

    @property
    def cer(self) -> float:
        """Character error rate of this line (``inf`` for an empty reference with a non-empty hypothesis)."""
        if self.chars == 0:
            return 0.0 if self.char_edits == 0 else float("inf")
        return self.char_edits / self.chars

    @property
    def word_acc(self) -> float:
        """Word accuracy of this line in [0, 1]."""
        if self.words == 0:
            return 1.0 if self.word_edits == 0 else 0.0
        return max(0.0, 1.0 - self.word_edits / self.words)


def score_line(reference: str, hypothesis: str, case_sensitive: bool = True) -> LineScore:
    """Character and word edit counts of ``hypothesis`` against ``reference`` after normalisation."""
    ref = normalize_text(reference, case_sensitive)
    hyp = normalize_text(hypothesis, case_sensitive)
    ref_w, hyp_w = ref.split(), hyp.split()
    return LineScore(
        char_edits=Levenshtein.distance(ref, hyp),
        chars=len(ref),
        word_edits=Levenshtein.distance(ref_w, hyp_w),
        words=len(ref_w),
    )


def cer(reference: str, hypothesis: str, case_sensitive: bool = True) -> float:
    """Character error rate of one line: edits / reference characters, after normalisation."""
    return score_line(reference, hypothesis, case_sensitive).cer


def word_accuracy(reference: str, hypothesis: str, case_sensitive: bool = True) -> float:
    """Word accuracy of one line: 1 - word edits / reference words, clipped at 0."""
    return score_line(reference, hypothesis, case_sensitive).word_acc


def corpus_scores(
    references: Sequence[str],
    hypotheses: Sequence[str],
    case_sensitive: bool | Sequence[bool] = True,
) -> dict[str, float]:
    """Micro-averaged ``{"cer", "word_acc", "chars", "words"}`` over aligned lines.

    ``case_sensitive``: one flag for all lines or one per line (a dataset record's
    ``case_sensitive`` field).
    """
    if len(references) != len(hypotheses):
        raise ConfigError(f"{len(references)} references but {len(hypotheses)} hypotheses; expected equal counts")
    flags = [case_sensitive] * len(references) if isinstance(case_sensitive, bool) else list(case_sensitive)
    if len(flags) != len(references):
        raise ConfigError(f"{len(flags)} case_sensitive flags for {len(references)} lines; expected one per line")
    ce = ch = we = wo = 0
    for ref, hyp, cs in zip(references, hypotheses, flags):
        s = score_line(ref, hyp, cs)
        ce, ch, we, wo = ce + s.char_edits, ch + s.chars, we + s.word_edits, wo + s.words
    return {
        "cer": ce / ch if ch else (0.0 if ce == 0 else float("inf")),
        "word_acc": max(0.0, 1.0 - we / wo) if wo else 1.0,
        "chars": ch,
        "words": wo,
    }

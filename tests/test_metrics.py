"""OCR metrics: normalisation, CER and word accuracy by edit distance, corpus micro-averages."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from preproc.errors import ConfigError
from preproc.metrics import cer, corpus_scores, normalize_text, score_line, word_accuracy


def _levenshtein(a, b):
    """Textbook dynamic programme, the independent reference for rapidfuzz's distance."""
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def test_normalize_collapses_whitespace_and_folds_case_only_when_asked():
    assert normalize_text("  Total \t 12.40\n EUR ") == "Total 12.40 EUR"
    assert normalize_text("Total  EUR", case_sensitive=False) == "total eur"
    assert normalize_text("Straße", case_sensitive=False) == "strasse"  # casefold, not lower


def test_cer_known_values():
    assert cer("abc", "abc") == 0.0
    assert cer("abc", "abd") == pytest.approx(1 / 3)
    assert cer("abc", "") == 1.0
    assert cer("ab", "abcd") == 1.0  # two insertions over two reference characters
    assert cer("a  b", "a b") == 0.0  # whitespace collapsed on both sides


def test_case_handling_follows_the_flag():
    assert cer("TOTAL", "Total", case_sensitive=True) == pytest.approx(4 / 5)
    assert cer("TOTAL", "Total", case_sensitive=False) == 0.0


def test_word_accuracy_counts_whole_word_edits_and_is_clipped():
    assert word_accuracy("the cat sat", "the cat sat") == 1.0
    assert word_accuracy("the cat sat", "the cat sit") == pytest.approx(2 / 3)
    assert word_accuracy("the cat", "the big fat cat") == 0.0  # 2 insertions / 2 words, clipped at 0
    assert word_accuracy("one two three four", "one three four") == pytest.approx(3 / 4)


def test_corpus_scores_are_micro_averages():
    refs = ["abcdefghij", "ab"]
    hyps = ["abcdefghij", "xy"]
    s = corpus_scores(refs, hyps)
    assert s["cer"] == pytest.approx(2 / 12)  # not the mean of per-line CERs (0.5)
    assert s["chars"] == 12 and s["words"] == 2
    assert s["word_acc"] == pytest.approx(1 / 2)


def test_corpus_scores_per_line_case_flags():
    s = corpus_scores(["ABC", "ABC"], ["abc", "abc"], [False, True])
    assert s["cer"] == pytest.approx(3 / 6)


def test_corpus_scores_rejects_misaligned_input():
    with pytest.raises(ConfigError, match="2 references but 1 hypotheses"):
        corpus_scores(["a", "b"], ["a"])
    with pytest.raises(ConfigError, match="1 case_sensitive flags for 2 lines"):
        corpus_scores(["a", "b"], ["a", "b"], [True])


text = st.text(alphabet="abc XY.", max_size=20)


@settings(max_examples=200, deadline=None)
@given(text, text)
def test_edit_counts_match_a_reference_levenshtein(ref, hyp):
    s = score_line(ref, hyp)
    r, h = normalize_text(ref), normalize_text(hyp)
    assert s.char_edits == _levenshtein(r, h)
    assert s.word_edits == _levenshtein(r.split(), h.split())
    assert s.chars == len(r)
    assert 0.0 <= s.word_acc <= 1.0

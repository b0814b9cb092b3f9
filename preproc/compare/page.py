"""The page comparison task: whole low-resolution pages -> Tesseract page segmentation -> page CER.

Dataset format (``manifest.jsonl``, one record per page; ``datasets/make_page_set.py``
writes it): ``id``, ``image`` (the page at full resolution), ``text`` (the page's text
lines in reading order, joined by ``\\n``), ``body_line_height`` (px of the body text's
line height on the stored page; ``size`` is scaled to it), optional ``lines``
(``[{"box": [x0, y0, x1, y1], "text": ...}]`` in page pixels; when given, ``text`` may be
left out and is their texts in order), ``case_sensitive`` (default true).

``size`` is the body line height in pixels: the whole page is area-downscaled by
``size / body_line_height``, then JPEG-compressed when asked (as the line task does).
Recognition: Tesseract in automatic page segmentation (``--psm 3``) through
:class:`~preproc.page.PageReader`, told ``dpi`` 300 for every candidate.

The metric (:func:`page_scores`), line-order invariant
------------------------------------------------------
Reference and hypothesis are split into lines (empty lines dropped, each line normalised
as :func:`preproc.metrics.normalize_text`). Hypothesis lines are matched one-to-one to
reference lines by the assignment that minimises the total character edit distance
(Hungarian algorithm; an unmatched reference line costs its length in deletions, an
unmatched hypothesis line its length in insertions). Then splits and merges are repaired
greedily: an unmatched hypothesis line is appended (with a space, before or after) to the
matched hypothesis of a reference line when that lowers the total, and an unmatched
reference line is joined to a matched reference line in the same way. Page edits = the sum
over the final groups plus the unmatched lines' lengths; ``cer`` = total edits / total
reference characters over all pages (micro-average, as the line task; the denominator is the
sum of the reference lines' lengths, whatever the grouping). ``word_acc`` uses the
same groups: 1 - word edits / reference words (unmatched lines count all their words),
clipped at 0. So reading the lines in another order, or one line as two pieces, costs
nothing beyond the characters actually misread; a space between the joined pieces is
counted like any character.

Candidates this task adds: ``page`` (the page gate of :mod:`preproc.page`, then the OCR
auto backend, text-sr: what ``preproc ocr`` does) and ``page-bicubic`` (the page gate,
then bicubic). Plain upscaler names (``bicubic``, ``text-sr``) go through the crop gate
of :func:`preproc.enhance`, as a user calling ``enhance(page)`` would get.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from rapidfuzz.distance import Levenshtein

from ..datasets import Record, read_manifest
from ..errors import DatasetError
from ..io import load_image
from ..metrics import normalize_text
from .task import CompareTask, Recognition, area_resize, jpeg_roundtrip, spread
from .variants import CandidateContext, register_candidate


# --- the metric -----------------------------------------------------------------------------
def _hungarian(cost: list[list[float]]) -> list[int]:
    """Minimum-cost assignment of a square matrix: ``col[row]`` (O(n^3), potentials method)."""
    n = len(cost)
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (n + 1)
    p, way = [0] * (n + 1), [0] * (n + 1)
    for i in range(1, n + 1):
        p[0] = i
        j0 = 0
        minv = [inf] * (n + 1)
        used = [False] * (n + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = p[j0], inf, 0
            for j in range(1, n + 1):
                if not used[j]:
                    cur = cost[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j], way[j] = cur, j0
                    if minv[j] < delta:
                        delta, j1 = minv[j], j
            for j in range(n + 1):
                if used[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    col = [0] * n
    for j in range(1, n + 1):
        if p[j]:
            col[p[j] - 1] = j - 1
    return col


def _lines(text: str, case_sensitive: bool) -> list[str]:
    return [ln for ln in (normalize_text(x, case_sensitive) for x in text.splitlines()) if ln]


def align_lines(reference: str, hypothesis: str, case_sensitive: bool = True) -> list[tuple[str, str]]:
    """The ``(reference, hypothesis)`` groups of the page metric (module docstring); ``""`` for unmatched."""
    refs, hyps = _lines(reference, case_sensitive), _lines(hypothesis, case_sensitive)
    R, Hn = len(refs), len(hyps)
    if R == 0 or Hn == 0:
        return [(r, "") for r in refs] + [("", h) for h in hyps]
    n = R + Hn
    big = float(sum(map(len, refs)) + sum(map(len, hyps)) + 1)
    cost = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if i < R and j < Hn:
                cost[i][j] = float(Levenshtein.distance(refs[i], hyps[j]))
            elif i < R:  # reference i unmatched (its own dummy column)
                cost[i][j] = float(len(refs[i])) if j - Hn == i else big
            elif j < Hn:  # hypothesis j unmatched (its own dummy row)
                cost[i][j] = float(len(hyps[j])) if i - R == j else big
    col = _hungarian(cost)
    group_ref: dict[int, list[int]] = {}  # key: hypothesis index -> reference indices
    group_hyp: dict[int, list[int]] = {}  # key: the same hypothesis index -> hypothesis indices
    free_refs, free_hyps = [], []
    for i in range(R):
        if col[i] < Hn:
            group_ref[col[i]] = [i]
            group_hyp[col[i]] = [col[i]]
        else:
            free_refs.append(i)
    matched = set(group_ref)
    free_hyps = [j for j in range(Hn) if j not in matched]

    def text(idx: list[int], src: list[str]) -> str:
        return " ".join(src[k] for k in idx)

    def dist(g: int) -> int:
        return Levenshtein.distance(text(group_ref[g], refs), text(group_hyp[g], hyps))

    # greedy split repair: one reference line read as several hypothesis lines
    for j in free_hyps[:]:
        best, gain = None, 0
        for g in group_ref:
            old = dist(g)
            for order in (group_hyp[g] + [j], [j] + group_hyp[g]):
                new = Levenshtein.distance(text(group_ref[g], refs), text(order, hyps))
                if old + len(hyps[j]) - new > gain:
                    best, gain = (g, order), old + len(hyps[j]) - new
        if best is not None:
            group_hyp[best[0]] = best[1]
            free_hyps.remove(j)
    # greedy merge repair: several reference lines read as one hypothesis line
    for i in free_refs[:]:
        best, gain = None, 0
        for g in group_ref:
            old = dist(g)
            for order in (group_ref[g] + [i], [i] + group_ref[g]):
                new = Levenshtein.distance(text(order, refs), text(group_hyp[g], hyps))
                if old + len(refs[i]) - new > gain:
                    best, gain = (g, order), old + len(refs[i]) - new
        if best is not None:
            group_ref[best[0]] = best[1]
            free_refs.remove(i)
    out = [(text(group_ref[g], refs), text(group_hyp[g], hyps)) for g in sorted(group_ref, key=lambda g: group_ref[g][0])]
    out += [(refs[i], "") for i in free_refs] + [("", hyps[j]) for j in free_hyps]
    return out


def page_edits(reference: str, hypothesis: str, case_sensitive: bool = True) -> dict[str, int]:
    """``{"char_edits", "chars", "word_edits", "words"}`` of one page under the line-order-invariant alignment."""
    refs = _lines(reference, case_sensitive)
    ce = we = 0
    for r, h in align_lines(reference, hypothesis, case_sensitive):
        ce += Levenshtein.distance(r, h)
        we += Levenshtein.distance(r.split(), h.split())
    # the denominators are the reference lines' own lengths (joining lines adds no characters)
    return {"char_edits": ce, "chars": sum(map(len, refs)), "word_edits": we, "words": sum(len(r.split()) for r in refs)}


def page_scores(
    references: Sequence[str], hypotheses: Sequence[str], case_sensitive: bool | Sequence[bool] = True
) -> dict[str, float]:
    """Micro-averaged ``{"cer", "word_acc", "chars", "words"}`` over pages (the module's metric)."""
    flags = [case_sensitive] * len(references) if isinstance(case_sensitive, bool) else list(case_sensitive)
    ce = ch = we = wo = 0
    for ref, hyp, cs in zip(references, hypotheses, flags, strict=True):
        e = page_edits(ref, hyp, cs)
        ce, ch, we, wo = ce + e["char_edits"], ch + e["chars"], we + e["word_edits"], wo + e["words"]
    return {
        "cer": ce / ch if ch else (0.0 if ce == 0 else float("inf")),
        "word_acc": max(0.0, 1.0 - we / wo) if wo else 1.0,
        "chars": ch,
        "words": wo,
    }


# --- candidates: the page gate -------------------------------------------------------------
def _page_candidate(backend: str | None):
    def fn(crop: Image.Image, ctx: CandidateContext) -> Image.Image:
        from ..enhance import Enhancer
        from ..page import decide_page, measure_text_size

        key = f"page/{backend}"
        enh = ctx._enhancers.get(key)
        if enh is None:
            enh = Enhancer("ocr", backend, device=ctx.device, dtype=ctx.dtype, progress=False, **ctx.overrides)
            ctx._enhancers[key] = enh
        arr = load_image(crop)
        d = decide_page(measure_text_size(arr), enh.preset)
        if d.skip:
            return crop.convert("L")
        return enh.enhance(arr, scale=d.scale).image

    return fn


register_candidate("page", _page_candidate(None), tasks=("page",))
register_candidate("page-bicubic", _page_candidate("bicubic"), tasks=("page",))


class PageTask(CompareTask):
    """Whole pages through Tesseract's page segmentation; metrics ``cer`` and ``word_acc`` (line-order invariant)."""

    name = "page"
    preset = "ocr"
    metrics = ("cer", "word_acc")
    higher_is_better = {"cer": False, "word_acc": True}
    size_label = "body line height (px)"
    default_sizes = (8, 10, 12, 16)
    default_candidates = ("none", "bicubic")
    modes = ("select",)

    def __init__(self, lang: str = "eng", psm: int = 3, dpi: int = 300):
        from ..page import PageReader

        self._options = {"lang": lang, "psm": int(psm), "dpi": int(dpi)}
        self.reader = PageReader(lang, int(psm), int(dpi))
        self._options["engine_used"] = self.reader.engine

    def load(self, dataset: Path, limit: int | None) -> list[Record]:
        recs = read_manifest(dataset)
        for r in recs:
            if r.get("text") is None and not r.get("lines"):
                raise DatasetError(f"{dataset}: page {r.id!r} has neither `text` nor `lines`; expected the page text")
            blh = r.get("body_line_height")
            if not isinstance(blh, (int, float)) or blh <= 0:
                raise DatasetError(f"{dataset}: page {r.id!r} has body_line_height={blh!r}; expected a positive number (px)")
        return spread(recs, limit)

    @staticmethod
    def reference(record: Record) -> str:
        """The page text of ``record`` (``text``, or its ``lines`` in order)."""
        t = record.get("text")
        return str(t) if t is not None else "\n".join(str(ln["text"]) for ln in record.get("lines"))

    def degrade(self, record: Record, size: int, jpeg: int | None) -> Image.Image:
        arr = load_image(record.image)
        h, w = arr.shape[:2]
        f = size / float(record.get("body_line_height"))
        return jpeg_roundtrip(area_resize(arr, max(1, round(w * f)), max(1, round(h * f))), jpeg)

    def recognize(self, image: Image.Image, record: Record) -> Recognition:
        from ..page import hocr_words

        words, text = hocr_words(self.reader.hocr(image))
        conf = sum(w.confidence for w in words) / len(words) if words else 0.0
        return {"text": text, "confidence": round(conf, 3), "words": len(words)}

    def evaluate(self, records: Sequence[Record], recognitions: Sequence[Recognition]) -> dict[str, Any]:
        s = page_scores(
            [self.reference(r) for r in records],
            [str(x.get("text", "")) for x in recognitions],
            [bool(r.get("case_sensitive", True)) for r in records],
        )
        return {"cer": s["cer"], "word_acc": s["word_acc"]}

    def caption(self, recognition: Recognition) -> str:
        first = str(recognition.get("text", "")).split("\n", 1)[0]
        first = first if len(first) <= 40 else first[:39] + "…"
        return f"{first!r} ({recognition.get('confidence') or 0:.0f})"

    def close(self) -> None:
        self.reader.close()

"""Paired comparison of two OCR variants from ``preproc compare`` result caches.

Every line is read by both variants at the same size and JPEG setting, so the
difference of their corpus CERs is estimated from per-line differences of edits:
``dCER = sum(e_a - e_b) / sum(n)`` with standard error ``sqrt(N * var(e_a - e_b)) / sum(n)``
(``n``: reference characters of a line; the line set is fixed, the lines are the
random unit). ``python -m preproc.train.paired DATASET DIR_A:VARIANT_A DIR_B:VARIANT_B``
prints one row per (size, JPEG).
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import read_manifest
from ..errors import DatasetError
from ..metrics import score_line


@dataclass(frozen=True)
class PairedRow:
    """One (size, JPEG) setting: CER of A and B on the common lines and their paired difference."""

    size: int
    jpeg: int | None
    n: int
    cer_a: float
    cer_b: float
    diff: float
    se: float
    a_better: int
    b_better: int


def read_cache(out_dir: str | Path, variant: str) -> dict[tuple[str, int, int | None], str]:
    """``(id, size, jpeg) -> text`` of ``variant`` in the compare cache of ``out_dir`` (errors left out;
    the last entry of a key wins).

    A finished run (``report.json`` present) counts only the lines of its own settings'
    fingerprint (:meth:`~preproc.compare.cache.ResultCache.of_run`): a cache that earlier runs
    with other settings appended to is not mixed in. An interrupted run (no ``report.json``)
    has to hold one fingerprint for ``variant``; with more it raises a DatasetError.
    """
    from ..compare.cache import ResultCache

    out_dir = Path(out_dir)
    path = out_dir / "cache.jsonl"
    if not path.is_file():
        raise DatasetError(f"{str(path)!r} not found; expected the cache of a `preproc compare --out {out_dir}` run")
    if (out_dir / "report.json").is_file():
        cache, _ = ResultCache.of_run(out_dir)
        return {(sid, size, jpeg): str(e["rec"].get("text", "")) for (sid, size, jpeg, cand), e in cache.entries.items()
                if cand == variant and e.get("error") is None and e.get("rec") is not None}
    out: dict[tuple[str, int, int | None], str] = {}
    fps: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            sid, size, jpeg, cand = obj["key"]
            if cand == variant and obj.get("error") is None and obj.get("rec") is not None:
                fps.add(str(obj.get("fp")))
                out[(sid, int(size), jpeg)] = str(obj["rec"].get("text", ""))
    if len(fps) > 1:
        raise DatasetError(f"{str(path)!r} holds {variant!r} results of {len(fps)} different compare settings and "
                           "the run has no report.json to say which are its own; finish the run (rerun the same "
                           "`preproc compare` command, it resumes) or give each setting its own --out")
    return out


def paired_rows(dataset: str | Path, a: dict, b: dict) -> list[PairedRow]:
    """Paired rows over the keys both caches hold (see the module docstring)."""
    refs = {r.id: (str(r.get("text")), bool(r.get("case_sensitive", True)))
            for r in read_manifest(dataset, require=("text",))}
    groups: dict[tuple[int, int | None], list[tuple[int, int, int]]] = defaultdict(list)
    for key in sorted(a.keys() & b.keys(), key=lambda k: (k[1], k[2] or 0, k[0])):
        sid, size, jpeg = key
        if sid not in refs:
            continue
        text, cs = refs[sid]
        sa, sb = score_line(text, a[key], cs), score_line(text, b[key], cs)
        groups[(size, jpeg)].append((sa.char_edits, sb.char_edits, max(sa.chars, 1)))
    rows = []
    for (size, jpeg), items in sorted(groups.items(), key=lambda kv: (kv[0][1] is not None, kv[0][1] or 0, kv[0][0])):
        ea, eb, n = (np.array(x, dtype=np.float64) for x in zip(*items, strict=True))
        d = ea - eb
        total = n.sum()
        se = math.sqrt(len(d) * d.var(ddof=1)) / total if len(d) > 1 else float("nan")
        rows.append(PairedRow(size, jpeg, len(d), ea.sum() / total, eb.sum() / total, d.sum() / total, se,
                              int((d < 0).sum()), int((d > 0).sum())))
    return rows


def format_rows(rows: Sequence[PairedRow], name_a: str, name_b: str) -> str:
    """A markdown table of :func:`paired_rows`."""
    head = (f"| size | jpeg | lines | CER {name_a} | CER {name_b} | {name_a} - {name_b} (SE) | "
            f"lines {name_a} better / worse |\n|---:|---:|---:|---:|---:|---:|---:|\n")
    return head + "".join(
        f"| {r.size} | {r.jpeg if r.jpeg is not None else '-'} | {r.n} | {r.cer_a:.3f} | {r.cer_b:.3f} | "
        f"{r.diff:+.3f} ({r.se:.3f}) | {r.a_better} / {r.b_better} |\n" for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m preproc.train.paired DATASET DIR_A:VARIANT_A DIR_B:VARIANT_B``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or ":" not in args[1] or ":" not in args[2]:
        sys.stderr.write(__doc__ or "")
        return 2
    (da, va), (db, vb) = (x.rsplit(":", 1) for x in args[1:])
    sys.stdout.write(format_rows(paired_rows(args[0], read_cache(da, va), read_cache(db, vb)), va, vb))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

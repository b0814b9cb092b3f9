"""Per-page statistics of a ``preproc compare --task page`` run: mean page CER with standard errors and paired tests.

    .venv/bin/python benchmarks/page_compare_stats.py /tmp/page-compare-q0 --dataset /tmp/pages-dev \\
        --against page --markdown

Reads ``OUT/cache.jsonl`` (one recognition per page, size, JPEG setting and candidate)
and the dataset's manifest, scores every page alone with the page metric
(:func:`preproc.compare.page.page_edits`) and prints, per size and variant: pages, corpus
CER (total edits / total characters, what the report shows), the mean of the per-page CERs
with its standard error, and for every other variant the paired difference of per-page
CER against ``--against`` (mean, standard error, and how many pages got better / worse).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

from preproc.compare.page import PageTask, page_edits
from preproc.datasets import read_manifest


def _mean_se(xs: list[float]) -> tuple[float, float]:
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan")
    var = sum((x - m) ** 2 for x in xs) / (n - 1)
    return m, math.sqrt(var / n)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", help="the compare --out folder")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--against", default="page", help="variant the paired differences are taken against")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    recs = {r.id: r for r in read_manifest(args.dataset)}
    latest: dict[tuple, dict] = {}  # the cache is append-only: the last entry of a key is the one that counts
    for line in Path(args.run, "cache.jsonl").read_text().splitlines():
        e = json.loads(line)
        latest[tuple(e["key"])] = e
    per: dict[tuple, dict[str, dict[str, float]]] = defaultdict(dict)  # (size, jpeg) -> cand -> {page: cer}
    edits: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for (pid, size, q, cand), e in latest.items():
        if e.get("error") or e.get("rec") is None or pid not in recs:
            continue
        r = recs[pid]
        s = page_edits(PageTask.reference(r), e["rec"].get("text", ""), bool(r.get("case_sensitive", True)))
        per[(size, q)].setdefault(cand, {})[pid] = s["char_edits"] / max(s["chars"], 1)
        acc = edits[(size, q, cand)]
        acc[0] += s["char_edits"]
        acc[1] += s["chars"]
    rows = []
    for (size, q), cands in sorted(per.items(), key=lambda kv: (kv[0][1] or 0, kv[0][0])):
        base = cands.get(args.against, {})
        for cand, pages in cands.items():
            m, se = _mean_se(list(pages.values()))
            ce, ch = edits[(size, q, cand)]
            row = {"size": size, "jpeg": q, "variant": cand, "n": len(pages), "cer": ce / ch,
                   "mean_page_cer": m, "se": se}
            common = sorted(set(pages) & set(base))
            if cand != args.against and len(common) >= 2:
                d = [pages[p] - base[p] for p in common]
                dm, dse = _mean_se(d)
                row.update(diff_vs=args.against, diff=dm, diff_se=dse, worse=sum(x > 0 for x in d),
                           better=sum(x < 0 for x in d))
            rows.append(row)
    if not args.markdown:
        print(json.dumps(rows, indent=1))
        return
    print(f"| size | jpeg | variant | n | CER | mean page CER ± SE | minus {args.against} ± SE | pages worse / better |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        diff = f"{r['diff']:+.3f} ± {r['diff_se']:.3f}" if "diff" in r else "–"
        wb = f"{r['worse']} / {r['better']}" if "diff" in r else "–"
        print(f"| {r['size']} | {r['jpeg'] or '–'} | {r['variant']} | {r['n']} | {r['cer']:.3f} | "
              f"{r['mean_page_cer']:.3f} ± {r['se']:.3f} | {diff} | {wb} |")


if __name__ == "__main__":
    main()

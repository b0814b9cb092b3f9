"""Which readings can stop the vote early? Rules compared on finished compare runs.

The eight-reading vote (:data:`preproc.vote.DEFAULT_CANDIDATES`) costs three
enhancements and eight Tesseract reads per line. Many lines are read alike by every
rendering; for those, a few readings decide. A rule reads a *first set* of candidates
and stops when their readings spell the same text (:func:`preproc.vote.agree`);
otherwise it reads everything and votes as before. For each rule this prints, per
setting of each compare run given (whose cache holds all eight readings of every line):

* the corpus CER of the rule against the full vote (and their ratio),
* the share of lines that stop early and on how many of those the rule's text differs
  from the full vote's (better / worse against the truth),
* the cost against the full vote: the median seconds of each candidate in that
  run's cache (a view's entry costs its read; its enhancement is charged to the
  candidate computed first), summed over what each line reads.

    .venv/bin/python benchmarks/vote_early.py ../shared/datasets/text-lines-dev \\
        runs/views-sel runs/views-sel-tall --markdown

Rule ``default x3`` (``default``, ``default~x1.4``, ``default~thick``: one enhancement,
three reads) is :data:`preproc.vote.AGREE_FIRST`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from preproc.compare.cache import ResultCache
from preproc.datasets import read_manifest
from preproc.metrics import score_line
from preproc.vote import DEFAULT_CANDIDATES, agree, vote

RULES: dict[str, tuple[str, ...]] = {
    "default x3": ("default", "default~x1.4", "default~thick"),
    "default, x1.4": ("default", "default~x1.4"),
    "default, text-sr-v3": ("default", "text-sr-v3"),
    "default, text-sr-v3, x1.4": ("default", "text-sr-v3", "default~x1.4"),
    "both x2": ("default", "default~x1.4", "text-sr-v3", "text-sr-v3~x1.4"),
}


def load_run(run: Path) -> tuple[dict, dict]:
    """``{(size, jpeg): {id: {candidate: recognition}}}`` and ``{(size, jpeg): {candidate: median seconds}}``
    of a finished compare run (only its own fingerprint's entries: :meth:`ResultCache.of_run`)."""
    cache, _ = ResultCache.of_run(run)
    recs: dict = defaultdict(lambda: defaultdict(dict))
    secs: dict = defaultdict(lambda: defaultdict(list))
    for (sid, size, jpeg, cand), entry in cache.entries.items():
        if entry.get("rec"):
            recs[(size, jpeg)][sid][cand] = entry["rec"]
            secs[(size, jpeg)][cand].append(float(entry.get("seconds") or 0.0))
    return recs, {k: {c: statistics.median(v) for c, v in d.items()} for k, d in secs.items()}


def evaluate(lines: dict, cost: dict, truth: dict) -> dict:
    """Per rule: CER, CER of the full vote, share early, differing lines (better / worse), cost ratio."""
    full_cost = sum(cost[c] for c in DEFAULT_CANDIDATES)
    chars = full_edits = n = 0
    out = {name: {"edits": 0, "early": 0, "differ": 0, "better": 0, "worse": 0, "cost": 0.0} for name in RULES}
    for sid, r in lines.items():
        if sid not in truth or not all(c in r for c in DEFAULT_CANDIDATES):
            continue
        ref, cs = truth[sid]
        n += 1
        chars += score_line(ref, "", cs).chars
        full = vote([r[c] for c in DEFAULT_CANDIDATES])[0]
        e_full = score_line(ref, full, cs).char_edits
        full_edits += e_full
        for name, first in RULES.items():
            o = out[name]
            if agree([r[c] for c in first]):
                text = vote([r[c] for c in first])[0]
                o["early"] += 1
                o["cost"] += sum(cost[c] for c in first)
                e = score_line(ref, text, cs).char_edits
                if text != full:
                    o["differ"] += 1
                    o["better"] += e < e_full
                    o["worse"] += e > e_full
            else:
                e = e_full
                o["cost"] += full_cost
            o["edits"] += e
    return {"lines": n, "cer_full": full_edits / max(chars, 1), "seconds_full": full_cost,
            "rules": {name: {"cer": o["edits"] / max(chars, 1), "ratio": o["edits"] / max(full_edits, 1),
                             "early": o["early"] / max(n, 1), "differ": o["differ"], "better": o["better"],
                             "worse": o["worse"], "cost_ratio": o["cost"] / max(n, 1) / max(full_cost, 1e-9)}
                      for name, o in out.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path, help="the text-lines dataset the runs read (for the truth)")
    ap.add_argument("runs", type=Path, nargs="+", help="compare output folders")
    ap.add_argument("--markdown", action="store_true", help="a markdown table instead of JSON lines")
    args = ap.parse_args(argv)
    truth = {r.id: (str(r.get("text")), bool(r.get("case_sensitive", True)))
             for r in read_manifest(args.dataset, require=("text",))}
    if args.markdown:
        print("| run | size | jpeg | lines | rule | CER (full vote) | rule / full | early | differ (better / worse) "
              "| cost / full |")
        print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
    for run in args.runs:
        recs, cost = load_run(run)
        for (size, jpeg) in sorted(recs, key=lambda k: (k[1] is not None, k[1] or 0, k[0])):
            if not all(c in cost[(size, jpeg)] for c in DEFAULT_CANDIDATES):
                continue
            res = evaluate(recs[(size, jpeg)], cost[(size, jpeg)], truth)
            if not args.markdown:
                print(json.dumps({"run": str(run), "size": size, "jpeg": jpeg, **res}))
                continue
            for name, r in res["rules"].items():
                print(f"| {run.name} | {size} | {jpeg if jpeg is not None else '-'} | {res['lines']} | {name} | "
                      f"{r['cer']:.4f} ({res['cer_full']:.4f}) | {r['ratio']:.3f} | {r['early']:.2f} | "
                      f"{r['differ']} ({r['better']} / {r['worse']}) | {r['cost_ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

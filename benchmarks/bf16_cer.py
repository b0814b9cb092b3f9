"""Paired CER difference between two ``preproc compare`` runs (e.g. text-sr in fp32 and in bf16).

Reads both runs' ``cache.jsonl`` (one recognition per sample, size, JPEG quality and
variant) and the dataset manifest, and prints per (size, JPEG) the CER of each run, the
paired difference (B - A, micro-averaged as compare does: edits over reference
characters) with its standard error over lines, and how many lines changed at all::

    preproc compare --task ocr --dataset ../shared/datasets/text-lines-dev --limit 200 --sizes 8,10 \\
        --jpeg none,75 --variants none,text-sr --dtype fp32 --out runs/batch-cer-fp32
    preproc compare ... --dtype bf16 --out runs/batch-cer-bf16
    python benchmarks/bf16_cer.py runs/batch-cer-fp32 runs/batch-cer-bf16 --variant text-sr
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


def load(run: Path, variant: str) -> dict:
    out = {}
    for line in (run / "cache.jsonl").read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        sid, size, jpeg, var = r["key"][:4]
        if var == variant:
            out[(sid, size, jpeg)] = r["rec"].get("text", "")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_a", type=Path)
    p.add_argument("run_b", type=Path)
    p.add_argument("--variant", default="text-sr")
    args = p.parse_args(argv)

    from preproc.metrics import score_line

    dataset = Path(json.loads((args.run_a / "report.json").read_text())["settings"]["dataset"])
    recs = {}
    for line in (dataset / "manifest.jsonl").read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            recs[r["id"]] = r
    a, b = load(args.run_a, args.variant), load(args.run_b, args.variant)
    keys = sorted(set(a) & set(b), key=lambda k: (k[1], -1 if k[2] is None else k[2], k[0]))
    groups: dict = {}
    for k in keys:
        groups.setdefault(k[1:], []).append(k)
    print(f"{args.variant}: B = {args.run_b} minus A = {args.run_a}")
    print("| size | JPEG | lines | CER A | CER B | B - A | SE | lines changed (better / worse) |")
    print("|---|---|---|---|---|---|---|---|")
    for (size, jpeg), ks in groups.items():
        ea, eb, chars, diffs = 0, 0, 0, []
        better = worse = 0
        for k in ks:
            rec = recs[k[0]]
            cs = bool(rec.get("case_sensitive", True))
            sa, sb = score_line(rec["text"], a[k], cs), score_line(rec["text"], b[k], cs)
            ea, eb, chars = ea + sa.char_edits, eb + sb.char_edits, chars + sa.chars
            d = sb.char_edits - sa.char_edits
            diffs.append(d)
            better += d < 0
            worse += d > 0
        n = len(diffs)
        mean = sum(diffs) / n
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else 0.0
        se = sd * math.sqrt(n) / chars  # SE of the micro-averaged difference
        q = "lossless" if jpeg is None else str(jpeg)
        print(f"| {size} | {q} | {n} | {ea / chars:.4f} | {eb / chars:.4f} | {(eb - ea) / chars:+.4f} | {se:.4f} | "
              f"{better + worse} ({better} / {worse}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

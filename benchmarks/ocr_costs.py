"""What each OCR candidate costs per line: enhancement time against the recognizer's own time.

For ``--lines`` report-side lines of text-lines-dev (``split_dev_lines``) at each height:
time ``enhance`` (text-sr at the gate's scale, text-sr at x2, bicubic), Tesseract and
RapidOCR on the crop and on each enhanced image, and the vote's alignment; all in one
process, one thread each, interleaved, so the ratios hold even on a loaded machine.

    flock /tmp/preproc-heavy.lock nice -n 5 .venv/bin/python benchmarks/ocr_costs.py \\
        --lines 40 --out docs/results/ocr_costs.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import preproc
from preproc.compare.ocr import OcrTask
from preproc.compare.variants import CandidateContext, candidate_fn
from preproc.datasets import read_manifest
from preproc.train.validate import select_split
from preproc.vote import vote

CANDIDATES = ("none", "bicubic", "text-sr", "text-sr@2")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="/work/shared/datasets/text-lines-dev")
    ap.add_argument("--lines", type=int, default=40)
    ap.add_argument("--sizes", default="8,10,16")
    ap.add_argument("--jpeg", type=int, default=75)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    records = preproc.compare.spread(select_split(read_manifest(args.dataset, require=("text",)), "report"),
                                     args.lines)
    tess, rapid = OcrTask(), OcrTask(recognizer="rapidocr")
    ctx = CandidateContext("ocr", device="cpu")
    fns = {c: candidate_fn(c, "ocr") for c in CANDIDATES}
    # warm-up: load models
    crop0 = tess.degrade(records[0], 10, args.jpeg)
    for c in CANDIDATES:
        img = fns[c](crop0, ctx)
        tess.recognize(img, records[0])
        rapid.recognize(img, records[0])
    result: dict = {"lines": len(records), "jpeg": args.jpeg, "per_size": {}}
    for size in (int(s) for s in args.sizes.split(",")):
        t: dict[str, list[float]] = {}
        for rec in records:
            crop = tess.degrade(rec, size, args.jpeg)
            readings = []
            for c in CANDIDATES:
                t0 = time.perf_counter()
                img = fns[c](crop, ctx)
                t1 = time.perf_counter()
                r = tess.recognize(img, rec)
                t2 = time.perf_counter()
                rapid.recognize(img, rec)
                t3 = time.perf_counter()
                t.setdefault(f"enhance:{c}", []).append(t1 - t0)
                t.setdefault(f"tesseract:{c}", []).append(t2 - t1)
                t.setdefault(f"rapidocr:{c}", []).append(t3 - t2)
                readings.append(r)
            t0 = time.perf_counter()
            vote(readings)
            t.setdefault("vote-align:4", []).append(time.perf_counter() - t0)
        result["per_size"][str(size)] = {k: round(1000 * statistics.fmean(v), 2) for k, v in t.items()}
    tess.close()
    rapid.close()
    text = json.dumps(result, indent=1)
    if args.out:
        from preproc.cache import write_text_atomic

        write_text_atomic(args.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

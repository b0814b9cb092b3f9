"""Paired statistics for OCR compare runs: CER ratio of variant A to B with a bootstrap interval.

Reads a finished ``preproc compare --task ocr`` output folder (``report.json`` +
``cache.jsonl``), recombines every variant per line (vote, guard, select exactly as the
report did, with the same task options), and for each pair ``A:B`` and setting prints
corpus CER of both, the ratio A/B with a 95 % paired bootstrap interval (lines
resampled, 2000 draws, seed 0) and how many lines A made better / worse.

    .venv/bin/python benchmarks/ocr_paired.py /tmp/ocrx/dev-tess \\
        --pairs vote:text-sr/text-sr@2/bicubic/none:none,text-sr:none --markdown

``--b-run OTHER`` reads every B variant from another finished run over the same lines
(same dataset, split and limit), e.g. the same variant with other weights (``--set model=``):

    .venv/bin/python benchmarks/ocr_paired.py runs/new-model-selection --b-run runs/old-model-selection \\
        --pairs text-sr:text-sr
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from preproc.compare.cache import ResultCache
from preproc.compare.runner import combine_sample
from preproc.compare.variants import Variant
from preproc.datasets import read_manifest
from preproc.metrics import score_line


def _task(settings: dict):
    from preproc.compare.ocr import OcrTask

    opts = {k: v for k, v in settings["task_options"].items() if k != "engine_used"}
    # How the run combined (recorded since round nine; an older run voted over every
    # candidate, with the defaults of then).
    comb = settings.get("combine_options", {"vote_early": False})
    tk = OcrTask.__new__(OcrTask)  # combine() only: no recognizer is loaded
    tk.vote_power = float(comb.get("vote_power", 1.0))
    tk.vote_weighting = comb.get("vote_weighting", "char")
    tk.vote_alt_weight = float(comb.get("vote_alt_weight", 0.0))
    tk.vote_early = bool(comb.get("vote_early", True))
    tk.guard_margin = comb.get("guard_margin")
    tk.recognizer = opts.get("recognizer", "tesseract")
    return tk


def _variants(run: Path) -> dict:
    """The run's variants as it computed them, from the mode and candidates its report rows
    record (a bare ``vote`` of an older run keeps the candidate set of then; a candidate the
    run could not compute is not in them)."""
    rows = json.loads((run / "report.json").read_text(encoding="utf-8"))["rows"]
    return {r["variant"]: Variant(r["variant"], r["mode"], tuple(r["candidates"])) for r in rows}


def _split_pair(pair: str, variants: dict, variants_b: dict) -> tuple[str, str]:
    """``A:B`` split at the ':' that leaves a variant of each run on either side (variant names
    such as ``vote:a/b`` hold ':' themselves)."""
    for i, ch in enumerate(pair):
        if ch == ":" and pair[:i] in variants and pair[i + 1:] in variants_b:
            return pair[:i], pair[i + 1:]
    raise SystemExit(f"{pair!r}: expected A:B with A and B variants of the runs; "
                     f"A from {sorted(variants)}, B from {sorted(variants_b)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--pairs", required=True, help="A:B,C:D (variant names; split at the ':' that names a variant on each side)")
    ap.add_argument("--b-run", type=Path, default=None,
                    help="read the B variants from this other finished run over the same lines")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    cache, s = ResultCache.of_run(args.run)
    tk = _task(s)
    variants = _variants(args.run)
    cache_b, tk_b, variants_b = cache, tk, variants
    if args.b_run is not None:
        cache_b, sb = ResultCache.of_run(args.b_run)
        same = ("dataset", "limit")
        if any(sb[k] != s[k] for k in same) or sb["task_options"].get("split") != s["task_options"].get("split"):
            raise SystemExit(f"{args.b_run} is not over the same lines as {args.run} (dataset, split, limit differ)")
        tk_b = _task(sb)
        variants_b = _variants(args.b_run)
    from preproc.compare.task import spread
    from preproc.train.validate import select_split

    records = spread(select_split(read_manifest(s["dataset"], require=("text",)), s["task_options"].get("split", "all")),
                     s["limit"])
    rng = np.random.default_rng(0)
    lines = []
    if args.markdown:
        lines += ["| A vs B | size | jpeg | n | CER A | CER B | A/B [95 % CI] | A better / worse |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for pair in args.pairs.split(","):
        a, b = _split_pair(pair, variants, variants_b)
        for q in s["jpeg"]:
            for size in s["sizes"]:
                ea, eb, nch, better, worse = [], [], [], 0, 0
                for r in records:
                    ra = combine_sample(tk, variants[a], r.id, size, q, cache)
                    rb = combine_sample(tk_b, variants_b[b], r.id, size, q, cache_b)
                    if isinstance(ra, str) or isinstance(rb, str):
                        continue
                    cs = bool(r.get("case_sensitive", True))
                    la = score_line(str(r.get("text")), str(ra[1].get("text", "")), cs)
                    lb = score_line(str(r.get("text")), str(rb[1].get("text", "")), cs)
                    ea.append(la.char_edits)
                    eb.append(lb.char_edits)
                    nch.append(la.chars)
                    better += la.char_edits < lb.char_edits
                    worse += la.char_edits > lb.char_edits
                if not ea:
                    print(f"{a} vs {b}, {size} px, jpeg {q}: no line has both readings", file=sys.stderr)
                    continue
                ea_, eb_, n_ = np.array(ea), np.array(eb), np.array(nch)
                ratio = ea_.sum() / max(eb_.sum(), 1)
                idx = rng.integers(0, len(ea), (2000, len(ea)))
                boots = ea_[idx].sum(1) / np.maximum(eb_[idx].sum(1), 1)
                lo, hi = np.percentile(boots, [2.5, 97.5])
                ca, cb = ea_.sum() / n_.sum(), eb_.sum() / n_.sum()
                jl = "–" if q is None else q
                if args.markdown:
                    lines.append(f"| {a} vs {b} | {size} | {jl} | {len(ea)} | {ca:.3f} | {cb:.3f} | "
                                 f"{ratio:.2f} [{lo:.2f}, {hi:.2f}] | {better} / {worse} |")
                else:
                    lines.append(json.dumps({"a": a, "b": b, "size": size, "jpeg": q, "n": len(ea), "cer_a": ca,
                                             "cer_b": cb, "ratio": ratio, "ci95": [lo, hi], "better": better,
                                             "worse": worse}))
    cache.close()
    cache_b.close()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""text-sr numbers that ``preproc compare`` does not print (docs/results.md, text-sr section).

``val``: CER on the training-time validation subset (120 lines of text-lines-dev spread
evenly, 8/10/12 px, lossless and JPEG 75) for none, bicubic, the untuned animevideov3
init (grey fold) and weights files::

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/text_sr_eval.py val \\
        --dataset ../shared/datasets/text-lines-dev preproc/weights/text_sr_x4.safetensors

``unseen``: CER per candidate of a ``preproc compare --task ocr`` run (read from its
``cache.jsonl``) on the compare lines that were *not* in the validation subset::

    python benchmarks/text_sr_eval.py unseen --dataset ../shared/datasets/text-lines-dev \\
        --cache runs/compare-textsr/cache.jsonl --limit 160
"""

from __future__ import annotations

import argparse
import json
import sys

SIZES = (8, 10, 12, 16)


def cmd_val(args: argparse.Namespace) -> None:
    from preproc.train.model import init_net, load_weights
    from preproc.train.validate import (
        TesseractLine,
        bicubic_x4,
        build_cases,
        evaluate,
        identity,
        net_upscaler,
    )

    cases = build_cases(args.dataset, args.val_lines, (8, 10, 12), split="all")  # the first model's subset
    ocr = TesseractLine()
    runs = [("none", identity), ("bicubic", bicubic_x4),
            ("animevideov3 (grey fold, untuned)", net_upscaler(init_net("animevideov3").eval()))]
    runs += [(w, net_upscaler(load_weights(w))) for w in args.weights]
    for name, fn in runs:
        print(name, json.dumps({k: round(v, 3) for k, v in evaluate(cases, fn, ocr).items()}))


def cmd_unseen(args: argparse.Namespace) -> None:
    from preproc.compare.task import spread
    from preproc.datasets import read_manifest
    from preproc.metrics import corpus_scores
    from preproc.train.validate import even_subset

    recs = read_manifest(args.dataset, require=("text",))
    val = {r.id for r in even_subset(recs, args.val_lines)}
    use = [r for r in spread(recs, args.limit) if r.id not in val]
    wanted = {r.id for r in use}
    texts: dict[tuple, str] = {}
    with open(args.cache, encoding="utf-8") as f:
        for line in f:
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line
            sid, size, q, cand = d["key"]
            if sid in wanted and d.get("rec") is not None:
                texts[(sid, size, q, cand)] = d["rec"]["text"]
    print(f"{len(use)} compare lines not in the {args.val_lines}-line validation subset")
    for q in (None, 75):
        print(f"CER, JPEG {q or 'none'}: " + " | ".join(f"{s} px" for s in SIZES))
        for cand in sorted({k[3] for k in texts}):
            cells = []
            for s in SIZES:
                rs = [r for r in use if (r.id, s, q, cand) in texts]
                sc = corpus_scores([str(r.get("text")) for r in rs], [texts[(r.id, s, q, cand)] for r in rs],
                                   [bool(r.get("case_sensitive", True)) for r in rs])
                cells.append(f"{sc['cer']:.3f} (n={len(rs)})")
            print(f"  {cand:20s} " + " | ".join(cells))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("val", help="validation-subset CER of baselines, the init and weights files")
    v.add_argument("weights", nargs="*", help="text-sr weights files")
    u = sub.add_parser("unseen", help="compare CER on lines outside the validation subset")
    u.add_argument("--cache", required=True, help="cache.jsonl of a preproc compare --task ocr run")
    u.add_argument("--limit", type=int, default=160, help="the compare run's --limit")
    for q in (v, u):
        q.add_argument("--dataset", default="../shared/datasets/text-lines-dev")
        q.add_argument("--val-lines", type=int, default=120, help="lines of the validation subset (training default)")
    args = p.parse_args(argv)
    {"val": cmd_val, "unseen": cmd_unseen}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

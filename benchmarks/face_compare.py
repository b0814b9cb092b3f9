"""Face verification before/after enhancement on a pairs dataset, one pair set at a time.

Runs :func:`preproc.compare` with the face task (what ``preproc compare --task face``
runs, including the ROC plot ``roc.png`` and the face grid ``face_contact_sheet.png``)::

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/face_compare.py \\
        --dataset ../shared/datasets/faces-dev --pair-set lfw-devtrain --limit 100 \\
        --sizes 16,24,32,48 --variants none,bicubic,realesrgan,realesrgan+guard,fuse \\
        --out runs/faces-lfw
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--pair-set", default=None, help="one `set` of pairs.jsonl (default: all, pooled)")
    p.add_argument("--limit", type=int, default=None, help="number of pairs (half same, half different)")
    p.add_argument("--sizes", default="16,24,32,48")
    p.add_argument("--variants", default="none,bicubic,realesrgan,realesrgan+guard,fuse")
    p.add_argument("--embedder", default="dlib")
    p.add_argument("--box", default="detect", choices=("detect", "fixed"))
    p.add_argument("--jpeg", type=int, default=None)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    import preproc

    report = preproc.compare(
        args.dataset,
        task="face",
        variants=[v for v in args.variants.split(",") if v],
        sizes=[int(s) for s in args.sizes.split(",") if s],
        jpeg=args.jpeg,
        limit=args.limit,
        out=args.out,
        task_options={"pair_set": args.pair_set, "embedder": args.embedder, "box": args.box},
        progress=False,
    )
    print(report.full_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())

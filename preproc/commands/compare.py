"""``preproc compare --task ocr --dataset DIR --variants none,bicubic,...``: before/after recognition accuracy."""

from __future__ import annotations

import argparse
import sys

from .common import add_model_args, parse_overrides


def _ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _jpegs(text: str) -> list[int | None]:
    out: list[int | None] = []
    for x in text.split(","):
        x = x.strip().lower()
        if x in ("", "none", "0", "lossless", "png"):
            out.append(None)
            continue
        try:
            out.append(int(x))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--jpeg expects qualities like 75 or none,75; got {text!r}") from None
    return out


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare",
        help="measure recognition before/after enhancement on a dataset",
        description="Degrade each sample to each size, run each variant, recognise, and write report.json, "
                    "report.md, plots and a contact sheet into --out. Re-running with the same --out resumes.",
    )
    add_model_args(p)  # --task is the comparison task here (ocr, face); it also picks the enhance preset
    p.add_argument("--dataset", required=True, help="dataset folder with manifest.jsonl")
    p.add_argument("--variants", default="none,bicubic",
                   help="comma-separated: none, default, bicubic, cleanup, cleanup-bin, realesrgan, sd-x4, "
                        "NAME@SCALE, NAME~VIEW (views: thick, x1.4), NAME+guard, select, select:a/b/c, vote, vote:a/b/c "
                        "(default: none,bicubic)")
    p.add_argument("--sizes", type=_ints, default=None, help="target sizes, e.g. 8,10,12,16 (OCR: line height px)")
    p.add_argument("--jpeg", type=_jpegs, default=[None],
                   help="JPEG quality of the degraded crops, or several: none,75 (default: lossless)")
    p.add_argument("--limit", type=int, default=None, help="about N samples, spread evenly over the dataset")
    p.add_argument("--out", required=True, help="output folder (report, plots, contact sheet, cache)")
    p.add_argument("--task-opt", dest="task_options", action="append", metavar="KEY=VALUE",
                   help="task option, e.g. --task-opt mode=block or --task-opt engine=pytesseract (repeatable)")
    p.add_argument("--recognizer", default=None,
                   help="OCR task: tesseract (default) or rapidocr; the same as --task-opt recognizer=NAME")
    p.add_argument("--sheet-samples", type=int, default=4, help="samples on the contact sheet (default 4)")
    p.add_argument("--report-images", type=int, default=500,
                   help="samples whose images report.html shows (small files in OUT/report_files/; "
                        "-1: all; default 500)")
    p.add_argument("--no-resume", action="store_true",
                   help="discard the result cache of an earlier run in --out and start again")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def run(args: argparse.Namespace) -> int:
    from ..compare import compare

    if args.upscaler is not None or args.model is not None:
        print("preproc compare: --upscaler/--model are not used here; name backends in --variants "
              "and pass backend settings with --set", file=sys.stderr)
        return 2
    task_options = parse_overrides(args.task_options)
    if args.recognizer is not None:
        task_options["recognizer"] = args.recognizer
    report = compare(
        args.dataset,
        task=args.task,
        variants=[v.strip() for v in args.variants.split(",") if v.strip()],
        sizes=args.sizes,
        jpeg=args.jpeg,
        limit=args.limit,
        out=args.out,
        device=args.device,
        dtype=args.dtype,
        overrides=parse_overrides(args.overrides),
        task_options=task_options,
        sheet_samples=args.sheet_samples,
        report_images=None if args.report_images < 0 else args.report_images,
        resume=not args.no_resume,
        progress=False if args.no_progress else None,
    )
    print(report.to_markdown())
    print(f"preproc compare: report written to {args.out} (open {args.out}/report.html)", file=sys.stderr)
    return 0

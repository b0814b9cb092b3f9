"""Does a white border around the line help Tesseract read it?

Tesseract's documentation advises a white border of about 10 px around the text
(tessdoc "Improving the quality of the output", "Borders"): line crops cut tight to the
ink leave the engine no background to find the line against. For every line of a
text-lines dataset split, degraded as ``preproc compare`` does, this reads the plain crop
and the OCR default (``enhance(crop, task="ocr")``) with borders of several widths, the
width given in units of the image's own height (so a border of 0.25 is 8 px on a 32 px
line, 2 px on the 8 px crop) and painted in the image's background level (the median
of its outermost rows and columns). It prints one JSON line per setting: the corpus CER
of each (image, border) pair.

    .venv/bin/python benchmarks/ocr_border.py ../shared/datasets/text-lines-dev \\
        --split selection --settings 8:75,10:75,16:75,24:none

Enhancement runs once per line and setting; each border only adds a Tesseract read.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from preproc.compare.ocr import OcrTask
from preproc.enhance import Enhancer
from preproc.metrics import corpus_scores


def background_level(grey: np.ndarray) -> int:
    """The median grey of the outermost rows and columns of an ``(H, W)`` uint8 image."""
    edge = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return int(np.median(edge))


def with_border(image: Image.Image, fraction: float) -> Image.Image:
    """``image`` (grey) framed by ``round(fraction * height)`` px of its background level on every side."""
    grey = np.asarray(image.convert("L"))
    pad = round(fraction * grey.shape[0])
    if pad <= 0:
        return image.convert("L")
    out = np.pad(grey, pad, mode="constant", constant_values=background_level(grey))
    return Image.fromarray(out, "L")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="selection", choices=("selection", "report", "all"))
    ap.add_argument("--settings", default="8:75,10:75", help="SIZE:JPEG,... (JPEG 'none' for lossless)")
    ap.add_argument("--borders", default="0,0.125,0.25,0.5", help="border widths in image heights")
    ap.add_argument("--limit", type=int, default=None, help="lines (spread over the split)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    task = OcrTask(split=args.split)
    records = task.load(args.dataset, args.limit)
    refs = [str(r.get("text")) for r in records]
    cs = [bool(r.get("case_sensitive", True)) for r in records]
    borders = [float(b) for b in args.borders.split(",")]
    enh = Enhancer("ocr", progress=False)
    for item in args.settings.split(","):
        size, q = item.split(":")
        jpeg = None if q == "none" else int(q)
        hyps: dict[str, list[str]] = {f"{k}@{b:g}": [] for k in ("none", "default") for b in borders}
        for r in records:
            lr = task.degrade(r, int(size), jpeg)
            images = {"none": lr, "default": enh.enhance(lr).image}
            for k, img in images.items():
                for b in borders:
                    hyps[f"{k}@{b:g}"].append(str(task.recognize(with_border(img, b), r).get("text", "")))
        cer = {k: round(corpus_scores(refs, h, cs)["cer"], 4) for k, h in hyps.items()}
        print(json.dumps({"size": int(size), "jpeg": jpeg, "lines": len(records), "cer": cer}), flush=True)
    task.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

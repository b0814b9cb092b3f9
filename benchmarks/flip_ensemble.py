"""Does a geometric self-ensemble of text-sr help Tesseract?

Self-ensembling is standard in super-resolution: the crop is also run flipped, each
output flipped back, and the outputs averaged (pixels, not readings). For every line of
a text-lines dataset split, degraded as ``preproc compare`` does, this reads the OCR
default (``enhance(crop, task="ocr")``) three ways: as it ships, averaged with the
left-right flip, and averaged over the four flips (left-right, up-down, both). It prints
the corpus CER of each per setting (one JSON line per setting).

    .venv/bin/python benchmarks/flip_ensemble.py ../shared/datasets/text-lines-dev \\
        --split selection --settings 8:75,10:75

The flips wrap ``upscale`` on the loaded instance of every backend the default can pick
(``text-sr``, and ``text-sr-small`` for crops at most 11 px tall), so gate, routing, line
isolation and resizing stay exactly those of the default.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from preproc.compare.ocr import OcrTask
from preproc.enhance import Enhancer
from preproc.metrics import corpus_scores
from preproc.upscalers.auto import auto_backends

#: Name -> the flipped dimensions averaged with the plain output ((B, C, H, W): -1 is left-right).
ENSEMBLES: dict[str, tuple[tuple[int, ...], ...]] = {"plain": (), "lr": ((-1,),), "four": ((-1,), (-2,), (-2, -1))}


def flip_averaged(upscale: Callable[[torch.Tensor], torch.Tensor],
                  flips: Sequence[tuple[int, ...]]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``upscale`` averaged with its outputs of the input flipped along each of ``flips`` (flipped back)."""
    def run(batch: torch.Tensor) -> torch.Tensor:
        outs = [upscale(batch)] + [upscale(batch.flip(dims)).flip(dims) for dims in flips]
        return torch.stack(outs).mean(0)
    return run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="selection", choices=("selection", "report", "all"))
    ap.add_argument("--settings", default="8:75,10:75", help="SIZE:JPEG,... (JPEG 'none' for lossless)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    task = OcrTask(split=args.split)
    records = task.load(args.dataset, None)
    refs = [str(r.get("text")) for r in records]
    cs = [bool(r.get("case_sensitive", True)) for r in records]
    enh = Enhancer("ocr", progress=False)
    names = auto_backends("ocr", enh.device)  # every model the default can pick (small crops have their own)
    ups = [enh.get_upscaler(n) for n in names]
    plains = [up.upscale for up in ups]
    for item in args.settings.split(","):
        size, q = item.split(":")
        jpeg = None if q == "none" else int(q)
        hyps: dict[str, list[str]] = {k: [] for k in ENSEMBLES}
        for r in records:
            lr = task.degrade(r, int(size), jpeg)
            for k, flips in ENSEMBLES.items():
                for up, plain in zip(ups, plains):
                    up.upscale = flip_averaged(plain, flips)
                hyps[k].append(str(task.recognize(enh.enhance(lr).image, r).get("text", "")))
        for up, plain in zip(ups, plains):
            up.upscale = plain
        cer = {k: round(corpus_scores(refs, h, cs)["cer"], 4) for k, h in hyps.items()}
        print(json.dumps({"size": int(size), "jpeg": jpeg, "lines": len(records), "backends": names, "cer": cer}))
    task.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

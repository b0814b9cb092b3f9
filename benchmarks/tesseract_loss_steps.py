"""Short fine-tunes of text-sr-small through Tesseract's network: what do they do to held-out readings?

A diagnostic for the recognition loss of ``train-text-sr --recognizer tesseract``. It
fine-tunes the shipped small-crop model (``preproc/weights/text_sr_small_x4.safetensors``)
for ``--steps`` steps on generator-v2 batches of 6-12 px lines (seed 21; Adam, linear
warm-up over 100 steps, then the constant ``--lr``; bf16 autocast) with the loss
``pixel + WEIGHT * tesseract`` (``--pixel 0`` leaves the pixel term out), and reports,
before and after:

* ``selection``: Tesseract's CER (single-line mode) on ``--lines`` selection lines of the
  development set at 8 and 10 px, lossless and JPEG 75 (as training validation does);
* ``synthetic``: Tesseract's CER (raw-line mode, ``--psm 13``) on the text-box crops of
  the SR outputs of 128 held-out generator lines (seed 999), and the port's best-path CER
  on the same crops: does what the loss asks of the training batches carry over to
  lines of the same kind it has not seen?

One run at a time (it takes both cores), for example:

    .venv/bin/python benchmarks/tesseract_loss_steps.py ../shared/datasets/text-lines-dev --weight 0
    .venv/bin/python benchmarks/tesseract_loss_steps.py ../shared/datasets/text-lines-dev --weight 1 --pixel 0 \\
        --readable 1.0 --lr 2e-5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from preproc.metrics import corpus_scores
from preproc.recognize.ocr import TesseractOCR
from preproc.train.data import DataConfig, make_text_batch
from preproc.train.loss import text_sr_loss
from preproc.train.model import init_net
from preproc.train.tesseract_loss import PADDING, TesseractLoss
from preproc.train.validate import TesseractLine, build_cases, evaluate, net_upscaler

SMALL = "preproc/weights/text_sr_small_x4.safetensors"


def synthetic_cer(net: torch.nn.Module, loss: TesseractLoss, batches: list, raw: TesseractOCR) -> dict[str, float]:
    """Tesseract (raw line) and the port (best path) on the text-box crops of held-out SR outputs."""
    refs, tess, ours = [], [], []
    with torch.no_grad():
        for lr, hr, texts in batches:
            sr = net(lr).clamp(0, 1)
            views, widths = loss.views(sr, hr)
            log_probs = loss.net(views, widths)
            for i, text in enumerate(texts):
                ink = hr[i, 0] < 0.5
                rows, cols = ink.any(1).nonzero(), ink.any(0).nonzero()
                if len(rows) == 0:
                    continue
                y0, x0 = max(0, int(rows[0]) - PADDING), max(0, int(cols[0]) - PADDING)
                y1, x1 = int(rows[-1]) + 1 + PADDING, int(cols[-1]) + 1 + PADDING
                crop = (sr[i, 0, y0:y1, x0:x1].numpy() * 255).round().astype(np.uint8)
                refs.append(text)
                tess.append(raw(Image.fromarray(crop)).text.strip())
                ours.append(loss.net.greedy_decode(log_probs[: widths[i] // 3, i:i + 1])[0])
    return {"tesseract": round(corpus_scores(refs, tess)["cer"], 4), "port": round(corpus_scores(refs, ours)["cer"], 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight", type=float, default=0.3, help="weight of the Tesseract term (0: pixel loss alone)")
    ap.add_argument("--pixel", type=float, default=1.0, help="weight of the pixel term (L1 + edge)")
    ap.add_argument("--target", choices=("text", "target"), default="text")
    ap.add_argument("--readable", type=float, default=None)
    ap.add_argument("--lines", type=int, default=60)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(2)
    loss = TesseractLoss(target=args.target, readable=args.readable)
    net = init_net(SMALL, 64, None)
    ocr, raw = TesseractLine(), TesseractOCR(mode=13)
    cases = build_cases(args.dataset, args.lines, (8, 10), split="selection")
    cfg = DataConfig.v2(lr_heights=(6, 12))
    held = [make_text_batch(999, i, cfg) for i in range(8)]

    def report(tag: str) -> None:
        net.eval()
        sel = evaluate(cases, net_upscaler(net), ocr)
        syn = synthetic_cer(net, loss, held, raw)
        net.train()
        print(json.dumps({"at": tag, "selection": {k: round(v, 4) for k, v in sel.items()}, "synthetic": syn}), flush=True)

    report("start")
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    t0 = time.perf_counter()
    for step in range(args.steps):
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 100)
        lr, hr, texts = make_text_batch(21, step, cfg)
        with autocast:
            pred = net(lr)
        pred = pred.float()
        total = args.pixel * text_sr_loss(pred, hr, 0.5)
        if args.weight:
            with autocast:
                total = total + args.weight * loss(pred, hr, texts)
        opt.zero_grad()
        total.backward()
        opt.step()
    report(f"after {args.steps} steps ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

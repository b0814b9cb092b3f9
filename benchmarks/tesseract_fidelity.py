"""How closely does our PyTorch port of Tesseract's network read what Tesseract reads?

For the lines of a text-lines dataset split, degraded as training validation does
(``preproc.train.validate.build_cases``: area-resized to SIZE px, optionally JPEG'd),
this upscales each crop with a text-sr weights file (the shipped small-crop model by
default), then reads the output twice:

* **Tesseract** itself, single-line mode (``--psm 7``, tesserocr), as validation and
  compare do: its own line finding, Leptonica scaling, integer network, beam search;
* **the port** (``preproc.recognize.tesseract_torch.TesseractLSTM``, float, no rounding):
  the output cropped to its ink (+4 px), scaled and normalised as Tesseract does,
  best-path decoded - what the training loss (``--recognizer tesseract``) sees.

It prints one JSON line per setting: the CER of each reading against the truth and the
CER of the port's reading against Tesseract's (their disagreement), and the port's time
per line (forward and backward), next to Tesseract's read time per line, measured in
the same process.

    .venv/bin/python benchmarks/tesseract_fidelity.py ../shared/datasets/text-lines-dev \\
        --split selection --lines 60 --settings 8:none,8:75,10:none,10:75
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from preproc.metrics import corpus_scores
from preproc.train.model import load_weights
from preproc.train.tesseract_loss import TesseractLoss
from preproc.train.validate import TesseractLine, build_cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="selection", choices=("selection", "report", "all"))
    ap.add_argument("--lines", type=int, default=60, help="lines spread evenly over the split (default 60)")
    ap.add_argument("--settings", default="8:none,8:75,10:none,10:75", help="SIZE:JPEG,... (JPEG 'none' for lossless)")
    ap.add_argument("--weights", default="preproc/weights/text_sr_small_x4.safetensors", help="text-sr weights")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    net = load_weights(args.weights).eval()
    loss = TesseractLoss()
    port = loss.net
    ocr = TesseractLine()
    for setting in args.settings.split(","):
        size, q = setting.split(":")
        cases = build_cases(args.dataset, args.lines, (int(size),), (None if q == "none" else int(q),), split=args.split)
        refs, tess, ours = [], [], []
        t_port = t_tess = 0.0
        for c in cases:
            with torch.no_grad():
                sr = net(torch.from_numpy(c.image)[None, None]).clamp(0, 1)
            t0 = time.perf_counter()
            tess.append(ocr.read(sr[0, 0].numpy()))
            t_tess += time.perf_counter() - t0
            t0 = time.perf_counter()
            x = sr.clone().requires_grad_(True)
            views, widths = loss.views(x, x.detach())
            log_probs = port(views, widths)
            port.ctc_loss(log_probs, [c.text]).backward()
            t_port += time.perf_counter() - t0
            ours.append(port.greedy_decode(log_probs.detach())[0])
            refs.append(c.text)
        flags = [c.case_sensitive for c in cases]
        print(json.dumps({
            "size": int(size), "jpeg": q, "lines": len(cases),
            "cer_tesseract": round(corpus_scores(refs, tess, flags)["cer"], 4),
            "cer_port": round(corpus_scores(refs, ours, flags)["cer"], 4),
            "cer_port_vs_tesseract": round(corpus_scores(tess, ours)["cer"], 4),
            "s_per_line_tesseract": round(t_tess / len(cases), 4),
            "s_per_line_port_forward_backward": round(t_port / len(cases), 4),
        }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

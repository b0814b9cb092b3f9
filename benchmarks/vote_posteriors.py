"""Can Tesseract's own probabilities combine the vote's renderings better than its strings?

The vote (:mod:`preproc.vote`) aligns the eight *strings* Tesseract reads from the
renderings of one crop (:data:`preproc.vote.DEFAULT_CANDIDATES`). Tesseract's network
gives more than a string: a probability for every character at every step, which the
PyTorch port of that network (:mod:`preproc.recognize.tesseract_torch`) reproduces. Two
ways to use them, measured here against the vote on the lines of a text-lines dataset
split, degraded as ``preproc compare`` does:

* **posterior averaging**: every rendering is cut at one box (the ink box of the
  ``default`` image, in crop coordinates, plus one crop pixel), so after Tesseract's
  scaling to 36 px all renderings share one time axis; their per-step distributions are
  averaged (probabilities, or log-probabilities) and best-path decoded - the usual
  ensemble of CTC models;
* **rescoring**: the vote's text and the eight readings are the hypotheses; each is scored
  by its CTC likelihood under every rendering's distributions (summed log-likelihood, or
  the log of the mean likelihood), and the most likely one is the answer.

It prints one JSON line per setting: the corpus CER of Tesseract on the plain crop and on
the default, of the vote, of each combination, and of the oracle among the hypotheses
(the best of them per line, which no rule can beat), and the seconds per line of the
Tesseract reads and of the port's forward pass over the eight renderings.

    .venv/bin/python benchmarks/vote_posteriors.py ../shared/datasets/text-lines-dev \\
        --split selection --settings 8:75,10:75,8:none,10:none
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from preproc.compare.ocr import OcrTask
from preproc.compare.variants import CandidateContext, candidate_fn
from preproc.gate import otsu_threshold
from preproc.metrics import score_line
from preproc.recognize.tesseract_torch import TesseractLSTM, load_tesseract_lstm
from preproc.vote import DEFAULT_CANDIDATES, vote

MARGIN = 1.0  # crop pixels around the default image's ink box


def shared_box(default: Image.Image, crop: Image.Image) -> tuple[float, float, float, float]:
    """The ink box of the default image in crop coordinates ``(y0, y1, x0, x1)``, plus :data:`MARGIN`."""
    g = np.asarray(default.convert("L"), dtype=np.float32) / 255.0
    t = otsu_threshold(g)
    ink = g > t if np.median(g) < 0.5 else g <= t
    rows, cols = np.nonzero(ink.any(1))[0], np.nonzero(ink.any(0))[0]
    s = default.size[0] / crop.size[0]
    if len(rows) == 0:
        return 0.0, float(crop.size[1]), 0.0, float(crop.size[0])
    return (max(0.0, rows[0] / s - MARGIN), min(float(crop.size[1]), (rows[-1] + 1) / s + MARGIN),
            max(0.0, cols[0] / s - MARGIN), min(float(crop.size[0]), (cols[-1] + 1) / s + MARGIN))


def posteriors(port: TesseractLSTM, images: list[Image.Image], crop: Image.Image,
               box: tuple[float, float, float, float]) -> list[torch.Tensor]:
    """Per image: the port's log-probabilities ``(T, C)`` of the image cut at ``box`` (crop coordinates)."""
    y0, y1, x0, x1 = box
    xs = []
    for im in images:
        s = im.size[0] / crop.size[0]
        g = np.asarray(im.convert("L"), dtype=np.float32)[round(y0 * s):round(y1 * s), round(x0 * s):round(x1 * s)]
        xs.append(port.prepare(torch.from_numpy(g / 255.0)[None, None]))
    widths = [x.shape[-1] for x in xs]
    batch = torch.cat([F.pad(x, (0, max(widths) - x.shape[-1])) for x in xs])
    lp = port(batch, widths)
    return [lp[: w // port.pool[0], b] for b, w in enumerate(widths)]


def resample(lp: torch.Tensor, steps: int) -> torch.Tensor:
    """``lp`` ``(T, C)`` linearly resampled to ``steps`` steps (renderings differ by a step or two)."""
    if lp.shape[0] == steps:
        return lp
    return F.interpolate(lp.T[None], size=steps, mode="linear", align_corners=True)[0].T


def ctc_nll(port: TesseractLSTM, lp: torch.Tensor, hyps: list[str]) -> np.ndarray:
    """Negative log-likelihood of each hypothesis under one rendering's ``(T, C)`` distributions."""
    targets, lengths = port.encode(hyps)
    t = lp.shape[0]
    nll = F.ctc_loss(lp[:, None].expand(t, len(hyps), lp.shape[1]), targets, torch.full((len(hyps),), t),
                     lengths, blank=port.null_char, reduction="none", zero_infinity=False).numpy()
    return np.where(np.isfinite(nll), nll, 1e4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="selection", choices=("selection", "report", "all"))
    ap.add_argument("--settings", default="8:75,10:75", help="SIZE:JPEG,... (JPEG 'none' for lossless)")
    ap.add_argument("--limit", type=int, default=None, help="lines spread evenly over the split (default all)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    task = OcrTask(split=args.split)
    records = task.load(args.dataset, args.limit)
    ctx = CandidateContext("ocr")
    cands = list(DEFAULT_CANDIDATES)
    fns = [candidate_fn(c, "ocr") for c in cands]
    port = load_tesseract_lstm()
    for setting in args.settings.split(","):
        size, q = setting.split(":")
        jpeg = None if q == "none" else int(q)
        edits: dict[str, int] = defaultdict(int)
        chars, t_read, t_port = 0, 0.0, 0.0
        for r in records:
            ref, cs = str(r.get("text")), bool(r.get("case_sensitive", True))
            crop = task.degrade(r, int(size), jpeg)
            images = [fn(crop, ctx) for fn in fns]
            t0 = time.perf_counter()
            reads = [task.recognize(im, r) for im in images]
            t_read += time.perf_counter() - t0
            t0 = time.perf_counter()
            with torch.no_grad():
                lps = posteriors(port, images, crop, shared_box(images[cands.index("default")], crop))
            t_port += time.perf_counter() - t0
            voted = vote(reads)[0]
            steps = lps[0].shape[0]
            aligned = torch.stack([resample(lp, steps) for lp in lps])
            hyps = [h for h in dict.fromkeys([voted] + [x["text"] for x in reads]) if h.strip()] or [""]
            nll = np.stack([ctc_nll(port, lp, hyps) for lp in lps], 1)  # (hypotheses, renderings)
            out = {
                "none": reads[cands.index("none")]["text"],
                "default": reads[cands.index("default")]["text"],
                "vote": voted,
                "mean_prob": port.greedy_decode(aligned.exp().mean(0).log()[:, None])[0],
                "mean_logprob": port.greedy_decode(aligned.mean(0)[:, None])[0],
                "rescore_sum": hyps[int(np.argmin(nll.sum(1)))],
                "rescore_mixture": hyps[int(np.argmin(-np.logaddexp.reduce(-nll, axis=1)))],
            }
            for k, text in out.items():
                edits[k] += score_line(ref, text, cs).char_edits
            edits["oracle"] += min(score_line(ref, h, cs).char_edits for h in hyps)
            chars += score_line(ref, "", cs).chars
        n = max(len(records), 1)
        print(json.dumps({"size": int(size), "jpeg": jpeg, "lines": len(records),
                          **{f"cer_{k}": round(v / max(chars, 1), 4) for k, v in edits.items()},
                          "s_per_line_tesseract_reads": round(t_read / n, 4),
                          "s_per_line_port_forward": round(t_port / n, 4)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

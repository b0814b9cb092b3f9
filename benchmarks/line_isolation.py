"""Line isolation on RENDERED lines: Tesseract CER of the OCR default with and without it.

Renders ``--lines`` whole lines (generator v2's renderer, ``preproc.train.render``) of
which a share ``--neighbour-prob`` catch strokes of the line above or below at their
edge, as loosely cut real crops do; dark ink on paper of random grey, area-downscaled to
each ``--sizes`` line height, lossless and JPEG 75. Each crop is read by Tesseract
(single-line mode) as it is, enhanced by ``preproc.enhance(task="ocr")`` with
``isolate_line=False`` and with the default (on). Prints CER per setting, the paired
difference (on - off) with its standard error over lines, and lines better / worse.
No line of any development set is used.

    HF_HUB_OFFLINE=1 OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/line_isolation.py --lines 120
"""

from __future__ import annotations

import argparse
import io
import json
import sys

import cv2
import numpy as np
from PIL import Image

import preproc
from preproc.metrics import score_line
from preproc.recognize.ocr import TesseractOCR
from preproc.train.render import render_text_line


def render_crops(n: int, seed: int, neighbour_prob: float, hr_height: int = 96) -> list[tuple[np.ndarray, str]]:
    """``n`` rendered lines as grey float images in [0, 1] (dark ink on paper) and their text."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        ink, text = render_text_line(rng, hr_height, int(rng.integers(6, 16)) * hr_height // 2,
                                     neighbour_prob=neighbour_prob, short_prob=0.5)
        if not text.strip():
            continue
        paper = rng.uniform(0.75, 1.0)
        ink_level = rng.uniform(0.0, max(0.05, paper - 0.45))
        out.append((paper - ink * (paper - ink_level), text))
    return out


def degrade(grey: np.ndarray, size: int, jpeg: int | None) -> np.ndarray:
    """Area-downscale to ``size`` px height, 8 bit, optionally JPEG; uint8 ``(size, W)``."""
    h, w = grey.shape
    small = cv2.resize(grey, (max(1, round(w * size / h)), size), interpolation=cv2.INTER_AREA)
    img = Image.fromarray(np.clip(np.rint(small * 255), 0, 255).astype(np.uint8), "L")
    if jpeg is not None:
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=jpeg)
        img = Image.open(io.BytesIO(buf.getvalue())).convert("L")
    return np.asarray(img)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=120)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--neighbour-prob", type=float, default=0.5)
    ap.add_argument("--sizes", default="10,16,24")
    ap.add_argument("--json", help="write the table to this file")
    args = ap.parse_args(argv)
    crops = render_crops(args.lines, args.seed, args.neighbour_prob)
    ocr = TesseractOCR("eng", mode="line")
    enh = preproc.Enhancer(task="ocr")
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        for jpeg in (None, 75):
            edits = {"none": [], "off": [], "on": []}
            chars, changed = [], 0
            for grey, text in crops:
                lr = degrade(grey, size, jpeg)
                off = enh.enhance(lr, isolate_line=False)
                on = enh.enhance(lr)
                changed += bool(on.meta.get("line_fragments_removed"))
                for name, img in (("none", Image.fromarray(lr, "L")), ("off", off.image), ("on", on.image)):
                    edits[name].append(score_line(text, ocr.read(img).text).char_edits)
                chars.append(max(len(text), 1))
            n_chars = float(sum(chars))
            d = np.array(edits["on"]) - np.array(edits["off"])
            se = float(d.std(ddof=1) * np.sqrt(len(d))) / n_chars if len(d) > 1 else float("nan")
            row = {"size": size, "jpeg": jpeg, "lines": len(crops), "changed": changed,
                   **{f"cer_{k}": sum(v) / n_chars for k, v in edits.items()},
                   "diff_on_minus_off": float(d.sum()) / n_chars, "se": se,
                   "better": int((d < 0).sum()), "worse": int((d > 0).sum())}
            rows.append(row)
            print(f"{size:>3} px {'q75' if jpeg else 'lossless':>8}: CER none {row['cer_none']:.3f}  "
                  f"default without isolation {row['cer_off']:.3f}  with {row['cer_on']:.3f}  "
                  f"(on - off {row['diff_on_minus_off']:+.4f} +- {se:.4f}; {row['better']} better / "
                  f"{row['worse']} worse; {changed} of {len(crops)} crops changed)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

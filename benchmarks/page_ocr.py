"""Seconds and peak memory of ``preproc.read_page`` on a 1200x1600 page at x4, tiled (issue 15).

    flock /tmp/preproc-heavy.lock nice -n 5 .venv/bin/python benchmarks/page_ocr.py \\
        --backends bicubic,text-sr --out /tmp/page_ocr.json

The page: text written for this project (``datasets/make_page_sample.py``), two columns,
rendered at 4x with DejaVu Sans and area-downscaled to 1200x1600 (body line height
``--body`` px, 10 by default). Every backend runs in its own child process so each one's
peak resident memory (``ru_maxrss``) is its own; a child that only imports preproc and
loads the backend gives the baseline to subtract. Reported per backend: seconds per page
(total and by stage: measure, enhance, Tesseract, PDF), tiles, peak RSS, peak RSS above the
baseline, and the ratio of the total time to bicubic's (the baseline backend), which is
what to compare between machines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def make_page(width: int = 1200, height: int = 1600, body: int = 10):
    """The benchmark page (PIL, grey)."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    sys.path.insert(0, str(ROOT / "datasets"))
    from make_page_sample import PAGES

    words = " ".join(" ".join(p["body"] + p["small"] + [p["heading"]]) for p in PAGES).split()
    k = 4
    big = Image.new("L", (width * k, height * k), 250)
    d = ImageDraw.Draw(big)
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", int(body * k * 0.8))
    col_w = (width * k - 3 * 60 * k) // 2
    i = 0
    for col in range(2):
        x0 = 60 * k + col * (col_w + 60 * k)
        y = 60 * k
        while y < (height - 60) * k:
            line, n = [], 0
            while True:
                w = words[(i + n) % len(words)]
                if d.textlength(" ".join([*line, w]), font=font) > col_w:
                    break
                line.append(w)
                n += 1
            d.text((x0, y), " ".join(line), font=font, fill=20)
            i += n
            y += int(body * k * 1.3)
    small = big.resize((width, height), Image.BOX)
    return Image.fromarray(np.asarray(small), "L")


def child(backend: str, width: int, height: int, body: int, scale: float, baseline: bool) -> dict:
    """Run in a child process: one page through read_page with ``backend`` (or only load it)."""
    from preproc.enhance import Enhancer
    from preproc.page import PageReader, read_page, write_searchable_pdf

    page = make_page(width, height, body)
    enh = Enhancer("ocr", backend, progress=False)
    enh.get_upscaler(backend, scale=scale)
    reader = PageReader()
    out = {"backend": backend}
    if not baseline:
        t0 = time.perf_counter()
        res = read_page(page, enhancer=enh, reader=reader, scale=scale, progress=False)
        t1 = time.perf_counter()
        write_searchable_pdf(Path(os.environ.get("TMPDIR", "/tmp")) / f"page_ocr_{os.getpid()}.pdf", res.original, res.words)
        t2 = time.perf_counter()
        out.update(seconds=round(t2 - t0, 2), enhance_seconds=round(res.meta.get("upscaler_seconds", 0.0), 2),
                   ocr_seconds=res.meta["ocr_seconds"], pdf_seconds=round(t2 - t1, 2),
                   tiles=res.meta.get("tiles"), tile=res.meta.get("tile"), read_size=res.meta["read_size"],
                   words=len(res.words), dtype=res.meta.get("dtype"))
        (Path(os.environ.get("TMPDIR", "/tmp")) / f"page_ocr_{os.getpid()}.pdf").unlink(missing_ok=True)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backends", default="bicubic,text-sr")
    ap.add_argument("--width", type=int, default=1200)
    ap.add_argument("--height", type=int, default=1600)
    ap.add_argument("--body", type=int, default=10, help="body line height in px")
    ap.add_argument("--scale", type=float, default=4.0)
    ap.add_argument("--out", default=None, help="JSON results file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.width, args.height, args.body, args.scale, args.baseline)))
        return
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    rows = []
    for backend in args.backends.split(","):
        for baseline in (True, False):
            cmd = [sys.executable, __file__, "--child", backend, "--width", str(args.width), "--height",
                   str(args.height), "--body", str(args.body), "--scale", str(args.scale)]
            r = subprocess.run([*cmd, *(["--baseline"] if baseline else [])], capture_output=True, text=True,
                               env=env, check=True)
            rec = json.loads(r.stdout.strip().splitlines()[-1])
            if baseline:
                base = rec["peak_rss_mb"]
                continue
            rec["baseline_rss_mb"] = base
            rec["page_rss_mb"] = round(rec["peak_rss_mb"] - base, 1)
            rows.append(rec)
            print(json.dumps(rec), flush=True)
    ref = next((r["seconds"] for r in rows if r["backend"] == "bicubic"), None)
    for r in rows:
        r["time_vs_bicubic"] = round(r["seconds"] / ref, 2) if ref else None
    doc = {"page": [args.width, args.height], "body_line_height": args.body, "scale": args.scale,
           "cpus": os.cpu_count(), "rows": rows}
    print(json.dumps(doc, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()

"""Build a development set of whole pages from real text-line crops (issue 15).

    .venv/bin/python datasets/make_page_set.py --src ../shared/datasets/text-lines-dev \\
        --out /tmp/pages-dev --pages 24 --seed 0

Each page is assembled from real line crops of ``text-lines-dev`` (the pages are not
committed: the line images keep their own licenses, see that set's README). A page takes
its lines from one source (UW3 book lines, case-sensitive; or SROIE receipt lines,
case-insensitive), so its text is one kind of document:

* body lines are scaled to ``--body`` px line height (the crop's height, as the line task
  measures it; default 40), left-aligned at a margin of 5-10 % of the page width, some
  indented, with a line pitch of 1.2-1.6 line heights and a paragraph gap every 3-6 lines;
* mixed sizes: 60 % of pages start with a heading line at 1.5x the body height, 40 % end
  with one to three small-print lines at 0.75x;
* 30 % of pages carry a picture (a smooth grey gradient with filled shapes and light
  noise) between paragraphs; margins of 4-8 % at top and bottom;
* every crop's background is flattened to white (divided by its 90th-percentile grey),
  so pasted crops do not show rectangles.

Output (the page dataset format of ``preproc compare --task page``, docs/ocr.md):
``OUT/images/<id>.png`` (8-bit grey) and ``OUT/manifest.jsonl`` with ``id``, ``image``,
``text`` (the page's lines top to bottom, joined by ``\\n``), ``lines`` (``[{"box": [x0, y0,
x1, y1], "text": ...}]`` in page pixels), ``body_line_height`` (px), ``case_sensitive``,
``source``, ``width``, ``height``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image


def flatten(crop: Image.Image) -> Image.Image:
    """The crop in grey with its background mapped to white."""
    a = np.asarray(crop.convert("L"), dtype=np.float32)
    bg = max(float(np.percentile(a, 90)), 1.0)
    return Image.fromarray(np.clip(a * (255.0 / bg), 0, 255).astype(np.uint8), "L")


def picture(w: int, h: int, rng: random.Random) -> Image.Image:
    """A synthetic photograph-like block: grey gradient, filled ellipses, light noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = 90 + 90 * (xx / max(w, 1)) * rng.uniform(0.5, 1.0) + 50 * (yy / max(h, 1))
    for _ in range(rng.randint(2, 4)):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        rx, ry = rng.uniform(0.1, 0.35) * w, rng.uniform(0.1, 0.35) * h
        inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
        a[inside] = rng.uniform(20, 230)
    a += np.random.default_rng(rng.randint(0, 2**31)).normal(0, 8, a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default="../shared/datasets/text-lines-dev", help="text-line dataset (manifest.jsonl)")
    ap.add_argument("--out", default="/tmp/pages-dev", help="output folder (outside the repository)")
    ap.add_argument("--pages", type=int, default=24)
    ap.add_argument("--body", type=int, default=40, help="body line height in px on the stored page")
    ap.add_argument("--width", type=int, default=1300, help="page width in px")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    src = Path(args.src)
    rows = [json.loads(line) for line in (src / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    pools = {
        "uw3": [r for r in rows if r["source"] in ("uw3-calamari", "tesseract-test")],
        "sroie": [r for r in rows if r["source"] == "sroie" and len(r["text"].strip()) >= 2],
    }
    rng = random.Random(args.seed)
    for pool in pools.values():
        rng.shuffle(pool)
    used = {k: 0 for k in pools}
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    B, W = args.body, args.width
    records = []
    for i in range(args.pages):
        kind = "uw3" if i % 3 == 0 else "sroie"  # 68+13 UW3/tesseract lines, 800 SROIE lines
        pool = pools[kind]
        n_lines = rng.randint(10, 16) if kind == "uw3" else rng.randint(12, 20)
        pitch = rng.uniform(1.2, 1.6)
        left = int(W * rng.uniform(0.05, 0.10))
        right = W - int(W * rng.uniform(0.05, 0.08))
        y = int(B * rng.uniform(2.0, 4.0))
        heading = rng.random() < 0.6
        small = rng.randint(1, 3) if rng.random() < 0.4 else 0
        pic_at = rng.randint(2, max(3, n_lines - 3)) if rng.random() < 0.3 else -1
        placed: list[tuple[Image.Image, int, int, str]] = []
        next_par = rng.randint(3, 6)
        total = n_lines + small
        for j in range(total):
            r = pool[used[kind] % len(pool)]
            used[kind] += 1
            crop = flatten(Image.open(src / r["image"]))
            lh = B * (1.5 if (heading and j == 0) else 0.75 if j >= n_lines else 1.0)
            lh = int(round(lh))
            cw = max(1, round(crop.width * lh / crop.height))
            if cw > right - left:  # too wide for the page: scale down to fit
                lh = max(8, int(lh * (right - left) / cw))
                cw = right - left
            crop = crop.resize((cw, lh), Image.LANCZOS)
            if j == pic_at:
                ph = int(B * rng.uniform(3, 6))
                pw = int((right - left) * rng.uniform(0.35, 0.7))
                placed.append((picture(pw, ph, rng), left + int(rng.uniform(0, 0.2) * (right - left)), y, ""))
                y += ph + int(B * 0.8)
            indent = int(B * rng.choice([0, 0, 0, 1.5])) if kind == "uw3" else int(rng.uniform(0, 0.3) * (right - left - cw))
            x = left + min(indent, max(0, right - left - cw))
            placed.append((crop, x, y, r["text"].strip()))
            y += int(round(lh * pitch))
            if j + 1 == next_par and j + 1 < n_lines:
                y += int(B * 0.8)
                next_par += rng.randint(3, 6)
            if j + 1 == n_lines and small:
                y += int(B * 0.8)
        H = y + int(B * rng.uniform(2.0, 4.0))
        page = Image.new("L", (W, H), 255)
        lines = []
        for img, x, yy, text in placed:
            page.paste(img, (x, yy))
            if text:
                lines.append({"box": [x, yy, x + img.width, yy + img.height], "text": text})
        pid = f"page-{i:03d}"
        page.save(out / "images" / f"{pid}.png", optimize=True)
        records.append({
            "id": pid, "image": f"images/{pid}.png", "text": "\n".join(ln["text"] for ln in lines),
            "lines": lines, "body_line_height": B, "case_sensitive": kind == "uw3", "source": kind,
            "width": W, "height": H,
        })
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (out / "README.md").write_text(
        f"# pages-dev\n\n{len(records)} pages built by datasets/make_page_set.py (seed {args.seed}, body "
        f"{B} px) from {src}. The line images keep the licenses stated in that set's README.\n",
        encoding="utf-8",
    )
    print(f"wrote {len(records)} pages to {out}")


if __name__ == "__main__":
    main()

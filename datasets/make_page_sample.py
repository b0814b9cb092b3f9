"""Regenerate ``datasets/page-sample/``: two small pages rendered from text written for this project.

Each page holds a heading (1.5x body size), body paragraphs and a line of small print
(0.75x), rendered with free fonts Debian ships (DejaVu, Liberation) in dark ink on
light paper with a slight blur and noise, deterministically (``random.Random(SEED)``);
page 2 also carries a picture block (grey gradient with shapes). The body line height
is ``BODY`` px on the stored page; ``preproc compare --task page`` and the demo downscale
it (e.g. to 10 px). Run from the project root:

    .venv/bin/python datasets/make_page_sample.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SEED = 20261201
OUT = Path(__file__).resolve().parent / "page-sample"
FONT_DIR = Path("/usr/share/fonts/truetype")
BODY = 30  #: body line height (px): the font size is 0.8 of it
PAGES = [
    {
        "font": "dejavu/DejaVuSerif.ttf",
        "heading": "Notice to all residents",
        "body": [
            "The water supply to the east wing will be",
            "turned off on Tuesday from 09:00 to 13:30",
            "while the old pipes in the cellar are replaced.",
            "",
            "Please fill a few bottles the evening before",
            "and keep the taps closed during the work.",
            "The lift stays in service all day.",
        ],
        "small": ["Questions: caretaker office, room 4, phone 0172 555 019"],
        "picture": False,
    },
    {
        "font": "liberation/LiberationSans-Regular.ttf",
        "heading": "Garden market receipt",
        "body": [
            "2 bags of potting soil          11.80",
            "1 lemon tree, small              24.50",
            "6 tomato seedlings               7.20",
            "",
            "Subtotal                         43.50",
            "Paid by card, 12 May 2027, 16:05",
        ],
        "small": ["Plants may be returned within 14 days with this receipt"],
        "picture": True,
    },
]


def picture(w: int, h: int, rng: random.Random) -> Image.Image:
    """A photograph-like block: a grey gradient with filled ellipses."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = 100 + 80 * xx / w + 40 * yy / h
    for _ in range(3):
        cx, cy, rx, ry = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.15, 0.3) * w, rng.uniform(0.15, 0.3) * h
        a[((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1] = rng.uniform(30, 220)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "L")


def render(spec: dict, rng: random.Random) -> tuple[Image.Image, list[dict]]:
    """One page and its line boxes/texts (reading order)."""
    path = FONT_DIR / spec["font"]
    width, left = 760, 48
    rows: list[tuple[str, int]] = [(spec["heading"], int(BODY * 1.5))]
    rows += [(t, BODY) for t in spec["body"]] + [("", BODY)] + [(t, int(BODY * 0.75)) for t in spec["small"]]
    height = 60 + sum(int(lh * 1.35) for _, lh in rows) + (170 if spec["picture"] else 0) + 40
    page = Image.new("L", (width, height), 246)
    d = ImageDraw.Draw(page)
    y, lines = 50, []
    for i, (text, lh) in enumerate(rows):
        if spec["picture"] and i == 4:
            page.paste(picture(300, 140, rng), (left + 60, y))
            y += 165
        if text:
            font = ImageFont.truetype(str(path), int(lh * 0.8))
            d.text((left, y), text, font=font, fill=25)
            x0, y0, x1, y1 = d.textbbox((left, y), text, font=font)
            lines.append({"box": [x0, y0, x1, y1], "text": " ".join(text.split())})
        y += int(lh * 1.35)
    page = page.filter(ImageFilter.GaussianBlur(0.5))
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 1.2, (height, width))
    page = Image.fromarray(np.clip(np.asarray(page, dtype=np.float32) + noise, 0, 255).astype(np.uint8), "L")
    return page, lines


def main() -> None:
    rng = random.Random(SEED)
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, spec in enumerate(PAGES, 1):
        page, lines = render(spec, rng)
        pid = f"page-{i:02d}"
        page.save(OUT / "images" / f"{pid}.png", optimize=True)
        rows.append({"id": pid, "image": f"images/{pid}.png", "text": "\n".join(ln["text"] for ln in lines),
                     "lines": lines, "body_line_height": BODY, "case_sensitive": True,
                     "font": spec["font"].split("/")[-1], "width": page.width, "height": page.height})
    (OUT / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} pages to {OUT}")


if __name__ == "__main__":
    main()

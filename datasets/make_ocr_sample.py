"""Regenerate ``datasets/ocr-sample/``: text lines rendered from open fonts.

The sentences below were written for this project (no third-party text). Each line is
rendered with one of the free fonts Debian ships (DejaVu, Liberation, GNU FreeFont:
``apt-get install fonts-dejavu-core fonts-liberation fonts-freefont-ttf``) at about
24 px x-height-ish body size, in dark ink on light paper with slight blur and noise,
deterministically (``random.Random(SEED)``). Run from the project root:

    .venv/bin/python datasets/make_ocr_sample.py
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SEED = 20261128
OUT = Path(__file__).resolve().parent / "ocr-sample"
FONT_DIR = Path("/usr/share/fonts/truetype")
FONTS = [
    "dejavu/DejaVuSans.ttf",
    "dejavu/DejaVuSerif.ttf",
    "dejavu/DejaVuSansMono.ttf",
    "liberation/LiberationSans-Regular.ttf",
    "liberation/LiberationSerif-Regular.ttf",
    "liberation/LiberationMono-Regular.ttf",
    "freefont/FreeSans.ttf",
    "freefont/FreeSerif.ttf",
]
LINES = [
    "Invoice 2231 is due on 14 March 2027",
    "Total amount payable: 48.95 EUR",
    "Please keep this receipt for your records",
    "The parcel left the depot at 06:40",
    "Room 12B is on the third floor",
    "Small print is hard to read from far away",
    "Order ref. QX-7781, two items",
    "Batteries not included",
    "Open Monday to Friday, 9 am to 5 pm",
    "Serial number 40-1187-220",
    "Bread, milk, apples and a jar of honey",
    "Platform 4 for the northbound train",
    "Call 0800 555 0199 for support",
    "Shake well before use",
    "Return within 30 days with proof of purchase",
    "The meeting moved to Thursday afternoon",
    "Net weight 250 g",
    "Best before 02/11/2027",
    "A quiet street with seven old lamps",
    "Subtotal 12.40 Tax 1.12 Total 13.52",
    "Do not stack more than five boxes",
    "Fragile: handle with care",
    "The library closes early on holidays",
    "Card ending in 4412 approved",
    "Gate B17 boarding at 21:05",
    "Keep out of reach of children",
    "Turn left after the blue bridge",
    "Version 3.2 adds a darker theme",
    "Cash 20.00 Change 6.48",
    "Thank you for shopping with us",
]


def render(text: str, font_path: Path, rng: random.Random) -> Image.Image:
    """One line: dark ink on light paper, 28 px font, padded, slightly blurred and noisy (mode L)."""
    font = ImageFont.truetype(str(font_path), 28)
    x0, y0, x1, y1 = font.getbbox(text)
    pad = 6
    w, h = x1 - x0 + 2 * pad, 34 + 2 * pad
    paper = rng.randint(215, 250)
    ink = rng.randint(10, 70)
    img = Image.new("L", (w, h), paper)
    ImageDraw.Draw(img).text((pad - x0, pad + 2), text, font=font, fill=ink)
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.7)))
    arr = np.asarray(img, dtype=np.float32)
    noise = np.random.default_rng(rng.randrange(2**32)).normal(0.0, rng.uniform(2.0, 6.0), arr.shape)
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8), "L")


def main() -> None:
    rng = random.Random(SEED)
    (OUT / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for i, text in enumerate(LINES):
        font = FONTS[i % len(FONTS)]
        img = render(text, FONT_DIR / font, rng)
        rid = f"line-{i:03d}"
        path = OUT / "images" / f"{rid}.png"
        img.save(path, optimize=True)
        records.append({"id": rid, "image": f"images/{rid}.png", "text": text, "case_sensitive": True,
                        "source": "rendered", "font": Path(font).stem, "height": img.height, "width": img.width})
    tmp = OUT / f".manifest.jsonl.tmp{os.getpid()}"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    os.replace(tmp, OUT / "manifest.jsonl")
    print(f"wrote {len(records)} lines to {OUT}")


if __name__ == "__main__":
    main()

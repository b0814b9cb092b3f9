"""Does reading one text-sr output several ways give the vote new opinions?

For every line of a text-lines dataset split, degraded as ``preproc compare`` does
(area-downscale to the line height, then JPEG), the OCR default's output is read by
Tesseract (single line) as it is and as *renderings* that cost no extra SR call: resized
x0.75 and x1.33, Otsu-binarised, blurred (Gaussian, radius 1), read in raw-line mode
(``--psm 13``), read without Tesseract's word lists (``load_system_dawg`` /
``load_freq_dawg`` off); and once more from the input shifted by half a pixel (one more
SR call). It prints, per setting, the corpus CER of each reading alone, of
:func:`preproc.vote.vote` over the plain four-candidate set plus each rendering group,
and the *oracle* (the best reading per line, a bound no per-line choice can beat).

    .venv/bin/python benchmarks/vote_renderings.py ../shared/datasets/text-lines-dev \\
        --split selection --settings 8:75,10:75 --out runs/vote-renderings.jsonl

``--base`` names a finished compare folder of the same split whose cache holds the other
vote candidates of round four (``text-sr-v2``, ``text-sr@2``, ``none``; the shipped set now
has ``text-sr-v3`` in place of ``text-sr-v2``); without it only the
renderings are compared. Readings are written to ``--out`` (one JSON line per line and
setting), so the table can be recomputed with ``--from-readings``.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from preproc.compare.cache import ResultCache
from preproc.gate import otsu_threshold
from preproc.metrics import normalize_text, score_line
from preproc.vote import vote

BASE = ("default", "text-sr-v2", "text-sr@2", "none")
GROUPS = {
    "resized": ("d@x0.75", "d@x1.33"),
    "binarised+psm13": ("d-otsu", "d-psm13"),
    "blur+shift": ("d-blur", "d-shift"),
    "no-dict": ("d-nodict",),
}


def resize(img: Image.Image, f: float) -> Image.Image:
    w, h = img.size
    return img.resize((max(1, round(w * f)), max(1, round(h * f))), Image.BICUBIC)


def otsu(img: Image.Image) -> Image.Image:
    """The grey image binarised at the gate's Otsu bin (:func:`preproc.gate.otsu_threshold`,
    256 bins): grey levels above the bin are paper, the bin and below ink. Back as RGB."""
    g = np.asarray(img.convert("L"), dtype=np.uint8)
    level = int(otsu_threshold(g / 255.0) * 256)  # the bin's centre -> its grey level
    return Image.fromarray(np.where(g > level, 255, 0).astype(np.uint8)).convert("RGB")


def shift_half_pixel(img: Image.Image) -> Image.Image:
    return img.transform(img.size, Image.AFFINE, (1, 0, 0.5, 0, 1, 0.5), resample=Image.BILINEAR,
                         fillcolor=(255, 255, 255))


def read_all(dataset: Path, split: str, settings: list[tuple[int, int | None]], out: Path) -> None:
    from tesserocr import PyTessBaseAPI

    from preproc.compare.ocr import OcrTask
    from preproc.compare.variants import CandidateContext
    from preproc.recognize.ocr import find_tessdata

    task, raw, nodict = OcrTask(split=split), OcrTask(split=split, mode=13), OcrTask(split=split)
    if task.ocr.engine != "tesserocr":
        sys.exit("this benchmark needs tesserocr (per-symbol confidences for the vote)")
    api = PyTessBaseAPI(path=str(find_tessdata("eng")), lang="eng", psm=7,
                        variables={"load_system_dawg": "F", "load_freq_dawg": "F"})
    api.SetVariable("user_defined_dpi", str(task.ocr.dpi))
    nodict.ocr._api = api
    ctx = CandidateContext("ocr")
    records = task.load(dataset, None)
    with open(out, "w") as f:
        for size, q in settings:
            for r in records:
                lr = task.degrade(r, size, q)
                sr = ctx.upscale(lr, "auto")
                views = {"default": (task, sr), "d@x0.75": (task, resize(sr, 0.75)), "d@x1.33": (task, resize(sr, 1.33)),
                         "d-otsu": (task, otsu(sr)), "d-psm13": (raw, sr), "d-nodict": (nodict, sr),
                         "d-blur": (task, sr.filter(ImageFilter.GaussianBlur(1.0))),
                         "d-shift": (task, ctx.upscale(shift_half_pixel(lr), "auto"))}
                rec = {k: tk.recognize(im, r) for k, (tk, im) in views.items()}
                f.write(json.dumps({"id": r.id, "size": size, "q": q, "rec": rec}) + "\n")
            print(f"read {len(records)} lines at {size} px, JPEG {q}", file=sys.stderr, flush=True)


def base_readings(folder: Path) -> dict[tuple, dict[str, Any]]:
    """``{(id, size, q): {candidate: recognition}}`` of the :data:`BASE` candidates in a finished
    compare run's cache (its own fingerprint's lines only)."""
    cache, _ = ResultCache.of_run(folder)
    out: dict[tuple, dict[str, Any]] = collections.defaultdict(dict)
    for (sid, size, q, cand), entry in cache.entries.items():
        if entry.get("rec") and cand in BASE:
            out[(sid, size, q)][cand] = entry["rec"]
    return out


def table(dataset: Path, readings: Path, base: Path | None) -> None:
    from preproc.datasets import read_manifest

    refs = {r.id: (r.get("text"), bool(r.get("case_sensitive", True))) for r in read_manifest(dataset, require=("text",))}
    extra = base_readings(base) if base else {}
    by_setting: dict[tuple, dict[str, dict[str, Any]]] = collections.defaultdict(dict)
    for line in readings.read_text().splitlines():
        d = json.loads(line)
        key = (d["id"], d["size"], d["q"])
        by_setting[(d["size"], d["q"])][d["id"]] = {**{k: v for k, v in extra.get(key, {}).items() if k != "default"},
                                                    **d["rec"]}
    for (size, q), rows in by_setting.items():
        ids = list(rows)
        chars = sum(len(normalize_text(refs[i][0], refs[i][1])) for i in ids)

        def edits(i: str, text: str) -> int:
            return score_line(refs[i][0], text, refs[i][1]).char_edits

        have = [k for k in rows[ids[0]] if all(k in rows[i] for i in ids)]
        print(f"\n{size} px, JPEG {q}: {len(ids)} lines, {chars} characters")
        print("  alone: " + "  ".join(f"{k} {sum(edits(i, rows[i][k]['text']) for i in ids) / chars:.3f}" for k in have))
        base_set = [k for k in BASE if k in have] or ["default"]
        sets = [base_set] + [base_set + list(g) for g in GROUPS.values()] + [base_set + [k for g in GROUPS.values() for k in g]]
        for s in sets:
            if not all(k in have for k in s):
                continue
            v = sum(edits(i, vote([rows[i][k] for k in s])[0]) for i in ids) / chars
            o = sum(min(edits(i, rows[i][k]["text"]) for k in s) for i in ids) / chars
            print(f"  vote {'/'.join(s)}: {v:.3f}   oracle {o:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--split", default="selection")
    ap.add_argument("--settings", default="8:75,10:75", help="HEIGHT:JPEG pairs; JPEG 'none' for lossless")
    ap.add_argument("--out", type=Path, default=Path("runs/vote-renderings.jsonl"))
    ap.add_argument("--base", type=Path, help="a compare folder of the same split with the other vote candidates")
    ap.add_argument("--from-readings", action="store_true", help="only recompute the table from --out")
    a = ap.parse_args()
    settings = [(int(h), None if j == "none" else int(j)) for h, j in (s.split(":") for s in a.settings.split(","))]
    if not a.from_readings:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        read_all(a.dataset, a.split, settings, a.out)
    table(a.dataset, a.out, a.base)


if __name__ == "__main__":
    main()

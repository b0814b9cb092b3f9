"""report.html at scale: a fabricated 2,000-sample x 8-variant OCR comparison, opened in headless Chromium.

No OCR runs: the records, the result cache (readings = the truth with random character
edits, more at small sizes and for some variants) and the report rows are made up, the
rows aggregated by the real compare code (``runner._row``, the task's corpus CER), and
the page is written by the real :func:`preproc.compare.html_report.write_html_report`.
Images are fabricated (rendered text, the crop and 4x "outputs") for the first
``--images`` records, saved the way the runner saves them.

Measured, as medians over ``--repeats`` fresh page loads (each a new tab state, cache cold
for the HTML, warm for the browser binary): the HTML size, the time Python takes to write
the page, Chromium's ``domContentLoaded`` and ``load`` (navigation timing), the time until
the first page of cards is rendered (``window.preprocReport.rendered``), and the time to
apply a filter (size, then "A worse than B", measured in the page). The same is measured
on a demo-sized page (30 samples) in the same process, and the ratios are printed.

    .venv/bin/python benchmarks/html_report_scale.py                # 2000 x 8, sizes 8,10,12 x lossless/JPEG 75
    .venv/bin/python benchmarks/html_report_scale.py --samples 2000 --sizes 10 --jpeg none --json out.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from preproc.compare.cache import ResultCache
from preproc.compare.html_report import REPORT_FILES, save_report_image
from preproc.compare.report import Report
from preproc.compare.runner import _row
from preproc.compare.task import CompareTask, most_confident
from preproc.compare.variants import parse_variants
from preproc.datasets import Record
from preproc.metrics import corpus_scores

VARIANTS = ["none", "bicubic", "cleanup", "bicubic+guard", "text-sr", "realesrgan-compact", "realesrgan", "select"]
#: per candidate: how many times the base error rate it makes (text-sr best, the GAN worst)
ERROR_FACTOR = {"none": 1.0, "bicubic": 0.9, "cleanup": 0.85, "text-sr": 0.5, "realesrgan-compact": 1.6,
                "realesrgan": 1.9}
_WORD_TEXT = ("invoice total amount payable due receipt records order number customer reference date paid "
              "balance account tax net gross item quantity price shipping delivery address street march april")
WORDS = tuple(_WORD_TEXT.split(" "))
ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,:-"


class SyntheticOcr(CompareTask):
    """The OCR task's report shape (name ``ocr``, CER and word accuracy) without a recognizer."""

    name = "ocr"
    metrics = ("cer", "word_acc")
    higher_is_better = {"cer": False, "word_acc": True}
    size_label = "line height (px)"
    default_candidates = ("none", "bicubic", "cleanup")
    modes = ("select",)

    def load(self, dataset, limit):  # pragma: no cover - not used
        raise NotImplementedError

    def degrade(self, record, size, jpeg):  # pragma: no cover - not used
        raise NotImplementedError

    def recognize(self, image, record):  # pragma: no cover - not used
        raise NotImplementedError

    def combine(self, mode, recognitions):
        return most_confident(recognitions)

    def evaluate(self, records, recognitions):
        s = corpus_scores([str(r.get("text")) for r in records], [str(x.get("text", "")) for x in recognitions])
        return {"cer": s["cer"], "word_acc": s["word_acc"]}

    def caption(self, recognition):
        return repr(str(recognition.get("text", ""))[:44])


def _garble(text: str, rate: float, rng: random.Random) -> str:
    out = []
    for ch in text:
        u = rng.random()
        if u < rate * 0.6:
            out.append(rng.choice(ALPHABET))
        elif u < rate * 0.8:
            continue
        elif u < rate:
            out.append(ch + rng.choice(ALPHABET))
        else:
            out.append(ch)
    return "".join(out)


def fabricate(samples: int, sizes: list[int], jpegs: list[int | None], seed: int = 0):
    """Records, a filled in-memory cache, the parsed variants and the report of a made-up run."""
    rng = random.Random(seed)
    task = SyntheticOcr()
    variants = parse_variants(VARIANTS, "ocr", task.modes, task.default_candidates)
    cands = list(dict.fromkeys(c for v in variants for c in v.candidates))
    records = [Record(f"line-{i:05d}", Path(f"images/line-{i:05d}.png"),
                      {"text": " ".join(rng.choice(WORDS).capitalize() if k == 0 else rng.choice(WORDS)
                                        for k in range(rng.randint(4, 8))) + f" {rng.randint(1, 9999)}"})
               for i in range(samples)]
    cache = ResultCache(None, "synthetic")
    for r in records:
        hard = rng.uniform(0.5, 1.5)
        for s in sizes:
            for q in jpegs:
                base = min(0.9, hard * 0.5 * (8 / s) ** 2.5 * (1.3 if q is not None else 1.0))
                for c in cands:
                    rate = min(0.95, base * ERROR_FACTOR.get(c, 1.0) * rng.uniform(0.6, 1.4))
                    text = _garble(r.get("text"), rate, rng)
                    cache.entries[(r.id, s, q, c)] = {
                        "rec": {"text": text, "confidence": round(max(0.0, 96 - 120 * rate + rng.gauss(0, 6)), 3)},
                        "error": None, "seconds": rng.uniform(0.01, 0.05)}
    rows = [_row(task, v, s, q, records, cache) for q in jpegs for s in sizes for v in variants]
    report = Report(task="ocr", rows=rows, metrics=list(task.metrics), higher_is_better=dict(task.higher_is_better),
                    size_label=task.size_label, variants=[v.name for v in variants],
                    settings={"task": "ocr", "task_options": {}, "dataset": "/data/synthetic-lines", "overrides": {},
                              "dtype": "None", "variants": VARIANTS, "sizes": sizes, "jpeg": jpegs, "limit": None,
                              "samples": samples, "seconds_total": 0.0})
    return task, variants, cands, records, cache, report


def fabricate_images(out: Path, records, sizes, jpegs, cands, n: int) -> tuple[int, int]:
    """Rendered crops and 4x 'outputs' for the first ``n`` records; (files, bytes)."""
    font = ImageFont.load_default(size=36)
    for r in records[:n]:
        text = r.get("text")
        w = int(font.getlength(text)) + 12
        hi = Image.new("L", (w, 46), 255)
        ImageDraw.Draw(hi).text((6, 4), text, fill=0, font=font)
        for s in sizes:
            crop = hi.resize((max(1, round(w * s / 46)), s), Image.Resampling.BOX)
            for q in jpegs:
                save_report_image(out, "ocr", r.id, s, q, "none", crop)
                for c in cands:
                    if c != "none":
                        save_report_image(out, "ocr", r.id, s, q, c,
                                          crop.resize((crop.width * 4, crop.height * 4), Image.Resampling.BICUBIC))
    files = [p for p in (out / REPORT_FILES).rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def _driver():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.binary_location = "/usr/bin/chromium"
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


FILTER_JS = """
var t0 = performance.now();
var e = document.getElementById('f-size'); e.value = e.options[1].value; e.dispatchEvent(new Event('change'));
var t1 = performance.now();
var a = document.getElementById('f-a'), b = document.getElementById('f-b');
a.value = String(Array.from(a.options).findIndex(o => o.text === 'bicubic'));
b.value = String(Array.from(b.options).findIndex(o => o.text === 'none'));
var c = document.getElementById('f-ab'); c.checked = true; c.dispatchEvent(new Event('change'));
var t2 = performance.now();
return [t1 - t0, t2 - t1, window.preprocReport.matched];
"""


def measure_page(driver, page: Path, repeats: int) -> dict:
    """Median timings of ``repeats`` loads of ``page`` and of applying two filters."""
    loads, dcl, first, filt_size, filt_ab = [], [], [], [], []
    matched = None
    driver.get(page.resolve().as_uri())  # warm-up: the first load in a fresh browser pays its start-up
    for _ in range(repeats):
        driver.get("about:blank")
        t0 = time.perf_counter()
        driver.get(page.resolve().as_uri())
        loads.append((time.perf_counter() - t0) * 1000)
        tm = driver.execute_script("var t = performance.timing; return [t.domContentLoadedEventEnd - t.navigationStart,"
                                   " t.loadEventEnd - t.navigationStart, window.preprocReport.rendered];")
        dcl.append(tm[0])
        first.append(tm[2])
        fs, fab, matched = driver.execute_script(FILTER_JS)
        filt_size.append(fs)
        filt_ab.append(fab)
    errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return {
        "html_bytes": page.stat().st_size,
        "get_ms": round(statistics.median(loads), 1),
        "dom_content_loaded_ms": round(statistics.median(dcl), 1),
        "first_cards_rendered_ms": round(statistics.median(first), 1),
        "filter_size_ms": round(statistics.median(filt_size), 1),
        "filter_a_worse_than_b_ms": round(statistics.median(filt_ab), 1),
        "matched_after_filters": matched,
        "console_errors": len(errors),
    }


def build(out: Path, samples: int, sizes, jpegs, images: int) -> dict:
    t0 = time.perf_counter()
    task, variants, cands, records, cache, report = fabricate(samples, sizes, jpegs)
    t1 = time.perf_counter()
    n_files, n_bytes = fabricate_images(out, records, sizes, jpegs, cands, images)
    t2 = time.perf_counter()
    from preproc.compare.html_report import write_html_report

    write_html_report(report, out, task, variants, records, cache, {r.id for r in records[:images]})
    t3 = time.perf_counter()
    return {"samples": samples, "variants": len(variants), "settings": len(sizes) * len(jpegs),
            "items": samples * len(sizes) * len(jpegs), "fabricate_s": round(t1 - t0, 2),
            "images_records": min(images, samples), "image_files": n_files, "image_bytes": n_bytes,
            "bytes_per_image": round(n_bytes / max(1, n_files)), "images_s": round(t2 - t1, 2),
            "write_html_s": round(t3 - t2, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--sizes", default="8,10,12")
    p.add_argument("--jpeg", default="none,75")
    p.add_argument("--images", type=int, default=100, help="records with fabricated images (default 100)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--baseline-samples", type=int, default=30)
    p.add_argument("--out", default=None, help="folder to keep the pages in (default: a temporary one)")
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    jpegs = [None if q.strip().lower() in ("none", "0", "") else int(q) for q in args.jpeg.split(",")]
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="html-scale-"))
    results = {}
    driver = _driver()
    try:
        for name, n in (("baseline", args.baseline_samples), ("large", args.samples)):
            out = root / name
            out.mkdir(parents=True, exist_ok=True)
            info = build(out, n, sizes, jpegs, min(args.images, n))
            info.update(measure_page(driver, out / "report.html", args.repeats))
            results[name] = info
            print(name, json.dumps(info), flush=True)
    finally:
        driver.quit()
    b, lg = results["baseline"], results["large"]
    results["ratio_large_over_baseline"] = {k: round(lg[k] / b[k], 2) for k in
                                            ("html_bytes", "dom_content_loaded_ms", "first_cards_rendered_ms",
                                             "filter_a_worse_than_b_ms") if b[k]}
    results["pages"] = str(root)
    print(json.dumps(results["ratio_large_over_baseline"]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()

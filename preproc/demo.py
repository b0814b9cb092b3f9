"""``python -m preproc.demo`` (``make demo``): the OCR comparison on the bundled sample.

Runs :func:`preproc.compare` on ``datasets/ocr-sample`` (30 rendered lines) at line
heights 8, 10 and 12 px, lossless and JPEG 75, with the variants that need no
download: ``none``, ``bicubic``, ``cleanup``, ``bicubic+guard``, ``select``, plus
the learned backends whose weights are installed: ``text-sr`` (our text model, shipped
in the package) and ``realesrgan-compact`` (general-purpose, for contrast). Prints the table, writes
the report into ``build/demo`` (``--out`` to change) and ends with the path of its
``report.html``. Under a minute on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "ocr-sample"
BASE_VARIANTS = ["none", "bicubic", "cleanup", "bicubic+guard"]
LEARNED = ("text-sr", "realesrgan-compact")


def demo_variants() -> list[str]:
    """The demo's variants: the classical ones, the fast learned ones when available, then ``select``."""
    from .compare.variants import candidate_unavailable
    from .upscalers import upscaler_names

    out = list(BASE_VARIANTS)
    out += [name for name in LEARNED if name in upscaler_names() and candidate_unavailable(name) is None]
    return [*out, "select"]


PAGE_SAMPLE = SAMPLE.parent / "page-sample"


def page_demo(out: Path, body: int = 10, jpeg: int = 75) -> str:
    """One bundled page (``datasets/page-sample``) at ``body`` px line height, read as it is and by
    :func:`preproc.read_page`; writes ``out/page/`` (before/after PNGs, .txt, .hocr, .pdf), returns a summary."""
    from .compare import create_task
    from .compare.page import page_scores
    from .datasets import read_manifest
    from .io import save_image_atomic
    from .page import read_page, write_searchable_pdf

    rec = read_manifest(PAGE_SAMPLE)[0]
    task = create_task("page")
    low = task.degrade(rec, body, jpeg)
    plain = task.recognize(low, rec)["text"]
    task.close()
    res = read_page(low, progress=False)
    d = out / "page"
    save_image_atomic(low, d / "before.png")
    save_image_atomic(res.image, d / "after.png")
    from .cache import write_text_atomic

    write_text_atomic(d / "page.txt", res.text + "\n")
    write_text_atomic(d / "page.hocr", res.hocr)
    write_searchable_pdf(d / "page.pdf", res.original, res.words)
    ref = task.reference(rec)
    before, after = page_scores([ref], [plain])["cer"], page_scores([ref], [res.text])["cer"]
    return (f"page {rec.id} at {body} px body lines, JPEG {jpeg}: page CER {before:.3f} as it is, {after:.3f} after "
            f"read_page ({res.meta.get('upscaler')} x{res.meta['scale']:g}); before/after, text, hOCR, PDF in {d}/")


def main(argv: list[str] | None = None) -> int:
    """Run the demo comparison and print its table; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m preproc.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="build/demo", help="report folder (default build/demo)")
    p.add_argument("--dataset", default=str(SAMPLE), help="dataset folder (default: the bundled sample)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from . import compare
    from .errors import PreprocError

    if not Path(args.dataset, "manifest.jsonl").is_file():
        print(f"preproc demo: no dataset at {args.dataset} (the bundled sample lives in datasets/ocr-sample "
              "of the source checkout)", file=sys.stderr)
        return 2
    variants = demo_variants()
    print(f"preproc demo: OCR before/after on {args.dataset}, variants {', '.join(variants)}", file=sys.stderr)
    try:
        report = compare(args.dataset, task="ocr", variants=variants, sizes=[8, 10, 12], jpeg=[None, 75], out=args.out,
                         resume=False)
    except PreprocError as e:
        print(f"preproc demo: error: {e}", file=sys.stderr)
        return 2
    print(report.to_markdown())
    if PAGE_SAMPLE.joinpath("manifest.jsonl").is_file():  # whole pages (issue 15)
        print(f"preproc demo: {page_demo(Path(args.out))}", file=sys.stderr)
    print(f"preproc demo: report, plots and contact sheet in {args.out}/; open this page in a browser:",
          file=sys.stderr)
    page = Path(args.out, "report.html").resolve()
    print(page if page.is_file() else "preproc demo: report.html was not written (see the warnings above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

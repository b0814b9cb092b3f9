"""``preproc ocr PAGE_OR_FOLDER... -o OUTDIR``: whole low-resolution pages to text, hOCR and PDF.

Per page (sub-folders mirrored, the input suffix dropped): ``OUTDIR/<stem>.txt`` (plain
text), ``OUTDIR/<stem>.hocr`` (hOCR, word boxes in the *original* page's pixels) and
``OUTDIR/<stem>.pdf`` (the original page image with an invisible text layer;
``--no-pdf`` leaves it out). Every file is written atomically; each finished page
(written or failed) is appended to ``OUTDIR/meta.jsonl`` (:class:`preproc.journal.Journal`),
so a re-run of the same command skips pages already done with the same settings whose
input is unchanged and whose outputs are all present (``--force`` redoes them).

``--task-opt KEY=VALUE`` sets :func:`preproc.read_page` options: ``lang`` (eng),
``psm`` (3), ``dpi`` (300: what Tesseract is told for the image it reads),
``max_body_ratio`` (2), ``skip_x_height`` (12), ``max_output_pixels``, and ``pdf_dpi`` (the PDF's page resolution;
default: the file's own DPI when it records one, else 96).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .common import parse_overrides

logger = logging.getLogger(__name__)

JOURNAL_NAME = "meta.jsonl"
TASK_OPTS = ("lang", "psm", "dpi", "max_body_ratio", "skip_x_height", "max_output_pixels", "pdf_dpi")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("ocr", help="read whole pages: enhance through the tiler, Tesseract, text/hOCR/PDF",
                       description="Measure each page's body text, enhance it to Tesseract's sweet spot through the "
                                   "tiler, let Tesseract segment and read it; write <stem>.txt, .hocr and .pdf (in the "
                                   "original page's coordinates) and a meta.jsonl journal (a re-run resumes).")
    p.add_argument("inputs", nargs="+", help="page images or folders of them (searched recursively)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.add_argument("--upscaler", default=None, help="backend name (default: the OCR auto rule, text-sr)")
    p.add_argument("--model", default=None, help="backend model: hub id, local folder or weights file")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--dtype", default=None, help="float32, float16/fp16 or bfloat16/bf16")
    p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                   help="override an OCR preset field, e.g. --set max_scale=3 (repeatable)")
    p.add_argument("--task-opt", dest="task_opts", action="append", metavar="KEY=VALUE",
                   help=f"page option: {', '.join(TASK_OPTS)} (repeatable)")
    p.add_argument("--scale", type=float, default=None, help="force a scale (default: the page gate decides)")
    p.add_argument("--tile", type=int, default=None, help="input tile side in pixels (default: from memory budget)")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap in input pixels")
    p.add_argument("--no-pdf", action="store_true", help="no searchable PDF")
    p.add_argument("--force", action="store_true", help="redo pages already done with these settings")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (pages, tiles)")
    return p


def page_items(inputs: list[str]) -> list[tuple[Path, Path]]:
    """``(input path, output stem relative to OUTDIR)`` per page; the stem keeps the suffix where two would collide."""
    from .enhance import collect_inputs

    return [(src, rel.with_suffix("")) for src, rel in collect_inputs(inputs)]


def _outputs(out_dir: Path, stem: Path, pdf: bool) -> dict[str, Path]:
    base = out_dir / stem
    outs = {"txt": base.with_name(base.name + ".txt"), "hocr": base.with_name(base.name + ".hocr")}
    if pdf:
        outs["pdf"] = base.with_name(base.name + ".pdf")
    return outs


def file_dpi(path: Path) -> float | None:
    """The resolution a page file records (PNG pHYs, JPEG JFIF, TIFF), or None."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            dpi = im.info.get("dpi")
    except OSError:
        return None
    if not dpi:
        return None
    try:
        d = float(dpi[0])
    except (TypeError, ValueError, IndexError):
        return None
    return d if d >= 10 else None


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from .. import __version__
    from ..cache import write_text_atomic
    from ..enhance import Enhancer
    from ..errors import ConfigError, PreprocError
    from ..journal import Journal, settings_fingerprint
    from ..page import PageReader, read_page, write_searchable_pdf
    from .enhance import describe_error, error_record, input_stat, remove_stale_temps

    overrides = parse_overrides(args.overrides)
    for key in ("tile", "overlap"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    opts = parse_overrides(args.task_opts)
    unknown = sorted(set(opts) - set(TASK_OPTS))
    if unknown:
        raise ConfigError(f"unknown --task-opt {', '.join(unknown)}; valid: {', '.join(TASK_OPTS)}")
    pdf_dpi = opts.pop("pdf_dpi", None)
    lang, psm, dpi = str(opts.pop("lang", "eng")), int(opts.pop("psm", 3)), int(opts.pop("dpi", 300))
    items = page_items(args.inputs)
    if not items:
        print(f"preproc ocr: no image files found in {', '.join(args.inputs)}", file=sys.stderr)
        return 1
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)
    settings = {"command": "ocr", "upscaler": args.upscaler, "model": args.model, "dtype": args.dtype,
                "scale": args.scale, "overrides": overrides, "lang": lang, "psm": psm, "dpi": dpi,
                "pdf": not args.no_pdf, "pdf_dpi": pdf_dpi, "page_options": opts, "preproc": __version__}
    journal = Journal(out_dir / JOURNAL_NAME, settings_fingerprint(settings))

    def done(src: Path, stem: Path) -> bool:
        rec = journal.get(str(stem))
        if rec is None or rec.get("input_stat") != input_stat(src):
            return False
        return not rec.get("ok") or all(Path(p).is_file() for p in rec.get("outputs", {}).values())

    todo = items if args.force else [(s, t) for s, t in items if not done(s, t)]
    if len(todo) < len(items):
        logger.info("%d of %d pages already done with these settings", len(items) - len(todo), len(items))
    show = not args.no_progress
    failures = 0
    with journal:
        if todo:
            enh = Enhancer("ocr", args.upscaler, model=args.model, device=args.device, dtype=args.dtype,
                           progress=None if show else False, **overrides)
            reader = PageReader(lang, psm, dpi)
        for src, stem in tqdm(todo, desc="ocr", unit="page", disable=None if show else True):
            try:
                res = read_page(src, scale=args.scale, enhancer=enh, reader=reader,
                                progress=None if show else False, **opts)
                outs = _outputs(out_dir, stem, not args.no_pdf)
                outs["txt"].parent.mkdir(parents=True, exist_ok=True)
                write_text_atomic(outs["txt"], res.text + ("\n" if res.text else ""))
                write_text_atomic(outs["hocr"], res.hocr)
                if "pdf" in outs:
                    d = float(pdf_dpi) if pdf_dpi is not None else (file_dpi(src) or 96.0)
                    write_searchable_pdf(outs["pdf"], res.original, res.words, dpi=d)
                    res.meta["pdf_dpi"] = d
                logger.info("%s: %s; %d words", src, res.meta["gate"], len(res.words))
                journal.record(str(stem), {"input": str(src), "ok": True, "input_stat": input_stat(src),
                                           "outputs": {k: str(v) for k, v in outs.items()}, **res.meta})
            except PreprocError as e:
                failures += 1
                logger.error("%s: %s", src, e)
                journal.record(str(stem), error_record(src, describe_error(e)))
        if todo:
            reader.close()
    skipped = len(items) - len(todo)
    print(f"preproc ocr: {len(todo) - failures} pages read into {out_dir}, {failures} failed"
          + (f", {skipped} already done" if skipped else ""), file=sys.stderr)
    return 1 if failures else 0

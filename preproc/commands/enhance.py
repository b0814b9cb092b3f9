"""``preproc enhance IN... -o OUTDIR``: enhance files and folders of crops."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .common import add_model_args, parse_overrides

logger = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".gif", ".pgm", ".ppm", ".pbm"}


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("enhance", help="enhance image files or folders of crops",
                       description="Enhance crops; one output PNG per input, written atomically, and meta.jsonl.")
    p.add_argument("inputs", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("-o", "--out", required=True, help="output folder")
    add_model_args(p)
    p.add_argument("--scale", type=float, default=None, help="force a scale (default: the gate decides)")
    p.add_argument("--tile", type=int, default=None, help="input tile side in pixels (default: from memory budget)")
    p.add_argument("--overlap", type=int, default=None, help="tile overlap in input pixels")
    p.add_argument("--seed", type=int, default=None, help="seed for stochastic backends (sd-x4)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def collect_inputs(items: list[str]) -> list[tuple[Path, Path]]:
    """``(path, relative output path)`` for every image file named or found in a named folder."""
    found: list[tuple[Path, Path]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES:
                    found.append((f, f.relative_to(p).with_suffix(".png")))
        else:
            found.append((p, Path(p.name).with_suffix(".png")))
    return found


def run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from ..cache import write_text_atomic
    from ..enhance import Enhancer
    from ..errors import PreprocError
    from ..io import save_image_atomic

    overrides = parse_overrides(args.overrides)
    for key in ("tile", "overlap"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    enh = Enhancer(args.task, args.upscaler, model=args.model, device=args.device, dtype=args.dtype,
                   progress=False, **overrides)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    inputs = collect_inputs(args.inputs)
    if not inputs:
        print(f"preproc enhance: no image files found in {', '.join(args.inputs)}", file=sys.stderr)
        return 1
    failures = 0
    records = []
    disable = True if args.no_progress else None
    for src, rel in tqdm(inputs, desc="enhance", unit="img", disable=disable):
        try:
            res = enh.enhance(src, scale=args.scale, seed=args.seed)
            dst = save_image_atomic(res.image, out_dir / rel)
            records.append({"input": str(src), "output": str(dst), "ok": True, **res.meta})
        except PreprocError as e:
            failures += 1
            logger.error("%s: %s", src, e)
            records.append({"input": str(src), "ok": False, "error": f"{type(e).__name__}: {e}"})
    write_text_atomic(out_dir / "meta.jsonl", "".join(json.dumps(r, default=str) + "\n" for r in records))
    print(f"preproc enhance: {len(inputs) - failures} written to {out_dir}, {failures} failed", file=sys.stderr)
    return 1 if failures else 0

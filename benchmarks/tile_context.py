"""Tile context: PSNR of tiled against one-shot output, per context margin (docs/backends.md).

Real-ESRGAN x4plus (fp32 by default) on a 120x90 picture, tiled at ``--tile`` /
``--overlap`` with each context margin, against the same backend in one call. Pictures:
the synthetic scene of tests/test_tile_context.py and, when the development set is
present, an LFW face resized to 120x90::

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/tile_context.py --contexts 0,8,12,16,24
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FACE = Path(__file__).resolve().parents[2] / "shared/datasets/faces-dev/images/lfw/Aaron_Peirsol/Aaron_Peirsol_0001.jpg"


def scene(w: int = 120, h: int = 90, seed: int = 0):
    """The synthetic picture of tests/test_tile_context.py (text, outlines, mild noise): that very function."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_tile_context import scene as test_scene

    return test_scene(w, h, seed)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="realesrgan")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--tile", type=int, default=48)
    p.add_argument("--overlap", type=int, default=16)
    p.add_argument("--contexts", default="0,8,12,16")
    args = p.parse_args(argv)

    import numpy as np
    from PIL import Image

    from preproc.upscalers import TiledUpscaler, create_upscaler

    up = create_upscaler(args.backend, dtype=args.dtype, device="cpu")
    pictures = {"scene": scene()}
    if FACE.is_file():
        pictures["lfw face"] = np.asarray(Image.open(FACE).convert("RGB").resize((120, 90), Image.BICUBIC),
                                          np.float32) / 255.0
    print(f"# {args.backend} {args.dtype}, 120x90, tile {args.tile} / overlap {args.overlap}; declared context {up.context}")
    for name, img in pictures.items():
        one, _ = TiledUpscaler(up, tile=None).run(img)
        for c in [int(x) for x in args.contexts.split(",")]:
            t0 = time.perf_counter()
            out, info = TiledUpscaler(up, tile=args.tile, overlap=args.overlap, context=c).run(img)
            mse = float(np.mean((out.astype(np.float64) - one) ** 2))
            db = 10 * np.log10(1 / mse) if mse > 0 else float("inf")
            print(f"{name}: context {c:2d}: {info.tiles} tiles, PSNR {db:.2f} dB, {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Does tiling make a learned backend *faster* on a CPU? One big call vs tiles.

Large single calls push the activations out of the CPU caches. This times one
512 px image through ``TiledUpscaler`` with one call and with several tile sides, and
prints seconds per output megapixel and the speed-up over one call::

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/cpu_tile_size.py --backend realesrgan --dtype bf16
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", default="realesrgan")
    p.add_argument("--dtype", default="bf16")
    p.add_argument("--side", type=int, default=512)
    p.add_argument("--tiles", default="0,264,192,144", help="tile sides; 0 = one call")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)

    import numpy as np

    from preproc.upscalers import TiledUpscaler, create_upscaler

    up = create_upscaler(args.backend, dtype=args.dtype, device="cpu")
    img = np.random.default_rng(0).random((args.side, args.side, 3), dtype=np.float32)
    out_mp = (args.side * up.scale) ** 2 / 1e6
    TiledUpscaler(up, tile=64, overlap=8).run(img[:64, :64])  # warm-up
    base = None
    print(f"# {args.backend} {args.dtype}, {args.side} px input, median of {args.repeats}")
    for side in [int(t) for t in args.tiles.split(",")]:
        tiler = TiledUpscaler(up, tile=side or None, overlap=16, batch_size=1)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            _, info = tiler.run(img)
            times.append(time.perf_counter() - t0)
        t = float(np.median(times))
        base = base or t
        label = "one call" if not side else f"tile {side}"
        print(f"{label:>9} | {info.tiles:2d} tiles | {t:6.1f} s | {t / out_mp:5.2f} s/MP | speed-up {base / t:4.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

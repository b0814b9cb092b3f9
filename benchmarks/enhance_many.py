"""Crops per second: one ``enhance`` call per crop against ``enhance_many``, and where the time goes.

Real development lines (``../shared/datasets/text-lines-dev``) are downscaled to a line
height of ``--height`` px (area interpolation, ``preproc.compare.task.area_resize``: how
the comparisons simulate low resolution) and enhanced for OCR with each backend, first
one by one (``Enhancer.enhance`` in a loop), then with ``Enhancer.enhance_many``, in
turns (round robin, ``--repeats`` rounds; the ratio is taken within each round). Then one
instrumented pass per mode splits the time into loading, gate, padding, model, resize,
PIL conversion and the rest. ``--tile-context`` also times the tiler with and without
the tile context margin (seconds per pixel the model sees)::

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 python benchmarks/enhance_many.py --json runs/enhance_many.json
    python benchmarks/enhance_many.py --backends text-sr --dtypes default,bf16 --batch-sizes 4,16,32
    python benchmarks/enhance_many.py --device cuda --limit 2000 --json gpu.json   # on a GPU machine

Defaults are what a user gets: ``Enhancer("ocr", backend)`` with its default device,
dtype and ``batch_size=16``.
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
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "text-lines-dev"


def load_lines(dataset: Path, limit: int, height: int) -> list:
    """``limit`` lines spread evenly over the manifest, downscaled to ``height`` px (RGB PIL images)."""
    from preproc.compare.task import area_resize
    from preproc.io import open_image_file

    recs = [json.loads(x) for x in (dataset / "manifest.jsonl").read_text().splitlines() if x.strip()]
    step = max(1, len(recs) // max(1, limit))
    out = []
    for r in recs[::step][:limit]:
        im = open_image_file(dataset / r["image"])
        w = max(1, round(im.width * height / im.height))
        out.append(area_resize(im, w, height))
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_modes(enh, crops, batch_size: int, repeats: int, device: str) -> dict:
    """Wall and CPU seconds per pass, one by one and batched, in turns.

    CPU seconds (``time.process_time``: all threads of this process) are the steadier
    measure on a shared machine: time spent waiting for a core is not in them.
    """
    one, many, one_cpu, many_cpu = [], [], [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        for c in crops:
            enh.enhance(c)
        _sync(device)
        one.append(time.perf_counter() - t0)
        one_cpu.append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        res = enh.enhance_many(crops, batch_size=batch_size)
        _sync(device)
        many.append(time.perf_counter() - t0)
        many_cpu.append(time.process_time() - c0)
        bad = [r for r in res if isinstance(r, Exception)]
        if bad:
            raise RuntimeError(f"{len(bad)} crops failed, e.g. {bad[0]!r}")
    n = len(crops)
    ratios = [a / b for a, b in zip(one, many)]
    cpu_ratios = [a / b for a, b in zip(one_cpu, many_cpu)]
    return {
        "crops": n,
        "one_by_one_s": one,
        "enhance_many_s": many,
        "one_by_one_cpu_s": one_cpu,
        "enhance_many_cpu_s": many_cpu,
        "one_by_one_crops_per_s": n / statistics.median(one),
        "enhance_many_crops_per_s": n / statistics.median(many),
        "one_by_one_cpu_ms_per_crop": 1000 * statistics.median(one_cpu) / n,
        "enhance_many_cpu_ms_per_crop": 1000 * statistics.median(many_cpu) / n,
        "ratio_median": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
        "cpu_ratio_median": statistics.median(cpu_ratios),
        "cpu_ratio_min": min(cpu_ratios),
        "cpu_ratio_max": max(cpu_ratios),
    }


class Phases:
    """Accumulated seconds of named functions, by wrapping them in their modules (instrumented passes only)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._undo: list = []

    def wrap(self, owner, attr: str, label: str) -> None:
        fn = getattr(owner, attr)

        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t0

        setattr(owner, attr, timed)
        self._undo.append((owner, attr, fn))

    def restore(self) -> None:
        for owner, attr, fn in reversed(self._undo):
            setattr(owner, attr, fn)
        self._undo = []


@contextlib.contextmanager
def instrumented(up_cls):
    import preproc.batching as batching
    import preproc.gate as gate_mod
    import preproc.upscalers.tiled as tiled

    enhance_mod = sys.modules["preproc.enhance"]  # the package's `enhance` attribute is the function

    ph = Phases()
    ph.wrap(enhance_mod, "load_image", "load & validate")
    ph.wrap(gate_mod, "decide", "gate")
    ph.wrap(tiled, "pad_reflect", "padding")
    ph.wrap(batching, "padded_stack", "padding")
    ph.wrap(up_cls, "upscale", "model")
    ph.wrap(enhance_mod, "resize_to", "resize to the gate's scale")
    ph.wrap(enhance_mod, "to_pil", "PIL conversion")
    try:
        yield ph
    finally:
        ph.restore()


def where_time_goes(enh, backend: str, crops, batch_size: int, device: str) -> dict:
    """Per-crop milliseconds of each phase, one by one and batched (one instrumented pass each)."""
    up = enh.get_upscaler(enh.backend_name()[0], enh.preset, 4.0)
    out = {}
    for mode in ("one_by_one", "enhance_many"):
        with instrumented(type(up)) as ph:
            t0 = time.perf_counter()
            if mode == "one_by_one":
                for c in crops:
                    enh.enhance(c)
            else:
                enh.enhance_many(crops, batch_size=batch_size)
            _sync(device)
            total = time.perf_counter() - t0
        ms = {k: 1000 * v / len(crops) for k, v in sorted(ph.seconds.items(), key=lambda kv: -kv[1])}
        ms["other (meta, grouping, slicing, copies)"] = 1000 * total / len(crops) - sum(ms.values())
        out[mode] = {"total_ms_per_crop": 1000 * total / len(crops), "phases_ms_per_crop": ms}
    return out


def tile_context_speed(device: str, repeats: int) -> dict:
    """The tiler with and without context: seconds per pixel the model sees (compact net, 256 px)."""
    import numpy as np

    from preproc.upscalers import TiledUpscaler, create_upscaler

    up = create_upscaler("realesrgan-compact", device=device)
    img = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)
    rows = {}
    for ctx in (0, up.context):
        tiler = TiledUpscaler(up, tile=64, overlap=16, context=ctx, batch_size=4)
        tiler.run(img[:96, :96])
        times = []
        for _ in range(repeats):
            t0 = time.process_time()  # CPU seconds: steadier on a shared machine
            _, info = tiler.run(img)
            _sync(device)
            times.append(time.process_time() - t0)
        win = min(64 + 2 * ctx, 256)
        seen = info.tiles * win * win
        t = statistics.median(times)
        rows[f"context {ctx}"] = {"tiles": info.tiles, "cpu_seconds": t, "model_pixels": seen,
                                  "us_per_model_pixel": 1e6 * t / seen}
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    p.add_argument("--backends", default="text-sr,bicubic,realesrgan-compact")
    p.add_argument("--dtypes", default="default", help="comma-separated: default (the backend's), fp32, bf16, fp16")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--limit", type=int, default=200, help="lines")
    p.add_argument("--height", type=int, default=10, help="line height after downscaling, px")
    p.add_argument("--batch-sizes", default="16")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-profile", action="store_true", help="skip the instrumented passes")
    p.add_argument("--tile-context", action="store_true", help="also time the tiler with and without context")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    import torch

    import preproc
    from preproc.devices import resolve_device

    device = str(resolve_device(args.device))
    crops = load_lines(args.dataset, args.limit, args.height)
    widths = [c.width for c in crops]
    report = {
        "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "cpus": os.cpu_count(), "device": device,
                    "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
                    "load_average": os.getloadavg(), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")},
        "lines": {"n": len(crops), "height": args.height, "mean_width": statistics.mean(widths),
                  "min_width": min(widths), "max_width": max(widths)},
        "runs": [],
    }
    print(f"# {len(crops)} lines at {args.height} px (mean width {statistics.mean(widths):.0f} px), device {device}, "
          f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.1f}")
    print("| backend | dtype | batch | one-by-one crops/s | enhance_many crops/s | ratio (median, min-max) "
          "| CPU ms/crop one-by-one | CPU ms/crop enhance_many | CPU ratio (median, min-max) |")
    print("|---|---|---|---|---|---|---|---|---|")
    done = set()
    for backend in args.backends.split(","):
        for dtype in args.dtypes.split(","):
            enh = preproc.Enhancer("ocr", backend, device=device, dtype=None if dtype == "default" else dtype,
                                   progress=False)
            up = enh.get_upscaler(enh.backend_name()[0], enh.preset, 4.0)
            precision = getattr(up, "precision", str(up.dtype).removeprefix("torch."))
            if (backend, precision) in done:  # e.g. "default" and "fp32" are the same here
                continue
            done.add((backend, precision))
            enh.enhance(crops[0])
            enh.enhance_many(crops[:8])  # warm-up: load, first kernels
            for bs in [int(b) for b in args.batch_sizes.split(",")]:
                row = {"backend": backend, "dtype": dtype, "precision": precision, "batch_size": bs,
                       **time_modes(enh, crops, bs, args.repeats, device)}
                if not args.no_profile:
                    row["where_time_goes"] = where_time_goes(enh, backend, crops, bs, device)
                report["runs"].append(row)
                print(f"| {backend} | {precision} | {bs} | {row['one_by_one_crops_per_s']:.1f} | "
                      f"{row['enhance_many_crops_per_s']:.1f} | {row['ratio_median']:.2f} "
                      f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f}) | {row['one_by_one_cpu_ms_per_crop']:.2f} | "
                      f"{row['enhance_many_cpu_ms_per_crop']:.2f} | {row['cpu_ratio_median']:.2f} "
                      f"({row['cpu_ratio_min']:.2f}-{row['cpu_ratio_max']:.2f}) |", flush=True)
    if not args.no_profile:
        for row in report["runs"]:
            print(f"\n## {row['backend']} {row['precision']} batch {row['batch_size']}: ms per crop")
            for mode, d in row["where_time_goes"].items():
                parts = ", ".join(f"{k} {v:.2f}" for k, v in d["phases_ms_per_crop"].items())
                print(f"- {mode}: total {d['total_ms_per_crop']:.2f} = {parts}")
    if args.tile_context:
        report["tile_context"] = tile_context_speed(device, args.repeats)
        print("\n## tiler, compact net, 256 px, tile 64 / overlap 16")
        for k, v in report["tile_context"].items():
            print(f"- {k}: {v['tiles']} tiles, {v['cpu_seconds']:.2f} CPU s, {v['us_per_model_pixel']:.3f} CPU us per model pixel")
    if args.json:
        from preproc.cache import write_text_atomic

        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.json, json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

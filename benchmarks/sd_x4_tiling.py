"""SD x4 on CPU: peak RSS and seconds against input side, untiled diffusers vs our tiled path.

Each measurement runs in its own process (peak RSS only grows within a process): the
pipeline is built with random weights (``tiny``: ~4 M parameters; ``full``: the real
architecture, 870 M parameters), a 1-step warm-up runs at 16 px, the peak-RSS counter is
reset (``/proc/self/clear_refs``), then one upscale is timed.

* ``untiled``: ``StableDiffusionUpscalePipeline.__call__`` on the whole crop (the VAE
  kept in fp32 as in our path).
* ``tiled``: ``SDx4Upscaler.sample`` with ``--tile``/``--overlap`` for the UNet and the
  VAE decode (a crop no larger than the tile is one tile: the same computation).

Printed per size: seconds and peak RSS of both, their ratios, the working memory (peak
minus the RSS after loading), the tiled pixel overhead (sum of tile areas / image area)
and the compute overhead beyond it ((tiled s / untiled s) / pixel overhead).

Default run (about 5 minutes on 2 busy cores): tiny at 64 and 128 px, full at 64 px.
``--large`` adds tiny 256 and 512 and full 128 (many minutes more); ``--tiny-sizes``/``--full-sizes``
choose freely. Always run with ``OMP_WAIT_POLICY=PASSIVE`` (set here for the workers).

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/sd_x4_tiling.py

``--quality`` prints instead the accuracy numbers of docs/sd_x4.md (one tile vs
diffusers, tiled vs one tile, seam ratios, batch-size invariance) on the tiny pipeline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def worker(arch: str, variant: str, side: int, steps: int, tile: int, overlap: int, dtype: str) -> dict:
    """One measurement in this process; returns a JSON-able dict."""
    import numpy as np
    import torch

    from preproc.devices import resolve_dtype
    from preproc.tiling import plan_tiles
    from preproc.upscalers.sd_x4 import SDx4Upscaler
    from preproc.upscalers.sd_x4_random import random_pipeline

    dt = resolve_dtype(dtype)
    pipe = random_pipeline(arch, seed=0)
    pipe.unet.to(dt)
    pipe.text_encoder.to(dt)
    kw = dict(prompt="a photo", num_inference_steps=steps, guidance_scale=4.0, noise_level=20)
    rng = np.random.default_rng(0)
    img = rng.random((side, side, 3), dtype=np.float32)
    warm = rng.random((16, 16, 3), dtype=np.float32)
    if variant == "untiled":
        def run(x, n):
            g = torch.Generator().manual_seed(0)
            with torch.inference_mode():
                return pipe(image=x[None], generator=g, output_type="np", **dict(kw, num_inference_steps=n)).images[0]
    else:
        up = SDx4Upscaler(pipe, device="cpu", dtype=dt, decode_tile=tile)

        def run(x, n):
            g = torch.Generator().manual_seed(0)
            return up.sample(x, generator=g, tile=tile, overlap=overlap, batch_size=4,
                             **dict(kw, num_inference_steps=n))[0]
    run(warm, 1)
    rss_loaded = _status_kb("VmRSS")
    reset = _reset_peak()
    t0 = time.perf_counter()
    out = run(img, steps)
    seconds = time.perf_counter() - t0
    peak = _status_kb("VmHWM")
    boxes = plan_tiles(side, side, tile, overlap, 8, 8) if variant == "tiled" else []
    pixels = sum(b.height * b.width for b in boxes) / (side * side) if boxes else 1.0
    return {
        "arch": arch, "variant": variant, "side": side, "steps": steps, "dtype": str(dt).removeprefix("torch."),
        "tile": tile if variant == "tiled" else None, "overlap": overlap if variant == "tiled" else None,
        "tiles": len(boxes) or 1, "pixel_overhead": pixels, "seconds": seconds,
        "peak_rss_gb": peak / 2**20, "rss_loaded_gb": rss_loaded / 2**20,
        "working_gb": (peak - rss_loaded) / 2**20, "peak_reset": reset,
        "output_shape": list(out.shape), "finite": bool(np.isfinite(out).all()),
    }


def quality() -> None:
    """Tiny pipeline, fp32: one tile vs diffusers, tiled vs one tile, seams, batch sizes.

    The numbers quoted in docs/sd_x4.md; the tests assert bounds on the same quantities.
    """
    import tempfile

    import numpy as np
    import torch
    from diffusers import StableDiffusionUpscalePipeline

    from preproc.tiling import plan_tiles
    from preproc.upscalers.sd_x4 import SDx4Upscaler
    from preproc.upscalers.sd_x4_metrics import border_energy_ratio, smooth_image
    from preproc.upscalers.sd_x4_random import save_random_pipeline

    def g(seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    kw = dict(prompt="a photo", negative_prompt="blurry", num_inference_steps=6, guidance_scale=4.0, noise_level=20)
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_random_pipeline(Path(tmp) / "tiny", "tiny", seed=0)
        up = SDx4Upscaler(str(folder), device="cpu", dtype="fp32")
        pipe = StableDiffusionUpscalePipeline.from_pretrained(str(folder), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    img = np.random.default_rng(1).random((32, 40, 3), dtype=np.float32)
    for gs, nl, neg in [(4.0, 20, "blurry"), (1.0, 0, None), (9.0, 350, None)]:
        k = dict(kw, guidance_scale=gs, noise_level=nl, negative_prompt=neg)
        ref = pipe(image=img[None], generator=g(7), output_type="np", **k).images[0]
        ours, _ = up.sample(img, generator=g(7), tile=64, **k)
        print(f"one tile vs diffusers, guidance {gs}, noise level {nl}: max abs {np.abs(ours - ref).max():.2e}")
    s = smooth_image()
    one, _ = up.sample(s, generator=g(0), tile=64, **kw)
    tiled, _ = up.sample(s, generator=g(0), tile=32, overlap=8, **kw)
    other, _ = up.sample(s, generator=g(1), tile=64, **kw)
    print(f"48x64, tile 32, overlap 8, 6 steps: tiled vs one tile mean {np.abs(tiled - one).mean():.4f} "
          f"max {np.abs(tiled - one).max():.4f}; another seed mean {np.abs(other - one).mean():.4f}")
    k10 = dict(kw, num_inference_steps=10)
    boxes = plan_tiles(48, 64, 32, 8, 8, 8)
    res = {"untiled": up.sample(s, generator=g(0), tile=64, **k10)[0]}
    for blend in ("cosine", "gaussian", "none"):
        res[f"ours, blend {blend}"] = up.sample(s, generator=g(0), tile=32, overlap=8, blend=blend, **k10)[0]
    dec = SDx4Upscaler(pipe, device="cpu", dtype="fp32", decode_tile=32)
    res["ours, one UNet tile, decode tile 32"] = dec.sample(s, generator=g(0), tile=64, overlap=8, **k10)[0]
    naive = np.zeros_like(res["untiled"])
    for i, b in enumerate(boxes):
        naive[b.y0 * 4 : b.y1 * 4, b.x0 * 4 : b.x1 * 4] = pipe(
            image=s[None, b.y0 : b.y1, b.x0 : b.x1], generator=g(i), output_type="np", **k10).images[0]
    res["naive (pipeline per tile, reseeded, pasted)"] = naive
    for name, out in res.items():
        rx, ry = border_energy_ratio(out, boxes)
        print(f"border gradient energy ratio (10 steps), {name}: x {rx:.3f} y {ry:.3f}")
    a, _ = up.sample(s, generator=g(3), tile=24, overlap=8, batch_size=1, **kw)
    b, _ = up.sample(s, generator=g(3), tile=24, overlap=8, batch_size=5, **kw)
    print(f"tile batch 1 vs 5, same seed: max abs {np.abs(a - b).max():.2e}")


def _spawn(args: argparse.Namespace, arch: str, variant: str, side: int, tile: int, overlap: int,
           steps: int, dtype: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", arch, variant, str(side), "--steps", str(steps),
           "--tile", str(tile), "--overlap", str(overlap), "--dtype", dtype]
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", HF_HUB_OFFLINE="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if res.returncode != 0:
        return {"arch": arch, "variant": variant, "side": side, "error": res.stderr.strip().splitlines()[-1:]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def _table(rows: list[dict]) -> str:
    by = {(r["arch"], r["side"], r["variant"]): r for r in rows if "error" not in r}
    lines = [
        "| arch | side | dtype | untiled s | tiled s (tiles) | s ratio | untiled peak GB | tiled peak GB | "
        "peak ratio | untiled work GB | tiled work GB | pixel overhead | compute overhead |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arch, side in sorted({(a, s) for a, s, _ in by}, key=lambda k: (k[0] != "tiny", k[1])):
        u, t = by.get((arch, side, "untiled")), by.get((arch, side, "tiled"))
        if not (u and t):
            continue
        sr = t["seconds"] / u["seconds"]
        lines.append(
            f"| {arch} | {side} | {t['dtype']} | {u['seconds']:.2f} | {t['seconds']:.2f} ({t['tiles']}) | "
            f"{sr:.2f} | {u['peak_rss_gb']:.2f} | {t['peak_rss_gb']:.2f} | "
            f"{t['peak_rss_gb'] / u['peak_rss_gb']:.2f} | {u['working_gb']:.3f} | {t['working_gb']:.3f} | "
            f"{t['pixel_overhead']:.2f} | {sr / t['pixel_overhead']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", nargs=3, metavar=("ARCH", "VARIANT", "SIDE"), help=argparse.SUPPRESS)
    ap.add_argument("--tiny-sizes", default="64,128")
    ap.add_argument("--full-sizes", default="64")
    ap.add_argument("--large", action="store_true", help="add tiny 256 and 512, full 128")
    ap.add_argument("--steps", type=int, default=None, help="default: 10 tiny, 4 full")
    ap.add_argument("--tile", type=int, default=None, help="default: 64 tiny, 40 full")
    ap.add_argument("--overlap", type=int, default=None, help="default: 16 tiny, 8 full")
    ap.add_argument("--dtype", default=None, help="default: float32 tiny, bfloat16 full")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--json", type=Path, default=None, help="write the rows here")
    ap.add_argument("--quality", action="store_true",
                    help="instead: exactness, tiled-vs-one-tile and seam numbers on the tiny pipeline (~1 min)")
    args = ap.parse_args(argv)
    if args.quality:
        quality()
        return 0
    if args.worker:
        arch, variant, side = args.worker
        print(json.dumps(worker(arch, variant, int(side), args.steps, args.tile, args.overlap, args.dtype)))
        return 0
    plan = {
        "tiny": dict(sizes=[int(s) for s in args.tiny_sizes.split(",") if s] + ([256, 512] if args.large else []),
                     steps=10, tile=64, overlap=16, dtype="float32"),
        "full": dict(sizes=[int(s) for s in args.full_sizes.split(",") if s] + ([128] if args.large else []),
                     steps=4, tile=40, overlap=8, dtype="bfloat16"),
    }
    rows = []
    for arch, p in plan.items():
        steps, tile = args.steps or p["steps"], args.tile or p["tile"]
        overlap = args.overlap if args.overlap is not None else p["overlap"]
        for side in p["sizes"]:
            for variant in ("untiled", "tiled"):
                t0 = time.perf_counter()
                r = _spawn(args, arch, variant, side, tile, overlap, steps, args.dtype or p["dtype"])
                rows.append(r)
                print(f"{arch:5s} {variant:8s} {side:4d}: "
                      + (f"{r['seconds']:.2f} s, peak {r['peak_rss_gb']:.2f} GB, work {r['working_gb']:.3f} GB"
                         if "error" not in r else f"error {r['error']}")
                      + f"  ({time.perf_counter() - t0:.0f} s with start-up)", flush=True)
    print()
    print(_table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

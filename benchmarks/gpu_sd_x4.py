"""SD x4 on one CUDA GPU: untiled diffusers pipeline vs our latent-tiled path.

Real architecture with random weights (no weights download needed), fp16 UNet and text
encoder, fp32 VAE, guidance 9 (the pipeline's real default, so the UNet sees batch 2 per
tile). Two cases: 128 -> 512 and 512 -> 2048. For each: denoising iterations per second
(steps after the first, CUDA-synchronised), VAE decode seconds, total seconds, peak VRAM
(``torch.cuda.max_memory_allocated`` above the weights), and the max abs difference
between the one-tile path and diffusers at 128 (fp16: not bit-exact, expected ~1e-2).
An out-of-memory in the untiled run is recorded, not fatal. Writes JSON.

Budget: under 5 minutes on an H100/H200 (about 1-2 minutes expected).

    python benchmarks/gpu_sd_x4.py --out $OUT/gpu_sd_x4.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from preproc.upscalers.sd_x4 import SDx4Upscaler  # noqa: E402
from preproc.upscalers.sd_x4_random import random_pipeline  # noqa: E402

CASES = [  # (input side, steps, tile, overlap)
    (128, 20, 64, 16),
    (512, 10, 128, 16),
]


def _gb(b: int) -> float:
    return b / 2**30


# CUDA helpers that also let the script run on CPU (``--smoke``: tiny model, to check it works).
def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _reset_peak(dev: torch.device) -> int:
    """Reset the peak counter; return the bytes allocated now (the weights)."""
    if dev.type != "cuda":
        return 0
    torch.cuda.synchronize(dev)
    torch.cuda.reset_peak_memory_stats(dev)
    return torch.cuda.memory_allocated(dev)


def _peak(dev: torch.device) -> int:
    return torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0


def untiled(pipe, img: np.ndarray, steps: int, kw: dict, dev: torch.device) -> dict:
    """diffusers' ``__call__`` on the whole image; step times from the legacy callback."""
    times: list[float] = []

    def cb(step, t, latents):
        _sync(dev)
        times.append(time.perf_counter())

    base = _reset_peak(dev)
    t0 = time.perf_counter()
    try:
        with torch.inference_mode():
            out = pipe(image=img[None], generator=torch.Generator(dev).manual_seed(0), output_type="np",
                       num_inference_steps=steps, callback=cb, callback_steps=1, **kw).images[0]
    except torch.OutOfMemoryError as e:
        torch.cuda.empty_cache()
        return {"error": f"OutOfMemoryError: {str(e)[:200]}", "peak_gb": _gb(_peak(dev))}
    _sync(dev)
    total = time.perf_counter() - t0
    return {
        "seconds": total,
        "it_per_s": (len(times) - 1) / (times[-1] - times[0]),
        "decode_seconds": total - (times[-1] - t0),
        "peak_gb_above_weights": _gb(_peak(dev) - base),
        "finite": bool(np.isfinite(out).all()),
        "out": out,
    }


def tiled(up: SDx4Upscaler, img: np.ndarray, steps: int, tile: int, overlap: int, kw: dict) -> dict:
    """Our path: latent tiles at every step, tiled fp32 VAE decode."""
    dev = up.device
    base = _reset_peak(dev)
    t0 = time.perf_counter()
    out, st = up.sample(img, generator=torch.Generator(dev).manual_seed(0), num_inference_steps=steps,
                        tile=tile, overlap=overlap, batch_size=4, **kw)
    total = time.perf_counter() - t0
    times = st.step_times
    return {
        "seconds": total,
        "it_per_s": (len(times) - 1) / (times[-1] - times[0]),
        "decode_seconds": st.decode_seconds,
        "peak_gb_above_weights": _gb(_peak(dev) - base),
        "tiles": st.tiles, "tile": st.tile, "decode_tiles": st.decode_tiles, "oom_retries": st.oom_retries,
        "finite": bool(np.isfinite(out).all()),
        "out": out,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("gpu_sd_x4.json"))
    ap.add_argument("--quick", action="store_true", help="128 only, 5 steps")
    ap.add_argument("--smoke", action="store_true", help="tiny model on CPU in fp32, small sizes: checks the script")
    args = ap.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU (--smoke runs a CPU check)", file=sys.stderr)
        return 2
    dev = torch.device("cpu" if args.smoke else "cuda")
    half = torch.float32 if args.smoke else torch.float16
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    pipe = random_pipeline("tiny" if args.smoke else "full", seed=0, device=dev)
    pipe.unet.to(half)
    pipe.text_encoder.to(half)
    pipe.vae.to(torch.float32)  # fp16 VAE overflows; our path keeps it fp32 too
    build_s = time.perf_counter() - t0
    up = SDx4Upscaler(pipe, device=dev, dtype=half)
    kw = dict(prompt="a photo", guidance_scale=9.0, noise_level=20)
    rng = np.random.default_rng(0)
    # warm-up (cuDNN autotuning, kernels) on both paths
    w = rng.random((64, 64, 3), dtype=np.float32)
    untiled(pipe, w, 2, kw, dev)
    tiled(up, w, 2, 32, 8, kw)
    result = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu (smoke test)", "torch": torch.__version__, "python": platform.python_version(),
        "weights": "random, real SD x4 architecture", "unet_dtype": str(half).removeprefix("torch."), "vae_dtype": "float32",
        "guidance_scale": 9.0, "build_seconds": build_s,
        "weights_gb": _gb(torch.cuda.memory_allocated(dev)) if dev.type == "cuda" else None, "cases": [],
    }
    cases = [(128, 5, 64, 16)] if args.quick else CASES
    if args.smoke:
        cases = [(32, 3, 24, 8), (64, 2, 32, 8)]
    for side, steps, tile, overlap in cases:
        img = rng.random((side, side, 3), dtype=np.float32)
        u = untiled(pipe, img, steps, kw, dev)
        t = tiled(up, img, steps, tile, overlap, kw)
        one = tiled(up, img, steps, side, 0, kw) if side <= 128 else None
        case = {"input": side, "output": side * 4, "steps": steps, "tile": tile, "overlap": overlap,
                "untiled": {k: v for k, v in u.items() if k != "out"},
                "tiled": {k: v for k, v in t.items() if k != "out"}}
        if "out" in u:
            case["tiled_vs_untiled_mean_abs"] = float(np.abs(t["out"] - u["out"]).mean())
            if one is not None:
                case["one_tile_vs_untiled_max_abs"] = float(np.abs(one["out"] - u["out"]).max())
            case["it_per_s_ratio"] = t["it_per_s"] / u["it_per_s"]
            if dev.type == "cuda":
                case["peak_ratio"] = t["peak_gb_above_weights"] / u["peak_gb_above_weights"]
        result["cases"].append(case)
        print(json.dumps(case), flush=True)
    result["total_seconds"] = time.perf_counter() - t_all
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out} in {result['total_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``preproc enhance`` local engine against ``--engine ray`` with 1 and 2 workers, on one machine.

Real development lines (``../shared/datasets/text-lines-dev``, ``--limit`` of them spread
evenly) are downscaled to a line height of ``--height`` px (area interpolation, as the
comparisons simulate low resolution), saved as PNG files, and enhanced for OCR with
``text-sr`` by the same code path as the command (plan -> engine -> journal), into a fresh
output folder each time. The engines run in turns (``--repeats`` rounds), on one Ray
cluster started once (its start-up is reported on its own). Per job: wall seconds (model
or actor start-up included), seconds to the first finished crops, and the steady rate
after them (results arrive in chunks -- a window of 8 batches locally, a batch per actor
with Ray -- so the rate counts the crops after the first chunk, over the time from the
first chunk to the last); ratios against the local engine are taken within each round::

    flock /tmp/preproc-heavy.lock nice -n 5 .venv/bin/python benchmarks/ray_engine.py \\
        --json docs/results/ray_engine.json > /tmp/ray_engine.log 2>&1
    python benchmarks/ray_engine.py --address auto --workers 1,2,4,8 --gpus-per-worker 1   # a real cluster
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

DEFAULT_DATASET = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "text-lines-dev"


def write_lines(dataset: Path, limit: int, height: int, folder: Path) -> int:
    """Save ``limit`` lines, spread evenly over the manifest and downscaled to ``height`` px, as PNGs."""
    from preproc.compare.task import area_resize
    from preproc.io import open_image_file

    recs = [json.loads(x) for x in (dataset / "manifest.jsonl").read_text().splitlines() if x.strip()]
    step = max(1, len(recs) // max(1, limit))
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for r in recs[::step][:limit]:
        im = open_image_file(dataset / r["image"])
        w = max(1, round(im.width * height / im.height))
        area_resize(im, w, height).save(folder / f"{r['id']}.png")
        n += 1
    return n


class Clock:
    """A progress object for the engines: remembers when each crop finished."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.times: list[float] = []

    def update(self, n: int = 1) -> None:
        self.times.extend([time.perf_counter() - self.t0] * n)


def run_job(engine: str, workers: int, src: Path, out: Path, opts: argparse.Namespace) -> dict:
    """One ``preproc enhance`` job, timed; returns its figures."""
    from preproc.cli import build_parser
    from preproc.commands.common import parse_overrides
    from preproc.commands.enhance import plan, run_local

    argv = ["enhance", str(src), "-o", str(out), "--task", "ocr", "--upscaler", opts.upscaler,
            "--batch-size", str(opts.batch_size), "--no-progress", "--engine", engine, "--workers", str(workers),
            "--cpus-per-worker", str(opts.cpus_per_worker), "--gpus-per-worker", str(opts.gpus_per_worker)]
    if opts.device:
        argv += ["--device", opts.device]
    if opts.address:
        argv += ["--address", opts.address]
    args = build_parser().parse_args(argv)
    overrides = parse_overrides(args.overrides)
    clock = Clock()
    job = plan(args, overrides)
    if engine == "local":
        from preproc.enhance import Enhancer

        enh = Enhancer(args.task, args.upscaler, device=args.device, progress=False)
        run_local(job, enh, args, clock)
    else:
        from preproc.ray_data import run_enhance_job

        run_enhance_job(job, args, overrides, clock)
    job.journal.close()
    wall = time.perf_counter() - clock.t0
    recs = job.journal.records(current_only=True)
    failed = sum(not r.get("ok") for r in recs)
    t = clock.times
    later = sum(1 for x in t if x > t[0])  # results arrive in chunks: leave the first chunk out
    steady = later / (t[-1] - t[0]) if later else float("nan")
    return {"engine": engine, "workers": workers if engine == "ray" else None, "crops": len(t), "failed": failed,
            "wall_s": wall, "first_s": t[0] if t else float("nan"), "crops_per_s": len(t) / wall,
            "steady_crops_per_s": steady}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--height", type=int, default=10)
    ap.add_argument("--upscaler", default="text-sr")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", default="1,2", help="Ray pool sizes to time (comma-separated)")
    ap.add_argument("--cpus-per-worker", type=float, default=1.0)
    ap.add_argument("--gpus-per-worker", type=float, default=0.0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--address", default=None, help="an existing Ray cluster (default: a local one)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None)
    opts = ap.parse_args()
    if not opts.dataset.is_dir():
        print(f"dataset not found: {opts.dataset}", file=sys.stderr)
        return 1
    import ray

    pools = [int(x) for x in opts.workers.split(",") if x.strip()]
    with tempfile.TemporaryDirectory(prefix="ray_engine_bench_") as tmp:
        src = Path(tmp) / "in"
        n = write_lines(opts.dataset, opts.limit, opts.height, src)
        t0 = time.perf_counter()
        init_kwargs = {"address": opts.address} if opts.address else {"include_dashboard": False}
        ray.init(logging_level="WARNING", log_to_driver=False, **init_kwargs)
        ray.data.DataContext.get_current().enable_progress_bars = False
        init_s = time.perf_counter() - t0
        print(f"{n} lines at {opts.height} px; ray.init {init_s:.1f} s; cluster CPUs {ray.cluster_resources().get('CPU')}",
              flush=True)
        rounds = []
        for r in range(opts.repeats):
            row = {"local": run_job("local", 1, src, Path(tmp) / f"out_local_{r}", opts)}
            print(json.dumps(row["local"]), flush=True)
            for w in pools:
                row[f"ray{w}"] = run_job("ray", w, src, Path(tmp) / f"out_ray{w}_{r}", opts)
                print(json.dumps(row[f"ray{w}"]), flush=True)
            rounds.append(row)
        ray.shutdown()
    summary = {}
    for name in rounds[0]:
        jobs = [row[name] for row in rounds]
        s = {k: statistics.median(j[k] for j in jobs) for k in ("wall_s", "first_s", "crops_per_s", "steady_crops_per_s")}
        s["wall_ratio_vs_local"] = [row[name]["wall_s"] / row["local"]["wall_s"] for row in rounds]
        s["steady_ratio_vs_local"] = [row[name]["steady_crops_per_s"] / row["local"]["steady_crops_per_s"]
                                      for row in rounds]
        summary[name] = s
    print("\n| engine | wall s | first crop s | crops/s (job) | crops/s (steady) | steady vs local (per round) |")
    print("|---|---|---|---|---|---|")
    for name, s in summary.items():
        ratios = ", ".join(f"{x:.2f}" for x in s["steady_ratio_vs_local"])
        print(f"| {name} | {s['wall_s']:.1f} | {s['first_s']:.1f} | {s['crops_per_s']:.1f} | "
              f"{s['steady_crops_per_s']:.1f} | {ratios} |")
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps({
            "lines": n, "height": opts.height, "upscaler": opts.upscaler, "batch_size": opts.batch_size,
            "ray_init_s": init_s, "rounds": rounds, "summary": summary,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__},
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``preproc enhance`` local engine against ``--engine ray`` with 1 and 2 workers, on one machine.

Real development lines (``../shared/datasets/text-lines-dev``, ``--limit`` of them spread
evenly, each ``--copies`` times) are downscaled to a line height of ``--height`` px (area interpolation, as the
comparisons simulate low resolution), saved as PNG files, and enhanced for OCR with
``text-sr`` by the same code path as the command (plan -> engine -> journal), into a fresh
output folder each time. Each engine runs a job of a third of the crops and one of all
of them (600 lines x 3 = 1,800 crops by default: a Ray pool's start-up takes seconds); the difference gives its rate once running (start-up -- model load, actor
start -- cancels out) and its start-up seconds. Engines run in turns (``--repeats``
rounds) on one Ray cluster started once (its start-up reported on its own); ratios
against the local engine are taken within each round::

    flock /tmp/preproc-heavy.lock nice -n 5 .venv/bin/python benchmarks/ray_engine.py \\
        --json docs/results/ray_engine.json > /tmp/ray_engine.log 2>&1
    python benchmarks/ray_engine.py --address auto --workers 1x4,2x4,4x4,8x4 --gpus-per-worker 1   # a cluster
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


def write_lines(dataset: Path, limit: int, height: int, folder: Path, copies: int = 1) -> int:
    """Save ``limit`` lines, spread evenly over the manifest and downscaled to ``height`` px, as PNGs
    (each ``copies`` times, under other names: a job long enough to time a pool once running)."""
    from preproc.compare.task import area_resize
    from preproc.io import open_image_file

    recs = [json.loads(x) for x in (dataset / "manifest.jsonl").read_text().splitlines() if x.strip()]
    step = max(1, len(recs) // max(1, limit))
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for r in recs[::step][:limit]:
        im = open_image_file(dataset / r["image"])
        w = max(1, round(im.width * height / im.height))
        small = area_resize(im, w, height)
        for c in range(copies):
            small.save(folder / f"{r['id']}_{c}.png")
            n += 1
    return n


class Clock:
    """A progress object for the engines: remembers when each crop was recorded (results come in chunks)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.times: list[float] = []

    def update(self, n: int = 1) -> None:
        self.times.extend([time.perf_counter() - self.t0] * n)


def run_job(engine: str, workers: int, src: Path, out: Path, opts: argparse.Namespace, cpus: float = 1.0) -> dict:
    """One ``preproc enhance`` job, timed; returns its figures."""
    from preproc.cli import build_parser
    from preproc.commands.common import parse_overrides
    from preproc.commands.enhance import plan, run_local

    argv = ["enhance", str(src), "-o", str(out), "--task", "ocr", "--upscaler", opts.upscaler,
            "--batch-size", str(opts.batch_size), "--no-progress", "--engine", engine, "--workers", str(workers),
            "--cpus-per-worker", str(cpus), "--gpus-per-worker", str(opts.gpus_per_worker)]
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
    return {"engine": engine, "workers": workers if engine == "ray" else None,
            "cpus_per_worker": cpus if engine == "ray" else None, "crops": len(t), "failed": failed,
            "wall_s": wall, "first_s": t[0] if t else float("nan"), "crops_per_s": len(t) / wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    ap.add_argument("--limit", type=int, default=600, help="distinct lines (spread over the dataset)")
    ap.add_argument("--copies", type=int, default=3,
                    help="each line this many times in the large job (default 3); the small job: a third of it")
    ap.add_argument("--height", type=int, default=10)
    ap.add_argument("--upscaler", default="text-sr")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", default="1x1,2x1,1x2",
                    help="Ray pools to time: WORKERSxCPUS_PER_WORKER, comma-separated (default 1x1,2x1,1x2)")
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

    pools = [(int(w), float(c or 1)) for w, _, c in (x.strip().partition("x") for x in opts.workers.split(",") if x.strip())]
    with tempfile.TemporaryDirectory(prefix="ray_engine_bench_") as tmp:
        big = Path(tmp) / "in_big"
        n_big = write_lines(opts.dataset, opts.limit, opts.height, big, opts.copies)
        small = Path(tmp) / "in_small"
        small.mkdir()
        for f in sorted(big.iterdir())[::3]:
            (small / f.name).write_bytes(f.read_bytes())
        n_small = sum(1 for _ in small.iterdir())
        t0 = time.perf_counter()
        init_kwargs = {"address": opts.address} if opts.address else {"include_dashboard": False}
        ray.init(logging_level="WARNING", log_to_driver=False, **init_kwargs)
        ray.data.DataContext.get_current().enable_progress_bars = False
        init_s = time.perf_counter() - t0
        print(f"{n_small} / {n_big} lines at {opts.height} px; ray.init {init_s:.1f} s; "
              f"cluster CPUs {ray.cluster_resources().get('CPU')}", flush=True)
        for engine in ("local", "ray"):  # warm-up, not timed: imports, first model load, Ray's worker pool
            run_job(engine, 1, small, Path(tmp) / f"warm_{engine}", opts)
        configs = [("local", "local", 1, 1.0)] + [(f"ray {w} worker(s) x {c:g} CPU", "ray", w, c) for w, c in pools]
        rounds = []
        for r in range(opts.repeats):
            row = {}
            for name, engine, w, c in configs:
                jobs = {}
                for size, src in (("small", small), ("big", big)):
                    jobs[size] = run_job(engine, w, src, Path(tmp) / f"out_{r}_{size}_{engine}{w}x{c:g}", opts, cpus=c)
                dn = jobs["big"]["crops"] - jobs["small"]["crops"]
                dt = jobs["big"]["wall_s"] - jobs["small"]["wall_s"]
                marginal = dn / dt if dt > 0 else float("nan")
                row[name] = {**jobs, "marginal_crops_per_s": marginal,
                             "overhead_s": jobs["small"]["wall_s"] - jobs["small"]["crops"] / marginal}
                print(name, json.dumps(row[name]), flush=True)
            rounds.append(row)
        ray.shutdown()
    summary = {}
    for name, *_ in configs:
        s = {"big_wall_s": statistics.median(row[name]["big"]["wall_s"] for row in rounds),
             "big_crops_per_s": statistics.median(row[name]["big"]["crops_per_s"] for row in rounds),
             "marginal_crops_per_s": statistics.median(row[name]["marginal_crops_per_s"] for row in rounds),
             "overhead_s": statistics.median(row[name]["overhead_s"] for row in rounds),
             "marginal_ratio_vs_local": [row[name]["marginal_crops_per_s"] / row["local"]["marginal_crops_per_s"]
                                         for row in rounds],
             "big_wall_ratio_vs_local": [row[name]["big"]["wall_s"] / row["local"]["big"]["wall_s"] for row in rounds]}
        summary[name] = s
    print(f"\n| engine | {n_big}-crop job, s | crops/s (job) | start-up s | crops/s once running | "
          "running rate vs local (per round) |")
    print("|---|---|---|---|---|---|")
    for name, s in summary.items():
        ratios = ", ".join(f"{x:.2f}" for x in s["marginal_ratio_vs_local"])
        print(f"| {name} | {s['big_wall_s']:.1f} | {s['big_crops_per_s']:.1f} | {s['overhead_s']:.1f} | "
              f"{s['marginal_crops_per_s']:.1f} | {ratios} |")
    if opts.json:
        opts.json.parent.mkdir(parents=True, exist_ok=True)
        opts.json.write_text(json.dumps({
            "lines": [n_small, n_big], "height": opts.height, "upscaler": opts.upscaler, "batch_size": opts.batch_size,
            "ray_init_s": init_s, "rounds": rounds, "summary": summary,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__},
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Speed per face of dlib's face ResNet: dlib itself against the torch port (fp32 and bf16).

Both run in this process on the same 150x150 chips (synthetic chips: speed does not
depend on the content), at batch 1 and batch 32; the figure is the median of
``--repeats`` timings, in ms per face, and the ratio dlib / torch::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/dlib_torch.py --out runs/bench-dlib-torch.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np


def _chips(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [np.clip(rng.normal(120, 40, (150, 150, 3)), 0, 255).astype(np.uint8) for _ in range(n)]


def _median_ms(fn, faces: int, repeats: int) -> float:
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return 1000.0 * statistics.median(ts) / faces


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)

    import dlib
    import face_recognition_models as frm
    import torch

    from preproc.recognize.dlib_torch import load_dlib_resnet

    ref = dlib.face_recognition_model_v1(frm.face_recognition_model_location())
    net = load_dlib_resnet().to(args.device).eval()
    res: dict = {"device": args.device, "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                 "repeats": args.repeats, "ms_per_face": {}}
    for batch in (1, 32):
        chips = _chips(batch)
        x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float().div(255).to(args.device)

        def run_dlib(chips=chips):
            ref.compute_face_descriptor(chips)

        def run_torch(x=x, bf16=False):
            with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
                net(x).float().cpu()

        row = {"dlib": _median_ms(run_dlib, batch, args.repeats),
               "torch_fp32": _median_ms(run_torch, batch, args.repeats),
               "torch_bf16": _median_ms(lambda: run_torch(bf16=True), batch, args.repeats)}
        row["ratio_dlib_over_torch_fp32"] = row["dlib"] / row["torch_fp32"]
        row["ratio_dlib_over_torch_bf16"] = row["dlib"] / row["torch_bf16"]
        res["ms_per_face"][f"batch_{batch}"] = {k: round(v, 3) for k, v in row.items()}
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        from preproc.cache import write_text_atomic

        write_text_atomic(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``preproc train-face-sr --data FOLDER``: train the identity-preserving face upscaler (docs/faces.md)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train-face-sr", help="train the face-sr model (L1 + dlib identity loss)",
        description="Fine-tune the compact x4 net on faces degraded like users' small faces, with an "
                    "identity loss through dlib's face ResNet (in torch). DATA is a manifest folder like "
                    "faces-dev (identities held out by the pairs split) or a folder of images with one "
                    "sub-folder per identity. The best weights (by validation identity cosine) go to --out.")
    p.add_argument("--data", required=True, help="manifest folder (manifest.jsonl [+ pairs.jsonl]) or image folder")
    p.add_argument("--out", required=True, help="weights file to write (fp16 safetensors)")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget (default: 30 unless --steps)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps; makes the run deterministic")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the init (default 0)")
    p.add_argument("--run-dir", default=None, help="checkpoints, log.jsonl, data cache (default: runs/face-sr-<seed>)")
    p.add_argument("--init", default="animevideov3", help="animevideov3, random, or a face-sr weights file")
    p.add_argument("--lr", type=float, default=2e-4, help="peak learning rate (Adam, cosine decay)")
    p.add_argument("--batch-size", type=int, default=8, help="faces per step")
    p.add_argument("--id-weight", type=float, default=0.3, help="weight of the identity loss (1 - cosine)")
    p.add_argument("--feat-weight", type=float, default=0.0, help="weight of feature matching on dlib's levels")
    p.add_argument("--sources", default="lfw", help="manifest sources to train on, comma-separated (default lfw)")
    p.add_argument("--eval-stride", type=int, default=3,
                   help="every k-th pair of each group is an evaluation pair whose identities are held out")
    p.add_argument("--max-images", type=int, default=None, help="use only the first N training images")
    p.add_argument("--val-every", type=int, default=300, help="validate every N steps (0: never)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--amp", choices=("bf16", "none"), default="bf16", help="mixed precision")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


_OPTIONS = ("data", "out", "minutes", "steps", "seed", "run_dir", "init", "lr", "batch_size", "id_weight",
            "feat_weight", "sources", "eval_stride", "max_images", "val_every", "device", "amp")


def command_line(args: argparse.Namespace) -> str:
    """The full command line of this run (every option spelled out), for the weights' metadata."""
    from .common import spelled_command

    return spelled_command("train-face-sr", ((key, getattr(args, key)) for key in _OPTIONS))


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..train.face_loop import FaceTrainConfig, train_face_sr

    if args.eval_stride < 2:
        raise ConfigError(f"--eval-stride has to be >= 2 but is {args.eval_stride}")
    minutes = args.minutes if (args.minutes is not None or args.steps is not None) else 30.0
    cfg = FaceTrainConfig(
        out=args.out, data=args.data, run_dir=args.run_dir or f"runs/face-sr-{args.seed}", seed=args.seed,
        steps=args.steps, minutes=minutes, lr=args.lr, batch_size=args.batch_size, id_weight=args.id_weight,
        feat_weight=args.feat_weight, init=args.init, device=args.device, amp=args.amp,
        sources=tuple(s for s in args.sources.split(",") if s), eval_stride=args.eval_stride,
        val_every=args.val_every, resume=args.resume, progress=False if args.no_progress else None,
        max_images=args.max_images, command=command_line(args),
    )
    summary = train_face_sr(cfg)
    print(json.dumps(summary, indent=2, default=str))
    return 0

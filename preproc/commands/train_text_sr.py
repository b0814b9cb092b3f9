"""``preproc train-text-sr --out FILE``: train the text super-resolution model (docs/text_sr.md)."""

from __future__ import annotations

import argparse
import json

DEFAULT_VAL = "../shared/datasets/text-lines-dev"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train-text-sr", help="train the text-sr model on synthetic text lines",
        description="Train the compact x4 text super-resolution net on rendered text lines "
                    "(fonts and words from Debian packages), validating with Tesseract CER on a "
                    "fixed subset of a development set; the best weights are written to --out.")
    p.add_argument("--out", required=True, help="weights file to write (fp16 safetensors)")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget (default: 30 unless --steps)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps; makes the run deterministic")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the init (default 0)")
    p.add_argument("--run-dir", default=None, help="checkpoints and log.jsonl (default: runs/text-sr-<seed>)")
    p.add_argument("--init", default="animevideov3", help="animevideov3, random, or a text-sr weights file")
    p.add_argument("--num-conv", type=int, default=None,
                   help="body convolutions (default 16, or the --init file's; more deepens that file by identity blocks)")
    p.add_argument("--lr", type=float, default=4e-4, help="peak learning rate (Adam, cosine decay)")
    p.add_argument("--batch-size", type=int, default=16, help="patches per step")
    p.add_argument("--edge-weight", type=float, default=0.5, help="weight of the image-gradient L1 term")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--amp", choices=("bf16", "none"), default="bf16", help="mixed precision")
    p.add_argument("--workers", type=int, default=1, help="data generation processes")
    p.add_argument("--val-dataset", default=DEFAULT_VAL, help=f"validation set (default {DEFAULT_VAL}); '' for none")
    p.add_argument("--val-every", type=int, default=2000, help="validate every N steps (0: never)")
    p.add_argument("--val-lines", type=int, default=120, help="lines of the fixed validation subset")
    p.add_argument("--data-version", type=int, choices=(1, 2), default=1,
                   help="training-data generator: 1 (the first model's) or 2 (whole lines with text, more fonts "
                        "and degradations; needed for --recognizer-loss)")
    p.add_argument("--lr-heights", default="7,16", help="LR line heights drawn per batch, LOW,HIGH px (default 7,16)")
    p.add_argument("--recognizer-loss", type=float, default=0.0, metavar="WEIGHT",
                   help="weight of the CTC loss of a frozen recognizer reading the SR output (default 0: off)")
    p.add_argument("--recognizer", default=None,
                   help="'tesseract' (Tesseract's own LSTM, from the installed eng.traineddata) or CRNN weights "
                        "from `preproc train-text-recognizer`")
    p.add_argument("--tesseract-target", choices=("text", "target"), default=None,
                   help="with --recognizer tesseract: CTC against the line's text, or Tesseract's reading of the "
                        "clean target frame by frame (default: text)")
    p.add_argument("--tesseract-readable", type=float, default=None, metavar="CTC",
                   help="with --tesseract-target text: only lines whose clean target Tesseract reads below this "
                        "CTC per character (default: all lines)")
    p.add_argument("--val-split", choices=("selection", "report", "all"), default="selection",
                   help="lines of the validation set that pick checkpoints (default: selection)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


_OPTIONS = ("out", "minutes", "steps", "seed", "run_dir", "init", "num_conv", "lr", "batch_size", "edge_weight", "device",
            "amp", "workers", "val_dataset", "val_every", "val_lines", "data_version", "lr_heights", "recognizer_loss", "recognizer",
            "tesseract_target", "tesseract_readable", "val_split")


def command_line(args: argparse.Namespace) -> str:
    """The full command line of this run (every option spelled out), for the weights' metadata."""
    from .common import spelled_command

    return spelled_command("train-text-sr", ((key, getattr(args, key)) for key in _OPTIONS))


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..train.data import DataConfig
    from ..train.loop import TrainConfig, train

    try:
        lo, hi = (int(v) for v in str(args.lr_heights).split(","))
    except ValueError as e:
        raise ConfigError(f"--lr-heights takes LOW,HIGH in pixels (e.g. 7,16), got {args.lr_heights!r}") from e
    minutes = args.minutes if (args.minutes is not None or args.steps is not None) else 30.0
    cfg = TrainConfig(
        out=args.out, run_dir=args.run_dir or f"runs/text-sr-{args.seed}", seed=args.seed, steps=args.steps,
        minutes=minutes, lr=args.lr, edge_weight=args.edge_weight, init=args.init, num_conv=args.num_conv, device=args.device,
        amp=args.amp, workers=args.workers, val_every=args.val_every if args.val_dataset else 0,
        val_dataset=args.val_dataset or None, val_lines=args.val_lines, resume=args.resume,
        progress=False if args.no_progress else None,
        data=(DataConfig.v2 if args.data_version == 2 else DataConfig)(batch_size=args.batch_size, lr_heights=(lo, hi)),
        recognizer_weight=args.recognizer_loss, recognizer=args.recognizer, val_split=args.val_split,
        tesseract_target=args.tesseract_target or "text", tesseract_readable=args.tesseract_readable,
        command=command_line(args),
    )
    summary = train(cfg)
    print(json.dumps(summary, indent=2, default=str))
    return 0

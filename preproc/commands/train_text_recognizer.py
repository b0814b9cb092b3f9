"""``preproc train-text-recognizer --out FILE``: train the CRNN text prior of text-sr (docs/text_sr.md)."""

from __future__ import annotations

import argparse
import json


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train-text-recognizer", help="train the small CRNN line recognizer used in text-sr's recognition loss",
        description="Train a CRNN (conv + BiLSTM + CTC) on rendered whole text lines (generator v2): clean "
                    "HR renders and, with --sr-prob, a text-sr net's outputs of their degraded versions. "
                    "Deterministic for --seed and --steps on the CPU.")
    p.add_argument("--out", required=True, help="recognizer weights to write (fp16 safetensors)")
    p.add_argument("--steps", type=int, default=3000, help="optimiser steps (default 3000)")
    p.add_argument("--seed", type=int, default=0, help="seed of data and init (default 0)")
    p.add_argument("--batch-size", type=int, default=32, help="lines per step (default 32)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (Adam, cosine decay)")
    p.add_argument("--sr-weights", default="", help="text-sr weights whose outputs it also learns to read")
    p.add_argument("--sr-prob", type=float, default=None,
                   help="fraction of batches showing SR outputs (default 0.3 with --sr-weights, else 0)")
    p.add_argument("--labels", choices=("text", "tesseract"), default="text",
                   help="targets: the rendered text (default), or Tesseract's reading of each image the "
                        "recognizer is shown (a Tesseract proxy, Randika et al. 2021; ~20 ms a line)")
    p.add_argument("--init", default="", help="recognizer weights to start from")
    p.add_argument("--run-dir", default=None, help="checkpoints and log.jsonl (default runs/text-crnn-<seed>)")
    p.add_argument("--workers", type=int, default=1, help="data generation processes")
    p.add_argument("--amp", choices=("bf16", "none"), default="bf16", help="mixed precision")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    return p


def run(args: argparse.Namespace) -> int:
    from ..train.crnn import RecognizerConfig, train_recognizer
    from .common import spelled_command

    sr_prob = args.sr_prob if args.sr_prob is not None else (0.3 if args.sr_weights else 0.0)
    values = {key: sr_prob if key == "sr_prob" else getattr(args, key)
              for key in ("out", "steps", "seed", "batch_size", "lr", "sr_weights", "sr_prob", "labels", "init",
                                "run_dir", "amp")}
    command = spelled_command("train-text-recognizer", ((k, v) for k, v in values.items() if v != ""))
    cfg = RecognizerConfig(
        out=args.out, run_dir=args.run_dir or f"runs/text-crnn-{args.seed}", seed=args.seed, steps=args.steps,
        batch_size=args.batch_size, lr=args.lr, sr_prob=sr_prob, sr_weights=args.sr_weights, amp=args.amp,
        labels=args.labels, init=args.init, workers=args.workers, resume=args.resume,
        command=command)
    print(json.dumps(train_recognizer(cfg), indent=2, default=str))
    return 0

"""The training loop: progress, periodic validation, checkpoints, best weights kept.

A run writes into ``run_dir``: ``log.jsonl`` (one record per validation), ``last.pt``
(net + optimiser + step, to resume) and the best weights so far (by mean validation
CER) to ``out`` as fp16 safetensors - all atomically, so a stopped run keeps its best
weights. With ``steps`` given the run is deterministic for a seed on a given device
(the learning-rate schedule follows the step count); with only ``minutes`` the
schedule follows the clock, which depends on the machine's speed.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ..cache import atomic_target
from ..devices import resolve_device
from ..errors import ConfigError
from .data import DataConfig, TextPairBatches
from .loss import text_sr_loss
from .model import init_net, save_weights

logger = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Everything that decides a training run (stored in the weights' metadata)."""

    out: str
    run_dir: str = "runs/text-sr"
    seed: int = 0
    #: Total optimiser steps (the LR schedule's length); None: until ``minutes`` are up.
    steps: int | None = None
    #: Wall-clock cap in minutes (validation included); None: no cap.
    minutes: float | None = None
    lr: float = 4e-4
    warmup_steps: int = 200
    #: Final LR as a fraction of ``lr`` (cosine decay).
    lr_floor: float = 0.02
    edge_weight: float = 0.5
    init: str = "animevideov3"
    num_feat: int = 64
    num_conv: int = 16
    device: str | None = None
    #: Mixed precision: "bf16" (CPU with AMX, CUDA) or "none".
    amp: str = "bf16"
    workers: int = 1
    #: Validate every this many steps (and at the end); 0 disables validation.
    val_every: int = 2000
    val_dataset: str | None = None
    val_lines: int = 120
    val_sizes: tuple[int, ...] = (8, 10, 12)
    #: Side of :func:`~preproc.train.validate.split_dev_lines` that picks checkpoints.
    val_split: str = "selection"
    #: Weight of the recognition (CTC) term; > 0 needs ``recognizer`` and data version 2.
    recognizer_weight: float = 0.0
    #: Frozen CRNN weights (``preproc train-text-recognizer``) for the recognition term.
    recognizer: str | None = None
    log_every: int = 200
    resume: bool = False
    progress: bool | None = None
    data: DataConfig = field(default_factory=DataConfig)
    #: Free-form provenance (the command line) copied into the weights' metadata.
    command: str = ""

    def __post_init__(self) -> None:
        check_run_settings(self.steps, self.minutes, self.amp)
        if self.recognizer_weight < 0:
            raise ConfigError(f"`recognizer_weight` has to be >= 0 but is {self.recognizer_weight}")
        if self.recognizer_weight > 0 and not self.recognizer:
            raise ConfigError("a recognition loss weight needs `recognizer` (a CRNN weights file from "
                              "`preproc train-text-recognizer`)")
        if self.recognizer_weight > 0 and self.data.version != 2:
            raise ConfigError(f"the recognition loss needs data version 2 (whole lines with text), got {self.data.version}")


def check_run_settings(steps: int | None, minutes: float | None, amp: str) -> None:
    """The checks every training config shares: a run needs an end, and ``amp`` is bf16 or none."""
    if steps is None and minutes is None:
        raise ConfigError("give `steps`, `minutes` or both; a run needs an end")
    if steps is not None and steps < 1:
        raise ConfigError(f"`steps` has to be >= 1 but is {steps}")
    if minutes is not None and minutes <= 0:
        raise ConfigError(f"`minutes` has to be > 0 but is {minutes}")
    if amp not in ("bf16", "none"):
        raise ConfigError(f"`amp` has to be 'bf16' or 'none' but is {amp!r}")


def lr_at(cfg: TrainConfig, step: int, progress: float) -> float:
    """Linear warm-up, then cosine decay to ``lr_floor * lr`` over ``progress`` in [0, 1]."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    return cfg.lr * (cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * p)))


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_target(path) as tmp:
        torch.save(obj, tmp)


def config_record(cfg: Any) -> dict[str, Any]:
    """A training config dataclass as the JSON-able dict stored in the weights' metadata."""
    d = asdict(cfg)
    d.pop("progress", None)
    return d


class _Validator:
    """Fixed validation cases, the Tesseract reader and the baselines' CER."""

    def __init__(self, cfg: TrainConfig):
        from .validate import TesseractLine, bicubic_x4, build_cases, evaluate, identity

        self.cases = build_cases(cfg.val_dataset, cfg.val_lines, cfg.val_sizes, split=cfg.val_split)
        self.ocr = TesseractLine()
        self._evaluate = evaluate
        self.baselines = {"none": evaluate(self.cases, identity, self.ocr),
                          "bicubic": evaluate(self.cases, bicubic_x4, self.ocr)}

    def __call__(self, net: torch.nn.Module, device: torch.device) -> dict[str, float]:
        from .validate import net_upscaler

        net.eval()
        try:
            return self._evaluate(self.cases, net_upscaler(net, device), self.ocr)
        finally:
            net.train()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run one training; returns a summary (steps, seconds, best validation, baselines)."""
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    out = Path(cfg.out)
    torch.manual_seed(cfg.seed)
    net = init_net(cfg.init, cfg.num_feat, cfg.num_conv).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    start, best, elapsed_before = 0, math.inf, 0.0
    ckpt = run_dir / "last.pt"
    if cfg.resume and ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        start, best, elapsed_before = state["step"], state["best"], state.get("seconds", 0.0)
        logger.info("resumed from %s at step %d (best mean CER %.4f)", ckpt, start, best)
    crnn = None
    if cfg.recognizer_weight > 0:
        from .crnn import freeze, load_crnn

        crnn = freeze(load_crnn(cfg.recognizer).to(device))
    validator = _Validator(cfg) if cfg.val_every and cfg.val_dataset else None
    if validator:
        logger.info("baselines: %s", json.dumps(validator.baselines))
    total = cfg.steps if cfg.steps is not None else 10**9
    budget = cfg.minutes * 60 if cfg.minutes is not None else None
    loader = torch.utils.data.DataLoader(
        TextPairBatches(cfg.seed, cfg.data, total - start, start), batch_size=None, shuffle=False,
        num_workers=cfg.workers, prefetch_factor=8 if cfg.workers else None, persistent_workers=False)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16")
    log_path = run_dir / "log.jsonl"
    bar = tqdm(total=cfg.steps, initial=start, desc="train text-sr", unit="step",
               disable=None if cfg.progress is None else not cfg.progress)
    meta_base = {"command": cfg.command, "config": config_record(cfg)}
    if validator:
        meta_base["baselines"] = validator.baselines
    step, loss_avg, ctc_avg, last_val = start, None, None, None

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def checkpoint(final: bool) -> None:
        nonlocal best, last_val
        rec: dict[str, Any] = {"step": step, "seconds": round(elapsed(), 1), "loss": loss_avg,
                               "lr": opt.param_groups[0]["lr"]}
        if crnn is not None:
            rec["ctc"] = ctc_avg
        if validator:
            last_val = validator(net, device)
            rec["val_cer"] = last_val
            improved = last_val["mean"] < best
        else:
            improved = True
        if improved:
            best = last_val["mean"] if last_val else best
            save_weights(net, out, {**meta_base, "steps": step, "seconds": round(elapsed(), 1),
                                    "val_cer": last_val or {}})
        rec["best"] = improved
        _atomic_torch_save({"net": net.state_dict(), "opt": opt.state_dict(), "step": step, "best": best,
                            "seconds": elapsed()}, ckpt)
        with open(log_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        logger.info("step %d%s: %s", step, " (final)" if final else "", json.dumps(rec))

    try:
        for batch in loader:
            lr_b, hr_b = batch[0], batch[1]
            progress = step / cfg.steps if cfg.steps is not None else elapsed() / budget
            for g in opt.param_groups:
                g["lr"] = lr_at(cfg, step, progress)
            lr_b, hr_b = lr_b.to(device, non_blocking=True), hr_b.to(device, non_blocking=True)
            with autocast:
                pred = net(lr_b)
            loss = text_sr_loss(pred.float(), hr_b, cfg.edge_weight)
            if crnn is not None:
                from .crnn import recognition_loss

                with autocast:
                    rl = recognition_loss(crnn, pred.float(), batch[2])
                loss = loss + cfg.recognizer_weight * rl
                cv = float(rl.detach())
                ctc_avg = cv if ctc_avg is None else 0.98 * ctc_avg + 0.02 * cv
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            lv = float(loss.detach())
            loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
            bar.update(1)
            if step % cfg.log_every == 0:
                bar.set_postfix(loss=f"{loss_avg:.4f}")
                logger.info("step %d loss %.4f%s lr %.2e %.2f steps/s", step, loss_avg,
                            f" ctc {ctc_avg:.4f}" if ctc_avg is not None else "",
                            opt.param_groups[0]["lr"], (step - start) / max(time.perf_counter() - t0, 1e-9))
            if budget is not None and elapsed() >= budget:
                logger.info("time budget of %.1f min reached at step %d", cfg.minutes, step)
                break
            if cfg.val_every and step % cfg.val_every == 0 and (cfg.steps is None or step < cfg.steps):
                checkpoint(final=False)
        checkpoint(final=True)
    finally:
        bar.close()
    return {"steps": step, "seconds": round(elapsed(), 1), "best_mean_cer": best if validator else None,
            "last_val": last_val, "baselines": validator.baselines if validator else None, "out": str(out)}

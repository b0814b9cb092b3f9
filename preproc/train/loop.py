"""text-sr training: its config, data loader, loss (L1 + edge [+ CTC]) and Tesseract CER validation.

The loop itself (schedule, checkpoints, best weights kept) is :class:`~.steps.TrainRun`.
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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..devices import resolve_device
from ..errors import ConfigError
from .data import DataConfig, TextPairBatches
from .loss import text_sr_loss
from .model import init_net
from .steps import TrainRun, check_run_settings, config_record
from .steps import lr_at as lr_at  # re-exported: part of this module's interface

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
    #: Body convolutions; None: 16, or as many as the ``init`` file has (more deepens it).
    num_conv: int | None = None
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
    #: The recognizer of the recognition term: a frozen CRNN's weights file (``preproc
    #: train-text-recognizer``) or ``"tesseract"`` (Tesseract's own LSTM, :mod:`.tesseract_loss`).
    recognizer: str | None = None
    #: With ``recognizer="tesseract"``: what its reading is compared with, "text" (CTC) or
    #: "target" (its reading of the clean target, frame by frame); see :mod:`.tesseract_loss`.
    tesseract_target: str = "text"
    #: With "text": only lines whose clean target Tesseract reads below this CTC per character.
    tesseract_readable: float | None = None
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
            raise ConfigError("a recognition loss weight needs `recognizer` ('tesseract', or a CRNN weights file "
                              "from `preproc train-text-recognizer`)")
        if self.recognizer_weight > 0 and self.data.version != 2:
            raise ConfigError(f"the recognition loss needs data version 2 (whole lines with text), got {self.data.version}")


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


def _recognition_term(cfg: TrainConfig, device: torch.device, run: TrainRun):
    """``(sr, hr, texts) -> CTC loss`` of the recognizer that ``cfg.recognizer`` names."""
    if cfg.recognizer == "tesseract":
        from .tesseract_loss import TesseractLoss

        tess = TesseractLoss(target=cfg.tesseract_target, readable=cfg.tesseract_readable).to(device)

        def through_tesseract(sr: torch.Tensor, hr: torch.Tensor, texts: list[str]) -> torch.Tensor:
            with run.autocast:
                return tess(sr, hr, texts)

        return through_tesseract
    from .crnn import freeze, load_crnn, recognition_loss

    crnn = freeze(load_crnn(cfg.recognizer).to(device))

    def through_crnn(sr: torch.Tensor, hr: torch.Tensor, texts: list[str]) -> torch.Tensor:
        with run.autocast:
            return recognition_loss(crnn, sr, texts)

    return through_crnn


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run one training; returns a summary (steps, seconds, best validation, baselines)."""
    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    net = init_net(cfg.init, cfg.num_feat, cfg.num_conv).to(device).train()
    run = TrainRun(cfg, net, device, t0, maximise=False, metric="mean CER", log=logger)
    reader = _recognition_term(cfg, device, run) if cfg.recognizer_weight > 0 else None
    validator = _Validator(cfg) if cfg.val_every and cfg.val_dataset else None
    if validator:
        logger.info("baselines: %s", json.dumps(validator.baselines))
    loader = torch.utils.data.DataLoader(
        TextPairBatches(cfg.seed, cfg.data, run.total - run.start, run.start), batch_size=None, shuffle=False,
        num_workers=cfg.workers, prefetch_factor=8 if cfg.workers else None, persistent_workers=False)
    meta = {"command": cfg.command, "config": config_record(cfg)}
    if validator:
        meta["baselines"] = validator.baselines

    def loss_fn(batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        lr_b, hr_b = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
        with run.autocast:
            pred = net(lr_b)
        loss = text_sr_loss(pred.float(), hr_b, cfg.edge_weight)
        if reader is None:
            return loss, {}
        rl = reader(pred.float(), hr_b, batch[2])
        return loss + cfg.recognizer_weight * rl, {"ctc": float(rl.detach())}

    def fields(loss: float | None, parts: dict[str, float] | None, lr: float) -> dict[str, Any]:
        rec = {"loss": loss, "lr": lr}
        if reader is not None:
            rec["ctc"] = parts["ctc"] if parts else None
        return rec

    run.run(loader, loss_fn, desc="train text-sr", ema=0.02,
            validate=(lambda: validator(net, device)) if validator else None, val_key="val_cer", meta=meta,
            fields=fields, line=lambda parts: f" ctc {parts['ctc']:.4f}" if parts else "")
    return {"steps": run.step, "seconds": round(run.elapsed(), 1), "best_mean_cer": run.best if validator else None,
            "last_val": run.last_val, "baselines": validator.baselines if validator else None, "out": str(Path(cfg.out))}

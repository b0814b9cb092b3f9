"""The part of a training run that text-sr (:mod:`.loop`) and face-sr (:mod:`.face_loop`) share.

:class:`TrainRun` makes the Adam optimiser and restores ``last.pt`` on ``resume``;
:meth:`TrainRun.run` is the step loop: the LR schedule (:func:`lr_at`), the trainer's
loss, running averages, the step and time caps, and at every ``val_every`` steps and at
the end a checkpoint: validation, the best weights so far to ``out`` (fp16 safetensors),
``last.pt`` (net + optimiser + step, to resume) and one record in ``log.jsonl``, all
written atomically. A trainer brings its net, its batches, its loss, its validator and
the fields its records carry.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from ..cache import atomic_target
from ..errors import ConfigError
from .model import save_weights

#: A trainer's loss on one batch: the loss to minimise and named parts (floats) to average and log.
LossFn = Callable[[Any], tuple[torch.Tensor, dict[str, float]]]
#: The progress fields of a ``log.jsonl`` record from (running loss, running parts, LR), in order.
FieldsFn = Callable[[float | None, dict[str, float] | None, float], dict[str, Any]]
#: What a progress log line shows of the running parts (appended after the loss).
LineFn = Callable[[dict[str, float]], str]


class RunConfig(Protocol):
    """The fields of a training config that the shared loop reads."""

    out: str
    run_dir: str
    steps: int | None
    minutes: float | None
    lr: float
    warmup_steps: int
    lr_floor: float
    amp: str
    val_every: int
    log_every: int
    resume: bool
    progress: bool | None


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


def lr_at(cfg: RunConfig, step: int, progress: float) -> float:
    """Linear warm-up, then cosine decay to ``lr_floor * lr`` over ``progress`` in [0, 1]."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    p = min(max(progress, 0.0), 1.0)
    return cfg.lr * (cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * p)))


def config_record(cfg: Any) -> dict[str, Any]:
    """A training config dataclass as the JSON-able dict stored in the weights' metadata."""
    d = asdict(cfg)
    d.pop("progress", None)
    return d


def _atomic_torch_save(obj: Any, path: Path) -> None:
    with atomic_target(path) as tmp:
        torch.save(obj, tmp)


class TrainRun:
    """One run's optimiser, resume state and step loop (module docstring).

    After :meth:`run`: ``step`` (steps done), ``best`` (best validation mean, or the
    start value without validation), ``last_val`` (the last validation, or None) and
    :meth:`elapsed`.
    """

    def __init__(self, cfg: RunConfig, net: torch.nn.Module, device: torch.device, t0: float, *,
                 maximise: bool, metric: str, log: logging.Logger):
        """Adam over ``net``; with ``cfg.resume`` and a ``last.pt``, net, optimiser, step, best and seconds from it.

        ``t0`` is the run's start (``time.perf_counter()``), ``maximise`` whether a higher
        validation mean is better, ``metric`` its name in the resume message and ``log``
        the trainer's logger.
        """
        self.cfg, self.net, self.device, self.t0, self.log = cfg, net, device, t0, log
        self.maximise = maximise
        self.ckpt = Path(cfg.run_dir) / "last.pt"
        self.opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        self.start, self.best, self.elapsed_before = 0, -math.inf if maximise else math.inf, 0.0
        if cfg.resume and self.ckpt.is_file():
            state = torch.load(self.ckpt, map_location=device, weights_only=False)
            net.load_state_dict(state["net"])
            self.opt.load_state_dict(state["opt"])
            self.start, self.best, self.elapsed_before = state["step"], state["best"], state.get("seconds", 0.0)
            log.info("resumed from %s at step %d (best %s %.4f)", self.ckpt, self.start, metric, self.best)
        #: Steps the batches have to cover: ``steps``, or without it as good as unbounded.
        self.total = cfg.steps if cfg.steps is not None else 10**9
        self.budget = cfg.minutes * 60 if cfg.minutes is not None else None
        #: bf16 autocast when ``amp`` is "bf16" (a no-op otherwise), for the trainer's forward passes.
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp == "bf16")
        self.step = self.start
        self.last_val: dict[str, float] | None = None

    def elapsed(self) -> float:
        """Seconds of training so far, earlier runs of a resumed one included."""
        return self.elapsed_before + time.perf_counter() - self.t0

    def run(self, batches: Iterable[Any], loss_fn: LossFn, *, desc: str, ema: float,
            validate: Callable[[], dict[str, float]] | None, val_key: str, meta: dict[str, Any],
            fields: FieldsFn, line: LineFn) -> None:
        """Train on ``batches`` until they end, ``steps`` are done or ``minutes`` are up.

        ``loss_fn`` runs the net on a batch; ``ema`` is the weight of the newest value in the
        running averages of the loss and its parts; ``validate`` returns metrics with a
        ``"mean"`` (None: every checkpoint counts as the best), stored under ``val_key`` in
        records and weights' metadata; ``meta`` is the rest of that metadata; ``fields`` and
        ``line`` say how the running averages read in records and log lines; ``desc`` labels
        the progress bar.
        """
        cfg, opt, net, log = self.cfg, self.opt, self.net, self.log
        keep = 1.0 - ema
        loss_avg: float | None = None
        parts_avg: dict[str, float] | None = None
        bar = tqdm(total=cfg.steps, initial=self.start, desc=desc, unit="step",
                   disable=None if cfg.progress is None else not cfg.progress)

        def checkpoint(final: bool) -> None:
            rec: dict[str, Any] = {"step": self.step, "seconds": round(self.elapsed(), 1),
                                   **fields(loss_avg, parts_avg, opt.param_groups[0]["lr"])}
            if validate:
                self.last_val = validate()
                rec[val_key] = self.last_val
                mean = self.last_val["mean"]
                improved = mean > self.best if self.maximise else mean < self.best
            else:
                improved = True
            if improved:
                self.best = self.last_val["mean"] if self.last_val else self.best
                save_weights(net, cfg.out, {**meta, "steps": self.step, "seconds": round(self.elapsed(), 1),
                                            val_key: self.last_val or {}})
            rec["best"] = improved
            _atomic_torch_save({"net": net.state_dict(), "opt": opt.state_dict(), "step": self.step,
                                "best": self.best, "seconds": self.elapsed()}, self.ckpt)
            with open(self.ckpt.parent / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")
            log.info("step %d%s: %s", self.step, " (final)" if final else "", json.dumps(rec))

        try:
            for batch in batches:
                progress = self.step / cfg.steps if cfg.steps is not None else self.elapsed() / self.budget
                for g in opt.param_groups:
                    g["lr"] = lr_at(cfg, self.step, progress)
                loss, parts = loss_fn(batch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                self.step += 1
                lv = float(loss.detach())
                loss_avg = lv if loss_avg is None else keep * loss_avg + ema * lv
                parts_avg = parts if parts_avg is None else {
                    k: keep * parts_avg.get(k, v) + ema * v for k, v in parts.items()}
                bar.update(1)
                if self.step % cfg.log_every == 0:
                    bar.set_postfix(loss=f"{loss_avg:.4f}")
                    log.info("step %d loss %.4f%s lr %.2e %.2f steps/s", self.step, loss_avg, line(parts_avg),
                             opt.param_groups[0]["lr"],
                             (self.step - self.start) / max(time.perf_counter() - self.t0, 1e-9))
                if self.budget is not None and self.elapsed() >= self.budget:
                    log.info("time budget of %.1f min reached at step %d", cfg.minutes, self.step)
                    break
                if cfg.val_every and self.step % cfg.val_every == 0 and (cfg.steps is None or self.step < cfg.steps):
                    checkpoint(final=False)
            checkpoint(final=True)
        finally:
            bar.close()

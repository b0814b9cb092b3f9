"""Training of the face-sr model: L1 + identity loss through dlib's ResNet (in torch).

The net is the compact SRVGG x4 net in RGB, initialised from Real-ESRGAN animevideov3
(or from a face-sr weights file). Each step: a batch of degraded faces
(:class:`~preproc.train.face_data.FaceBatches`), ``sr = net(lr)``, and

    loss = L1(sr, hr) + id_weight * (1 - cos(E(chip(sr)), E(chip(hr_original))))
           [+ feat_weight * mean_l L1(F_l(chip(sr)), F_l(chip(hr)))]

where ``E`` is dlib's face ResNet (:mod:`preproc.recognize.dlib_torch`, frozen) and
``chip`` the same differentiable warp (``grid_sample``) onto the 150x150 chip that
dlib's 5-point landmarks on the HR original define. The HR embeddings are computed
once when the data are prepared.

A small set of training identities (``val_identities``, chosen by a hash of the name)
is kept apart for validation: the mean identity cosine of the SR chip at 16 and 24 px
faces on fixed degraded samples (bicubic's is logged as a baseline); the weights with the
best validation cosine are written to ``out``. Evaluation pairs never take part.

A run writes ``log.jsonl``, ``last.pt`` (net, optimiser, step: ``resume``), the
prepared-data cache and ``out`` (fp16 safetensors, format ``preproc-face-sr``), all
atomically. With ``steps`` the run is deterministic for a seed on a given machine.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..devices import resolve_device
from ..errors import ConfigError
from .face_data import (
    FaceBatches,
    FaceDegradation,
    PreparedFaces,
    identity_split,
    prepare_faces,
    warp_chips,
)
from .model import animevideov3_state_dict, build_net, load_weights
from .steps import TrainRun, check_run_settings, config_record

logger = logging.getLogger(__name__)

#: ``format`` in the metadata of face-sr weight files.
FACE_SR_FORMAT = "preproc-face-sr"


@dataclass
class FaceTrainConfig:
    """Everything that decides a face-sr training run (stored in the weights' metadata)."""

    out: str
    data: str
    run_dir: str = "runs/face-sr"
    seed: int = 0
    steps: int | None = None
    minutes: float | None = None
    lr: float = 2e-4
    warmup_steps: int = 100
    lr_floor: float = 0.05
    batch_size: int = 8
    id_weight: float = 0.3
    feat_weight: float = 0.0
    init: str = "animevideov3"
    device: str | None = None
    amp: str = "bf16"
    sources: tuple[str, ...] = ("lfw",)
    eval_stride: int = 3
    #: Fraction of the training identities kept apart for validation.
    val_fraction: float = 0.06
    val_every: int = 300
    log_every: int = 50
    resume: bool = False
    progress: bool | None = None
    max_images: int | None = None
    degradation: FaceDegradation = field(default_factory=FaceDegradation)
    command: str = ""

    def __post_init__(self) -> None:
        check_run_settings(self.steps, self.minutes, self.amp)
        if self.batch_size < 1:
            raise ConfigError(f"`batch_size` has to be >= 1 but is {self.batch_size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"`val_fraction` has to be in [0, 1) but is {self.val_fraction}")


def init_face_net(init: str = "animevideov3") -> torch.nn.Module:
    """The RGB compact x4 net from ``"animevideov3"``, ``"random"`` or a weights file."""
    if init == "random":
        return build_net(channels=3)
    if init == "animevideov3":
        net = build_net(64, 16, 4, channels=3)
        net.load_state_dict(animevideov3_state_dict())
        return net
    return load_weights(init)


def _is_val_identity(name: str, fraction: float) -> bool:
    h = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < fraction


def _subset(p: PreparedFaces, keep: np.ndarray) -> PreparedFaces:
    idx = np.flatnonzero(keep)
    return PreparedFaces(p.hr[idx], p.grids[idx], p.embeddings[idx], [p.ids[i] for i in idx],
                         [p.identities[i] for i in idx], [])


class _Validator:
    """Fixed degraded validation batches at 16 and 24 px faces; mean identity cosine."""

    SIDES = (16, 24)

    def __init__(self, faces: PreparedFaces, seed: int, embedder: torch.nn.Module, device: torch.device):
        self.batches = []
        n = len(faces.ids)
        for s in self.SIDES:
            deg = FaceDegradation(face_sides=(s, s))
            fb = FaceBatches(faces, seed + 7919 * s, n, deg)
            lr, hr, emb, grid, origin, region = fb.batch(0, indices=np.arange(n))  # every face once
            self.batches.append((s, lr, emb, grid, origin, region))
        self.embedder = embedder
        self.device = device
        self.baseline = self._run(lambda x: F.interpolate(x, scale_factor=4, mode="bicubic").clamp(0, 1))

    def _run(self, up) -> dict[str, float]:
        out = {}
        with torch.inference_mode():
            for s, lr, emb, grid, origin, region in self.batches:
                cos = []
                for i in range(0, lr.shape[0], 16):
                    sr = up(lr[i : i + 16].to(self.device)).float()
                    e = self.embedder(warp_chips(sr, grid[i : i + 16].to(self.device), origin[i : i + 16].to(self.device), region))
                    cos.append(F.cosine_similarity(e, emb[i : i + 16].to(self.device)).cpu())
                out[str(s)] = round(float(torch.cat(cos).mean()), 5)
        out["mean"] = round(float(np.mean([out[str(s)] for s in self.SIDES])), 5)
        return out

    def __call__(self, net: torch.nn.Module) -> dict[str, float]:
        net.eval()
        try:
            return self._run(lambda x: net(x).clamp(0, 1))
        finally:
            net.train()


def train_face_sr(cfg: FaceTrainConfig) -> dict[str, Any]:
    """Run one face-sr training; returns a summary (steps, seconds, validation, split)."""
    from ..recognize.dlib_torch import load_dlib_resnet

    t0 = time.perf_counter()
    device = resolve_device(cfg.device)
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    split = identity_split(cfg.data, tuple(cfg.sources), cfg.eval_stride)
    images = split.train if cfg.max_images is None else split.train[: cfg.max_images]
    faces = prepare_faces(images, run_dir / "cache", progress=cfg.progress)
    is_val = np.array([_is_val_identity(i, cfg.val_fraction) for i in faces.identities])
    if cfg.val_fraction and (is_val.all() or not is_val.any()):
        is_val = np.zeros(len(faces.ids), dtype=bool)
        is_val[:: max(2, int(round(1 / cfg.val_fraction)))] = True  # tiny sets: every k-th face
    train_faces = _subset(faces, ~is_val) if cfg.val_fraction else faces
    val_faces = _subset(faces, is_val) if cfg.val_fraction else None
    train_identities = sorted(set(faces.identities))
    logger.info("face-sr: %d training faces (%d identities), %d validation faces; split: %s",
                len(train_faces.ids), len(set(train_faces.identities)), 0 if val_faces is None else len(val_faces.ids),
                split.rule)
    torch.manual_seed(cfg.seed)
    net = init_face_net(cfg.init).to(device).train()
    embedder = load_dlib_resnet().to(device).eval()
    for p in embedder.parameters():
        p.requires_grad_(False)
    run = TrainRun(cfg, net, device, t0, maximise=True, metric="val cosine", log=logger)
    validator = _Validator(val_faces, cfg.seed, embedder, device) if (cfg.val_every and val_faces is not None) else None
    if validator:
        logger.info("validation baseline (bicubic): %s", json.dumps(validator.baseline))
    batches = FaceBatches(train_faces, cfg.seed, cfg.batch_size, cfg.degradation)
    meta = {
        "format": FACE_SR_FORMAT,
        "command": cfg.command,
        "config": config_record(cfg),
        "split": split.rule,
        "train_identities": train_identities,
        "train_faces": len(faces.ids),
        "data": str(cfg.data),
    }
    if validator:
        meta["val_baseline_bicubic"] = validator.baseline

    def loss_fn(batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        lr_b, hr_b, emb_b, grid_b, origin_b, region = batch
        lr_b, hr_b, emb_b = lr_b.to(device), hr_b.to(device), emb_b.to(device)
        grid_b, origin_b = grid_b.to(device), origin_b.to(device)
        with run.autocast:
            sr = net(lr_b)
        sr = sr.float()
        l1 = (sr - hr_b).abs().mean()
        loss = l1
        parts = {"l1": float(l1.detach())}
        if cfg.id_weight or cfg.feat_weight:
            chips = warp_chips(sr.clamp(0, 1), grid_b, origin_b, region)
            with run.autocast:
                e, feats = embedder.features(chips)
            cos = F.cosine_similarity(e.float(), emb_b).mean()
            parts["id"] = float(1 - cos.detach())
            if cfg.id_weight:
                loss = loss + cfg.id_weight * (1 - cos)
            if cfg.feat_weight:
                with torch.no_grad(), run.autocast:
                    _, hr_feats = embedder.features(warp_chips(hr_b, grid_b, origin_b, region))
                fm = sum((a.float() - b.float()).abs().mean() for a, b in zip(feats, hr_feats)) / len(feats)
                parts["feat"] = float(fm.detach())
                loss = loss + cfg.feat_weight * fm
        return loss, parts

    run.run(batches.iterate(run.start, run.total), loss_fn, desc="train face-sr", ema=0.05,
            validate=(lambda: validator(net)) if validator else None, val_key="val_cos", meta=meta,
            fields=lambda loss, parts, lr: {"loss": loss, "parts": parts, "lr": lr},
            line=lambda parts: f" {({k: round(v, 4) for k, v in parts.items()})}")
    return {"steps": run.step, "seconds": round(run.elapsed(), 1), "best_val_cos": run.best if validator else None,
            "last_val": run.last_val, "val_baseline_bicubic": validator.baseline if validator else None,
            "train_faces": len(train_faces.ids), "val_faces": 0 if val_faces is None else len(val_faces.ids),
            "split": split.rule, "out": str(cfg.out)}

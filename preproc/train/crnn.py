"""A small CRNN line recognizer (conv stack + BiLSTM + CTC) used as a text prior for text-sr.

Trained by us with CTC on rendered whole lines (:func:`~preproc.train.data.make_text_batch`):
the clean HR targets and, with ``sr_prob``, what a text-sr net makes of the degraded
input, so that it reads the SR net's kind of output (a TPGSR/STT-style text prior).
It is then frozen (eval mode: BatchNorm statistics fixed, no parameter gradients) while
the SR net trains with ``L1 + edge + lambda * CTC(CRNN(SR(lr)), text)``
(:func:`recognition_loss`): the gradient of the recognizer's loss flows through the
frozen net into the SR net.

Input: grey ``(B, 1, H, W)`` in [0, 1], dark text on light, any size - resized to
:data:`HEIGHT` px (width in proportion, antialiased, differentiable). Output: per-frame
log-probabilities ``(T, B, 96)`` over the blank (0) and the 95 printable ASCII
characters, ``T = W' // 2`` (two frames per ~0.3 line heights: narrow and doubled letters fit). Weight files: fp16 safetensors, ``format: preproc-text-crnn``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cache import atomic_target
from ..errors import ConfigError, ModelUnavailableError, WeightsError

logger = logging.getLogger(__name__)

#: Printable ASCII, space included; class ``i + 1`` is ``CHARSET[i]``, class 0 the CTC blank.
CHARSET = "".join(chr(c) for c in range(32, 127))
NUM_CLASSES = len(CHARSET) + 1
HEIGHT = 32
_INDEX = {c: i + 1 for i, c in enumerate(CHARSET)}
_FORMAT = "preproc-text-crnn"


def normalise_text(text: str) -> str:
    """Characters outside :data:`CHARSET` (whitespace aside) dropped, whitespace runs collapsed, ends stripped."""
    kept = "".join(c for c in text if c in _INDEX or c.isspace())
    return re.sub(r"\s+", " ", kept).strip()


def encode(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """CTC targets: concatenated class indices and per-text lengths (after :func:`normalise_text`)."""
    idx = [[_INDEX[c] for c in normalise_text(t)] for t in texts]
    flat = torch.tensor([i for seq in idx for i in seq], dtype=torch.long)
    return flat, torch.tensor([len(seq) for seq in idx], dtype=torch.long)


def greedy_decode(log_probs: torch.Tensor) -> list[str]:
    """Best-path decoding of ``(T, B, C)``: repeats merged, blanks dropped."""
    best = log_probs.argmax(-1).T.cpu().numpy()
    out = []
    for row in best:
        chars, prev = [], 0
        for k in row:
            if k != prev and k != 0:
                chars.append(CHARSET[k - 1])
            prev = k
        out.append("".join(chars))
    return out


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class CRNN(nn.Module):
    """Conv stack (height 32 -> 2, width / 2) + bidirectional LSTM + linear classifier."""

    def __init__(self, channels: tuple[int, ...] = (32, 64, 96, 96, 128), hidden: int = 128):
        super().__init__()
        c1, c2, c3, c4, c5 = channels
        self.channels, self.hidden = tuple(channels), hidden
        self.conv = nn.Sequential(
            *_block(1, c1), nn.MaxPool2d(2),            # 16 x W/2
            *_block(c1, c2), nn.MaxPool2d((2, 1)),      # 8 x W/2
            *_block(c2, c3), *_block(c3, c4), nn.MaxPool2d((2, 1)),  # 4 x W/2
            *_block(c4, c5), nn.MaxPool2d((2, 1)),      # 2 x W/2
        )
        self.rnn = nn.LSTM(2 * c5, hidden, bidirectional=True, batch_first=False)
        self.fc = nn.Linear(2 * hidden, NUM_CLASSES)

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` in [0, 1] -> ``(B, 1, 32, W')`` centred on 0 (differentiable)."""
        h, w = x.shape[-2:]
        nw = max(8, int(round(w * HEIGHT / h)))
        if (h, w) != (HEIGHT, nw):
            x = F.interpolate(x, size=(HEIGHT, nw), mode="bilinear", align_corners=False, antialias=h > HEIGHT)
        return (x - 0.5) * 2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-probabilities ``(T, B, NUM_CLASSES)`` for grey images ``(B, 1, H, W)`` in [0, 1]."""
        f = self.conv(self.prepare(x))                      # (B, C, 2, T)
        b, c, h, t = f.shape
        f = f.reshape(b, c * h, t).permute(2, 0, 1)          # (T, B, C*2)
        y, _ = self.rnn(f)
        return self.fc(y).float().log_softmax(-1)


def ctc(log_probs: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """Mean CTC loss (per target character, as torch's ``reduction='mean'``) of ``texts``."""
    targets, lengths = encode(texts)
    t, b = log_probs.shape[:2]
    inputs = torch.full((b,), t, dtype=torch.long)
    return F.ctc_loss(log_probs, targets, inputs, lengths, blank=0, reduction="mean", zero_infinity=True)


def freeze(net: CRNN) -> CRNN:
    """Eval mode (BatchNorm statistics fixed) and no parameter gradients; input gradients still flow."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def recognition_loss(crnn: CRNN, sr: torch.Tensor, texts: list[str]) -> torch.Tensor:
    """CTC loss of the frozen ``crnn`` reading the SR output ``sr`` (B, 1, H, W) against ``texts``."""
    return ctc(crnn(sr.clamp(0, 1)), texts)


def save_crnn(net: CRNN, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``net`` as fp16 safetensors atomically, architecture in the metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    sd = {k: v.detach().to("cpu", torch.float16 if v.is_floating_point() else v.dtype).contiguous()
          for k, v in net.state_dict().items()}
    meta = {"format": _FORMAT, "channels": json.dumps(list(net.channels)), "hidden": str(net.hidden),
            "charset": CHARSET}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    with atomic_target(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    return path


def load_crnn(path: str | os.PathLike) -> CRNN:
    """Load a recognizer written by :func:`save_crnn` (fp32, CPU, eval mode)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise ModelUnavailableError(f"recognizer weights {str(p)!r} not found; train them with "
                                    "`preproc train-text-recognizer --out FILE`")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = dict(f.metadata() or {})
        sd = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(p)).items()}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"cannot read recognizer weights {str(p)!r}: {e}") from e
    if meta.get("format") != _FORMAT or meta.get("charset") != CHARSET:
        raise WeightsError(f"{str(p)!r} is not a text-sr recognizer file (format {meta.get('format')!r}); "
                           "expected one written by `preproc train-text-recognizer`")
    net = CRNN(tuple(json.loads(meta["channels"])), int(meta["hidden"]))
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        raise WeightsError(f"{str(p)!r} does not match its declared architecture: {e}") from e
    return net.eval()


@dataclass
class RecognizerConfig:
    """A recognizer training run (stored in the weights' metadata)."""

    out: str
    run_dir: str = "runs/text-crnn"
    seed: int = 0
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1e-3
    warmup_steps: int = 200
    #: Probability that a batch shows the SR net's output of the degraded input instead of the HR target.
    sr_prob: float = 0.0
    #: The text-sr weights whose outputs the recognizer also learns to read ("" for none).
    sr_weights: str = ""
    #: Probability of a mild blur / noise on HR batches (robustness).
    augment_prob: float = 0.3
    #: What the recognizer learns to output: ``"text"`` (the rendered line's text) or
    #: ``"tesseract"`` (Tesseract's own reading of the very image it is shown: a *Tesseract
    #: proxy*, Randika et al., ICDAR 2021, whose CTC loss then approximates Tesseract's).
    labels: str = "text"
    #: Recognizer weights to start from ("" for a fresh net).
    init: str = ""
    amp: str = "bf16"
    workers: int = 1
    checkpoint_every: int = 500
    log_every: int = 100
    resume: bool = False
    command: str = ""

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError(f"steps and batch_size have to be >= 1, got {self.steps}, {self.batch_size}")
        if not 0 <= self.sr_prob <= 1:
            raise ConfigError(f"sr_prob has to be in [0, 1] but is {self.sr_prob}")
        if self.sr_prob > 0 and not self.sr_weights:
            raise ConfigError("sr_prob > 0 needs sr_weights (a text-sr weights file)")
        if self.labels not in LABEL_SOURCES:
            raise ConfigError(f"labels has to be one of {', '.join(LABEL_SOURCES)} but is {self.labels!r}")


#: Where the recognizer's training targets come from (:attr:`RecognizerConfig.labels`).
LABEL_SOURCES = ("text", "tesseract")


class TesseractLabels:
    """Tesseract's single-line readings of a batch of grey images: the targets of a Tesseract proxy."""

    def __init__(self, lang: str = "eng"):
        from ..recognize.ocr import TesseractOCR

        self._ocr = TesseractOCR(lang, mode="line")

    def __call__(self, x: torch.Tensor) -> list[str]:
        """Readings of ``x`` (B, 1, H, W) in [0, 1], each :func:`normalise_text`-ed."""
        from PIL import Image

        imgs = (x.detach().float().clamp(0, 1)[:, 0].numpy() * 255).round().astype(np.uint8)
        return [normalise_text(self._ocr.read(Image.fromarray(a, "L")).text) for a in imgs]


def _augment(hr: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    import cv2

    out = hr.numpy().copy()
    sigma = float(rng.uniform(0.4, 1.5))
    for i in range(out.shape[0]):
        out[i, 0] = cv2.GaussianBlur(out[i, 0], (0, 0), sigmaX=sigma)
    out = out + rng.normal(0, rng.uniform(0, 0.05), out.shape).astype(np.float32)
    return torch.from_numpy(np.clip(out, 0, 1))


def _lr_factor(cfg: RecognizerConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    p = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0)))


def char_error_rate(refs: list[str], hyps: list[str]) -> float:
    """Total edit distance / total reference characters (after :func:`normalise_text`)."""
    from rapidfuzz.distance import Levenshtein

    edits = sum(Levenshtein.distance(normalise_text(r), h) for r, h in zip(refs, hyps, strict=True))
    return edits / max(1, sum(len(normalise_text(r)) for r in refs))


def train_recognizer(cfg: RecognizerConfig) -> dict[str, Any]:
    """Train the CRNN with CTC; deterministic for ``seed`` and ``steps`` on a given device (CPU)."""
    from .data import DataConfig, TextPairBatches, make_text_batch
    from .model import load_weights

    t0 = time.perf_counter()
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    net = load_crnn(cfg.init).train() if cfg.init else CRNN().train()
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(cfg, s))
    sr_net = load_weights(cfg.sr_weights).eval() if cfg.sr_prob > 0 else None
    start, ckpt = 0, run_dir / "last.pt"
    if cfg.resume and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        net.load_state_dict(state["net"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start = state["step"]
        logger.info("resumed recognizer training from %s at step %d", ckpt, start)
    data = DataConfig.v2(batch_size=cfg.batch_size)
    loader = torch.utils.data.DataLoader(TextPairBatches(cfg.seed, data, cfg.steps - start, start), batch_size=None,
                                         shuffle=False, num_workers=cfg.workers,
                                         prefetch_factor=8 if cfg.workers else None)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.amp == "bf16")
    # fixed validation batches of another seed: HR targets and (if any) SR outputs
    val = [make_text_batch(cfg.seed + 10_000, i, data) for i in range(4)]
    tesseract = TesseractLabels() if cfg.labels == "tesseract" else None

    def sr(lr: torch.Tensor) -> torch.Tensor:
        assert sr_net is not None
        with torch.inference_mode(), autocast:
            return sr_net(lr).float().clamp(0, 1)

    # Tesseract's readings of the fixed SR validation lines: what a proxy should reproduce
    val_readings = ([s for b in val for s in tesseract(sr(b[0]))]
                    if tesseract is not None and sr_net is not None else [])

    def validate() -> dict[str, float]:
        net.eval()
        out = {}
        with torch.inference_mode():
            refs = [t for b in val for t in b[2]]
            out["cer_hr"] = char_error_rate(refs, [s for b in val for s in greedy_decode(net(b[1]))])
            if sr_net is not None:
                hyps = [s for b in val for s in greedy_decode(net(sr(b[0])))]
                out["cer_sr"] = char_error_rate(refs, hyps)
                if tesseract is not None:  # how closely the proxy reads like Tesseract on SR outputs
                    out["cer_sr_vs_tesseract"] = char_error_rate(val_readings, hyps)
        net.train()
        return out

    step, loss_avg = start, None
    log_path = run_dir / "log.jsonl"

    def checkpoint() -> dict[str, Any]:
        rec = {"step": step, "seconds": round(time.perf_counter() - t0, 1), "loss": loss_avg, **validate()}
        with atomic_target(ckpt) as tmp:
            torch.save({"net": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                        "step": step}, tmp)
        with open(log_path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        logger.info("recognizer step %d: %s", step, json.dumps(rec))
        return rec

    for lr_b, hr_b, texts in loader:
        rng = np.random.default_rng([cfg.seed, step, 1])
        if sr_net is not None and rng.random() < cfg.sr_prob:
            x = sr(lr_b)
        elif rng.random() < cfg.augment_prob:
            x = _augment(hr_b, rng)
        else:
            x = hr_b
        if tesseract is not None:
            texts = tesseract(x)
        with autocast:
            log_probs = net(x)
        loss = ctc(log_probs, texts)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()
        sched.step()
        step += 1
        lv = float(loss.detach())
        loss_avg = lv if loss_avg is None else 0.98 * loss_avg + 0.02 * lv
        if step % cfg.log_every == 0:
            logger.info("recognizer step %d loss %.4f lr %.2e", step, loss_avg, opt.param_groups[0]["lr"])
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
            checkpoint()
    final = checkpoint()
    save_crnn(net, cfg.out, {"command": cfg.command, "config": asdict(cfg), "steps": step, "val": final})
    return {"steps": step, "seconds": round(time.perf_counter() - t0, 1), "val": final, "out": cfg.out}

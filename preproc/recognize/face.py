"""Face recognition adapter: MTCNN detection (facenet-pytorch, weights ship in the wheel),
alignment to the embedder's input, batched L2-normalised embeddings.

``FaceRecognizer(embedder="dlib").analyze(images)`` returns one :class:`FaceResult` per
image; an image where no face is found gets ``embedding=None`` and an ``error`` saying
why (it is reported, never dropped). ``expected=`` boxes make the choice among several
detections (the one overlapping the expected box most); ``box_mode="fixed"`` aligns on
the given box whatever the detector finds (detection then only gives the confidence).

Also here: :class:`FaceGuard`, a hook (``preproc.hooks``) that keeps the plain crop
when the enhanced one's detection probability is lower, and :func:`fused_embedding` /
:func:`fuse_embeddings`, test-time augmentation by averaging the normalised embeddings
of several enhancements of one crop (and their mirror images).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..errors import ConfigError, InputError, RecognizerUnavailableError
from ..hooks import KeepIfBetter
from ..io import ImageLike, load_image
from .face_embedders import (
    FaceBox,
    FaceEmbedder,
    _to_uint8,
    cosine_similarity,
    create_embedder,
    l2_normalize,
)

logger = logging.getLogger(__name__)

__all__ = [
    "FaceBox",
    "FaceConfidence",
    "FaceDetector",
    "FaceGuard",
    "FaceRecognizer",
    "FaceResult",
    "NoFaceError",
    "box_iou",
    "cosine_distance",
    "cosine_similarity",
    "fuse_embeddings",
    "fused_embedding",
]

BOX_MODES = ("detect", "fixed")


class NoFaceError(InputError):
    """No face was found in an image where one was required."""


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine distance ``1 - cos`` of ``(N, D)`` arrays, in [0, 2]."""
    return 1.0 - cosine_similarity(a, b)


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two ``(x0, y0, x1, y1)`` boxes, in [0, 1]."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / ua) if ua > 0 else 0.0


class FaceDetector:
    """MTCNN from facenet-pytorch (P/R/O-net weights ship inside the package).

    ``min_face_size`` (px) is the smallest face searched for: facenet-pytorch's default
    is 20; 10 finds faces down to about 14 px (../shared/FACTS.md). ``pad``: the image is
    padded by this fraction of its shorter side on every side (grey) before detection, so
    that faces filling a tight crop (ORL, a detector's own crop) are still found; boxes
    are returned in the unpadded image's pixels.
    """

    def __init__(
        self,
        min_face_size: int = 10,
        thresholds: Sequence[float] = (0.6, 0.7, 0.7),
        device=None,
        pad: float = 0.2,
    ):
        try:
            from facenet_pytorch import MTCNN
        except ImportError:
            raise RecognizerUnavailableError(
                "face detection needs facenet-pytorch (MTCNN); install it with "
                "`pip install --no-deps facenet-pytorch requests tqdm` (see docs/faces.md)"
            ) from None
        from ..devices import resolve_device

        if min_face_size < 1:
            raise ConfigError(f"`min_face_size` has to be >= 1 pixel but is {min_face_size}")
        if not 0.0 <= pad <= 2.0:
            raise ConfigError(f"`pad` has to be in [0, 2] (a fraction of the shorter side) but is {pad}")
        self.min_face_size = int(min_face_size)
        self.pad = float(pad)
        self.device = resolve_device(device)
        self._mtcnn = MTCNN(
            min_face_size=self.min_face_size, thresholds=list(thresholds), keep_all=True, device=self.device
        )

    def detect(self, image: ImageLike) -> list[FaceBox]:
        """All faces in ``image``, most probable first (an empty list when there is none)."""
        if isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3:
            img = np.ascontiguousarray(image)
        else:
            img = _to_uint8(load_image(image))
        p = int(round(self.pad * min(img.shape[:2])))
        if p > 0:
            img = np.pad(img, ((p, p), (p, p), (0, 0)), mode="constant", constant_values=128)
        if min(img.shape[:2]) < 12:  # smaller than MTCNN's first window
            return []
        boxes, probs, points = self._mtcnn.detect(img, landmarks=True)
        if boxes is None:
            return []
        faces = [
            FaceBox(
                tuple(float(v) - p for v in b), float(pr), np.asarray(lm, dtype=np.float32) - np.float32(p)
            )
            for b, pr, lm in zip(boxes, probs, points)
        ]
        return sorted(faces, key=lambda f: -f.prob)

    def best(self, image: ImageLike, expected: FaceBox | None = None, min_iou: float = 0.3) -> FaceBox | None:
        """The face to use: the one overlapping ``expected`` most (IoU >= ``min_iou``), or the
        largest when nothing is expected; None when no (matching) face is found."""
        faces = self.detect(image)
        if not faces:
            return None
        if expected is None:
            return max(faces, key=lambda f: f.side)
        iou, face = max(((box_iou(f.box, expected.box), f) for f in faces), key=lambda t: t[0])
        return face if iou >= min_iou else None


@dataclass
class FaceResult:
    """What recognition made of one image.

    ``embedding``: L2-normalised ``(dim,)`` float32, or None when it failed (``error`` says why);
    ``flip_embedding``: the same for the horizontally flipped chip (when asked for);
    ``prob``: detector probability of the face used (0.0 when none was found; with
    ``box_mode="fixed"``, of a detection at the given box); ``face``: the box used, in image pixels.
    """

    embedding: np.ndarray | None
    face: FaceBox | None = None
    prob: float = 0.0
    error: str | None = None
    flip_embedding: np.ndarray | None = None

    @property
    def ok(self) -> bool:
        return self.embedding is not None


class FaceRecognizer:
    """Detector + embedder: images in, one :class:`FaceResult` each.

    ``embedder``: ``"dlib"`` (offline), ``"facenet"`` (needs its weights file), or a
    :class:`~preproc.recognize.face_embedders.FaceEmbedder`; ``embedder_kwargs`` go to
    its constructor (e.g. ``model="path/to/20180402-114759-vggface2.pt"``).
    """

    def __init__(
        self,
        embedder: str | FaceEmbedder = "dlib",
        detector: FaceDetector | None = None,
        *,
        min_face_size: int = 10,
        device=None,
        **embedder_kwargs,
    ):
        self.embedder = create_embedder(embedder, **embedder_kwargs) if isinstance(embedder, str) else embedder
        self.detector = detector or FaceDetector(min_face_size=min_face_size, device=device)

    def locate(
        self, image: np.ndarray, expected: FaceBox | None = None, box_mode: str = "detect"
    ) -> tuple[FaceBox | None, float, str | None]:
        """``(face, prob, error)`` for a uint8 ``(H, W, 3)`` image under ``box_mode``."""
        if box_mode not in BOX_MODES:
            raise ConfigError(f"`box_mode` has to be one of {', '.join(BOX_MODES)} but is {box_mode!r}")
        if box_mode == "fixed" and expected is None:
            raise ConfigError("box_mode='fixed' needs an expected face box per image")
        face = self.detector.best(image, expected)
        if box_mode == "fixed":
            # Align on the given box; the detector only says how sure it is of a face there.
            return FaceBox(expected.box, 0.0 if face is None else face.prob), 0.0 if face is None else face.prob, None
        if face is None:
            h, w = image.shape[:2]
            what = "no face detected" if expected is None else "no face detected at the expected box"
            return None, 0.0, f"{what} in the {w}x{h} image"
        return face, face.prob, None

    def analyze(
        self,
        images: Sequence[ImageLike],
        expected: Sequence[FaceBox | None] | None = None,
        *,
        box_mode: str = "detect",
        flip: bool = False,
    ) -> list[FaceResult]:
        """Detect, align and embed each image (embedding is batched over all found faces).

        ``expected``: per image, the box where the face should be (selects among
        detections; required for ``box_mode="fixed"``, which aligns on it whatever the
        detector finds). ``flip``: also embed the mirrored chip.
        """
        if expected is not None and len(expected) != len(images):
            raise ConfigError(f"got {len(images)} images but {len(expected)} expected boxes")
        results: list[FaceResult] = []
        chips: list[np.ndarray] = []
        owners: list[int] = []
        for i, im in enumerate(images):
            arr = _to_uint8(load_image(im))
            face, prob, err = self.locate(arr, None if expected is None else expected[i], box_mode)
            results.append(FaceResult(None, face, prob, err))
            if face is None:
                continue
            try:
                chip = self.embedder.align(arr, face)
            except (ConfigError, RuntimeError) as e:
                results[-1].error = f"alignment failed: {e}"
                continue
            chips.append(chip)
            owners.append(i)
            if flip:
                chips.append(np.ascontiguousarray(chip[:, ::-1]))
                owners.append(-1 - i)
        embs = self.embedder.embed(chips)
        for row, owner in zip(embs, owners):
            if owner >= 0:
                results[owner].embedding = row
            else:
                results[-1 - owner].flip_embedding = row
        return results

    def embed(self, image: ImageLike, expected: FaceBox | None = None) -> np.ndarray:
        """The ``(dim,)`` embedding of the face in one image; :class:`NoFaceError` when none is found."""
        res = self.analyze([image], None if expected is None else [expected])[0]
        if not res.ok:
            raise NoFaceError(f"cannot embed the image: {res.error}")
        return res.embedding


def fuse_embeddings(embeddings: Sequence[np.ndarray | None]) -> np.ndarray | None:
    """Test-time augmentation: the L2-normalised mean of the normalised embeddings given.

    ``None`` entries (failed candidates) are skipped; returns None when all failed.
    """
    rows = [np.asarray(e, dtype=np.float32) for e in embeddings if e is not None]
    if not rows:
        return None
    return l2_normalize(l2_normalize(np.stack(rows)).mean(axis=0))


class FaceConfidence:
    """A recognizer for :mod:`preproc.hooks`: ``rec(image) -> {"confidence", "face_side"}``,
    the MTCNN probability of the most likely face (0.0 and side None when there is none).

    ``KeepIfBetter(FaceConfidence())`` is the face version of the OCR guard.
    """

    def __init__(self, detector: FaceDetector | None = None):
        self.detector = detector or FaceDetector()

    def __call__(self, image: Image.Image) -> dict:
        faces = self.detector.detect(np.asarray(image.convert("RGB")))
        if not faces:
            return {"confidence": 0.0, "face_side": None}
        return {"confidence": faces[0].prob, "face_side": faces[0].side}


class FaceGuard(KeepIfBetter):
    """Hook: keep the plain crop when the enhanced image's face detection probability is lower.

    ``enhance(crop, task="face", hooks=[FaceGuard()])``: :class:`~preproc.hooks.KeepIfBetter`
    with :class:`FaceConfidence` as its recognizer. Besides ``meta["keep_if_better"]`` it
    records ``meta["face_guard"] = {"before_prob", "after_prob", "kept"}`` (``kept``:
    "enhanced" or "original"); ties keep the enhanced image.
    """

    __name__ = "face_guard"

    def __init__(self, detector: FaceDetector | None = None, margin: float = 0.0):
        super().__init__(FaceConfidence(detector), margin=margin)

    def decide(self, before: Image.Image, after: Image.Image, meta: dict, rec_before, rec_after) -> Image.Image | None:
        out = super().decide(before, after, meta, rec_before, rec_after)
        d = meta["keep_if_better"]
        meta["face_guard"] = {"before_prob": d["confidence_before"], "after_prob": d["confidence_after"], "kept": d["kept"]}
        return out


def fused_embedding(
    crop: ImageLike,
    recognizer: FaceRecognizer,
    upscalers: Sequence[str] = ("none", "bicubic"),
    *,
    flip: bool = True,
    **enhance_kwargs,
) -> tuple[np.ndarray | None, list[FaceResult]]:
    """The ``fuse`` variant for one crop: embed several enhancements and average them.

    Each name in ``upscalers`` (``"none"``: the crop as it is; else a backend name for
    ``preproc.enhance(crop, task="face", upscaler=name)``, whose gate scales the face
    toward the embedder's input) is recognised, with its mirrored chip when ``flip``;
    the normalised embeddings of the candidates with a face are averaged. Returns the
    fused ``(dim,)`` embedding (None when no candidate had a face) and each candidate's
    :class:`FaceResult` (for reporting which failed).
    """
    from ..enhance import enhance

    images = []
    for name in upscalers:
        if name == "none":
            images.append(crop)
        else:
            images.append(enhance(crop, task="face", upscaler=name, **enhance_kwargs).image)
    results = recognizer.analyze(images, flip=flip)
    embs = [e for r in results for e in (r.embedding, r.flip_embedding)]
    return fuse_embeddings(embs), results

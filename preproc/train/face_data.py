"""Training data of the face-sr model: the identity split, aligned HR faces, degraded LR batches.

**Sources.** ``--data`` is either a manifest folder like faces-dev (``manifest.jsonl``
with ``identity``, ``source`` and ``aligned``; ``pairs.jsonl`` optional) or a plain
folder of images whose sub-folder names are the identities.

**Split by identity** (:func:`identity_split`). When the folder has ``pairs.jsonl``, the
pairs of each set are split deterministically: within each (set, same/different) group
the pairs at positions 0, k, 2k, ... (file order; ``eval_stride`` k, default 3) are
*evaluation* pairs, the others belong to the training part. Every identity that appears in an evaluation pair is held
out; training uses only images of the chosen sources (default ``lfw``) whose identity
is in no evaluation pair. Other sources (ORL, deepface) are never trained on. Without
``pairs.jsonl`` every image of the chosen sources (all, for a plain folder) is used.

**Precomputed HR faces** (:func:`prepare_faces`, cached in the run folder): MTCNN finds
the most confident face of the original, dlib's 5-point model puts landmarks on it (on
the HR original), and the square region of ``STORE_CONTEXT`` x the face side around the
box is resampled to ``STORE_SIZE`` px (border replicated). The 150x150 chip that
``dlib.get_face_chip`` (padding 0.25) would cut is kept as a sampling grid in store
coordinates (the similarity transform from dlib's 5-point chip template to the
landmarks), and the dlib-torch embedding of that HR chip is stored as the identity
target. The same grid warps the SR output (``grid_sample``, differentiable).

**Degradation** (:class:`FaceBatches`, what users' faces look like): per batch a face
side ``s`` in [12, 32] px; a square region of ``TRAIN_CONTEXT`` x the face side, centred
on the face with a small random shift, is the HR target at ``4 * L`` px and the input at
``L = round(TRAIN_CONTEXT * s)`` px: optional mild Gaussian blur (sigma 0.2-0.9 LR px),
area downscaling, optional Gaussian noise (sigma 1-6 / 255), JPEG quality 50-95 (p 0.85),
and with a small probability both input and target turned grey (ORL-like crops).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import DatasetError

logger = logging.getLogger(__name__)

#: Side of the stored HR region (px) and the region's side over the face side.
STORE_SIZE = 256
STORE_CONTEXT = 2.0
#: Region of each training sample over the face side (smaller than stored: cheaper steps).
TRAIN_CONTEXT = 1.75
#: dlib's 5-point chip template (``get_face_chip_details``), before padding.
_DLIB_5PT_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)
CHIP_SIZE = 150
CHIP_PADDING = 0.25
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".pgm", ".ppm", ".tif", ".tiff")


@dataclass(frozen=True)
class FaceImage:
    """One training image: path, identity, and its id (manifest id or relative path)."""

    id: str
    path: str
    identity: str


@dataclass
class Split:
    """Training images, the held-out identities and how the split was made."""

    train: list[FaceImage]
    held_out_identities: set[str]
    eval_pairs: int
    rule: str


def _read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def identity_split(data: str | os.PathLike, sources: tuple[str, ...] = ("lfw",), eval_stride: int = 3) -> Split:
    """The training images of ``data`` and the identities held out (see the module docstring)."""
    root = Path(data)
    if not root.is_dir():
        raise DatasetError(f"face training data {str(root)!r} is not a folder")
    man = root / "manifest.jsonl"
    if man.is_file():
        recs = _read_jsonl(man)
        images = [
            FaceImage(r["id"], str(root / r["image"]), r["identity"])
            for r in recs
            if not sources or r.get("source") in sources
        ]
        held: set[str] = set()
        n_eval = 0
        rule = f"sources {list(sources)}; no pairs.jsonl: no identity held out"
        pairs_file = root / "pairs.jsonl"
        if pairs_file.is_file():
            ident = {r["id"]: r["identity"] for r in recs}
            groups: dict[tuple[str, bool], list[dict]] = {}
            for p in _read_jsonl(pairs_file):
                groups.setdefault((p.get("set", ""), bool(p["same"])), []).append(p)
            for plist in groups.values():
                for p in plist[0::eval_stride]:
                    held.update((ident[p["a"]], ident[p["b"]]))
                    n_eval += 1
            rule = (f"sources {list(sources)}; evaluation pairs = positions 0, {eval_stride}, {2 * eval_stride}, "
                    "... (file order) of each "
                    f"(set, same) group of pairs.jsonl ({n_eval} pairs); every identity in them held out")
        train = [im for im in images if im.identity not in held]
    else:
        train = []
        for path in sorted(root.rglob("*")):
            if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
                rel = path.relative_to(root)
                identity = rel.parts[0] if len(rel.parts) > 1 else rel.stem
                train.append(FaceImage(str(rel), str(path), identity))
        held, n_eval = set(), 0
        rule = "plain folder: identities from sub-folder names; every image used"
    if not train:
        raise DatasetError(f"no training images in {root} (sources {list(sources)}, {len(held)} identities held out)")
    return Split(train, held, n_eval, rule)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, uniform scale, shift) that maps ``src`` (N, 2) onto ``dst`` best (least squares)."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, d, vt = np.linalg.svd(cov)
    s_fix = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s_fix[1, 1] = -1
    r = u @ s_fix @ vt
    scale = np.trace(np.diag(d) @ s_fix) / (a**2).sum(1).mean()
    t = mu_d - scale * r @ mu_s
    return np.hstack([scale * r, t[:, None]])


def chip_to_image(landmarks: np.ndarray, size: int = CHIP_SIZE, padding: float = CHIP_PADDING) -> np.ndarray:
    """2x3 map from chip pixels to image pixels for dlib's 5-point landmarks (``get_face_chip_details``)."""
    tmpl = (padding + _DLIB_5PT_TEMPLATE) / (2 * padding + 1) * size
    return similarity_transform(tmpl, landmarks)


def chip_grid(chip2img: np.ndarray, size: int = CHIP_SIZE) -> np.ndarray:
    """``(size, size, 2)`` image pixel coordinates (x, y) of every chip pixel."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    pts = np.stack([xx, yy, np.ones_like(xx)], -1)
    return (pts @ chip2img.T).astype(np.float32)


@dataclass
class PreparedFaces:
    """HR regions ``(N, S, S, 3)`` uint8, chip grids ``(N, 150, 150, 2)`` in region pixels,
    HR identity embeddings ``(N, 128)``, and the image ids and identities."""

    hr: np.ndarray
    grids: np.ndarray
    embeddings: np.ndarray
    ids: list[str]
    identities: list[str]
    skipped: list[str]


def _cache_key(images: list[FaceImage]) -> str:
    h = hashlib.sha256()
    h.update(f"v1 {STORE_SIZE} {STORE_CONTEXT}".encode())
    for im in images:
        h.update(f"{im.id}\0{im.path}\0".encode())
    return h.hexdigest()[:16]


def prepare_faces(images: list[FaceImage], cache_dir: str | os.PathLike | None = None,
                  progress: bool | None = None) -> PreparedFaces:
    """Detect, landmark, cut and embed every training face once (cached in ``cache_dir``).

    Images where MTCNN finds no face are skipped (listed in ``skipped``).
    """
    import dlib
    import face_recognition_models as frm
    import torch
    from tqdm.auto import tqdm

    from ..cache import atomic_target
    from ..recognize.dlib_torch import load_dlib_resnet
    from ..recognize.face import FaceDetector

    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"faces-{_cache_key(images)}.npz"
        if cache.is_file():
            z = np.load(cache, allow_pickle=False)
            logger.info("face-sr data: %d faces from the cache %s", len(z["ids"]), cache)
            return PreparedFaces(z["hr"], z["grids"], z["embeddings"], list(z["ids"]), list(z["identities"]),
                                 list(z["skipped"]))
    det = FaceDetector(min_face_size=20, device="cpu")
    sp = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
    hr, grids, ids, idents, skipped = [], [], [], [], []
    for im in tqdm(images, desc="prepare faces", disable=None if progress is None else not progress):
        from PIL import Image

        try:
            arr = np.asarray(Image.open(im.path).convert("RGB"))
        except OSError as e:
            logger.warning("face-sr data: cannot read %s (%s); skipped", im.path, e)
            skipped.append(im.id)
            continue
        faces = det.detect(arr)
        if not faces:
            skipped.append(im.id)
            continue
        face = faces[0]  # the most confident
        x0, y0, x1, y1 = face.box
        shape = sp(arr, dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))))
        lm = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
        cx, cy = face.center
        side = int(round(STORE_CONTEXT * face.side))
        ox, oy = int(round(cx - side / 2)), int(round(cy - side / 2))
        region = _area_cut(arr, ox, oy, side)
        # store pixel u samples image point ox + (u + 0.5) * side / S - 0.5
        lm_store = (lm - np.array([ox, oy]) + 0.5) * (STORE_SIZE / side) - 0.5
        grid = chip_grid(chip_to_image(lm_store))
        hr.append(region)
        grids.append(grid)
        ids.append(im.id)
        idents.append(im.identity)
    if not hr:
        raise DatasetError(f"no face found in any of the {len(images)} training images")
    hr_a, grid_a = np.stack(hr), np.stack(grids)
    net = load_dlib_resnet()
    embs = []
    with torch.inference_mode():
        for i in range(0, len(hr_a), 32):
            x = torch.from_numpy(hr_a[i : i + 32]).permute(0, 3, 1, 2).float() / 255.0
            g = torch.from_numpy(grid_a[i : i + 32])
            embs.append(net(warp_chips(x, g)).numpy())
    emb = np.concatenate(embs)
    out = PreparedFaces(hr_a, grid_a, emb, ids, idents, skipped)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_target(cache) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, hr=hr_a, grids=grid_a, embeddings=emb, ids=np.array(ids), identities=np.array(idents),
                     skipped=np.array(skipped, dtype=str))
    logger.info("face-sr data: %d faces prepared, %d images without a face", len(ids), len(skipped))
    return out


def _area_cut(arr: np.ndarray, ox: int, oy: int, side: int) -> np.ndarray:
    """The square ``side`` region at ``(ox, oy)`` of ``arr`` (border replicated), resized to the store size."""
    pad = side
    big = cv2.copyMakeBorder(arr, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    cut = big[oy + pad : oy + pad + side, ox + pad : ox + pad + side]
    interp = cv2.INTER_AREA if side > STORE_SIZE else cv2.INTER_CUBIC
    return cv2.resize(cut, (STORE_SIZE, STORE_SIZE), interpolation=interp)


def warp_chips(images, grids, origin=None, region: float | None = None):
    """Differentiable chips: ``grid_sample`` of ``images`` ``(N, 3, H, W)`` at ``grids`` ``(N, 150, 150, 2)``.

    ``grids`` are in pixels of a square region of side ``region`` (default: the store
    size) whose top-left is ``origin`` ``(N, 2)`` (default 0); the images cover exactly
    that region at any resolution (align_corners=False convention).
    """
    import torch.nn.functional as F

    g = grids
    if origin is not None:
        g = g - origin[:, None, None, :]
    side = float(STORE_SIZE if region is None else region)
    norm = (2.0 * (g + 0.5) / side - 1.0).to(images.dtype)
    return F.grid_sample(images, norm, mode="bilinear", padding_mode="border", align_corners=False)


@dataclass(frozen=True)
class FaceDegradation:
    """Ranges of the face degradation model (module docstring)."""

    face_sides: tuple[int, int] = (12, 32)
    blur_prob: float = 0.35
    blur_sigma: tuple[float, float] = (0.2, 0.9)
    noise_prob: float = 0.4
    noise_sigma: tuple[float, float] = (1.0 / 255, 6.0 / 255)
    jpeg_prob: float = 0.85
    jpeg_quality: tuple[int, int] = (50, 95)
    grey_prob: float = 0.1
    shift: float = 0.06


class FaceBatches:
    """Deterministic batches ``(lr, hr, emb, grid, origin, region)`` for step ``start`` onwards.

    Batch ``k`` depends only on ``(seed, k)``: resuming at step ``k`` gives the same data.
    ``lr`` ``(B, 3, L, L)`` and ``hr`` ``(B, 3, 4L, 4L)`` float in [0, 1]; ``emb`` the HR
    identity targets; ``grid`` ``(B, 150, 150, 2)`` store pixels, ``origin`` ``(B, 2)`` and
    ``region`` (float) place the sample's region in store pixels (see :func:`warp_chips`).
    """

    def __init__(self, faces: PreparedFaces, seed: int, batch_size: int, deg: FaceDegradation | None = None):
        self.faces = faces
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.deg = deg or FaceDegradation()

    def batch(self, k: int, indices: np.ndarray | None = None):
        """Batch ``k`` (``indices``: these faces instead of ``batch_size`` random ones)."""
        import torch

        rng = np.random.default_rng([self.seed, int(k)])
        d = self.deg
        n = len(self.faces.ids)
        idx = rng.integers(0, n, self.batch_size)
        if indices is not None:
            idx = np.asarray(indices)
        s = int(rng.integers(d.face_sides[0], d.face_sides[1] + 1))
        L = max(8, int(round(TRAIN_CONTEXT * s)))
        face_store = STORE_SIZE / STORE_CONTEXT
        region = TRAIN_CONTEXT * face_store
        lrs, hrs, origins = [], [], []
        for i in idx:
            img = self.faces.hr[i]
            dx, dy = rng.uniform(-d.shift, d.shift, 2) * face_store
            ox = (STORE_SIZE - region) / 2 + dx
            oy = (STORE_SIZE - region) / 2 + dy
            x0, y0 = int(round(ox)), int(round(oy))
            r = int(round(region))
            x0 = min(max(x0, 0), STORE_SIZE - r)
            y0 = min(max(y0, 0), STORE_SIZE - r)
            cut = img[y0 : y0 + r, x0 : x0 + r]
            grey = rng.random() < d.grey_prob
            if grey:
                g = cv2.cvtColor(cut, cv2.COLOR_RGB2GRAY)
                cut = np.repeat(g[..., None], 3, -1)
            hr = cv2.resize(cut, (4 * L, 4 * L), interpolation=cv2.INTER_AREA)
            src = cut.astype(np.float32) / 255.0
            if rng.random() < d.blur_prob:
                sig = float(rng.uniform(*d.blur_sigma)) * r / L
                src = cv2.GaussianBlur(src, (0, 0), sigmaX=sig)
            lr = cv2.resize(src, (L, L), interpolation=cv2.INTER_AREA)
            if rng.random() < d.noise_prob:
                lr = lr + rng.normal(0, rng.uniform(*d.noise_sigma), lr.shape).astype(np.float32)
            u8 = np.clip(np.rint(lr * 255), 0, 255).astype(np.uint8)
            if rng.random() < d.jpeg_prob:
                q = int(rng.integers(d.jpeg_quality[0], d.jpeg_quality[1] + 1))
                ok, buf = cv2.imencode(".jpg", cv2.cvtColor(u8, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
                if ok:
                    u8 = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                    if grey:
                        u8 = np.repeat(cv2.cvtColor(u8, cv2.COLOR_RGB2GRAY)[..., None], 3, -1)
            lrs.append(u8)
            hrs.append(hr)
            origins.append((x0, y0))
        lr_t = torch.from_numpy(np.stack(lrs)).permute(0, 3, 1, 2).float() / 255.0
        hr_t = torch.from_numpy(np.stack(hrs)).permute(0, 3, 1, 2).float() / 255.0
        emb = torch.from_numpy(self.faces.embeddings[idx]).float()
        grid = torch.from_numpy(self.faces.grids[idx])
        origin = torch.tensor(origins, dtype=torch.float32)
        return lr_t, hr_t, emb, grid, origin, float(int(round(region)))

    def iterate(self, start: int, stop: int) -> Iterator:
        for k in range(start, stop):
            yield self.batch(k)

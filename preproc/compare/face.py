"""The face task of :func:`preproc.compare`: verification on same/different pairs.

Protocol (stated in every report's settings):

1. **Pairs**: ``pairs.jsonl`` of the dataset, optionally one ``set`` (``pair_set=``);
   ``limit`` counts *pairs*, spread evenly over the same and the different pairs
   (half each). The records are the images of those pairs.
2. **Face box**: MTCNN on the *original* image (the largest face). The crop is the square
   of ``context`` x the face side (default 2: half a face side of context on each side)
   centred on the box, clipped to the image. When the original has no detectable face,
   an aligned image (``aligned: true``) uses the whole image as the face box; an
   unaligned one fails (reported in ``failures``; its pairs count as failed pairs).
3. **Degrade**: the crop is area-downscaled so that the face side (the longer side of
   the box) is ``size`` px, then optionally JPEG-compressed.
4. **Variants**: ``none`` is the small crop as it is (the embedder's alignment resizes
   it); an upscaler runs through ``enhance(task="face")``, whose gate scales the face
   toward 160 px; ``NAME+guard`` keeps the plain crop when its detection probability is
   higher; ``fuse`` averages the normalised embeddings of its candidates and of their
   horizontal flips (test-time augmentation).
5. **Recognition**: the caller's crop is trusted. ``box="auto"`` (default) follows the
   manifest's ``aligned`` flag: ``fixed`` for aligned crops (LFW deep-funneled, ORL),
   ``detect`` for full photos; every row says how many images each mode got
   (``box_used``). With ``detect`` MTCNN runs on each variant's image and the face
   overlapping the expected box (the original box mapped into the image) is aligned and
   embedded; an image where no such face is found is a *detection failure*. With
   ``fixed`` the expected box is used as it is (no detection failures; isolates identity
   from detection). ``box="detect"`` / ``"fixed"`` force one mode for every image.
6. **Metrics** over pairs: ROC AUC, 10-fold accuracy (thresholds chosen on the other
   nine folds: the LFW protocol), TAR at FAR 1e-2. When the pairs come from several
   sets, each set is reported on its own (metrics ``SET:accuracy``, ``SET:auc``,
   ``SET:tar_at_far_1e-2``, first in the report) and no pooled row is made: one
   threshold over sets of different difficulty is misleading.
7. **Held-apart identities**: ``exclude`` (a face-sr weights file, ``face-sr`` for the
   shipped one, or a text file with one identity per line) drops every pair with an
   identity in that list (the training identities of the upscaler under test); the
   rows say how many pairs were dropped. A pair with a failed image is
   counted against the variant (worst score for its label, see
   :mod:`preproc.face_metrics`). ``detection_failures`` counts images without a face,
   ``failed_pairs`` the pairs they spoil.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..cache import atomic_target
from ..datasets import PAIRS, Pair, Record, read_manifest, read_pairs
from ..errors import ConfigError, DatasetError
from ..face_metrics import roc_curve, verification_metrics
from ..io import load_image
from .task import CompareTask, Recognition, area_resize, jpeg_roundtrip, most_confident, spread

logger = logging.getLogger(__name__)

#: Points kept of each ROC curve in a report row (for the ROC plots).
ROC_POINTS = 60


@dataclass(frozen=True)
class FaceGeometry:
    """Where the face is in one original image: the crop ``region`` ``(x0, y0, x1, y1)``
    (ints, original pixels), the face box relative to the region (fractions), the face side
    in original pixels, and how the box was found (``"mtcnn"`` or ``"whole image"``)."""

    region: tuple[int, int, int, int]
    rel_box: tuple[float, float, float, float]
    face_side: float
    source: str


class FaceTask(CompareTask):
    """Face verification before/after enhancement (see the module docstring for the protocol).

    Options: ``embedder`` (``"dlib"``, ``"dlib-torch"`` or ``"facenet"``), ``model`` (the
    embedder's weights file), ``pair_set`` (one ``set`` of ``pairs.jsonl``; None: all
    pairs), ``box`` (``"auto"``, ``"detect"`` or ``"fixed"``), ``exclude`` (identities
    whose pairs are dropped), ``context`` (crop side / face side, >= 1),
    ``min_face_size`` (MTCNN, px), ``flip`` (``fuse`` also averages mirrored chips).
    """

    name = "face"
    preset = "face"
    metrics = ("auc", "accuracy", "tar_at_far_1e-2", "detection_failures")
    higher_is_better = {"auc": True, "accuracy": True, "tar_at_far_1e-2": True, "detection_failures": False}
    size_label = "face side (px)"
    default_sizes = (16, 24, 32, 48)
    default_candidates = ("none", "bicubic")
    modes = ("select", "fuse")

    def __init__(
        self,
        embedder: str = "dlib",
        model: str | None = None,
        pair_set: str | None = None,
        box: str = "auto",
        context: float = 2.0,
        min_face_size: int = 10,
        flip: bool = True,
        exclude: str | None = None,
    ):
        from ..recognize.face import BOX_MODES

        if box not in ("auto", *BOX_MODES):
            raise ConfigError(f"face task option `box` has to be one of auto, {', '.join(BOX_MODES)} but is {box!r}")
        if not float(context) >= 1.0:
            raise ConfigError(f"face task option `context` has to be >= 1 (crop side / face side) but is {context}")
        self._options = {
            "embedder": embedder,
            "model": model,
            "pair_set": pair_set,
            "box": box,
            "context": float(context),
            "min_face_size": int(min_face_size),
            "flip": bool(flip),
            "exclude": exclude,
        }
        self._excluded_identities = _read_exclude(exclude) if exclude else set()
        self._excluded_pairs = 0
        self._sets: list[str] = []
        self._recognizer = None
        self._pairs: list[Pair] = []
        self._geometry: dict[str, FaceGeometry] = {}

    # --- data ----------------------------------------------------------------------
    def load(self, dataset: Path, limit: int | None) -> list[Record]:
        """The images of the selected pairs, in pair order; ``limit`` counts pairs."""
        records = read_manifest(dataset)
        pairs = read_pairs(dataset, records)
        want = self._options["pair_set"]
        if want is not None:
            sets = sorted({p.set for p in pairs})
            pairs = [p for p in pairs if p.set == want]
            if not pairs:
                raise DatasetError(f"no pairs of set {want!r} in {dataset}; sets there: {', '.join(sets)}")
        elif len({p.set for p in pairs}) > 1:
            logger.info("pairs of several sets (%s): each set is reported on its own",
                        ", ".join(sorted({p.set for p in pairs})))
        if self._excluded_identities:
            by_identity = {r.id: r.get("identity") for r in records}
            before = len(pairs)
            pairs = [p for p in pairs if by_identity.get(p.a) not in self._excluded_identities
                     and by_identity.get(p.b) not in self._excluded_identities]
            self._excluded_pairs = before - len(pairs)
            logger.info("exclude: %d of %d pairs dropped (an identity in %s)", before - len(pairs), before,
                        self._options["exclude"])
        if limit is not None:
            if limit < 2:
                raise ConfigError(f"the face task's limit counts pairs (half same, half different); it has to be >= 2 but is {limit}")
            same = [p for p in pairs if p.same]
            diff = [p for p in pairs if not p.same]
            half = max(1, limit // 2)
            pairs = spread(same, min(half, len(same))) + spread(diff, min(limit - half, len(diff)))
        if not any(p.same for p in pairs) or all(p.same for p in pairs):
            n_same = sum(p.same for p in pairs)
            raise DatasetError(f"{dataset / PAIRS}: face verification needs same and different pairs; got "
                               f"{n_same} same and {len(pairs) - n_same} different")
        self._pairs = pairs
        self._sets = sorted({p.set for p in pairs})
        if len(self._sets) > 1:
            # one table per set, first in the report; no pooled row over sets
            per = tuple(f"{s}:{m}" for s in self._sets for m in ("accuracy", "auc", "tar_at_far_1e-2"))
            self.metrics = (*per, "detection_failures")
            self.higher_is_better = {**{m: True for m in per}, "detection_failures": False}
        by_id = {r.id: r for r in records}
        used = dict.fromkeys(x for p in pairs for x in (p.a, p.b))
        return [by_id[i] for i in used]

    def _get_recognizer(self):
        if self._recognizer is None:
            from ..recognize.face import FaceRecognizer

            kw = {} if self._options["model"] is None else {"model": self._options["model"]}
            self._recognizer = FaceRecognizer(self._options["embedder"], min_face_size=self._options["min_face_size"], **kw)
        return self._recognizer

    def geometry(self, record: Record) -> FaceGeometry:
        """The face box and crop region of ``record``'s original image (MTCNN, cached)."""
        g = self._geometry.get(record.id)
        if g is not None:
            return g
        img = load_image(record.image)
        h, w = img.shape[:2]
        face = self._get_recognizer().detector.best(img)
        if face is None:
            if not record.get("aligned", False):
                raise DatasetError(f"{record.id}: no face detected in the original {w}x{h} image {record.image}")
            logger.warning("%s: no face detected in the original; aligned image, using the whole image as the face box",
                           record.id)
            g = FaceGeometry((0, 0, w, h), (0.0, 0.0, 1.0, 1.0), float(max(h, w)), "whole image")
        else:
            cx, cy = face.center
            half = self._options["context"] * face.side / 2.0
            x0, y0 = max(0, int(round(cx - half))), max(0, int(round(cy - half)))
            x1, y1 = min(w, int(round(cx + half))), min(h, int(round(cy + half)))
            rw, rh = x1 - x0, y1 - y0
            bx0, by0, bx1, by1 = face.box
            rel = ((bx0 - x0) / rw, (by0 - y0) / rh, (bx1 - x0) / rw, (by1 - y0) / rh)
            g = FaceGeometry((x0, y0, x1, y1), tuple(float(v) for v in rel), face.side, "mtcnn")
        self._geometry[record.id] = g
        return g

    def degrade(self, record: Record, size: int, jpeg: int | None) -> Image.Image:
        """The crop around the face, area-downscaled so the face side is ``size`` px."""
        g = self.geometry(record)
        x0, y0, x1, y1 = g.region
        crop = load_image(record.image)[y0:y1, x0:x1]
        f = float(size) / g.face_side
        small = area_resize(np.ascontiguousarray(crop), max(1, round((x1 - x0) * f)), max(1, round((y1 - y0) * f)))
        return jpeg_roundtrip(small, jpeg)

    # --- recognition ---------------------------------------------------------------
    def recognize(self, image: Image.Image, record: Record) -> Recognition:
        """``{"confidence": detection prob (0 when no face), "embedding": [...] | None,
        "flip_embedding": [...] | None, "error": str | None}``; no face is not an exception."""
        from ..recognize.face import FaceBox

        g = self.geometry(record)
        w, h = image.size
        r = g.rel_box
        expected = FaceBox((r[0] * w, r[1] * h, r[2] * w, r[3] * h))
        mode = self.box_mode(record)
        res = self._get_recognizer().analyze(
            [np.asarray(image.convert("RGB"))], [expected], box_mode=mode, flip=self._options["flip"]
        )[0]
        return {
            "box": mode,
            "confidence": float(res.prob),
            "embedding": _as_list(res.embedding),
            "flip_embedding": _as_list(res.flip_embedding),
            "error": res.error,
        }

    def box_mode(self, record: Record) -> str:
        """``fixed`` or ``detect`` for ``record`` (``box="auto"``: fixed when the manifest says aligned)."""
        box = self._options["box"]
        if box != "auto":
            return box
        return "fixed" if record.get("aligned", False) else "detect"

    def combine(self, mode: str, recognitions: Sequence[Recognition]) -> tuple[int, Recognition]:
        """``fuse``: mean of the normalised embeddings (and flips) of the candidates with a face,
        index -1; ``guard``/``select``: the most confident detection."""
        if mode != "fuse":
            if mode not in ("guard", "select"):
                raise ConfigError(f"face task cannot combine candidates by {mode!r}; it knows guard, select, fuse")
            return most_confident(recognitions)
        from ..recognize.face import fuse_embeddings

        embs = []
        for r in recognitions:
            for key in ("embedding", "flip_embedding"):
                if r.get(key) is not None:
                    embs.append(np.asarray(r[key], dtype=np.float32))
        fused = fuse_embeddings(embs)
        conf = max((float(r.get("confidence") or 0.0) for r in recognitions), default=0.0)
        used = sum(r.get("embedding") is not None for r in recognitions)
        return -1, {
            "box": next((r.get("box") for r in recognitions if r.get("box")), None),
            "confidence": conf,
            "embedding": _as_list(fused),
            "flip_embedding": None,
            "error": None if fused is not None else "no candidate had a face",
            "fused": used,
        }

    def evaluate(self, records: Sequence[Record], recognitions: Sequence[Recognition]) -> dict[str, Any]:
        """Pair metrics; pairs with an image that failed or has no face are counted against."""
        emb = {rec.id: r.get("embedding") for rec, r in zip(records, recognitions)}
        ids = {x for p in self._pairs for x in (p.a, p.b)}
        no_face = sum(1 for i in ids if emb.get(i) is None)
        sets = sorted({p.set for p in self._pairs})
        if len(sets) > 1:
            out: dict[str, Any] = {"n": len(self._pairs)}
            out["by_set"] = {s: self._pair_metrics([p for p in self._pairs if p.set == s], emb) for s in sets}
            for s, m in out["by_set"].items():
                for k in ("accuracy", "auc", "tar_at_far_1e-2"):
                    out[f"{s}:{k}"] = m.get(k)
        else:
            out = self._pair_metrics(self._pairs, emb)
        out["detection_failures"] = no_face
        modes = [self.box_mode(rec) for rec in records]
        out["box_used"] = ", ".join(f"{m} for {modes.count(m)} images" for m in ("fixed", "detect") if m in modes)
        if self._options["exclude"]:
            out["excluded_pairs"] = self._excluded_pairs
        return out

    @staticmethod
    def _pair_metrics(pairs: Sequence[Pair], emb: dict[str, Any]) -> dict[str, Any]:
        scores = np.full(len(pairs), np.nan)
        for k, p in enumerate(pairs):
            a, b = emb.get(p.a), emb.get(p.b)
            if a is not None and b is not None:
                scores[k] = float(np.dot(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)))
        labels = np.array([p.same for p in pairs], dtype=bool)
        if len(pairs) < 2 or labels.all() or not labels.any():
            # too few pairs (a set with one kind only) for verification metrics
            return {"n": len(pairs), "auc": None, "accuracy": None, "tar_at_far_1e-2": None, "failed_pairs": None}
        failed = np.isnan(scores)
        m = verification_metrics(scores, labels, failed)
        row = m.as_row()
        row["failed_pairs"] = row.pop("failures")
        far, tar, _ = roc_curve(np.where(failed, np.where(labels, -2.0, 2.0), scores), labels)
        keep = np.unique(np.linspace(0, far.size - 1, min(ROC_POINTS, far.size)).round().astype(int))
        row["roc"] = {"far": [round(float(v), 4) for v in far[keep]], "tar": [round(float(v), 4) for v in tar[keep]]}
        return row

    def caption(self, recognition: Recognition) -> str:
        c = recognition.get("confidence")
        if recognition.get("embedding") is None:
            return "no face"
        return f"face p={c:.3f}" if c is not None else "face"

    def write_extras(self, report: Any, out_dir: Path) -> list[Path]:
        """``roc.png`` (``roc_q<jpeg>.png``) and ``face_contact_sheet.png``."""
        written = write_roc_plots(report, out_dir)
        sheet = write_face_contact_sheet(out_dir)
        return written + ([sheet] if sheet else [])

    def close(self) -> None:
        self._recognizer = None


def _read_exclude(spec: str) -> set[str]:
    """Identities to hold apart: from a face-sr weights file (``face-sr``: the shipped one) or a text file."""
    if spec == "face-sr" or str(spec).endswith(".safetensors"):
        from ..upscalers.face_sr import training_identities

        return set(training_identities(None if spec == "face-sr" else spec))
    path = Path(spec)
    if not path.is_file():
        raise ConfigError(f"face task option `exclude` {spec!r}: expected 'face-sr', a face-sr .safetensors file "
                          "or a text file of identities (one per line)")
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def _as_list(v: np.ndarray | None) -> list[float] | None:
    return None if v is None else [round(float(x), 6) for x in np.asarray(v).ravel()]


def write_roc_plots(report: Any, out_dir: str | os.PathLike) -> list[Path]:
    """``roc_<size>.png`` per JPEG setting: one ROC curve per variant, from the rows' ``roc`` points.

    The compare framework writes metric-vs-size plots; this adds the face task's ROC curves.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for q in dict.fromkeys(r["jpeg"] for r in report.rows):
        sizes = sorted({r["size"] for r in report.rows if r["jpeg"] == q})
        fig, axes = plt.subplots(1, len(sizes), figsize=(4 * len(sizes), 4), dpi=100, squeeze=False)
        for ax, s in zip(axes[0], sizes):
            for r in report.rows:
                if r["size"] == s and r["jpeg"] == q and r.get("roc") and r.get("auc") is not None:
                    ax.plot(r["roc"]["far"], r["roc"]["tar"], label=f"{r['variant']} (AUC {r['auc']:.3f})")
            ax.set_xscale("symlog", linthresh=1e-2)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.01)
            ax.set_xlabel("FAR")
            ax.set_ylabel("TAR")
            ax.set_title(f"face side {s} px")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7, loc="lower right")
        fig.tight_layout()
        path = out / ("roc.png" if q is None else f"roc_q{q}.png")
        with atomic_target(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)
        written.append(path)
    return written


def write_face_contact_sheet(out_dir: str | os.PathLike, cell: int = 112) -> Path | None:
    """``face_contact_sheet.png``: a grid of the contact-sheet samples the run saved
    (``samples/<id>/<size>_<jpeg>_<candidate>.png``): one row per sample and size, one
    column per candidate, each image shown at ``cell`` x ``cell`` px (small crops enlarged
    with nearest neighbour, so their pixels stay visible)."""
    from PIL import ImageDraw

    from ..io import save_image_atomic
    from .report import _font

    root = Path(out_dir) / "samples"
    if not root.is_dir():
        return None
    rows: list[tuple[str, dict[str, Path]]] = []
    cands: list[str] = []
    for sample in sorted(p for p in root.iterdir() if p.is_dir()):
        by_setting: dict[str, dict[str, Path]] = {}
        for f in sorted(sample.glob("*.png")):
            size, q, cand = f.stem.split("_", 2)
            by_setting.setdefault(f"{size}_{q}", {})[cand] = f
            if cand not in cands:
                cands.append(cand)
        for setting in sorted(by_setting, key=lambda s: (len(s), s)):
            size, q = setting.split("_")
            rows.append((f"{sample.name} @ {size} px{'' if q == 'png' else ' ' + q}", by_setting[setting]))
    if not rows:
        return None
    cands.sort(key=lambda c: (c != "none", c != "bicubic", c))
    label_h, label_w = 16, 200
    sheet = Image.new("RGB", (label_w + cell * len(cands), label_h + (cell + 4) * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    font = _font(11)
    for j, c in enumerate(cands):
        draw.text((label_w + j * cell + 4, 2), c, fill="black", font=font)
    for i, (label, files) in enumerate(rows):
        y = label_h + i * (cell + 4)
        draw.text((4, y + cell // 2 - 6), label[:32], fill="black", font=font)
        for j, c in enumerate(cands):
            if c not in files:
                continue
            img = Image.open(files[c]).convert("RGB")
            scale = cell / max(img.size)
            w, h = max(1, round(img.width * scale)), max(1, round(img.height * scale))
            resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
            sheet.paste(img.resize((w, h), resample), (label_w + j * cell, y))
    return save_image_atomic(sheet, Path(out_dir) / "face_contact_sheet.png")

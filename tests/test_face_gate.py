"""The face part of the gate: measure the face, scale it toward the embedder's input."""

import json

import numpy as np
import pytest
from PIL import Image

from preproc import gate
from preproc.errors import ConfigError
from preproc.presets import get_preset

pytest.importorskip("facenet_pytorch")


@pytest.fixture(scope="module")
def face_crop(shared_datasets):
    """An LFW image (face about 120 px in a 250 px frame) shrunk 4x: face about 30 px."""
    root = shared_datasets / "faces-dev"
    with open(root / "manifest.jsonl") as f:
        rec = json.loads(f.readline())
    img = Image.open(root / rec["image"]).convert("RGB").resize((62, 62), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.float32) / 255.0


def test_measured_face_sets_the_scale(face_crop):
    p = get_preset("face")
    d = gate.decide(face_crop, p)
    assert d.measured["source"] == "mtcnn" and 0.5 < d.measured["face_prob"] <= 1.0
    side = d.measured["face_side"]
    assert 20 < side < 45  # the face, not the 62 px crop
    assert not d.skip and d.scale == pytest.approx(min(160 / side, p.max_scale))
    assert "measured by MTCNN" in d.reason


def test_unmeasured_face_uses_the_fraction(face_crop):
    d = gate.decide(face_crop, get_preset("face", detect_face=False, face_fraction=0.5))
    assert d.measured["face_side"] == pytest.approx(31.0)
    assert d.scale == pytest.approx(160 / 31.0)
    blank = np.full((40, 40, 3), 0.5, np.float32)
    d = gate.decide(blank, get_preset("face"))
    assert "no face detected" in d.measured["source"] and d.measured["face_side"] == pytest.approx(20.0)


def test_large_face_is_left_alone(shared_datasets):
    root = shared_datasets / "faces-dev"
    with open(root / "manifest.jsonl") as f:
        rec = json.loads(f.readline())
    big = np.asarray(Image.open(root / rec["image"]).convert("RGB").resize((400, 400)), np.float32) / 255.0
    d = gate.decide(big, get_preset("face"))
    assert d.skip and d.scale == 1.0 and d.measured["face_side"] > 160


def test_face_fraction_is_validated():
    with pytest.raises(ConfigError, match="face_fraction"):
        get_preset("face", face_fraction=0.0)


def test_aligned_crop_is_trusted(face_crop, monkeypatch):
    # an aligned crop: measured from the crop itself, no detector involved
    monkeypatch.setattr(gate, "_face_detector", lambda: pytest.fail("the detector must not run on an aligned crop"))
    d = gate.decide(face_crop, get_preset("face", aligned=True))
    assert d.measured["source"].startswith("aligned crop") and d.measured["face_side"] == pytest.approx(31.0)
    assert d.scale == pytest.approx(160 / 31.0)
    monkeypatch.undo()
    # the same crop as a photo: MTCNN measures the face (the most confident box)
    m = gate.measure_face(face_crop, get_preset("face"))
    assert m["source"] == "mtcnn" and 20 < m["face_side"] < 45

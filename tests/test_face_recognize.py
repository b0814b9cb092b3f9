"""Face recognizer: real MTCNN and dlib on development-set faces; facenet weights handling."""

import json

import numpy as np
import pytest
from PIL import Image

from preproc.errors import ConfigError, ModelUnavailableError, WeightsError

pytest.importorskip("facenet_pytorch")
pytest.importorskip("dlib")

from preproc.recognize.face import (  # noqa: E402
    FaceBox,
    FaceConfidence,
    FaceDetector,
    FaceGuard,
    FaceRecognizer,
    NoFaceError,
    box_iou,
    cosine_distance,
    fuse_embeddings,
    fused_embedding,
)
from preproc.recognize.face_embedders import (  # noqa: E402
    FACENET_VGGFACE2_FILE,
    FacenetEmbedder,
    create_embedder,
    facenet_weights_path,
)


@pytest.fixture(scope="module")
def faces(shared_datasets):
    """Two images of one LFW person and one of another, plus one ORL tight crop (uint8 RGB)."""
    root = shared_datasets / "faces-dev"
    man = {}
    with open(root / "manifest.jsonl") as f:
        for line in f:
            r = json.loads(line)
            man[r["id"]] = r

    def img(i):
        return np.asarray(Image.open(root / man[i]["image"]).convert("RGB"))

    return {
        "a1": img("lfw-Aaron_Peirsol_0001"),
        "a2": img("lfw-Aaron_Peirsol_0002"),
        "b": img("lfw-Aaron_Sorkin_0001"),
        "orl": img("orl-s01-2"),
    }


@pytest.fixture(scope="module")
def recognizer():
    return FaceRecognizer("dlib")


def test_detector_finds_the_face(faces):
    det = FaceDetector()
    found = det.detect(faces["a1"])
    assert found and found[0].prob > 0.9
    x0, y0, x1, y1 = found[0].box
    # LFW deep-funneled images are centred on the face.
    assert 90 < (x0 + x1) / 2 < 160 and 90 < (y0 + y1) / 2 < 160
    assert found[0].landmarks.shape == (5, 2)


def test_detector_padding_finds_tight_crops(faces):
    # ORL faces fill the 92x112 frame; padding gives MTCNN the context it needs.
    assert FaceDetector(pad=0.2).best(faces["orl"]) is not None


def test_no_face_is_reported_not_raised(recognizer):
    grey = np.full((120, 120, 3), 128, np.uint8)
    res = recognizer.analyze([grey])[0]
    assert not res.ok and res.prob == 0.0 and "no face" in res.error
    with pytest.raises(NoFaceError, match="no face detected"):
        recognizer.embed(grey)


def test_same_person_is_closer(recognizer, faces):
    res = recognizer.analyze([faces["a1"], faces["a2"], faces["b"]])
    assert all(r.ok for r in res)
    e = np.stack([r.embedding for r in res])
    assert e.shape == (3, 128)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    d_same = cosine_distance(e[0], e[1])[0]
    d_diff = cosine_distance(e[0], e[2])[0]
    assert d_same < d_diff


def test_batched_equals_single_and_flip(recognizer, faces):
    batch = recognizer.analyze([faces["a1"], faces["b"]], flip=True)
    single = recognizer.analyze([faces["b"]])[0]
    np.testing.assert_allclose(batch[1].embedding, single.embedding, atol=1e-5)
    assert batch[0].flip_embedding is not None
    # A mirrored face is the same person: closer than another person.
    assert float(batch[0].embedding @ batch[0].flip_embedding) > float(batch[0].embedding @ batch[1].embedding)


def test_expected_box_selects_and_fixed_mode(recognizer, faces):
    found = recognizer.detector.best(faces["a1"])
    far_away = FaceBox((0.0, 0.0, 20.0, 20.0))
    res = recognizer.analyze([faces["a1"]], [far_away])[0]
    assert not res.ok and "expected box" in res.error
    fixed = recognizer.analyze([faces["a1"]], [found], box_mode="fixed")[0]
    assert fixed.ok and fixed.face.box == found.box and fixed.prob > 0.9
    with pytest.raises(ConfigError, match="expected face box"):
        recognizer.analyze([faces["a1"]], box_mode="fixed")
    with pytest.raises(ConfigError, match="box_mode"):
        recognizer.analyze([faces["a1"]], box_mode="guess")


def test_fuse_embeddings():
    a = np.array([1.0, 0.0], np.float32)
    b = np.array([0.0, 2.0], np.float32)
    f = fuse_embeddings([a, None, b])
    np.testing.assert_allclose(f, [2**-0.5, 2**-0.5], atol=1e-6)
    assert fuse_embeddings([None, None]) is None


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)


def test_face_guard_vetoes_a_worse_image(faces):
    guard = FaceGuard()
    before = Image.fromarray(faces["a1"])
    blank = Image.new("RGB", (250, 250), (128, 128, 128))
    meta: dict = {}
    assert guard(before, blank, meta) is before
    assert meta["face_guard"]["kept"] == "original" and meta["face_guard"]["after_prob"] == 0.0
    meta = {}
    assert guard(blank, before, meta) is None
    assert meta["face_guard"]["kept"] == "enhanced" and meta["keep_if_better"]["kept"] == "enhanced"
    conf = FaceConfidence(guard.recognizer.detector)
    assert conf(blank) == {"confidence": 0.0, "face_side": None}
    found = conf(before)
    assert found["confidence"] > 0.9 and 80 < found["face_side"] < 200


def test_face_guard_as_enhance_hook(faces):
    import preproc

    small = Image.fromarray(faces["a1"]).resize((60, 60), Image.Resampling.BOX)
    out = preproc.enhance(small, task="face", upscaler="bicubic", hooks=[FaceGuard()])
    assert out.meta["face_guard"]["kept"] in ("original", "enhanced")
    assert out.meta["hooks"] == ["face_guard"]


def test_unknown_embedder():
    with pytest.raises(ConfigError, match="dlib, dlib-torch, facenet"):
        create_embedder("arcface")


def test_facenet_missing_weights_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    expected = tmp_path / "th" / "checkpoints" / FACENET_VGGFACE2_FILE
    assert facenet_weights_path() == expected
    with pytest.raises(ModelUnavailableError) as e:
        FacenetEmbedder()
    assert str(expected) in str(e.value) and "https://" in str(e.value)
    with pytest.raises(ModelUnavailableError, match="nope.pt"):
        FacenetEmbedder(model=tmp_path / "nope.pt")


def test_facenet_rejects_a_wrong_file(tmp_path):
    import torch

    bad = tmp_path / "bad.pt"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    with pytest.raises(WeightsError, match="not an InceptionResnetV1"):
        FacenetEmbedder(model=bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        FacenetEmbedder(model=junk)


def test_facenet_from_a_given_file(tmp_path, faces):
    """A checkpoint in facenet-pytorch's layout (random weights, with the logits head) loads and embeds."""
    import torch
    from facenet_pytorch import InceptionResnetV1

    torch.manual_seed(0)
    net = InceptionResnetV1(pretrained=None, classify=True, num_classes=7)
    path = tmp_path / "weights.pt"
    torch.save(net.state_dict(), path)
    rec = FaceRecognizer("facenet", model=str(path))
    res = rec.analyze([faces["a1"], faces["b"]])
    e = np.stack([r.embedding for r in res])
    assert e.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    chip = rec.embedder.align(faces["a1"], res[0].face)
    assert chip.shape == (160, 160, 3) and chip.dtype == np.uint8


def test_fused_embedding_of_a_small_crop(recognizer, faces):
    small = Image.fromarray(faces["a2"]).resize((50, 50), Image.Resampling.BOX)  # face about 24 px
    fused, parts = fused_embedding(small, recognizer, ("none", "bicubic"))
    assert len(parts) == 2 and all(p.ok and p.flip_embedding is not None for p in parts)
    assert fused.shape == (128,) and abs(float(np.linalg.norm(fused)) - 1.0) < 1e-5
    ref = recognizer.analyze([faces["a1"], faces["b"]])
    assert float(fused @ ref[0].embedding) > float(fused @ ref[1].embedding)
    # the fused vector lies between its parts
    for p in parts:
        assert float(fused @ p.embedding) > 0.8

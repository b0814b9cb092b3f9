"""train-face-sr on a few real faces: it runs, is deterministic for a seed, resumes, and its weights load."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("dlib")
pytest.importorskip("facenet_pytorch")

from preproc.errors import ConfigError, DatasetError, WeightsError  # noqa: E402
from preproc.train.face_data import (  # noqa: E402
    _DLIB_5PT_TEMPLATE,
    chip_to_image,
    identity_split,
    similarity_transform,
)
from preproc.train.face_loop import FaceTrainConfig, train_face_sr  # noqa: E402
from preproc.train.model import load_weights, read_metadata  # noqa: E402


def test_similarity_transform_recovers_a_known_map():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    ang, sc, t = 0.3, 1.7, np.array([4.0, -2.0])
    r = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    dst = sc * src @ r.T + t
    m = similarity_transform(src, dst)
    np.testing.assert_allclose(m[:, :2], sc * r, atol=1e-9)
    np.testing.assert_allclose(m[:, 2], t, atol=1e-9)
    # dlib's template mapped onto itself (scaled to the chip) is the identity
    chip_points = (0.25 + _DLIB_5PT_TEMPLATE) / 1.5 * 150
    np.testing.assert_allclose(chip_to_image(chip_points), [[1, 0, 0], [0, 1, 0]], atol=1e-9)
    # a face twice as large, shifted: the chip samples the image at twice the step
    m2 = chip_to_image(2 * chip_points + [10, 5])
    np.testing.assert_allclose(m2, [[2, 0, 10], [0, 2, 5]], atol=1e-9)


@pytest.fixture(scope="module")
def face_folder(shared_datasets, tmp_path_factory):
    """A plain folder of 6 LFW faces, one sub-folder per identity (copied to a temporary folder)."""
    root = shared_datasets / "faces-dev"
    recs = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
    recs = [r for r in recs if r["source"] == "lfw"][:6]
    out = tmp_path_factory.mktemp("faces")
    for r in recs:
        d = out / r["identity"]
        d.mkdir(exist_ok=True)
        shutil.copy(root / r["image"], d / f"{r['id']}.jpg")
    return out


def _cfg(folder, tmp, name, **kw):
    base = dict(out=str(tmp / name / "w.safetensors"), data=str(folder), run_dir=str(tmp / name), steps=2,
                batch_size=2, val_every=2, val_fraction=0.34, progress=False, seed=3)
    base.update(kw)
    return FaceTrainConfig(**base)


@pytest.mark.shared
@pytest.mark.slow
def test_train_face_sr_runs_deterministic_and_resumes(face_folder, tmp_path):
    s1 = train_face_sr(_cfg(face_folder, tmp_path, "a"))
    s2 = train_face_sr(_cfg(face_folder, tmp_path, "b"))
    assert s1["steps"] == 2 and s1["train_faces"] + s1["val_faces"] == 6
    assert s1["val_faces"] >= 1 and s1["last_val"] == s2["last_val"]
    wa, wb = load_weights(s1["out"]), load_weights(s2["out"])
    for (ka, va), (_, vb) in zip(wa.state_dict().items(), wb.state_dict().items()):
        assert torch.equal(va, vb), ka
    meta = read_metadata(s1["out"])
    assert meta["format"] == "preproc-face-sr" and meta["channels"] == "3"
    assert "plain folder" in meta["split"] and len(json.loads(meta["train_identities"])) >= 1
    # the checkpoint resumes: 2 steps + 1 more == 3 steps straight (within warm-up the LR does not
    # depend on the total)
    train_face_sr(_cfg(face_folder, tmp_path, "a", steps=3, resume=True))
    s3 = train_face_sr(_cfg(face_folder, tmp_path, "c", steps=3))
    log = [json.loads(x) for x in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 3
    ra, rc = torch.load(tmp_path / "a" / "last.pt", weights_only=False), torch.load(tmp_path / "c" / "last.pt",
                                                                                     weights_only=False)
    for k in ra["net"]:
        torch.testing.assert_close(ra["net"][k], rc["net"][k], atol=1e-6, rtol=1e-5)
    assert s3["steps"] == 3

    # the weights are a working face-sr backend
    from preproc.upscalers.face_sr import FaceSRUpscaler, training_identities

    up = FaceSRUpscaler(model=s1["out"], device="cpu")
    x = torch.rand(1, 3, 20, 20)
    assert up.upscale(x).shape == (1, 3, 80, 80)
    assert training_identities(s1["out"]) == json.loads(meta["train_identities"])
    import preproc

    small = Image.open(next(face_folder.rglob("*.jpg"))).convert("RGB").resize((40, 40), Image.Resampling.BOX)
    res = preproc.enhance(small, task="face", upscaler="face-sr", model=s1["out"])
    assert res.image.width > 40 and res.meta["upscaler"] == "face-sr"


def test_bad_inputs(tmp_path):
    with pytest.raises(DatasetError):
        identity_split(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError):
        identity_split(tmp_path / "empty")
    with pytest.raises(ConfigError):
        FaceTrainConfig(out="x", data="y")  # neither steps nor minutes
    with pytest.raises(ConfigError):
        FaceTrainConfig(out="x", data="y", steps=1, amp="fp8")
    from preproc.upscalers.face_sr import training_identities

    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a file")
    with pytest.raises(WeightsError):
        training_identities(bad)


@pytest.mark.shared
def test_split_holds_out_every_evaluation_identity(shared_datasets):
    root = shared_datasets / "faces-dev"
    sp = identity_split(root)
    recs = {r["id"]: r for r in map(json.loads, (root / "manifest.jsonl").read_text().splitlines())}
    pairs = [json.loads(x) for x in (root / "pairs.jsonl").read_text().splitlines()]
    train_ids = {im.identity for im in sp.train}
    assert {recs[i.id]["source"] for i in sp.train} == {"lfw"}  # ORL and deepface never trained on
    groups = {}
    for p in pairs:
        groups.setdefault((p["set"], p["same"]), []).append(p)
    for plist in groups.values():
        for p in plist[0::3]:
            assert recs[p["a"]]["identity"] not in train_ids and recs[p["b"]]["identity"] not in train_ids
    assert len(sp.train) > 1000


def test_shipped_weights_state_their_training_data():
    from preproc.upscalers.face_sr import FaceSRUpscaler, shipped_weights, training_identities

    if not shipped_weights().is_file():
        pytest.skip("face-sr weights not shipped in this checkout")
    meta = read_metadata(shipped_weights())
    assert meta["format"] == "preproc-face-sr"
    assert "held out" in meta["split"] and "train-face-sr" in meta["command"]
    ids = training_identities()
    assert len(ids) > 500 and not any(i.startswith(("orl-", "deepface-")) for i in ids)
    up = FaceSRUpscaler(device="cpu")
    assert up.scale == 4
    for shape in ((1, 3, 1, 1), (1, 3, 5, 40)):  # a 1-pixel crop and a thin strip upscale too
        assert up.upscale(torch.rand(*shape)).shape[-2:] == (4 * shape[2], 4 * shape[3])


@pytest.mark.shared
def test_shipped_weights_never_saw_an_evaluation_identity(shared_datasets):
    from preproc.upscalers.face_sr import shipped_weights, training_identities

    if not shipped_weights().is_file():
        pytest.skip("face-sr weights not shipped in this checkout")
    root = shared_datasets / "faces-dev"
    sp = identity_split(root)
    assert not set(training_identities()) & sp.held_out_identities


@pytest.mark.shared
def test_fused_embedding_with_face_sr(shared_datasets):
    from preproc.recognize.face import FaceRecognizer, fused_embedding
    from preproc.upscalers.face_sr import shipped_weights

    if not shipped_weights().is_file():
        pytest.skip("face-sr weights not shipped in this checkout")
    root = shared_datasets / "faces-dev"
    img = Image.open(root / "images/lfw/Aaron_Peirsol/Aaron_Peirsol_0001.jpg").convert("RGB")
    small = img.resize((48, 48), Image.Resampling.BOX)  # a face of about 20 px
    emb, parts = fused_embedding(small, FaceRecognizer("dlib-torch"), upscalers=("face-sr", "bicubic"))
    assert emb is not None and emb.shape == (128,) and abs(float(np.linalg.norm(emb)) - 1) < 1e-5
    assert len(parts) == 2

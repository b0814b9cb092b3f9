"""dlib's face ResNet in torch: the format reader on the real file, equality with dlib, gradients."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

dlib = pytest.importorskip("dlib")
frm = pytest.importorskip("face_recognition_models")

from preproc.errors import ShapeError  # noqa: E402
from preproc.recognize.dlib_torch import (  # noqa: E402
    CHIP_SIZE,
    DlibFormatError,
    load_dlib_resnet,
    read_dlib_net,
)
from preproc.recognize.face_embedders import create_embedder  # noqa: E402


def _synthetic_chips(n: int, seed: int = 0) -> list[np.ndarray]:
    """Smooth random 150x150 RGB chips (a net computes the same function on any input)."""
    rng = np.random.default_rng(seed)
    chips = []
    yy, xx = np.mgrid[0:CHIP_SIZE, 0:CHIP_SIZE] / CHIP_SIZE
    for _ in range(n):
        base = rng.uniform(0, 255, size=(10, 10, 3))
        up = np.kron(base, np.ones((15, 15, 1)))
        img = 0.6 * up + 0.4 * 255 * np.stack([xx, yy, 1 - xx], -1) + rng.normal(0, 8, up.shape)
        chips.append(np.clip(img, 0, 255).astype(np.uint8))
    return chips


@pytest.fixture(scope="module")
def dlib_net():
    return dlib.face_recognition_model_v1(frm.face_recognition_model_location())


@pytest.fixture(scope="module")
def torch_net():
    return load_dlib_resnet()


def test_reader_parses_the_real_file():
    net = read_dlib_net(frm.face_recognition_model_location())
    assert net.loss["kind"] == "loss_metric_2"
    assert net.loss["dist_thresh"] == pytest.approx(0.6)
    assert net.input["means"] == pytest.approx((122.782, 117.001, 104.298), abs=1e-4)
    kinds = [layer.base for layer in net.layers]
    assert kinds.count("con") == 29 and kinds.count("affine") == 29 and kinds.count("add_prev") == 14
    assert sum(layer.fields["params"].size for layer in net.layers if "params" in layer.fields) == 5_614_592


def test_reader_rejects_other_files(tmp_path):
    bad = tmp_path / "x.dat"
    bad.write_bytes(b"\x01\x01\x05hello")
    with pytest.raises(DlibFormatError):
        read_dlib_net(bad)
    truncated = tmp_path / "t.dat"
    truncated.write_bytes(Path(frm.face_recognition_model_location()).read_bytes()[:5000])
    with pytest.raises(DlibFormatError, match="end of file"):
        read_dlib_net(truncated)
    with pytest.raises(DlibFormatError):  # a shape predictor, not a DNN
        read_dlib_net(frm.pose_predictor_five_point_model_location())


def test_torch_matches_dlib_on_chips(dlib_net, torch_net):
    chips = _synthetic_chips(4)
    ref = np.asarray([np.asarray(d) for d in dlib_net.compute_face_descriptor(chips)], dtype=np.float64)
    x = torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        ours = torch_net(x).double().numpy()
    cos = (ref * ours).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(ours, axis=1)
    assert cos.min() > 0.9999
    # the raw (unnormalised) descriptors agree too
    np.testing.assert_allclose(ours, ref, atol=2e-4)


def test_batch_and_gradient(torch_net):
    chips = _synthetic_chips(3, seed=1)
    x = (torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float() / 255.0).requires_grad_(True)
    y = torch_net(x)
    single = torch.cat([torch_net(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(y, single, atol=1e-4, rtol=1e-4)
    (1 - torch.nn.functional.cosine_similarity(y[0:1], y[1:2])).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    with pytest.raises(ShapeError):
        torch_net(torch.zeros(1, 1, 150, 150))


def test_embedder_registered():
    emb = create_embedder("dlib-torch")
    assert emb.name == "dlib-torch" and emb.dim == 128 and emb.input_size == 150
    out = emb.embed(_synthetic_chips(2))
    assert out.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


@pytest.mark.shared
@pytest.mark.slow
def test_200_development_faces_match_dlib(shared_datasets):
    """200 LFW faces (100 lfw-devtrain pairs), MTCNN + dlib's aligner: min cosine >= 0.9999, same accuracy."""
    from PIL import Image

    from preproc.face_metrics import verification_metrics
    from preproc.recognize.face import FaceRecognizer

    root = shared_datasets / "faces-dev"
    man = {r["id"]: r for r in map(json.loads, (root / "manifest.jsonl").read_text().splitlines())}
    pairs = [p for p in map(json.loads, (root / "pairs.jsonl").read_text().splitlines()) if p["set"] == "lfw-devtrain"]
    same = [p for p in pairs if p["same"]][::22][:50]
    diff = [p for p in pairs if not p["same"]][::22][:50]
    sel = same + diff
    ids = list(dict.fromkeys(i for p in sel for i in (p["a"], p["b"])))
    rec = FaceRecognizer("dlib")
    chips = {}
    for i in ids:
        img = np.asarray(Image.open(root / man[i]["image"]).convert("RGB"))
        face = rec.detector.best(img)
        assert face is not None, i
        chips[i] = rec.embedder.align(img, face)
    order = list(chips)
    a = rec.embedder.embed([chips[i] for i in order])
    b = create_embedder("dlib-torch").embed([chips[i] for i in order])
    cos = (a * b).sum(1)
    assert len(order) >= 190 and cos.min() >= 0.9999, cos.min()
    ea, eb = dict(zip(order, a)), dict(zip(order, b))
    labels = np.array([p["same"] for p in sel])
    accs = []
    for e in (ea, eb):
        s = np.array([float(np.dot(e[p["a"]], e[p["b"]])) for p in sel])
        accs.append(verification_metrics(s, labels).accuracy)
    print(f"200-face check: {len(order)} chips, min cosine {cos.min():.7f}, accuracy dlib {accs[0]:.4f} torch {accs[1]:.4f}")
    assert accs[0] == accs[1]

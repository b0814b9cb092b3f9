"""enhance(), Enhancer, presets and the gate, end to end with the classical backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

import preproc
from preproc import gate
from preproc.errors import ConfigError, UnknownOptionError, UnknownTaskError, UnknownUpscalerError
from preproc.presets import PRESET_FIELDS, get_preset

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def text_line(text: str = "Hexagonal quartz jumps", size: int = 40, pad: int = 6) -> Image.Image:
    """A rendered dark-on-light text line (DejaVu Sans from fonts-dejavu-core)."""
    font = ImageFont.truetype(FONT, size)
    x0, y0, x1, y1 = font.getbbox(text)
    img = Image.new("L", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), 255)
    ImageDraw.Draw(img).text((pad - x0, pad - y0), text, font=font, fill=20)
    return img


def x_height_of(size: int) -> float:
    font = ImageFont.truetype(FONT, size)
    return font.getbbox("x")[3] - font.getbbox("x")[1]


# --- presets -------------------------------------------------------------------------
def test_presets_are_frozen_and_overridable():
    p = get_preset("ocr")
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        p.noise_level = 3  # type: ignore[misc]
    q = get_preset("ocr", noise_level=5, tile=64)
    assert q.noise_level == 5 and q.tile == 64 and p.noise_level != 5
    assert get_preset("face").target_face_side == 160


def test_unknown_task_and_option_list_valid_ones():
    with pytest.raises(UnknownTaskError) as e:
        get_preset("handwriting")
    assert "'handwriting'" in str(e.value) and "ocr, face, generic" in str(e.value)
    with pytest.raises(UnknownOptionError) as e:
        get_preset("ocr", noise=3)
    assert "'noise'" in str(e.value) and "noise_level" in str(e.value)
    with pytest.raises(UnknownOptionError):
        preproc.enhance(np.zeros((8, 8)), task="ocr", upscaler="bicubic", strength=2)


@pytest.mark.parametrize(
    "kw, words",
    [({"noise_level": 400}, "`noise_level` has to be in [0, 350] but is 400"),
     ({"tile": 4}, "`tile` has to be >= 8"),
     ({"tile": 32, "overlap": 16}, "`overlap` has to be >= 0 and < tile/2 but is 16"),
     ({"blend": "hann"}, "'hann'"),
     ({"output_mode": "CMYK"}, "'CMYK'")],
)
def test_preset_values_checked(kw, words):
    with pytest.raises(ConfigError) as e:
        get_preset("ocr", **kw)
    assert words in str(e.value)


def test_unknown_upscaler_lists_available():
    with pytest.raises(UnknownUpscalerError) as e:
        preproc.enhance(np.zeros((8, 8)), upscaler="waifu2x")
    assert "'waifu2x'" in str(e.value) and "bicubic" in str(e.value)


# --- the gate ------------------------------------------------------------------------
@pytest.mark.parametrize("size", [12, 20, 40, 64])
def test_x_height_estimate_tracks_the_font(size):
    est = gate.estimate_x_height(np.asarray(text_line(size=size).convert("RGB"), np.float32) / 255)
    truth = x_height_of(size)
    assert est is not None and est["lines"] == 1
    assert abs(est["x_height"] - truth) <= max(2.0, 0.2 * truth), (est, truth)


def test_x_height_light_text_on_dark_and_multiline():
    line = np.asarray(text_line(size=30), np.float32) / 255
    block = np.concatenate([line, line, line], axis=0)
    est = gate.estimate_x_height(np.repeat((1 - block)[..., None], 3, axis=2))
    assert est["lines"] == 3
    assert abs(est["x_height"] - x_height_of(30)) <= 3


def test_gate_scales_small_text_and_skips_large_text():
    small = preproc.enhance(text_line(size=10), task="ocr", upscaler="bicubic")
    assert not small.meta["skipped"] and small.meta["scale"] > 2
    w, h = text_line(size=10).size
    assert small.image.size == (round(w * small.meta["scale"]), round(h * small.meta["scale"]))
    big = preproc.enhance(text_line(size=60), task="ocr", upscaler="bicubic")
    assert big.meta["skipped"] and big.image.size == text_line(size=60).size
    assert "already large enough" in big.meta["gate"]


def test_gate_skip_x_height_leaves_large_text_as_it_is():
    # x-height 13 px: above skip_x_height=10 but far below the target (24)
    line = np.asarray(text_line(size=24).convert("RGB")).astype(np.float32) / 255
    kept = gate.decide(line, get_preset("ocr", skip_x_height=10))
    assert kept.skip and kept.scale == 1.0 and "skip_x_height 10" in kept.reason
    enlarged = gate.decide(line, get_preset("ocr"))  # off by default
    assert not enlarged.skip and enlarged.scale == pytest.approx(24 / 13)
    # below the threshold the gate still enlarges to the target
    small = gate.decide(np.asarray(text_line(size=16).convert("RGB")).astype(np.float32) / 255,
                        get_preset("ocr", skip_x_height=10))
    assert not small.skip and small.scale == pytest.approx(24 / 9)
    with pytest.raises(ConfigError, match="skip_x_height"):
        get_preset("ocr", skip_x_height=0)


def test_gate_bounds_the_enlarged_line_height():
    line = np.asarray(text_line(size=16).convert("RGB")).astype(np.float32) / 255  # x-height 9, ink 15 px
    free = gate.decide(line, get_preset("ocr", max_line_height=None))
    assert free.scale == pytest.approx(24 / 9)
    bounded = gate.decide(line, get_preset("ocr", max_line_height=30))
    assert bounded.scale == pytest.approx(30 / 15) and "max_line_height 30" in bounded.reason
    # a bound below the line's own height leaves it as it is
    kept = gate.decide(line, get_preset("ocr", max_line_height=16))
    assert kept.skip and "already large enough" in kept.reason
    with pytest.raises(ConfigError, match="max_line_height"):
        get_preset("ocr", max_line_height=-1)


def test_gate_caps_scale_and_handles_blank():
    tiny = np.asarray(text_line(size=6).convert("RGB"))
    d = gate.decide(tiny.astype(np.float32) / 255, get_preset("ocr"))
    assert d.scale == 4.0 and "capped" in d.reason
    blank = gate.decide(np.ones((10, 50, 3), np.float32), get_preset("ocr"))
    assert blank.measured["x_height"] is None and "no text found" in blank.reason


def test_face_gate_aims_at_embedder_side():
    # No face to measure in a flat crop: the face is taken as face_fraction of its side.
    r = preproc.enhance(np.full((40, 40, 3), 0.5, np.float32), task="face", upscaler="bicubic", face_fraction=1.0)
    assert r.image.size == (160, 160) and r.meta["scale"] == 4.0
    r = preproc.enhance(np.full((200, 200, 3), 0.5, np.float32), task="face", upscaler="bicubic", face_fraction=1.0)
    assert r.meta["skipped"]


# --- enhance --------------------------------------------------------------------------
def test_enhance_accepts_every_input_form_and_says_what_it_did(tmp_path):
    img = text_line(size=10)
    p = tmp_path / "line.png"
    img.save(p)
    arr = np.asarray(img)
    results = [
        preproc.enhance(x, task="ocr", upscaler="bicubic")
        for x in (img, arr, torch.from_numpy(arr / 255.0).float()[None], str(p), p)
    ]
    first = np.asarray(results[0].image)
    for r in results[1:]:
        assert np.abs(np.asarray(r.image).astype(int) - first).max() <= 1
    m = results[0].meta
    for key in ("upscaler", "upscaler_reason", "scale", "tiles", "tile_grid", "seconds", "seed", "skipped", "gate"):
        assert key in m
    assert m["upscaler"] == "bicubic" and results[0].image.mode == "L"


def test_explicit_scale_and_generic_task():
    r = preproc.enhance(np.zeros((10, 12, 3), np.float32), task="generic", upscaler="lanczos", scale=3)
    assert r.image.size == (36, 30) and r.image.mode == "RGB"
    assert preproc.enhance(np.zeros((10, 12)), scale=1).meta["skipped"]


def test_auto_backend_is_reported():
    r = preproc.enhance(text_line(size=10), task="ocr")
    assert r.meta["upscaler"] in preproc.upscaler_names()
    assert r.meta["upscaler_reason"].startswith("auto")


def test_tiled_generic_run_matches_untiled():
    img = np.random.default_rng(0).random((60, 80, 3)).astype(np.float32)
    a = preproc.enhance(img, task="generic", upscaler="bicubic", scale=4)
    b = preproc.enhance(img, task="generic", upscaler="bicubic", scale=4, tile=24, overlap=6)
    assert b.meta["tiles"] > 1 and a.meta["tiles"] == 1
    # white noise is the worst case for bicubic's clamped tile borders: 2 grey levels at most
    diff = np.abs(np.asarray(a.image).astype(int) - np.asarray(b.image).astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.05


def test_hooks_see_before_and_after_and_can_veto():
    seen = {}

    def spy(before, after, meta):
        seen["sizes"] = (before.size, after.size)
        meta["spy"] = True

    def veto(before, after, meta):
        return before

    img = text_line(size=10)
    r = preproc.enhance(img, task="ocr", upscaler="bicubic", hooks=[spy, veto])
    assert seen["sizes"][0] == img.size and seen["sizes"][1] != img.size
    assert r.image.size == img.size and r.meta["spy"] and r.meta["hooks"] == ["spy", "veto"]


def test_hook_must_return_image_or_none():
    with pytest.raises(ConfigError, match="expected a PIL image or None"):
        preproc.enhance(text_line(size=10), upscaler="bicubic", hooks=[lambda b, a, m: 3])


def test_enhancer_keeps_backends_and_per_call_overrides():
    enh = preproc.Enhancer("generic", "nearest")
    r1 = enh.enhance(np.zeros((5, 5)), scale=2)
    r2 = enh(np.zeros((5, 5)), scale=2, output_mode="L")
    assert r1.image.mode == "RGB" and r2.image.mode == "L"
    with pytest.raises(ConfigError):
        enh.enhance(np.zeros((5, 5)), seed=1, generator=torch.Generator().manual_seed(1))
    assert enh.enhance(np.zeros((5, 5)), seed=7).meta["seed"] == 7


def test_every_preset_field_is_documented_in_the_docstring_or_comments():
    import inspect

    src = inspect.getsource(preproc.presets.Preset)
    for f in PRESET_FIELDS:
        assert f in src

"""The ``text-sr`` backend and the weights shipped in the package."""

from pathlib import Path

import numpy as np
import pytest
import torch

import preproc
from preproc.errors import ModelUnavailableError
from preproc.train.data import DataConfig, make_batch
from preproc.train.model import build_net, read_metadata, save_weights
from preproc.upscalers import create_upscaler, text_sr, upscaler_class, upscaler_names


def test_registered_and_available_with_shipped_weights():
    assert "text-sr" in upscaler_names()
    assert text_sr.shipped_weights().is_file(), "preproc/weights/text_sr_x4.safetensors must ship with the package"
    assert upscaler_class("text-sr").is_available()
    size = text_sr.shipped_weights().stat().st_size
    assert 0.5e6 < size < 2e6  # the fp16 compact net


def test_is_available_follows_the_weights_file(monkeypatch, tmp_path):
    monkeypatch.setattr(text_sr, "SHIPPED_WEIGHTS", tmp_path / "absent.safetensors")
    assert not text_sr.TextSRUpscaler.is_available()
    with pytest.raises(ModelUnavailableError, match="train-text-sr"):
        text_sr.TextSRUpscaler(device="cpu")


def test_shipped_weights_record_how_they_were_trained():
    meta = read_metadata(text_sr.shipped_weights())
    assert meta["format"] == "preproc-text-sr" and meta["channels"] == "1" and meta["scale"] == "4"
    assert "train-text-sr" in meta["command"] and int(meta["steps"]) > 0
    assert "mean" in meta["val_cer"]
    # the shipped model: the fourth round of CTC training through a Tesseract proxy, for 6,000 steps
    # (docs/text_sr.md, "The shipped model: recipe"), checkpoint picked on selection lines only
    for opt in ("--data-version 2", "--lr-heights 6,24", "--recognizer-loss 0.3",
                "--init runs/text-sr5-proxy3/w.safetensors", "--recognizer runs/text-proxy4-1000/proxy.safetensors",
                "--steps 6000", "--seed 10", "--val-split selection"):
        assert opt in meta["command"], opt
    root = Path(__file__).resolve().parents[1]
    for doc in ("docs/text_sr.md", "scripts/train_text_sr.sh"):  # the command that wrote it is documented
        assert "--out runs/text-sr6-long6000/w.safetensors" in (root / doc).read_text(), doc


def test_shipped_weights_upscale_x4_grey():
    up = create_upscaler("text-sr", device="cpu")
    assert up.scale == 4
    x = torch.rand(2, 3, 10, 30)
    y = up.upscale(x)
    assert y.shape == (2, 3, 40, 120)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.equal(y[:, 0], y[:, 1]) and torch.equal(y[:, 1], y[:, 2])


def test_shipped_weights_restore_unseen_synthetic_text_better_than_bicubic():
    # A seed and batch the shipped run never drew (it trains with seed 0).
    lr, hr = make_batch(987654, 0, DataConfig(batch_size=8, lr_heights=(10, 10)))
    up = create_upscaler("text-sr", device="cpu")
    out = up.upscale(lr.repeat(1, 3, 1, 1))[:, :1]
    bic = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1)
    assert float((out - hr).abs().mean()) < 0.8 * float((bic - hr).abs().mean())


def test_enhance_ocr_with_text_sr():
    rng = np.random.default_rng(0)
    crop = (rng.random((12, 60)) > 0.5).astype(np.float32) * 0.6 + 0.2
    res = preproc.enhance(crop, task="ocr", upscaler="text-sr", device="cpu")
    assert res.meta["upscaler"] == "text-sr" and res.image.mode == "L"
    assert res.image.size[1] > 12


def test_model_argument_takes_a_trained_file(tmp_path):
    path = save_weights(build_net(8, 2), tmp_path / "mine.safetensors", {"steps": 1})
    up = text_sr.TextSRUpscaler(model=str(path), device="cpu")
    assert str(path) in up.model_id
    assert up.upscale(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28)


def test_auto_rule_picks_text_sr_for_ocr_only_when_weights_ship(monkeypatch, tmp_path):
    from preproc.upscalers.auto import resolve_auto

    assert resolve_auto("ocr", "cpu")[0] == "text-sr"
    monkeypatch.setattr(text_sr, "SHIPPED_WEIGHTS", tmp_path / "absent.safetensors")
    name, why = resolve_auto("ocr", "cpu")
    assert name == "bicubic" and "text-sr (weights unavailable)" in why


def test_text_sr_v1_stays_available_for_comparison():
    assert "text-sr-v1" in upscaler_names()
    cls = upscaler_class("text-sr-v1")
    assert cls.is_available() and cls.default_weights() == text_sr.V1_WEIGHTS
    meta = read_metadata(text_sr.V1_WEIGHTS)
    assert "train-text-sr" in meta["command"] and "--recognizer-loss" not in meta["command"]
    up = cls()
    assert up.model_id.startswith("text-sr-v1") and up.upscale(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28)


def test_text_sr_v3_stays_available_for_comparison():
    # round four in 1,500 steps, the default before the same round ran for 6,000
    cls = upscaler_class("text-sr-v3")
    assert cls.is_available() and cls.default_weights() == text_sr.V3_WEIGHTS
    meta = read_metadata(text_sr.V3_WEIGHTS)
    assert "--steps 1500" in meta["command"] and "--recognizer runs/text-proxy4-1000/proxy.safetensors" in meta["command"]
    assert meta["sha256"] != read_metadata(text_sr.SHIPPED_WEIGHTS)["sha256"]
    up = cls()
    assert up.model_id.startswith("text-sr-v3") and up.upscale(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28)


def test_text_sr_v2_stays_available_for_comparison():
    # the round-two model (CTC loss through our CRNN), replaced as the default by the proxy-trained one
    assert "text-sr-v2" in upscaler_names()
    cls = upscaler_class("text-sr-v2")
    assert cls.is_available() and cls.default_weights() == text_sr.V2_WEIGHTS
    meta = read_metadata(text_sr.V2_WEIGHTS)
    assert "--recognizer-loss 0.1" in meta["command"] and "text_sr_v1_x4.safetensors" in meta["command"]
    up = cls()
    assert up.model_id.startswith("text-sr-v2") and up.upscale(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28)


def test_text_sr_small_ships_with_the_command_that_trained_it():
    # the shipped model fine-tuned on 6-12 px lines through the same proxy (docs/text_sr.md, stage 12)
    cls = upscaler_class("text-sr-small")
    assert cls.is_available() and cls.default_weights() == text_sr.SMALL_WEIGHTS
    meta = read_metadata(text_sr.SMALL_WEIGHTS)
    for opt in ("--init runs/text-sr6-long6000/w.safetensors", "--lr-heights 6,12", "--steps 3000", "--seed 13",
                "--recognizer runs/text-proxy4-1000/proxy.safetensors", "--val-split selection"):
        assert opt in meta["command"], opt
    assert meta["sha256"] != read_metadata(text_sr.SHIPPED_WEIGHTS)["sha256"]
    root = Path(__file__).resolve().parents[1]
    for doc in ("docs/text_sr.md", "scripts/train_text_sr.sh"):
        assert "--out runs/text-sr8-small/w.safetensors" in (root / doc).read_text(), doc
    up = cls()
    assert up.model_id.startswith("text-sr-small") and up.upscale(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28)


def test_auto_rule_gives_small_ocr_crops_the_small_line_model(monkeypatch, tmp_path):
    from preproc.upscalers.auto import SMALL_CROPS, auto_backends, resolve_auto

    bound, small = SMALL_CROPS["ocr"]
    assert small == "text-sr-small"
    assert resolve_auto("ocr", "cpu", bound)[0] == small
    assert resolve_auto("ocr", "cpu", bound + 1)[0] == "text-sr"
    assert resolve_auto("ocr", "cpu")[0] == "text-sr"  # no height: the rule for any crop
    assert resolve_auto("face", "cpu", 8)[0] == "bicubic"  # faces have no small-crop rule
    assert auto_backends("ocr", "cpu") == [small, "text-sr"]
    rng = np.random.default_rng(0)
    tiny = (rng.random((bound, 90)) > 0.5).astype(np.float32) * 0.6 + 0.2
    res = preproc.enhance(tiny, task="ocr", device="cpu")
    assert res.meta["upscaler"] == small and f"at most {bound} px" in res.meta["upscaler_reason"]
    taller = (rng.random((bound + 1, 90)) > 0.5).astype(np.float32) * 0.6 + 0.2
    assert preproc.enhance(taller, task="ocr", device="cpu").meta["upscaler"] == "text-sr"
    # a named backend is never rerouted
    assert preproc.enhance(tiny, task="ocr", upscaler="text-sr", device="cpu").meta["upscaler"] == "text-sr"
    # without its weights the small model is skipped, and small crops get the rule's usual backend
    monkeypatch.setattr(text_sr, "SMALL_WEIGHTS", tmp_path / "absent.safetensors")
    name, why = resolve_auto("ocr", "cpu", bound)
    assert name == "text-sr" and f"skipped {small} for a {bound} px crop (weights unavailable)" in why
    assert auto_backends("ocr", "cpu") == ["text-sr"]


def test_batched_enhance_routes_each_crop_like_a_single_call():
    from preproc.upscalers.auto import SMALL_CROPS

    bound = SMALL_CROPS["ocr"][0]
    rng = np.random.default_rng(1)
    crops = [(rng.random((h, 70)) > 0.5).astype(np.float32) * 0.6 + 0.2 for h in (bound - 2, bound + 5, bound)]
    batched = preproc.Enhancer("ocr", device="cpu", progress=False).enhance_many(crops)
    for crop, got in zip(crops, batched):
        want = preproc.enhance(crop, task="ocr", device="cpu")
        assert got.meta["upscaler"] == want.meta["upscaler"]
        assert np.array_equal(np.asarray(got.image), np.asarray(want.image))
    assert [r.meta["upscaler"] for r in batched] == ["text-sr-small", "text-sr", "text-sr-small"]

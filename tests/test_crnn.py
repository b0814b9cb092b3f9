"""The CRNN text prior: CTC encoding, the recognition loss into the SR net, training, weight files, CLIs."""

import json

import numpy as np
import pytest
import torch

from preproc.cli import main
from preproc.errors import ConfigError, ModelUnavailableError, WeightsError
from preproc.train.crnn import (
    CHARSET,
    CRNN,
    RecognizerConfig,
    char_error_rate,
    ctc,
    encode,
    freeze,
    greedy_decode,
    load_crnn,
    normalise_text,
    recognition_loss,
    save_crnn,
    train_recognizer,
)
from preproc.train.data import DataConfig, make_text_batch
from preproc.train.loop import TrainConfig
from preproc.train.model import build_net, read_metadata


def _small_crnn() -> CRNN:
    torch.manual_seed(0)
    return CRNN((8, 8, 16, 16, 16), hidden=16)


def test_charset_encode_decode():
    assert len(CHARSET) == 95 and CHARSET[0] == " " and CHARSET[-1] == "~"
    assert normalise_text("  a\t\tb\n  é c ") == "a b c"
    flat, lengths = encode(["ab", "", "b a"])
    assert lengths.tolist() == [2, 0, 3]
    assert flat.tolist() == [CHARSET.index(c) + 1 for c in "abb a"]
    # best path: a a blank a b b -> "aab"
    seq = [CHARSET.index("a") + 1] * 2 + [0] + [CHARSET.index("a") + 1] + [CHARSET.index("b") + 1] * 2
    lp = torch.full((len(seq), 1, 96), -10.0)
    for t, k in enumerate(seq):
        lp[t, 0, k] = 0.0
    assert greedy_decode(lp) == ["aab"]
    # CTC of that near-certain path against its own reading is ~0, against another text large
    lp = lp.log_softmax(-1)
    assert float(ctc(lp, ["aab"])) < 0.05 < 1.0 < float(ctc(lp, ["xyz"]))
    assert char_error_rate(["abc", "de"], ["abd", "de"]) == pytest.approx(1 / 5)


def test_crnn_shapes_any_input_size():
    net = _small_crnn().eval()
    with torch.no_grad():
        for h, w in ((28, 200), (64, 96), (32, 40)):
            out = net(torch.rand(2, 1, h, w))
            assert out.shape == (max(8, round(w * 32 / h)) // 2, 2, 96)
            assert torch.allclose(out.exp().sum(-1), torch.ones(out.shape[:2]), atol=1e-4)


def test_data_yields_texts_deterministically():
    cfg = DataConfig.v2(batch_size=4, lr_heights=(8, 10))
    lr, hr, texts = make_text_batch(3, 5, cfg)
    lr2, hr2, texts2 = make_text_batch(3, 5, cfg)
    assert torch.equal(lr, lr2) and torch.equal(hr, hr2) and texts == texts2
    assert texts != make_text_batch(3, 6, cfg)[2]
    assert len(texts) == 4 and all(t and t == normalise_text(t) for t in texts)
    assert hr.shape[-2:] == (4 * lr.shape[-2], 4 * lr.shape[-1])
    # the whole line is in the patch: no ink touches the left or right border of the target
    assert (hr[..., :, :1] > 0.5).all() and (hr[..., :, -1:] > 0.5).all()


def test_recognition_loss_flows_into_the_sr_net_and_lowers_ctc():
    """A few real optimiser steps on the SR net alone lower the frozen CRNN's CTC loss."""
    crnn = freeze(_small_crnn())
    bn_before = {k: v.clone() for k, v in crnn.state_dict().items()}
    torch.manual_seed(1)
    sr = build_net(8, 2)
    lr, _, texts = make_text_batch(0, 0, DataConfig.v2(batch_size=4, lr_heights=(8, 8)))
    opt = torch.optim.Adam(sr.parameters(), lr=3e-3)
    w0 = [p.detach().clone() for p in sr.parameters()]
    with torch.no_grad():
        start = float(recognition_loss(crnn, sr(lr), texts))
    for _ in range(8):
        loss = recognition_loss(crnn, sr(lr), texts)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = float(recognition_loss(crnn, sr(lr), texts))
    assert end < start
    assert any(not torch.equal(a, b.detach()) for a, b in zip(w0, sr.parameters(), strict=True))
    assert all(p.grad is None for p in crnn.parameters())  # frozen: no parameter gradients
    assert all(torch.equal(v, crnn.state_dict()[k]) for k, v in bn_before.items())  # BatchNorm stats fixed


def test_crnn_weights_roundtrip_and_errors(tmp_path):
    net = _small_crnn().eval()
    path = save_crnn(net, tmp_path / "c.safetensors", {"steps": 3})
    back = load_crnn(path)
    x = torch.rand(1, 1, 32, 64)
    with torch.no_grad():
        assert (back(x) - net(x)).abs().max() < 0.05  # fp16 storage
    with pytest.raises(ModelUnavailableError, match="train-text-recognizer"):
        load_crnn(tmp_path / "none.safetensors")
    from preproc.train.model import save_weights

    sr_file = save_weights(build_net(8, 2), tmp_path / "sr.safetensors")
    with pytest.raises(WeightsError, match="not a text-sr recognizer"):
        load_crnn(sr_file)


def test_recognizer_config_checks(tmp_path):
    with pytest.raises(ConfigError, match="sr_weights"):
        RecognizerConfig(out="x", sr_prob=0.5)
    with pytest.raises(ConfigError, match="recognizer"):
        TrainConfig(out="x", steps=1, recognizer_weight=0.1)
    with pytest.raises(ConfigError, match="data version 2"):
        TrainConfig(out="x", steps=1, recognizer_weight=0.1, recognizer="c.safetensors")


@pytest.mark.slow
def test_recognizer_training_is_deterministic_and_resumes(tmp_path):
    def run(name: str, steps: int, resume: bool = False) -> dict:
        cfg = RecognizerConfig(out=str(tmp_path / f"{name}.safetensors"), run_dir=str(tmp_path / name), steps=steps,
                               batch_size=4, amp="none", workers=0, checkpoint_every=2, resume=resume)
        return train_recognizer(cfg)

    run("a", 4)
    run("b", 4)
    a, b = load_crnn(tmp_path / "a.safetensors"), load_crnn(tmp_path / "b.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    log = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and log[-1]["cer_hr"] >= 0
    # resuming a finished run starts at its last step and changes nothing
    assert run("a", 4, resume=True)["steps"] == 4
    c = load_crnn(tmp_path / "a.safetensors")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), c.state_dict().values(), strict=True))


@pytest.mark.slow
def test_clis_train_recognizer_then_sr_with_recognition_loss(tmp_path, capsys):
    crnn = tmp_path / "crnn.safetensors"
    rc = main(["train-text-recognizer", "--out", str(crnn), "--steps", "2", "--batch-size", "2", "--workers", "0",
               "--amp", "none", "--run-dir", str(tmp_path / "rc")])
    assert rc == 0 and isinstance(load_crnn(crnn), CRNN)
    assert "train-text-recognizer" in read_metadata(crnn)["command"]
    capsys.readouterr()
    out = tmp_path / "sr.safetensors"
    rc = main(["train-text-sr", "--out", str(out), "--steps", "2", "--val-dataset", "", "--workers", "0",
               "--init", "random", "--batch-size", "2", "--amp", "none", "--run-dir", str(tmp_path / "r"),
               "--data-version", "2", "--recognizer-loss", "0.1", "--recognizer", str(crnn), "--no-progress"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 2
    meta = read_metadata(out)
    assert "--recognizer-loss 0.1" in meta["command"] and json.loads(meta["config"])["data"]["version"] == 2
    from preproc.train.model import load_weights

    net = load_weights(out)
    with torch.no_grad():
        y = net(torch.from_numpy(np.full((1, 1, 8, 16), 0.5, np.float32)))
    assert y.shape == (1, 1, 32, 64)


def test_tesseract_labels_are_tesseracts_readings():
    from preproc.errors import RecognizerUnavailableError
    from preproc.train.crnn import TesseractLabels

    try:
        labels = TesseractLabels()
    except RecognizerUnavailableError as e:
        pytest.skip(str(e))
    from PIL import Image, ImageDraw, ImageFont

    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 32)
    except OSError:
        pytest.skip("DejaVu Sans (fonts-dejavu-core) is not installed")
    lines = []
    for text in ("TOTAL 12.30", "Invoice 42"):
        img = Image.new("L", (360, 48), 255)
        ImageDraw.Draw(img).text((8, 4), text, font=font, fill=0)
        lines.append(np.asarray(img, np.float32) / 255)
    x = torch.from_numpy(np.stack(lines))[:, None]
    assert labels(x) == ["TOTAL 12.30", "Invoice 42"]


@pytest.mark.slow
def test_tesseract_proxy_training_runs_from_an_init(tmp_path):
    pytest.importorskip("tesserocr")
    from preproc.train.model import build_net, save_weights

    sr = save_weights(build_net(8, 2), tmp_path / "sr.safetensors")
    base = RecognizerConfig(out=str(tmp_path / "base.safetensors"), run_dir=str(tmp_path / "base"), steps=2,
                            batch_size=2, amp="none", workers=0)
    train_recognizer(base)
    cfg = RecognizerConfig(out=str(tmp_path / "proxy.safetensors"), run_dir=str(tmp_path / "proxy"), steps=2,
                           batch_size=2, amp="none", workers=0, sr_prob=1.0, sr_weights=str(sr),
                           labels="tesseract", init=base.out)
    res = train_recognizer(cfg)
    assert res["steps"] == 2 and res["val"]["cer_sr_vs_tesseract"] >= 0
    assert json.loads(read_metadata(cfg.out)["config"])["labels"] == "tesseract"
    with pytest.raises(ConfigError, match="labels"):
        RecognizerConfig(out="x", labels="oracle")

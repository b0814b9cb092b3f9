"""The synthetic data of text-sr training: corpus, rendering, degradation, batches."""

import numpy as np
import pytest
import torch

from preproc.errors import ConfigError, DatasetError
from preproc.train.corpus import find_fonts, load_words, random_text
from preproc.train.data import DataConfig, TextPairBatches, make_batch
from preproc.train.degrade import Degradation, appearance, degrade, target_from_coverage
from preproc.train.render import render_line


def test_fonts_and_words_come_from_debian_packages():
    fonts = find_fonts()
    assert len(fonts) >= 20 and all(f.endswith(".ttf") for f in fonts)
    assert not any("Math" in f for f in fonts)
    words = load_words()
    assert len(words) > 10_000 and all(w.isalpha() and w.isascii() for w in words[:1000])


def test_missing_fonts_or_words_raise_with_package_names(tmp_path):
    with pytest.raises(DatasetError, match="fonts-dejavu-core"):
        find_fonts((str(tmp_path),))
    with pytest.raises(DatasetError, match="wamerican"):
        load_words(str(tmp_path / "nope"))


def test_random_text_is_deterministic_and_varied():
    a = random_text(np.random.default_rng(5), 6)
    b = random_text(np.random.default_rng(5), 6)
    c = random_text(np.random.default_rng(6), 6)
    assert a == b and a != c
    texts = " ".join(random_text(np.random.default_rng(i), 6) for i in range(50))
    assert any(ch.isdigit() for ch in texts) and any(ch.isupper() for ch in texts)
    assert any(ch.islower() for ch in texts)


def test_render_line_size_and_ink():
    cov = render_line(np.random.default_rng(0), 40, 300)
    assert cov.shape[0] == 40 and cov.shape[1] >= 300
    assert cov.dtype == np.float32 and cov.min() >= 0 and cov.max() <= 1
    assert 0.02 < (cov > 0.5).mean() < 0.6  # text, not an empty or full canvas


def test_appearance_and_degrade_shapes_and_polarity():
    rng = np.random.default_rng(1)
    cov = render_line(rng, 48, 200)
    cov = cov[:, : cov.shape[1] // 4 * 4]
    look = appearance(cov, rng, Degradation(invert_prob=1.0, uneven_prob=0.0))
    ink, paper = look[cov > 0.9].mean(), look[cov < 0.1].mean()
    assert ink > paper  # inverted: light text on a dark background
    lr = degrade(look, 4, rng, Degradation())
    assert lr.shape == (12, cov.shape[1] // 4) and lr.dtype == np.float32
    assert np.allclose(lr * 255, np.rint(lr * 255), atol=1e-3)  # 8-bit quantised
    target = target_from_coverage(cov)
    assert target[cov > 0.9].mean() < 0.1 and target[cov < 0.1].mean() > 0.9  # dark ink on white


def test_jpeg_changes_the_input():
    cov = render_line(np.random.default_rng(2), 48, 200)
    cov = cov[:, : cov.shape[1] // 4 * 4]
    look = appearance(cov, np.random.default_rng(0), Degradation(uneven_prob=0))
    plain = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=0, resize_weights=(1, 0, 0, 0))
    jpeg = Degradation(blur_prob=0, noise_prob=0, jpeg_prob=1, jpeg_quality=(30, 30), resize_weights=(1, 0, 0, 0))
    a = degrade(look, 4, np.random.default_rng(0), plain)
    b = degrade(look, 4, np.random.default_rng(0), jpeg)
    assert a.shape == b.shape and np.abs(a - b).mean() > 0.003


def test_batches_are_deterministic_for_a_seed():
    cfg = DataConfig(batch_size=3)
    lr1, hr1 = make_batch(7, 11, cfg)
    lr2, hr2 = make_batch(7, 11, cfg)
    assert torch.equal(lr1, lr2) and torch.equal(hr1, hr2)
    lr3, _ = make_batch(8, 11, cfg)
    lr4, _ = make_batch(7, 12, cfg)
    assert not (lr3.shape == lr1.shape and torch.equal(lr3, lr1))
    assert not (lr4.shape == lr1.shape and torch.equal(lr4, lr1))


def test_batch_shapes_follow_the_config():
    cfg = DataConfig(batch_size=2, lr_heights=(9, 9), patch_pixels=270, min_width=20)
    lr, hr = make_batch(0, 0, cfg)
    assert lr.shape == (2, 1, 9, 30) and hr.shape == (2, 1, 36, 120)
    assert lr.dtype == hr.dtype == torch.float32
    assert float(lr.min()) >= 0 and float(lr.max()) <= 1 and float(hr.min()) >= 0 and float(hr.max()) <= 1


def test_dataset_indexes_batches_from_start():
    cfg = DataConfig(batch_size=2)
    ds = TextPairBatches(3, cfg, length=4, start=10)
    assert len(ds) == 4
    assert torch.equal(ds[1][0], make_batch(3, 11, cfg)[0])


def test_bad_data_config_is_rejected():
    with pytest.raises(ConfigError, match="lr_heights"):
        DataConfig(lr_heights=(12, 8))
    with pytest.raises(ConfigError, match="batch_size"):
        DataConfig(batch_size=0)


def test_generator_v2_fonts_texts_and_whole_lines():
    from preproc.train.corpus import FONT_DIRS_V2, random_line_text
    from preproc.train.render import render_text_line

    v2 = find_fonts(FONT_DIRS_V2)
    assert set(find_fonts()) < set(v2) and any(f.endswith(".otf") for f in v2)
    assert not any("Symbol" in f or "Thin" in f for f in v2)
    texts = [random_line_text(np.random.default_rng(i)) for i in range(200)]
    assert texts[:20] == [random_line_text(np.random.default_rng(i)) for i in range(20)]
    joined = "".join(texts)
    assert all(32 <= ord(c) < 127 for c in joined)
    assert sum(c.isdigit() for c in joined) > 0.1 * len(joined)  # prices, dates, codes
    assert {".", ",", ":", "(", "-", "/"} <= set(joined)
    cov, text = render_text_line(np.random.default_rng(4), 40, 320)
    assert cov.shape == (40, 320) and text and text == text.strip()
    assert cov[:, :1].max() < 0.5 and cov[:, -1:].max() < 0.5  # nothing cut at the sides


def test_degradation_v2_effects_are_off_in_v1_and_change_the_input():
    assert Degradation().spread_prob == Degradation().binarize_prob == 0
    cov = render_line(np.random.default_rng(3), 48, 200)
    base = appearance(cov, np.random.default_rng(0), Degradation(uneven_prob=0))
    for kw in ({"spread_prob": 1.0}, {"fade_prob": 1.0}, {"texture_prob": 1.0}, {"binarize_prob": 1.0},
               {"gamma_prob": 1.0}):
        look = appearance(cov, np.random.default_rng(0), Degradation(uneven_prob=0, **kw))
        assert look.shape == base.shape and look.dtype == np.float32
        assert np.abs(look - base).mean() > 1e-3, kw
    binar = appearance(cov, np.random.default_rng(0), Degradation(uneven_prob=0, binarize_prob=1.0))
    assert len(np.unique(binar)) == 2

"""Tesseract's LSTM in PyTorch (preproc.recognize.tesseract_torch) against Tesseract itself."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFont

from preproc.errors import ModelUnavailableError
from preproc.recognize.ocr import TesseractOCR
from preproc.recognize.tesseract_torch import (
    TesseractFormatError,
    black_white_levels,
    conv_padding_noise,
    generator_for,
    load_tesseract_lstm,
    load_traineddata,
    reference_probs,
)
from preproc.train.tesseract_loss import PADDING, TesseractLoss

HARNESS = Path(__file__).parent / "data" / "tesseract_raw_timesteps.cpp"
FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationMono-Regular.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"]
TEXTS = ["TOTAL RM 12.30", "The quick brown fox, 1998", "Tel: 03-5542 3228", "invoice #A-17/B", "Qty 2 x 4.50 = 9.00",
         "JALAN SETIA INDAH", "receipt (copy)", "GST@6% 0.42"]


def _line(text: str, font: str, height: int = 36, scale: float = 1.0, blur: float = 0.0) -> np.ndarray:
    """A dark-on-light grey line rendered large and shrunk to ``height`` (antialiased), uint8."""
    f = ImageFont.truetype(font, 64)
    w = int(f.getlength(text)) + 40
    img = Image.new("L", (w, 96), 235)
    ImageDraw.Draw(img).text((20, 14), text, font=f, fill=30)
    if blur:
        from PIL import ImageFilter

        img = img.filter(ImageFilter.GaussianBlur(blur))
    out_w = max(12, round(w * height / 96 * scale))
    return np.asarray(img.resize((out_w, height), Image.LANCZOS))


#: Line heights: the network's own (no scaling), linear interpolation with sharpening (0.7 <= f < 1.4),
#: without it (f >= 1.4), and area mapping with sharpening (f < 0.7).
HEIGHTS = (36, 36, 30, 45, 20, 24, 60, 100)


def _lines() -> list[np.ndarray]:
    return [_line(t, FONTS[i % len(FONTS)], height=HEIGHTS[i], blur=1.5 * (i % 3 == 2)) for i, t in enumerate(TEXTS)]


@pytest.fixture(scope="module")
def model():
    try:
        return load_traineddata()
    except ModelUnavailableError as e:
        pytest.skip(str(e))


def test_traineddata_is_read_whole(model):
    assert model.spec == "[1,36,0,1Ct3,3,16Mp3,3Lfys48Lfx96Lrx96Lfx192O1c1]"
    assert model.null_char == 110 and model.num_classes == 111
    codes = model.char_codes()
    printable = {chr(c) for c in range(32, 127)}
    assert printable - set(codes) == {"^", "`"}           # eng has no code for these two
    assert codes[" "] == 0 and len(set(codes.values())) == len(codes)
    kinds = [k.type for k in model.network.children]
    assert kinds == ["Input", "Series", "Maxpool", "XYTranspose", "LSTM", "RTLReversed", "LSTM", "Softmax"]
    conv = model.network.children[1].children[1]
    assert conv.int_mode and conv.int_weights[0].shape == (16, 10) and conv.int_weights[0].dtype == np.int8


def _traineddata(components: dict[int, bytes], n: int = 24) -> bytes:
    """A traineddata file of the given components (Tesseract's offset table, then the entries)."""
    offsets, body, at = [], b"", 4 + 8 * n
    for i in range(n):
        if i in components:
            offsets.append(at + len(body))
            body += components[i]
        else:
            offsets.append(-1)
    return struct.pack("<I", n) + struct.pack(f"<{n}q", *offsets) + body


def test_bad_files_raise_specific_errors(tmp_path, model):
    from preproc.recognize.tesseract_torch import _components, find_traineddata

    with pytest.raises(ModelUnavailableError, match="not found"):
        load_traineddata(tmp_path / "missing.traineddata")
    junk = tmp_path / "junk.traineddata"
    junk.write_bytes(b"\x00" * 3)
    with pytest.raises(TesseractFormatError):
        load_traineddata(junk)
    comps = _components(find_traineddata().read_bytes(), "eng")
    legacy = tmp_path / "legacy.traineddata"            # no LSTM component: a legacy-engine-only file
    legacy.write_bytes(_traineddata({0: b"x" * 10}))
    with pytest.raises(TesseractFormatError, match="no LSTM"):
        load_traineddata(legacy)
    cut = tmp_path / "cut.traineddata"                  # the network cut short
    cut.write_bytes(_traineddata({**comps, 17: comps[17][:2000]}))
    with pytest.raises(TesseractFormatError, match="truncated"):
        load_traineddata(cut)
    whole = tmp_path / "whole.traineddata"              # the same components, rewritten: reads as the original
    whole.write_bytes(_traineddata(comps))
    assert load_traineddata(whole).spec == model.spec


def test_black_white_levels_follow_tesseracts_percentiles():
    row = np.array([255, 250, 10, 250, 255, 20, 255, 240, 30, 240, 255], float)
    # local minima 10, 20, 30: STATS::ile(0.25) of 3 counts targets max(0.75, 1) = 1 -> the top of
    # bucket 10 = 11; maxima 255, 255: ile(0.75) targets 1.5 of 2 -> 256 - 0.5 / 2
    assert black_white_levels(row) == (11.0, 255.75)
    # a flat row has no extrema: Tesseract falls back to one count at 0 and one at 255
    assert black_white_levels(np.full(10, 128.0)) == (1.0, 256.0)


def test_padding_noise_fills_only_outside_the_image():
    n = conv_padding_noise(6352704, 36, 20, "lcg64")
    inside = np.isnan(n)
    assert inside[1:-1, 1:-1].all()                         # interior windows are all image
    assert not inside[0, 5, :, 0].any() and not inside[5, 0, 0, :].any()
    assert np.nanmax(np.abs(n)) <= 127 and np.allclose(n[~inside], np.round(n[~inside]))
    assert not np.array_equal(np.nan_to_num(n), np.nan_to_num(conv_padding_noise(6352704, 36, 20, "minstd")))
    assert generator_for("5.3.0") == "minstd" and generator_for("5.5.0") == "minstd"
    assert generator_for("5.5.1") == "lcg64" and generator_for("5.5.4") == "lcg64"


def _harness(tmp_path: Path) -> Path:
    exe = tmp_path / "raw_timesteps"
    gxx, pkg = shutil.which("g++"), shutil.which("pkg-config")
    if not gxx or not pkg:
        pytest.skip("g++ and pkg-config are needed to build the Tesseract harness")
    flags = subprocess.run([pkg, "--cflags", "--libs", "tesseract", "lept"], capture_output=True, text=True)
    if flags.returncode != 0:
        pytest.skip("Tesseract's C++ headers are not installed (Debian: libtesseract-dev)")
    r = subprocess.run([gxx, "-O1", str(HARNESS), "-o", str(exe), *flags.stdout.split()], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"the Tesseract harness does not build here: {r.stderr[-300:]}")
    return exe


def _system_tesseract_version() -> str:
    out = subprocess.run(["pkg-config", "--modversion", "tesseract"], capture_output=True, text=True)
    return out.stdout.strip()


def _raw_timesteps(exe: Path, tessdata: Path, files: list[Path]) -> dict[str, list[list[tuple[str, float]]]]:
    out = subprocess.run([str(exe), str(tessdata), *map(str, files)], capture_output=True, text=True, check=True).stdout
    steps: dict[str, list] = {}
    cur = None
    for line in out.splitlines():
        if line.startswith("IMAGE "):
            cur = line[6:]
            steps[cur] = []
        elif line.startswith("T"):
            parts = line.split("\t")[1:]
            steps[cur].append([(bytes.fromhex(parts[i]).decode("utf-8"), float(parts[i + 1]))
                               for i in range(0, len(parts), 2)])
    return steps


def test_reference_is_tesseracts_own_network_output(tmp_path, model):
    """reference_probs equals the probabilities the installed Tesseract computes, at every timestep."""
    exe = _harness(tmp_path)
    from preproc.recognize.tesseract_torch import find_traineddata

    files = []
    for i, img in enumerate(_lines()):
        files.append(tmp_path / f"line{i}.png")
        Image.fromarray(img).save(files[-1])
    raw = _raw_timesteps(exe, find_traineddata().parent, files)
    generator = generator_for(_system_tesseract_version())
    codes = model.char_codes()
    worst, compared = 0.0, 0
    for f, img in zip(files, _lines()):
        ref = reference_probs(model, img, generator)
        steps = raw[str(f)]
        assert len(steps) == ref.shape[0]
        for t, choices in enumerate(steps):
            tess = sorted((p for _, p in choices), reverse=True)
            ours = np.sort(ref[t])[::-1][:len(tess)]
            worst = max(worst, float(np.abs(ours - np.array(tess)).max()))
            for s, p in choices:
                k = model.null_char if s == "" else codes.get(s)
                if s and k is not None:
                    assert ref[t, k] == pytest.approx(p, abs=1e-5)
            compared += 1
    assert compared > 200 and worst < 1e-5


def _float_traineddata(monkeypatch) -> bytes:
    """The installed (integer) eng.traineddata as a float network, the form of ``tessdata_best``:
    every int8 matrix written as doubles (``int8 * scale``, what Tesseract computes with) and
    the recognizer's integer-mode flag cleared; the other components as they are."""
    import preproc.recognize.tesseract_torch as tt

    spans = []
    original = tt._weight_matrix

    def recording(r):
        start = r.pos
        out = original(r)
        if r.name.endswith(":lstm"):
            spans.append((start, r.pos, out[0]))
        return out

    with monkeypatch.context() as m:
        m.setattr(tt, "_weight_matrix", recording)
        src = tt.find_traineddata()
        model = tt.load_traineddata(src)
    comps = tt._components(src.read_bytes(), str(src))
    lstm, parts, at = comps[17], [], 0
    for start, end, w in spans:
        parts += [lstm[at:start], struct.pack("<Biid", lstm[start] & ~1, *w.shape, 0.0), w.astype("<f8").tobytes()]
        at = end
    tail = bytearray(lstm[at:])
    spec = model.spec.encode()
    k = bytes(tail).find(struct.pack("<I", len(spec)) + spec) + 4 + len(spec)
    struct.pack_into("<i", tail, k, struct.unpack_from("<i", tail, k)[0] & ~1)  # TF_INT_MODE
    return _traineddata({**comps, 17: b"".join(parts) + bytes(tail)})


@pytest.fixture()
def float_file(tmp_path, monkeypatch, model):
    path = tmp_path / "float" / "eng.traineddata"
    path.parent.mkdir()
    path.write_bytes(_float_traineddata(monkeypatch))
    return path


def test_a_float_network_reads_as_its_weights(float_file, model):
    """tessdata_best's form: double matrices, no integer arithmetic (reference_probs refuses it)."""
    fm = load_traineddata(float_file)
    assert fm.spec == model.spec and fm.unichars == model.unichars
    conv, fconv = model.network.children[1].children[1], fm.network.children[1].children[1]
    assert not fconv.int_mode and not fconv.int_weights
    np.testing.assert_array_equal(fconv.weights[0], conv.weights[0])
    with pytest.raises(TesseractFormatError, match="integer-mode"):
        reference_probs(fm, _lines()[0])
    net = load_tesseract_lstm(float_file)
    assert not net.int_mode
    line = torch.from_numpy(_lines()[0].copy()).float()[None, None] / 255
    x = net.prepare(line)
    assert x.min() < -1.0 or x.max() > 1.0      # unclipped: SetPixel clips only integer networks


def test_a_float_network_is_tesseracts_own_output(tmp_path, float_file, model):
    """The port of a float network equals what Tesseract computes with that file, timestep by timestep."""
    from preproc.recognize.leptonica_scale import pix_scale

    exe = _harness(tmp_path)
    files = []
    for i, img in enumerate(_lines()):
        files.append(tmp_path / f"line{i}.png")
        Image.fromarray(img).save(files[-1])
    raw = _raw_timesteps(exe, float_file.parent, files)
    fm = load_traineddata(float_file)
    net = load_tesseract_lstm(float_file, generator=generator_for(_system_tesseract_version()))
    codes = fm.char_codes()
    worst, compared = 0.0, 0
    for f, img in zip(files, _lines()):
        if img.shape[0] != net.height:    # Leptonica's scaling with its 8-bit rounding, as Tesseract's Pix
            factor = float(np.float32(net.height) / np.float32(img.shape[0]))
            img = pix_scale(torch.from_numpy(img.astype(np.float64)), factor, exact=True).numpy().astype(np.uint8)
        with torch.no_grad():
            p = net(net.prepare(torch.from_numpy(img.copy()).float()[None, None] / 255))[:, 0].exp().double().numpy()
        steps = raw[str(f)]
        assert len(steps) == p.shape[0]
        for t, choices in enumerate(steps):
            for s, prob in choices:
                k = fm.null_char if s == "" else codes.get(s)
                if s and k is not None:
                    worst = max(worst, abs(p[t, k] - prob))
            compared += 1
    assert compared > 200 and worst < 5e-4     # float32 against Tesseract's float arithmetic and tanh table


def _read(net, probs: np.ndarray) -> str:
    return net.greedy_decode(torch.from_numpy(np.log(probs + 1e-12))[:, None])[0]


def test_torch_module_stays_close_to_the_reference(model):
    """The differentiable module (no int8 rounding, exact tanh, no 8-bit scaling) reads as Tesseract does."""
    from rapidfuzz.distance import Levenshtein

    net = load_tesseract_lstm()
    diffs, edits, chars = [], 0, 0
    for img in _lines():
        ref = reference_probs(model, img, net.generator)
        with torch.no_grad():
            p = net(net.prepare(torch.from_numpy(img.copy()).float()[None, None] / 255))[:, 0].exp().numpy()
        assert p.shape == ref.shape
        diffs.append(np.abs(p - ref).max(axis=1).mean())
        edits += Levenshtein.distance(_read(net, ref), _read(net, p))
        chars += len(_read(net, ref))
    assert np.mean(diffs) < 0.03            # mean over steps of the largest probability difference
    assert edits <= 0.02 * chars


def test_greedy_reading_matches_what_tesserocr_reads(model):
    """The port's best path agrees with Tesseract's own reading (beam search, word lists) on clean lines."""
    try:
        ocr = TesseractOCR(mode=13)
    except Exception as e:  # noqa: BLE001 - any missing engine skips
        pytest.skip(str(e))
    net = load_tesseract_lstm()
    agree = 0
    lines = _lines()
    for img in lines:
        agree += _read(net, reference_probs(model, img, net.generator)) == ocr(Image.fromarray(img)).text.strip()
    assert agree >= len(lines) - 2


def test_ctc_gradient_reaches_the_image_and_improves_the_reading():
    """A few optimiser steps on the *pixels* lower Tesseract's CTC loss; the network itself stays frozen."""
    net = load_tesseract_lstm()
    img = _line("TOTAL RM 12.30", FONTS[0], height=36, blur=3.0)
    x = (torch.from_numpy(img.copy()).float()[None, None] / 255).requires_grad_(True)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    opt = torch.optim.Adam([x], lr=0.02)
    losses = []
    for _ in range(15):
        loss = net.ctc_loss(net(net.prepare(x.clamp(0, 1))), ["TOTAL RM 12.30"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    assert all(not p.requires_grad for p in net.parameters())


def test_a_padded_batch_reads_each_line_as_if_alone():
    net = load_tesseract_lstm()
    lines = [torch.from_numpy(img.copy()).float()[None, None] / 255 for img in _lines()[:4]]
    alone = [net(net.prepare(x)) for x in lines]
    xs = [net.prepare(x) for x in lines]
    widths = [x.shape[-1] for x in xs]
    batch = torch.cat([torch.nn.functional.pad(x, (0, max(widths) - x.shape[-1]), value=0.3) for x in xs])
    with torch.no_grad():
        together = net(batch, widths)
    for i, a in enumerate(alone):
        assert torch.allclose(together[:a.shape[0], i], a[:, 0], atol=1e-4)


def test_tesseract_loss_crops_each_line_to_its_text_box():
    tl = TesseractLoss()
    hr = torch.ones(2, 1, 40, 200)
    hr[0, 0, 10:20, 30:150] = 0.0            # ink of line 0
    hr[1, 0, 5:35, 2:198] = 0.0               # ink of line 1 reaches the borders
    sr = hr.clone().requires_grad_(True)
    x, widths = tl.views(sr, hr)
    from preproc.recognize.leptonica_scale import output_size

    w0, h0 = output_size(120 + 2 * PADDING, 10 + 2 * PADDING, 36 / 18)   # text box + padding, scaled to 36
    w1, _ = output_size(200, 38, 36 / 38)                                 # clipped at the image's edges
    assert h0 == 36 and x.shape[:3] == (2, 1, 36) and x.shape[3] == max(w0, w1)
    assert widths == [w0, w1]
    loss = tl(sr, hr, ["IIIII", "I I"])
    loss.backward()
    assert torch.isfinite(loss) and sr.grad.abs().sum() > 0


@pytest.mark.parametrize("target, readable", [("text", None), ("text", 0.5), ("target", None)])
def test_sr_training_steps_lower_the_tesseract_loss(target, readable):
    """Real optimiser steps on the SR net through Tesseract's LSTM lower that loss on the batch; Tesseract stays frozen."""
    from preproc.train.data import DataConfig, make_text_batch
    from preproc.train.model import init_net

    torch.manual_seed(0)
    tl = TesseractLoss(target=target, readable=readable)
    net = init_net("preproc/weights/text_sr_small_x4.safetensors", 64, None)
    lr, hr, texts = make_text_batch(5, 0, DataConfig.v2(lr_heights=(8, 8), batch_size=4))
    frozen = {k: v.clone() for k, v in tl.net.state_dict().items()}
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    losses = []
    for _ in range(6):
        loss = tl(net(lr), hr, texts)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(torch.equal(v, tl.net.state_dict()[k]) for k, v in frozen.items())


def test_readable_lines_only_keeps_what_tesseract_reads_clean():
    from preproc.train.data import DataConfig, make_text_batch

    lr, hr, texts = make_text_batch(5, 0, DataConfig.v2(lr_heights=(12, 12), batch_size=4))
    tl = TesseractLoss(readable=0.5)
    wrong = ["QQQQQQQQ"] * len(texts)                     # no clean line reads like this: nothing kept
    assert tl(hr, hr, wrong).item() == 0.0
    assert TesseractLoss()(hr, hr, wrong).item() > 1.0
    with pytest.raises(ValueError, match="target"):
        TesseractLoss(target="pixels")


@pytest.mark.slow
def test_cli_trains_text_sr_through_tesseract_deterministically(tmp_path, capsys):
    import json

    from preproc.cli import main
    from preproc.train.model import load_weights, read_metadata

    outs = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.safetensors"
        rc = main(["train-text-sr", "--out", str(out), "--steps", "3", "--val-dataset", "", "--workers", "0",
                   "--init", "preproc/weights/text_sr_small_x4.safetensors", "--batch-size", "2",
                   "--run-dir", str(tmp_path / run), "--data-version", "2", "--lr-heights", "8,10",
                   "--recognizer-loss", "0.3", "--recognizer", "tesseract", "--tesseract-target", "target",
                   "--no-progress"])
        assert rc == 0 and json.loads(capsys.readouterr().out)["steps"] == 3
        outs.append(load_weights(out).state_dict())
    meta = read_metadata(tmp_path / "a.safetensors")
    assert "--recognizer tesseract --tesseract-target target" in meta["command"]
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])


@pytest.mark.parametrize("height", [20, 30, 45, 100])
def test_leptonica_scale_paths_agree_with_and_without_rounding(height):
    """pix_scale without rounding is the same linear map as Leptonica's integer one, to the rounding."""
    from preproc.recognize.leptonica_scale import output_size, pix_scale

    img = torch.from_numpy(_line("Qty 2 x 4.50", FONTS[1], height=height).astype(np.float64))
    f = float(np.float32(36) / np.float32(height))
    exact = pix_scale(img, f, exact=True)
    soft = pix_scale(img, f)
    assert exact.shape == (36, output_size(img.shape[1], height, f)[0])
    assert torch.equal(exact, exact.round()) and exact.min() >= 0 and exact.max() <= 255
    assert (soft - exact).abs().max() <= 2.0          # one rounding before sharpening, one after
    x = img.clone().requires_grad_(True)
    pix_scale(x, f).sum().backward()
    assert x.grad.abs().sum() > 0


def test_leptonica_special_factors_are_refused_when_exact():
    from preproc.recognize.leptonica_scale import pix_scale

    img = torch.full((18, 40), 200.0, dtype=torch.float64)
    with pytest.raises(ValueError, match="special path"):
        pix_scale(img, 2.0, exact=True)
    assert pix_scale(img, 2.0).shape == (36, 80)
    assert torch.equal(pix_scale(img, 1.0), img)

"""Whole pages (issue 15): page text measurement, page gate, read_page, hOCR mapping, PDF, `preproc ocr`.

Real Tesseract on small rendered pages (DejaVu Sans), bicubic as the upscaler so the
tests stay fast; text-sr runs in one test on a tiny page.
"""

from __future__ import annotations

import json
import random
import re
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from preproc.cli import main
from preproc.errors import ImageTooLargeError
from preproc.page import (
    PageWord,
    decide_page,
    hocr_words,
    map_hocr,
    measure_text_size,
    read_page,
    write_searchable_pdf,
)
from preproc.presets import get_preset

ROOT = Path(__file__).resolve().parents[1]
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LINES = [
    "The quick brown fox jumps over",
    "seven lazy dogs near the river",
    "Printed pages hold many words",
    "Numbers like 2048 and 31 matter",
]


def render_page(size: int = 11, lines=LINES, width: int = 260, top: int = 20, picture: bool = False):
    """A white grey page with ``lines`` at font ``size`` px; returns (PIL, [(word, box)])."""
    font = ImageFont.truetype(FONT, size)
    pitch = int(size * 1.7)
    height = top * 2 + pitch * len(lines) + (90 if picture else 0)
    img = Image.new("L", (width, height), 255)
    d = ImageDraw.Draw(img)
    words = []
    y = top
    for line in lines:
        x = 14
        for w in line.split():
            box = d.textbbox((x, y), w, font=font)
            d.text((x, y), w, font=font, fill=0)
            words.append((w, box))
            x = box[2] + font.getbbox(" ")[2] + 1
        y += pitch
    if picture:
        yy, xx = np.mgrid[0:70, 0:150].astype(np.float32)
        a = 80 + xx * 0.8 + yy * 0.5
        a[((xx - 75) / 40) ** 2 + ((yy - 35) / 25) ** 2 <= 1] = 30
        a += np.random.default_rng(0).normal(0, 6, a.shape)
        img.paste(Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)), (40, y + 10))
    return img, words


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


# --- measurement and gate ---------------------------------------------------------------------
def test_measure_text_size_tracks_the_font_and_ignores_a_picture():
    small, _ = render_page(11)
    large, _ = render_page(22, width=520)
    with_pic, _ = render_page(11, picture=True)
    arr = [np.asarray(p.convert("RGB"), dtype=np.float32) / 255 for p in (small, large, with_pic)]
    s, lg, sp = (measure_text_size(a) for a in arr)
    # DejaVu Sans: x-height ~0.55 em
    assert 4.5 <= s.x_height <= 7.5
    assert 1.7 <= lg.x_height / s.x_height <= 2.3
    assert sp.x_height == pytest.approx(s.x_height, abs=1)
    assert s.small_x_height <= s.x_height


def test_mixed_sizes_measure_the_small_print_within_the_bound():
    body, _ = render_page(16, lines=LINES[:3], width=420)
    small, _ = render_page(9, lines=LINES[2:], width=420, top=4)
    page = Image.new("L", (420, body.height + small.height), 255)
    page.paste(body, (0, 0))
    page.paste(small, (0, body.height))
    m = measure_text_size(np.asarray(page.convert("RGB"), dtype=np.float32) / 255)
    only_small = measure_text_size(np.asarray(small.convert("RGB"), dtype=np.float32) / 255)
    assert m.small_x_height < 0.75 * m.x_height
    assert m.small_x_height == pytest.approx(only_small.x_height, abs=1)
    d = decide_page(m, get_preset("ocr"))
    assert d.scale == pytest.approx(min(24 / m.small_x_height, 48 / m.x_height, 4.0))


def test_page_with_only_a_picture_has_no_text_size_and_is_left_alone():
    rng = random.Random(3)
    sys.path.insert(0, str(ROOT / "datasets"))
    try:
        from make_page_set import picture
    finally:
        sys.path.remove(str(ROOT / "datasets"))
    page = Image.new("L", (300, 380), 255)
    page.paste(picture(220, 160, rng), (40, 90))
    assert measure_text_size(np.asarray(page.convert("RGB"), dtype=np.float32) / 255) is None
    res = read_page(page, upscaler="bicubic", progress=False)
    assert res.meta["skipped"] and "no text-like" in res.meta["gate"]
    assert res.image.size == page.size


def test_empty_page():
    page = Image.new("L", (120, 160), 255)
    res = read_page(page, upscaler="bicubic", progress=False)
    assert res.meta["skipped"] and res.text == "" and res.words == []
    assert "ocr_page" in res.hocr and res.hocr.rstrip().endswith("</html>")


def test_gate_skips_large_text_and_limits_mixed_sizes():
    page, _ = render_page(52, lines=LINES[:2], width=900)
    res = read_page(page, upscaler="bicubic", progress=False)
    assert res.meta["skipped"] and "already large enough" in res.meta["gate"]
    assert res.image.size == page.size
    assert "quick" in res.text and "river" in res.text
    p = get_preset("ocr")
    from preproc.page import TextSize

    # small print at 4 px with a body of 12 px: scale for the small print, limited to 2x target for the body
    d = decide_page(TextSize(12.0, 4.0, 20.0, 10, 100), p)
    assert d.scale == pytest.approx(4.0)  # min(24/4, 2*24/12=4, max_scale 4)
    d = decide_page(TextSize(20.0, 10.0, 30.0, 10, 100), p)
    assert d.scale == pytest.approx(2.4)  # min(24/10, 48/20)
    assert "limited" not in d.reason
    d = decide_page(TextSize(30.0, 8.0, 40.0, 10, 100), p)
    assert d.scale == pytest.approx(1.6) and "limited" in d.reason
    assert decide_page(None, p).skip
    d = decide_page(TextSize(14.0, 13.0, 30.0, 10, 100), p)  # large enough for Tesseract: left as it is
    assert d.skip and "reads" in d.reason
    assert not decide_page(TextSize(14.0, 13.0, 30.0, 10, 100), p, skip_x_height=20).skip
    assert decide_page(TextSize(5.0, 5.0, 9.0, 1, 3), p, scale=1).skip


# --- coordinates back to the original ---------------------------------------------------------
def test_word_boxes_land_on_the_rendered_words_in_original_coordinates(tmp_path):
    page, truth = render_page(11)
    res = read_page(page, upscaler="bicubic", progress=False)
    assert not res.meta["skipped"] and res.meta["scale"] > 2
    assert res.image.size[0] > 2 * page.size[0]  # read on the enhanced page...
    assert res.size == page.size  # ...reported on the original
    by_text: dict[str, list] = {}
    for w, b in truth:
        by_text.setdefault(w, []).append(b)
    hits = 0
    for wd in res.words:
        assert 0 <= wd.box[0] <= wd.box[2] <= page.width and 0 <= wd.box[1] <= wd.box[3] <= page.height
        if wd.text in by_text:
            best = max(iou(wd.box, b) for b in by_text[wd.text])
            assert best > 0.5, (wd, by_text[wd.text])
            hits += 1
    assert hits >= 0.7 * len(truth)
    # the hOCR document is well-formed XHTML and carries the same boxes
    import xml.etree.ElementTree as ET

    root = ET.fromstring(res.hocr.encode())
    ns = "{http://www.w3.org/1999/xhtml}"
    assert len([e for e in root.iter(f"{ns}span") if e.get("class") == "ocrx_word"]) == len(res.words)
    boxes = [tuple(map(int, m)) for m in re.findall(r"ocrx_word[^>]*bbox (\d+) (\d+) (\d+) (\d+)", res.hocr)]
    assert boxes == [w.box for w in res.words]
    page_box = re.search(r"ocr_page[^>]*bbox (\d+) (\d+) (\d+) (\d+)", res.hocr).groups()
    assert tuple(map(int, page_box)) == (0, 0, page.width, page.height)


def test_map_hocr_rewrites_every_coordinate():
    frag = ("<div class='ocr_page' id='page_1' title='image \"x.png\"; bbox 0 0 400 200; ppageno 0; scan_res 300 300'>"
            "<span class='ocr_line' id='line_1_1' title=\"bbox 40 20 201 61; baseline 0.01 -8; x_size 24; "
            "x_descenders 6; x_ascenders 7\">"
            "<span class='ocrx_word' id='word_1_1' title='bbox 40 21 99 60; x_wconf 91'>Hello</span> "
            "<span class='ocrx_word' id='word_1_2' title='bbox 110 20 201 61; x_wconf 88'>w&amp;rld</span>"
            "</span></div>")
    out = map_hocr(frag, 4.0, 4.0, 100, 50, "orig.png")
    assert "bbox 0 0 100 50" in out and "scan_res" not in out and 'image "orig.png"' in out
    assert "bbox 10 5 51 16" in out  # line: floor(40/4)=10, floor(20/4)=5, ceil(201/4)=51, ceil(61/4)=16
    assert "baseline 0.01 -2" in out and "x_size 6" in out and "x_descenders 1.5" in out
    words, text = hocr_words(out)
    assert [w.text for w in words] == ["Hello", "w&rld"] and text == "Hello w&rld"
    assert words[0].box == (10, 5, 25, 15) and words[1].confidence == 88


def test_too_large_pages_raise_a_clear_error():
    page, _ = render_page(11)
    with pytest.raises(ImageTooLargeError, match="pixels"):
        read_page(page, max_pixels=1000, progress=False)
    with pytest.raises(ImageTooLargeError, match=r"output limit.*smaller scale"):
        read_page(page, upscaler="bicubic", max_output_pixels=page.width * page.height * 2, progress=False)


def test_text_sr_tiles_a_page():
    page, _ = render_page(11, lines=LINES[:2], width=200)
    res = read_page(page, tile=48, overlap=8, progress=False)  # the OCR default backend, tiny tiles
    assert res.meta["upscaler"] == "text-sr" and res.meta["tiles"] > 1
    assert "quick" in res.text


# --- searchable PDF ----------------------------------------------------------------------------
def _pdf_objects(data: bytes) -> dict[int, bytes]:
    xref = int(re.search(rb"startxref\n(\d+)\n%%EOF", data).group(1))
    assert data[xref:xref + 4] == b"xref"
    count = int(re.match(rb"xref\n0 (\d+)\n", data[xref:]).group(1))
    entries = re.findall(rb"(\d{10}) 00000 n ", data[xref:])
    assert len(entries) == count - 1
    objs = {}
    for i, off in enumerate(entries, 1):
        off = int(off)
        assert data[off:].startswith(f"{i} 0 obj".encode())
        objs[i] = data[off:data.index(b"endobj", off)]
    return objs


def test_searchable_pdf_holds_the_original_image_and_the_words(tmp_path):
    page = Image.new("L", (200, 100), 255)
    words = [PageWord("Hello", 90, (10, 20, 60, 40), 0), PageWord("(b)\\", 80, (70, 20, 100, 40), 0),
             PageWord("naïve→", 70, (110, 20, 190, 40), 0)]
    p = write_searchable_pdf(tmp_path / "p.pdf", page, words, dpi=144)
    data = p.read_bytes()
    assert data.startswith(b"%PDF-1.4")
    objs = _pdf_objects(data)
    assert b"/MediaBox [0 0 100.0000 50.0000]" in objs[3]  # 200 x 100 px at 144 dpi
    img = objs[5]
    raw = zlib.decompress(img[img.index(b"stream\n") + 7:img.rindex(b"\nendstream")])
    assert b"/DeviceGray" in img and raw == np.asarray(page).tobytes()
    content = objs[4]
    ops = zlib.decompress(content[content.index(b"stream\n") + 7:content.rindex(b"\nendstream")])
    assert b"3 Tr" in ops and b"(Hello) Tj" in ops and b"(\\(b\\)\\\\) Tj" in ops
    assert b"(na\xefve?) Tj" in ops  # cp1252 (WinAnsi); what it cannot hold becomes "?"
    # "Hello": box 50x20 px = 25x10 pt at 144 dpi; size 10 pt; width 5 * 0.5 em * 10 = 25 pt -> Tz 100
    assert b"/F1 10.000 Tf 100.00 Tz 1 0 0 1 5.000 " in ops


def test_searchable_pdf_is_read_by_pdftotext(tmp_path):
    import shutil
    import subprocess

    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) not installed")
    page, _ = render_page(11)
    res = read_page(page, upscaler="bicubic", progress=False)
    pdf = write_searchable_pdf(tmp_path / "p.pdf", res.original, res.words)
    out = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "quick" in out and "river" in out


# --- the command ---------------------------------------------------------------------------------
def test_cli_writes_txt_hocr_pdf_mirrors_folders_and_resumes(tmp_path, capsys):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    render_page(11)[0].save(src / "sub" / "p1.png")
    Image.new("L", (80, 100), 255).save(src / "blank.png")
    out = tmp_path / "out"
    argv = ["ocr", str(src), "-o", str(out), "--upscaler", "bicubic", "--no-progress"]
    assert main(argv) == 0
    for stem in ("sub/p1", "blank"):
        for ext in ("txt", "hocr", "pdf"):
            assert (out / f"{stem}.{ext}").is_file(), (stem, ext)
    assert "quick" in (out / "sub/p1.txt").read_text()
    assert (out / "blank.txt").read_text() == ""
    recs = [json.loads(x) for x in (out / "meta.jsonl").read_text().splitlines()]
    assert len(recs) == 2 and all(r["ok"] for r in recs)
    assert {r["key"] for r in recs} == {"sub/p1", "blank"}
    assert next(r for r in recs if r["key"] == "blank")["skipped"]
    mtime = (out / "sub/p1.hocr").stat().st_mtime_ns
    capsys.readouterr()
    assert main(argv) == 0  # resume: nothing to do
    assert "2 already done" in capsys.readouterr().err
    assert (out / "sub/p1.hocr").stat().st_mtime_ns == mtime
    assert len((out / "meta.jsonl").read_text().splitlines()) == 2
    (out / "blank.pdf").unlink()  # a missing output is redone
    assert main(argv) == 0
    assert (out / "blank.pdf").is_file() and "1 already done" in capsys.readouterr().err
    assert main([*argv, "--no-pdf"]) == 0  # other settings: everything again
    assert "2 pages read" in capsys.readouterr().err


def test_cli_reports_bad_options_and_failed_pages(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    render_page(11)[0].save(src / "p.png")
    (src / "bad.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    assert main(["ocr", str(src), "-o", str(out), "--task-opt", "colour=1"]) == 2
    assert "unknown --task-opt colour" in capsys.readouterr().err
    assert main(["ocr", str(src), "-o", str(out), "--upscaler", "bicubic", "--no-progress", "--no-pdf"]) == 1
    recs = {json.loads(x)["key"]: json.loads(x) for x in (out / "meta.jsonl").read_text().splitlines()}
    assert recs["p"]["ok"] and not recs["bad"]["ok"] and "Error" in recs["bad"]["error"]


def test_both_tesseract_engines_give_the_same_words():
    from preproc.page import PageReader

    page, _ = render_page(22, width=520)
    a, b = PageReader(engine="tesserocr"), PageReader(engine="pytesseract")
    wa, ta = hocr_words(a.hocr(page))
    wb, tb = hocr_words(b.hocr(page))
    assert ta == tb and [w.box for w in wa] == [w.box for w in wb] and "quick" in ta
    a.close()

"""report.html in a real browser (headless Debian Chromium through selenium), and its files.

The page comes from a demo-sized compare run: the bundled 30 OCR lines, real Tesseract,
two sizes x lossless/JPEG 75. The browser tests skip (with the reason) only where no
Chromium, chromedriver or selenium is installed.
"""

import io
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import preproc
from preproc.compare import CompareTask, area_resize, register_task, spread
from preproc.compare.html_report import REPORT_FILES, report_image_path
from preproc.datasets import read_manifest
from preproc.metrics import cer
from preproc.upscalers import upscaler_names

SAMPLE = Path(__file__).resolve().parents[1] / "datasets" / "ocr-sample"
SIZES = [8, 10]
JPEG = [None, 75]
CHROMIUM = next((p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).is_file()), None)
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None)


def _variants():
    v = ["none", "bicubic", "bicubic+guard"]
    if "text-sr" in upscaler_names():
        v.append("text-sr")
    return [*v, "select"]


@pytest.fixture(scope="module")
def ocr_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report"
    report = preproc.compare(SAMPLE, task="ocr", variants=_variants(), sizes=SIZES, jpeg=JPEG, out=out,
                             sheet_samples=2, progress=False)
    return report, out


def _cache(out):
    entries = {}
    for line in (out / "cache.jsonl").read_text().splitlines():
        o = json.loads(line)
        sid, size, q, cand = o["key"]
        entries[(sid, size, q, cand)] = o["rec"]
    return entries


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or DRIVER is None:
        pytest.skip(f"no Chromium/chromedriver installed (chromium: {CHROMIUM}, chromedriver: {DRIVER}); "
                    "scripts/setup.sh installs Debian's chromium and chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                "--disable-dev-shm-usage"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture()
def page(browser, ocr_run):
    """The OCR report freshly loaded (state reset), the console log emptied into ``page.log``."""
    _, out = ocr_run
    browser.get((out / "report.html").resolve().as_uri())
    browser.log = browser.get_log("browser")
    return browser


def _set(driver, element_id, value):
    """Set a <select>/<input> like a user does and fire its change event."""
    driver.execute_script(
        "var e = document.getElementById(arguments[0]);"
        "if (e.type === 'checkbox') e.checked = arguments[1]; else e.value = arguments[1];"
        "e.dispatchEvent(new Event(e.type === 'search' ? 'input' : 'change'));", element_id, value)
    return driver.execute_script("return window.preprocReport")


# --- files, no browser ---------------------------------------------------------------------
def test_report_html_and_its_images_are_written(ocr_run):
    report, out = ocr_run
    html = (out / "report.html").read_text()
    assert "__PREPROC_" not in html and "<script" in html
    # nothing from the network (SVG namespaces are names, not fetches)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:""", html)
    ids = [json.loads(line)["id"] for line in (SAMPLE / "manifest.jsonl").read_text().splitlines()]
    files = list((out / REPORT_FILES).rglob("*.*"))
    cands = {"none", "bicubic", "cleanup", *(["text-sr"] if "text-sr" in upscaler_names() else [])}
    assert len(files) == len(ids) * len(SIZES) * len(JPEG) * len(cands)
    crop = Image.open(report_image_path(out, ids[0], 8, 75, "none"))
    assert crop.height == 8 and crop.format == "PNG"  # the crop as it is, lossless
    big = Image.open(report_image_path(out, ids[0], 8, 75, "bicubic"))
    assert big.format == "WEBP" and 8 < big.height <= 64
    assert sum(f.stat().st_size for f in files) / len(files) < 12_000  # small files: bounded disk use


def test_contact_sheet_is_a_small_overview(ocr_run):
    report, out = ocr_run
    sheet = Image.open(out / "contact_sheet.png")
    # one setting, 2 samples side by side, one row per variant (+ the crop): fits a screen at 100 %
    assert sheet.width <= 1400 and sheet.height <= 120 + 66 * (len(report.variants) + 1)
    assert np.asarray(sheet.convert("L"), np.float32).std() > 20


def test_report_images_are_bounded_and_remade_on_resume(tmp_path):
    kw = dict(variants=["none", "bicubic"], sizes=[10], limit=6, out=tmp_path, report_images=2, progress=False)
    preproc.compare(SAMPLE, **kw)
    assert len(list((tmp_path / REPORT_FILES).iterdir())) == 2  # only the first 2 records keep images
    data = json.loads((tmp_path / "report.html").read_text().split('id="preproc-data">')[1].split("</script>")[0])
    assert [r[4] for r in data["recs"]] == [1, 1, 0, 0, 0, 0]  # the page knows which have images
    assert len(data["items"]) == 6  # but shows every sample's readings
    before = (tmp_path / "cache.jsonl").read_text()
    victim = next((tmp_path / REPORT_FILES).rglob("*bicubic.webp"))
    victim.unlink()
    preproc.compare(SAMPLE, **kw)
    assert victim.is_file()  # remade: that one candidate recomputed, nothing else
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == len(before.splitlines()) + 1


def test_reproducing_command_is_the_run(ocr_run):
    report, out = ocr_run
    from preproc.compare.html_report import reproduce_command

    cmd = reproduce_command(report, None, out)
    assert f"--variants {','.join(_variants())}" in cmd and "--sizes 8,10" in cmd and "--jpeg none,75" in cmd
    assert cmd in (out / "report.html").read_text().replace("&#x27;", "'")


# --- in the browser --------------------------------------------------------------------------
def test_no_javascript_errors_and_every_item_listed(page, ocr_run):
    report, _ = ocr_run
    errors = [e for e in page.log if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    state = page.execute_script("return window.preprocReport")
    assert state["matched"] == 30 * len(SIZES) * len(JPEG) and state["shown"] == 20
    assert len(page.find_elements("css selector", "#cards .card")) == 20


def test_summary_table_shows_the_numbers_of_report_json(page, ocr_run):
    _, out = ocr_run
    doc = json.loads((out / "report.json").read_text())
    cells = page.execute_script(
        "return Array.from(document.querySelectorAll('table.pivot td[data-variant]')).map(function (td) {"
        " var t = td.closest('table'); return [t.dataset.metric, t.dataset.jpeg, td.dataset.variant,"
        " +td.dataset.size, td.textContent.replace('★', '').trim(), td.classList.contains('best')]; })")
    seen = {}
    for metric, jpeg, variant, size, text, best in cells:
        seen[(metric, None if jpeg == "" else int(jpeg), variant, size)] = (text, best)
    for row in doc["rows"]:
        for metric in ("cer", "word_acc", "seconds_per_item"):
            text, best = seen[(metric, row["jpeg"], row["variant"], row["size"])]
            assert text == f"{row[metric]:.3f}", (metric, row["variant"], row["size"], row["jpeg"])
    # the best of each column is marked: lowest CER, highest word accuracy
    for metric, pick in (("cer", min), ("word_acc", max)):
        for q in JPEG:
            for s in SIZES:
                col = [r for r in doc["rows"] if r["size"] == s and r["jpeg"] == q]
                want = {r["variant"] for r in col if r[metric] == pick(x[metric] for x in col)}
                marked = {v for (m, jq, v, sz), (_, b) in seen.items() if m == metric and jq == q and sz == s and b}
                assert marked == want


def test_size_filter_and_variant_a_worse_than_b(page, ocr_run):
    _, out = ocr_run
    state = _set(page, "f-size", "8")
    assert state["matched"] == 30 * len(JPEG)
    sizes = {c.get_attribute("data-size") for c in page.find_elements("css selector", "#cards .card")}
    assert sizes == {"8"}
    # "where bicubic is worse than none" (character error rate of the line), at 8 px
    names = page.execute_script("return Array.from(document.getElementById('f-a').options).map(o => o.text)")
    _set(page, "f-a", str(names.index("bicubic")))
    _set(page, "f-b", str(names.index("none")))
    state = _set(page, "f-ab", True)
    cache = _cache(out)
    truths = {json.loads(line)["id"]: json.loads(line)["text"] for line in (SAMPLE / "manifest.jsonl").read_text().splitlines()}
    gaps, better, tied = [], 0, 0
    for sid, truth in truths.items():
        for q in JPEG:
            a = cer(truth, cache[(sid, 8, q, "bicubic")]["text"])
            b = cer(truth, cache[(sid, 8, q, "none")]["text"])
            if a > b:
                gaps.append(a - b)
            better += a < b
            tied += a == b
    assert 0 < len(gaps) < 60
    assert state["matched"] == len(gaps)
    # the paired count next to the filter
    stat = page.find_element("id", "ab-stat").text
    assert stat.startswith(f"(A worse on {len(gaps)}, better on {better}, tied on {tied}; sign test p = ")
    n, k = len(gaps) + better, min(len(gaps), better)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)  # exact two-sided sign test
    assert float(stat.rsplit("= ", 1)[1].rstrip(")")) == pytest.approx(p, rel=0.05)
    assert page.find_element("id", "f-sort").get_attribute("value") == "gap"  # worst first
    first = page.find_element("css selector", "#cards .card")
    cer_a = float(first.find_element("css selector", "tr.ra td.n").text)  # the first number cell: CER
    cer_b = float(first.find_element("css selector", "tr.rb td.n").text)
    assert cer_a - cer_b == pytest.approx(max(gaps), abs=2e-3)
    # the search box narrows further; clearing the filter restores the size's items
    _set(page, "f-ab", False)
    assert page.execute_script("return window.preprocReport")["matched"] == 30 * len(JPEG)
    state = _set(page, "f-q", "line-000")
    assert state["matched"] == len(JPEG)
    # the view is kept in the address: a reload (or a shared link) shows the same cards
    _set(page, "f-q", "")
    _set(page, "f-ab", True)
    page.refresh()
    assert "ab=1" in page.current_url and "a=bicubic" in page.current_url
    assert page.execute_script("return window.preprocReport")["matched"] == len(gaps)


def test_variant_chips_hide_rows_and_pages_turn(page):
    first = page.find_element("css selector", "#cards .card")
    rows = len(first.find_elements("css selector", "tr"))
    page.find_element("css selector", '#f-vars .chip[data-v="1"]').click()
    first = page.find_element("css selector", "#cards .card")
    assert len(first.find_elements("css selector", "tr")) == rows - 1
    page.find_element("css selector", '#pager-top button[data-p="1"]').click()
    assert page.execute_script("return window.preprocReport")["page"] == 1
    # the arrow keys turn pages; a click on an image shows it large, Esc closes it
    from selenium.webdriver.common.keys import Keys

    body = page.find_element("css selector", "body")
    body.send_keys(Keys.ARROW_RIGHT)
    assert page.execute_script("return window.preprocReport")["page"] == 2
    body.send_keys(Keys.ARROW_LEFT)
    assert page.execute_script("return window.preprocReport")["page"] == 1
    img = page.find_element("css selector", "#cards .card img")
    page.execute_script("arguments[0].scrollIntoView({block: 'center'})", img)  # clear of the sticky filters
    img.click()
    zoom = page.find_element("id", "zoom")
    assert zoom.is_displayed() and zoom.find_element("css selector", "img").get_attribute("src") == img.get_attribute("src")
    body.send_keys(Keys.ESCAPE)
    assert not zoom.is_displayed()


def test_readings_show_their_differences_and_images_load(page, ocr_run):
    _, out = ocr_run
    cache = _cache(out)
    card = page.find_element("css selector", "#cards .card")  # line-000 at 8 px, lossless
    page.execute_script("arguments[0].scrollIntoView()", card)
    page.execute_script("return new Promise(function (ok) { setTimeout(ok, 300); })")
    truth = json.loads((SAMPLE / "manifest.jsonl").read_text().splitlines()[0])["text"]
    none_row = card.find_elements("css selector", "tr")[1]
    reading = cache[("line-000", 8, None, "none")]["text"]
    assert none_row.find_element("css selector", "td.n").text == f"{cer(truth, reading):.3f}"
    marks = none_row.find_elements("css selector", ".read .s, .read .i, .read .d")
    assert (len(marks) > 0) == (reading != truth)
    # the marked reading, without the missing characters, is the reading itself
    shown = page.execute_script(
        "var r = arguments[0].querySelector('.read').cloneNode(true);"
        "r.querySelectorAll('.d').forEach(function (n) { n.remove(); }); return r.textContent;", none_row)
    assert shown == " ".join(reading.split())
    loaded = page.execute_script(
        "var imgs = Array.from(arguments[0].querySelectorAll('img'));"
        "return Promise.all(imgs.map(function (i) { return i.decode().then(function () { return [i.naturalWidth, i.naturalHeight]; },"
        " function () { return [0, 0]; }); }));", card)
    assert loaded and all(w > 0 for w, _ in loaded)
    assert loaded[0][1] == 8  # the crop, shown enlarged from its own 8 px
    assert [e for e in page.get_log("browser") if e["level"] == "SEVERE"] == []


def test_screenshot_is_not_blank(page):
    top = np.asarray(Image.open(io.BytesIO(page.get_screenshot_as_png())).convert("L"), np.float32)
    assert top.std() > 25
    page.execute_script("document.getElementById('browser').scrollIntoView()")
    cards = np.asarray(Image.open(io.BytesIO(page.get_screenshot_as_png())).convert("L"), np.float32)
    assert cards.std() > 25 and np.abs(cards - top).mean() > 5


@pytest.mark.shared
@pytest.mark.slow
def test_face_report_pairs_in_the_browser(shared_datasets, browser, tmp_path):
    pytest.importorskip("facenet_pytorch")
    pytest.importorskip("dlib")
    out = tmp_path / "face"
    rep = preproc.compare(shared_datasets / "faces-dev", task="face", variants=["none", "bicubic", "fuse"],
                          sizes=[24], limit=6, out=out, task_options={"pair_set": "orl"}, progress=False)
    browser.get((out / "report.html").resolve().as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    state = browser.execute_script("return window.preprocReport")
    assert state["matched"] == 6
    card = browser.find_element("css selector", "#cards .card")
    rows = card.find_elements("css selector", "tr")
    assert len(rows) == 1 + 3  # the crops, then one row per variant
    for row, variant in zip(rows[1:], ["none", "bicubic", "fuse"]):
        cells = row.find_elements("css selector", "td")
        assert len(row.find_elements("css selector", "img")) == 2  # both images of the pair
        assert float(cells[3].text) == pytest.approx(rep.row(variant, 24)["threshold"], abs=1e-3)
        score, thr = float(cells[2].text), float(cells[3].text)
        same = "same person" in card.text
        assert ("right" in cells[4].text) == ((score >= thr) == same) or abs(score - thr) < 1e-3


class _Darkness(CompareTask):
    """A toy task without a page sampler of its own: its cards are the generic ones."""

    name = "darkness"
    metrics = ("darkness",)
    higher_is_better = {"darkness": True}
    default_sizes = (6,)
    default_candidates = ("none",)

    def load(self, dataset, limit):
        return spread(read_manifest(dataset), limit)

    def degrade(self, record, size, jpeg):
        return area_resize(Image.open(record.image), size * 8, size)

    def recognize(self, image, record):
        d = 1.0 - float(np.asarray(image.convert("L"), np.float32).mean()) / 255.0
        return {"confidence": d}

    def evaluate(self, records, recs):
        return {"darkness": float(np.mean([r["confidence"] for r in recs]))}


def test_a_task_without_its_own_sampler_gets_generic_cards(browser, tmp_path):
    register_task("darkness", _Darkness)
    rep = preproc.compare(SAMPLE, task="darkness", variants=["none", "nearest", "select"], limit=3, out=tmp_path,
                          progress=False)
    browser.get((tmp_path / "report.html").resolve().as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    # one size: one table of every metric, its numbers those of the report
    cells = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.pivot td[data-metric]')).map(function (td) {"
        " return [td.dataset.variant, td.dataset.metric, td.textContent.replace('★', '').trim()]; })")
    assert len(cells) == 3 * 2
    for variant, metric, text in cells:
        assert text == f"{rep.row(variant, 6)[metric]:.3f}"
    assert browser.execute_script("return window.preprocReport")["matched"] == 3
    card = browser.find_element("css selector", "#cards .card")
    assert len(card.find_elements("css selector", "tr")) == 1 + 3
    assert "kept" in card.find_elements("css selector", "tr")[3].text  # select says what it kept


def test_odd_ids_texts_and_failures_render_safely(browser, tmp_path):
    """Quotes, markup and a script end tag in the ground truth, odd ids, and a sample that fails."""
    ds = tmp_path / "ds"
    (ds / "images").mkdir(parents=True)
    src = read_manifest(SAMPLE)[:2]
    odd = ['He said "</script><img src=x onerror=alert(1)>" & left', "Tab\there  ünïcödé ✓"]
    lines = []
    for r, text, rid in zip(src, odd, ["line <1> & 'quoted'", "línea 2/ü"]):
        shutil.copy(r.image, ds / "images" / r.image.name)
        lines.append(json.dumps({"id": rid, "image": f"images/{r.image.name}", "text": text}))
    (ds / "images" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    lines.append(json.dumps({"id": "broken", "image": "images/broken.png", "text": "x"}))
    (ds / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    preproc.compare(ds, variants=["none", "bicubic"], sizes=[10], out=out, progress=False)
    browser.get((out / "report.html").resolve().as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    assert browser.execute_script("return window.preprocReport")["matched"] == 3
    assert browser.execute_script("return document.querySelectorAll('#cards img[src=x]').length") == 0
    text = browser.find_element("id", "cards").text
    assert odd[0] in text and "line <1> & 'quoted'" in text and "línea 2/ü" in text
    assert text.count("failed:") == 2  # the broken sample, once per variant

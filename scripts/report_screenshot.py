"""Screenshot of a report.html in headless Chromium (how docs/report-screenshot.png is made).

    .venv/bin/python -m preproc.demo --out build/demo
    .venv/bin/python scripts/report_screenshot.py build/demo/report.html docs/report-screenshot.png \
        --size 10 --jpeg 75 --a none --b text-sr

Without --a/--b it shows the top of the page (the summary). The PNG is reduced to a
256-colour palette to stay small.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from PIL import Image

JS = """
function set(id, v) { var e = document.getElementById(id); if (e.type === 'checkbox') e.checked = v; else e.value = v;
  e.dispatchEvent(new Event('change')); }
function idx(id, name) { return String(Array.from(document.getElementById(id).options).findIndex(o => o.text === name)); }
var a = arguments[0];
if (a.size) set('f-size', a.size);
if (a.jpeg) set('f-jpeg', a.jpeg);
if (a.a && a.b) { set('f-a', idx('f-a', a.a)); set('f-b', idx('f-b', a.b)); set('f-ab', true); }
if (a.scroll) document.getElementById(a.scroll).scrollIntoView();
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("page")
    p.add_argument("png")
    p.add_argument("--size", default="")
    p.add_argument("--jpeg", default="", help="a quality, or none for lossless")
    p.add_argument("--a", default="", help="variant A of 'A is worse than B'")
    p.add_argument("--b", default="")
    p.add_argument("--window", default="1240,860")
    args = p.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={args.window}",
                "--hide-scrollbars"):
        opts.add_argument(arg)
    opts.binary_location = "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        driver.get(Path(args.page).resolve().as_uri())
        scroll = "browser" if (args.a or args.size or args.jpeg) else ""
        driver.execute_script(JS, {"size": args.size, "jpeg": args.jpeg, "a": args.a, "b": args.b, "scroll": scroll})
        time.sleep(1.0)  # lazy images
        tmp = Path(args.png).with_suffix(".raw.png")
        driver.save_screenshot(str(tmp))
    finally:
        driver.quit()
    img = Image.open(tmp).convert("RGB")
    img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(args.png, optimize=True)
    tmp.unlink()
    print(args.png, img.size, Path(args.png).stat().st_size, "bytes")


if __name__ == "__main__":
    main()

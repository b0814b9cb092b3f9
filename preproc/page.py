"""Whole pages: measure the body text, enhance through the tiler, let Tesseract segment and read.

``preproc.read_page(page)`` -> :class:`PageResult` (text, hOCR and word boxes in the
*original* page's pixel coordinates, the enhanced image, ``meta``), and
:func:`write_searchable_pdf` (the original page image with an invisible text layer).

What the page gate measures (:func:`measure_text_size`)
-------------------------------------------------------
The crop gate (:func:`preproc.gate.estimate_x_height`) reads one projection profile over
the whole width; on a page, pictures, table rules, columns and mixed sizes spoil it. The
page measurement works on connected components instead:

1. ink mask (Otsu, ink = the minority polarity, as the crop gate);
2. connected components (8-connected). Not text-like, dropped: specks (< 4 px of ink or
   under 3 px high: dots, streaks, noise), rules (fill > 0.7 and more than 8 times longer
   than thick),
   *large* components (taller than a quarter of the page, or wider than half of it and
   taller than 6 % of it: pictures, table frames, big logos), and every component whose
   centre lies inside a large one (the speckle a threshold leaves inside a photograph);
3. the kept components are smeared horizontally (a gap of about one median component
   height) into *line segments*; each segment's row profile is split into text bands
   (rows with ink, the crop gate's rule; bands under half the median component height
   are rows of dashes, dots or cut-off strokes and are dropped) and a band's x-height is the number of its rows
   holding at least half the band's peak ink (the dense lower-case body; the crop gate's
   rule, except that the peak is the band's 75th-percentile row, so an underline or a rule
   touching the text is not taken for the peak);
4. every band is weighted by its width in line heights (about its number of characters),
   so a page of body text with a heading measures as body text, and a picture's stray
   fragments weigh little.

It returns the weighted median x-height (``x_height``, the body text), the weighted 10th
percentile over the bands at least half the body line height tall (``small_x_height``,
the smallest text that still makes up a tenth of the page's characters; thinner bands are
fragments: cut-off strokes, streaks, dotted rules), the weighted median band height
(``line_height``) and counts.

The scale rule (:func:`decide_page`)
------------------------------------
``scale = min(target / small_x_height, max_body_ratio * target / x_height, max_scale)``:
the smallest body text is brought to Tesseract's sweet spot (the preset's
``target_x_height``, 24 px) unless that would blow the main body text up beyond
``max_body_ratio`` (2) times the target. The page passes through untouched when that
scale is below ``min_scale`` (1.15), when the smallest body text already has an x-height of
``skip_x_height`` (12 px) or more (Tesseract reads such pages as they are: on the 2 bundled
sample pages at x-height ~13 px, page CER 0.004 as they are and 0.019 after text-sr to
24 px, which took ~50 s per page; docs/ocr.md), and when the page has no text-like components
(nothing to measure). The gate says which in ``meta``.
"""

from __future__ import annotations

import html
import logging
import numbers
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from .errors import ConfigError, ImageTooLargeError
from .gate import GateDecision, check_scale, drop_specks, ink_bands, ink_mask
from .io import DEFAULT_MAX_PIXELS, ImageLike, load_image, to_gray
from .presets import Preset, get_preset

logger = logging.getLogger(__name__)

#: Tesseract page segmentation mode for pages: 3, fully automatic (no OSD).
PAGE_PSM = 3
#: Resolution Tesseract is told for the page it reads: the gate brings the body x-height to
#: about 24 px, the size of 10-12 pt type scanned at 300 dpi.
READ_DPI = 300


# --- measuring ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TextSize:
    """The text sizes measured on a page, in pixels of that page (see the module docstring)."""

    x_height: float
    small_x_height: float
    line_height: float
    bands: int
    components: int
    dropped: dict[str, int] = field(default_factory=dict)

    def as_meta(self) -> dict[str, Any]:
        """JSON-able form for ``meta``."""
        return {
            "x_height": round(self.x_height, 2),
            "small_x_height": round(self.small_x_height, 2),
            "line_height": round(self.line_height, 2),
            "bands": self.bands,
            "components": self.components,
            "dropped": dict(self.dropped),
        }


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    i = int(np.searchsorted(cum, q * cum[-1], side="left"))
    return float(v[min(i, len(v) - 1)])


def measure_text_size(image: np.ndarray) -> TextSize | None:
    """Measure the body text of an ``(H, W, 3)`` float page; None when nothing text-like is found."""
    mask = ink_mask(to_gray(image))
    if mask is None:
        return None
    H, W = mask.shape
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return None
    x, y, w, h, area = (stats[1:, i].astype(np.int64) for i in range(5))
    fill = area / np.maximum(w * h, 1)
    speck = (area < 4) | (h < 3)
    rule = (fill > 0.7) & ((w > 8 * h) | (h > 8 * w)) & ~speck
    large = ((h > H / 4) | ((w > W / 2) & (h > 0.06 * H))) & ~speck
    inside = np.zeros(n - 1, dtype=bool)
    for j in np.flatnonzero(large):
        cx, cy = centroids[1:, 0], centroids[1:, 1]
        inside |= (cx >= x[j]) & (cx < x[j] + w[j]) & (cy >= y[j]) & (cy < y[j] + h[j])
    inside &= ~large
    keep = ~(speck | rule | large | inside)
    dropped = {"specks": int(speck.sum()), "rules": int(rule.sum()), "large": int(large.sum()),
               "inside_large": int((inside & ~speck & ~rule).sum())}
    if keep.sum() < 3:
        return None
    lut = np.zeros(n, dtype=np.uint8)
    lut[1:][keep] = 1
    text = lut[labels]
    comp_h = float(np.median(h[keep]))  # most components are characters (or words, at low resolution)
    gap = max(2, int(round(comp_h)))
    smeared = cv2.dilate(text, np.ones((1, 2 * gap + 1), np.uint8))
    m, _, seg_stats, _ = cv2.connectedComponentsWithStats(smeared, connectivity=8)
    xs: list[float] = []
    ls: list[float] = []
    ws: list[float] = []
    for sx, sy, sw, sh, _a in seg_stats[1:]:
        sub = text[sy:sy + sh, sx:sx + sw]
        profile = sub.sum(axis=1).astype(np.float64)
        for a, b in drop_specks(ink_bands(profile)):  # the crop gate's row bands
            p = profile[a:b]
            band_h = b - a
            if band_h < 0.5 * comp_h:  # a row of dashes, dots or cut-off strokes, not a text line
                continue
            cols = np.flatnonzero(sub[a:b].any(axis=0))
            width = float(cols[-1] - cols[0] + 1) if len(cols) else 0.0
            # the band's "peak" is its 75th-percentile row: an underline or a rule touching the
            # text would otherwise be the peak and leave an x-height of one or two rows
            xs.append(float(max(1, (p >= 0.5 * np.percentile(p, 75)).sum())))
            ls.append(float(band_h))
            ws.append(max(width / max(band_h, 1), 0.25))
    if not xs:
        return None
    xa, la, wa = np.asarray(xs), np.asarray(ls), np.asarray(ws)
    body_lh = _weighted_quantile(la, wa, 0.5)
    # bands under half the body line height are fragments (cut-off strokes, streaks, dotted
    # rules), not small print: they do not count for the smallest text
    ok = la >= 0.5 * body_lh
    return TextSize(
        x_height=_weighted_quantile(xa, wa, 0.5),
        small_x_height=min(_weighted_quantile(xa[ok], wa[ok], 0.1), _weighted_quantile(xa, wa, 0.5)),
        line_height=body_lh,
        bands=len(xs),
        components=int(keep.sum()),
        dropped=dropped,
    )


def decide_page(
    size: TextSize | None,
    preset: Preset,
    scale: float | None = None,
    *,
    max_body_ratio: float = 2.0,
    skip_x_height: float = 12.0,
) -> GateDecision:
    """The page gate's decision for measured text ``size`` (rule in the module docstring)."""
    if scale is not None:
        scale = check_scale(scale)  # NaN, inf, "2": a ConfigError (a ValueError in round() before)
        if scale <= 1.0:
            return GateDecision(1.0, True, f"scale={scale} given: page left as it is")
        return GateDecision(float(scale), False, f"scale={scale} given by the caller")
    if max_body_ratio < 1:
        raise ConfigError(f"`max_body_ratio` has to be >= 1 but is {max_body_ratio}")
    target = float(preset.target_x_height or 24.0)
    if size is None:
        return GateDecision(1.0, True, "no text-like components found on the page: left as it is", {"x_height": None})
    measured = size.as_meta()
    want_small = target / max(size.small_x_height, 1.0)
    want_body = max_body_ratio * target / max(size.x_height, 1.0)
    want = min(want_small, want_body)
    why = (f"body x-height {size.x_height:.1f} px, smallest body text {size.small_x_height:.1f} px, "
           f"target {target:g} px")
    if want_body < want_small:
        why += f" (limited so the body x-height stays <= {max_body_ratio:g}x the target)"
    if want < preset.min_scale:
        return GateDecision(1.0, True, f"{why}: text already large enough, page left as it is", measured)
    if size.small_x_height >= skip_x_height:
        return GateDecision(1.0, True, f"{why}: smallest body text >= {skip_x_height:g} px, which Tesseract reads "
                            "as it is; page left as it is", measured)
    s = min(want, preset.max_scale)
    if s < want:
        why += f" (capped at max_scale {preset.max_scale:g})"
    return GateDecision(float(s), False, why, measured)


# --- Tesseract on a page ------------------------------------------------------------------
@dataclass(frozen=True)
class PageWord:
    """One word: text, confidence 0-100, box ``(x0, y0, x1, y1)`` in original page pixels, its line number."""

    text: str
    confidence: float
    box: tuple[int, int, int, int]
    line: int


HOCR_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
    "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>{title}</title>
  <meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
  <meta name='ocr-system' content='tesseract {version} via preproc'/>
  <meta name='ocr-capabilities' content='ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf'/>
 </head>
 <body>
"""
HOCR_FOOTER = " </body>\n</html>\n"

_TITLE = re.compile(r"title=(['\"])(.*?)\1", re.S)
_BBOX = re.compile(r"bbox (-?\d+) (-?\d+) (-?\d+) (-?\d+)")


def map_hocr(fragment: str, sx: float, sy: float, width: int, height: int, image_name: str = "") -> str:
    """Rewrite the coordinates in hOCR ``title`` attributes from the read image to the original page.

    A pixel ``(x, y)`` of the read image is ``(x / sx, y / sy)`` on the original. Boxes are
    rounded outwards (``floor`` of the start, ``ceil`` of the end) and clipped to the
    ``width`` x ``height`` page; ``x_size``/``x_ascenders``/``x_descenders`` and the
    baseline offset are divided by ``sy``; ``image`` becomes ``image_name`` and
    ``scan_res`` is dropped (the original's resolution is unknown to Tesseract).
    """

    def box(m: re.Match) -> str:
        x0, y0, x1, y1 = (int(v) for v in m.groups())
        nx0 = min(max(int(np.floor(x0 / sx)), 0), width)
        ny0 = min(max(int(np.floor(y0 / sy)), 0), height)
        nx1 = min(max(int(np.ceil(x1 / sx)), 0), width)
        ny1 = min(max(int(np.ceil(y1 / sy)), 0), height)
        return f"bbox {nx0} {ny0} {nx1} {ny1}"

    def title(m: re.Match) -> str:
        q, body = m.group(1), m.group(2)
        parts = []
        for part in body.split(";"):
            part = part.strip()
            key = part.split(" ", 1)[0]
            if key == "bbox":
                part = _BBOX.sub(box, part)
            elif key in ("x_size", "x_descenders", "x_ascenders"):
                part = f"{key} {float(part.split()[1]) / sy:.4g}"
            elif key == "baseline":
                slope, offset = part.split()[1:3]
                part = f"baseline {slope} {round(float(offset) / sy)}"
            elif key == "image":
                safe = html.escape(image_name.replace('"', "").replace("'", ""), quote=False)
                part = f'image "{safe}"' if q == "'" else f"image '{safe}'"
            elif key == "scan_res":
                continue
            if part:
                parts.append(part)
        return f"title={q}{'; '.join(parts)}{q}"

    return _TITLE.sub(title, fragment)


_TAG = re.compile(r"<[^>]+>")


def hocr_words(fragment: str) -> tuple[list[PageWord], str]:
    """The words (in the fragment's coordinates) and the plain text of an hOCR fragment.

    Text: words of a line joined by spaces, lines by newlines, paragraphs by a blank line.
    """
    words: list[PageWord] = []
    out_lines: list[str] = []
    line_no = -1
    cur: list[str] = []
    tokens = re.finditer(
        r"(?P<par><p class=['\"]ocr_par['\"])|(?P<line><span class=['\"](?:ocr_line|ocr_caption|ocr_header|ocr_textfloat)['\"])"
        r"|(?P<word><span class=['\"]ocrx_word['\"][^>]*?title=['\"](?P<title>[^'\"]*)['\"][^>]*>(?P<body>.*?)</span>)",
        fragment,
        re.S,
    )
    for t in tokens:
        if t.group("par") is not None:
            if cur:
                out_lines.append(" ".join(cur))
                cur = []
            if out_lines and out_lines[-1] != "":
                out_lines.append("")
        elif t.group("line") is not None:
            if cur:
                out_lines.append(" ".join(cur))
                cur = []
            line_no += 1
        else:
            text = html.unescape(_TAG.sub("", t.group("body"))).strip()
            if not text:
                continue
            ttl = t.group("title")
            m = _BBOX.search(ttl)
            b = tuple(int(v) for v in m.groups()) if m else (0, 0, 0, 0)
            c = re.search(r"x_wconf (\d+)", ttl)
            words.append(PageWord(text, float(c.group(1)) if c else 0.0, b, max(line_no, 0)))
            cur.append(text)
    if cur:
        out_lines.append(" ".join(cur))
    while out_lines and out_lines[-1] == "":
        out_lines.pop()
    while out_lines and out_lines[0] == "":
        out_lines.pop(0)
    return words, "\n".join(out_lines)


class PageReader:
    """Tesseract in page mode (``--psm 3`` by default) returning hOCR: ``PageReader().hocr(pil) -> hocr fragment``.

    tesserocr in-process when installed, else the ``tesseract`` program through
    pytesseract. Calls are serialised (safe to share between threads).
    """

    def __init__(self, lang: str = "eng", psm: int = PAGE_PSM, dpi: int = READ_DPI, engine: str = "auto"):
        from .recognize.ocr import TesseractOCR

        # TesseractOCR finds the language data and raises the install hints; we reuse its set-up.
        self._ocr = TesseractOCR(lang, int(psm), engine, dpi=dpi)
        self.lang, self.psm, self.dpi, self.engine = lang, int(psm), int(dpi), self._ocr.engine
        self._lock = threading.Lock()

    def hocr(self, pil: Image.Image) -> str:
        """The hOCR fragment (one ``ocr_page`` div) of ``pil`` in its own pixel coordinates."""
        img = pil if pil.mode in ("L", "RGB") else pil.convert("RGB")
        with self._lock:
            api = self._ocr._api
            if api is not None:
                api.SetImage(img)
                api.SetVariable("user_defined_dpi", str(self.dpi))
                frag = api.GetHOCRText(0) or ""
                api.Clear()
                return frag
            import pytesseract

            doc = pytesseract.image_to_pdf_or_hocr(
                img, lang=self.lang, config=f"--psm {self.psm} --dpi {self.dpi}", extension="hocr"
            ).decode("utf-8")
            m = re.search(r"<body>(.*)</body>", doc, re.S)
            return m.group(1) if m else ""

    def version(self) -> str:
        """The Tesseract version string."""
        try:
            import tesserocr

            if self.engine == "tesserocr":
                return tesserocr.tesseract_version().split()[1]
        except (ImportError, IndexError):
            pass
        return "5"

    def close(self) -> None:
        """Free libtesseract's memory."""
        self._ocr.close()


# --- the page flow --------------------------------------------------------------------------
@dataclass
class PageResult:
    """A read page: text, words and hOCR in the original page's coordinates, the read image, ``meta``."""

    text: str
    words: list[PageWord]
    hocr: str
    confidence: float
    size: tuple[int, int]
    image: Image.Image
    original: Image.Image
    meta: dict[str, Any] = field(default_factory=dict)


_ENHANCERS: dict[tuple, Any] = {}
_READERS: dict[tuple, PageReader] = {}
_SHARED_LOCK = threading.Lock()


def _enhancer(upscaler: str | None, device: Any, dtype: Any, progress: bool | None, max_pixels: int | None) -> Any:
    from .enhance import Enhancer

    key = (upscaler, str(device), str(dtype), progress, max_pixels)
    with _SHARED_LOCK:
        if key not in _ENHANCERS:
            if len(_ENHANCERS) >= 2:
                _ENHANCERS.pop(next(iter(_ENHANCERS)))
            _ENHANCERS[key] = Enhancer("ocr", upscaler, device=device, dtype=dtype, progress=progress,
                                       max_pixels=max_pixels)
        return _ENHANCERS[key]


def _reader(lang: str, psm: int, dpi: int) -> PageReader:
    key = (lang, psm, dpi)
    with _SHARED_LOCK:
        if key not in _READERS:
            _READERS[key] = PageReader(lang, psm, dpi)
        return _READERS[key]


def read_page(
    page: ImageLike,
    *,
    upscaler: str | None = None,
    scale: float | None = None,
    lang: str = "eng",
    psm: int = PAGE_PSM,
    dpi: int = READ_DPI,
    max_body_ratio: float = 2.0,
    skip_x_height: float = 12.0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_output_pixels: int | None = DEFAULT_MAX_PIXELS,
    enhancer: Any = None,
    reader: PageReader | None = None,
    device: Any = None,
    dtype: Any = None,
    progress: bool | None = None,
    **overrides: Any,
) -> PageResult:
    """Read a whole page: measure its text, enhance it through the tiler, Tesseract segments and reads it.

    ``page``: anything :func:`preproc.load_image` takes. ``upscaler``: backend name (None:
    the OCR auto rule, text-sr). ``scale``: force a scale (``1``: read as it is).
    ``psm``/``lang``/``dpi``: Tesseract's page segmentation mode, language(s) and the
    resolution it is told for the image it reads. ``max_body_ratio``, ``skip_x_height``:
    see the module's scale rule. ``max_pixels``: input limit; ``max_output_pixels``: limit on the enhanced
    page (:class:`~preproc.errors.ImageTooLargeError` names both sizes and the way out).
    ``overrides``: :class:`~preproc.Preset` fields (``tile``, ``overlap``, ``max_scale``...).
    ``enhancer``/``reader``: an :class:`~preproc.Enhancer` (task ``ocr``) and a
    :class:`PageReader` to reuse (otherwise shared ones are made on first use).

    Returns text, words and hOCR whose boxes are in the *original* page's pixels.
    """
    t0 = time.perf_counter()
    for what, v in (("psm", psm), ("dpi", dpi)):  # int("x") raised a ValueError after the enhancement
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise ConfigError(f"`{what}` has to be an integer but is {v!r}")
    name = str(page) if isinstance(page, (str, Path)) else type(page).__name__
    image = load_image(page, max_pixels=max_pixels)
    h, w = image.shape[:2]
    if enhancer is not None:
        preset = enhancer.preset.replace(**overrides) if overrides else enhancer.preset
    else:
        preset = get_preset("ocr", **overrides)
    t_m = time.perf_counter()
    size = measure_text_size(image) if scale is None else None
    decision = decide_page(size, preset, scale, max_body_ratio=max_body_ratio, skip_x_height=skip_x_height)
    meta: dict[str, Any] = {
        "input_size": [w, h],
        "gate": decision.reason,
        "gate_measured": decision.measured,
        "skipped": decision.skip,
        "scale": round(decision.scale, 4),
        "measure_seconds": round(time.perf_counter() - t_m, 3),
    }
    original = Image.fromarray(np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8), "RGB")
    if decision.skip:
        read_img = original.convert("L")
        meta.update(upscaler=None)
    else:
        oh, ow = max(1, round(h * decision.scale)), max(1, round(w * decision.scale))
        if max_output_pixels is not None and oh * ow > max_output_pixels:
            raise ImageTooLargeError(
                f"page {name}: {w}x{h} at scale {decision.scale:.2f} would be {ow}x{oh} = {ow * oh:,} pixels, "
                f"over the output limit of {max_output_pixels:,}; pass a smaller scale (or max_scale), split the "
                "page, or raise max_output_pixels"
            )
        enh = enhancer if enhancer is not None else _enhancer(upscaler, device, dtype, progress, max_pixels)
        if overrides:
            res = enh.enhance(image, scale=decision.scale, progress=progress, **overrides)
        else:
            res = enh.enhance(image, scale=decision.scale, progress=progress)
        read_img = res.image
        keep = ("upscaler", "upscaler_reason", "model", "device", "dtype", "tiles", "tile_grid", "tile",
                "overlap", "upscaler_seconds", "output_size")
        meta.update({k: res.meta[k] for k in keep if k in res.meta})
    rd = reader if reader is not None else _reader(lang, int(psm), int(dpi))
    t_r = time.perf_counter()
    frag = rd.hocr(read_img)
    meta["ocr_seconds"] = round(time.perf_counter() - t_r, 3)
    rw, rh = read_img.size
    sx, sy = rw / w, rh / h
    mapped = map_hocr(frag, sx, sy, w, h, Path(name).name if isinstance(page, (str, Path)) else "")
    words, text = hocr_words(mapped)
    doc = HOCR_HEADER.format(title=html.escape(Path(name).name), version=rd.version()) + mapped + HOCR_FOOTER
    conf = float(np.mean([wd.confidence for wd in words])) if words else 0.0
    meta.update(read_size=[rw, rh], words=len(words), confidence=round(conf, 2), psm=rd.psm, lang=rd.lang,
                ocr_engine=rd.engine, seconds=round(time.perf_counter() - t0, 3))
    return PageResult(text, words, doc, conf, (w, h), read_img, original, meta)


# --- searchable PDF -------------------------------------------------------------------------
def _pdf_text(s: str) -> bytes:
    b = s.encode("cp1252", errors="replace")
    return b.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)").replace(b"\r", b"").replace(b"\n", b" ")


def write_searchable_pdf(
    path: str | Path,
    image: Image.Image,
    words: list[PageWord],
    dpi: float = 96.0,
) -> Path:
    """Write a one-page PDF: ``image`` (the original page) with ``words`` as invisible, selectable text.

    Dependency-free writer (PDF 1.4). The image is stored losslessly (Flate; grey when the
    page is grey). Each word is placed in its box (original page pixels, top-left origin)
    in Helvetica, text render mode 3 (invisible), its size the box height and its width
    fitted with horizontal scaling; the font's ``/Widths`` are all 500/1000 em so the fit is
    exact in every viewer. Text is WinAnsi (cp1252): characters outside it become ``?``.
    ``dpi``: the page's physical resolution (its size in points is pixels * 72 / dpi).
    Written atomically.
    """
    from .cache import atomic_target

    if dpi <= 0:
        raise ConfigError(f"`dpi` has to be > 0 but is {dpi}")
    arr = np.asarray(image.convert("RGB"))
    gray = bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())
    pix = arr[..., 0] if gray else arr
    ih, iw = pix.shape[:2]
    k = 72.0 / float(dpi)
    pw, ph = iw * k, ih * k
    ops = [f"q {pw:.4f} 0 0 {ph:.4f} 0 0 cm /Im0 Do Q".encode()]
    ops.append(b"BT 3 Tr")
    for wd in words:
        x0, y0, x1, y1 = wd.box
        if x1 <= x0 or y1 <= y0 or not wd.text:
            continue
        fs = max((y1 - y0) * k, 0.5)
        n = len(wd.text)
        tz = 100.0 * ((x1 - x0) * k) / (n * 0.5 * fs)
        # baseline at about a fifth of the box above its bottom edge
        bx, by = x0 * k, ph - y1 * k + 0.2 * fs
        ops.append(f"/F1 {fs:.3f} Tf {tz:.2f} Tz 1 0 0 1 {bx:.3f} {by:.3f} Tm (".encode() + _pdf_text(wd.text) + b") Tj")
    ops.append(b"ET")
    content = zlib.compress(b"\n".join(ops), 6)
    img_data = zlib.compress(np.ascontiguousarray(pix).tobytes(), 6)
    widths = b"[" + b" ".join([b"500"] * 224) + b"]"
    objs: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {pw:.4f} {ph:.4f}] "
         "/Resources << /XObject << /Im0 5 0 R >> /Font << /F1 6 0 R >> >> /Contents 4 0 R >>").encode(),
        f"<< /Length {len(content)} /Filter /FlateDecode >>\nstream\n".encode() + content + b"\nendstream",
        (f"<< /Type /XObject /Subtype /Image /Width {iw} /Height {ih} /ColorSpace "
         f"/{'DeviceGray' if gray else 'DeviceRGB'} /BitsPerComponent 8 /Filter /FlateDecode "
         f"/Length {len(img_data)} >>\nstream\n").encode() + img_data + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding "
        b"/FirstChar 32 /LastChar 255 /Widths " + widths + b" >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    p = Path(path)
    with atomic_target(p) as tmp:
        tmp.write_bytes(bytes(out))
    return p

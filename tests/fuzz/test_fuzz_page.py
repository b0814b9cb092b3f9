"""Fuzz ``preproc.page.read_page`` (whole pages through Tesseract): a PageResult or a PreprocError."""

from __future__ import annotations

import numpy as np
import pytest
from fuzzkit import case, fuzz_settings
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import image_arrays, pil_images
from test_fuzz_enhance import SCALES, text_like

from preproc.errors import PreprocError

pytestmark = pytest.mark.filterwarnings("ignore")


def _tesseract() -> bool:
    try:
        from preproc.page import PageReader

        PageReader()
    except PreprocError:
        return False
    return True


@pytest.mark.slow
@fuzz_settings(15, long=80)
@given(page=st.one_of(text_like(max_h=40, max_w=120), image_arrays(max_side=30), pil_images(max_side=8)),
       scale=SCALES, psm=st.sampled_from([3, 6, 11]) | st.sampled_from([99, -1, "x", 3.5]),
       dpi=st.sampled_from([70, 300]) | st.sampled_from([0, "x"]))
@example(page=np.zeros((10, 10), np.uint8), scale=float("nan"), psm=3, dpi=300)  # ValueError before the fix
@example(page=np.zeros((10, 10), np.uint8), scale=None, psm="x", dpi=300)  # ValueError after the enhancement
def test_read_page_any_input(page, scale, psm, dpi):
    if not _tesseract():
        pytest.skip("Tesseract is not installed")
    from preproc.page import read_page

    with case("page/read_page", seconds=120) as c:
        c.result = read_page(page, upscaler="bicubic", scale=scale, psm=psm, dpi=dpi, max_pixels=20_000,
                             max_output_pixels=200_000)
    if c.result is not None:
        assert isinstance(c.result.text, str)


@fuzz_settings(30, long=200)
@given(img=st.one_of(pil_images(max_side=12), image_arrays(max_side=16), text_like(max_h=20, max_w=60)))
@example(img=__import__("PIL.Image", fromlist=["Image"]).new("L", (0, 0)))  # ValueError from PIL before the fix
def test_tesseract_reader_any_image(img):
    """The OCR adapter compare and the hooks use: an OcrResult or a PreprocError for any image."""
    if not _tesseract():
        pytest.skip("Tesseract is not installed")
    from preproc.recognize.ocr import TesseractOCR

    global _OCR
    if _OCR is None:
        _OCR = TesseractOCR()
    with case("recognize/tesseract", seconds=60) as c:
        c.result = _OCR.read(img)
    if c.result is not None:
        assert isinstance(c.result.text, str)


_OCR = None

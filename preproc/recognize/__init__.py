"""Recognizers: thin adapters that read an image and say how sure they are.

* :mod:`preproc.recognize.ocr`: Tesseract (pytesseract, or tesserocr in-process).
* :mod:`preproc.recognize.face`: MTCNN detection, dlib / facenet embedders (imported on use).
"""

from .ocr import OcrResult, TesseractOCR, Word, find_tessdata, ocr

__all__ = ["OcrResult", "TesseractOCR", "Word", "find_tessdata", "ocr"]

"""Recognizers: thin adapters that read an image and say how sure they are.

* :mod:`preproc.recognize.ocr`: Tesseract (pytesseract, or tesserocr in-process).
* :mod:`preproc.recognize.face`: MTCNN detection, dlib / facenet embedders (imported on use).
* :mod:`preproc.recognize.rapid`: RapidOCR (PP-OCR recognition), the second OCR engine.
* :mod:`preproc.recognize.tesseract_torch`: Tesseract's own LSTM line recognizer in PyTorch
  (read from the installed traineddata; a bit-exact reference and a differentiable module),
  with :mod:`preproc.recognize.leptonica_scale` for Tesseract's scaling of a line.
"""

from .ocr import OcrResult, TesseractOCR, Word, find_tessdata, ocr

__all__ = ["OcrResult", "TesseractOCR", "Word", "find_tessdata", "ocr"]

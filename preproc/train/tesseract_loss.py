"""A recognition loss through Tesseract itself: CTC of Tesseract's own LSTM reading the SR output.

The Tesseract proxies of rounds three to six (:mod:`.crnn`) were CRNNs fitted to
Tesseract's readings; they disagreed with Tesseract on a quarter to a half of the
characters of SR outputs. :class:`~preproc.recognize.tesseract_torch.TesseractLSTM` is
Tesseract's network itself, read from the installed traineddata, so its CTC loss is the
loss of the recognizer the user runs (up to its integer rounding).

What the network is shown follows what Tesseract does with a line image in line mode:
it crops the line's text box plus 4 px of padding (``kImagePadding``), scales the crop
to 36 px height and normalises its contrast (``TesseractLSTM.prepare``). Here the text
box of each SR output is taken from its clean target (rows and columns with ink), the
crops are scaled one by one and padded on the right to a common width; the network
treats each line as if it were alone (``TesseractLSTM.forward``'s ``widths``) and each
line's CTC uses its own number of frames. Tesseract clips pixels
beyond its black and white levels; here the clip (and that of the SR output to [0, 1])
passes its gradient straight through, or a background pixel that should turn to ink
would never learn it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..recognize.tesseract_torch import TesseractLSTM, load_tesseract_lstm

#: Tesseract's padding around a word or line box (``kImagePadding``), in image pixels.
PADDING = 4
#: A target pixel darker than this is ink.
INK = 0.5


#: What the loss asks of Tesseract's reading of the SR output (:class:`TesseractLoss`).
TARGETS = ("text", "target")


class TesseractLoss:
    """``loss(sr, hr, texts)``: how far Tesseract's LSTM reading of ``sr`` is from what it should be.

    ``sr`` and ``hr`` are ``(B, 1, H, W)`` grey in [0, 1] (dark text on white), ``hr``
    the clean target whose ink gives each line's text box. ``target``:

    * ``"text"``: CTC against the line's text, per character, averaged over the lines
      that Tesseract reads from the clean target with a CTC below ``readable`` per
      character (lines it cannot read even clean - cut glyphs at a patch's edge, fonts
      it does not know - would only teach the net to hallucinate); ``readable=None``
      keeps every line;
    * ``"target"``: Tesseract's output distribution on the clean target, frame by frame
      (the two views share their box, so their frames align): the cross-entropy
      ``-sum p_hr log p_sr`` per frame, averaged - a dense signal at every frame that asks
      the SR output to look to Tesseract as the clean line does.
    """

    def __init__(self, net: TesseractLSTM | None = None, lang: str = "eng", target: str = "text",
                 readable: float | None = None):
        if target not in TARGETS:
            raise ValueError(f"target has to be one of {TARGETS}, not {target!r}")
        self.net = net if net is not None else load_tesseract_lstm(lang=lang)
        self.target, self.readable = target, readable

    def to(self, device: torch.device) -> TesseractLoss:
        self.net.to(device)
        return self

    def views(self, sr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
        """The network inputs ``(B, 1, 36, W)`` (right-padded) and each line's own width."""
        net = self.net
        xs = []
        for i in range(sr.shape[0]):
            ink = hr[i, 0] < INK
            rows, cols = ink.any(1).nonzero(), ink.any(0).nonzero()
            if len(rows) == 0:
                y0, y1, x0, x1 = 0, sr.shape[2], 0, sr.shape[3]
            else:
                y0, y1 = int(rows[0]), int(rows[-1]) + 1
                x0, x1 = int(cols[0]), int(cols[-1]) + 1
            y0, x0 = max(0, y0 - PADDING), max(0, x0 - PADDING)
            y1, x1 = min(sr.shape[2], y1 + PADDING), min(sr.shape[3], x1 + PADDING)
            xs.append(net.prepare(sr[i:i + 1, :, y0:y1, x0:x1], straight_through=True))
        widths = [x.shape[-1] for x in xs]
        batch = torch.cat([F.pad(x, (0, max(widths) - x.shape[-1])) for x in xs])
        return batch, widths

    def __call__(self, sr: torch.Tensor, hr: torch.Tensor, texts: list[str]) -> torch.Tensor:
        sr, hr = sr.float(), hr.float()
        x, widths = self.views(sr + (sr.clamp(0, 1) - sr).detach(), hr)
        log_probs = self.net(x, widths).float()
        frames = torch.tensor([w // self.net.pool[0] for w in widths], dtype=torch.long)
        clean = None
        if self.target == "target" or self.readable is not None:
            with torch.no_grad():
                xh, wh = self.views(hr, hr)
                clean = self.net(xh, wh).float()
        if self.target == "target":
            t = torch.arange(log_probs.shape[0])[:, None]
            valid = (t < frames[None, :]).to(log_probs.dtype)                  # (T, B)
            ce = -(clean.exp() * log_probs).sum(-1)                            # (T, B)
            return ((ce * valid).sum(0) / frames.clamp_min(1)).mean()
        per_line = self._ctc(log_probs, frames, texts)
        if clean is None:
            return per_line.mean()
        keep = self._ctc(clean, frames, texts) < self.readable
        return per_line[keep].mean() if keep.any() else per_line.sum() * 0.0

    def _ctc(self, log_probs: torch.Tensor, frames: torch.Tensor, texts: list[str]) -> torch.Tensor:
        """CTC per line, per target character."""
        targets, lengths = self.net.encode(texts)
        loss = F.ctc_loss(log_probs, targets, frames, lengths, blank=self.net.null_char, reduction="none",
                          zero_infinity=True)
        return loss / lengths.clamp_min(1).to(loss.dtype)

"""Header-only decompression bombs: a few hundred bytes whose header claims a huge image.

Each format's header is written by hand (PNG, TIFF, GIF, BMP, JPEG, ICO with an embedded
PNG, WebP VP8X, PSD), so the file is tiny but announces up to 100,000 x 100,000 pixels.
"""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(w: int, h: int, color: int = 2) -> bytes:
    """A PNG whose IHDR says ``w`` x ``h`` (8-bit, colour type ``color``) with one tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def tiff(w: int, h: int) -> bytes:
    """A little-endian baseline TIFF (8-bit grey, one uncompressed strip of 8 bytes)."""
    n = 9
    data_at = 8 + 2 + 12 * n + 4
    entries = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 1), (262, 3, 1), (273, 4, data_at), (277, 3, 1),
               (278, 4, h), (279, 4, 8)]
    ifd = struct.pack("<H", n)
    for tag, typ, val in entries:
        ifd += struct.pack("<HHII", tag, typ, 1, val) if typ == 4 else struct.pack("<HHIHH", tag, typ, 1, val, 0)
    return b"II*\0" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\0" * 8


def gif(w: int, h: int) -> bytes:
    """A GIF89a whose screen and first frame are ``w`` x ``h`` (at most 65535 each)."""
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0, 0, 0) + b"," + struct.pack("<HHHHB", 0, 0, w, h, 0)
            + b"\x02\x02\x44\x01\x00;")


def bmp(w: int, h: int) -> bytes:
    """A 24-bit BMP with a BITMAPINFOHEADER of ``w`` x ``h`` and 16 bytes of pixels."""
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + 16, 0, 0, 54) + info + b"\0" * 16


def jpeg(w: int, h: int) -> bytes:
    """A baseline JPEG whose SOF0 says ``w`` x ``h``, cut right after the scan header."""
    b = io.BytesIO()
    Image.new("L", (8, 8)).save(b, "JPEG")
    d = bytearray(b.getvalue())
    sof = d.find(b"\xff\xc0")
    struct.pack_into(">HH", d, sof + 5, h, w)
    sos = d.find(b"\xff\xda")
    return bytes(d[: sos + 2 + struct.unpack(">H", d[sos + 2 : sos + 4])[0] + 4])


def ico_png(w: int, h: int) -> bytes:
    """An ICO whose single entry is a PNG claiming ``w`` x ``h``."""
    p = png(w, h, 6)
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 0, 0, 0, 0, 1, 32, len(p), 22) + p


def webp(w: int, h: int) -> bytes:
    """An extended WebP (VP8X) whose canvas is ``w`` x ``h`` (at most 16384 each), no image data."""
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    body = b"WEBP" + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def psd(w: int, h: int) -> bytes:
    """A Photoshop header of ``w`` x ``h``, 3 channels, 8 bits, then nothing."""
    return b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, h, w, 8, 3) + struct.pack(">I", 0) * 3 + struct.pack(">H", 0) + b"\0" * 32


#: name (with extension) -> bytes: over PIL's own bomb limit (2 x 89 M pixels)
HUGE = {
    "bomb.png": png(100_000, 100_000),
    "bomb.tif": tiff(100_000, 100_000),
    "bomb.gif": gif(65_535, 65_535),
    "bomb.bmp": bmp(100_000, 100_000),
    "bomb.jpg": jpeg(65_500, 65_500),
    "bomb-ico.ico": ico_png(100_000, 100_000),
    "bomb.webp": webp(16_384, 16_384),
    "bomb.psd": psd(30_000, 30_000),
}
#: between preproc's default limit (100 M pixels) and PIL's: only our check stands in the way
OVER_OUR_LIMIT = {
    "big.png": png(11_000, 11_000),
    "big.tif": tiff(11_000, 11_000),
    "big.jpg": jpeg(11_000, 11_000),
    "big.gif": gif(11_000, 11_000),
    "big.bmp": bmp(11_000, 11_000),
}

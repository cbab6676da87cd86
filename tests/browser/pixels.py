"""What a screenshot holds, from its PNG bytes with the standard library alone (zlib): enough of
PNG for what Chromium writes (8-bit greyscale, RGB or RGBA, not interlaced)."""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (palettes are not written by Chromium)


class PngError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Picture:
    width: int
    height: int
    channels: int
    rows: tuple[bytes, ...]  # unfiltered scanlines

    def pixels(self) -> Counter[bytes]:
        """How many pixels have each colour."""
        n = self.channels
        return Counter(row[i : i + n] for row in self.rows for i in range(0, len(row), n))


@dataclass(frozen=True, slots=True)
class Content:
    colours: int  # distinct colours
    background_share: float  # of the pixels, those in the most common colour

    @property
    def foreground_share(self) -> float:
        return 1.0 - self.background_share


def decode(data: bytes) -> Picture:
    if not data.startswith(SIGNATURE):
        raise PngError("not a PNG: the signature is missing")
    offset, idat, header = len(SIGNATURE), [], None
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise PngError("no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in CHANNELS or interlace:
        raise PngError(f"unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}")
    channels = CHANNELS[colour]
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    if len(raw) != height * (stride + 1):
        raise PngError(f"{len(raw)} bytes of image data for {width}x{height}x{channels}")
    rows, previous = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, channels)
        rows.append(bytes(row))
        previous = row
    return Picture(width, height, channels, tuple(rows))


def _unfilter(kind: int, row: bytearray, prior: bytes, bpp: int) -> bytearray:
    if kind == 0:
        return row
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        up = prior[i]
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 2:
            row[i] = (row[i] + up) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (left + up) // 2) & 0xFF
        elif kind == 4:
            corner = prior[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + _paeth(left, up, corner)) & 0xFF
        else:
            raise PngError(f"unknown filter type {kind}")
    return row


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def content(data: bytes) -> Content:
    counts = decode(data).pixels()
    total = sum(counts.values())
    return Content(len(counts), counts.most_common(1)[0][1] / total if total else 1.0)

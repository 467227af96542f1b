"""Decompression bombs for the decode-limit tests and benchmarks/bench_bombs.py: small files whose picture
data really is there (a decoder that believes them decodes gigabytes), each in one of the forms the issue 18
probe found getting past Pillow's header check.

- ``damaged_png``: a 10240x10240 PNG (105 Mpx) whose tEXt chunk has a bad checksum (Pillow gives up on it,
  libpng only warns and decodes on); about 300 KB.
- ``radiance_hdr``: an 11000x10000 Radiance HDR (110 Mpx; Pillow does not know the format), run-length
  scanlines; about 7 MB.
- ``deflate_tiff``: a 10240x10240 RGB TIFF whose deflated strips all point at one block of zeros; about 100 KB.
"""

from __future__ import annotations

import struct
import zlib


def png_chunk(kind: bytes, data: bytes, good_crc: bool = True) -> bytes:
    crc = zlib.crc32(kind + data) ^ (0 if good_crc else 0xFFFF)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def damaged_png(width: int = 10240, height: int = 10240) -> bytes:
    """A black RGB PNG with a tEXt chunk whose checksum is wrong, before its (complete) image data.

    The image data is one block of rows deflated once after a full flush and repeated (a full flush resets
    the compressor, so each copy is the same valid deflate data): seconds of zlib saved per bomb."""
    rows = b"\0" * (1 + 3 * width) * 64  # filter byte + pixels, 64 rows
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = packer.compress(rows) + packer.flush(zlib.Z_FULL_FLUSH)
    adler, data = 1, []
    for y in range(0, height, 64):
        part = rows if y + 64 <= height else rows[: (height - y) * (1 + 3 * width)]
        adler = zlib.adler32(part, adler)
        if len(part) == len(rows):
            data.append(block)
        else:
            tail = zlib.compressobj(9, zlib.DEFLATED, -15)
            data.append(tail.compress(part) + tail.flush(zlib.Z_FULL_FLUSH))
    idat = b"\x78\xda" + b"".join(data) + b"\x03\x00" + struct.pack(">I", adler)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + png_chunk(b"tEXt", b"Comment\0made by the stageswap tests", good_crc=False)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def radiance_hdr(width: int = 11000, height: int = 10000) -> bytes:
    """A black Radiance HDR: each scanline new-style run-length encoded (4 components, runs of 127)."""
    runs, left = bytearray(), width
    while left:
        n = min(127, left)
        runs += bytes([128 + n, 0])
        left -= n
    scanline = bytes([2, 2, width >> 8, width & 0xFF]) + bytes(runs) * 4
    head = f"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y {height} +X {width}\n".encode()
    return head + scanline * height


def deflate_tiff(width: int = 10240, height: int = 10240, rows_per_strip: int = 64) -> bytes:
    """A black 8-bit RGB TIFF, deflate-compressed; every strip's offset points at the same compressed block."""
    strip = zlib.compress(b"\0" * (width * 3 * rows_per_strip), 9)
    strips = (height + rows_per_strip - 1) // rows_per_strip
    entries = 11
    ifd_at = 8
    bits_at = ifd_at + 2 + entries * 12 + 4
    offsets_at = bits_at + 6
    counts_at = offsets_at + 4 * strips
    data_at = counts_at + 4 * strips

    def entry(tag: int, kind: int, count: int, value: int) -> bytes:
        if kind == 3 and count == 1:
            return struct.pack("<HHIHH", tag, kind, count, value, 0)
        return struct.pack("<HHII", tag, kind, count, value)

    ifd = struct.pack("<H", entries) + b"".join(
        [
            entry(256, 4, 1, width),
            entry(257, 4, 1, height),
            entry(258, 3, 3, bits_at),  # BitsPerSample 8,8,8 (six bytes: at an offset)
            entry(259, 3, 1, 8),  # deflate
            entry(262, 3, 1, 2),  # RGB
            entry(273, 4, strips, offsets_at),
            entry(277, 3, 1, 3),
            entry(278, 4, 1, rows_per_strip),
            entry(279, 4, strips, counts_at),
            entry(284, 3, 1, 1),  # contiguous samples
            entry(339, 3, 1, 1),  # unsigned integers
        ]
    )
    ifd += struct.pack("<I", 0)
    return (
        b"II*\0"
        + struct.pack("<I", ifd_at)
        + ifd
        + struct.pack("<HHH", 8, 8, 8)
        + struct.pack(f"<{strips}I", *([data_at] * strips))
        + struct.pack(f"<{strips}I", *([len(strip)] * strips))
        + strip
    )


BOMBS = {"damaged PNG": damaged_png, "Radiance HDR": radiance_hdr, "deflate TIFF": deflate_tiff}
"""Each bomb by name, made at its default (>= 100 Mpx) size."""

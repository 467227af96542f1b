"""The format, size and decoding memory of an image file, read from its own structure before any decoder.

A few kilobytes of PNG, TIFF or Radiance HDR can declare gigapixels, and a decoder allocates what the header
declares before it finds out whether the pixel data is there (a decompression bomb). Pillow's header check
gives up on a damaged file (a PNG chunk with a bad checksum) or a format it does not know (HDR), and
OpenCV's decoders, which do not give up, then decode it whole. So this module parses the structure of every
format OpenCV 5 decodes, the way its decoder reads it, without checksums and without giving up on a damaged
part the size does not depend on: PNG, JPEG, WebP, AVIF, GIF, BMP, TIFF (every page), JPEG 2000 (JP2 and
raw codestream), PBM/PGM/PPM/PAM, PFM, Radiance HDR and Sun raster. Where a file could be read two ways
(a TIFF's pages, a JP2's header box and its codestream, an HDR header a line reader may cut) the larger
size counts. Anything else is refused with the formats known: nothing unidentified reaches a decoder.

Each parser also estimates the memory its decoder holds (``decode_bytes``): the picture it gives back plus
its working buffers — a progressive JPEG's coefficients, OpenJPEG's 32-bit components, HDR and PFM's float
picture, a TIFF strip or tile (which may be declared far larger than the picture). ``check_size`` refuses
a picture over a pixel limit or over the memory that many 8-bit RGBA pixels take.

Only ``struct`` and ``re`` on the bytes given; every loop is bounded by the file's length.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from engines.errors import InputError

MEMORY_BYTES_PER_PIXEL = 4
"""The decoding memory a pixel limit allows, per pixel (8-bit RGBA): 100 Mpx may take 400 MB to decode."""
MAX_PAGES = 256
"""A TIFF of more pages (or a GIF of more frames) than this is refused: each is a size to check."""
OUTPUT_BYTES_PER_PIXEL = 3
"""What the decoded picture takes (8-bit BGR, as photos are decoded)."""


@dataclass(frozen=True)
class ImageHeader:
    format: str
    width: int
    height: int
    """The largest extent of any picture in the file (a TIFF's pages, a GIF's frames, a JP2's codestream)."""
    decode_bytes: int
    """The memory a decoder holds to decode it: the picture it gives back and its working buffers."""

    @property
    def pixels(self) -> int:
        return self.width * self.height

    def describe(self) -> str:
        return f"a {self.format} of {self.width}x{self.height} ({self.pixels / 1e6:.1f} Mpx)"


class UnreadableImageError(InputError):
    """Not an image in a format identified here, or one whose structure is broken where its size is."""


class ImageTooLargeError(InputError):
    """The image declares more pixels, or more memory to decode, than allowed."""


def read_header(data: bytes | bytearray | memoryview) -> ImageHeader:
    """The format and size of the image in ``data`` (UnreadableImageError when it is not one identified here)."""
    b = data if isinstance(data, bytes) else bytes(data)
    for name, magic, parse in _FORMATS:
        if magic(b):
            try:
                header = parse(b)
            except (struct.error, IndexError, ValueError, OverflowError) as exc:
                raise UnreadableImageError(f"a damaged {name} file: its header ends early or is garbled") from exc
            if header.width <= 0 or header.height <= 0:
                raise UnreadableImageError(f"a {name} file without a size ({header.width}x{header.height})")
            return header
    names = ", ".join(name for name, _, _ in _FORMATS)
    raise UnreadableImageError(f"not an image in a format stageswap reads ({names})")


def check_size(header: ImageHeader, max_pixels: int, label: str) -> None:
    """Refuse (ImageTooLargeError) a picture over ``max_pixels``, or one whose decoding takes more memory
    than ``max_pixels`` 8-bit RGBA pixels (``MEMORY_BYTES_PER_PIXEL`` each)."""
    if header.pixels > max_pixels:
        raise ImageTooLargeError(f"{label} is {header.describe()}, over the {max_pixels / 1e6:g} Mpx limit")
    budget = max_pixels * MEMORY_BYTES_PER_PIXEL
    if header.decode_bytes > budget:
        raise ImageTooLargeError(
            f"{label} is {header.describe()}, which takes {header.decode_bytes / 1e6:.0f} MB to decode: over the "
            f"{budget / 1e6:.0f} MB the {max_pixels / 1e6:g} Mpx limit allows"
        )


# -- the formats -------------------------------------------------------------------------------------------


def _u16(b: bytes, at: int, order: str = ">") -> int:
    return int(struct.unpack_from(order + "H", b, at)[0])


def _u32(b: bytes, at: int, order: str = ">") -> int:
    return int(struct.unpack_from(order + "I", b, at)[0])


def _png(b: bytes) -> ImageHeader:
    # IHDR must be the first chunk (PNG spec 5.6) and libpng takes the size from it alone; checksums are
    # not checked (libpng only warns about a bad one on an ancillary chunk, and decodes on).
    if b[12:16] != b"IHDR":
        raise UnreadableImageError("a damaged PNG file: it does not start with its IHDR chunk")
    width, height = _u32(b, 16), _u32(b, 20)
    # A still picture is decoded straight into the picture given back; an animated one (APNG) through an
    # RGBA canvas and a frame. Chunks are walked by their lengths to find out; a walk that breaks counts as
    # animated.
    animated = True
    at = 8
    while at + 8 <= len(b):
        kind = b[at + 4 : at + 8]
        if kind == b"acTL":
            break
        if kind == b"IDAT":
            animated = False
            break
        at += 12 + _u32(b, at)
    per_pixel = OUTPUT_BYTES_PER_PIXEL + (8 if animated else 0)
    return ImageHeader("PNG", width, height, width * height * per_pixel)


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""Start-of-frame markers (baseline, extended, progressive, lossless; not DHT, JPG, DAC)."""
_PROGRESSIVE = frozenset({0xC2, 0xC6, 0xCA, 0xCE})


def _jpeg(b: bytes) -> ImageHeader:
    # Segment by segment from SOI to the first frame header, the one libjpeg decodes; lengths are followed,
    # so a thumbnail inside APP1 (EXIF) is never taken for the picture.
    at = 2
    while at + 4 <= len(b):
        if b[at] != 0xFF:
            raise UnreadableImageError("a damaged JPEG file: a segment does not start with a marker")
        marker = b[at + 1]
        if marker == 0xFF:  # a fill byte
            at += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no frame header before the data
            break
        if marker in _SOF:
            precision, height, width, components = b[at + 4], _u16(b, at + 5), _u16(b, at + 7), b[at + 9]
            sample = 2 if precision > 8 else 1
            per_pixel = OUTPUT_BYTES_PER_PIXEL * sample
            if marker in _PROGRESSIVE:  # every DCT coefficient of the picture is held until the last scan
                per_pixel += 2 * components
            return ImageHeader("JPEG", width, height, width * height * per_pixel)
        length = _u16(b, at + 2)
        if length < 2:
            raise UnreadableImageError("a damaged JPEG file: a segment shorter than its length field")
        at += 2 + length
    raise UnreadableImageError("a damaged JPEG file: no frame header before the picture data")


def _webp(b: bytes) -> ImageHeader:
    chunk = b[12:16]
    if chunk == b"VP8X":  # extended (animation, alpha, metadata): the canvas size
        width, height = 1 + int.from_bytes(b[24:27], "little"), 1 + int.from_bytes(b[27:30], "little")
    elif chunk == b"VP8L":  # lossless: 14-bit width and height, minus one, after its signature byte
        if b[20] != 0x2F:
            raise UnreadableImageError("a damaged WebP file: a lossless chunk without its signature")
        bits = int.from_bytes(b[21:25], "little")
        width, height = 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    elif chunk == b"VP8 ":  # lossy: a key frame's start code, then 14-bit width and height
        if b[23:26] != b"\x9d\x01\x2a":
            raise UnreadableImageError("a damaged WebP file: a lossy chunk without its start code")
        width, height = _u16(b, 26, "<") & 0x3FFF, _u16(b, 28, "<") & 0x3FFF
    else:
        raise UnreadableImageError(f"a WebP file whose first chunk is {chunk!r} (VP8, VP8L or VP8X expected)")
    return ImageHeader("WebP", width, height, width * height * (4 + OUTPUT_BYTES_PER_PIXEL))


def _boxes(b: bytes, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The ISO base media (or JP2) boxes from ``start`` to ``end``: (type, payload start, box end)."""
    found: list[tuple[bytes, int, int]] = []
    at = start
    while at + 8 <= end:
        size, kind, header = _u32(b, at), b[at + 4 : at + 8], 8
        if size == 1:  # a 64-bit size follows
            size, header = int(struct.unpack_from(">Q", b, at + 8)[0]), 16
        elif size == 0:  # to the end of its container
            size = end - at
        if size < header or at + size > end:
            raise UnreadableImageError(f"a damaged file: box {kind!r} runs past its container")
        found.append((kind, at + header, at + size))
        at += size
    return found


def _avif(b: bytes) -> ImageHeader:
    # Every image item carries a mandatory 'ispe' property (its size) in meta/iprp/ipco, and libavif
    # refuses an AV1 frame of another size; a sequence also has track headers. The largest counts.
    sizes: list[tuple[int, int]] = []
    containers = {b"meta": 4, b"iprp": 0, b"ipco": 0, b"moov": 0, b"trak": 0}  # meta is a full box
    todo = [(0, len(b))]
    while todo:
        start, end = todo.pop()
        for kind, payload, box_end in _boxes(b, start, end):
            if kind in containers:
                todo.append((payload + containers[kind], box_end))
            elif kind == b"ispe":
                sizes.append((_u32(b, payload + 4), _u32(b, payload + 8)))
            elif kind == b"tkhd":  # width and height in 16.16 fixed point, its last eight bytes
                sizes.append((_u32(b, box_end - 8) >> 16, _u32(b, box_end - 4) >> 16))
    if not sizes:
        raise UnreadableImageError("a damaged AVIF file: no picture size (ispe) in it")
    width, height = max(w for w, _ in sizes), max(h for _, h in sizes)
    # YUV planes at up to 16 bits a sample, then RGB(A) at up to 16 bits, then the picture.
    return ImageHeader("AVIF", width, height, width * height * (6 + 8 + OUTPUT_BYTES_PER_PIXEL))


def _gif(b: bytes) -> ImageHeader:
    # The logical screen and every frame's extent (a frame may reach past the screen), block by block.
    width, height = _u16(b, 6, "<"), _u16(b, 8, "<")
    at = 13 + (3 << ((b[10] & 7) + 1) if b[10] & 0x80 else 0)
    frames = 0
    while at < len(b) and b[at] != 0x3B:  # up to the trailer
        if b[at] == 0x21:  # an extension: its label, then sub-blocks
            at = _after_sub_blocks(b, at + 2)
        elif b[at] == 0x2C:  # an image descriptor, its colour table, the LZW code size, then sub-blocks
            left, top, w, h = struct.unpack_from("<HHHH", b, at + 1)
            width, height = max(width, left + w), max(height, top + h)
            flags = b[at + 9]
            at = _after_sub_blocks(b, at + 11 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0))
            frames += 1
            if frames > MAX_PAGES:
                raise UnreadableImageError(f"a GIF of more than {MAX_PAGES} frames")
        else:
            break  # anything else ends the decoder's reading too
    # Frame indices, the RGBA canvas, then the picture.
    return ImageHeader("GIF", width, height, width * height * (1 + 4 + OUTPUT_BYTES_PER_PIXEL))


def _after_sub_blocks(b: bytes, at: int) -> int:
    while at < len(b) and b[at] != 0:
        at += 1 + b[at]
    return at + 1


def _bmp(b: bytes) -> ImageHeader:
    if _u32(b, 14, "<") == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = _u16(b, 18, "<"), _u16(b, 20, "<")
    else:
        width, height = struct.unpack_from("<ii", b, 18)
        height = abs(height)  # negative: rows top-down
    return ImageHeader("BMP", int(width), int(height), int(width) * int(height) * OUTPUT_BYTES_PER_PIXEL)  # by rows


_TIFF_VALUE = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}
"""TIFF field types that hold a size: SHORT, LONG, LONG8 (BigTIFF)."""
_TIFF_TAGS = (256, 257, 258, 277, 278, 322, 323)
"""ImageWidth, ImageLength, BitsPerSample, SamplesPerPixel, RowsPerStrip, TileWidth, TileLength."""


def _tiff(b: bytes) -> ImageHeader:
    # Every page (IFD) counts, not only the first, which OpenCV decodes. OpenCV reads a page strip by strip
    # or tile by tile into one buffer at the file's own depth, sized as the strip or tile is *declared*
    # (a tile may be declared far larger than the picture): that buffer and the picture are the memory.
    order = "<" if b[:2] == b"II" else ">"
    big = _u16(b, 2, order) == 43
    offset_code, entry_size, count_code = ("Q", 20, "Q") if big else ("I", 12, "H")
    offset = int(struct.unpack_from(order + offset_code, b, 8 if big else 4)[0])
    seen: set[int] = set()
    width = height = buffer = 0
    while offset and offset not in seen:
        if len(seen) == MAX_PAGES:
            raise UnreadableImageError(f"a TIFF of more than {MAX_PAGES} pages")
        seen.add(offset)
        count = int(struct.unpack_from(order + count_code, b, offset)[0])
        first = offset + (8 if big else 2)
        tags = {}
        for i in range(min(count, 4096)):
            at = first + i * entry_size
            tag, kind = struct.unpack_from(order + "HH", b, at)
            if tag in _TIFF_TAGS and kind in _TIFF_VALUE:
                tags[tag] = _tiff_first_value(b, at, kind, order, big)
        page_w, page_h = tags.get(256, 0), tags.get(257, 0)
        if page_w <= 0 or page_h <= 0:
            raise UnreadableImageError("a damaged TIFF file: a page without its width and height")
        width, height = max(width, page_w), max(height, page_h)
        sample_bytes = max(1, tags.get(258, 8) // 8) * max(1, tags.get(277, 1))
        if 322 in tags or 323 in tags:
            block = max(1, tags.get(322, page_w)) * max(1, tags.get(323, page_h))
        else:
            block = page_w * max(1, min(tags.get(278, page_h), page_h))
        buffer = max(buffer, block * sample_bytes)
        offset = int(struct.unpack_from(order + offset_code, b, first + count * entry_size)[0])
    return ImageHeader("TIFF", width, height, width * height * OUTPUT_BYTES_PER_PIXEL + buffer)


def _tiff_first_value(b: bytes, at: int, kind: int, order: str, big: bool) -> int:
    """An IFD entry's first value: in the entry when the values fit there, else where its offset points."""
    code, size = _TIFF_VALUE[kind]
    count = int(struct.unpack_from(order + ("Q" if big else "I"), b, at + 4)[0])
    field = at + (12 if big else 8)
    if count * size > (8 if big else 4):
        field = int(struct.unpack_from(order + ("Q" if big else "I"), b, field)[0])
    return int(struct.unpack_from(order + code, b, field)[0])


def _j2k(b: bytes, at: int = 0) -> ImageHeader:
    # The SIZ segment right after SOC: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz. The
    # reference grid bounds the picture; OpenJPEG holds every component as 32-bit integers.
    if b[at : at + 4] != b"\xff\x4f\xff\x51":
        raise UnreadableImageError("a damaged JPEG 2000 codestream: no SIZ segment after its start")
    x, y, x0, y0 = struct.unpack_from(">IIII", b, at + 8)
    components = _u16(b, at + 40)
    if components > 4:
        raise UnreadableImageError(f"a JPEG 2000 picture of {components} components (a photo has at most 4)")
    width, height = x - x0, y - y0
    return ImageHeader("JPEG 2000", width, height, x * y * 4 * components + width * height * OUTPUT_BYTES_PER_PIXEL)


def _jp2(b: bytes) -> ImageHeader:
    # The header box's size and the codestream's own: the larger counts (OpenJPEG decodes the codestream).
    found: list[ImageHeader] = []
    for kind, payload, end in _boxes(b, 0, len(b)):
        if kind == b"jp2h":
            for inner, at, _ in _boxes(b, payload, end):
                if inner == b"ihdr":
                    height, width, components = _u32(b, at), _u32(b, at + 4), _u16(b, at + 8)
                    per_pixel = 4 * components + OUTPUT_BYTES_PER_PIXEL
                    found.append(ImageHeader("JPEG 2000", width, height, width * height * per_pixel))
        elif kind == b"jp2c":
            found.append(_j2k(b, payload))
    if not found:
        raise UnreadableImageError("a damaged JPEG 2000 file: neither a header box nor a codestream")
    width, height = max(h.width for h in found), max(h.height for h in found)
    return ImageHeader("JPEG 2000", width, height, max(h.decode_bytes for h in found))


_PNM_NUMBER = re.compile(rb"(?:\s|#[^\n]*\n)*(\d+)")
"""A header number, after whitespace and comments (as OpenCV's PxM reader skips them)."""


def _pnm(b: bytes) -> ImageHeader:
    if b[1:2] == b"7":  # PAM: keyword lines up to ENDHDR
        end = b.find(b"ENDHDR", 0, 4096)
        if end < 0:
            raise UnreadableImageError("a damaged PAM file: no ENDHDR in its header")
        fields = {k: int(v) for k, v in re.findall(rb"(WIDTH|HEIGHT|DEPTH|MAXVAL)\s+(\d+)", b[:end])}
        width, height, depth = fields.get(b"WIDTH", 0), fields.get(b"HEIGHT", 0), fields.get(b"DEPTH", 3)
        if depth > 4:
            raise UnreadableImageError(f"a PAM picture of depth {depth} (a photo has at most 4 channels)")
        return ImageHeader("PBM/PGM/PPM/PAM", width, height, width * height * OUTPUT_BYTES_PER_PIXEL)  # by rows
    numbers, at = [], 2
    for _ in range(2 if b[1:2] in (b"1", b"4") else 3):  # width height [maxval]
        match = _PNM_NUMBER.match(b, at)
        if match is None:
            raise UnreadableImageError("a damaged PBM/PGM/PPM file: its header does not give its size")
        numbers.append(int(match.group(1)))
        at = match.end()
    width, height = numbers[0], numbers[1]
    return ImageHeader("PBM/PGM/PPM/PAM", width, height, width * height * OUTPUT_BYTES_PER_PIXEL)  # row by row


def _pfm(b: bytes) -> ImageHeader:
    match = re.match(rb"P[Ff]\s+(\d+)\s+(\d+)\s", b[:256])
    if match is None:
        raise UnreadableImageError("a damaged PFM file: its header does not give its size")
    width, height = int(match.group(1)), int(match.group(2))
    return ImageHeader("PFM", width, height, width * height * (12 + OUTPUT_BYTES_PER_PIXEL))


_HDR_SIZE = re.compile(rb"[-+]\s*([XY])\s*(\d+)\s*[-+]\s*([XY])\s*(\d+)")
_HDR_HEADER_BYTES = 65536


def _hdr(b: bytes) -> ImageHeader:
    # Header lines up to an empty one, then the resolution line ("-Y 480 +X 640"). OpenCV reads the lines
    # in pieces of 127 bytes, so a long line can look like the empty one to it: every resolution-like line
    # up to the real one counts, the largest wins. It decodes to 32-bit float RGB, then converts.
    end = b.find(b"\n\n", 0, _HDR_HEADER_BYTES)
    if end < 0:
        raise UnreadableImageError(f"a damaged Radiance HDR file: no end to its header in {_HDR_HEADER_BYTES} bytes")
    line_end = b.find(b"\n", end + 2)
    head = b[: line_end if line_end >= 0 else end + 2 + 128]
    width = height = 0
    for first_axis, first, second_axis, second in _HDR_SIZE.findall(head):
        if first_axis == second_axis:
            continue
        w, h = (int(second), int(first)) if first_axis == b"Y" else (int(first), int(second))
        width, height = max(width, w), max(height, h)
    return ImageHeader("Radiance HDR", width, height, width * height * (12 + OUTPUT_BYTES_PER_PIXEL))


def _sun(b: bytes) -> ImageHeader:
    width, height = _u32(b, 4), _u32(b, 8)
    return ImageHeader("Sun raster", width, height, width * height * OUTPUT_BYTES_PER_PIXEL)  # row by row


def _is_avif(b: bytes) -> bool:
    if b[4:8] != b"ftyp":
        return False
    brands = b[8:12] + b[16 : min(_u32(b, 0), 256)]
    return any(brands[i : i + 4] in (b"avif", b"avis") for i in range(0, len(brands) - 3, 4))


def _is_pnm(b: bytes) -> bool:
    return b[:1] == b"P" and b[1:2] in (b"1", b"2", b"3", b"4", b"5", b"6", b"7") and b[2:3].isspace()


_FORMATS: tuple[tuple[str, Callable[[bytes], bool], Callable[[bytes], ImageHeader]], ...] = (
    ("PNG", lambda b: b.startswith(b"\x89PNG\r\n\x1a\n"), _png),
    ("JPEG", lambda b: b.startswith(b"\xff\xd8\xff"), _jpeg),
    ("WebP", lambda b: b[:4] == b"RIFF" and b[8:12] == b"WEBP", _webp),
    ("AVIF", _is_avif, _avif),
    ("GIF", lambda b: b[:6] in (b"GIF87a", b"GIF89a"), _gif),
    ("BMP", lambda b: b[:2] == b"BM", _bmp),
    ("TIFF", lambda b: b[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"), _tiff),
    ("JPEG 2000", lambda b: b.startswith(b"\0\0\0\x0cjP  \r\n\x87\n"), _jp2),
    ("JPEG 2000 codestream", lambda b: b.startswith(b"\xff\x4f\xff\x51"), _j2k),
    ("PBM/PGM/PPM/PAM", _is_pnm, _pnm),
    ("PFM", lambda b: b[:2] in (b"PF", b"Pf") and b[2:3].isspace(), _pfm),
    ("Radiance HDR", lambda b: b.startswith((b"#?RADIANCE", b"#?RGBE")), _hdr),
    ("Sun raster", lambda b: b[:4] == b"\x59\xa6\x6a\x95", _sun),
)
"""Every format identified: its name, how its first bytes look, its parser (OpenCV's signatures)."""

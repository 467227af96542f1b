"""engines.image_header against OpenCV's own decoders: the size it reads is the size they decode, for every
format they take; damaged files are still measured; bombs are refused before any decoder is called
(issue 18: a bad-checksum PNG and a Radiance HDR got past Pillow's check and were decoded whole)."""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from engines.errors import InputError
from engines.identity import photos
from engines.identity.photos import MAX_PHOTO_PIXELS, load_photo
from engines.image_header import (
    ImageTooLargeError,
    UnreadableImageError,
    check_size,
    read_header,
)
from tests.bombs import BOMBS, png_chunk

REPO = Path(__file__).resolve().parents[2]

ENCODINGS: list[tuple[str, list[int], str]] = [
    (".png", [], "PNG"),
    (".jpg", [], "JPEG"),
    (".jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1], "JPEG"),
    (".webp", [], "WebP"),
    (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101], "WebP"),  # lossless
    (".avif", [], "AVIF"),
    (".gif", [], "GIF"),
    (".bmp", [], "BMP"),
    (".tiff", [], "TIFF"),
    (".jp2", [], "JPEG 2000"),
    (".ppm", [], "PBM/PGM/PPM/PAM"),
    (".pam", [], "PBM/PGM/PPM/PAM"),
    (".pfm", [], "PFM"),
    (".hdr", [], "Radiance HDR"),
    (".ras", [], "Sun raster"),
]


def _encode(ext: str, params: list[int], image: np.ndarray) -> bytes:
    source = image.astype(np.float32) / 255 if ext in (".hdr", ".pfm") else image
    ok, buf = cv2.imencode(ext, source, params)
    assert ok
    return buf.tobytes()


def _decoded_size(data: bytes, ext: str, tmp_path: Path) -> tuple[int, int]:
    path = tmp_path / f"x{ext}"
    path.write_bytes(data)
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image.shape[1], image.shape[0]


@pytest.mark.parametrize(("ext", "params", "name"), ENCODINGS, ids=[f"{e}{p}" for e, p, _ in ENCODINGS])
def test_the_size_read_is_the_size_opencv_decodes(ext: str, params: list[int], name: str, tmp_path: Path) -> None:
    image = np.random.default_rng(1).integers(0, 255, (61, 83, 3), dtype=np.uint8)
    data = _encode(ext, params, image)
    header = read_header(data)
    assert (header.format, header.width, header.height) == (name, 83, 61)
    assert (header.width, header.height) == _decoded_size(data, ext, tmp_path)
    assert header.decode_bytes >= 83 * 61 * 3  # at least the picture it gives back


def test_a_jpeg_is_measured_by_its_frame_not_its_exif_thumbnail(faces: Path) -> None:
    thumbnail = _encode(".jpg", [], np.zeros((4000, 30, 3), np.uint8))  # a tall "thumbnail" inside APP1
    photo = _encode(".jpg", [], np.zeros((40, 50, 3), np.uint8))
    app1 = b"Exif\0\0" + thumbnail[:3000]
    data = photo[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + photo[2:]
    assert (read_header(data).width, read_header(data).height) == (50, 40)
    real = read_header((faces / "obama.jpg").read_bytes())
    decoded = cv2.imread(str(faces / "obama.jpg"), cv2.IMREAD_IGNORE_ORIENTATION | cv2.IMREAD_COLOR)
    assert (real.width, real.height) == (decoded.shape[1], decoded.shape[0])


def test_a_png_with_damaged_ancillary_chunks_is_still_measured_and_decoded(faces: Path) -> None:
    """libpng decodes past a bad checksum on a text chunk: the size must be read there too (the bomb's
    way past Pillow), and such a photo within the limits is still a photo."""
    face = cv2.imread(str(faces / "obama.jpg"))
    png = _encode(".png", [], face)
    damaged = png[:33] + png_chunk(b"tEXt", b"Comment\0x", good_crc=False) + png[33:]
    header = read_header(damaged)
    assert (header.width, header.height) == (face.shape[1], face.shape[0])
    photo = load_photo(damaged, "damaged")
    assert photo.original_size == (face.shape[1], face.shape[0])


@pytest.mark.parametrize("name", list(BOMBS))
def test_bombs_are_measured_and_refused_before_any_decoder_is_called(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = BOMBS[name]()
    assert len(data) <= 10_000_000
    header = read_header(data)
    assert header.pixels >= 100_000_000
    calls: list[Any] = []

    def no_decoder(*args: Any) -> None:
        calls.append(args)
        raise AssertionError("a decoder was called on a bomb")

    monkeypatch.setattr(photos.cv2, "imdecode", no_decoder)
    monkeypatch.setattr(photos.cv2, "imread", no_decoder)
    with pytest.raises(ImageTooLargeError, match=r"over the 100 Mpx limit: scale it down"):
        load_photo(data, "bomb")
    assert not calls


def test_formats_that_decode_through_more_memory_get_a_smaller_pixel_limit() -> None:
    hdr = read_header(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 6000 +X 5000\n")
    assert hdr.pixels == 30_000_000 and hdr.decode_bytes == 30_000_000 * 15
    with pytest.raises(ImageTooLargeError, match="takes 450 MB to decode: over the 400 MB"):
        check_size(hdr, MAX_PHOTO_PIXELS, "photo 1")
    check_size(read_header(b"#?RADIANCE\n\n-Y 4000 +X 5000\n"), MAX_PHOTO_PIXELS, "photo 1")  # 20 Mpx: fine


def test_a_tiff_tile_declared_larger_than_its_picture_counts() -> None:
    """OpenCV sizes its strip/tile buffer as declared: a 64x64 TIFF with 16000x16000 tiles is a 1 GB bomb."""
    tiff = _tiff({256: 64, 257: 64, 258: 8, 277: 3, 322: 16000, 323: 16000})
    header = read_header(tiff)
    assert (header.width, header.height) == (64, 64) and header.decode_bytes >= 16000 * 16000 * 3
    with pytest.raises(ImageTooLargeError, match="to decode"):
        check_size(header, MAX_PHOTO_PIXELS, "photo 1")


def test_every_tiff_page_counts() -> None:
    small = {256: 100, 257: 100, 258: 8, 277: 3}
    big = {256: 20000, 257: 20000, 258: 8, 277: 3}
    header = read_header(_tiff(small, big))
    assert (header.width, header.height) == (20000, 20000)


def test_a_jpeg_2000_of_many_components_is_refused() -> None:
    siz = struct.pack(">HHIIIIIIIIH", 41, 0, 100, 100, 0, 0, 100, 100, 0, 0, 16384)
    with pytest.raises(UnreadableImageError, match="16384 components"):
        read_header(b"\xff\x4f\xff\x51" + siz + b"\0" * 64)


def test_an_hdr_resolution_line_a_line_reader_could_take_counts_too() -> None:
    """OpenCV reads HDR header lines 127 bytes at a time: a line of exactly 127 bytes looks to it like the
    empty line that ends the header, and the next line is then taken as the size."""
    trick = b"#?RADIANCE\n" + b"X" * 127 + b"\n-Y 20000 +X 20000\n" + b"\n-Y 10 +X 10\n"
    header = read_header(trick)
    assert (header.width, header.height) == (20000, 20000)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"this is not an image at all", "not an image in a format stageswap reads"),
        (b"\x89PNG\r\n\x1a\n" + png_chunk(b"tEXt", b"a"), "does not start with its IHDR chunk"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0", "damaged PNG file: its header ends early"),
        (b"\xff\xd8\xff\xe0\0\x10JFIF" + b"\0" * 10 + b"\xff\xda", "no frame header"),
        (b"II*\0\x08\0\0\0\x01\0" + struct.pack("<HHII", 259, 3, 1, 1) + b"\0" * 4, "without its width and height"),
        (b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n", "no end to its header"),
        (b"P6\n# only a comment\n", "does not give its size"),
        (b"RIFF\0\0\0\0WEBPABCD" + b"\0" * 20, "first chunk is b'ABCD'"),
        (b"GIF89a\0\0\0\0\0\0\0", "without a size"),
    ],
)
def test_what_cannot_be_identified_or_measured_is_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(UnreadableImageError, match=reason):
        read_header(data)
    with pytest.raises(InputError, match=f"cannot read photo 1: .*{reason}"):
        load_photo(data, "photo 1")


def test_an_hdr_photo_is_read_from_a_private_file_never_through_opencvs_temp_file(
    monkeypatch: pytest.MonkeyPatch, faces: Path
) -> None:
    """OpenCV's imdecode writes an HDR to /tmp with the umask's permissions (0644: anyone on the machine
    reads the face); the photo goes through a file in a folder only we may open instead."""
    face = cv2.imread(str(faces / "obama.jpg"))
    data = _encode(".hdr", [], face)
    seen: list[tuple[str, int, int]] = []
    real_imread = cv2.imread

    def imdecode(*args: Any) -> None:
        raise AssertionError("imdecode called on an HDR")

    def imread(path: str, flags: int) -> np.ndarray:
        folder = os.stat(Path(path).parent)
        seen.append((path, stat.S_IMODE(folder.st_mode), stat.S_IMODE(os.stat(path).st_mode)))
        return real_imread(path, flags)

    monkeypatch.setattr(photos.cv2, "imdecode", imdecode)
    monkeypatch.setattr(photos.cv2, "imread", imread)
    photo = load_photo(data, "hdr")
    assert photo.original_size == (face.shape[1], face.shape[0])
    assert len(seen) == 1 and seen[0][1:] == (0o700, 0o600)
    assert not Path(seen[0][0]).exists()  # removed with its folder


def _tiff(*pages: dict[int, int]) -> bytes:
    """A little-endian TIFF of IFDs only (no picture data): each page's tags as LONG values."""
    out = bytearray(b"II*\0" + struct.pack("<I", 8))
    for i, tags in enumerate(pages):
        at = len(out)
        entries = sorted(tags.items())
        next_at = at + 2 + 12 * len(entries) + 4 if i + 1 < len(pages) else 0
        out += struct.pack("<H", len(entries))
        for tag, value in entries:
            out += struct.pack("<HHII", tag, 4, 1, value)
        out += struct.pack("<I", next_at)
    return bytes(out)


def test_opencv_in_the_command_line_process_refuses_more_than_the_ceiling() -> None:
    """The backstop: the stageswap process loads OpenCV with engines' ceiling, so a picture over it is
    refused by OpenCV's own check whatever reads it (a fresh interpreter: OpenCV reads it once, at load)."""
    script = (
        "import streamer.__main__, struct, zlib, cv2, numpy as np\n"
        "from tests.bombs import png_chunk\n"
        "ihdr = struct.pack('>IIBBBBB', 20000, 20000, 8, 2, 0, 0, 0)\n"
        "png = b'\\x89PNG\\r\\n\\x1a\\n' + png_chunk(b'IHDR', ihdr) + png_chunk(b'IDAT', zlib.compress(b'0'))\n"
        "try:\n"
        "    cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)\n"
        "except cv2.error as exc:\n"
        "    print('refused' if 'CV_IO_MAX_IMAGE_PIXELS' in str(exc) else exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_IO_MAX_IMAGE_PIXELS"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO, timeout=120
    )
    assert done.stdout.strip() == "refused", (done.stdout, done.stderr[-2000:])

"""Enrollment photos in: file paths, uploaded bytes or arrays, decoded safely into BGR uint8 images.

Photos come from users and HTTP uploads, so nothing is decoded before its size is known: its format and
size are read from its own structure first (``engines.image_header``, which does not give up on a damaged
file and refuses a format it cannot identify), and a photo over ``MAX_PHOTO_PIXELS``, or over the memory
that many pixels may take to decode, is refused before it can take the memory of a decompression bomb.
Large photos within the limit are decoded at a reduced scale (OpenCV's ``IMREAD_REDUCED_COLOR_*``: JPEG
decodes straight to 1/2, 1/4 or 1/8 size) and scaled to at most ``WORK_MAX_SIDE`` pixels: an 8000x8000
photo is accepted and enrolled from a 2048x2048 copy.

Every format is decoded from memory except Radiance HDR, which OpenCV can only read from a file (its
``imdecode`` writes one into ``/tmp`` with the umask's permissions): it is written into a private temporary
folder (mode 0700) and read from there.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.errors import InputError
from engines.image_header import ImageHeader, ImageTooLargeError, UnreadableImageError, check_size, read_header

MAX_PHOTO_BYTES = 64 * 1024 * 1024
"""Largest photo file or upload accepted (64 MiB)."""
MAX_PHOTO_PIXELS = 100_000_000
"""Largest photo accepted, in pixels (100 Mpx, e.g. 10000x10000); larger ones are refused unread."""
WORK_MAX_SIDE = 2048
"""Photos are scaled down to at most this many pixels on the long side before enrollment."""

PhotoSource = np.ndarray | bytes | bytearray | memoryview | str | os.PathLike[str]


@dataclass(frozen=True)
class Photo:
    image: np.ndarray
    """BGR uint8, at most ``WORK_MAX_SIDE`` on the long side."""
    sha256: str
    """Of the file or upload as given (of the array's bytes for arrays)."""
    label: str
    """How messages name it: the file name, or ``photo N``."""
    original_size: tuple[int, int]
    """(width, height) before any scaling."""
    scale: float
    """``image`` size / original size."""


def load_photo(source: PhotoSource, label: str) -> Photo:
    """Decode one photo; raises InputError saying what is wrong with it (``label`` names it)."""
    if isinstance(source, np.ndarray):
        return _from_array(source, label)
    if isinstance(source, bytes | bytearray | memoryview):
        return _from_bytes(bytes(source), label)
    path = Path(source)
    label = path.name or label
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"cannot read photo {path}: {exc.strerror or exc}") from exc
    if not path.is_file():
        raise InputError(f"photo {path} is not a file")
    if size > MAX_PHOTO_BYTES:
        raise InputError(f"photo {label} is {size / 2**20:.0f} MiB; the limit is {MAX_PHOTO_BYTES >> 20} MiB")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read photo {path}: {exc.strerror or exc}") from exc
    return _from_bytes(data, label)


def _from_bytes(data: bytes, label: str) -> Photo:
    if not data:
        raise InputError(f"{label} is empty")
    if len(data) > MAX_PHOTO_BYTES:
        raise InputError(f"{label} is {len(data) / 2**20:.0f} MiB; the limit is {MAX_PHOTO_BYTES >> 20} MiB")
    digest = hashlib.sha256(data).hexdigest()
    header = photo_header(data, label, MAX_PHOTO_PIXELS)
    width, height = header.width, header.height
    reduce = 1
    while reduce < 8 and max(width, height) / (reduce * 2) >= WORK_MAX_SIDE:
        reduce *= 2
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}.get(
        reduce, cv2.IMREAD_REDUCED_COLOR_8
    )
    image = _decode(data, header, flag)
    if image is None or image.size == 0:
        raise InputError(f"cannot decode {label}: {header.describe()} whose picture data is damaged")
    image = _limit_side(image)
    orig_w, orig_h = width, height
    if image.shape[0] > image.shape[1] and orig_w > orig_h or image.shape[1] > image.shape[0] and orig_h > orig_w:
        orig_w, orig_h = orig_h, orig_w  # EXIF orientation turned it
    return Photo(image, digest, label, (orig_w, orig_h), image.shape[1] / orig_w)


def photo_header(data: bytes, label: str, max_pixels: int) -> ImageHeader:
    """The photo's format and size from its structure: UnreadableImageError when it is not in a format
    identified there, ImageTooLargeError when it declares more than ``max_pixels`` or the memory they allow."""
    try:
        header = read_header(data)
    except UnreadableImageError as exc:
        raise UnreadableImageError(f"cannot read {label}: {exc}") from exc
    try:
        check_size(header, max_pixels, label)
    except ImageTooLargeError as exc:
        raise ImageTooLargeError(f"{exc}: scale it down (enrollment uses at most {WORK_MAX_SIDE} px)") from exc
    return header


def _decode(data: bytes, header: ImageHeader, flag: int) -> np.ndarray | None:
    if header.format != "Radiance HDR":
        return cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    with tempfile.TemporaryDirectory(prefix="stageswap-photo-") as folder:  # mode 0700: ours alone
        path = Path(folder) / "photo.hdr"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return cv2.imread(str(path), flag)


def _from_array(array: np.ndarray, label: str) -> Photo:
    a = np.asarray(array)
    if a.dtype != np.uint8:
        raise InputError(f"{label}: expected an 8-bit image, got {a.dtype}")
    if a.ndim == 2:
        a = cv2.cvtColor(a, cv2.COLOR_GRAY2BGR)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = cv2.cvtColor(a, cv2.COLOR_BGRA2BGR)
    elif a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"{label}: expected an H x W x 3 BGR image, got shape {a.shape}")
    h, w = a.shape[:2]
    if h * w > MAX_PHOTO_PIXELS:
        raise InputError(f"{label} is {w}x{h}; the limit is {MAX_PHOTO_PIXELS / 1e6:.0f} Mpx")
    if h < 16 or w < 16:
        raise InputError(f"{label} is {w}x{h}: too small to hold a face")
    a = np.ascontiguousarray(a)
    digest = hashlib.sha256(f"{w}x{h}:".encode() + a.tobytes()).hexdigest()
    image = _limit_side(a)
    return Photo(image, digest, label, (w, h), image.shape[1] / w)


def _limit_side(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    if max(h, w) <= WORK_MAX_SIDE:
        return image
    s = WORK_MAX_SIDE / max(h, w)
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


MONOCHROME_CHROMA = 4.0
"""A photo whose pixels' chroma (CIE a*b* distance from grey) stays under this at the 95th percentile is
black and white."""
TONED_HUE_SPREAD_DEG = 15.0
"""A photo whose coloured pixels all have about one hue (circular spread under this) is toned (sepia,
cyanotype, a tinted print): its colour is the print's, not the person's. Sepia filters give 3-11 degrees
(clipped whites widen it), the shared colour portraits 22-111."""
TONED_MAX_CHROMA = 40.0
"""... unless it is that colourful: a real colour photo of one hue everywhere (a face filling a frame under
orange light) is still colour."""


def photo_tone(image: np.ndarray) -> str:
    """``"colour"``, ``"monochrome"`` (black and white) or ``"toned"`` (one hue everywhere: sepia and the
    like) for a BGR uint8 image.

    A colour portrait has skin, lips, eyes, hair and background of several hues; a black-and-white one has
    no chroma at all (JPEG's chroma noise aside), and a toned print has chroma of one hue that only follows
    the lightness. Either way the photo says nothing about the person's colours."""
    small = image
    if max(image.shape[:2]) > 512:
        s = 512 / max(image.shape[:2])
        small = cv2.resize(image, (max(1, round(image.shape[1] * s)), max(1, round(image.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)  # fmt: skip
    lab = cv2.cvtColor(small.astype(np.float32) * (1.0 / 255.0), cv2.COLOR_BGR2LAB).reshape(-1, 3)
    a, b = lab[:, 1], lab[:, 2]
    chroma = np.hypot(a, b)
    if float(np.percentile(chroma, 95)) < MONOCHROME_CHROMA:
        return "monochrome"
    coloured = chroma > MONOCHROME_CHROMA
    if coloured.mean() < 0.05:
        return "monochrome"
    angle = np.arctan2(b[coloured], a[coloured])
    weight = chroma[coloured]
    # Circular spread of the hue, weighted by chroma: sqrt(-2 ln R), R the mean resultant length.
    resultant = np.hypot((weight * np.cos(angle)).sum(), (weight * np.sin(angle)).sum()) / weight.sum()
    spread_deg = float(np.degrees(np.sqrt(-2.0 * np.log(max(float(resultant), 1e-9)))))
    if spread_deg < TONED_HUE_SPREAD_DEG and float(np.percentile(chroma, 95)) < TONED_MAX_CHROMA:
        return "toned"
    return "colour"


def as_grey(photo: Photo) -> Photo:
    """The photo with its colours dropped (three equal channels): a toned print's tint is not the person's."""
    grey = cv2.cvtColor(cv2.cvtColor(photo.image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    grey.setflags(write=False)
    return Photo(grey, photo.sha256, photo.label, photo.original_size, photo.scale)

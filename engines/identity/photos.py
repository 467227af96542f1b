"""Enrollment photos in: file paths, uploaded bytes or arrays, decoded safely into BGR uint8 images.

Photos come from users and HTTP uploads, so nothing is decoded before its size is known: the header is
read first (Pillow, lazily: no pixel data) and an image over ``MAX_PHOTO_PIXELS`` is refused before it
can take the memory of a decompression bomb. Large photos within the limit are decoded at a reduced
scale (OpenCV's ``IMREAD_REDUCED_COLOR_*``: JPEG decodes straight to 1/2, 1/4 or 1/8 size) and scaled
to at most ``WORK_MAX_SIDE`` pixels: an 8000x8000 photo is accepted and enrolled from a 2048x2048 copy.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.errors import InputError

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
    width, height = _header_size(data, label)
    if width * height > MAX_PHOTO_PIXELS:
        raise InputError(
            f"{label} is {width}x{height} ({width * height / 1e6:.0f} Mpx); the limit is "
            f"{MAX_PHOTO_PIXELS / 1e6:.0f} Mpx: scale it down (enrollment uses at most {WORK_MAX_SIDE} px)"
        )
    reduce = 1
    while reduce < 8 and max(width, height) / (reduce * 2) >= WORK_MAX_SIDE:
        reduce *= 2
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4}.get(
        reduce, cv2.IMREAD_REDUCED_COLOR_8
    )
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flag)
    if image is None or image.size == 0:
        raise InputError(f"cannot decode {label}: not an image OpenCV can read (JPEG, PNG, WebP, BMP, TIFF)")
    if width == 0 and image.shape[0] * image.shape[1] * reduce * reduce > MAX_PHOTO_PIXELS:
        raise InputError(f"{label} is over the {MAX_PHOTO_PIXELS / 1e6:.0f} Mpx limit: scale it down")
    image = _limit_side(image)
    orig_w, orig_h = (width, height) if width > 0 else (image.shape[1], image.shape[0])
    if image.shape[0] > image.shape[1] and orig_w > orig_h or image.shape[1] > image.shape[0] and orig_h > orig_w:
        orig_w, orig_h = orig_h, orig_w  # EXIF orientation turned it
    return Photo(image, digest, label, (orig_w, orig_h), image.shape[1] / orig_w)


def _header_size(data: bytes, label: str) -> tuple[int, int]:
    """(width, height) from the image header without decoding pixels; (0, 0) if Pillow cannot tell."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"{label} is larger than {MAX_PHOTO_PIXELS / 1e6:.0f} Mpx (a decompression bomb?): scale it down"
        ) from exc
    except UnidentifiedImageError:
        return 0, 0  # OpenCV may still know the format; it decides below
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"cannot decode {label}: {exc}") from exc


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

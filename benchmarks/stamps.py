"""Frame-index stamps: a frame's number drawn as a block code in its top-left corner, and read back.

The latency benchmark sends a clip over WHIP with each frame's index stamped on it and reads the index
off every frame that comes back over WHEP, so it can pair the send and receive time of the same frame
through encoders, the network stack and the face pipeline, without trusting any timestamp the far end
keeps. The code has to survive what happens to a frame on that path:

- lossy compression (VP8 at aiortc's 250 kbit/s floor, H.264): every bit is two large cells, one light
  and one dark, whose *order* carries the bit (Manchester coding), so no absolute threshold is needed and
  blur or a brightness shift cannot flip it; a pair whose two cells are too alike makes the read fail;
- scaling (a receiver may get another size): the cell size is a fixed share of the frame height, so the
  grid is found again at any size with the same aspect ratio;
- false reads (a frame without a stamp, a garbled one): a CRC-8 over the index must match, so a bad read
  is ``None``, never a wrong number.

The grid is ``GRID`` x ``GRID`` cells (``BITS`` index bits + 8 CRC bits, two cells each) in the top-left
corner; at 720p it is 144 px square. The stamp is neutral grey-scale (chroma 128) so it reads from the luma
plane alone.
"""

from __future__ import annotations

import zlib
from typing import Final

import av
import numpy as np

from engines.errors import InputError

BITS: Final = 24
"""Index bits: indices wrap at 2**24 frames (6.5 days at 30 fps)."""
CRC_BITS: Final = 8
GRID: Final = 8
"""Cells per side: (BITS + CRC_BITS) * 2 = 64 = GRID * GRID."""
CELL_SHARE: Final = 1 / 40
"""Cell size as a share of the frame height (18 px at 720p, 27 px at 1080p)."""
MIN_CELL_PX: Final = 6
LIGHT: Final = 220
DARK: Final = 30
MIN_CONTRAST: Final = 40.0
"""Least luma difference between a bit's two cells for the read to count (the cells are 190 apart when drawn)."""
MAX_INDEX: Final = (1 << BITS) - 1


def cell_px(height: int) -> float:
    """The stamp's cell size in pixels for a frame ``height`` px high (fractional; drawn and read the same way)."""
    return max(float(MIN_CELL_PX), height * CELL_SHARE)


def _edges(height: int) -> np.ndarray:
    """Pixel edges of the GRID cells along one axis (GRID + 1 integers)."""
    return np.round(np.arange(GRID + 1) * cell_px(height)).astype(np.int64)


def _crc(index: int) -> int:
    return zlib.crc32(index.to_bytes(3, "big")) & 0xFF


def _cells(index: int) -> np.ndarray:
    """Cell values (GRID x GRID, True = light) for ``index``: each bit, MSB first, as (light, dark) for 1."""
    if not 0 <= index <= MAX_INDEX:
        raise InputError(f"stamp index must be between 0 and {MAX_INDEX}, got {index}")
    word = (index << CRC_BITS) | _crc(index)
    bits = [(word >> (BITS + CRC_BITS - 1 - i)) & 1 for i in range(BITS + CRC_BITS)]
    cells = np.empty(2 * len(bits), dtype=bool)
    cells[0::2] = np.array(bits, dtype=bool)
    cells[1::2] = ~cells[0::2]
    return cells.reshape(GRID, GRID)


def _check_size(height: int, width: int) -> None:
    side = int(_edges(height)[-1])
    if side > height or side > width:
        raise InputError(f"a {width}x{height} frame is too small for a {side} px frame stamp")


def stamp_luma(plane: np.ndarray, index: int) -> None:
    """Draw ``index`` into a 2-D uint8 luma (or grey) plane, in place."""
    height, width = plane.shape[:2]
    _check_size(height, width)
    edges = _edges(height)
    cells = _cells(index)
    for r in range(GRID):
        for c in range(GRID):
            plane[edges[r] : edges[r + 1], edges[c] : edges[c + 1]] = LIGHT if cells[r, c] else DARK


def stamp_i420(image: np.ndarray, index: int) -> None:
    """Draw ``index`` into an I420 (yuv420p) array as PyAV lays it out, ``(H * 3 // 2, W)``, in place.

    The chroma under the stamp is set to neutral so colour bleeding from the picture cannot tint it.
    """
    rows, width = image.shape
    height = rows * 2 // 3
    luma = image[:height]
    stamp_luma(luma, index)
    side = int(_edges(height)[-1])
    chroma_side = (side + 1) // 2
    # U then V, each (H/2, W/2) packed as H/4 rows of W: reshape to see them as planes.
    chroma = image[height:].reshape(2, height // 2, width // 2)
    chroma[:, :chroma_side, :chroma_side] = 128


def stamp_bgr(image: np.ndarray, index: int) -> None:
    """Draw ``index`` into a BGR uint8 image (H x W x 3), in place, as grey cells."""
    height, width = image.shape[:2]
    _check_size(height, width)
    edges = _edges(height)
    cells = _cells(index)
    # Full-range grey that lands on LIGHT / DARK luma after a BT.601 limited-range conversion.
    light = round((LIGHT - 16) * 255 / 219)
    dark = round((DARK - 16) * 255 / 219)
    for r in range(GRID):
        for c in range(GRID):
            image[edges[r] : edges[r + 1], edges[c] : edges[c + 1]] = light if cells[r, c] else dark


def read_luma(plane: np.ndarray) -> int | None:
    """The index stamped on a luma (or grey) plane, or None when there is no valid stamp."""
    height, width = plane.shape[:2]
    edges = _edges(height)
    if edges[-1] > height or edges[-1] > width:
        return None
    size = cell_px(height)
    inset = max(1, int(size * 0.25))  # read each cell's middle: its edges blur into the neighbours
    means = np.empty((GRID, GRID), dtype=np.float64)
    for r in range(GRID):
        for c in range(GRID):
            cell = plane[edges[r] + inset : edges[r + 1] - inset, edges[c] + inset : edges[c + 1] - inset]
            means[r, c] = float(cell.mean())
    flat = means.reshape(-1)
    first, second = flat[0::2], flat[1::2]
    if float(np.min(np.abs(first - second))) < MIN_CONTRAST:
        return None
    word = 0
    for bit in first > second:
        word = (word << 1) | int(bit)
    index, crc = word >> CRC_BITS, word & 0xFF
    return index if _crc(index) == crc else None


def read_bgr(image: np.ndarray) -> int | None:
    """The index stamped on a BGR uint8 image, or None."""
    b, g, r = (image[..., i].astype(np.float32) for i in range(3))
    luma = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    return read_luma(luma)


def read_frame(frame: av.VideoFrame) -> int | None:
    """The index stamped on a decoded PyAV frame (any pixel format; yuv420p reads the luma plane directly)."""
    if frame.format.name in ("yuv420p", "yuvj420p", "nv12", "yuv422p", "yuv444p"):
        plane = frame.planes[0]
        luma = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(frame.height, plane.line_size)
        return read_luma(luma[:, : frame.width])
    return read_luma(frame.to_ndarray(format="gray"))

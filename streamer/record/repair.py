"""Cut a recording that was interrupted mid-write back to its last whole fragment.

A crash, ``kill -9`` or power cut can stop the writer while it is half-way through a fragment. Everything
before that fragment plays, but the torn fragment at the end makes strict readers (PyAV raises on it)
fail there. ``trim_partial_tail`` walks the file's top-level structure — MP4/MOV boxes, or the children of
the MKV Segment (clusters) — and truncates it at the first element that runs past the end of the file
(or a ``moof`` left without its ``mdat``). A file written to the end is left alone.

Only the container's framing is read (sizes and ids), never the media: it is fast on any file size.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_EBML_ID = 0x1A45DFA3
_SEGMENT_ID = 0x18538067
_CLUSTER_ID = 0x1F43B675


@dataclass(frozen=True)
class TrimResult:
    path: Path
    size_before: int
    size_after: int

    @property
    def trimmed_bytes(self) -> int:
        return self.size_before - self.size_after


def whole_size(path: str | os.PathLike[str]) -> int:
    """Bytes of ``path`` up to the end of its last complete top-level element (the file size if whole)."""
    p = Path(path)
    size = p.stat().st_size
    with p.open("rb") as f:
        head = f.read(4)
        f.seek(0)
        if len(head) == 4 and int.from_bytes(head, "big") == _EBML_ID:
            return _matroska_whole(f, size)
        return _isobmff_whole(f, size)


def trim_partial_tail(path: str | os.PathLike[str]) -> TrimResult:
    """Truncate ``path`` to ``whole_size``; returns the sizes before and after."""
    p = Path(path)
    before = p.stat().st_size
    keep = whole_size(p)
    if keep < before:
        os.truncate(p, keep)
    return TrimResult(p, before, keep)


def _isobmff_whole(f: BinaryIO, size: int) -> int:
    """MP4/MOV: top-level boxes ``size(4) type(4) [largesize(8)]``; a ``moof`` counts only with its ``mdat``."""
    pos = 0
    good = 0
    while pos + 8 <= size:
        f.seek(pos)
        header = f.read(16)
        box_size, box_type = struct.unpack(">I4s", header[:8])
        header_len = 8
        if box_size == 1:
            if len(header) < 16:
                break
            box_size = struct.unpack(">Q", header[8:16])[0]
            header_len = 16
        elif box_size == 0:  # "to the end of the file": only a finished writer knows that is true
            box_size = size - pos
        if box_size < header_len or pos + box_size > size:
            break
        pos += box_size
        if box_type == b"moof":
            continue  # a fragment's header: whole only once its mdat is
        good = pos
    return good


def _read_vint(f: BinaryIO, keep_marker: bool) -> tuple[int, int, bool] | None:
    """An EBML variable-length integer: (value, length, all ones) or None at the end of the file."""
    first = f.read(1)
    if not first:
        return None
    b0 = first[0]
    length = 1
    mask = 0x80
    while length <= 8 and not b0 & mask:
        mask >>= 1
        length += 1
    if length > 8:
        return None
    rest = f.read(length - 1)
    if len(rest) != length - 1:
        return None
    value = b0 if keep_marker else b0 & (mask - 1)
    for b in rest:
        value = (value << 8) | b
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def _read_element(f: BinaryIO) -> tuple[int, int, int, bool] | None:
    """(id, header length, data size, size unknown) of the element at the current position."""
    start = f.tell()
    eid = _read_vint(f, keep_marker=True)
    if eid is None:
        return None
    esize = _read_vint(f, keep_marker=False)
    if esize is None:
        return None
    return eid[0], f.tell() - start, esize[0], esize[2]


def _matroska_whole(f: BinaryIO, size: int) -> int:
    """MKV: the EBML header, then the Segment's children (SeekHead, Info, Tracks, Tags, Clusters, Cues)."""
    header = _read_element(f)
    if header is None or header[0] != _EBML_ID:
        return 0
    pos = header[1] + header[2]
    if pos > size:
        return 0
    f.seek(pos)
    segment = _read_element(f)
    if segment is None or segment[0] != _SEGMENT_ID:
        return pos
    _, seg_header, seg_size, seg_unknown = segment
    data_start = pos + seg_header
    seg_end = size if seg_unknown else min(size, data_start + seg_size)
    good = data_start
    child = data_start
    while child < seg_end:
        f.seek(child)
        element = _read_element(f)
        if element is None:
            break
        eid, head_len, data_size, unknown = element
        if unknown:  # a live writer's open-ended cluster: its end is not known, keep up to its start
            break
        end = child + head_len + data_size
        if end > size:
            break
        child = end
        good = end
    return good


def count_video_frames(path: str | os.PathLike[str]) -> int:
    """Video frames a reader gets from ``path`` (packets demuxed, not decoded: fast), up to any damage."""
    import av

    frames = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return 0
            for packet in container.demux(video=0):
                frames += 1 if packet.size else 0
    except (av.FFmpegError, OSError):
        pass
    return frames

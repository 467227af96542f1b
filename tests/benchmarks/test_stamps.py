"""Frame-index stamps survive real VP8 / H.264 encodes of shared clips and scaling, and never misread."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from benchmarks import stamps
from engines.errors import InputError

FRAMES = 30


def _index(i: int) -> int:
    """Spread indices over the whole 24-bit range so every bit is exercised."""
    return (i * 7_919_861) % (stamps.MAX_INDEX + 1)


def _stamped_frames(clip: Path, width: int, height: int, n: int) -> list[av.VideoFrame]:
    out: list[av.VideoFrame] = []
    with av.open(str(clip)) as src:
        for i, frame in enumerate(src.decode(video=0)):
            if i >= n:
                break
            array = frame.reformat(width=width, height=height, format="yuv420p").to_ndarray()
            stamps.stamp_i420(array, _index(i))
            stamped = av.VideoFrame.from_ndarray(array, format="yuv420p")
            stamped.pts = i
            out.append(stamped)
    assert len(out) == n, f"{clip} has fewer than {n} frames"
    return out


def _encode_decode(frames: list[av.VideoFrame], codec: str, bitrate: int) -> list[av.VideoFrame]:
    """Encode like aiortc's live encoders do (real-time settings, a bitrate cap) and decode again."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream: Any = out.add_stream(codec, rate=30)
        stream.width, stream.height = frames[0].width, frames[0].height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bitrate
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "tune": "zerolatency"}
        else:
            stream.options = {"deadline": "realtime", "cpu-used": "8"}
        for frame in frames:
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    buf.seek(0)
    with av.open(buf, "r") as inp:
        return list(inp.decode(video=0))


VP8_720P = ("libvpx", 250_000, 1280, 720)
"""aiortc's VP8 floor at 720p: read as it is decoded and read again after scaling."""


@pytest.fixture(scope="module")
def vp8_720p(clips: Path) -> list[av.VideoFrame]:
    """s18's stamped frames through VP8 at 720p, encoded once for the two tests that read them."""
    codec, bitrate, width, height = VP8_720P
    return _encode_decode(_stamped_frames(clips / "s18.mp4", width, height, FRAMES), codec, bitrate)


def test_round_trip_exact_on_every_layout() -> None:
    rng = np.random.default_rng(1)
    for index in (0, 1, 2, 255, 256, 123_456, stamps.MAX_INDEX):
        image = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
        stamps.stamp_bgr(image, index)
        assert stamps.read_bgr(image) == index
        i420 = rng.integers(0, 256, (720 * 3 // 2, 1280), dtype=np.uint8)
        stamps.stamp_i420(i420, index)
        assert stamps.read_luma(i420[:720]) == index
        assert stamps.read_frame(av.VideoFrame.from_ndarray(i420, format="yuv420p")) == index


def test_stamp_touches_only_its_corner() -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (480, 854, 3), dtype=np.uint8)
    before = image.copy()
    stamps.stamp_bgr(image, 42)
    side = round(stamps.GRID * stamps.cell_px(480))
    assert side == 96
    changed = np.argwhere(np.any(image != before, axis=2))
    assert changed.max(axis=0).tolist() == [side - 1, side - 1]


@pytest.mark.parametrize(
    ("codec", "bitrate", "width", "height"),
    [
        ("libvpx", 250_000, 854, 480),  # aiortc's VP8 floor
        VP8_720P,
        ("libvpx", 500_000, 1920, 1080),  # aiortc's VP8 start rate
        ("libx264", 500_000, 1280, 720),  # aiortc's H.264 floor
        ("libx264", 500_000, 1920, 1080),
    ],
)
def test_survives_real_encodes(
    request: pytest.FixtureRequest, clips: Path, codec: str, bitrate: int, width: int, height: int
) -> None:
    if (codec, bitrate, width, height) == VP8_720P:
        decoded = request.getfixturevalue("vp8_720p")
    else:
        decoded = _encode_decode(_stamped_frames(clips / "s18.mp4", width, height, FRAMES), codec, bitrate)
    assert len(decoded) == FRAMES
    assert [stamps.read_frame(f) for f in decoded] == [_index(i) for i in range(FRAMES)]


def test_survives_scaling_after_decode(clips: Path, vp8_720p: list[av.VideoFrame]) -> None:
    for width, height in ((640, 360), (960, 540), (1920, 1080)):
        got = [stamps.read_frame(f.reformat(width=width, height=height)) for f in vp8_720p]
        assert got == [_index(i) for i in range(FRAMES)], f"scaled to {width}x{height}"
    # a square clip, read from BGR after the decoder
    decoded = _encode_decode(_stamped_frames(clips / "d3.mp4", 512, 512, FRAMES), "libvpx", 250_000)
    assert [stamps.read_bgr(f.to_ndarray(format="bgr24")) for f in decoded] == [_index(i) for i in range(FRAMES)]


def test_no_false_reads_on_unstamped_footage(clips: Path) -> None:
    reads = 0
    for name in ("s18.mp4", "d3.mp4", "short_hamilton_clip.mp4", "d13.mp4"):
        with av.open(str(clips / name)) as src:
            for i, frame in enumerate(src.decode(video=0)):
                if i >= 60:
                    break
                assert stamps.read_frame(frame) is None, f"{name} frame {i} read as a stamp"
                reads += 1
    assert reads == 240


def test_a_damaged_stamp_reads_as_none() -> None:
    image = np.full((720, 1280), 128, dtype=np.uint8)
    stamps.stamp_luma(image, 777)
    assert stamps.read_luma(image) == 777
    edges = np.round(np.arange(stamps.GRID + 1) * stamps.cell_px(720)).astype(int)
    # swap the two cells of the last bit (a CRC bit): the order flips, the CRC no longer matches
    r, c = stamps.GRID - 1, stamps.GRID - 2
    a = image[edges[r] : edges[r + 1], edges[c] : edges[c + 1]].copy()
    b = image[edges[r] : edges[r + 1], edges[c + 1] : edges[c + 2]].copy()
    image[edges[r] : edges[r + 1], edges[c] : edges[c + 1]] = b
    image[edges[r] : edges[r + 1], edges[c + 1] : edges[c + 2]] = a
    assert stamps.read_luma(image) is None
    # a washed-out stamp (no contrast between a bit's cells) is refused rather than guessed
    image = np.full((720, 1280), 128, dtype=np.uint8)
    stamps.stamp_luma(image, 777)
    image[: edges[1], : edges[2]] = 128
    assert stamps.read_luma(image) is None


def test_bad_input_is_refused_with_a_reason() -> None:
    with pytest.raises(InputError, match="between 0 and"):
        stamps.stamp_bgr(np.zeros((720, 1280, 3), np.uint8), -1)
    with pytest.raises(InputError, match="between 0 and"):
        stamps.stamp_bgr(np.zeros((720, 1280, 3), np.uint8), stamps.MAX_INDEX + 1)
    with pytest.raises(InputError, match="too small"):
        stamps.stamp_luma(np.zeros((40, 40), np.uint8), 1)
    assert stamps.read_luma(np.zeros((40, 40), np.uint8)) is None

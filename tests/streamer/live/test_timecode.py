"""The source's timecode: read from a file's timecode track, carried with each frame, used by recordings
(live, from an --input file) and kept by `stageswap process`; the arithmetic the NDI output relies on."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest

from benchmarks.stamps import read_frame, stamp_bgr
from streamer.__main__ import main
from streamer.config import InputSpec
from streamer.live.timecodes import FrameTimecode, container_timecode, from_ndi, from_seconds, parse
from tests.streamer.test_recording_api import poll, server, stream_recording, wait_frames

FPS = 25
START = "10:00:00:00"
CLIP_FRAMES = 4 * FPS


@pytest.fixture(scope="module")
def timecoded_clip(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s of a real clip at 25 fps in MOV with a tmcd track starting at 10:00:00:00, each frame's index stamped."""
    path = tmp_path_factory.mktemp("tc") / "take.mov"
    with av.open(str(clips / "d3.mp4")) as src:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(CLIP_FRAMES), src.decode(video=0), strict=False)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        stream.metadata["timecode"] = START
        for i in range(CLIP_FRAMES):
            image = frames[i % len(frames)].copy()
            stamp_bgr(image, i)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def test_timecode_arithmetic_drop_frame_rates_and_ndi_ticks() -> None:
    tc = parse("10:00:00:00", Fraction(25))
    assert tc is not None and tc.plus(24).text == "10:00:00:24" and tc.plus(25).text == "10:00:01:00"
    assert tc.plus(3).at_rate(Fraction(50)).text == "10:00:00:06"  # the same instant at another rate
    assert parse("23:59:59:24", Fraction(25)).plus(1).text == "00:00:00:00"  # type: ignore[union-attr]
    ntsc = Fraction(30000, 1001)
    df = parse("00:00:59;29", ntsc)
    assert df is not None and df.drop_frame and df.plus(1).text == "00:01:00;02"  # frames 00 and 01 dropped
    assert from_ndi(tc.ndi_ticks(), Fraction(25)) == tc
    assert from_ndi(df.plus(1).ndi_ticks(), ntsc) == df.plus(1)
    assert from_ndi(0x7FFFFFFFFFFFFFFF, Fraction(25)) is None  # NDI's "synthesize": no source timecode
    assert from_seconds(3600.5, Fraction(24)) == FrameTimecode("01:00:00:12", Fraction(24))
    for bad in ("10:00:00:25", "24:00:00:00", "10:00", None, 5):
        assert parse(bad, Fraction(25)) is None


def test_a_files_timecode_track_is_read(timecoded_clip: Path, tmp_path: Path) -> None:
    with av.open(str(timecoded_clip)) as c:
        assert container_timecode(c, c.streams.video[0], Fraction(FPS)) == FrameTimecode(START, Fraction(FPS))
    plain = tmp_path / "plain.mkv"
    with av.open(str(plain), "w") as c:
        s = c.add_stream("ffv1", rate=FPS)
        s.width, s.height, s.pix_fmt = 64, 64, "bgr0"
        for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="bgr24")):
            c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    with av.open(str(plain)) as c:
        assert container_timecode(c, c.streams.video[0], Fraction(FPS)) is None


def test_a_recording_of_a_timecoded_input_starts_at_the_source_timecode(timecoded_clip: Path, tmp_path: Path) -> None:
    async def scenario() -> dict:
        inputs = (InputSpec.parse(f"cam1={timecoded_clip}"),)
        async with server(tmp_path, inputs=inputs, encoder_nice=0) as (base, _app), aiohttp.ClientSession() as http:
            await wait_frames(http, base, "cam1", 10)
            async with http.post(f"{base}/api/streams/cam1/recording", json={"codec": "h264", "fps": FPS}) as r:
                assert r.status == 201, await r.text()
            await poll(  # some frames in the file (a fixed 1.5 s may hold none on a starved stream)
                lambda: stream_recording(http, base, "cam1"),
                lambda rec: rec["frames_recorded"] >= 10,
                60,
                "frames recorded",
            )
            async with http.delete(f"{base}/api/streams/cam1/recording") as r:
                assert r.status == 200, await r.text()
                return await r.json()

    summary = asyncio.run(scenario())
    path = tmp_path / "recordings" / summary["files"]["processed"]
    with av.open(str(path)) as c:
        written = c.streams.video[0].metadata.get("timecode")
        first_stamp = read_frame(next(c.decode(video=0)))
    assert first_stamp is not None
    expected = FrameTimecode(START, Fraction(FPS)).plus(first_stamp % CLIP_FRAMES).text
    assert summary["timecode_source"] == "source"
    assert summary["start_timecode"] == expected == written, (summary["start_timecode"], expected, written)


def test_process_keeps_the_inputs_timecode(timecoded_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mov"
    assert main(["process", "-i", str(timecoded_clip), "-o", str(out), "--no-progress", "--no-swap", "--no-sign"]) == 0
    with av.open(str(out)) as c:
        assert c.streams.video[0].metadata.get("timecode") == START

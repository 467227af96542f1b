"""--input sources: files at their own frame rate (looping or not), devices and RTSP, bad input refused."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from engines.errors import InputError
from streamer.config import InputSpec, ServeConfig
from streamer.live.ring import FrameMeta
from streamer.live.sources import SourceReader, probe
from streamer.live.streams import StreamRegistry
from streamer.live.worker import PassthroughProcessor


def _clip(path: Path, frames: int, fps: int, size: tuple[int, int] = (64, 48)) -> Path:
    """A tiny H.264 clip whose frame i is filled with the value 10 * i."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), 10 * i, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


class _Collect:
    def __init__(self) -> None:
        self.items: list[tuple[float, np.ndarray, FrameMeta]] = []

    def __call__(self, image: np.ndarray, meta: FrameMeta) -> None:
        self.items.append((time.monotonic(), image, meta))


def test_input_spec_parsing_and_its_errors(tmp_path: Path, clips: Path) -> None:
    spec = InputSpec.parse(f"cam1={clips / 'd3.mp4'}")
    assert (spec.name, spec.kind, spec.loop) == ("cam1", "file", True)
    assert InputSpec.parse("roof=rtsp://10.0.0.5:554/stream", loop=False).kind == "rtsp"
    for text, reason in [
        ("cam1", "expected NAME=SOURCE"),
        ("cam1=", "expected NAME=SOURCE"),
        (f"Cam 1={clips / 'd3.mp4'}", "invalid stream name"),
        (f"cam1={tmp_path / 'missing.mp4'}", "does not exist"),
        ("cam1=/dev/video99", "capture device /dev/video99 does not exist"),
    ]:
        with pytest.raises(InputError, match=reason):
            InputSpec.parse(text)
    with pytest.raises(InputError, match="unique"):
        ServeConfig(inputs=(spec, spec), max_streams=4)


def test_probe_refuses_a_file_that_is_not_video(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video")
    with pytest.raises(InputError, match="cannot open"):
        probe(InputSpec.parse(f"cam={bad}"))


def test_a_file_plays_at_its_own_frame_rate(clips: Path) -> None:
    got = _Collect()
    reader = SourceReader(InputSpec.parse(f"cam={clips / 'd3.mp4'}"), got)
    reader.start()
    # 2 s, and on a busy machine until 30 frames came (at most 30 s): the pace is judged on what came.
    started, deadline = time.monotonic(), time.monotonic() + 30
    while (time.monotonic() - started < 2.0 or len(got.items) < 30) and time.monotonic() < deadline:
        time.sleep(0.05)
    reader.stop()
    assert not reader.alive
    times = [t for t, _, _ in got.items]
    metas = [m for _, _, m in got.items]
    elapsed = times[-1] - times[0]
    assert (len(times) - 1) / elapsed <= 30 * 1.1  # never faster than the clip
    assert len(times) >= 30  # and it does play (2 s at 30 fps = 60; waited for above on a busy machine)
    gaps = np.diff([m.pts_s for m in metas])
    assert np.allclose(gaps, 1 / 30, atol=1e-3)  # media time follows the file's timestamps
    assert [m.index for m in metas] == list(range(len(metas)))
    assert got.items[0][1].shape == (512, 512, 3)


def test_a_short_file_loops_with_increasing_media_time(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "short.mp4", frames=6, fps=30)
    got = _Collect()
    reader = SourceReader(InputSpec.parse(f"cam={clip}"), got)
    reader.start()
    deadline = time.monotonic() + 30
    while reader.loops < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    reader.stop()
    assert reader.loops >= 3 and reader.error is None
    pts = [m.pts_s for _, _, m in got.items]
    assert np.all(np.diff(pts) > 0) and np.allclose(np.diff(pts), 1 / 30, atol=1e-3)
    values = [int(image[0, 0, 0]) for _, image, _ in got.items[:12]]
    assert values[:6] == sorted(set(values[:6]))  # the six frames in order...
    assert values[6:12] == values[:6]  # ...then the same six again


def test_a_file_without_loop_plays_every_frame_once_and_finishes(tmp_path: Path) -> None:
    clip = _clip(tmp_path / "once.mp4", frames=8, fps=25)
    got = _Collect()
    reader = SourceReader(InputSpec.parse(f"cam={clip}", loop=False), got)
    t0 = time.monotonic()
    reader.start()
    deadline = time.monotonic() + 30
    while not reader.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reader.finished and len(got.items) == 8
    assert time.monotonic() - t0 >= 7 / 25 * 0.9  # paced at 25 fps, not decoded as fast as possible
    reader.stop()


def test_an_unreachable_rtsp_camera_is_retried_without_taking_anything_down() -> None:
    got = _Collect()
    reader = SourceReader(InputSpec.parse("roof=rtsp://127.0.0.1:9/none"), got)
    reader.start()
    deadline = time.monotonic() + 30
    while reader.error is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert reader.error is not None and "roof" in reader.error and reader.alive
    t0 = time.monotonic()
    reader.stop()
    assert not reader.alive and time.monotonic() - t0 < 15  # not left hanging in a connect
    assert got.items == []


def test_an_input_stream_runs_through_the_worker(clips: Path, tmp_path: Path) -> None:
    spec = InputSpec.parse(f"cam={clips / 'd10.mp4'}")
    config = ServeConfig(data_dir=tmp_path, inputs=(spec,), max_streams=2)
    streams = StreamRegistry(config, PassthroughProcessor)
    stream = streams.create("cam", "input", spec)
    try:
        # 2 s, and on a busy machine until 30 frames were processed (at most 30 s).
        started, deadline = time.monotonic(), time.monotonic() + 30
        while time.monotonic() < deadline and (
            time.monotonic() - started < 2.0 or stream.stats.snapshot()["frames_processed"] < 30
        ):
            time.sleep(0.05)
        info = stream.to_dict()
    finally:
        streams.detach("cam")
        stream.close()
    assert info["kind"] == "input" and info["live"] and info["source"]["error"] is None
    assert info["stats"]["frames_processed"] >= 30 and info["stats"]["input_fps"] <= 33
    assert info["stats"]["width"] == 512 and info["stats"]["runtime"] == "passthrough"
    assert not stream.worker.alive and stream.source is not None and not stream.source.alive

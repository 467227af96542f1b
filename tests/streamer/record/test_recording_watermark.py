"""The watermark in recordings (issue 24): the source view is never marked, and a recording can leave the mark
out of its processed view while the stream's monitors keep it.

Real frames of a shared clip go through the real FaceProcessor (mark on, then a second processor with the mark
off), the stream's OutputFanout and RecordingSessions into H.264 files, which are decoded and compared frame by
frame, bit for bit."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from engines.compose.watermark import WatermarkConfig, Watermarker, format_id
from engines.errors import InputError
from engines.processor import FaceProcessor, ProcessorConfig
from engines.settings import ProcessSettings
from streamer.live.fanout import OutputFanout
from streamer.live.ring import FrameMeta
from streamer.record.recording import RecordingConfig, RecordingManager, RecordingRequest
from tests.face_helpers import clip_frames

FRAMES = 15
FPS = 25
SETTINGS = ProcessSettings(swap=False, relight=False)  # the mark is the processor's last stage either way


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [frame.to_ndarray(format="bgr24") for frame in c.decode(video=0)]


def record(
    folder: Path, models_dir: Path, frames: list[tuple[np.ndarray, float]], marked: bool, requests: dict[str, dict]
) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict[str, dict], int | None]:
    """Run ``frames`` through a processor (mark on or off) and one fan-out with a recording per request (keyed
    by a stream name), the way the live worker does; decoded frames per recording and view, their final JSON
    and the processor's watermark id."""
    processor = FaceProcessor.from_models(models_dir, ProcessorConfig(watermark=WatermarkConfig(enabled=marked)))
    wid = processor.watermark_id
    manager = RecordingManager(RecordingConfig(folder, min_free_bytes=0))
    fanout = OutputFanout("cam")
    sessions = {
        name: manager.start(
            name,
            RecordingRequest.from_json({"view": "both", **body}),
            settings=None,
            watermark_id=format_id(wid) if wid is not None else None,
        )
        for name, body in requests.items()
    }
    for session in sessions.values():
        fanout.add_sink(session)
    for index, (image, t_s) in enumerate(frames):
        slot = image.copy()  # the ring slot the worker hands on: reused after publish
        result = processor.process(slot, t_s, SETTINGS)
        fanout.publish(result.image, slot, FrameMeta(index, index / FPS), result)
        slot[:] = 0
    summaries = {name: manager.stop(name) for name in sessions}
    fanout.close()
    out = {name: {view: decoded(path) for view, path in s.files.items()} for name, s in sessions.items()}
    return out, summaries, wid


@pytest.fixture(scope="module")
def recordings(
    clips: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict[str, dict], int | None]:
    frames = clip_frames(clips / "s18.mp4", FRAMES)
    on, on_json, wid = record(
        tmp_path_factory.mktemp("on"), models_dir, frames, True, {"marked": {}, "unmarked": {"watermark": False}}
    )
    off, off_json, no_wid = record(tmp_path_factory.mktemp("off"), models_dir, frames, False, {"mark_off": {}})
    assert wid is not None and no_wid is None
    return {**on, **off}, {**on_json, **off_json}, wid


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) == FRAMES and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_source_view_recording_is_bit_identical_to_one_made_with_the_mark_off(recordings: tuple) -> None:
    files, _, wid = recordings
    assert same(files["marked"]["source"], files["mark_off"]["source"])
    assert same(files["unmarked"]["source"], files["mark_off"]["source"])
    assert Watermarker().read_clip(files["marked"]["source"]).id is None
    # ... while the processed view of the same recording does carry the mark (the comparison can fail)
    assert not same(files["marked"]["processed"], files["mark_off"]["processed"])
    assert Watermarker().read_clip(files["marked"]["processed"]).id == wid


def test_a_recording_can_leave_the_mark_out_while_the_stream_marks(recordings: tuple) -> None:
    files, summaries, wid = recordings
    # watermark false: the processed view as the processor made it before the mark, bit for bit
    assert same(files["unmarked"]["processed"], files["mark_off"]["processed"])
    assert Watermarker().read_clip(files["unmarked"]["processed"]).id is None
    assert (summaries["unmarked"]["watermark"], summaries["unmarked"]["watermark_id"]) == (False, None)
    assert (summaries["marked"]["watermark"], summaries["marked"]["watermark_id"]) == (True, format_id(wid))
    assert (summaries["mark_off"]["watermark"], summaries["mark_off"]["watermark_id"]) == (False, None)


def test_a_source_only_recording_names_no_watermark(tmp_path: Path) -> None:
    manager = RecordingManager(RecordingConfig(tmp_path, min_free_bytes=0))
    session = manager.start("cam", RecordingRequest.from_json({"view": "source"}), watermark_id="0badc0de")
    try:
        assert (session.snapshot()["watermark"], session.snapshot()["watermark_id"]) == (False, None)
    finally:
        manager.stop("cam")


@pytest.mark.parametrize("value", ["no", 0, 1, "false"])
def test_the_watermark_option_is_a_boolean(value: object) -> None:
    with pytest.raises(InputError, match="watermark must be true or false"):
        RecordingRequest.from_json({"watermark": value})
    assert RecordingRequest.from_json({"watermark": False}).watermark is False
    assert RecordingRequest.from_json({}).watermark is True

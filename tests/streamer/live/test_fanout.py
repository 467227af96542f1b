"""OutputFanout: encode once per (view, codec), newest frame to viewers, every frame to sinks."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from engines.processor import ProcessedFrame
from streamer.live.fanout import EncoderSettings, OutputFanout, VideoEncoder
from streamer.live.ring import FrameMeta
from streamer.live.webrtc import ViewerTrack
from streamer.record.media import VideoReader


@pytest.fixture(scope="module")
def frames(clips: Path) -> list[np.ndarray]:
    with VideoReader(clips / "d3.mp4") as reader:
        return [f.image for _, f in zip(range(40), reader.frames(), strict=False)]


def _decode_all(codec: str, packets: list[av.Packet]) -> list[np.ndarray]:
    dec = av.CodecContext.create("libvpx" if codec == "vp8" else "h264", "r")
    out = []
    for p in packets:
        out += [f.to_ndarray(format="bgr24") for f in dec.decode(p)]
    return out


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_encoder_output_decodes_to_the_frames_with_keyframes_on_request(codec: str, frames: list[np.ndarray]) -> None:
    enc = VideoEncoder(codec, EncoderSettings(bitrate=3_000_000))  # type: ignore[arg-type]
    packets: list[av.Packet] = []
    keys = []
    for i, image in enumerate(frames[:20]):
        got = enc.encode(image, pts=i * 3000, keyframe=i == 12)
        packets += got
        keys += [i for p in got if p.is_keyframe]
    assert keys == [0, 12]  # the first frame and the requested one, nothing else (no periodic GOP)
    decoded = _decode_all(codec, packets)
    assert len(decoded) == 20
    assert all(p.time_base == av.time_base or p.time_base.denominator == 90000 for p in packets)
    psnr = [cv2.PSNR(a, b) for a, b in zip(decoded, frames[:20], strict=True)]
    assert min(psnr) > 30, psnr
    # A decoder that starts at the requested keyframe (a viewer joining late) decodes from there.
    assert len(_decode_all(codec, packets[12:])) == 8


def test_encoder_handles_odd_sizes_and_size_changes(frames: list[np.ndarray]) -> None:
    enc = VideoEncoder("vp8", EncoderSettings())
    odd = np.ascontiguousarray(frames[0][:255, :257])
    p1 = enc.encode(odd, 0, False)
    p2 = enc.encode(frames[1], 3000, False)  # new size: a fresh encoder and a keyframe
    assert p1 and p1[0].is_keyframe and p2 and p2[0].is_keyframe
    assert _decode_all("vp8", p1)[0].shape == (254, 256, 3)
    with pytest.raises(ValueError, match="too small"):
        enc.encode(np.zeros((8, 8, 3), np.uint8), 6000, False)


class _Collect:
    def __init__(self) -> None:
        self.packets: list[tuple[av.Packet, bool]] = []

    def deliver(self, packet: av.Packet, keyframe: bool) -> None:
        self.packets.append((packet, keyframe))


def _result(image: np.ndarray) -> ProcessedFrame:
    return ProcessedFrame(image, (), {})


def _publish(fanout: OutputFanout, frames: list[np.ndarray], interval_s: float, start: int = 0) -> None:
    for i, image in enumerate(frames):
        meta = FrameMeta(start + i, (start + i) / 30)
        fanout.publish(image, image, meta, _result(image))
        time.sleep(interval_s)


def _publish_in_step(
    fanout: OutputFanout, frames: list[np.ndarray], done: Callable[[int], bool], start: int = 0
) -> float:
    """Publish ``frames`` one at a time, the next once ``done(i)`` holds for the last (at most 30 s each), so that
    a busy machine's encoder, which takes the newest frame when free, skips none; returns the longest
    ``publish`` call in seconds (it hands the frame on and never waits for an encoder or a viewer)."""
    longest_s = 0.0
    for i, image in enumerate(frames):
        meta = FrameMeta(start + i, (start + i) / 30)
        t0 = time.monotonic()
        fanout.publish(image, image, meta, _result(image))
        longest_s = max(longest_s, time.monotonic() - t0)
        deadline = time.monotonic() + 30
        while not done(i) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert done(i), f"frame {i} not through in 30 s: {fanout.encoder_stats()}"
    return longest_s


def test_one_encoder_serves_every_viewer_of_a_view_with_the_same_packets(frames: list[np.ndarray]) -> None:
    fanout = OutputFanout("cam")
    viewers = [_Collect() for _ in range(3)]
    for v in viewers:
        fanout.subscribe("processed", "vp8", v)
    try:
        _publish_in_step(fanout, frames[:15], lambda i: all(len(v.packets) > i for v in viewers))
        stats = fanout.encoder_stats()
        assert [(s["view"], s["codec"], s["viewers"]) for s in stats] == [("processed", "vp8", 3)]
        assert stats[0]["frames_encoded"] == 15  # once per frame, not once per viewer
        first = [p for p, _ in viewers[0].packets]
        assert len(first) == stats[0]["frames_encoded"]
        for v in viewers[1:]:
            assert [p for p, _ in v.packets] == first and all(
                a is b for (a, _), b in zip(v.packets, first, strict=True)
            )
        assert viewers[0].packets[0][1] is True  # viewers start on a keyframe
        assert fanout.viewers() == {"processed": 3, "source": 0}
    finally:
        fanout.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("encode-cam")]


def test_a_stalled_viewer_is_resynchronised_and_slows_nobody(frames: list[np.ndarray]) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        fanout = OutputFanout("cam")
        fast, stalled = ViewerTrack(loop, max_frames=3), ViewerTrack(loop, max_frames=3)
        fast.encoder = fanout.subscribe("processed", "vp8", fast)
        stalled.encoder = fanout.subscribe("processed", "vp8", stalled)
        received: list[av.Packet] = []

        async def consume() -> None:
            while True:
                received.append(await fast.recv())

        task = asyncio.ensure_future(consume())
        try:
            # Each frame once the fast viewer has read the one before (a busy machine's encoder would skip some,
            # and its event loop read late), while the stalled one reads nothing.
            longest_s = await asyncio.to_thread(_publish_in_step, fanout, frames[:30], lambda i: len(received) > i)
            encoded = fanout.encoder_stats()[0]["frames_encoded"]
            # The worker side never waited for anyone (a publish waiting on the stalled viewer would never return).
            assert longest_s < 2.0
            assert encoded == 30 and len(received) == 30  # the fast viewer got every encoded frame
            assert stalled.resyncs >= 1  # the stalled one overflowed its 3 frames and skipped ahead
            assert stalled.queued <= 3
            # When the stalled viewer reads again it starts on a keyframe (it asked for one).
            resumed = asyncio.ensure_future(stalled.recv())
            await asyncio.to_thread(_publish, fanout, frames[30:36], 1 / 30, 30)
            first = await asyncio.wait_for(resumed, 30)
            assert first.is_keyframe
        finally:
            task.cancel()
            fast.stop()
            stalled.stop()
            await asyncio.to_thread(fanout.close)

    asyncio.run(scenario())


class _Sink:
    def __init__(self) -> None:
        self.frames: list[tuple[np.ndarray, np.ndarray, FrameMeta]] = []

    def on_frame(self, processed: np.ndarray, source: np.ndarray, meta: FrameMeta, result: ProcessedFrame) -> None:
        assert result.image is processed  # the result a sink keeps never points into the reused ring slot
        self.frames.append((processed, source, meta))


class _BrokenSink:
    def on_frame(self, processed: np.ndarray, source: np.ndarray, meta: FrameMeta, result: ProcessedFrame) -> None:
        raise RuntimeError("disk on fire")


def test_sinks_get_every_frame_as_stable_read_only_copies(frames: list[np.ndarray]) -> None:
    fanout = OutputFanout("cam")
    sink, broken = _Sink(), _BrokenSink()
    fanout.add_sink(broken)
    fanout.add_sink(sink)
    slot = np.empty_like(frames[0])  # stands for the ring slot, reused for every frame
    for i in range(10):
        np.copyto(slot, frames[i])
        processed = slot  # a processor that changed nothing returns the slot itself
        fanout.publish(processed, slot, FrameMeta(i, i / 30), _result(processed))
    assert [m.index for _, _, m in sink.frames] == list(range(10))
    for i, (p, s, _) in enumerate(sink.frames):
        assert not p.flags.writeable and not s.flags.writeable
        assert not np.shares_memory(p, slot) and not np.shares_memory(s, slot)
        assert np.array_equal(s, frames[i]) and np.array_equal(p, frames[i])
    fanout.remove_sink(sink)
    fanout.publish(slot, slot, FrameMeta(10, 10 / 30), _result(slot))
    assert len(sink.frames) == 10
    fanout.close()


def test_source_view_encodes_the_source_and_processed_view_the_result(frames: list[np.ndarray]) -> None:
    fanout = OutputFanout("cam")
    src_view, proc_view = _Collect(), _Collect()
    fanout.subscribe("source", "h264", src_view)
    fanout.subscribe("processed", "h264", proc_view)
    black = np.zeros_like(frames[0])
    try:
        for i in range(10):
            fanout.publish(black, frames[i], FrameMeta(i, i / 30), _result(black))
            time.sleep(0.05)
        deadline = time.monotonic() + 30  # the encoders took the newest frames (later on a busy machine)
        while not (src_view.packets and proc_view.packets) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        fanout.close()
    src = _decode_all("h264", [p for p, _ in src_view.packets])
    proc = _decode_all("h264", [p for p, _ in proc_view.packets])
    assert src and proc
    assert src[-1].mean() > 60 and proc[-1].mean() < 5
    # Unsubscribing the last viewer stops that encoder's thread.
    fanout2 = OutputFanout("cam2")
    v = _Collect()
    fanout2.subscribe("processed", "vp8", v)
    fanout2.unsubscribe("processed", "vp8", v)
    deadline = time.monotonic() + 20
    while [t for t in threading.enumerate() if t.name.startswith("encode-cam2")] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name.startswith("encode-cam2")]
    assert fanout2.viewers() == {"processed": 0, "source": 0}


def test_vp8_encodes_at_a_fixed_speed_the_same_bitstream_every_run(frames: list[np.ndarray]) -> None:
    """libvpx's realtime mode adapts its speed to the time its encodes take unless the speed is fixed: then the
    same frames give the same packets whatever else the machine does (and another speed other packets)."""

    def bitstream(speed: int) -> list[bytes]:
        enc = VideoEncoder("vp8", EncoderSettings(vp8_speed=speed))
        return [bytes(p) for i, image in enumerate(frames[:20]) for p in enc.encode(image, i * 3000, False)]

    first = bitstream(EncoderSettings().vp8_speed)
    assert len(first) == 20
    assert bitstream(EncoderSettings().vp8_speed) == first
    assert bitstream(4) != first
    with pytest.raises(ValueError, match="1-16"):
        EncoderSettings(vp8_speed=0)

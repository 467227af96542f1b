"""The bounded decoder queue: a decoder that falls behind skips to a keyframe instead of queueing (issue 20)."""

from __future__ import annotations

import asyncio
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc import RTCPeerConnection
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from streamer.live.decode_backlog import DecodeBacklog, bound_decoder, hooks_missing, is_keyframe
from streamer.record.media import VideoReader

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)


@pytest.fixture(scope="module")
def pictures(clips: Path) -> list[np.ndarray]:
    with VideoReader(clips / "d3.mp4") as reader:
        return [f.image[:240, :320].copy() for _, f in zip(range(40), reader.frames(), strict=False)]


def _encode(codec: str, pictures: list[np.ndarray], keyframes: set[int]) -> list[tuple[bytes, bool]]:
    """Encoded frames of ``pictures`` as aiortc's jitter buffer assembles them, with the encoder's keyframe flag."""
    ctx = av.CodecContext.create("libvpx" if codec == "vp8" else "libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = 320, 240, "yuv420p"
    ctx.time_base = Fraction(1, 30)
    ctx.gop_size = 1000
    ctx.max_b_frames = 0
    if codec == "h264":
        ctx.options = {"tune": "zerolatency", "forced-idr": "1"}
    else:
        ctx.options = {"deadline": "realtime", "lag-in-frames": "0"}  # one packet per frame, in order
    out: list[tuple[bytes, bool]] = []
    for i, image in enumerate(pictures):
        frame = av.VideoFrame.from_ndarray(image, format="bgr24").reformat(format="yuv420p")
        frame.pts = i
        frame.pict_type = av.video.frame.PictureType.I if i in keyframes else av.video.frame.PictureType.NONE
        out += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(frame)]
    out += [(bytes(p), bool(p.is_keyframe)) for p in ctx.encode(None)]
    return out


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_keyframes_are_told_from_delta_frames_as_the_encoder_marked_them(
    codec: str, pictures: list[np.ndarray]
) -> None:
    encoded = _encode(codec, pictures[:20], keyframes={0, 7, 15})
    assert len(encoded) == 20
    assert [key for _, key in encoded] == [i in {0, 7, 15} for i in range(20)]
    assert [is_keyframe(codec, data) for data, _ in encoded] == [key for _, key in encoded]
    assert not is_keyframe(codec, b"")


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_a_decoder_that_falls_behind_drops_the_backlog_and_restarts_on_a_keyframe(
    codec: str, pictures: list[np.ndarray]
) -> None:
    params = VP8 if codec == "vp8" else H264
    encoded = _encode(codec, pictures, keyframes={0, 25})
    pli = threading.Event()
    backlog = DecodeBacklog(max_frames=3, request_keyframe=pli)
    # The decoder thread is stalled: 25 frames (one keyframe, then deltas) arrive and nobody takes them.
    for data, _ in encoded[:25]:
        backlog.put((params, JitterFrame(data, 0)))
        assert backlog.qsize() <= 3
    assert pli.is_set(), "a keyframe is asked for (aiortc sends a PLI with the next packet)"
    assert backlog.skips == 1
    # The fourth frame overflowed the backlog: the three waiting and it were dropped, then every delta frame
    # until a keyframe (a decoder cannot start on one) — all counted.
    assert backlog.qsize() == 0 and backlog.dropped == 25
    # The keyframe asked for arrives, and the deltas after it; the decoder keeps up again: nothing is dropped.
    decoder = get_decoder(params)
    decoded = []
    for data, _ in encoded[25:]:
        backlog.put((params, JitterFrame(data, 0)))
        decoded += decoder.decode(backlog.get_nowait()[1])
    assert backlog.dropped == 25 and backlog.qsize() == 0
    assert len(decoded) == len(encoded) - 25, "every frame handed to the decoder decodes (no broken references)"


def test_a_keyframe_over_the_limit_replaces_the_backlog_and_the_end_marker_survives(
    pictures: list[np.ndarray],
) -> None:
    encoded = _encode("vp8", pictures[:12], keyframes={0, 4})
    backlog = DecodeBacklog(max_frames=3)
    for data, _ in encoded[:4]:  # key, delta, delta, delta: the fourth goes over the limit
        backlog.put((VP8, JitterFrame(data, 0)))
    assert backlog.qsize() == 0 and backlog.dropped == 4
    backlog.put((VP8, JitterFrame(encoded[4][0], 0)))  # the keyframe
    backlog.put(None)
    assert backlog.qsize() == 2
    assert backlog.get_nowait()[1].data == encoded[4][0]
    assert backlog.get_nowait() is None
    with pytest.raises(ValueError):
        DecodeBacklog(max_frames=0)


def test_installed_on_a_video_receiver_before_it_starts_only() -> None:
    assert hooks_missing() is None, "the installed aiortc still has the names decode_backlog replaces"

    async def scenario() -> None:
        pc = RTCPeerConnection()
        video = pc.addTransceiver("video", direction="recvonly")
        audio = pc.addTransceiver("audio", direction="recvonly")
        backlog = bound_decoder(video, max_frames=2)
        assert isinstance(backlog, DecodeBacklog) and backlog.max_frames == 2
        assert bound_decoder(video) is backlog, "installing twice keeps the first"
        assert bound_decoder(audio) is None, "sound is left to aiortc"
        await pc.close()

    asyncio.run(scenario())

"""Latency cannot creep: with processing (or decoding) slower than the camera, every stage drops, none queues.

Issue 20: a real WHIP publisher (a clip, each frame's index stamped in its corner) into the real server,
the processed view back over WHEP, in this process on loopback. Each frame's latency is its receive time
minus its send time on one clock; the drift is the Theil-Sen slope of the per-second medians
(``benchmarks.bench_latency.drift_ms_per_s``), so other work on the machine (bursts that come and go) does
not read as a queue, while a queue anywhere (a FIFO ring, a decoder's backlog, an encoder's) grows latency
by tens to hundreds of ms every second and fails the bound by far. No absolute fps or latency is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from benchmarks.bench_latency import Result, ServerProcess, StampedClipTrack, drift_ms_per_s, measure, receive
from streamer.config import ServeConfig
from streamer.live.decode_backlog import bound_decoder
from streamer.live.worker import PassthroughProcessor
from tests.live_helpers import live_server, publish, wait_for

CAMERA_FPS = 30.0
WARMUP_S = 4.0
MAX_DRIFT_MS_PER_S = 0.5


def _camera_frames(clips: Path, count: int = 90) -> list[np.ndarray]:
    frames: list[np.ndarray] = []
    with av.open(str(clips / "s18.mp4")) as container:
        for frame in container.decode(video=0):
            frames.append(frame.reformat(width=426, height=240, format="yuv420p").to_ndarray())
            if len(frames) >= count:
                break
    return frames


async def _measure(base: str, http: aiohttp.ClientSession, frames: list[np.ndarray], duration_s: float) -> dict:
    camera = StampedClipTrack(frames, CAMERA_FPS)
    await publish(http, base, "cam", camera)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    video = pc.addTransceiver("video", direction="recvonly")
    assert bound_decoder(video) is not None  # the viewer must not queue either
    received_s: dict[int, float] = {}
    counters = {"frames": 0, "unreadable": 0}
    tasks: list[asyncio.Task[None]] = []

    @pc.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.ensure_future(receive(track, received_s, counters)))

    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    async with http.post(f"{base}/whep/cam?view=processed", data=pc.localDescription.sdp, headers=headers) as r:
        assert r.status == 201, await r.text()
        answer = await r.text()
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    try:
        assert await wait_for(lambda: len(received_s) > 10, 20), "no stamped frame came back"
        await asyncio.sleep(WARMUP_S)
        start = time.monotonic()
        await asyncio.sleep(duration_s)
        end = time.monotonic() - 1.0  # frames sent in the last second may still be on their way
        async with http.get(f"{base}/api/streams/cam") as r:
            stats = (await r.json())["stats"]
    finally:
        await pc.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    pairs = sorted((t, received_s[i] - t) for i, t in camera.sent_s.items() if start <= t < end and i in received_s)
    send_s = np.array([t - start for t, _ in pairs])
    latency_ms = np.array([lat * 1000.0 for _, lat in pairs])
    return {
        "drift": drift_ms_per_s(send_s, latency_ms),
        "delivered": len(pairs),
        "sent": sum(1 for t in camera.sent_s.values() if start <= t < end),
        "seconds": float(send_s.max() - send_s.min()) if len(send_s) else 0.0,
        "latency_p50_ms": float(np.median(latency_ms)) if len(pairs) else float("nan"),
        "stats": stats,
    }


def _config(tmp_path: Path) -> ServeConfig:
    return ServeConfig(port=0, data_dir=tmp_path / "data", max_streams=1, ingest_timeout_s=10.0)


@pytest.mark.slow
def test_processing_at_half_the_camera_rate_keeps_latency_flat_over_30_s(tmp_path: Path, clips: Path) -> None:
    """``stageswap serve --max-process-fps 15`` in its own process, a 30 fps camera: half the frames are
    dropped (counted, by stage), and latency stays flat. Publishers and viewers run here, as in the benchmark.

    A baseline server (no cap) is measured at the same time from the same clip: whatever the rest of the
    machine does to both (load that rises over the 30 s moves both latencies alike), the slowed pipeline's
    drift must stay within 0.5 ms/s of the baseline's. A queue in the slowed path would grow by up to
    (30 - 15) frames a second, some hundreds of ms every second."""
    frames = _camera_frames(clips)
    (tmp_path / "slowed").mkdir()
    (tmp_path / "baseline").mkdir()
    slowed = ServerProcess.start("passthrough", tmp_path / "slowed", None, extra_args=["--max-process-fps", "15"])
    try:
        baseline = ServerProcess.start("passthrough", tmp_path / "baseline", None)
    except BaseException:
        slowed.stop()
        raise
    args = argparse.Namespace(warmup=WARMUP_S, duration=31.0, codec="vp8")

    async def scenario() -> tuple[Result, Result]:
        async with aiohttp.ClientSession() as http:
            slow, base = await asyncio.gather(
                measure(http, slowed, "240", frames, CAMERA_FPS, args, None),
                measure(http, baseline, "240", frames, CAMERA_FPS, args, None),
            )
            return slow, base

    try:
        result, base = asyncio.run(scenario())
    finally:
        slowed.stop()
        baseline.stop()
    summary = f"slowed {result}; baseline {base}; server log {slowed.log_path}"
    assert result.window_s >= 29.0 and result.delivered >= 60, f"too little came back to judge: {summary}"
    drift = result.drift_ms_per_s - base.drift_ms_per_s
    assert abs(drift) <= MAX_DRIFT_MS_PER_S, f"latency creeps: {drift:+.2f} ms/s over the baseline; {summary}"
    drops = result.server["drops"]
    assert result.server["frames_dropped"] == drops["decode"] + drops["ingest"] + drops["ring"]
    if result.sent_fps >= 22.0:  # the camera kept (most of) its rate: more than the processing's
        # Frames came back at about the processing rate, not the camera's: the rest were dropped, not queued.
        assert result.delivered <= 0.8 * result.sent, summary
        assert drops["ring"] >= 0.2 * result.server["frames_in"], f"the ring drops what the worker cannot take: {drops}"


class _SlowDecoder:
    """aiortc's real decoder, taking at least ``delay_s`` per frame: a decoder starved of CPU."""

    def __init__(self, inner: object, delay_s: float) -> None:
        self._inner = inner
        self._delay_s = delay_s

    def decode(self, encoded_frame: object) -> list:
        time.sleep(self._delay_s)
        return self._inner.decode(encoded_frame)  # type: ignore[attr-defined,no-any-return]


@pytest.mark.slow
def test_decoding_slower_than_the_camera_skips_to_keyframes_and_latency_stays_flat(
    tmp_path: Path, clips: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every decoder here (the server's ingest, the viewer's) manages only 20 of the camera's 30 fps."""
    import aiortc.rtcrtpreceiver as receiver_module

    real = receiver_module.get_decoder
    monkeypatch.setattr(receiver_module, "get_decoder", lambda codec: _SlowDecoder(real(codec), 1 / 20))
    frames = _camera_frames(clips)

    async def scenario() -> dict:
        async with live_server(_config(tmp_path), PassthroughProcessor) as srv, aiohttp.ClientSession() as http:
            return await _measure(srv.url, http, frames, 30.0)

    result = asyncio.run(scenario())
    assert result["delivered"] >= 60, f"too few frames came back to judge: {result}"
    assert result["stats"]["drops"]["decode"] > 0, result["stats"]["drops"]
    assert abs(result["drift"]) <= MAX_DRIFT_MS_PER_S, f"latency creeps: {result['drift']:+.2f} ms/s; {result}"

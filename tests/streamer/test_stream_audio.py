"""Sound end to end in the live service: an input's and a publisher's sound to WHEP viewers and into
recordings (AAC in MP4, PCM in MOV with ProRes, Opus in MKV) in sync with the picture; the ``audio`` setting;
a publisher whose sound cannot be decoded keeps its picture."""

from __future__ import annotations

import asyncio
import fractions
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from benchmarks.bench_lipsync import make_clip, recording_offsets
from streamer.config import InputSpec, ServeConfig
from streamer.live.worker import PassthroughProcessor
from tests.live_helpers import ClipTrack, live_server, view, wait_for
from tests.streamer.test_recording_api import server as recording_server


def _streams(path: Path) -> dict[str, Any]:
    container = av.open(str(path))
    try:
        out: dict[str, Any] = {}
        for s in container.streams:
            if s.type in ("audio", "video") and s.type not in out:
                duration = float(s.duration * s.time_base) if s.duration else None
                out[s.type] = {"codec": s.codec_context.name, "duration_s": duration}
        return out
    finally:
        container.close()


def test_an_inputs_sound_reaches_viewers_and_each_containers_recording_in_sync(tmp_path: Path, clips: Path) -> None:
    clip = tmp_path / "sync.mp4"
    make_clip(clip, clips / "d10.mp4", 6.0)  # a white band and a click at every whole second
    inputs = (InputSpec.parse(f"cam={clip}"),)
    recordings = tmp_path / "data" / "recordings"

    async def scenario() -> None:
        # The encoders at normal priority: this test is about where each band's frame and its click land in each
        # container, and the band is one frame a second. A starved, niced ProRes encoder (four busy loops beside
        # the suite) filled its queue and dropped frames, the bands among them: a file with no band to judge.
        async with (
            recording_server(tmp_path / "data", inputs=inputs, encoder_nice=0) as (url, _app),
            aiohttp.ClientSession() as http,
        ):
            viewer = await view(http, url, "cam", audio=True)
            assert await wait_for(lambda: viewer.audio_samples > 72_000, 45), "no sound reached the viewer"
            assert max(viewer.audio_peaks) > 10_000  # the clicks (one a second) came through
            await viewer.close()  # seen and heard: no VP8 encoding and decoding through the recordings
            for body, encoder in (
                ({"container": "mp4"}, "aac"),
                ({"codec": "prores", "container": "mov"}, "pcm_s16le"),
                ({"container": "mkv"}, "opus"),
            ):
                async with http.post(f"{url}/api/streams/cam/recording", json=body) as r:
                    assert r.status == 201, await r.text()
                # 2.6 s of the clip in the file (two or three bands and clicks), however long that takes: a fixed
                # 2.6 s of wall time gave a starved stream's recording less than a second.
                assert await _recorded(http, f"{url}/api/streams/cam", 2.6), "the recording did not grow"
                async with http.delete(f"{url}/api/streams/cam/recording") as r:
                    summary = await r.json()
                assert summary["audio"]["encoder"] == {"opus": "libopus"}.get(encoder, encoder), summary
                path = recordings / summary["files"]["processed"]
                streams = _streams(path)
                assert streams["audio"]["codec"] == encoder, streams
                # In sync: each white band's frame against its click, read back from the file (media time,
                # so this holds however busy the machine: the placement keeps sound within 10 ms).
                offsets = recording_offsets(path)
                assert len(offsets) >= 1 and max(abs(o) for o in offsets) <= 0.011, (body, offsets, summary)
                assert abs(summary["audio"]["duration_s"] - summary["duration_s"]) < 0.3, summary

    asyncio.run(scenario())


def test_the_audio_setting_silences_monitors_and_new_recordings_and_the_request_picks_the_codec(
    tmp_path: Path, clips: Path
) -> None:
    config = ServeConfig(data_dir=tmp_path / "data", inputs=(InputSpec.parse(f"cam={clips / 'd10.mp4'}"),))

    async def scenario() -> None:
        async with live_server(config, make_processor=PassthroughProcessor) as server, aiohttp.ClientSession() as http:
            url = f"{server.url}/api/streams/cam"
            viewer = await view(http, server.url, "cam", audio=True)
            assert await wait_for(lambda: viewer.audio_samples > 0, 45)
            async with http.get(f"{server.url}/metrics") as r:
                metrics = await r.text()
            seconds = re.search(r'^stageswap_audio_seconds_total\{stream="cam"\} ([0-9.e+]+)$', metrics, re.M)
            assert seconds and float(seconds.group(1)) > 0 and "stageswap_picture_delay_ms{" in metrics
            async with http.post(f"{url}/recording", json={"container": "mp4", "audio": "pcm"}) as r:
                assert r.status == 400
                assert "mp4 cannot hold pcm sound: use aac" in (await r.json())["error"]
            async with http.post(f"{url}/recording", json={"container": "mkv", "audio": "none"}) as r:
                assert r.status == 201 and (await r.json())["audio"] is None
            assert await _recorded(http, url, 0.5), "no frame in the file"
            async with http.delete(f"{url}/recording") as r:
                assert "audio" not in _streams(config.data_dir / "recordings" / (await r.json())["files"]["processed"])

            async with http.patch(url, json={"audio": False}) as r:
                assert r.status == 200 and (await r.json())["settings"]["audio"] is False

            async def chunks_in() -> int:
                return int((await (await http.get(url)).json())["stats"]["audio"]["chunks_in"])

            # What was already on its way arrives (0.5 s on a quiet machine, longer on a starved one): then the
            # sound has stopped for 1 s, and it stays stopped. A stream that kept its sound never gets there.
            heard, came_in, quiet_since = viewer.audio_samples, await chunks_in(), time.monotonic()
            deadline = quiet_since + 30
            while time.monotonic() - quiet_since < 1.0 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                now_heard, now_in = viewer.audio_samples, await chunks_in()
                if (now_heard, now_in) != (heard, came_in):
                    heard, came_in, quiet_since = now_heard, now_in, time.monotonic()
            assert time.monotonic() - quiet_since >= 1.0, ("the sound went on", heard, came_in)
            await asyncio.sleep(1.5)
            stats = (await (await http.get(url)).json())["stats"]["audio"]
            assert viewer.audio_samples == heard and stats["chunks_in"] == came_in, stats
            async with http.post(f"{url}/recording", json={}) as r:
                assert (await r.json())["audio"] is None  # the stream is silent now: no audio track
            async with http.delete(f"{url}/recording") as r:
                assert r.status == 200

            async with http.patch(url, json={"audio": True}) as r:
                assert r.status == 200
            assert await wait_for(lambda: viewer.audio_samples > heard + 24_000, 30), "the sound did not come back"
            await viewer.close()

    asyncio.run(scenario())


async def _recorded(http: aiohttp.ClientSession, stream_url: str, media_s: float, timeout_s: float = 60) -> bool:
    """Wait until the stream's recording holds ``media_s`` of media (its ``duration_s``, the files' clock)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with http.get(stream_url) as r:
            recording = (await r.json())["recording"]
        if recording and recording["frames_recorded"] > 0 and recording["duration_s"] >= media_s:
            return True
        await asyncio.sleep(0.1)
    return False


class _GarbledOpus(MediaStreamTrack):
    """A microphone whose Opus packets are noise: nothing here can decode them."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._n = 0
        self._rng = np.random.default_rng(0)

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        await asyncio.sleep(0.02)
        packet = av.Packet(bytes([0xFF, 0xFF, 0xFF]) + self._rng.bytes(60))
        packet.pts, packet.time_base = self._n * 960, fractions.Fraction(1, 48000)
        self._n += 1
        return packet


def test_a_publisher_whose_sound_cannot_be_decoded_keeps_its_picture(tmp_path: Path, clips: Path) -> None:
    config = ServeConfig(data_dir=tmp_path / "data", ingest_timeout_s=5.0)

    async def scenario() -> None:
        async with live_server(config, make_processor=PassthroughProcessor) as server, aiohttp.ClientSession() as http:
            pc = RTCPeerConnection()
            video, sound = ClipTrack(clips / "d10.mp4"), _GarbledOpus()
            pc.addTransceiver(video, direction="sendonly")
            pc.addTransceiver(sound, direction="sendonly")
            await pc.setLocalDescription(await pc.createOffer())
            async with http.post(
                f"{server.url}/whip/cam", data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
            ) as r:
                assert r.status == 201, await r.text()
                await pc.setRemoteDescription(RTCSessionDescription(await r.text(), "answer"))
            viewer = await view(http, server.url, "cam", audio=True)
            stream = server.service.streams.get("cam")
            assert await wait_for(lambda: sound._n > 100 and len(viewer.times) > 30, 45)
            snapshot = stream.to_dict()
            assert snapshot["publisher"] and snapshot["stats"]["frames_in"] > 30
            assert snapshot["stats"]["audio"]["chunks_in"] == 0 and viewer.audio_samples == 0
            await viewer.close()
            await pc.close()
            video.stop()

    asyncio.run(scenario())

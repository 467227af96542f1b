"""Recording through the live service: WHIP publish -> record both views -> stop; WebSocket control and events;
a server killed mid-recording; a full disk; bad requests.

The clip carries each frame's index as a stamp (``benchmarks.stamps``); a test processor notes the stamp of
every frame the worker processes, so the recordings are compared with exactly the frames the worker
handled, read back from the files with PyAV.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer

from benchmarks.stamps import read_bgr, read_frame, stamp_bgr
from engines.processor import ProcessedFrame
from engines.settings import ProcessSettings
from streamer.api import recording as api_recording
from streamer.api import routes as api
from streamer.api.recording import RECORDINGS
from streamer.api.server import create_app, make_runner
from streamer.config import InputSpec, ServeConfig
from streamer.live import webrtc
from tests.recording_faults import WriterFaults

REPO = Path(__file__).resolve().parents[2]
FPS = 30
FFV1_SOURCE_TIMES = {"codec": "ffv1", "view": "both", "frame_rate": "source"}
"""Every frame once, at its own time (FFV1 records at constant rate by default, repeating to fill gaps)."""


@pytest.fixture(scope="module")
def stamped_clip(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 s of a real 512x512 clip at 30 fps with each frame's index stamped in a corner (H.264, near lossless)."""
    path = tmp_path_factory.mktemp("clip") / "stamped.mp4"
    with av.open(str(clips / "d3.mp4")) as src:
        frames = [f.to_ndarray(format="bgr24") for f in src.decode(video=0)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"}
        for i in range(12 * FPS):
            image = frames[i % len(frames)].copy()
            stamp_bgr(image, i)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


class StampLog:
    """A processor that notes the stamp of every frame it processes and marks the processed view."""

    runtime = "stamp-log"

    def __init__(self, seen: list[int | None]) -> None:
        self.seen = seen

    def process(
        self, image: np.ndarray, t_s: float | None = None, settings: ProcessSettings | None = None
    ) -> ProcessedFrame:
        self.seen.append(read_bgr(image))
        out = image.copy()
        out[-48:, -48:] = (0, 0, 255)
        return ProcessedFrame(out, (), {})


@contextlib.asynccontextmanager
async def server(
    data_dir: Path,
    seen: list[int | None] | None = None,
    inputs: tuple[InputSpec, ...] = (),
    token: str | None = None,
    max_process_fps: float | None = None,
    **recording: Any,
) -> AsyncIterator[tuple[str, web.Application]]:
    config = ServeConfig(
        data_dir=data_dir,
        processor="passthrough",
        inputs=inputs,
        max_streams=2,
        token=token,
        max_process_fps=max_process_fps,
    )
    groups = (webrtc.register, api.register, api_recording.configured(**{"min_free_bytes": 0, **recording}))
    make = (lambda: StampLog(seen)) if seen is not None else None
    app = create_app(config, route_groups=groups, make_processor=make)
    runner = make_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", app
    finally:
        await runner.cleanup()


async def whip_publish(http: aiohttp.ClientSession, base: str, stream: str, clip: Path) -> RTCPeerConnection:
    player = MediaPlayer(str(clip))  # plays the file at its own rate, like a camera
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    assert player.video is not None
    pc.addTransceiver(player.video, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(
        f"{base}/whip/{stream}", data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
    ) as r:
        assert r.status == 201, await r.text()
        answer = await r.text()
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return pc


async def wait_frames(
    http: aiohttp.ClientSession,
    base: str,
    stream: str,
    frames: int,
    timeout_s: float = 60,
    headers: dict[str, str] | None = None,
) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        async with http.get(f"{base}/api/streams/{stream}", headers=headers) as r:
            if r.status == 200:
                info = await r.json()
                if info["stats"].get("frames_processed", 0) >= frames:
                    return info
        await asyncio.sleep(0.2)
    raise AssertionError(f"stream {stream} did not process {frames} frames in {timeout_s} s")


def file_stamps(path: Path) -> list[int | None]:
    with av.open(str(path)) as c:
        return [read_frame(frame) for frame in c.decode(video=0)]


def contiguous_slice(part: list[Any], whole: list[Any]) -> bool:
    """``part`` is ``whole[k : k + len(part)]`` for some k."""
    n = len(part)
    return any(whole[k : k + n] == part for k in range(len(whole) - n + 1))


# -- WHIP publish, record both views, stop ------------------------------------------------------------------


def test_whip_recording_holds_exactly_the_processed_frames(tmp_path: Path, stamped_clip: Path) -> None:
    seen: list[int | None] = []

    async def scenario() -> dict:
        # Normal priority for the encoder here: this test is about which frames are recorded, not CPU shares. The
        # worker takes 12 frames a second: each view's H.264 encoder must keep up with it or drop (a CI run's
        # encoders wrote ~6.5 frames a second with the suite's other workers beside them, the clip's 30 would fill
        # the 2 s queue in ~3 s).
        async with (
            server(tmp_path, seen, encoder_nice=0, max_process_fps=12.0) as (base, _app),
            aiohttp.ClientSession() as http,
        ):
            pc = await whip_publish(http, base, "cam1", stamped_clip)
            try:
                await wait_frames(http, base, "cam1", 15)
                async with http.post(f"{base}/api/streams/cam1/recording", json={"view": "both", "codec": "h264"}) as r:
                    assert r.status == 201, await r.text()
                    started = await r.json()
                    assert r.headers["Location"] == f"/api/recordings/{started['id']}"
                async with http.get(f"{base}/api/streams/cam1/recording") as r:
                    assert r.status == 200 and (await r.json())["state"] == "recording"
                # Until the worker has processed 40 more frames (~3.3 s at its 12 a second; at most 60 s).
                seen_at_start, deadline = len(seen), time.monotonic() + 60
                while len(seen) - seen_at_start < 40 and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                async with http.delete(f"{base}/api/streams/cam1/recording") as r:
                    assert r.status == 200, await r.text()
                    summary = await r.json()
                async with http.get(f"{base}/api/recordings") as r:
                    listed = (await r.json())["recordings"]
                assert listed[0]["id"] == summary["id"] and listed[0]["state"] == "finished"
                return summary
            finally:
                await pc.close()

    summary = asyncio.run(scenario())
    folder = tmp_path / "recordings"
    processed = file_stamps(folder / summary["files"]["processed"])
    source = file_stamps(folder / summary["files"]["source"])
    assert len(processed) >= 36 and processed == source, "both views hold the same frames"
    assert summary["frames_written"] == {"processed": len(processed), "source": len(source)}
    assert summary["frames_dropped"] == 0
    assert None not in processed and processed == sorted(set(processed)), "stamps in order"
    # Exactly the frames the worker processed while recording: a contiguous run of what it saw, no gaps.
    assert contiguous_slice(processed, seen)
    with av.open(str(folder / summary["files"]["processed"])) as c:
        tail = c.streams.video[0]
        assert tail.metadata.get("timecode") == summary["start_timecode"]
    sidecar = json.loads((folder / summary["sidecar"]).read_text())
    assert sidecar["settings"]["swap"] is True and sidecar["stageswap_version"]


# -- WebSocket control and events ---------------------------------------------------------------------------


def test_websocket_starts_and_stops_and_pushes_events(tmp_path: Path, stamped_clip: Path) -> None:
    async def scenario() -> tuple[list[dict], dict, dict]:
        inputs = (InputSpec.parse(f"cam1={stamped_clip}"),)
        async with server(tmp_path, inputs=inputs) as (base, _app), aiohttp.ClientSession() as http:
            await wait_frames(http, base, "cam1", 10)
            events: list[dict] = []
            replies: dict[int, dict] = {}
            async with http.ws_connect(f"{base}/ws") as ws:

                async def until(pred: Any, timeout_s: float = 30) -> None:
                    deadline = time.monotonic() + timeout_s
                    while not pred():
                        msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
                        data = json.loads(msg.data)
                        if data["type"] == "recording":
                            events.append(data)
                        elif data["type"] in ("reply", "error"):
                            replies[data["id"]] = data

                options = {"codec": "ffv1", "view": "source", "frame_rate": "cfr", "fps": 30}
                await ws.send_json(
                    {"type": "recording", "id": 1, "action": "start", "stream": "cam1", "options": options}
                )
                await until(lambda: 1 in replies)
                await ws.send_json({"type": "recording", "id": 2, "action": "start", "stream": "cam1"})
                await until(lambda: 2 in replies)
                await until(lambda: sum(e["event"] == "progress" for e in events) >= 2)
                await ws.send_json({"type": "recording", "id": 3, "action": "stop", "stream": "cam1"})
                await until(lambda: 3 in replies and any(e["event"] == "stopped" for e in events))
                await ws.send_json({"type": "recording", "id": 4, "action": "pause", "stream": "cam1"})
                await until(lambda: 4 in replies)
            return events, replies, replies[3]

    events, replies, stopped = asyncio.run(scenario())
    assert replies[1]["ok"] and replies[1]["result"]["codec"] == "ffv1"
    assert replies[2]["type"] == "error" and "already recording" in replies[2]["error"]
    assert replies[4]["type"] == "error" and "start or stop" in replies[4]["error"]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and "stopped" in kinds and "progress" in kinds
    progress = [e for e in events if e["event"] == "progress"]
    # What a recording indicator shows: the file name and a growing duration.
    assert progress[-1]["recording"]["files"]["source"].endswith("-source.mkv")
    assert progress[-1]["recording"]["duration_s"] > progress[0]["recording"]["duration_s"] > 0
    result = stopped["result"]
    path = tmp_path / "recordings" / result["files"]["source"]
    stamps = file_stamps(path)
    assert len(stamps) == result["frames_written"]["source"] == result["frames_recorded"] + result["frames_duplicated"]
    with av.open(str(path)) as c:
        pts = [f.pts for f in c.decode(video=0)]
        tb = c.streams.video[0].time_base
    # Constant frame rate: one frame every 1/30 s (MKV stores milliseconds).
    assert max(abs(float(p * tb) - k / 30) for k, p in enumerate(pts)) <= 0.0005


# -- bad requests ------------------------------------------------------------------------------------------


def test_bad_requests_get_a_clear_4xx(tmp_path: Path, stamped_clip: Path) -> None:
    async def scenario() -> list[tuple[str, int, str]]:
        inputs = (InputSpec.parse(f"cam1={stamped_clip}"),)
        out: list[tuple[str, int, str]] = []
        async with server(tmp_path, inputs=inputs) as (base, _app), aiohttp.ClientSession() as http:

            async def call(label: str, method: str, path: str, **kw: Any) -> None:
                async with http.request(method, f"{base}{path}", **kw) as r:
                    body = await r.json()
                    out.append((label, r.status, body.get("error") or ""))

            rec = "/api/streams/cam1/recording"
            await call("unknown codec", "POST", rec, json={"codec": "vp9"})
            await call("unknown container", "POST", rec, json={"container": "avi"})
            await call("codec in wrong container", "POST", rec, json={"codec": "ffv1", "container": "mp4"})
            await call("client path", "POST", rec, json={"path": "/tmp/x.mp4"})
            await call("bad fps", "POST", rec, json={"frame_rate": "cfr", "fps": -3})
            await call("bad timecode", "POST", rec, json={"timecode": "25:00:00:00"})
            await call("not json", "POST", rec, data=b"{", headers={"Content-Type": "application/json"})
            await call("wrong type", "POST", rec, data=b"codec=h264", headers={"Content-Type": "text/plain"})
            await call("no such stream", "POST", "/api/streams/nope/recording", json={})
            await call("bad stream name", "POST", "/api/streams/Bad..Name/recording", json={})
            await call("stop idle", "DELETE", rec)
            await call("stop unknown stream", "DELETE", "/api/streams/nope/recording")
            await call("get idle", "GET", rec)
            await call("unknown recording", "GET", "/api/recordings/cam1-20200101T000000.000Z")
            await call("start", "POST", rec)
            await call("start twice", "POST", rec, json={"codec": "prores"})
            await call("stop", "DELETE", rec)
            await call("stop twice", "DELETE", rec)
            async with http.get(f"{base}/api/streams/cam1") as r:
                assert r.status == 200  # the stream went on through all of it
        return out

    results = {label: (status, error) for label, status, error in asyncio.run(scenario())}
    expected = {
        "unknown codec": (400, "unknown codec 'vp9'"),
        "unknown container": (400, "unknown container 'avi'"),
        "codec in wrong container": (400, "ffv1 cannot be recorded in mp4"),
        "client path": (400, "unknown recording option 'path'"),
        "bad fps": (400, "fps must be between 1 and 240"),
        "bad timecode": (400, "out of range"),
        "not json": (400, "not valid JSON"),
        "wrong type": (415, "application/json"),
        "no such stream": (404, "unknown stream 'nope'"),
        "bad stream name": (400, "invalid stream name"),
        "stop idle": (409, "is not recording"),
        "stop unknown stream": (404, "unknown stream 'nope'"),
        "get idle": (404, "is not recording"),
        "unknown recording": (404, "no recording"),
        "start": (201, ""),
        "start twice": (409, "already recording"),
        "stop": (200, ""),
        "stop twice": (409, "is not recording; its last recording"),
    }
    for label, (status, message) in expected.items():
        got_status, got_error = results[label]
        assert got_status == status and message in got_error, (label, results[label])


def test_a_disk_that_is_nearly_full_refuses_to_start(tmp_path: Path, stamped_clip: Path) -> None:
    async def scenario() -> tuple[int, str]:
        inputs = (InputSpec.parse(f"cam1={stamped_clip}"),)
        async with (
            server(tmp_path, inputs=inputs, min_free_bytes=1 << 60) as (base, _app),
            aiohttp.ClientSession() as http,
            http.post(f"{base}/api/streams/cam1/recording") as r,
        ):
            return r.status, (await r.json())["error"]

    status, error = asyncio.run(scenario())
    assert status == 507 and "MB free" in error


# -- full disk under the live service ------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (tests/test_recorder.py injects a write error without it)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_stops_the_recording_and_the_stream_goes_on(tmp_path: Path, stamped_clip: Path) -> None:
    async def scenario(data_dir: Path) -> tuple[list[dict], float, float, int, tuple[int, str], dict]:
        inputs = (InputSpec.parse(f"cam1={stamped_clip}"),)
        async with server(data_dir, inputs=inputs) as (base, _app), aiohttp.ClientSession() as http:
            await wait_frames(http, base, "cam1", 30)
            await asyncio.sleep(2.0)
            async with http.get(f"{base}/api/streams/cam1") as r:
                fps_before = (await r.json())["stats"]["output_fps"]
            events: list[dict] = []
            async with http.ws_connect(f"{base}/ws") as ws:
                async with http.post(f"{base}/api/streams/cam1/recording", json=FFV1_SOURCE_TIMES) as r:
                    assert r.status == 201, await r.text()
                deadline = time.monotonic() + 60
                while not any(e["event"] == "error" for e in events) and time.monotonic() < deadline:
                    data = json.loads((await ws.receive(timeout=60)).data)
                    if data["type"] == "recording":
                        events.append(data)
            # The live path goes on: 30 more frames (1 s of the clip; up to 60 s on a starved machine), and at
            # least 5 s, so that the stats window (5 s) covers only time after the error.
            after_error = (await wait_frames(http, base, "cam1", 0))["stats"]["frames_processed"]
            error_s = time.monotonic()
            processed_after = (await wait_frames(http, base, "cam1", after_error + 30))["stats"]["frames_processed"]
            await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - error_s)))
            async with http.get(f"{base}/api/streams/cam1") as r:
                fps_after = (await r.json())["stats"]["output_fps"]
            async with http.delete(f"{base}/api/streams/cam1/recording") as r:
                stop = (r.status, (await r.json())["error"])
            async with http.get(f"{base}/api/recordings") as r:
                listed = (await r.json())["recordings"][0]
            return events, fps_before, fps_after, processed_after - after_error, stop, listed

    with small_tmpfs(tmp_path / "small", "16m") as data_dir:
        events, fps_before, fps_after, processed_after, stop, listed = asyncio.run(scenario(data_dir))
        error = next(e for e in events if e["event"] == "error")
        assert "the disk is full" in error["message"] and error["recording"]["disk_full"]
        # The live path did not stop or stall: frames went on (waited for above) at a rate of the same order as
        # before. Both rates are the machine's: a suite at full load moved it by 20% (29.9 -> 23.5 fps) between
        # the two windows, so the bound is loose; a path that waited on the full disk would be near 0.
        assert processed_after >= 30 and fps_after >= 0.3 * fps_before > 0, (fps_before, fps_after, processed_after)
        assert stop[0] == 409 and "failed" in stop[1]
        assert listed["state"] == "failed" and listed["id"] == error["recording"]["id"]
        for view, name in listed["files"].items():
            stamps = file_stamps(data_dir / "recordings" / name)  # valid to its end
            assert len(stamps) == listed["frames_written"][view] > 0
            assert None not in stamps and stamps == sorted(set(stamps))


# -- kill -9 the server mid-recording ------------------------------------------------------------------------


def test_kill_9_the_server_mid_recording(tmp_path: Path, stamped_clip: Path) -> None:
    data_dir = tmp_path / "data"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamer", "serve", "--port", "0", "--data-dir", str(data_dir), "--processor",
         "passthrough", "--input", f"cam1={stamped_clip}", "--no-loop"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        base = None
        for line in proc.stdout:
            match = re.search(r"open (http://\S+?)/? in a browser", line)
            if match:
                base = match.group(1)
                break
        assert base, "the server did not start"

        async def record_then_snapshot() -> dict:
            async with aiohttp.ClientSession() as http:
                await wait_frames(http, base, "cam1", 10)
                async with http.post(f"{base}/api/streams/cam1/recording", json={"view": "both"}) as r:
                    assert r.status == 201, await r.text()
                # At least 3 s and 70 frames handed to the recorder (a starved server takes longer; at most 60 s).
                started_s = time.monotonic()
                while True:
                    async with http.get(f"{base}/api/streams/cam1/recording") as r:
                        snap = dict(await r.json())
                    waited_s = time.monotonic() - started_s
                    if (waited_s >= 3.0 and snap["frames_recorded"] >= 70) or waited_s > 60:
                        return snap
                    await asyncio.sleep(0.2)

        snap = asyncio.run(record_then_snapshot())
        proc.send_signal(signal.SIGKILL)  # right after the snapshot: it counts the frames handed to the recorder
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    recorded, queued = snap["frames_recorded"], snap["queue"]["frames"]
    assert recorded >= 60
    folder = data_dir / "recordings"
    for view in ("processed", "source"):
        stamps: list[int | None] = []
        with av.open(str(folder / snap["files"][view])) as c, contextlib.suppress(av.FFmpegError):
            for frame in c.decode(video=0):  # a torn last fragment ends the read
                stamps.append(read_frame(frame))
        assert None not in stamps and stamps == sorted(set(stamps)), view
        # Every frame handed to the writer more than 1 s before the kill is there (and those queued never were).
        assert len(stamps) >= recorded - FPS - queued, (view, len(stamps), recorded, queued)

    # The service, started again, repairs the recording and lists it as interrupted.
    async def restart() -> list[dict]:
        async with server(data_dir) as (base, app), aiohttp.ClientSession() as http:
            assert app[RECORDINGS] is not None
            async with http.get(f"{base}/api/recordings") as r:
                return (await r.json())["recordings"]

    listed = asyncio.run(restart())
    assert listed[0]["id"] == snap["id"] and listed[0]["state"] == "interrupted"
    for view, name in listed[0]["files"].items():
        assert listed[0]["frames_written"][view] == len(file_stamps(folder / name)) >= recorded - FPS - queued


# -- recording in the stream stats, the /ws push and /metrics --------------------------------------------------


def metric_values(text: str) -> dict[str, float]:
    """``/metrics`` text as {'name{labels}': value} (the labels as the exposition writes them)."""
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line[:1] != "#"}


async def stream_recording(
    http: aiohttp.ClientSession, base: str, stream: str, headers: dict[str, str] | None = None
) -> Any:
    async with http.get(f"{base}/api/streams/{stream}", headers=headers) as r:
        assert r.status == 200, await r.text()
        return (await r.json())["recording"]


async def metrics(http: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with http.get(f"{base}/metrics") as r:
        assert r.status == 200
        return metric_values(await r.text())


async def poll(fetch: Any, pred: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await fetch()
        if pred(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; last: {value}")
        await asyncio.sleep(0.2)


def test_stream_stats_ws_and_metrics_show_the_recording(tmp_path: Path, stamped_clip: Path) -> None:
    async def scenario() -> dict[str, Any]:
        inputs = (InputSpec.parse(f"cam1={stamped_clip}"),)
        out: dict[str, Any] = {}
        async with server(tmp_path, inputs=inputs) as (base, _app), aiohttp.ClientSession() as http:
            await wait_frames(http, base, "cam1", 10)
            out["idle"] = await stream_recording(http, base, "cam1")
            out["idle_metrics"] = await metrics(http, base)
            async with http.post(f"{base}/api/streams/cam1/recording", json={"view": "both"}) as r:
                assert r.status == 201, await r.text()
                out["started"] = await r.json()
            out["running"] = await poll(
                lambda: stream_recording(http, base, "cam1"),
                lambda rec: rec["frames_written"].get("source", 0) >= 15 and rec["duration_s"] >= 0.5,
                30,
                "frames written while recording",
            )
            out["running_metrics"] = await metrics(http, base)
            async with http.ws_connect(f"{base}/ws") as ws:
                while True:  # the stats push carries the same block
                    data = json.loads((await ws.receive(timeout=30)).data)
                    if data["type"] == "stats":
                        out["pushed"] = data["streams"]["cam1"]["recording"]
                        break
            async with http.delete(f"{base}/api/streams/cam1/recording") as r:
                assert r.status == 200
                out["summary"] = await r.json()
            out["stopped"] = await stream_recording(http, base, "cam1")
            out["stopped_metrics"] = await metrics(http, base)
            # A second recording: the counters go on from the first one's figures.
            async with http.post(f"{base}/api/streams/cam1/recording", json={"view": "source", "codec": "ffv1"}) as r:
                assert r.status == 201, await r.text()
            await asyncio.sleep(1.0)
            async with http.delete(f"{base}/api/streams/cam1/recording") as r:
                out["summary2"] = await r.json()
            out["second"] = await stream_recording(http, base, "cam1")
            out["second_metrics"] = await metrics(http, base)
        return out

    out = asyncio.run(scenario())
    assert out["idle"] is None, "a stream that never recorded has no recording block"
    label = '{stream="cam1"}'
    assert out["idle_metrics"][f"stageswap_recording_active{label}"] == 0
    assert out["idle_metrics"][f"stageswap_recording_frames_dropped_total{label}"] == 0

    started, running = out["started"], out["running"]
    assert running["active"] is True and running["state"] == "recording" and running["id"] == started["id"]
    assert running["view"] == "both" and running["views"] == ["processed", "source"]
    assert (running["codec"], running["container"]) == ("h264", "mp4")
    assert running["files"] == started["files"]
    assert running["files"]["processed"] == f"{started['id']}-processed.mp4"
    assert running["frames_dropped"] == 0 and running["alarm"] is False and running["alarm_message"] is None
    assert running["error"] is None and 0 <= running["queue"]["frames"] <= running["queue"]["max_frames"]
    assert running["totals"] == {"recordings": 1, "frames_written": running["frames_written"], "frames_dropped": 0}
    pushed = out["pushed"]
    assert pushed["active"] is True and pushed["id"] == started["id"]
    assert pushed["duration_s"] >= running["duration_s"]

    m = out["running_metrics"]
    assert m[f"stageswap_recording_active{label}"] == 1 and m[f"stageswap_recording_alarm{label}"] == 0
    assert m['stageswap_recording_frames_written_total{stream="cam1",view="source"}'] >= 15
    assert f"stageswap_recording_queue_frames{label}" in m
    assert m[f"stageswap_recording_duration_seconds{label}"] >= 0.5

    summary, stopped = out["summary"], out["stopped"]
    assert stopped["active"] is False and stopped["state"] == "finished" and stopped["id"] == started["id"]
    assert stopped["frames_written"] == summary["frames_written"] and stopped["duration_s"] == summary["duration_s"]
    folder = tmp_path / "recordings"
    for view, name in stopped["files"].items():
        assert len(file_stamps(folder / name)) == stopped["frames_written"][view]
    m = out["stopped_metrics"]
    assert m[f"stageswap_recording_active{label}"] == 0 and m[f"stageswap_recording_duration_seconds{label}"] == 0
    for view in ("processed", "source"):
        written_total = m[f'stageswap_recording_frames_written_total{{stream="cam1",view="{view}"}}']
        assert written_total == summary["frames_written"][view]

    second, m = out["second"], out["second_metrics"]
    assert second["id"] == out["summary2"]["id"] != started["id"] and second["views"] == ["source"]
    assert second["totals"]["recordings"] == 2
    source_total = summary["frames_written"]["source"] + out["summary2"]["frames_written"]["source"]
    assert second["totals"]["frames_written"] == {
        "processed": summary["frames_written"]["processed"],
        "source": source_total,
    }
    assert m['stageswap_recording_frames_written_total{stream="cam1",view="source"}'] == source_total


def test_a_recorder_that_falls_behind_is_an_alarm_in_stats_and_metrics_then_an_error(
    tmp_path: Path, stamped_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faults = WriterFaults()
    faults.install(monkeypatch)

    async def scenario() -> dict[str, Any]:
        inputs = (InputSpec.parse(f"cam1={stamped_clip}"),)
        out: dict[str, Any] = {}
        # Frames at 4 a second: once the disk is fast again the two views' encoders must outrun them, which on
        # a busy machine (the suite's other workers, load 10-17 on 2 cores) they did not at the clip's 30, and
        # in a CI run not at 10 either (each view's encoder wrote ~6.5 frames a second there).
        async with (
            server(tmp_path, inputs=inputs, queue_seconds=0.2, max_process_fps=4.0) as (base, _app),
            aiohttp.ClientSession() as http,
        ):
            await wait_frames(http, base, "cam1", 10)
            faults.stall_s = 0.6  # each write takes 0.6 s: the 6-frame queue fills within three seconds
            async with http.post(f"{base}/api/streams/cam1/recording", json={"view": "both"}) as r:
                assert r.status == 201, await r.text()

            def fetch() -> Any:
                return stream_recording(http, base, "cam1")

            out["behind"] = await poll(fetch, lambda rec: rec["alarm"], 20, "the alarm in the stream stats")
            out["behind_metrics"] = await metrics(http, base)
            faults.stall_s = 0.0  # the disk is fast again: the queue drains and the alarm clears
            out["caught_up"] = await poll(fetch, lambda rec: not rec["alarm"], 20, "the alarm to clear")
            faults.disk_full = True
            out["failed"] = await poll(fetch, lambda rec: not rec["active"], 20, "the recording to stop itself")
            out["failed_metrics"] = await metrics(http, base)
            async with http.get(f"{base}/api/streams/cam1") as r:
                out["stream"] = (await r.json())["stats"]
        return out

    out = asyncio.run(scenario())
    behind = out["behind"]
    assert behind["active"] and behind["frames_dropped"] > 0
    assert "is behind" in behind["alarm_message"] and "dropped" in behind["alarm_message"]
    m = out["behind_metrics"]
    assert m['stageswap_recording_alarm{stream="cam1"}'] == 1
    assert m['stageswap_recording_frames_dropped_total{stream="cam1"}'] >= behind["frames_dropped"]
    assert m['stageswap_recording_queue_frames{stream="cam1"}'] >= 1
    caught_up = out["caught_up"]
    assert caught_up["active"] and caught_up["alarm_message"] is None
    assert caught_up["frames_dropped"] >= behind["frames_dropped"] and caught_up["alarms"] >= 1
    failed = out["failed"]
    assert failed["state"] == "failed" and failed["disk_full"] is True and "the disk is full" in failed["error"]
    assert failed["alarm"] is False
    m = out["failed_metrics"]
    assert m['stageswap_recording_active{stream="cam1"}'] == 0
    assert m['stageswap_recording_frames_dropped_total{stream="cam1"}'] == failed["frames_dropped"]
    assert out["stream"]["output_fps"] > 1, "the live path went on (at the 4 fps cap)"


# -- recordings one click away: files behind the token or a ticket, proxies, the rate warning -----------------


def test_recordings_are_served_by_token_or_ticket_and_get_proxies(tmp_path: Path, stamped_clip: Path) -> None:
    """A finished H.264 recording is listed with links the page can put in a <video> (a ticket for that one
    file), served with ranges; without the token or with a ticket for another file it is 401. An FFV1 one is
    not playable in a browser: it gets an H.264 proxy on request, with its progress in the listing."""
    token = "rec-token"
    auth = {"Authorization": f"Bearer {token}"}

    async def record(http: aiohttp.ClientSession, base: str, options: dict[str, Any]) -> dict[str, Any]:
        async with http.post(f"{base}/api/streams/cam1/recording", json=options, headers=auth) as r:
            assert r.status == 201, await r.text()
        # 1 s of media in every view's file (30 frames; the FFV1 proxy is checked for more than 20 below): a
        # fixed second of wall time gave a starved stream's recording fewer.
        await poll(
            lambda: stream_recording(http, base, "cam1", headers=auth),
            lambda rec: rec["duration_s"] >= 1.0 and min(rec["frames_written"].values(), default=0) >= 25,
            60,
            "a second of recording",
        )
        async with http.delete(f"{base}/api/streams/cam1/recording", headers=auth) as r:
            assert r.status == 200, await r.text()
            return dict(await r.json())

    async def listing(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
        async with http.get(f"{base}/api/recordings?stream=cam1", headers=auth) as r:
            assert r.status == 200, await r.text()
            return dict(await r.json())

    async def scenario() -> dict[str, Any]:
        inputs = (InputSpec.parse(f"cam1={stamped_clip}"),)
        out: dict[str, Any] = {}
        async with server(tmp_path, inputs=inputs, token=token) as (base, _app), aiohttp.ClientSession() as http:
            await wait_frames(http, base, "cam1", 10, headers=auth)
            out["h264"] = await record(http, base, {"view": "both"})
            out["ffv1"] = await record(http, base, {"codec": "ffv1"})
            out["listing"] = listed = await listing(http, base)
            by_id = {rec["id"]: rec for rec in listed["recordings"]}
            media = by_id[out["h264"]["id"]]["media"]
            url = base + media["processed"]["url"]
            async with http.get(url) as r:  # the ticket alone, as a <video src> sends it
                out["played"] = (r.status, r.headers.get("Content-Type"), r.headers.get("Content-Disposition"))
                out["played_bytes"] = await r.read()
            async with http.get(url, headers={"Range": "bytes=0-99"}) as r:
                out["ranged"] = (r.status, len(await r.read()))
            async with http.get(base + media["processed"]["download"]) as r:
                out["download"] = (r.status, r.headers.get("Content-Disposition"))
            plain = url.split("?")[0]
            async with http.get(plain) as r:
                out["no_ticket"] = r.status
            async with http.get(plain, headers=auth) as r:
                out["token"] = r.status
            async with http.get(base + media["source"]["url"].split("?")[0] + "?" + url.split("?")[1]) as r:
                out["other_file"] = r.status  # processed's ticket on the source file
            async with http.get(url[:-4] + "0000") as r:
                out["forged"] = r.status
            async with http.delete(url) as r:
                out["ticket_delete"] = r.status
            async with http.get(f"{base}/api/recordings/{out['h264']['id']}/files/nope", headers=auth) as r:
                out["no_view"] = (r.status, (await r.json())["error"])
            async with http.post(f"{base}/api/recordings/{out['h264']['id']}/proxy", headers=auth) as r:
                out["proxy_h264"] = (r.status, (await r.json())["error"])
            ffv1_id = out["ffv1"]["id"]
            out["ffv1_before"] = by_id[ffv1_id]["media"]["processed"]
            async with http.post(f"{base}/api/recordings/{ffv1_id}/proxy", headers=auth) as r:
                out["proxy_started"] = (r.status, await r.json())
            ready = await poll(
                lambda: listing(http, base),
                lambda ls: any(
                    rec["id"] == ffv1_id and (rec["media"]["processed"]["proxy"] or {}).get("state") == "ready"
                    for rec in ls["recordings"]
                ),
                60,
                "the proxy",
            )
            entry = next(rec for rec in ready["recordings"] if rec["id"] == ffv1_id)["media"]["processed"]
            async with http.get(base + entry["proxy_url"]) as r:
                out["proxy_get"] = (r.status, r.headers.get("Content-Type"))
                (tmp_path / "got-proxy.mp4").write_bytes(await r.read())
        return out

    out = asyncio.run(scenario())
    listed = out["listing"]
    assert listed["folder"] == str((tmp_path / "recordings").resolve())
    assert [rec["id"] for rec in listed["recordings"]] == [out["ffv1"]["id"], out["h264"]["id"]]
    h264 = next(rec for rec in listed["recordings"] if rec["id"] == out["h264"]["id"])
    processed = h264["media"]["processed"]
    file = tmp_path / "recordings" / processed["file"]
    assert processed["plays"] is True and processed["bytes"] == file.stat().st_size and processed["proxy"] is None
    assert set(h264["media"]) == {"processed", "source"}
    assert out["played"] == (200, "video/mp4", f'inline; filename="{file.name}"')
    assert out["played_bytes"] == file.read_bytes()
    assert out["ranged"] == (206, 100)
    assert out["download"] == (200, f'attachment; filename="{file.name}"')
    assert out["no_ticket"] == 401 and out["token"] == 200
    assert out["other_file"] == 401 and out["forged"] == 401 and out["ticket_delete"] == 401
    assert out["no_view"][0] == 404 and "views: processed, source" in out["no_view"][1]
    assert out["proxy_h264"][0] == 400 and "plays it as it is" in out["proxy_h264"][1]
    # FFV1 at constant rate by default (a post format); a browser cannot play it: a proxy on request.
    assert out["ffv1"]["frame_rate"] == "cfr" and out["ffv1"]["rate_warning"] is None
    assert out["ffv1_before"]["plays"] is False and out["ffv1_before"]["proxy"] is None
    status, started = out["proxy_started"]
    assert status == 202 and started["proxies"]["processed"]["state"] in ("making", "ready")
    assert out["proxy_get"] == (200, "video/mp4")
    original = file_stamps(tmp_path / "recordings" / f"{out['ffv1']['id']}-processed.mkv")
    with av.open(str(tmp_path / "got-proxy.mp4")) as proxy:
        assert proxy.streams.video[0].codec_context.name == "h264"
        assert proxy.streams.video[0].height == 512
        frames = sum(1 for _ in proxy.decode(video=0))
    assert frames == len(original) > 20

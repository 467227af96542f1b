"""Test helpers for the live service: an in-process server on a free port, and aiortc WHIP/WHEP clients.

Like aiortc's own tests, publisher and viewers are real peer connections on loopback in the same process
(or, for a viewer that must stall for real, in a child process: ``python -m tests.live_helpers view``).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiohttp import web
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpReceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from streamer.api.server import create_app, make_runner
from streamer.config import ServeConfig
from streamer.live.worker import ProcessorFactory
from streamer.service import SERVICE, Service

VIDEO_TIME_BASE = fractions.Fraction(1, 90000)


@dataclass
class LiveServer:
    url: str
    app: web.Application

    @property
    def service(self) -> Service:
        return self.app[SERVICE]


@contextlib.asynccontextmanager
async def live_server(config: ServeConfig, make_processor: ProcessorFactory | None = None) -> AsyncIterator[LiveServer]:
    """The real app on 127.0.0.1 and a free port, cleaned up (peers closed, threads joined) on exit."""
    app = create_app(config, make_processor=make_processor)
    runner = make_runner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app)
    finally:
        await runner.cleanup()


class ClipTrack(MediaStreamTrack):
    """A camera made from a clip: frames at the clip's own rate, optionally scaled, looping.

    ``stall()`` makes ``recv`` wait forever, like a publisher whose camera or network just stopped.
    """

    kind = "video"

    def __init__(self, path: Path, size: tuple[int, int] | None = None, loop: bool = True) -> None:
        super().__init__()
        self._path = path
        self._size = size
        self._looping = loop
        self._container = av.open(str(path))
        stream = self._container.streams.video[0]
        self.fps = float(stream.average_rate or 30)
        self._frames = self._container.decode(stream)
        self._start: float | None = None
        self._stalled = asyncio.Event()
        self.sent = 0

    def stall(self) -> None:
        self._stalled.set()

    def _next_frame(self) -> av.VideoFrame:
        try:
            frame = next(self._frames)
        except StopIteration:
            if not self._looping:
                raise MediaStreamError from None
            self._container.seek(0)
            self._frames = self._container.decode(self._container.streams.video[0])
            frame = next(self._frames)
        if self._size is not None:
            frame = frame.reformat(width=self._size[0], height=self._size[1], format="yuv420p")
        return frame

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._stalled.is_set():
            await asyncio.Event().wait()
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self.sent / self.fps
        if due > now:
            await asyncio.sleep(due - now)
        frame = self._next_frame()
        frame.pts = round(self.sent * 90000 / self.fps)
        frame.time_base = VIDEO_TIME_BASE
        self.sent += 1
        return frame

    def stop(self) -> None:
        super().stop()
        self._container.close()


def _rtc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


@dataclass
class Session:
    pc: RTCPeerConnection
    location: str
    answer_status: int


async def publish(http: aiohttp.ClientSession, base: str, stream: str, track: MediaStreamTrack) -> Session:
    """WHIP: offer ``track``, POST it, apply the answer. Raises AssertionError with the body on a non-201."""
    pc = _rtc()
    pc.addTransceiver(track, direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(
        f"{base}/whip/{stream}", data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}
    ) as r:
        body = await r.text()
        if r.status != 201:
            await pc.close()
            raise AssertionError(f"WHIP POST {stream}: {r.status} {body}")
        location = r.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    return Session(pc, location, 201)


@dataclass
class Viewer:
    pc: RTCPeerConnection
    location: str
    times: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    keep_every: int = 0
    task: asyncio.Task[None] | None = None
    error: BaseException | None = None
    audio_times: list[float] = field(default_factory=list)
    """When each audio frame arrived (viewers made with ``audio=True``)."""
    audio_samples: int = 0
    audio_peaks: list[int] = field(default_factory=list)
    """The loudest sample of each audio frame (0..32767): silence is 0."""
    audio_task: asyncio.Task[None] | None = None

    def fps(self, since_s: float, until_s: float | None = None) -> float:
        until_s = time.monotonic() if until_s is None else until_s
        t = [x for x in self.times if since_s <= x <= until_s]
        if len(t) < 2:
            return 0.0
        return (len(t) - 1) / (t[-1] - t[0])

    async def _consume(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.times.append(time.monotonic())
                if self.keep_every and len(self.times) % self.keep_every == 0:
                    self.frames.append(frame.to_ndarray(format="bgr24"))  # type: ignore[union-attr]
        except MediaStreamError:
            return
        except BaseException as exc:
            self.error = exc
            raise

    async def _consume_audio(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.audio_times.append(time.monotonic())
                self.audio_samples += frame.samples  # type: ignore[union-attr]
                self.audio_peaks.append(int(np.abs(frame.to_ndarray().astype(np.int32)).max()))  # type: ignore[union-attr]
        except MediaStreamError:
            return

    async def close(self) -> None:
        for task in (self.task, self.audio_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                    await task
        await self.pc.close()


async def view(
    http: aiohttp.ClientSession,
    base: str,
    stream: str,
    which: str = "processed",
    keep_every: int = 0,
    audio: bool = False,
    codec: str | None = None,
) -> Viewer:
    """WHEP: a recvonly offer, POST it, start counting (and optionally keeping) received frames.

    ``audio``: offer to receive sound too; ``codec`` (``"video/H264"``, ``"video/VP8"``): offer only it."""
    pc = _rtc()
    video = pc.addTransceiver("video", direction="recvonly")
    if codec is not None:
        caps = RTCRtpReceiver.getCapabilities("video")
        video.setCodecPreferences([c for c in caps.codecs if c.mimeType in (codec, "video/rtx")])
    if audio:
        pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with http.post(
        f"{base}/whep/{stream}?view={which}",
        data=pc.localDescription.sdp,
        headers={"Content-Type": "application/sdp"},
    ) as r:
        body = await r.text()
        if r.status != 201:
            await pc.close()
            raise AssertionError(f"WHEP POST {stream}: {r.status} {body}")
        location = r.headers["Location"]
    await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
    viewer = Viewer(pc, location, keep_every=keep_every)
    for receiver in pc.getReceivers():
        if receiver.track.kind == "video":
            viewer.task = asyncio.ensure_future(viewer._consume(receiver.track))
        else:
            viewer.audio_task = asyncio.ensure_future(viewer._consume_audio(receiver.track))
    return viewer


async def enroll_unverified(http: aiohttp.ClientSession, base: str, name: str, photo: Path) -> None:
    """Enroll ``photo`` as ``name`` through the API, explicitly without a consent record (a test identity)."""
    form = aiohttp.FormData(default_to_multipart=True)
    form.add_field("name", name)
    form.add_field("allow_unverified", "true")
    form.add_field("photo", photo.read_bytes(), filename=photo.name)
    async with http.post(f"{base}/api/identities", data=form) as r:
        assert r.status == 201, await r.text()


async def wait_for(predicate: Any, timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout_s`` passed; returns its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return bool(value)
        await asyncio.sleep(interval_s)


def service_threads() -> list[str]:
    """Threads the service starts (workers, encoders, sources) and aiortc's codec threads."""
    return sorted(
        t.name
        for t in threading.enumerate()
        if t.name.startswith(("worker-", "encode-", "source-", "audio-")) or "decoder" in t.name or "encoder" in t.name
    )


def threads_left(before: list[str]) -> list[str]:
    """``service_threads()`` that were not running at ``before`` (a multiset difference): what a stream left behind.
    A thread another test left winding down may be in ``before`` and end meanwhile; that is no leak of this one."""
    left = Counter(service_threads())
    left.subtract(Counter(before))
    return sorted(name for name, n in left.items() for _ in range(n))


async def _view_forever(base: str, stream: str) -> None:
    """Child-process viewer: prints one line per 10 frames so the parent sees it is alive."""
    async with aiohttp.ClientSession() as http:
        viewer = await view(http, base, stream)
        print("ready", flush=True)
        n = 0
        while True:
            await asyncio.sleep(0.2)
            if len(viewer.times) // 10 != n:
                n = len(viewer.times) // 10
                print(f"frames {len(viewer.times)}", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "view":
        asyncio.run(_view_forever(sys.argv[2], sys.argv[3]))
    else:
        print("usage: python -m tests.live_helpers view BASE_URL STREAM", file=sys.stderr)
        sys.exit(2)


def change_settings(stream: Any, patch: dict[str, Any]) -> None:
    """A settings change made to a stream used on its own, the way the service makes it: planned
    (``streamer.plan.make_plan``, against the stream's data directory) and applied on the plan's version."""
    from streamer.plan import StoreResolver, make_plan

    data = stream.config.data_dir
    resolver = StoreResolver(data / "identities", data / "hdri")
    current = stream.plan
    stream.apply_plan(make_plan(current, patch, resolver, stream.name).plan, current.version)

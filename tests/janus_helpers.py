"""Janus for the tests: Debian's ``janus`` started on loopback ports with a generated config, and a viewer
that watches a Streaming mountpoint through it with aiortc (what Janus's JS client does in a browser).

``make janus-setup`` (part of ``make test``) installs Janus with apt-get when it is missing, as
``browser-setup`` installs chromium; where it is not installed the tests that need it skip with that reason.
Each ``JanusProcess`` has its own folder, HTTP port, RTP port range and Streaming admin key, and nothing but
the Streaming plugin and the HTTP transport loaded; it can be killed (SIGKILL, as a crash) and started again
on the same ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

JANUS = shutil.which("janus") or "/usr/bin/janus"
PLUGINS_DIR = Path("/usr/lib/x86_64-linux-gnu/janus/plugins")
TRANSPORTS_DIR = Path("/usr/lib/x86_64-linux-gnu/janus/transports")
START_TIMEOUT_S = 15.0


def janus_missing() -> str | None:
    """Why Janus cannot run here, or None when it can."""
    if not Path(JANUS).is_file():
        return "janus is not installed (make janus-setup installs it with apt-get, as root)"
    for folder in (PLUGINS_DIR, TRANSPORTS_DIR):
        if not folder.is_dir():
            found = sorted(Path("/usr/lib").glob(f"*/janus/{folder.name}"))
            if not found:
                return f"janus is installed but its {folder.name} folder is not where Debian puts it"
    return None


def need_janus() -> None:
    reason = janus_missing()
    if reason is not None:
        pytest.skip(reason)


def _folder(default: Path) -> Path:
    if default.is_dir():
        return default
    return sorted(Path("/usr/lib").glob(f"*/janus/{default.name}"))[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_OTHER_PLUGINS = [
    "audiobridge",
    "duktape",
    "echotest",
    "lua",
    "nosip",
    "recordplay",
    "sip",
    "textroom",
    "videocall",
    "videoroom",
    "voicemail",
]
_OTHER_TRANSPORTS = ["mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets"]


@dataclass
class JanusProcess:
    """One Janus on loopback: ``url`` is its HTTP API, ``admin_key`` the Streaming plugin's admin key."""

    folder: Path
    http_port: int = field(default_factory=free_port)
    admin_key: str = field(default_factory=lambda: secrets.token_hex(12))
    rtp_base: int = field(default_factory=lambda: random.randrange(20000, 59000, 200))
    name: str = field(default_factory=lambda: f"stageswap-test-{secrets.token_hex(4)}")
    """Janus's ``server_name``: /info answering it is this Janus, started and serving, not another listener."""
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/janus"

    @property
    def log_path(self) -> Path:
        return self.folder / "janus.log"

    def write_config(self) -> None:
        """janus.jcfg (ICE and RTP ports from a range of our own), the Streaming plugin with its admin key,
        the HTTP transport on 127.0.0.1 only; everything else off."""
        self.folder.mkdir(parents=True, exist_ok=True)
        plugins = ",".join(f"libjanus_{p}.so" for p in _OTHER_PLUGINS)
        transports = ",".join(f"libjanus_{t}.so" for t in _OTHER_TRANSPORTS)
        ice = f"{self.rtp_base}-{self.rtp_base + 99}"
        mounts = f"{self.rtp_base + 100}-{self.rtp_base + 199}"
        (self.folder / "janus.jcfg").write_text(
            f"""general: {{
  configs_folder = "{self.folder}"
  plugins_folder = "{_folder(PLUGINS_DIR)}"
  transports_folder = "{_folder(TRANSPORTS_DIR)}"
  events_folder = "{self.folder}/none"
  loggers_folder = "{self.folder}/none"
  debug_level = 4
  debug_colors = false
  session_timeout = 60
  server_name = "{self.name}"
}}
media: {{ rtp_port_range = "{ice}" }}
nat: {{ ice_ignore_list = "vmnet" }}
plugins: {{ disable = "{plugins}" }}
transports: {{ disable = "{transports}" }}
events: {{ broadcast = false }}
"""
        )
        (self.folder / "janus.plugin.streaming.jcfg").write_text(
            f'general: {{\n  admin_key = "{self.admin_key}"\n  rtp_port_range = "{mounts}"\n  events = false\n}}\n'
        )
        (self.folder / "janus.transport.http.jcfg").write_text(
            f"""general: {{ json = "compact" base_path = "/janus" http = true https = false
  port = {self.http_port} ip = "127.0.0.1" }}
admin: {{ admin_http = false }}
cors: {{}}
"""
        )

    def start(self) -> None:
        self.write_config()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [JANUS, "-C", str(self.folder / "janus.jcfg"), "-F", str(self.folder)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"janus exited at start:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            if self._serving():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"janus did not serve within {START_TIMEOUT_S} s:\n{self.log_path.read_text()[-3000:]}")

    def _serving(self) -> bool:
        """Its HTTP API answers /info with its own name. A listening port alone was not enough: a CI run's
        first request after that (the wrong-admin-key test, which has no retry) got "Server disconnected"."""
        try:
            with urllib.request.urlopen(f"{self.url}/info", timeout=0.5) as answer:
                info = json.load(answer)
        except (OSError, ValueError):
            return False
        return isinstance(info, dict) and info.get("server-name") == self.name

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to anyone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


@contextlib.contextmanager
def janus_process(folder: Path) -> Iterator[JanusProcess]:
    need_janus()
    janus = JanusProcess(folder)
    janus.start()
    try:
        yield janus
    finally:
        janus.stop()


async def janus_post(http: aiohttp.ClientSession, url: str, body: dict[str, object]) -> dict[str, object]:
    async with http.post(url, json={**body, "transaction": secrets.token_hex(6)}) as r:
        answer: dict[str, object] = await r.json(content_type=None)
    return answer


@dataclass
class JanusViewer:
    """A viewer of one Streaming mountpoint: its own Janus session, an aiortc peer answering Janus's offer."""

    pc: RTCPeerConnection
    url: str
    session: int
    times: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    keep_every: int = 0
    task: asyncio.Task[None] | None = None
    on_frame: Callable[[Any, float], None] | None = None

    async def _consume(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                now = time.monotonic()
                self.times.append(now)
                if self.on_frame is not None:
                    self.on_frame(frame, now)
                if self.keep_every and len(self.times) % self.keep_every == 0:
                    self.frames.append(frame.to_ndarray(format="bgr24"))  # type: ignore[union-attr]

    async def close(self, http: aiohttp.ClientSession | None = None) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, MediaStreamError):
                await self.task
        await self.pc.close()
        if http is not None:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                await janus_post(http, f"{self.url}/{self.session}", {"janus": "destroy"})


async def watch(
    http: aiohttp.ClientSession,
    url: str,
    mountpoint: int,
    keep_every: int = 0,
    timeout_s: float = 10.0,
    on_frame: Callable[[Any, float], None] | None = None,
    on_peer: Callable[[RTCPeerConnection], None] | None = None,
    consume: bool = True,
) -> JanusViewer:
    """Watch ``mountpoint`` through the Janus at ``url`` (the Streaming plugin's watch/start exchange);
    ``on_frame(frame, received_s)`` is called with each frame as it arrives. ``on_peer(pc)`` is called with
    the peer connection once it has Janus's offer, before it answers (a benchmark takes over its RTP there);
    with ``consume=False`` the track is not read."""
    created = await janus_post(http, url, {"janus": "create"})
    session = int(created["data"]["id"])  # type: ignore[index]
    attached = await janus_post(http, f"{url}/{session}", {"janus": "attach", "plugin": "janus.plugin.streaming"})
    handle = int(attached["data"]["id"])  # type: ignore[index]
    await janus_post(
        http, f"{url}/{session}/{handle}", {"janus": "message", "body": {"request": "watch", "id": mountpoint}}
    )
    offer = None
    deadline = time.monotonic() + timeout_s
    while offer is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"Janus sent no offer for mountpoint {mountpoint}")
        async with http.get(f"{url}/{session}?maxev=1", timeout=aiohttp.ClientTimeout(total=timeout_s)) as r:
            event = await r.json(content_type=None)
        data = (event.get("plugindata") or {}).get("data") or {}
        if "error" in data:
            raise AssertionError(f"Janus refused to play mountpoint {mountpoint}: {data['error']}")
        offer = event.get("jsep")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    viewer = JanusViewer(pc, url, session)
    await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
    if on_peer is not None:
        on_peer(pc)
    await pc.setLocalDescription(await pc.createAnswer())
    body = {
        "janus": "message",
        "body": {"request": "start"},
        "jsep": {"type": "answer", "sdp": pc.localDescription.sdp},
    }
    await janus_post(http, f"{url}/{session}/{handle}", body)
    track = pc.getReceivers()[0].track
    viewer.keep_every = keep_every
    viewer.on_frame = on_frame
    if consume:
        viewer.task = asyncio.ensure_future(viewer._consume(track))
    return viewer

"""Streams out through an SFU: each stream's views sent once to Janus, which serves the monitors.

Our own fan-out encodes once per view but still packetises and encrypts per WebRTC viewer in Python: right
for a handful of monitors, not for a video village of a hundred. With ``--sfu URL`` every stream also goes to
a Janus instance, as plain RTP into Streaming-plugin mountpoints (README, "A stage", says why a mountpoint
and not a VideoRoom publisher), and Janus does the per-viewer work in C, on this machine or another.

One ``SfuLink`` per stream owns that stream's mountpoints: it opens a Janus session, creates one RTP
mountpoint per view through Janus's API (with the Streaming plugin's admin key; a random secret per
mountpoint guards its removal), subscribes an ``RtpOutput`` to the view's shared encoder, then asks Janus
about each mountpoint every ``check_interval_s`` (its viewer count, and a session kept alive). When Janus
stops answering the link says so (``state: "down"`` with the reason, in the stream JSON) and tries again
with a back-off, the RTP still going where it went (UDP: nothing waits for a receiver, and a Janus that was
only slow to answer keeps its monitors). When Janus answers again the link uses the mountpoints it still
has (its secret opens them), or creates them again under the same ids (a Janus that restarted), so monitors
that reconnect find them where they were. Nothing here touches the worker, the recorder or our own WHEP
viewers: they go on whatever Janus does. When the stream ends its mountpoints are destroyed.

``SfuManager`` keeps the links of one server (started with each stream, closed with it) and reports each
as the ``sfu`` key of the stream JSON. ``register(app)`` wires it into the service and serves Janus's JS
client (fetched from npm by ``make janus-setup``) at ``/sfu/janus.js`` and ``/sfu/adapter.js``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import aiohttp
from aiohttp import web

from engines.errors import InputError
from streamer.config import SfuConfig
from streamer.errors import NotFoundError
from streamer.live.fanout import CODECS, VIEWS, Codec, OutputFanout, SharedEncoder, View
from streamer.live.janus import (
    ERROR_MOUNTPOINT_EXISTS,
    ERROR_NO_SUCH_MOUNTPOINT,
    ERROR_UNAUTHORIZED,
    VIDEO_PT,
    JanusError,
    JanusSession,
    MountpointPorts,
)
from streamer.live.rtp_out import RtcpChannel, RtpOutput
from streamer.live.streams import Stream
from streamer.service import SERVICE, Service, StreamSetting

log = logging.getLogger(__name__)

SfuState = Literal["connecting", "up", "down", "closed"]
MOUNTPOINT_ID_MAX = 2**53 - 1
"""Janus's numeric ids are 64-bit, but browsers hold them as JavaScript numbers: stay within 2**53."""
CLOSE_TIMEOUT_S = 3.0


@dataclass
class Mount:
    """One view's mountpoint on Janus and what feeds it."""

    view: View
    id: int
    secret: str = dataclasses.field(repr=False)
    output: RtpOutput | None = None
    rtcp: RtcpChannel | None = None
    encoder: SharedEncoder | None = None
    viewers: int | None = None
    """Janus's own count of the mountpoint's viewers (None until it first answered)."""
    ports: MountpointPorts | None = None
    """Where Janus receives this mountpoint's RTP now (the output sends there)."""

    def request_keyframe(self) -> None:
        if self.encoder is not None:
            self.encoder.request_keyframe()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "viewers": self.viewers}
        if self.output is not None:
            out.update(self.output.stats())
        out["keyframe_requests"] = self.rtcp.keyframe_requests if self.rtcp is not None else 0
        return out


class SfuLink:
    """One stream's mountpoints on one Janus, kept up for as long as the stream lives (see the module doc)."""

    def __init__(
        self,
        stream: str,
        fanout: OutputFanout,
        config: SfuConfig,
        http: aiohttp.ClientSession,
        views: tuple[View, ...] | None = None,
        codec: Codec | None = None,
    ) -> None:
        self.stream = stream
        self.fanout = fanout
        self.config = config
        self.http = http
        self.views: tuple[View, ...] = views or tuple(config.views)  # type: ignore[arg-type]
        self.codec: Codec = codec or config.codec  # type: ignore[assignment]
        self.mounts: dict[View, Mount] = {
            view: Mount(view, random.randint(1, MOUNTPOINT_ID_MAX), secrets.token_urlsafe(18)) for view in self.views
        }
        self.state: SfuState = "connecting"
        self.error: str | None = None
        self.since_s = time.monotonic()
        self.connects = 0
        """How many times the mountpoints were set up (1 after the first; each Janus comeback adds one)."""
        self._session: JanusSession | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"sfu-{self.stream}")

    @property
    def reconnects(self) -> int:
        return max(0, self.connects - 1)

    def _set_state(self, state: SfuState, error: str | None = None) -> None:
        if state != self.state:
            self.since_s = time.monotonic()
            if state == "down":
                log.warning("stream %s: SFU %s is down: %s", self.stream, self.config.url, error)
            elif state == "up":
                ids = ", ".join(f"{m.view} {m.id}" for m in self.mounts.values())
                log.info("stream %s: sending to SFU %s (mountpoints %s)", self.stream, self.config.url, ids)
        self.state = state
        self.error = error

    async def _run(self) -> None:
        delay_s = 0.5
        while True:
            try:
                await self._connect()
                self.connects += 1
                self._set_state("up")
                delay_s = 0.5
                while True:
                    await asyncio.sleep(self.config.check_interval_s)
                    await self._check()
            except (JanusError, OSError) as exc:  # OSError: a socket for the RTP or RTCP could not be made
                self._session = None  # not closed: Janus may be gone; a session it still has times out there
                self._set_state("down", str(exc))
            except Exception as exc:  # a bug must not leave the stream saying "up" while nothing is sent
                log.exception("stream %s: the SFU link failed", self.stream)
                self._session = None
                self._set_state("down", f"internal error: {type(exc).__name__}")
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, self.config.retry_max_s)

    async def _connect(self) -> None:
        """A session, then each view's mountpoint: the one this link made before when Janus still has it (a
        slow answer or a network blip leaves the monitors watching it undisturbed), else made again under the
        same id (Janus restarted); the RTP goes wherever the mountpoint listens now."""
        session = JanusSession(self.http, self.config.url, self.config.admin_key, self.config.request_timeout_s)
        await session.open()
        self._session = session
        family, address = await _resolve(self.config.rtp_host)
        for mount in self.mounts.values():
            ports = await self._mountpoint(session, mount)
            if mount.output is None or mount.ports != ports or mount.output.address[0] != address:
                self._detach_mount(mount)
                mount.output = RtpOutput(self.codec, VIDEO_PT[self.codec], (address, ports.rtp_port), family)
                rtcp_address = (address, ports.rtcp_port)
                mount.rtcp = await RtcpChannel.open(mount.output, rtcp_address, mount.request_keyframe, family)
                mount.encoder = self.fanout.subscribe(mount.view, self.codec, mount.output, output=True)
                mount.ports = ports
            assert mount.rtcp is not None
            mount.rtcp.send_report()  # Janus learns where to send its viewers' keyframe requests

    async def _mountpoint(self, session: JanusSession, mount: Mount) -> MountpointPorts:
        """The mountpoint's ports: this link's own when Janus still has it, else a new one (raises JanusError)."""
        for _attempt in range(3):
            try:
                return await session.mountpoint_ports(mount.id, mount.secret)
            except JanusError as exc:
                if exc.code == ERROR_UNAUTHORIZED:  # someone else's id (our secret does not open it)
                    mount.id = random.randint(1, MOUNTPOINT_ID_MAX)
                elif exc.code != ERROR_NO_SUCH_MOUNTPOINT:
                    raise
            try:
                return await session.create_mountpoint(
                    mount.id, f"stageswap {self.stream} {mount.view}", mount.secret, self.codec
                )
            except JanusError as exc:
                if exc.code != ERROR_MOUNTPOINT_EXISTS:
                    raise
                mount.id = random.randint(1, MOUNTPOINT_ID_MAX)  # taken meanwhile: another id
        raise JanusError(f"Janus refused three mountpoint ids for {self.stream} {mount.view}")

    async def _check(self) -> None:
        session = self._session
        if session is None:
            raise JanusError("no Janus session")
        for mount in self.mounts.values():
            info = await session.mountpoint_info(mount.id, mount.secret)
            viewers = info.get("viewers")
            mount.viewers = int(viewers) if isinstance(viewers, int) else None
            if mount.rtcp is not None:
                mount.rtcp.send_report()

    def _detach_mount(self, mount: Mount) -> None:
        if mount.output is not None:
            self.fanout.unsubscribe(mount.view, self.codec, mount.output)
            mount.output.close()
        if mount.rtcp is not None:
            mount.rtcp.close()
        mount.output, mount.rtcp, mount.encoder, mount.viewers, mount.ports = None, None, None, None, None

    async def close(self) -> None:
        """Stop sending and remove the mountpoints from Janus (a Janus that is down is not waited for)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for mount in self.mounts.values():
            self._detach_mount(mount)
        session, self._session = self._session, None
        with contextlib.suppress(JanusError, TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                if session is None:  # Janus was down when last asked: it may be back, with our mountpoints
                    session = JanusSession(
                        self.http, self.config.url, self.config.admin_key, self.config.request_timeout_s
                    )
                    await session.open()
                for mount in self.mounts.values():
                    with contextlib.suppress(JanusError):  # already gone (a Janus that restarted)
                        await session.destroy_mountpoint(mount.id, mount.secret)
                await session.close()
        self._set_state("closed")

    def to_dict(self) -> dict[str, Any]:
        """The stream JSON's ``sfu``: where browsers watch it, the state, and each view's mountpoint."""
        return {
            "url": self.config.browser_url,
            "state": self.state,
            "error": self.error,
            "state_for_s": round(time.monotonic() - self.since_s, 1),
            "reconnects": self.reconnects,
            "codec": self.codec,
            "mountpoints": {view: mount.to_dict() for view, mount in self.mounts.items()},
        }


async def _resolve(host: str) -> tuple[int, str]:
    """The address family and address RTP goes to (Janus's host, resolved once per connection)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise JanusError(f"cannot resolve the SFU host {host!r}: {exc}") from exc
    family, _, _, _, sockaddr = infos[0]
    return int(family), str(sockaddr[0])


class SfuManager:
    """The SFU links of one server: one per stream that sends to Janus (used on the event loop only)."""

    def __init__(self, service: Service, config: SfuConfig) -> None:
        self.service = service
        self.config = config
        self.links: dict[str, SfuLink] = {}
        """Each stream's link to ``config.url``: the Janus monitors are pointed at."""
        self.copies: dict[str, list[SfuLink]] = {}
        """Each stream's links to the ``config.copies`` Janus instances (the cascade)."""
        self._copy_configs = tuple(
            dataclasses.replace(config, url=url, public_url=None, copies=()) for url in config.copies
        )
        self._http: aiohttp.ClientSession | None = None
        self._closing: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        for stream in self.service.streams:  # streams that started before us (inputs)
            self.stream_started(stream.name)

    def stream_started(self, name: str) -> None:
        if self.config.enabled:
            self.enable(name)

    def enable(self, name: str, views: tuple[View, ...] | None = None, codec: Codec | None = None) -> SfuLink:
        """Send stream ``name`` to Janus (a running link with other views or codec is replaced)."""
        stream = self.service.streams.get(name)
        link = self.links.get(name)
        if link is not None:
            if (views is None or views == link.views) and (codec is None or codec == link.codec):
                return link
            views, codec = views or link.views, codec or link.codec
            self.disable(name)
        if self._http is None:
            raise NotFoundError("the SFU output is not started")
        link = SfuLink(name, stream.fanout, self.config, self._http, views, codec)
        self.links[name] = link
        self.copies[name] = [SfuLink(name, stream.fanout, c, self._http, views, codec) for c in self._copy_configs]
        for each in (link, *self.copies[name]):
            each.start()
        return link

    def disable(self, name: str) -> None:
        """Stop sending stream ``name`` to Janus; its mountpoints are removed in the background."""
        link = self.links.pop(name, None)
        for each in ([link] if link is not None else []) + self.copies.pop(name, []):
            task = asyncio.get_running_loop().create_task(each.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def status(self, name: str) -> dict[str, Any] | None:
        link = self.links.get(name)
        if link is None:
            return None
        return {**link.to_dict(), "copies": [copy.to_dict() for copy in self.copies.get(name, [])]}

    # -- the ``sfu`` setting (PATCH {"sfu": ...}, through the one settings path: Service.stream_settings) --------

    def check_setting(self, stream: Stream, value: Any) -> tuple[tuple[View, ...], Codec] | None:
        """``false``/``null``: not sent; ``true``: the server's views and codec; ``{"views": [...], "codec": ...}``."""
        return parse_setting(value, self.config)

    def apply_setting(self, stream: Stream, value: tuple[tuple[View, ...], Codec] | None) -> None:
        if value is None:
            self.disable(stream.name)
        else:
            self.enable(stream.name, *value)

    def current_setting(self, name: str) -> dict[str, Any] | bool:
        link = self.links.get(name)
        return {"views": list(link.views), "codec": link.codec} if link is not None else False

    def on_event(self, event: Mapping[str, Any]) -> None:
        name = event.get("stream")
        if not isinstance(name, str):
            return
        if event.get("type") == "stream_started":
            self.stream_started(name)
        elif event.get("type") == "stream_ended":
            self.disable(name)

    async def close(self) -> None:
        links = [*self.links.values(), *(c for copies in self.copies.values() for c in copies)]
        self.links, self.copies = {}, {}
        await asyncio.gather(*(link.close() for link in links), *self._closing, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
            self._http = None


def parse_setting(value: Any, config: SfuConfig | None) -> tuple[tuple[View, ...], Codec] | None:
    """The ``sfu`` value of a settings patch, checked: None (not sent) or (views, codec). Raises InputError."""
    if value is None or value is False:
        return None
    if config is None:
        raise InputError("sfu: this server sends streams to no SFU: start it with --sfu URL (a Janus HTTP API)")
    if value is True:
        return cast(tuple[View, ...], tuple(config.views)), cast(Codec, config.codec)
    if not isinstance(value, Mapping):
        raise InputError(f'sfu must be true, false or {{"views": [...], "codec": ...}}, got {value!r}')
    unknown = sorted(set(value) - {"views", "codec"})
    if unknown:
        raise InputError(f"sfu: unknown key {unknown[0]!r} (known: views, codec)")
    views = value.get("views", list(config.views))
    if not isinstance(views, list) or not views or any(v not in VIEWS for v in views) or len(set(views)) != len(views):
        raise InputError(f"sfu.views must be a list of {', '.join(VIEWS)} (each once), got {views!r}")
    codec = value.get("codec", config.codec)
    if codec not in CODECS:
        raise InputError(f"sfu.codec must be one of {', '.join(CODECS)}, got {codec!r}")
    return cast(tuple[View, ...], tuple(views)), cast(Codec, codec)


SFU = web.AppKey("stageswap_sfu", SfuManager)

VENDOR_FILES = {
    "janus.js": ("janus-gateway", "src", "janus.js"),
    "adapter.js": ("webrtc-adapter", "out", "adapter.js"),
}
"""What the monitor page loads to watch through Janus: Janus's JS client and the WebRTC adapter it needs,
as npm publishes them (installed by ``make janus-setup`` into ``vendor/node_modules``, never copied)."""


async def vendor_file(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    parts = VENDOR_FILES.get(name)
    if parts is None:
        raise NotFoundError(f"no file {name!r} here (known: {', '.join(sorted(VENDOR_FILES))})")
    path = request.app[SERVICE].config.vendor_dir.joinpath(*parts)
    if not path.is_file():
        raise NotFoundError(f"{path} is not installed: run make janus-setup (Janus's JS client from npm)")
    return web.FileResponse(path, headers={"Cache-Control": "no-cache", "Content-Type": "text/javascript"})


def _off(name: str) -> bool:
    return False


async def _start(app: web.Application) -> None:
    await app[SFU].start()


async def _stop(app: web.Application) -> None:
    await app[SFU].close()


def register(app: web.Application) -> None:
    """Route group: Janus's JS client for the pages, and (with ``--sfu``) every stream sent to Janus."""
    app.router.add_get("/sfu/{name}", vendor_file)
    service = app[SERVICE]
    if service.config.sfu is None:
        refuse = StreamSetting(
            check=lambda stream, value: parse_setting(value, None), apply=lambda stream, value: None, current=_off
        )
        service.add_stream_setting("sfu", refuse)
        service.streams.status_providers["sfu"] = lambda name: None  # the stream JSON's sfu: null, not absent
        return
    manager = SfuManager(service, service.config.sfu)
    app[SFU] = manager
    service.add_stream_setting(
        "sfu", StreamSetting(manager.check_setting, manager.apply_setting, manager.current_setting)
    )
    service.streams.status_providers["sfu"] = manager.status
    service.listeners.append(manager.on_event)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)

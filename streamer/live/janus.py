"""A small client of Janus's HTTP API (the REST transport), for the Streaming plugin's mountpoints.

Janus (Meetecho's WebRTC server, Debian's ``janus`` 1.1) is driven by JSON messages POSTed to its HTTP
transport: ``{"janus": "create"}`` on the base URL makes a session, ``{"janus": "attach", "plugin": ...}`` on
the session a plugin handle, and ``{"janus": "message", "body": {...}}`` on the handle a plugin request.
The Streaming plugin answers its admin requests (``create``, ``destroy``, ``info``) synchronously, in the HTTP
response, so no long-poll is needed to manage mountpoints. Any request on a session also keeps it alive.

Only what stageswap needs is here: one session with one Streaming handle, mountpoints created with the
plugin's ``admin_key`` (read from a file by the command line, never logged) and removed again. Every
failure -- Janus unreachable, a timeout, an error answer -- is a ``JanusError`` with Janus's own reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from engines.errors import StageswapError

STREAMING_PLUGIN = "janus.plugin.streaming"
VIDEO_PT = {"vp8": 96, "h264": 102}
"""RTP payload types stageswap sends (any dynamic type works; these match what browsers offer)."""
H264_FMTP = "profile-level-id=42e01f;packetization-mode=1"
"""Constrained Baseline, the profile ``streamer.live.fanout.VideoEncoder`` encodes for WebRTC viewers."""
ERROR_NO_SUCH_SESSION = 458
ERROR_NO_SUCH_MOUNTPOINT = 455
"""The Streaming plugin's JANUS_STREAMING_ERROR_NO_SUCH_MOUNTPOINT."""
ERROR_MOUNTPOINT_EXISTS = 456
ERROR_UNAUTHORIZED = 457
"""The Streaming plugin's JANUS_STREAMING_ERROR_UNAUTHORIZED: a wrong admin key, or another's mountpoint secret."""
"""The Streaming plugin's JANUS_STREAMING_ERROR_CANT_CREATE (an id already in use among others)."""


class JanusError(StageswapError):
    """Janus could not be reached, timed out, or refused a request (``code`` is Janus's error code, if any)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class MountpointPorts:
    """Where Janus listens for one mountpoint's video: RTP and RTCP ports on Janus's host."""

    mountpoint: int
    rtp_port: int
    rtcp_port: int


@dataclass
class JanusSession:
    """One Janus session with a Streaming-plugin handle. ``open`` it, use it, ``close`` it.

    ``admin_key`` is the Streaming plugin's ``admin_key`` (needed to create mountpoints when Janus sets one).
    """

    http: aiohttp.ClientSession
    url: str
    admin_key: str | None = field(default=None, repr=False)
    timeout_s: float = 2.0
    session_id: int | None = None
    handle_id: int | None = None

    async def open(self) -> None:
        """Create the session and attach the Streaming plugin (raises JanusError)."""
        created = await self._post(self.url, {"janus": "create"})
        self.session_id = int(created["data"]["id"])
        attached = await self._post(f"{self.url}/{self.session_id}", {"janus": "attach", "plugin": STREAMING_PLUGIN})
        self.handle_id = int(attached["data"]["id"])

    async def close(self) -> None:
        """Destroy the session (and with it the handle); a Janus that is gone is not an error here."""
        if self.session_id is None:
            return
        session, self.session_id, self.handle_id = self.session_id, None, None
        with contextlib.suppress(JanusError):
            await self._post(f"{self.url}/{session}", {"janus": "destroy"})

    async def server_info(self) -> dict[str, Any]:
        """``GET /info``: Janus's version and settings (also a cheap "is it there" check)."""
        try:
            async with self.http.get(f"{self.url}/info", timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as r:
                body = await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise JanusError(f"Janus at {self.url} does not answer: {_reason(exc)}") from exc
        if not isinstance(body, dict) or body.get("janus") != "server_info":
            raise JanusError(f"{self.url} is not a Janus HTTP API (no server_info at /info)")
        return body

    async def request(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A synchronous Streaming-plugin request; returns the plugin's data (raises JanusError on its error)."""
        if self.session_id is None or self.handle_id is None:
            raise JanusError("the Janus session is not open")
        answer = await self._post(
            f"{self.url}/{self.session_id}/{self.handle_id}", {"janus": "message", "body": dict(body)}
        )
        data = answer.get("plugindata", {}).get("data", {})
        if not isinstance(data, dict):
            raise JanusError(f"Janus answered {body.get('request')!r} without plugin data")
        if "error_code" in data or "error" in data:
            raise JanusError(f"Janus refused {body.get('request')!r}: {data.get('error')}", data.get("error_code"))
        return data

    async def create_mountpoint(
        self, mountpoint: int, description: str, secret: str, codec: Literal["vp8", "h264"]
    ) -> MountpointPorts:
        """An RTP mountpoint for one video stream, Janus choosing free RTP and RTCP ports (``port: 0``).

        The RTCP port lets Janus pass the viewers' keyframe requests (PLI/FIR) back to the sender."""
        media: dict[str, Any] = {"type": "video", "mid": "v", "port": 0, "rtcpport": 0, "codec": codec}
        media["pt"] = VIDEO_PT[codec]
        if codec == "h264":
            media["fmtp"] = H264_FMTP
        body: dict[str, Any] = {
            "request": "create",
            "type": "rtp",
            "id": mountpoint,
            "description": description,
            "secret": secret,
            "permanent": False,
            "media": [media],
        }
        if self.admin_key is not None:
            body["admin_key"] = self.admin_key
        data = await self.request(body)
        try:
            port = data["stream"]["ports"][0]
            return MountpointPorts(mountpoint, int(port["port"]), int(port["rtcp_port"]))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise JanusError(f"Janus created mountpoint {mountpoint} but did not say its ports: {data}") from exc

    async def destroy_mountpoint(self, mountpoint: int, secret: str) -> None:
        await self.request({"request": "destroy", "id": mountpoint, "secret": secret, "permanent": False})

    async def mountpoint_ports(self, mountpoint: int, secret: str) -> MountpointPorts:
        """Where an existing mountpoint listens (JanusError 455 when there is none, 457 when it is not ours)."""
        info = await self.mountpoint_info(mountpoint, secret)
        try:
            media = info["media"][0]
            return MountpointPorts(mountpoint, int(media["port"]), int(media["rtcpport"]))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise JanusError(f"Janus's mountpoint {mountpoint} has no RTP and RTCP ports: {info}") from exc

    async def mountpoint_info(self, mountpoint: int, secret: str) -> dict[str, Any]:
        """The mountpoint as Janus sees it (``viewers``, ``media``...); JanusError 455 when it is gone."""
        info = (await self.request({"request": "info", "id": mountpoint, "secret": secret})).get("info")
        if not isinstance(info, dict):
            raise JanusError(f"Janus answered info on mountpoint {mountpoint} without the info")
        return info

    async def list_mountpoints(self) -> list[dict[str, Any]]:
        listed = (await self.request({"request": "list"})).get("list")
        return listed if isinstance(listed, list) else []

    async def _post(self, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        message = {**body, "transaction": secrets.token_hex(8)}
        try:
            async with self.http.post(url, json=message, timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as r:
                answer = await r.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise JanusError(f"Janus at {self.url} does not answer: {_reason(exc)}") from exc
        if not isinstance(answer, dict):
            raise JanusError(f"Janus at {self.url} answered {body.get('janus')!r} with something that is not JSON")
        if answer.get("janus") == "error":
            error = answer.get("error") or {}
            raise JanusError(f"Janus refused {body.get('janus')!r}: {error.get('reason')}", error.get("code"))
        if answer.get("janus") != "success":
            raise JanusError(f"Janus answered {body.get('janus')!r} with {answer.get('janus')!r}")
        return answer


def _reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__

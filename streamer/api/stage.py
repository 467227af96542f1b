"""One page for the stage: this node's streams and its peers' (``--peer NAME=URL``), with their health, and
their settings changed through this node.

A stage runs one stageswap process per GPU or camera. One of them (any) is given the others as peers and
serves the stage page (``client/stage.html``). It asks each peer for its streams every ``peer_poll_s``
(``GET /api/streams`` with that peer's own token), so the page reads one list; a peer that does not answer
within ``peer_timeout_s`` (refused, timed out, an error) is shown as down at once, with the reason and the
streams it had when last seen, and the others carry on. Changes go the same way: ``PATCH
/api/stage/{node}/streams/{stream}`` is applied here through the one settings path when the node is this
one, and forwarded to the peer's ``PATCH /api/streams/{stream}`` otherwise, where that node validates it
(its answer, refusals included, comes back as it is). Monitors of a peer's stream watch through Janus when
the stream is sent there, or by WHEP whose signalling this node relays (``POST
/api/stage/{node}/whep/{stream}``); the media goes between the browser and the peer directly.

Peers' tokens stay in this server: requests to a peer carry them, nothing sent to a browser does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from typing import Any, Literal

import aiohttp
from aiohttp import web

from engines.errors import InputError
from engines.paths import check_name
from streamer.api.routes import apply_settings, read_json
from streamer.config import PeerSpec, ServeConfig
from streamer.errors import NotFoundError
from streamer.live.webrtc import SDP_TYPE, read_sdp
from streamer.service import SERVICE

log = logging.getLogger(__name__)

NodeState = Literal["connecting", "up", "down"]
_SESSION = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""A WHEP session id as nodes make them (``streamer.live.webrtc``)."""


class PeerNode:
    """What this server knows of one peer: its state, why it is down, and its streams when last seen."""

    def __init__(self, spec: PeerSpec) -> None:
        self.spec = spec
        self.state: NodeState = "connecting"
        self.error: str | None = None
        self.streams: list[dict[str, Any]] = []
        self.last_seen_s: float | None = None
        self.since_s = time.monotonic()
        self.round_trip_ms: float | None = None

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.spec.token:
            headers["Authorization"] = f"Bearer {self.spec.token}"
        return headers

    def _set(self, state: NodeState, error: str | None) -> None:
        if state != self.state:
            self.since_s = time.monotonic()
            if state == "down":
                log.warning("peer %s (%s) is down: %s", self.spec.name, self.spec.url, error)
            elif state == "up":
                log.info("peer %s (%s) is up", self.spec.name, self.spec.url)
        self.state, self.error = state, error

    async def poll(self, http: aiohttp.ClientSession, timeout_s: float) -> None:
        t0 = time.monotonic()
        try:
            async with http.get(
                f"{self.spec.url}/api/streams",
                headers=self.headers(),
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as r:
                body = await r.json(content_type=None) if r.status == 200 else None
                if r.status != 200:
                    reason = await _reason(r)
                    self._set("down", f"{self.spec.url} answered {r.status}: {reason}")
                    return
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self._set("down", f"{self.spec.url} does not answer: {_text(exc)}")
            return
        streams = body.get("streams") if isinstance(body, dict) else None
        if not isinstance(streams, list):
            self._set("down", f"{self.spec.url} is not a stageswap server (no streams list)")
            return
        self.streams = [s for s in streams if isinstance(s, dict)]
        self.last_seen_s = time.monotonic()
        self.round_trip_ms = (self.last_seen_s - t0) * 1000.0
        self._set("up", None)

    def to_dict(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "name": self.spec.name,
            "url": self.spec.url,
            "local": False,
            "state": self.state,
            "error": self.error,
            "state_for_s": round(now - self.since_s, 1),
            "last_seen_s": round(now - self.last_seen_s, 1) if self.last_seen_s is not None else None,
            "round_trip_ms": round(self.round_trip_ms, 1) if self.round_trip_ms is not None else None,
            "streams": self.streams,
        }


class Stage:
    """This node and its peers; one polling task per peer (event loop only)."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.peers = {spec.name: PeerNode(spec) for spec in config.peers}
        self._http: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None:
            raise NotFoundError("the stage is not started")
        return self._http

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._watch(peer), name=f"peer-{name}") for name, peer in self.peers.items()]

    async def _watch(self, peer: PeerNode) -> None:
        while True:
            started = time.monotonic()
            await peer.poll(self.http, self.config.peer_timeout_s)
            await asyncio.sleep(max(0.0, self.config.peer_poll_s - (time.monotonic() - started)))

    def peer(self, name: str) -> PeerNode:
        check_name(name, "node name")
        peer = self.peers.get(name)
        if peer is None:
            known = ", ".join([self.config.node_name, *self.peers])
            raise NotFoundError(f"unknown node {name!r} (this stage: {known})")
        return peer

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._http is not None:
            await self._http.close()
            self._http = None


STAGE = web.AppKey("stageswap_stage", Stage)


async def _reason(response: aiohttp.ClientResponse) -> str:
    text = await response.text()
    with contextlib.suppress(ValueError):
        body = json.loads(text)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return str(body["error"])
    return text.strip()[:200] or response.reason or ""


def _text(exc: BaseException) -> str:
    return "timed out" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)


def _forward_error(peer: PeerNode, exc: BaseException) -> web.Response:
    return web.json_response({"error": f"node {peer.spec.name} does not answer: {_text(exc)}"}, status=502)


# -- routes ----------------------------------------------------------------------------------------------


async def stage_get(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    stage = request.app[STAGE]
    local = {
        "name": service.config.node_name,
        "url": None,
        "local": True,
        "state": "up",
        "error": None,
        "state_for_s": None,
        "last_seen_s": 0.0,
        "round_trip_ms": 0.0,
        "streams": [s.to_dict() for s in service.streams],
    }
    return web.json_response(
        {"node": service.config.node_name, "nodes": [local, *(p.to_dict() for p in stage.peers.values())]}
    )


async def stage_patch(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    node, name = request.match_info["node"], check_name(request.match_info["stream"], "stream name")
    if node == service.config.node_name:
        service.streams.get(name)
        await apply_settings(service, name, await read_json(request, service.config.json_max_bytes))
        return web.json_response(service.streams.get(name).to_dict())
    peer = request.app[STAGE].peer(node)
    patch = await read_json(request, service.config.json_max_bytes)  # the node validates it; JSON is checked here
    try:
        async with request.app[STAGE].http.patch(
            f"{peer.spec.url}/api/streams/{name}",
            json=patch,
            headers=peer.headers(),
            timeout=aiohttp.ClientTimeout(total=service.config.peer_timeout_s * 2),
        ) as r:
            return web.Response(body=await r.read(), status=r.status, content_type="application/json")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _forward_error(peer, exc)


async def stage_whep_post(request: web.Request) -> web.Response:
    """Relay a WHEP offer to the node that has the stream (a viewer never needs that node's token)."""
    service = request.app[SERVICE]
    node, name = request.match_info["node"], check_name(request.match_info["stream"], "stream name")
    view = request.query.get("view", "processed")
    if node == service.config.node_name:
        raise InputError(f"{name!r} is on this node: POST /whep/{name} directly")
    peer = request.app[STAGE].peer(node)
    sdp = await read_sdp(request, service.config.whep_offer.max_bytes)  # the node screens it
    try:
        async with request.app[STAGE].http.post(
            f"{peer.spec.url}/whep/{name}",
            params={"view": view},
            data=sdp.encode(),
            headers=peer.headers({"Content-Type": SDP_TYPE}),
            timeout=aiohttp.ClientTimeout(total=15),
        ) as r:
            body = await r.read()
            if r.status != 201:
                return web.Response(body=body, status=r.status, content_type="application/json")
            session = r.headers.get("Location", "").rsplit("/", 1)[-1]
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _forward_error(peer, exc)
    location = f"/api/stage/{node}/whep/{name}/{session}"
    return web.Response(body=body, status=201, content_type=SDP_TYPE, headers={"Location": location})


async def stage_whep_delete(request: web.Request) -> web.Response:
    node, name = request.match_info["node"], check_name(request.match_info["stream"], "stream name")
    session = request.match_info["session"]
    if not _SESSION.fullmatch(session):
        raise NotFoundError(f"unknown session {session[:80]!r}")
    peer = request.app[STAGE].peer(node)
    try:
        async with request.app[STAGE].http.delete(
            f"{peer.spec.url}/whep/{name}/{session}", headers=peer.headers(), timeout=aiohttp.ClientTimeout(total=5)
        ) as r:
            return web.Response(body=await r.read(), status=r.status, content_type="application/json")
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _forward_error(peer, exc)


async def _start(app: web.Application) -> None:
    await app[STAGE].start()


async def _stop(app: web.Application) -> None:
    await app[STAGE].close()


def register(app: web.Application) -> None:
    """Route group: the stage (this node and its ``--peer`` nodes) read and controlled through this node."""
    app[STAGE] = Stage(app[SERVICE].config)
    app.router.add_get("/api/stage", stage_get)
    app.router.add_patch("/api/stage/{node}/streams/{stream}", stage_patch)
    app.router.add_post("/api/stage/{node}/whep/{stream}", stage_whep_post)
    app.router.add_delete("/api/stage/{node}/whep/{stream}/{session}", stage_whep_delete)
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)

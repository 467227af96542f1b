"""REST, WebSocket and metrics routes, and the JSON error middleware every route shares (auth: ``streamer.api.auth``).

Routes (DESIGN.md's contract; the JSON shapes are documented in README, "Live service"):

- ``GET /api/streams``, ``GET /api/streams/{stream}``, ``PATCH /api/streams/{stream}`` (a settings patch,
  made into the stream's next plan by ``streamer.plan.make_plan``, applied from the next frame);
- ``GET /api/identities``, ``POST /api/identities`` (multipart: ``name``, one or more ``photo`` files,
  optional ``face`` and ``replace``; consent as a ``consent`` JSON field or ``consent_by``/``production``/
  ``valid_until``/... fields, else ``allow_unverified=true``), ``DELETE /api/identities/{name}``,
  ``PUT /api/identities/{name}/consent`` (a consent object);
- ``GET /ws``: stats pushed every ``stats_interval_s`` to every client, each through its own sender task
  so a slow client never delays the others; control messages answered on the socket;
- ``GET /metrics``: Prometheus text.

Other modules add their routes with a ``register(app)`` function listed in ``server.ROUTE_GROUPS``, and
WebSocket message types with ``Service.add_ws_handler``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, WSCloseCode, WSMsgType, web
from aiohttp.http_exceptions import HttpProcessingError

from engines import __version__
from engines.errors import InputError, ModelError, StageswapError
from engines.identity.photos import photo_header
from engines.image_header import ImageTooLargeError
from engines.paths import check_name
from streamer.api.auth import Role, request_role
from streamer.api.models import embed_enrolled
from streamer.api.ratelimit import TokenBucket
from streamer.body import body_deadline, check_declared, parse_json, read_body
from streamer.errors import (
    CapacityError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PayloadTooLargeError,
)
from streamer.governance.audit import CONSENT_RECORDED, IDENTITY_ENROLLED, IDENTITY_REMOVED
from streamer.governance.consent import (
    consent_from_fields,
    consent_summary,
    enroll_with_consent,
    identity_consent_summary,
    identity_dir,
    save_consent,
)
from streamer.governance.likeness import Likeness
from streamer.live.metrics import CONTENT_TYPE_LATEST, prometheus_text
from streamer.plan import PlanConflict, make_plan
from streamer.service import SERVICE, Service

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- middlewares ---------------------------------------------------------------------------------------


def json_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes ``{"error": reason}`` with a 4xx/5xx status; nothing a client sends crashes us."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() not in ("content-type", "content-length")}
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return json_error(exc.status, message, headers)
    except StageswapError as exc:
        status = getattr(exc, "http_status", None)
        if status is None:
            status = 503 if isinstance(exc, ModelError) else 400 if isinstance(exc, InputError) else 500
        return json_error(status, str(exc), getattr(exc, "http_headers", None))
    except HttpProcessingError as exc:  # aiohttp's parsers on a malformed body a handler read
        return json_error(exc.code if 400 <= exc.code < 500 else 400, f"malformed request: {_reason(exc)}")
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        return json_error(500, f"internal error: {type(exc).__name__}")


def _reason(exc: Exception) -> str:
    message = getattr(exc, "message", None)
    return str(message if isinstance(message, str) and message else exc).strip()[:200]


# -- request helpers -----------------------------------------------------------------------------------


async def read_json(request: web.Request, limit: int) -> Any:
    """The request's JSON body, read whole (``streamer.body.read_body``: 415, 413, 408) and parsed (400)."""
    timeout_s = request.app[SERVICE].config.body_timeout_s
    return parse_json(await read_body(request, "application/json", limit, "body", timeout_s), "body")


def _identity_names(service: Service) -> list[str]:
    return [info.name for info in service.identities().list()]


PLAN_TRIES = 5
"""How often a settings change is planned again when another change was applied meanwhile."""


async def apply_settings(service: Service, name: str, patch: Any) -> dict[str, Any]:
    """Make ``patch`` the stream's next plan and apply it (the one control path: PATCH, the WebSocket, OSC and
    the stage page).

    The engines' keys are planned off the event loop (``streamer.plan.make_plan``: validated, names resolved,
    consent checked once), the service's own (``sfu``...) checked by their ``StreamSetting``, all before
    anything changes. The plan is applied with a compare-and-set on its version; when another change got
    there first it is planned again on top of that one, so concurrent changes never interleave. The audit
    events of the change that was applied are recorded, once. Returns ``{"stream": name, "settings": <all
    settings>}`` and pushes the same as a ``settings`` event to every WebSocket client."""
    stream = service.streams.get(name)
    if not isinstance(patch, Mapping):
        raise InputError("settings must be a JSON object")
    own = {key: patch[key] for key in patch if key in service.stream_settings}
    patch = {key: value for key, value in patch.items() if key not in own}
    resolved = {key: service.stream_settings[key].check(stream, value) for key, value in own.items()}
    resolver = service.resolver()
    for _ in range(PLAN_TRIES):
        current, removed = stream.plan, service.identities_removed
        planned = await asyncio.to_thread(make_plan, current, patch, resolver, name)
        async with service.control_lock:  # applied changes reach the audit log in the order they were applied
            if service.identities_removed != removed:
                continue  # an identity was removed while this was planned: its names are looked up again
            try:
                stream.apply_plan(planned.plan, current.version)
            except PlanConflict:
                continue
            for event, data in planned.events:
                await asyncio.to_thread(service.record, event, **data)
        break
    else:
        raise ConflictError(f"the settings of stream {name!r} kept changing meanwhile; send the change again")
    for key, value in resolved.items():
        service.stream_settings[key].apply(stream, value)
    settings = stream.settings_json()
    service.emit({"type": "settings", "stream": name, "settings": settings})
    log.info("stream %s settings changed (plan %d): %s", name, planned.plan.version, {**patch, **own})
    return {"stream": name, "settings": settings}


# -- streams -------------------------------------------------------------------------------------------


async def streams_list(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return web.json_response({"streams": [s.to_dict() for s in service.streams]})


async def stream_get(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return web.json_response(service.streams.get(request.match_info["stream"]).to_dict())


async def stream_patch(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    name = request.match_info["stream"]
    service.streams.get(name)  # 404 before reading the body
    patch = await read_json(request, service.config.json_max_bytes)
    await apply_settings(service, name, patch)
    return web.json_response(service.streams.get(name).to_dict())


# -- identities ----------------------------------------------------------------------------------------


async def identities_list(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    root = _identities_root(service)
    infos = await asyncio.to_thread(
        lambda: [
            {**i.to_dict(), "consent": identity_consent_summary(root, i.name)} for i in service.identities().list()
        ]
    )
    return web.json_response({"identities": infos})


def _identities_root(service: Service) -> Path:
    return Path(service.config.data_dir) / "identities"


def _parse_face(value: str | None) -> str | int | list[str | int] | None:
    """``largest``, N (0 = the largest face), or one of those per photo, comma-separated (``2,0``)."""
    if value is None or value.strip() == "":
        return None
    value = value.strip()
    if "," in value:
        return [_parse_one_face(part) for part in value.split(",")]
    return _parse_one_face(value)


def _parse_one_face(value: str) -> str | int:
    value = value.strip()
    if value == "largest":
        return value
    if value.isdigit():
        return int(value)
    raise InputError(f"face must be 'largest' or a face index (0 = largest), got {value!r}")


def _parse_bool(key: str, value: str | None) -> bool:
    if value is None:
        return False
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("", "0", "false", "no", "off"):
        return False
    raise InputError(f"{key} must be true or false, got {value!r}")


async def read_upload(request: web.Request, limit: int) -> tuple[dict[str, str], list[bytes]]:
    """The multipart upload's fields and photos, read whole within the body limits (``streamer.body``)."""
    expected = "multipart/form-data with a name field and one or more photo files"
    check_declared(request, "multipart/form-data", limit, "upload", expected)
    try:
        async with body_deadline(request, request.app[SERVICE].config.body_timeout_s, "upload"):
            return await _read_parts(request, limit)
    except (ValueError, AssertionError, HttpProcessingError) as exc:  # aiohttp's parser on a malformed body
        raise InputError(f"malformed multipart body: {_reason(exc)}") from exc


async def _read_parts(request: web.Request, limit: int) -> tuple[dict[str, str], list[bytes]]:
    fields: dict[str, str] = {}
    photos: list[bytes] = []
    total = 0
    reader = await request.multipart()
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise InputError("nested multipart bodies are not accepted")
        data = bytearray()
        while chunk := await part.read_chunk(256 * 1024):
            total += len(chunk)
            if total > limit:
                raise PayloadTooLargeError(f"upload is over the {limit}-byte limit")
            data += chunk
        if part.filename is not None or (part.name or "").startswith("photo"):
            photos.append(bytes(data))
        elif part.name:
            fields[part.name] = data.decode("utf-8", errors="replace")
    return fields, photos


def check_photo_pixels(photos: list[bytes], limit: int) -> None:
    """Refuse any photo whose structure says it is over ``limit`` pixels (413), or that is not in a format
    identified before decoding (400), before anything is decoded: a few kilobytes of PNG, TIFF or HDR can
    claim gigapixels (a decompression bomb). ``engines.image_header`` reads damaged files too."""
    for i, data in enumerate(photos):
        try:
            photo_header(data, f"photo {i + 1}", limit)
        except ImageTooLargeError as exc:
            raise PayloadTooLargeError(str(exc)) from exc


async def identities_post(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    fields, photos = await read_upload(request, service.config.upload_max_bytes)
    name = fields.get("name")
    if not name:
        raise InputError("the upload needs a 'name' field (the identity's name)")
    check_name(name, "identity")
    if not photos:
        raise InputError("the upload needs at least one photo file (field 'photo')")
    await asyncio.to_thread(check_photo_pixels, photos, service.config.upload_max_pixels)
    face = _parse_face(fields.get("face"))
    replace = _parse_bool("replace", fields.get("replace"))
    allow_unverified = _parse_bool("allow_unverified", fields.get("allow_unverified"))
    consent = consent_from_fields(fields)
    store = service.identities()
    if not replace and name in await asyncio.to_thread(_identity_names, service):
        raise ConflictError(f"identity {name!r} exists; send replace=true to enroll it again")
    info, record = await asyncio.to_thread(
        enroll_with_consent, store, name, photos, consent, allow_unverified, face=face, replace=replace
    )
    service.streams.consent_changed(Likeness("identity", name), record)
    embedded_by, warnings = await asyncio.to_thread(embed_enrolled, service, name, photos)
    body = {**info.to_dict(), "consent": consent_summary(record), "embedded_by": embedded_by}
    body["warnings"] = [*body["warnings"], *warnings]
    await asyncio.to_thread(
        service.record, IDENTITY_ENROLLED, identity=name, photos=len(photos), replace=replace, consent=body["consent"]
    )
    service.emit({"type": "identities_changed"})
    log.info("identity %s enrolled from %d photo(s), consent %s", name, len(photos), body["consent"]["status"])
    return web.json_response(body, status=201)


async def identity_consent_put(request: web.Request) -> web.Response:
    """Record (or replace) an identity's consent: the body is a consent object (README, "Consent")."""
    service = request.app[SERVICE]
    name = check_name(request.match_info["name"], "identity")
    if name not in await asyncio.to_thread(_identity_names, service):
        raise NotFoundError(f"unknown identity {name!r}")
    body = await read_json(request, service.config.json_max_bytes)
    record = consent_from_fields({"consent": body})
    if record is None:
        raise InputError("the body must be a consent object (consent_by, production, valid_from, valid_until, ...)")
    await asyncio.to_thread(save_consent, identity_dir(_identities_root(service), name), record)
    service.streams.consent_changed(Likeness("identity", name), record)
    summary = consent_summary(record)
    await asyncio.to_thread(service.record, CONSENT_RECORDED, identity=name, consent=summary)
    service.emit({"type": "identities_changed"})
    return web.json_response({"name": name, "consent": summary})


async def identity_delete(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    name = check_name(request.match_info["name"], "identity")
    # Under the lock settings changes are applied with: none selects it between the check and the removal,
    # and one planned before the removal is planned again (apply_settings).
    async with service.control_lock:
        if name not in await asyncio.to_thread(_identity_names, service):
            raise NotFoundError(f"unknown identity {name!r}")
        users = service.identity_users(name)
        if users:
            raise ConflictError(
                f"identity {name!r} is in use by {'streams' if len(users) > 1 else 'stream'} {', '.join(users)}: "
                "select another identity there (or none) first; removing it would fail every frame they swap"
            )
        await asyncio.to_thread(service.identities().remove, name)
        service.identities_removed += 1
        await asyncio.to_thread(service.record, IDENTITY_REMOVED, identity=name)
    service.emit({"type": "identities_changed"})
    return web.json_response({"removed": name})


# -- metrics -------------------------------------------------------------------------------------------


async def metrics_get(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return web.Response(body=prometheus_text(service.streams.snapshots), headers={"Content-Type": CONTENT_TYPE_LATEST})


# -- WebSocket -----------------------------------------------------------------------------------------


class WsClient:
    """One WebSocket client: its own sender task; stats are latest-wins, events and replies keep order."""

    MAX_QUEUED = 256

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._stats: str | None = None
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self.overflowed = False

    def push(self, text: str, latest_only: bool = False) -> None:
        """Queue a message without waiting; a client that lets MAX_QUEUED messages pile up is dropped."""
        if latest_only:
            self._stats = text
        elif len(self._queue) >= self.MAX_QUEUED:
            self.overflowed = True
        else:
            self._queue.append(text)
        self._wake.set()

    async def run_sender(self) -> None:
        while not self.ws.closed:
            await self._wake.wait()
            self._wake.clear()
            if self.overflowed:
                await self.ws.close(code=1013, message=b"too slow: messages piled up")
                return
            while self._queue:
                await self.ws.send_str(self._queue.popleft())
            if self._stats is not None:
                text, self._stats = self._stats, None
                await self.ws.send_str(text)


class WsHub:
    """The connected WebSocket clients and the periodic stats push."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.clients: set[WsClient] = set()
        self._task: asyncio.Task[None] | None = None
        service.listeners.append(self.broadcast)

    def broadcast(self, message: Mapping[str, Any], latest_only: bool = False) -> None:
        if not self.clients:
            return
        text = json.dumps(message)
        for client in list(self.clients):
            client.push(text, latest_only)

    def stats_message(self) -> dict[str, Any]:
        return {"type": "stats", "time_s": round(time.time(), 3), "streams": self.service.streams.snapshots()}

    async def _push_stats(self) -> None:
        while True:
            await asyncio.sleep(self.service.config.stats_interval_s)
            if self.clients:
                try:
                    self.broadcast(self.stats_message(), latest_only=True)
                except Exception:  # a stats bug must not end the push for everyone
                    log.exception("building the stats message failed")

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._push_stats())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for client in list(self.clients):
            await client.ws.close(code=1001, message=b"server shutting down")


async def _ws_settings(service: Service, msg: Mapping[str, Any]) -> dict[str, Any]:
    stream = msg.get("stream")
    if not isinstance(stream, str):
        raise InputError("a settings message needs 'stream' (the stream name)")
    if "settings" not in msg:
        raise InputError("a settings message needs 'settings' (the same object as the PATCH body)")
    return await apply_settings(service, stream, msg["settings"])


async def _ws_streams(service: Service, msg: Mapping[str, Any]) -> dict[str, Any]:
    return {"streams": service.streams.snapshots()}


VIEWER_WS_TYPES = frozenset({"streams"})
"""WebSocket message types a viewer token may send (reads); every other type is control (operator only)."""
WS_CLOSE_AFTER_REFUSED = 10
"""A connection is closed (1008) once it sent this many times its burst over the rate limit: a flood, not a UI."""


async def _handle_ws_message(service: Service, text: str, role: Role = "operator") -> dict[str, Any]:
    msg_id: Any = None
    try:
        msg = parse_json(text, "message")
        if not isinstance(msg, dict):
            raise InputError("a message must be a JSON object with a 'type'")
        msg_id = msg.get("id")
        kind = msg.get("type")
        handler = service.ws_handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            known = ", ".join(sorted(service.ws_handlers))
            raise InputError(f"unknown message type {kind!r} (known: {known})")
        if role != "operator" and kind not in VIEWER_WS_TYPES:
            raise ForbiddenError(f"{kind!r} messages need the operator token: this token may only watch")
        result = await handler(service, msg)
        return {"type": "reply", "id": msg_id, "ok": True, "result": result}
    except StageswapError as exc:
        return {"type": "error", "id": msg_id, "error": str(exc)}
    except Exception as exc:
        log.exception("WebSocket message failed")
        return {"type": "error", "id": msg_id, "error": f"internal error: {type(exc).__name__}"}


async def ws_get(request: web.Request) -> web.WebSocketResponse:
    service = request.app[SERVICE]
    hub = request.app[HUB]
    config = service.config
    role = request_role(request)
    if len(hub.clients) >= config.max_ws_clients:
        raise CapacityError(f"this server has {len(hub.clients)} WebSocket clients, the most it serves")
    # aiohttp refuses a message of max_msg_size bytes itself: the documented limit is a size a message may have.
    ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=config.json_max_bytes + 1)
    await ws.prepare(request)
    client = WsClient(ws)
    hub.clients.add(client)
    sender = asyncio.ensure_future(client.run_sender())
    client.push(
        json.dumps({"type": "hello", "version": __version__, "types": sorted(service.ws_handlers), "role": role})
    )
    client.push(json.dumps(hub.stats_message()), latest_only=True)
    bucket = TokenBucket(config.control_rate_per_s, config.control_burst)
    told_s = -math.inf
    try:
        async for message in ws:
            if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                if message.type == WSMsgType.ERROR:
                    break
                continue
            if not bucket.allow():
                if bucket.refused > WS_CLOSE_AFTER_REFUSED * config.control_burst:
                    log.warning("WebSocket client %s flooded control messages: closed", request.remote)
                    await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"too many messages")
                    break
                now = time.monotonic()
                if now - told_s >= 1.0:  # one refusal a second: answering each would double the flood
                    told_s = now
                    limit = f"{config.control_rate_per_s:g} per second"
                    client.push(json.dumps({"type": "error", "id": None, "error": f"rate limit: at most {limit}"}))
                continue
            if message.type == WSMsgType.TEXT:
                client.push(json.dumps(await _handle_ws_message(service, message.data, role)))
            else:
                client.push(json.dumps({"type": "error", "id": None, "error": "binary messages are not accepted"}))
    finally:
        hub.clients.discard(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionResetError):
            await sender
    return ws


HUB = web.AppKey("stageswap_ws_hub", WsHub)


async def _start_hub(app: web.Application) -> None:
    app[HUB].start()


async def _stop_hub(app: web.Application) -> None:
    await app[HUB].stop()


def register(app: web.Application) -> None:
    """Route group: streams, identities, WebSocket control and stats, metrics."""
    service = app[SERVICE]
    app[HUB] = WsHub(service)
    service.add_ws_handler("settings", _ws_settings)
    service.add_ws_handler("streams", _ws_streams)
    app.router.add_get("/api/streams", streams_list)
    app.router.add_get("/api/streams/{stream}", stream_get)
    app.router.add_patch("/api/streams/{stream}", stream_patch)
    app.router.add_get("/api/identities", identities_list)
    app.router.add_post("/api/identities", identities_post)
    app.router.add_delete("/api/identities/{name}", identity_delete)
    app.router.add_put("/api/identities/{name}/consent", identity_consent_put)
    app.router.add_get("/ws", ws_get)
    app.router.add_get("/metrics", metrics_get)
    app.on_startup.append(_start_hub)
    app.on_shutdown.append(_stop_hub)

"""Recording routes: start and stop per stream over REST and the WebSocket, list what was recorded.

- ``POST /api/streams/{stream}/recording`` — start. Body (JSON, optional; every key optional):
  ``{"view": "processed|source|both", "codec": "h264|prores|ffv1", "container": "mp4|mov|mkv",
  "encoder": "...", "frame_rate": "source|cfr", "fps": 25, "timecode": "HH:MM:SS:FF", "audio": "aac|pcm|opus|none",
  "watermark": true|false}`` (``watermark: false`` records the processed view without the invisible mark; the
  source view is never marked). The recording's JSON says ``watermark`` and ``watermark_id``.
  201 with the recording (``id``, ``files``, ...) and ``Location: /api/recordings/{id}``.
  400 bad options, 404 unknown stream, 409 already recording, 507 disk nearly full.
- ``DELETE /api/streams/{stream}/recording`` — stop; 200 with the final state (frames written,
  dropped, duration). 409 when the stream is not recording (with how its last recording ended).
- ``GET /api/streams/{stream}/recording`` — the running recording of a stream (404 if none).
- ``GET /api/recordings[?stream=NAME]`` — running recordings, then finished ones from their sidecars,
  newest first, with the recordings ``folder``; each finished one has ``media``: per view its file, size,
  whether a browser ``plays`` it, links to play and download it (``url``, ``download``: tickets, see
  ``streamer.api.auth.Tickets``) and its ``proxy``. ``GET /api/recordings/{id}`` — one of them.
- ``GET /api/recordings/{id}/files/{view}[?download=1][&proxy=1]`` — the file (or its proxy), with ranges
  (a player seeks); the operator token or a ticket.
- ``POST /api/recordings/{id}/proxy`` — make H.264 proxies of the views a browser cannot play (ProRes,
  FFV1; ``streamer.record.proxy``): 202 with each proxy's state; the listing shows its progress.
- WebSocket: ``{"type": "recording", "action": "start", "stream": "cam1", "options": {...}}`` and
  ``{"type": "recording", "action": "stop", "stream": "cam1"}``, answered like the REST calls.
- Every stream's JSON (``GET /api/streams/{stream}``, the ``/ws`` stats) has ``recording``: its running or
  last recording with ``active`` and ``totals`` (``RecordingManager.status``), which ``/metrics`` exports.
- Events pushed to every WebSocket client: ``{"type": "recording", "event": "started|progress|alarm|
  alarm_cleared|stopped|error", "stream": ..., "recording": {...}, "message": ...}`` — ``progress`` about
  once a second (duration, frames, queue), ``alarm`` when the recorder falls behind and drops frames,
  ``error`` when a recording stops by itself (a full disk).

A recording ends by itself when its stream ends, and every recording is finalised when the service
shuts down. Recordings a crash interrupted are repaired when the service starts (``recover``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

from aiohttp import web

from engines.compose.watermark import format_id
from engines.errors import InputError
from engines.paths import check_name
from streamer.api.auth import TICKETS
from streamer.api.routes import read_json
from streamer.errors import NotFoundError
from streamer.governance.recording_provenance import RecordingSigner
from streamer.live.fanout import OutputFanout
from streamer.live.streams import Stream
from streamer.record.formats import EncoderSupport
from streamer.record.proxy import BROWSER_PLAYS, ProxyJobs, proxy_path
from streamer.record.recording import (
    RecordingConfig,
    RecordingManager,
    RecordingRequest,
    RecordingSession,
)
from streamer.service import SERVICE, Service

log = logging.getLogger(__name__)


class _Wiring:
    """Which fan-out each running recording is a sink of, to detach it however the recording ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._fanouts: dict[str, OutputFanout] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def attach(self, session: RecordingSession, fanout: OutputFanout) -> None:
        with self._lock:
            self._fanouts[session.id] = fanout
        fanout.add_sink(session)

    def detach(self, session: RecordingSession) -> None:
        with self._lock:
            fanout = self._fanouts.pop(session.id, None)
        if fanout is not None:
            fanout.remove_sink(session)


RECORDINGS = web.AppKey("stageswap_recordings", RecordingManager)
PROXIES = web.AppKey("stageswap_proxies", ProxyJobs)
WHOLE_RATES = (24, 25, 30, 48, 50, 60, 120)
RATE_SETTLE_S = 1.0
"""A stream's rate is trusted once its first frames have left the stats window (window + this)."""
"""Measured rates within 5% of one of these are taken as it (a measurement jitters around the true rate)."""
_WIRING = web.AppKey("stageswap_recording_wiring", _Wiring)


def stream_rate(stream: Stream) -> Fraction | None:
    """The stream's nominal frame rate: its measured input rate as a whole standard rate (or whole fps).

    A measurement cannot tell 29.97 from 30 fps; a client that needs an NTSC rate sends ``fps``. A stream
    whose first frames are still in the stats window has no rate yet (None: the default): the first frames
    of a connection come in a burst (the soak test recorded a camera that had just connected as 140 fps,
    with a queue sized for it)."""
    try:
        snap = stream.stats.snapshot()
        fps = float(snap.get("input_fps") or 0.0)
        measured_s = float(snap.get("uptime_s") or 0.0)
    except Exception:  # stats are a nicety here: no rate simply means the default
        return None
    if fps < 1.0 or measured_s < stream.stats.window_s + RATE_SETTLE_S:
        return None
    nearest = min(WHOLE_RATES, key=lambda rate: abs(rate - fps))
    return Fraction(nearest if abs(nearest - fps) <= 0.05 * nearest else min(240, round(fps)))


def stream_watermark(stream: Stream) -> str | None:
    """The watermark id the stream's processed frames carry now (8 hex digits); None: unmarked (its processor
    does not mark, has not started yet, or its ``watermark`` setting is off)."""
    wid = getattr(stream, "watermark_id", None)
    return format_id(wid) if isinstance(wid, int) and stream.settings.watermark else None


def stream_watermark_mark(stream: Stream) -> str | None:
    """Which mark carries ``stream_watermark`` (``engines.compose.watermark.MARKS``' name); None: unmarked, or a mark
    of other settings."""
    mark = getattr(getattr(stream, "worker", None), "watermark_mark", None)
    return mark if isinstance(mark, str) and stream_watermark(stream) is not None else None


def start_recording(app: web.Application, name: str, body: Any) -> dict[str, Any]:
    """Start recording stream ``name`` (runs on a worker thread: it opens files)."""
    service: Service = app[SERVICE]
    manager = app[RECORDINGS]
    stream = service.streams.get(name)
    request = RecordingRequest.from_json(body)
    settings = dataclasses.asdict(stream.settings)
    sound = stream.settings.audio and stream.fanout.audio.has_sound()
    session = manager.start(
        name,
        request,
        nominal_fps=stream_rate(stream),
        settings=settings,
        sound=sound,
        watermark_id=stream_watermark(stream),
        watermark_mark=stream_watermark_mark(stream),
    )
    app[_WIRING].attach(session, stream.fanout)
    return session.snapshot()


def stop_recording(app: web.Application, name: str) -> dict[str, Any]:
    service: Service = app[SERVICE]
    manager = app[RECORDINGS]
    check_name(name, "stream name")
    if manager.active(name) is None and service.streams.find(name) is None:
        service.streams.get(name)  # 404: unknown stream
    return manager.stop(name)


async def recording_post(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    name = request.match_info["stream"]
    service.streams.get(name)  # 404 before reading the body
    body: Any = None
    if request.can_read_body:
        body = await read_json(request, service.config.json_max_bytes)
    snapshot = await asyncio.to_thread(start_recording, request.app, name, body)
    return web.json_response(snapshot, status=201, headers={"Location": f"/api/recordings/{snapshot['id']}"})


async def recording_delete(request: web.Request) -> web.Response:
    summary = await asyncio.to_thread(stop_recording, request.app, request.match_info["stream"])
    return web.json_response(summary)


async def recording_get(request: web.Request) -> web.Response:
    name = check_name(request.match_info["stream"], "stream name")
    session = request.app[RECORDINGS].active(name)
    if session is None:
        request.app[SERVICE].streams.get(name)  # 404 for an unknown stream first
        raise NotFoundError(f"stream {name!r} is not recording")
    return web.json_response(session.snapshot())


async def recordings_list(request: web.Request) -> web.Response:
    manager = request.app[RECORDINGS]
    stream = request.query.get("stream") or None
    if stream is not None:
        check_name(stream, "stream name")
    listed = await asyncio.to_thread(manager.recordings, 200, stream)
    media = await asyncio.to_thread(lambda: [with_media(request.app, rec) for rec in listed])
    return web.json_response({"recordings": media, "folder": str(manager.config.directory.resolve())})


MEDIA_TYPES = {".mp4": "video/mp4", ".mov": "video/quicktime", ".mkv": "video/x-matroska"}


def with_media(app: web.Application, recording: Mapping[str, Any]) -> dict[str, Any]:
    """``recording`` (a listing entry) with ``media``: per view what the page needs to play or download it
    (blocking: looks at the files). Running recordings have none yet."""
    out = dict(recording)
    if out.get("state") in ("recording", "finishing"):
        return out
    folder = app[RECORDINGS].config.directory
    tickets = app[TICKETS]
    plays = (out.get("codec"), out.get("container")) in BROWSER_PLAYS
    media: dict[str, Any] = {}
    for view, name in (out.get("files") or {}).items():
        path = folder / str(name)
        if not path.is_file():  # deleted since, or never written: no frame came while it recorded
            empty = not (out.get("frames_written") or {}).get(view)
            media[view] = {"file": name, "missing": True, "empty": empty}
            continue
        link = tickets.link(f"/api/recordings/{out['id']}/files/{view}")
        entry: dict[str, Any] = {"file": name, "bytes": path.stat().st_size, "plays": plays}
        entry.update(url=link, download=f"{link}&download=1", proxy=None)
        if not plays:
            entry["proxy"] = app[PROXIES].status(path)
            if (entry["proxy"] or {}).get("state") == "ready":
                entry["proxy_url"] = f"{link}&proxy=1"
        media[view] = entry
    out["media"] = media
    return out


async def recording_file(request: web.Request) -> web.StreamResponse:
    """A recording's file (or its proxy) for a player or a download: the operator token or a ticket."""
    manager = request.app[RECORDINGS]
    rec_id, view = request.match_info["id"], request.match_info["view"]
    path = await asyncio.to_thread(manager.file, rec_id, view)
    if request.query.get("proxy") == "1":
        path = proxy_path(path)
        if not path.is_file():
            raise NotFoundError(f"recording {rec_id!r} has no proxy of its {view!r} file yet: POST .../proxy")
    disposition = "attachment" if request.query.get("download") == "1" else "inline"
    headers = {
        "Content-Type": MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        "Content-Disposition": f'{disposition}; filename="{path.name}"',
        "Cache-Control": "private, no-store",
    }
    return web.FileResponse(path, headers=headers)


async def recording_proxy_post(request: web.Request) -> web.Response:
    """Make proxies of a finished recording's views that a browser cannot play (202 with their state)."""
    manager = request.app[RECORDINGS]
    rec_id = request.match_info["id"]
    recording = await asyncio.to_thread(manager.get, rec_id)
    if recording.get("state") in ("recording", "finishing"):
        raise InputError(f"recording {rec_id!r} is still being written: stop it first")
    if (recording.get("codec"), recording.get("container")) in BROWSER_PLAYS:
        raise InputError(f"recording {rec_id!r} is H.264 in MP4: the browser plays it as it is")
    proxies = {}
    for view in recording.get("files") or {}:
        path = await asyncio.to_thread(manager.file, rec_id, view)
        proxies[view] = request.app[PROXIES].start(path)
    return web.json_response({"id": rec_id, "proxies": proxies}, status=202)


async def recordings_get_one(request: web.Request) -> web.Response:
    manager = request.app[RECORDINGS]
    return web.json_response(await asyncio.to_thread(manager.get, request.match_info["id"]))


def _ws_handler(app: web.Application) -> Any:
    async def handle(service: Service, msg: Mapping[str, Any]) -> dict[str, Any]:
        action = msg.get("action")
        stream = msg.get("stream")
        if not isinstance(stream, str):
            raise InputError("a recording message needs 'stream' (the stream name)")
        if action == "start":
            return await asyncio.to_thread(start_recording, app, stream, msg.get("options"))
        if action == "stop":
            return await asyncio.to_thread(stop_recording, app, stream)
        raise InputError(f"a recording message needs 'action': start or stop, got {action!r}")

    return handle


async def _start(app: web.Application, overrides: Mapping[str, Any]) -> None:
    service = app[SERVICE]
    loop = asyncio.get_running_loop()

    def emit(event: Mapping[str, Any]) -> None:
        """Called on worker and recorder threads: hand the event to the loop, never wait."""
        with contextlib.suppress(RuntimeError):  # the loop is closing: nobody is listening any more
            loop.call_soon_threadsafe(service.emit, event)

    wiring = _Wiring()
    support = await asyncio.to_thread(EncoderSupport.probe)
    manager = RecordingManager(
        RecordingConfig(directory=service.config.data_dir / "recordings", **overrides),
        support=support,
        emit=emit,
        on_end=wiring.detach,
    )
    app[RECORDINGS] = manager
    app[_WIRING] = wiring
    service.streams.status_providers["recording"] = manager.status  # in every stream's JSON, /ws and /metrics
    for rec in await asyncio.to_thread(manager.recover):
        log.warning("recording %s was interrupted by a crash: kept %s frames", rec["id"], rec["frames_written"])

    def on_event(event: Mapping[str, Any]) -> None:
        if event.get("type") == "stream_ended" and isinstance(event.get("stream"), str):
            name = event["stream"]
            if manager.active(name) is not None:
                log.info("stream %s ended: stopping its recording", name)
                task = loop.create_task(asyncio.to_thread(_stop_quietly, manager, name))
                wiring.tasks.add(task)
                task.add_done_callback(wiring.tasks.discard)

    service.listeners.append(on_event)


def _stop_quietly(manager: RecordingManager, name: str) -> None:
    with contextlib.suppress(InputError):  # stopped meanwhile
        manager.stop(name)


async def _stop_all(app: web.Application) -> None:
    if RECORDINGS in app:
        await asyncio.to_thread(app[RECORDINGS].stop_all)
    if _WIRING in app and app[_WIRING].tasks:
        await asyncio.gather(*app[_WIRING].tasks, return_exceptions=True)


def register(app: web.Application) -> None:
    """Route group: recording start/stop/list over REST and the WebSocket (default RecordingConfig)."""
    configured()(app)


def configured(**overrides: Any) -> Callable[[web.Application], None]:
    """The route group with RecordingConfig fields changed (e.g. ``min_free_bytes``, ``queue_seconds``)."""
    return functools.partial(_register, overrides=overrides)


def _register(app: web.Application, overrides: Mapping[str, Any]) -> None:
    service = app[SERVICE]
    service.add_ws_handler("recording", _ws_handler(app))
    app.router.add_post("/api/streams/{stream}/recording", recording_post)
    app.router.add_delete("/api/streams/{stream}/recording", recording_delete)
    app.router.add_get("/api/streams/{stream}/recording", recording_get)
    app.router.add_get("/api/recordings", recordings_list)
    app.router.add_get("/api/recordings/{id}", recordings_get_one)
    app.router.add_get("/api/recordings/{id}/files/{view}", recording_file)
    app.router.add_post("/api/recordings/{id}/proxy", recording_proxy_post)
    app[PROXIES] = ProxyJobs()
    app.on_startup.append(functools.partial(_start, overrides=overrides))
    app.on_shutdown.append(_stop_all)


SIGNER = web.AppKey("stageswap_recording_signer", RecordingSigner)
"""The signer of finished recordings (``streamer.governance.recording_provenance``)."""


def register_signing(app: web.Application) -> None:
    """Route group (no routes): hook the signer into the recordings; list it after ``register``."""
    app.on_startup.append(_start_signing)


async def _start_signing(app: web.Application) -> None:
    service = app[SERVICE]
    if RECORDINGS not in app:
        log.error("recording provenance: no recordings in this app (list it after the recording routes)")
        return
    signer = await asyncio.to_thread(
        RecordingSigner.for_data_dir,
        service.config.data_dir,
        service.audit,
        service.record,
        service.operator,
        service.user_models(),
        service.config.signing_cert,
        service.config.signing_key,
    )
    app[SIGNER] = signer
    app[RECORDINGS].add_finalise_hook(signer.on_finished)
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Future[None]] = set()

    def on_event(event: Mapping[str, Any]) -> None:
        if event.get("type") != "recording" or event.get("event") != "started":
            return
        recording = event.get("recording") or {}
        watermark = recording.get("watermark_id")  # the stream's, unless the recording turned the mark off
        task = loop.run_in_executor(None, signer.on_started, recording, watermark)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    service.listeners.append(on_event)

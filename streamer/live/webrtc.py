"""WHIP ingest and WHEP egress (RFC 9725 and the WHEP draft) with aiortc, and the registry of peer sessions.

- ``POST /whip/{stream}`` (``application/sdp`` offer) -> ``201`` + SDP answer + ``Location:
  /whip/{stream}/{session}``; ``DELETE`` that location ends the session. The incoming video track is
  drained continuously by one task (aiortc's receive queue is unbounded, so it must never wait for the
  worker): each frame is converted to BGR and put into the stream's FrameRing, where the newest frame wins.
  Before that, the receiver's decoder queue is bounded (``decode_backlog``): a decoder that falls behind
  the camera skips to the next keyframe instead of queueing, so latency cannot creep at any stage.
  Audio is not used: its m-line is answered ``inactive``. A second publisher on a busy stream is refused
  with 409 (it cannot take over a live camera by accident; the first one's session must end first).
- ``POST /whep/{stream}?view=processed|source`` -> ``201`` + answer + ``Location``. The viewer's track
  returns packets already encoded by the stream's shared encoder for that view and codec (see fanout.py).
- A publisher that disappears without DELETE is closed when ICE or DTLS fails, or when no frame arrived
  for ``ingest_timeout_s``; a viewer whose connection never comes up, or fails, likewise, and a viewer
  whose RTCP receiver reports stop for ``viewer_timeout_s``. A publisher sending frames over the size
  limit (``max_frame_width`` x ``max_frame_height``) is closed at its first such frame
  (``publisher_refused`` event). Closing a session
  ends its tasks, its peer connection and, when nobody else uses it, the stream with its threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import av
from aiohttp import web
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.sdp import SessionDescription
from av.video.reformatter import VideoReformatter

from engines.errors import InputError
from engines.paths import check_name
from streamer.body import read_body
from streamer.errors import CapacityError, ConflictError, NotFoundError
from streamer.live import memory
from streamer.live.aiortc_hooks import hooks_missing
from streamer.live.consent import accept_media_as_consent
from streamer.live.decode_backlog import bound_decoder
from streamer.live.dtls import StagePeerConnection, prefer_passive
from streamer.live.fanout import VIEWS, Codec, SharedEncoder, View
from streamer.live.keyframes import forward_keyframe_requests
from streamer.live.offers import NegotiationGate, screen_offer
from streamer.live.packet_tracks import PacketTrack, ViewerAudioTrack
from streamer.live.publisher_media import PublisherClock, drain_audio, quiet_repeated_decode_errors
from streamer.live.ring import FrameMeta
from streamer.live.sdp_compat import AdaptedOffer, adapt_offer
from streamer.live.streams import Stream
from streamer.service import SERVICE, Service

log = logging.getLogger(__name__)

SessionKind = Literal["whip", "whep"]
SDP_TYPE = "application/sdp"
_CODEC_BY_MIME = {"video/vp8": "vp8", "video/h264": "h264"}


class ViewerTrack(PacketTrack):
    """A WHEP viewer's video track: the packets of a shared encoder, in order, never far behind.

    ``deliver`` runs on the encoder thread and never blocks. The queue holds at most ``max_frames``
    packets; a viewer whose sender does not keep up (a stalled peer) is resynchronised: its queue is
    emptied, a keyframe is asked for, and it resumes from that keyframe. Before its first keyframe a
    viewer gets nothing (a decoder cannot start on a delta frame).
    """

    kind = "video"

    def __init__(self, loop: asyncio.AbstractEventLoop, max_frames: int) -> None:
        super().__init__(loop)
        self._max = max_frames
        self._waiting_keyframe = True
        self.encoder: SharedEncoder | None = None
        self.resyncs = 0

    def deliver(self, packet: av.Packet, keyframe: bool) -> None:
        with self._lock:
            if self.readyState != "live":
                return
            if len(self._queue) >= self._max:
                self._queue.clear()
                self._waiting_keyframe = True
                self.resyncs += 1
                if self.encoder is not None:
                    self.encoder.request_keyframe()
            if self._waiting_keyframe and not keyframe:
                return
            self._waiting_keyframe = False
            self._queue.append(packet)
        self._wake()

    @property
    def queued(self) -> int:
        """Packets waiting for the sender (at most ``max_frames``)."""
        with self._lock:
            return len(self._queue)

    def request_keyframe(self) -> None:
        """A keyframe request from the remote peer (RTCP PLI/FIR), passed to the shared encoder."""
        if self.encoder is not None:
            self.encoder.request_keyframe()


@dataclass(eq=False)
class PeerSession:
    id: str
    kind: SessionKind
    stream: Stream
    pc: RTCPeerConnection
    view: View | None = None
    codec: Codec | None = None
    track: ViewerTrack | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    created_s: float = field(default_factory=time.monotonic)
    frames: int = 0
    last_media_s: float = field(default_factory=time.monotonic)
    """When the last frame arrived (WHIP), or the session was created."""
    closed: bool = False
    clock: PublisherClock | None = None
    """A publisher's capture clock: its picture and sound captured together go out together."""
    sound: ViewerAudioTrack | None = None
    """A viewer's audio track, when it asked for sound."""

    @property
    def location(self) -> str:
        return f"/{self.kind}/{self.stream.name}/{self.id}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "stream": self.stream.name,
            "state": self.pc.connectionState,
            "age_s": round(time.monotonic() - self.created_s, 1),
        }
        if self.kind == "whip":
            out["frames"] = self.frames
        else:
            out["view"] = self.view
            out["codec"] = self.codec
            if self.track is not None:
                out["packets_sent"] = self.track.packets_sent
                out["resyncs"] = self.track.resyncs
        return out


class PeerRegistry:
    """Every open WHIP/WHEP session of one server; closing is idempotent and frees everything."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self._sessions: dict[str, PeerSession] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self.gate = NegotiationGate(service.config.max_negotiations)
        """Offers answered at once (aiortc's work runs on the event loop)."""

    def __len__(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[PeerSession]:
        return list(self._sessions.values())

    def add(self, session: PeerSession) -> None:
        self._sessions[session.id] = session

    def get(self, kind: SessionKind, stream: str, session_id: str) -> PeerSession:
        session = self._sessions.get(session_id)
        if session is None or session.kind != kind or session.stream.name != stream:
            raise NotFoundError(f"no {kind.upper()} session {session_id!r} on stream {stream!r}")
        return session

    def refuse(self, session: PeerSession, reason: str) -> None:
        """Close a publisher for what it sent (a frame over the size limit), with a ``publisher_refused`` event."""
        log.warning("WHIP session %s on %s refused: %s", session.id, session.stream.name, reason)
        self._service.emit({"type": "publisher_refused", "stream": session.stream.name, "reason": reason})
        self.close_soon(session, reason)

    def close_soon(self, session: PeerSession, reason: str) -> None:
        """Schedule ``close`` from a callback (the task is kept so shutdown can wait for it)."""
        if session.closed:
            return
        task = asyncio.ensure_future(self.close(session, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self, session: PeerSession, reason: str) -> None:
        if session.closed:
            return
        session.closed = True
        self._sessions.pop(session.id, None)
        log.info("%s session %s on %s closed: %s", session.kind.upper(), session.id, session.stream.name, reason)
        current = asyncio.current_task()
        others = [t for t in session.tasks if t is not current]
        for task in others:
            task.cancel()
        if others:
            _, stuck = await asyncio.wait(others, timeout=5.0)
            if stuck:
                log.warning("%d task(s) of session %s did not end when cancelled", len(stuck), session.id)
        stream = session.stream
        if session.kind == "whip":
            if stream.publisher == session.id:
                stream.publisher = None
                stream.set_decode_backlog(None)
                self._service.emit({"type": "publisher_left", "stream": stream.name, "reason": reason})
        else:
            stream.viewers.discard(session.id)
            if session.track is not None:
                if session.view is not None and session.codec is not None:
                    stream.fanout.unsubscribe(session.view, session.codec, session.track)
                session.track.stop()
                session.track.encoder = None
            if session.sound is not None:
                stream.fanout.audio.unsubscribe(session.sound)
                session.sound.stop()
        await _close_pc(session.pc)
        # Break the session's reference cycles (its tasks and the connection's callbacks refer to it), so
        # that it and its stream are freed now, not at the garbage collector's next full pass.
        session.pc.remove_all_listeners()
        session.tasks.clear()
        await self._service.release(stream)
        await asyncio.to_thread(memory.trim)  # the session's codec and DTLS buffers go back to the system

    async def close_all(self, reason: str) -> None:
        await asyncio.gather(*(self.close(s, reason) for s in self.sessions()), return_exceptions=True)
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)


async def _close_pc(pc: RTCPeerConnection, timeout_s: float = 5.0) -> None:
    """Close a peer connection, giving up after ``timeout_s`` so one stuck peer cannot hold up the others."""
    try:
        await asyncio.wait_for(pc.close(), timeout_s)
    except TimeoutError:
        log.warning("closing a peer connection took over %g s; abandoned", timeout_s)


# -- request helpers -------------------------------------------------------------------------------------


async def read_sdp(request: web.Request, limit: int) -> str:
    """The request's SDP offer, read whole (``streamer.body.read_body``: 415, 413, 408; 400 not SDP text)."""
    timeout_s = request.app[SERVICE].config.body_timeout_s
    body = await read_body(request, SDP_TYPE, limit, "SDP offer", timeout_s, f"Content-Type {SDP_TYPE} (an SDP offer)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("malformed SDP offer: not UTF-8 text") from exc
    if not text.lstrip().startswith("v=0"):
        raise InputError("malformed SDP offer: it must start with 'v=0'")
    return text


async def receive_offer(request: web.Request, kind: SessionKind) -> AdaptedOffer:
    """The request's offer, within its kind's limits (``streamer.live.offers``) before anything parses it,
    then parsed, checked and adapted for aiortc on a thread (400 with the reason)."""
    limits = request.app[SERVICE].config.offer_limits(kind)
    sdp = screen_offer(await read_sdp(request, limits.max_bytes), limits, kind)
    want: Literal["send", "receive"] = "send" if kind == "whip" else "receive"
    return await asyncio.to_thread(_prepare_offer, sdp, want)


def _prepare_offer(sdp: str, want: Literal["send", "receive"]) -> AdaptedOffer:
    parse_offer(sdp, want)
    return adapt_offer(sdp, want)


def _rtc_configuration(service: Service) -> RTCConfiguration:
    return RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in service.config.ice_servers])


def parse_offer(sdp: str, want: Literal["send", "receive"]) -> SessionDescription:
    """Parse and check an offer before any peer connection exists (400 with the reason)."""
    try:
        description = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises ValueError, KeyError, IndexError... on bad input
        raise InputError(f"malformed SDP offer: {exc or type(exc).__name__}") from exc
    directions = ("sendonly", "sendrecv") if want == "send" else ("recvonly", "sendrecv")
    if not any(m.kind == "video" and m.direction in directions for m in description.media):
        role = "sends no video (WHIP needs a sendonly" if want == "send" else "receives no video (WHEP needs a recvonly"
        raise InputError(f"the offer {role} or sendrecv video m-line)")
    return description


async def _apply_offer(pc: RTCPeerConnection, sdp: str) -> None:
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=prefer_passive(sdp), type="offer"))
    except Exception as exc:  # aiortc raises assorted ValueError/KeyError/OperationError on bad SDP
        await pc.close()
        raise InputError(f"malformed SDP offer: {exc or type(exc).__name__}") from exc


def _video_transceivers(pc: RTCPeerConnection) -> list[RTCRtpTransceiver]:
    return [t for t in pc.getTransceivers() if t.kind == "video"]


def _negotiated_codec(answer_sdp: str) -> Codec:
    for media in SessionDescription.parse(answer_sdp).media:
        if media.kind == "video" and media.rtp.codecs:
            codec = _CODEC_BY_MIME.get(media.rtp.codecs[0].mimeType.lower())
            if codec is not None:
                return cast(Codec, codec)
    raise InputError("the offer accepts no video codec this server sends (VP8 or H.264)")


def _session_id() -> str:
    return secrets.token_urlsafe(12)


def _created(session: PeerSession, answer: str) -> web.Response:
    return web.Response(
        status=201,
        body=answer.encode(),
        content_type=SDP_TYPE,
        headers={"Location": session.location, "Cache-Control": "no-store"},
    )


def _watch_connection(registry: PeerRegistry, session: PeerSession) -> None:
    pc = session.pc

    @pc.on("connectionstatechange")
    def _on_state() -> None:
        state = pc.connectionState
        if state == "connected":
            session.connected.set()
        elif state in ("failed", "closed"):
            registry.close_soon(session, f"connection {state}")


async def _viewer_watchdog(registry: PeerRegistry, session: PeerSession, sender: Any, timeout_s: float) -> None:
    """Close a viewer whose receiver reports stopped coming: it vanished (crashed, unplugged, suspended).

    A receiving peer sends RTCP receiver reports about once a second (aiortc: every 0.5-1.5 s; browsers
    likewise); aiortc keeps the time of the last one in the sender's ``remote-inbound-rtp`` stats. The
    watchdog arms at the first report, so a viewer that has not received anything yet (a stream waiting for
    its publisher) is left to ICE's own consent timeout."""
    await session.connected.wait()
    last: Any = None
    changed_s = time.monotonic()
    while not session.closed:
        await asyncio.sleep(min(1.0, timeout_s / 4))
        try:
            report = await sender.getStats()
        except Exception:  # the transport is closing: the connection watcher ends the session
            continue
        stamp = max((s.timestamp for s in report.values() if s.type == "remote-inbound-rtp"), default=None)
        now = time.monotonic()
        if stamp != last:
            last, changed_s = stamp, now
        elif last is not None and now - changed_s > timeout_s:
            registry.close_soon(session, f"no receiver report for {timeout_s:g} s: the viewer vanished")
            return


async def _connect_watchdog(registry: PeerRegistry, session: PeerSession, timeout_s: float) -> None:
    """Close a session whose peer never connects (it POSTed an offer and went away)."""
    deadline = time.monotonic() + timeout_s
    while not session.connected.is_set():
        if time.monotonic() > deadline:
            registry.close_soon(session, f"the peer did not connect within {timeout_s:g} s")
            return
        await asyncio.sleep(min(0.5, timeout_s / 4))


# -- WHIP ----------------------------------------------------------------------------------------------


class _Newest:
    """One frame handed from the track's reader to the converter: a newer frame replaces one not yet taken."""

    def __init__(self) -> None:
        self._frame: Any = None
        self._ended = False
        self._ready = asyncio.Event()

    def put(self, frame: Any) -> bool:
        """Hold ``frame``; True when it replaced one the converter had not taken (that one is dropped)."""
        replaced = self._frame is not None
        self._frame = frame
        self._ready.set()
        return replaced

    def end(self) -> None:
        self._ended = True
        self._ready.set()

    async def take(self) -> Any:
        """The newest frame, waiting for one; None once the track ended and nothing is left."""
        while self._frame is None:
            if self._ended:
                return None
            self._ready.clear()
            await self._ready.wait()
        frame, self._frame = self._frame, None
        return frame


async def _read_track(track: MediaStreamTrack, newest: _Newest, stream: Stream) -> None:
    """Take every frame off the aiortc track as it arrives (cheap: no conversion) into ``newest``.

    aiortc's receiver decodes on its own thread into an unbounded queue, which ``recv`` empties without
    waiting while frames are there: when the event loop fell behind (a busy machine), this runs through the
    backlog before the converter looks again, so the converter gets the newest frame and the older ones are
    counted as dropped, as the ring would, instead of converted and lagging behind. A plain ``await
    track.recv()`` (no ``asyncio.wait_for``): on Python 3.11 ``wait_for`` can swallow a cancellation that
    races with a frame arriving."""
    try:
        while True:
            if newest.put(await track.recv()):
                stream.ingest_skip()
    except MediaStreamError:
        pass
    finally:
        newest.end()


async def _drain(registry: PeerRegistry, session: PeerSession, track: MediaStreamTrack) -> None:
    """Convert the newest frame off the track into the stream's ring (newest frame wins there too).

    The silence timeout is ``_media_watchdog``'s job."""
    stream = session.stream
    newest = _Newest()
    reader = asyncio.ensure_future(_read_track(track, newest, stream))
    accepted: tuple[int, int] | None = None  # the last frame size checked against the limit
    # One converter for the session: PyAV gives each frame its own otherwise, with a scaler and (PyAV 18) two
    # threads made and joined per frame, and kept alive by any frame that outlives its use (the soak found
    # two threads per ended stream waiting for the garbage collector).
    to_bgr = VideoReformatter()
    try:
        while (frame := await newest.take()) is not None:
            size = (int(frame.width), int(frame.height))
            if size != accepted:
                refusal = stream.config.frame_refusal(*size)
                if refusal is not None:
                    registry.refuse(session, f"{refusal} (--max-frame-size): the publisher is closed")
                    return
                accepted = size
            now = time.monotonic()
            image = to_bgr.reformat(frame, format="bgr24").to_ndarray()
            captured = session.clock.captured_s(frame, session.clock.video, now) if session.clock else now
            stream.ingest(image, FrameMeta(session.frames, captured - stream.created_s, now, capture_s=captured))
            session.frames += 1
            session.last_media_s = now
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        del to_bgr  # its threads end now, even if this coroutine's frame outlives it (in a traceback)
    registry.close_soon(session, "the publisher ended its track")


async def _media_watchdog(registry: PeerRegistry, session: PeerSession, timeout_s: float) -> None:
    """Close a publisher that sent no frame for ``timeout_s`` (never connected, vanished, camera stopped)."""
    while not session.closed:
        await asyncio.sleep(min(1.0, timeout_s / 4))
        if time.monotonic() - session.last_media_s > timeout_s:
            registry.close_soon(session, f"no video for {timeout_s:g} s")
            return


async def whip_post(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    registry = _registry(service)
    name = check_name(request.match_info["stream"], "stream name")
    offer = await receive_offer(request, "whip")
    _check_can_publish(service, name)
    async with registry.gate.turn():
        return await _answer_publisher(service, registry, name, offer)


async def _answer_publisher(service: Service, registry: PeerRegistry, name: str, offer: AdaptedOffer) -> web.Response:
    config = service.config
    pc = StagePeerConnection(_rtc_configuration(service))
    await _apply_offer(pc, offer.sdp)
    videos = [t for t in _video_transceivers(pc) if t.receiver.track is not None]
    if not videos:
        await pc.close()
        raise InputError("the offer sends no video (WHIP needs a sendonly or sendrecv video m-line)")
    # Before the receiver starts: its decoder skips to a keyframe rather than queue when it falls behind.
    backlog = bound_decoder(videos[0], config.decode_backlog_frames)
    audios = [t for t in pc.getTransceivers() if t.kind == "audio" and t.receiver.track is not None]
    for t in pc.getTransceivers():
        if t is not videos[0] and t is not (audios[0] if audios else None):
            t.direction = "inactive"  # extra tracks are not used: nothing is sent, nothing queues up
    # Check again after the await: another publisher may have taken the name meanwhile. From here to the
    # reservation nothing awaits, so the check and the reservation are one step on the event loop.
    try:
        _check_can_publish(service, name)
        stream = service.streams.find(name) or service.streams.create(name, "whip")
    except Exception:
        await pc.close()
        raise
    session = PeerSession(_session_id(), "whip", stream, pc)
    stream.publisher = session.id
    stream.set_decode_backlog(backlog)
    registry.add(session)
    _watch_connection(registry, session)
    try:
        await pc.setLocalDescription(await pc.createAnswer())
    except Exception as exc:
        await registry.close(session, f"answer failed: {exc}")
        raise InputError(f"cannot answer this offer: {exc}") from exc
    accept_media_as_consent(pc)  # FFmpeg's muxer never answers ICE consent checks (streamer/live/consent.py)
    track = videos[0].receiver.track
    audio = audios[0].receiver if audios else None
    session.clock = PublisherClock.watch(videos[0].receiver, audio, pc.localDescription.sdp)
    session.tasks.append(asyncio.ensure_future(_drain(registry, session, track)))
    if audio is not None:
        session.tasks.append(asyncio.ensure_future(drain_audio(stream, audio.track, session.clock)))
    session.tasks.append(asyncio.ensure_future(_media_watchdog(registry, session, config.ingest_timeout_s)))
    service.emit({"type": "publisher_joined", "stream": name})
    log.info("WHIP session %s publishes %s", session.id, name)
    return _created(session, offer.answer(pc.localDescription.sdp))


def _check_can_publish(service: Service, name: str) -> None:
    stream = service.streams.find(name)
    if stream is None:
        service.streams.check_capacity()
        return
    if stream.kind == "input":
        raise ConflictError(f"stream {name!r} is fed by --input {stream.source.spec.source if stream.source else ''}")
    if stream.publisher is not None:
        raise ConflictError(
            f"stream {name!r} already has a publisher; end its session (DELETE its Location) or publish under "
            "another name"
        )


async def whip_delete(request: web.Request) -> web.Response:
    return await _delete(request, "whip")


# -- WHEP ----------------------------------------------------------------------------------------------


async def whep_post(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    registry = _registry(service)
    config = service.config
    name = check_name(request.match_info["stream"], "stream name")
    view = request.query.get("view", "processed")
    if view not in VIEWS:
        raise InputError(f"view must be one of {', '.join(VIEWS)}, got {view!r}")
    offer = await receive_offer(request, "whep")
    stream = service.streams.get(name)
    if len(stream.viewers) >= config.max_viewers_per_stream:
        raise CapacityError(f"stream {name!r} has {len(stream.viewers)} viewers, the most it serves")
    async with registry.gate.turn():
        return await _answer_viewer(service, registry, stream, cast(View, view), offer)


async def _answer_viewer(
    service: Service, registry: PeerRegistry, stream: Stream, view: View, offer: AdaptedOffer
) -> web.Response:
    config = service.config
    name = stream.name
    pc = StagePeerConnection(_rtc_configuration(service))
    await _apply_offer(pc, offer.sdp)
    track = ViewerTrack(asyncio.get_running_loop(), config.viewer_queue_frames)
    sender = pc.addTrack(track)
    sound: ViewerAudioTrack | None = None
    if any(t.kind == "audio" for t in pc.getTransceivers()):  # the viewer asked for sound too
        sound = ViewerAudioTrack(asyncio.get_running_loop())
        sound_sender = pc.addTrack(sound)
    for t in pc.getTransceivers():
        if t.sender is not sender and (sound is None or t.sender is not sound_sender):
            t.direction = "inactive"
    try:
        await pc.setLocalDescription(await pc.createAnswer())
        codec = _negotiated_codec(pc.localDescription.sdp)
    except Exception as exc:
        track.stop()
        if sound is not None:
            sound.stop()
        await pc.close()
        if isinstance(exc, InputError):
            raise
        raise InputError(f"cannot answer this offer: {exc}") from exc
    if stream.closed or service.streams.find(name) is not stream:
        track.stop()
        if sound is not None:
            sound.stop()
        await pc.close()
        raise NotFoundError(f"stream {name!r} ended while the viewer was connecting")
    session = PeerSession(_session_id(), "whep", stream, pc, view=cast(View, view), codec=codec, track=track)
    stream.viewers.add(session.id)
    registry.add(session)
    _watch_connection(registry, session)
    forward_keyframe_requests(sender, track.request_keyframe)
    track.encoder = stream.fanout.subscribe(session.view or "processed", codec, track)
    if sound is not None:
        session.sound = sound
        stream.fanout.audio.subscribe(sound)
    session.tasks.append(asyncio.ensure_future(_connect_watchdog(registry, session, config.ingest_timeout_s)))
    session.tasks.append(asyncio.ensure_future(_viewer_watchdog(registry, session, sender, config.viewer_timeout_s)))
    log.info("WHEP session %s watches %s (%s, %s)", session.id, name, view, codec)
    return _created(session, offer.answer(pc.localDescription.sdp))


async def whep_delete(request: web.Request) -> web.Response:
    return await _delete(request, "whep")


# -- shared --------------------------------------------------------------------------------------------


async def _delete(request: web.Request, kind: SessionKind) -> web.Response:
    service = request.app[SERVICE]
    name = check_name(request.match_info["stream"], "stream name")
    session = _registry(service).get(kind, name, request.match_info["session"])
    await _registry(service).close(session, "ended by DELETE")
    return web.Response(status=200)


async def _trickle_not_supported(request: web.Request) -> web.Response:
    # RFC 9725 4.3.1: a server that does not support trickle ICE answers PATCH with 405.
    raise web.HTTPMethodNotAllowed(request.method, ["DELETE"], text="trickle ICE is not supported")


async def sessions_get(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return web.json_response({"sessions": [s.to_dict() for s in _registry(service).sessions()]})


def _registry(service: Service) -> PeerRegistry:
    if not isinstance(service.peers, PeerRegistry):
        raise RuntimeError("the peer registry is not set up")
    return service.peers


async def _on_shutdown(app: web.Application) -> None:
    service = app[SERVICE]
    if service.peers is not None:
        await service.peers.close_all("server shutting down")


def register(app: web.Application) -> None:
    """Route group: WHIP, WHEP and the sessions list."""
    service = app[SERVICE]
    service.peers = PeerRegistry(service)
    quiet_repeated_decode_errors()
    for problem in hooks_missing():  # aiortc's internals we use (streamer.live.aiortc_hooks) moved
        log.warning("%s", problem)
    app.router.add_post("/whip/{stream}", whip_post)
    app.router.add_delete("/whip/{stream}/{session}", whip_delete)
    app.router.add_patch("/whip/{stream}/{session}", _trickle_not_supported)
    app.router.add_post("/whep/{stream}", whep_post)
    app.router.add_delete("/whep/{stream}/{session}", whep_delete)
    app.router.add_patch("/whep/{stream}/{session}", _trickle_not_supported)
    app.router.add_get("/api/sessions", sessions_get)
    app.on_shutdown.append(_on_shutdown)

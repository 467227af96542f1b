"""The service context every route group reads: config, streams, peers, identities, WebSocket control.

One ``Service`` per app, stored under ``SERVICE`` (``request.app[SERVICE]``). Route groups register
themselves on the app (``server.ROUTE_GROUPS``) and reach everything through it; nothing is global.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from engines.light.hdri import hdri_folder
from engines.settings import ProcessSettings
from streamer.config import ServeConfig
from streamer.governance.audit import SWAP_STARTED, SWAP_STOPPED, AuditLog, token_id
from streamer.live.streams import Stream, StreamRegistry
from streamer.live.worker import ProcessorFactory
from streamer.plan import Plan, PlanConflict, StoreResolver, make_plan

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamSetting:
    """A setting of a stream that is the service's rather than the engines' (``engines.settings``): e.g. ``sfu``,
    where the stream is sent. It arrives in the same settings patch (PATCH, the WebSocket, the stage page) and
    goes through the same path (``streamer.api.routes.apply_settings``): every key of a patch is checked before
    any is applied, so a patch is taken whole or refused whole.

    ``check(stream, value)`` returns the value resolved (raises InputError with the reason); ``apply(stream,
    resolved)`` makes it so; ``current(name)`` is what the stream's settings JSON shows for it."""

    check: Callable[[Stream, Any], Any]
    apply: Callable[[Stream, Any], None]
    current: Callable[[str], Any]


WsReply = dict[str, Any]
WsHandler = Callable[["Service", Mapping[str, Any]], Awaitable[WsReply | None]]
"""Handles one WebSocket control message of a given ``type``; returns the reply (or None), raises
StageswapError for a refusal (answered on the socket as ``{"type": "error", ...}``)."""


class Peers(Protocol):
    """What the service needs of the WebRTC sessions (``streamer.live.webrtc.PeerRegistry``): count and close."""

    def __len__(self) -> int: ...

    def sessions(self) -> list[Any]: ...

    async def close_all(self, reason: str) -> None: ...


@dataclass
class Service:
    config: ServeConfig
    make_processor: ProcessorFactory
    """Called once by each stream's worker thread to build that stream's own processor."""
    streams: StreamRegistry = field(init=False)
    peers: Peers | None = None
    ws_handlers: dict[str, WsHandler] = field(default_factory=dict)
    """WebSocket control message types -> handlers; other route groups add theirs (e.g. recording)."""
    stream_settings: dict[str, StreamSetting] = field(default_factory=dict)
    """Settings keys of the service's own (not the engines'), by key: see ``StreamSetting``."""
    listeners: list[Callable[[Mapping[str, Any]], None]] = field(default_factory=list)
    """Called with every event pushed to WebSocket clients (settings changes, stream started/ended...)."""
    identity_store: Any = None
    performer_store: Any = None
    user_model_store: Any = None
    audit: AuditLog = field(init=False)
    """The append-only audit log in ``data_dir/audit`` (enrollments, consent, swaps, recordings)."""

    def __post_init__(self) -> None:
        self.streams = StreamRegistry(self.config, lambda: self.make_processor())
        self.audit = AuditLog.in_data_dir(self.config.data_dir)
        self.streams.on_created = self._stream_created
        self._refreshing: set[asyncio.Task[None]] = set()
        self.control_lock = asyncio.Lock()
        """Held while a settings change is applied and its audit events written (the log keeps their order),
        and while an identity is removed (so none is removed between a change's check and its applying)."""
        self.identities_removed = 0
        """Identities removed so far: a change planned before a removal is planned again (its names looked up
        again) rather than applied with a name that may be gone."""

    @property
    def operator(self) -> str | None:
        """Who acts through this server, for the audit log and provenance: the token's id, never the token."""
        return token_id(self.config.token)

    def record(self, event: str, **data: Any) -> None:
        """Append ``event`` to the audit log with the operator (blocking I/O: call it off the event loop).

        A log that cannot be written is reported loudly but does not fail the action that caused it."""
        try:
            self.audit.append(event, data, operator=self.operator)
        except Exception:
            log.exception("AUDIT LOG NOT WRITTEN: %s %s", event, data)

    def identity_users(self, name: str) -> list[str]:
        """What has the enrolled identity ``name`` selected (as ``identity`` or in a target rule, swap on or
        off): the live streams by name, and ``serve --identity`` (what new streams start with)."""
        users = [s.name for s in self.streams if _names(s.settings, name)]
        if _names(self.streams.initial_plan.settings, name):
            users.append("new streams (serve --identity)")
        return users

    def resolver(self) -> StoreResolver:
        """What plans are resolved against: this data directory's identities, models and HDRIs."""
        return StoreResolver(
            self.config.data_dir / "identities",
            hdri_folder(self.config.data_dir),
            identities=self.identities(),
            models=self.user_models(),
            performers=self.performers(),
        )

    async def plan_first_settings(self) -> None:
        """Plan what new streams start with (``serve``'s first settings) once, off the event loop."""
        planned = await asyncio.to_thread(
            make_plan, Plan(self.config.initial_settings), {}, self.resolver(), "", None, True
        )
        self.streams.initial_plan = planned.plan

    def _stream_created(self, stream: Stream) -> None:
        self.emit({"type": "stream_started", "stream": stream.name, "kind": stream.kind})
        likeness = stream.plan.swapping
        if likeness is not None:
            self.record(SWAP_STARTED, stream=stream.name, **likeness.fields(), reason="stream started")
        try:
            task = asyncio.get_running_loop().create_task(self._recheck(stream))
        except RuntimeError:  # no event loop (a registry used on its own): the in-memory check stands
            return
        self._refreshing.add(task)
        task.add_done_callback(self._refreshing.discard)

    async def _recheck(self, stream: Stream) -> None:
        """A stream started with the plan it had: read its likeness's consent again from disk, off the loop
        (it may have been renewed or changed from the command line meanwhile)."""
        current = stream.plan
        if current.likeness is None:
            return
        try:
            planned = await asyncio.to_thread(make_plan, current, {}, self.resolver(), stream.name, None, True)
            stream.apply_plan(planned.plan, current.version)
        except PlanConflict:
            return  # a change was applied meanwhile: it was checked itself
        except Exception:
            log.exception("stream %s: its consent could not be checked again", stream.name)
            return
        for event, data in planned.events:
            await asyncio.to_thread(self.record, event, **data, reason="consent checked at stream start")

    def add_stream_setting(self, key: str, setting: StreamSetting) -> None:
        """A settings key of the service's own, taken by every settings patch and shown in every stream's settings."""
        if key in self.stream_settings:
            raise ValueError(f"stream setting {key!r} is already handled")
        self.stream_settings[key] = setting
        self.streams.settings_providers[key] = setting.current

    def add_ws_handler(self, message_type: str, handler: WsHandler) -> None:
        if message_type in self.ws_handlers:
            raise ValueError(f"WebSocket message type {message_type!r} is already handled")
        self.ws_handlers[message_type] = handler

    def emit(self, event: Mapping[str, Any]) -> None:
        """Push an event (a JSON object with a ``type``) to every WebSocket client; never waits for them."""
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", event.get("type"))

    def identities(self) -> Any:
        """The IdentityStore in ``data_dir/identities``, shared by the routes and every stream's processor."""
        if self.identity_store is None:
            from engines.identity.store import IdentityStore

            self.identity_store = IdentityStore(self.config.data_dir / "identities", models_dir=self.config.models_dir)
        return self.identity_store

    def performers(self) -> Any:
        """The PerformerStore in ``data_dir/performers`` (``stageswap performers add``), shared like the identities:
        the people target rules pick by face."""
        if self.performer_store is None:
            from engines.identity.performers import PerformerStore

            self.performer_store = PerformerStore(self.config.data_dir / "performers")
        return self.performer_store

    def user_models(self) -> Any:
        """The models registered in the data directory (``stageswap models add``), shared like the identities."""
        if self.user_model_store is None:
            from engines.swap.user_models import UserModelStore

            self.user_model_store = UserModelStore(self.config.data_dir)
        return self.user_model_store

    async def release(self, stream: Stream) -> None:
        """Remove ``stream`` if nothing feeds or watches it any more, joining its threads off the loop."""
        if not stream.idle or self.streams.find(stream.name) is not stream:
            return
        self.streams.detach(stream.name)
        await asyncio.to_thread(stream.close)
        likeness = stream.plan.swapping
        if likeness is not None:
            await asyncio.to_thread(
                self.record, SWAP_STOPPED, stream=stream.name, **likeness.fields(), reason="stream ended"
            )
        self.emit({"type": "stream_ended", "stream": stream.name})
        log.info("stream %s ended", stream.name)


SERVICE = web.AppKey("stageswap_service", Service)


def _names(settings: ProcessSettings, identity: str) -> bool:
    return settings.identity == identity or identity in settings.target_identities

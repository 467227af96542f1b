"""OSC control: a show-control desk (QLab, TouchOSC, a lighting console) drives streams over UDP.

Off by default (``stageswap serve --osc-port 9000``), bound to loopback unless ``--osc-host`` says
otherwise (then ``--token`` is required, as for HTTP). Every message goes through the same handlers as
the WebSocket control messages (``Service.ws_handlers``: ``settings`` and ``recording``), so a change
over OSC is validated, consent-checked, audited and pushed to every control surface exactly like the
same ``PATCH /api/streams/{stream}`` body — there is no second settings path here, only a translation
from OSC addresses to that body:

- ``/stageswap/{stream}/{key} VALUE`` sets one PATCH key: ``identity NAME`` (``""`` or ``none``: no
  swap), ``swap``/``relight``/``keep_eyes``/``keep_mouth``/``keep_glasses``/``debug_overlay``/``audio``/``watermark``
  (true/false, or 1/0 as desks send toggles), ``strength``/``morph`` (0..1), ``swap_model NAME``;
- ``/stageswap/{stream}/relight/{key} VALUE...`` sets ``relight_target.{key}``: ``direction X Y Z``,
  ``sh`` (27 numbers) and ``hdri NAME`` also switch the mode to that kind of light (what a desk
  operator means by moving the key light); ``mode``, ``intensity``, ``colour R G B``, ``ambient``;
- ``/stageswap/{stream}/settings JSON`` — a whole PATCH body as one JSON string;
- ``/stageswap/{stream}/record start [JSON options]`` / ``record stop`` — the recording start/stop of
  ``POST``/``DELETE /api/streams/{stream}/recording``.

With a token configured, every message carries it as its first argument (the operator token; the viewer
token may only watch and is refused). Each message is answered to its sender's address:
``/stageswap/reply ADDRESS`` (then the stream's settings or the recording as a JSON string) or
``/stageswap/error ADDRESS REASON``. Messages are rate-limited per sender like HTTP control requests.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from engines.errors import InputError, StageswapError
from streamer.api.ratelimit import KeyedLimiter
from streamer.body import parse_json
from streamer.errors import ForbiddenError
from streamer.service import SERVICE, Service

log = logging.getLogger(__name__)

PREFIX = "/stageswap"
REPLY = f"{PREFIX}/reply"
ERROR = f"{PREFIX}/error"
BOOL_KEYS = frozenset(
    {"swap", "relight", "keep_eyes", "keep_mouth", "keep_glasses", "debug_overlay", "audio", "watermark"}
)
LIGHT_KINDS = frozenset({"direction", "sh", "hdri"})
"""Setting one of these relight keys over OSC also selects that kind of light (``relight_target.mode``)."""
MAX_DATAGRAM_BYTES = 8192


@dataclass(frozen=True)
class Command:
    """What one OSC message asks for, as the WebSocket control message that does it."""

    message: dict[str, Any]
    """``{"type": "settings", "stream", "settings"}`` or ``{"type": "recording", "stream", "action", "options"}``."""


def translate(address: str, args: Sequence[Any]) -> Command:
    """The WebSocket control message for one OSC message (token already removed); raises InputError."""
    parts = address.split("/")
    if len(parts) < 4 or parts[0] != "" or "/" + parts[1] != PREFIX or not parts[2]:
        raise InputError(f"OSC address {address!r}: expected {PREFIX}/STREAM/SETTING")
    stream, path = parts[2], parts[3:]
    if path == ["record"]:
        action = _text("record", args, 0)
        if action not in ("start", "stop"):
            raise InputError(f"{PREFIX}/{stream}/record needs start or stop, got {action!r}")
        options = _json("record start options", args[1]) if len(args) > 1 else None
        return Command({"type": "recording", "stream": stream, "action": action, "options": options})
    if path == ["settings"]:
        body = _json("settings", _text("settings", args, 0))
        return Command({"type": "settings", "stream": stream, "settings": body})
    if len(path) == 2 and path[0] in ("relight", "relight_target"):
        key = path[1]
        target: dict[str, Any] = {key: _value(key, args)}
        if key in LIGHT_KINDS:
            target["mode"] = key
        return Command({"type": "settings", "stream": stream, "settings": {"relight_target": target}})
    if len(path) == 1:
        key = path[0]
        value = _value(key, args)
        if key in BOOL_KEYS:
            value = _bool(key, value)
        elif key == "identity" and (value == "" or (isinstance(value, str) and value.lower() == "none")):
            value = None
        return Command({"type": "settings", "stream": stream, "settings": {key: value}})
    raise InputError(f"OSC address {address!r}: unknown setting (see README, OSC control)")


def _value(key: str, args: Sequence[Any]) -> Any:
    if not args:
        raise InputError(f"OSC {key} needs a value")
    return args[0] if len(args) == 1 else list(args)


def _bool(key: str, value: Any) -> Any:
    """Desks send toggles as 1/0 (floats or ints); the PATCH body's booleans are what validation expects."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    return value  # anything else is refused by the settings' own validation, with its reason


def _text(key: str, args: Sequence[Any], index: int) -> str:
    if len(args) <= index or not isinstance(args[index], str):
        raise InputError(f"OSC {key} needs a string argument")
    return str(args[index])


def _json(what: str, text: Any) -> Any:
    if not isinstance(text, str):
        raise InputError(f"OSC {what} must be a JSON string")
    return parse_json(text, f"OSC {what}")


def check_token(token: str | None, viewer_token: str | None, args: Sequence[Any]) -> Sequence[Any]:
    """The arguments after the token (the first argument, when the server has one); raises ForbiddenError."""
    if token is None:
        return args
    given = args[0] if args and isinstance(args[0], str) else ""
    if hmac.compare_digest(given.encode(), token.encode()):
        return args[1:]
    if viewer_token is not None and hmac.compare_digest(given.encode(), viewer_token.encode()):
        raise ForbiddenError("OSC control needs the operator token: this token may only watch")
    raise ForbiddenError("OSC control needs the operator token as the first argument")


class OscProtocol(asyncio.DatagramProtocol):
    """The UDP endpoint: parses OSC packets (bundles too), runs each message, answers its sender."""

    def __init__(self, service: Service) -> None:
        self.service = service
        config = service.config
        self._limiter = KeyedLimiter(config.control_rate_per_s, config.control_burst)
        self.transport: Any = None
        """The endpoint's ``asyncio.DatagramTransport`` (the selector loop's does not subclass it)."""
        self.tasks: set[asyncio.Task[None]] = set()
        self.handled = 0
        self.refused = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if len(data) > MAX_DATAGRAM_BYTES:
            self._reply(addr, ERROR, "?", f"OSC packet over {MAX_DATAGRAM_BYTES} bytes")
            return
        try:
            messages = [timed.message for timed in OscPacket(data).messages]
        except (ParseError, ValueError, IndexError, TypeError) as exc:
            self._reply(addr, ERROR, "?", f"not an OSC packet: {exc}")
            return
        for message in messages:
            if not self._limiter.bucket(str(addr[0])).allow():
                self.refused += 1
                self._reply(addr, ERROR, message.address, "too many OSC messages: slow down")
                continue
            task = asyncio.get_running_loop().create_task(self._handle(addr, message.address, list(message.params)))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _handle(self, addr: tuple[str | Any, int], address: str, params: list[Any]) -> None:
        try:
            args = check_token(self.service.config.token, self.service.config.viewer_token, params)
            command = translate(address, args)
            handler = self.service.ws_handlers.get(command.message["type"])
            if handler is None:
                raise InputError(f"{command.message['type']} control is not available on this server")
            result = await handler(self.service, command.message)
            self.handled += 1
            self._reply(addr, REPLY, address, json.dumps(result, default=str))
        except StageswapError as exc:
            self.refused += 1
            if isinstance(exc, ForbiddenError):
                log.warning("OSC message %s from %s refused: %s", address, addr[0], exc)
            self._reply(addr, ERROR, address, str(exc))
        except Exception as exc:  # a bug must not take the endpoint down
            log.exception("OSC message %s failed", address)
            self._reply(addr, ERROR, address, f"internal error: {type(exc).__name__}")

    def _reply(self, addr: tuple[str | Any, int], kind: str, address: str, text: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        builder = OscMessageBuilder(address=kind)
        builder.add_arg(address)
        builder.add_arg(text[:4000])
        try:
            self.transport.sendto(builder.build().dgram, addr)
        except OSError as exc:
            log.debug("OSC reply to %s failed: %s", addr, exc)


OSC = web.AppKey("stageswap_osc", OscProtocol)


async def _start(app: web.Application) -> None:
    service = app[SERVICE]
    config = service.config
    if config.osc_port is None:
        return
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: OscProtocol(service), local_addr=(config.osc_host, config.osc_port)
        )
    except OSError as exc:
        where = f"{config.osc_host}:{config.osc_port}"
        raise InputError(f"cannot listen for OSC on {where}: {exc.strerror or exc}") from exc
    assert isinstance(protocol, OscProtocol)
    app[OSC] = protocol
    bound = transport.get_extra_info("sockname")
    log.info("OSC control on udp://%s:%s (%s/STREAM/...)", bound[0], bound[1], PREFIX)


async def _stop(app: web.Application) -> None:
    protocol = app.get(OSC)
    if protocol is None:
        return
    if protocol.transport is not None:
        protocol.transport.close()
    if protocol.tasks:
        await asyncio.gather(*protocol.tasks, return_exceptions=True)


def bound_port(app: web.Application) -> int | None:
    """The UDP port OSC listens on (``--osc-port 0`` picks a free one), or None when OSC is off."""
    protocol = app.get(OSC)
    if protocol is None or protocol.transport is None:
        return None
    return int(protocol.transport.get_extra_info("sockname")[1])


def register(app: web.Application) -> None:
    """Route group: the OSC endpoint, started with the app when ``ServeConfig.osc_port`` is set."""
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)

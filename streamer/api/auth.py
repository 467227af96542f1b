"""Who may do what: bearer tokens, two roles, one middleware.

- **operator** (``--token`` / ``--token-file``): everything — publish (WHIP), control (PATCH, WebSocket
  control messages), recordings, identities and consent.
- **viewer** (``--viewer-token``, optional): watch only — WHEP, and what the monitor page reads:
  ``GET /api/streams``, ``GET /api/streams/{stream}``, ``GET /metrics`` and ``/ws`` (stats and events pushed;
  control messages are answered with an error).
- **public**: the static client UI (it holds no data: the pages ask for the token) and ``/api/openapi.json``.
- **a ticket** (``Tickets``): a link the server hands to an operator, for one file (a recording to play or
  download: ``<video src>`` and download links cannot send a header), valid for an hour, GET only.

Without an operator token everything is open (the config refuses that on a non-loopback address unless
``--insecure``). A missing or wrong token is 401 and the request does nothing; a viewer token on an operator
route is 403. Tokens are compared in constant time (``hmac.compare_digest``) and never logged: a failure is
logged with the method, path and peer address only.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from streamer.api.ratelimit import TokenBucket
from streamer.config import ServeConfig

log = logging.getLogger(__name__)

Role = Literal["operator", "viewer"]
ROLE_KEY: web.RequestKey[Role] = web.RequestKey("stageswap_role", str)  # type: ignore[arg-type]
"""``request[ROLE_KEY]``: the role the request was authenticated as (``operator`` when no token is set)."""

PROTECTED_PREFIXES = ("/api/", "/whip/", "/whep/", "/ws", "/metrics")
"""Paths that need a token when one is set; everything else is the static client UI."""
PUBLIC_PATHS = frozenset({"/api/openapi.json"})
_VIEWER_READS = re.compile(r"/api/streams(/[^/]+)?|/api/stage|/ws|/metrics")
"""GET paths a viewer token may read (the monitor page's stream list, stream stats, pushed stats, the stage)."""
_VIEWER_WATCH = re.compile(r"/api/stage/[^/]+/whep/.*")
"""WHEP relayed to another node of the stage: watching, like ``/whep/``."""
_READ_METHODS = frozenset({"GET", "HEAD"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def required_role(method: str, path: str) -> Role | None:
    """The least role that may make this request; None for public paths."""
    if not path.startswith(PROTECTED_PREFIXES) or path in PUBLIC_PATHS:
        return None
    if path.startswith("/whep/") or _VIEWER_WATCH.fullmatch(path):
        return "viewer"
    if method in _READ_METHODS and _VIEWER_READS.fullmatch(path):
        return "viewer"
    return "operator"


class Tickets:
    """Links to read one path for a while without the token in a header: ``?ticket=EXPIRY.MAC``, the MAC an
    HMAC-SHA256 of the path and the expiry under a key made when the server starts (a restart ends every
    ticket). Only someone with the operator token is handed one (``link``); it reads that path and no other."""

    def __init__(self, ttl_s: float = 3600.0, clock: Callable[[], float] = time.time) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._key = secrets.token_bytes(32)

    def _mac(self, path: str, expires: int) -> str:
        return hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def link(self, path: str) -> str:
        """``path?ticket=...``: ``path`` (already URL-quoted) readable for ``ttl_s`` seconds."""
        expires = int(self._clock() + self.ttl_s)
        return f"{path}?ticket={expires}.{self._mac(path, expires)}"

    def valid(self, path: str, ticket: str) -> bool:
        expires_text, _, mac = ticket.partition(".")
        if not expires_text.isdigit() or len(expires_text) > 12 or int(expires_text) < self._clock():
            return False
        return hmac.compare_digest(mac.encode(), self._mac(path, int(expires_text)).encode())


TICKETS = web.AppKey("stageswap_tickets", Tickets)


def request_role(request: web.Request) -> Role:
    """The role of an authenticated request (the middleware sets it before any handler runs)."""
    return "viewer" if request.get(ROLE_KEY) == "viewer" else "operator"


@dataclass(frozen=True)
class Tokens:
    operator: bytes | None = field(default=None, repr=False)
    viewer: bytes | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, config: ServeConfig) -> Tokens:
        return cls(
            operator=config.token.encode("utf-8") if config.token else None,
            viewer=config.viewer_token.encode("utf-8") if config.viewer_token else None,
        )

    @property
    def required(self) -> bool:
        return self.operator is not None

    def role_of(self, given: str) -> Role | None:
        """The role ``given`` grants, or None. Both tokens are always compared, each in constant time."""
        candidate = given.encode("utf-8", errors="replace")
        is_operator = self.operator is not None and hmac.compare_digest(candidate, self.operator)
        is_viewer = self.viewer is not None and hmac.compare_digest(candidate, self.viewer)
        if is_operator:
            return "operator"
        return "viewer" if is_viewer else None


def bearer_token(request: web.Request) -> str:
    """The token a request carries: ``Authorization: Bearer T``, or for ``/ws`` only, ``?access_token=T``
    (RFC 6750: browsers cannot set headers on a WebSocket)."""
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    if not given and request.path == "/ws":
        given = request.query.get("access_token", "")
    return given


class RefusalLog:
    """Logs refusals, at most ``burst`` at once and ``rate_per_s`` after that: a scanner or a client stuck
    on a wrong token must not fill the disk with log lines. The next line logged says how many were not."""

    def __init__(self, rate_per_s: float = 1.0, burst: int = 10) -> None:
        self._bucket = TokenBucket(rate_per_s, burst)
        self._unlogged = 0

    def __call__(self, message: str, *args: Any) -> None:
        if not self._bucket.allow():
            self._unlogged += 1
            return
        if self._unlogged:
            message += " (%d more refusals not logged)"
            args = (*args, self._unlogged)
            self._unlogged = 0
        log.info(message, *args)


def middleware(config: ServeConfig, tickets: Tickets | None = None) -> Any:
    """The aiohttp middleware enforcing the roles above for ``config``'s tokens (and ``tickets``' links)."""
    tokens = Tokens.from_config(config)
    refused = RefusalLog()

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        need = required_role(request.method, request.path)
        if need is None or not tokens.required:
            request[ROLE_KEY] = "operator"
            return await handler(request)
        given = bearer_token(request)
        role = tokens.role_of(given) if given else None
        if role is None and tickets is not None and _ticketed(request, tickets):
            request[ROLE_KEY] = "viewer"  # it reads this one path, nothing else
            return await handler(request)
        if role is None:
            refused("401 %s %s from %s: %s token", request.method, request.path[:200], request.remote, _why(given))
            raise web.HTTPUnauthorized(
                text="missing or wrong token: send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="stageswap"'},
            )
        if need == "operator" and role == "viewer":
            refused("403 %s %s from %s: viewer token", request.method, request.path[:200], request.remote)
            raise web.HTTPForbidden(
                text="this token may only watch (WHEP, stream stats): this needs the operator token"
            )
        request[ROLE_KEY] = role
        return await handler(request)

    return auth


def _ticketed(request: web.Request, tickets: Tickets) -> bool:
    """A read of the one path its ``?ticket=`` was handed out for, before the ticket expired."""
    ticket = request.query.get("ticket", "")
    return bool(ticket) and request.method in _READ_METHODS and tickets.valid(request.path, ticket)


def _why(given: str) -> str:
    return "wrong" if given else "no"

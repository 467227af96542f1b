"""Cross-origin protection for what a browser can reach (issue 18).

A browser sends a web page's requests to any address the page names, with none of our tokens but with
whatever the machine can reach: a page on any site, opened on the operator's machine, could start a
recording on the default (no-token, loopback) server with a body-less POST, enroll a face with a multipart
form and open the WebSocket — "simple" requests need no CORS answer from us. Two checks stop that:

- **Origin.** A request that changes something (any method but GET, HEAD and OPTIONS) and every WebSocket
  handshake (``/ws``) must come from this server's own pages — its ``Origin`` names the host the request
  was sent to (the ``Host`` header) — or from an origin given with ``--allow-origin``. A browser always
  sends ``Origin`` on such requests; one without it (curl, OBS, FFmpeg, GStreamer, the stage's own
  server-to-server requests) is let through unless its ``Sec-Fetch-Site`` says a browser sent it from
  another site. ``Origin: null`` (a sandboxed frame, a ``file:`` page) is refused.
- **Host** (a server without a token only). A page on ``evil.example`` whose name is made to resolve to
  127.0.0.1 (DNS rebinding) is same-origin with itself, so the Origin check alone would let it in. Without
  a token, a request must name this server by an address (``127.0.0.1``, ``[::1]``, a LAN address), by
  ``localhost``, by this machine's name or by a host of ``--allow-origin``. With a token, such a page has
  nothing to send: tokens travel in a header (or ``?access_token``), never in a cookie.

Refusals are 403 with the reason and what to do about it.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from engines.errors import InputError
from streamer.config import ServeConfig, is_loopback, netloc, normalize_origin
from streamer.errors import ForbiddenError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _host_netloc(host_header: str, scheme: str) -> tuple[str, str] | None:
    """(hostname, netloc without the default port) of a Host header; None when it is not a host."""
    try:
        parts = urlsplit(f"//{host_header.strip()}")
        return (parts.hostname or "", netloc(parts.hostname or "", parts.port, scheme))
    except ValueError:
        return None


@dataclass(frozen=True)
class OriginPolicy:
    """Which origins may change things, and (without a token) which host names requests may use."""

    allowed: frozenset[str]
    """Origins from ``--allow-origin``, normalised."""
    check_host: bool
    """No operator token: the Host header must name this server (DNS rebinding)."""
    known_hosts: frozenset[str]
    """Names (lower case) that are this server's besides addresses and ``localhost``."""

    @classmethod
    def from_config(cls, config: ServeConfig) -> OriginPolicy:
        allowed = frozenset(config.allowed_origins)  # normalised by the config
        names = {urlsplit(o).hostname or "" for o in allowed}
        names.add(config.host.strip("[]").lower())
        machine = socket.gethostname().lower()
        names.update({machine, machine.split(".")[0], f"{machine.split('.')[0]}.local"})
        return cls(allowed=allowed, check_host=config.token is None, known_hosts=frozenset(names - {""}))

    def refusal(self, method: str, path: str, headers: Any, scheme: str) -> str | None:
        """Why this request is refused, or None when it may go on."""
        host = headers.get("Host")
        parsed = _host_netloc(host, scheme) if host else None
        if self.check_host and host is not None and (parsed is None or not self._is_our_name(parsed[0])):
            return (
                f"Host {host[:100]!r} is not a name of this server: open it by its address or localhost, or "
                "start it with --allow-origin for that name (a page on another name could otherwise use "
                "this server without a token)"
            )
        if method in SAFE_METHODS and path != "/ws":
            return None
        origin = headers.get("Origin")
        if origin is None:
            if headers.get("Sec-Fetch-Site", "").lower() in ("cross-site", "same-site"):
                return "a cross-site request from a browser: only this server's own pages may do this"
            return None  # not a browser (curl, OBS, FFmpeg, another stageswap node)
        if self._is_allowed(origin, parsed, scheme):
            return None
        return (
            f"cross-origin request from {origin[:100]!r} refused: only this server's own pages (and origins "
            "given with --allow-origin) may change things or open the WebSocket"
        )

    def _is_our_name(self, hostname: str) -> bool:
        name = hostname.lower().rstrip(".")
        if is_loopback(name) or name.endswith(".localhost") or name in self.known_hosts:
            return True
        try:
            ipaddress.ip_address(name)  # an address: rebinding needs a name
            return True
        except ValueError:
            return False

    def _is_allowed(self, origin: str, host: tuple[str, str] | None, scheme: str) -> bool:
        try:
            given = normalize_origin(origin)
        except InputError:
            return False  # "null", or garbage
        if given in self.allowed:
            return True
        # Our own pages: the origin names the host this request was sent to (a reverse proxy that ends TLS
        # keeps the Host; only the port's default differs by scheme).
        return host is not None and given.split("://", 1)[1] == host[1]


def middleware(config: ServeConfig) -> Any:
    """The aiohttp middleware refusing cross-origin changes and, without a token, foreign Host names (403)."""
    policy = OriginPolicy.from_config(config)

    @web.middleware
    async def origin(request: web.Request, handler: Any) -> web.StreamResponse:
        why = policy.refusal(request.method, request.path, request.headers, request.scheme)
        if why is not None:
            raise ForbiddenError(why)
        return await handler(request)

    return origin

"""Request bodies within a limit and a time: the one reader every route uses (JSON, SDP offers, uploads).

A body arrives in as many TCP segments as the network makes of it (an SDP offer of 6 KB is five segments
of 1460 bytes), so it is read until its end, never from the first chunk only. A body of another type is
refused with 415; one that says or turns out to be over the limit with 413, before more than ``limit + 1``
bytes are read: a client cannot make the server buffer more than it allows. One that does not arrive
whole within ``timeout_s`` (a client that stalls, or trickles a byte now and then) is refused with 408 and
its connection closed, so it holds no handler for longer than that.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from engines.errors import InputError
from streamer.errors import PayloadTooLargeError, RequestTimeoutError, UnsupportedMediaTypeError


def parse_json(text: str | bytes, what: str) -> Any:
    """JSON from a client: a PATCH body, a WebSocket or OSC message (InputError when it is not JSON, or
    nested too deeply for the parser). ``NaN`` and ``Infinity`` are refused: they are not JSON (RFC 8259),
    Python's parser alone takes them, and a value read from them would be written back out as something
    no browser can parse (an ``"id": NaN`` echoed in a reply)."""
    try:
        return json.loads(text, parse_constant=_not_json)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from exc
    except _NotJson as exc:
        raise InputError(
            f"{what} is not valid JSON: {exc} is not a JSON value (RFC 8259 has no NaN or infinities)"
        ) from None
    except RecursionError as exc:  # e.g. 60 000 nested brackets: within the size limit, too deep to parse
        raise InputError(f"{what} is nested too deeply") from exc


class _NotJson(Exception):
    """A NaN or an infinity in the text."""


def _not_json(constant: str) -> Any:
    raise _NotJson(constant)


def check_declared(request: web.Request, content_type: str, limit: int, what: str, expected: str = "") -> None:
    """415 unless the request's Content-Type is ``content_type`` (``expected`` says what that is, for the
    message); 413 when its declared length is over ``limit`` bytes. ``what`` names the body in messages."""
    if request.content_type != content_type:
        raise UnsupportedMediaTypeError(
            f"expected {expected or 'Content-Type ' + content_type}, got {request.content_type or 'none'!r}"
        )
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLargeError(f"{what} of {request.content_length} bytes is over the {limit}-byte limit")


@asynccontextmanager
async def body_deadline(request: web.Request, timeout_s: float, what: str) -> AsyncIterator[None]:
    """Whatever reads the body inside must be done within ``timeout_s`` (408 and the connection closed)."""
    try:
        async with asyncio.timeout(timeout_s):
            yield
    except TimeoutError as exc:
        # The rest of the body may still come: the connection cannot carry another request, so it is closed
        # once the 408 is sent (aiohttp discards what comes meanwhile for at most its lingering time).
        if request.protocol is not None:
            request.protocol.keep_alive(False)
        raise RequestTimeoutError(f"{what} did not arrive within {timeout_s:g} s") from exc


async def read_body(
    request: web.Request, content_type: str, limit: int, what: str, timeout_s: float, expected: str = ""
) -> bytes:
    """The whole body, checked as ``check_declared`` says; 413 when more than ``limit`` bytes come, 408 when
    it is not all there within ``timeout_s``."""
    check_declared(request, content_type, limit, what, expected)
    body = bytearray()
    async with body_deadline(request, timeout_s, what):
        # ``read(n)`` answers with what has arrived so far (at least one byte, b"" only at the end), so it is
        # called until the end; asking for at most one byte over the limit keeps the buffer within it.
        while chunk := await request.content.read(limit + 1 - len(body)):
            body += chunk
            if len(body) > limit:
                raise PayloadTooLargeError(f"{what} is over the {limit}-byte limit")
    return bytes(body)

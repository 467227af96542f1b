"""Rate limits for control messages: a token bucket per WebSocket connection and per client address.

A control surface sends a handful of messages a second when an operator drags a slider; a client sending
hundreds (a runaway script, a hostile one) would make the event loop do nothing else. Each bucket holds
``burst`` messages and refills at ``rate_per_s``: within that a client is never refused; beyond it an HTTP
request gets 429 with ``Retry-After`` and does nothing, a WebSocket message gets an error reply.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from streamer.config import ServeConfig

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
MAX_TRACKED_CLIENTS = 4096
"""Client addresses remembered at once (least recently seen forgotten first): bounded memory under a flood."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenBucket:
    """``burst`` messages at once, ``rate_per_s`` on average (not thread-safe: one event loop uses it)."""

    def __init__(self, rate_per_s: float, burst: int, now_s: float | None = None) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._tokens = float(burst)
        self._updated_s = time.monotonic() if now_s is None else now_s
        self.refused = 0

    def allow(self, now_s: float | None = None) -> bool:
        """Take one token if there is one; False (counted in ``refused``) when the client is over its rate."""
        now_s = time.monotonic() if now_s is None else now_s
        self._tokens = min(float(self.burst), self._tokens + (now_s - self._updated_s) * self.rate_per_s)
        self._updated_s = now_s
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        self.refused += 1
        return False

    def retry_after_s(self) -> float:
        """How long until the next message would be allowed."""
        return max(0.0, (1.0 - self._tokens) / self.rate_per_s)


class KeyedLimiter:
    """One bucket per key (a client address), at most ``MAX_TRACKED_CLIENTS`` of them."""

    def __init__(self, rate_per_s: float, burst: int, max_keys: int = MAX_TRACKED_CLIENTS) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def bucket(self, key: str) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate_per_s, self.burst)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def __len__(self) -> int:
        return len(self._buckets)


def middleware(config: ServeConfig, prefixes: tuple[str, ...]) -> Any:
    """Limit state-changing requests (anything but GET/HEAD/OPTIONS) under ``prefixes`` (the API, WHIP, WHEP:
    ``streamer.api.auth.PROTECTED_PREFIXES``) per client address."""
    limiter = KeyedLimiter(config.control_rate_per_s, config.control_burst)

    @web.middleware
    async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in _READ_METHODS and request.path.startswith(prefixes):
            bucket = limiter.bucket(request.remote or "unknown")
            if not bucket.allow():
                retry_s = max(1, math.ceil(bucket.retry_after_s()))
                raise web.HTTPTooManyRequests(
                    text=f"too many requests: at most {config.control_rate_per_s:g} per second "
                    f"(bursts of {config.control_burst}); retry in {retry_s} s",
                    headers={"Retry-After": str(retry_s)},
                )
        return await handler(request)

    return rate_limit

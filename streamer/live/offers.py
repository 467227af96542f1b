"""What an SDP offer may ask of the server, checked on its text before anything parses it (issue 18).

One WHEP offer of ~580 m-lines held the event loop for seconds (aiortc makes a transceiver, codecs and an
answer section for each), fifteen froze every viewer and dropped a publisher, and the memory stayed; one
listing 100 remote candidates made ICE send checks to each of those addresses. So before any parsing:

- the offer's size, m-lines and candidates are counted on its text (``screen_offer``) against the limits
  of its session kind (``streamer.config.OfferLimits``: WHIP and WHEP each have theirs); too many m-lines
  is refused with the limit, too many candidates keeps the highest-priority ones;
- what parses it runs on a thread (``webrtc``), and aiortc's own work, which must run on the event loop,
  is done for at most ``max_negotiations`` offers at once (``NegotiationGate``): a burst of offers waits
  its turn rather than taking the loop from the viewers, and past a queue, 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Literal

from engines.errors import InputError
from streamer.config import OfferLimits
from streamer.errors import CapacityError

log = logging.getLogger(__name__)

Kind = Literal["whip", "whep"]
QUEUE_FACTOR = 4
"""Offers that may wait for their turn, as a multiple of the offers answered at once; more: 503."""


def screen_offer(sdp: str, limits: OfferLimits, kind: Kind) -> str:
    """The offer within ``limits``: InputError (400) over its m-lines; its candidates cut to the limit."""
    lines = sdp.splitlines()
    media = sum(1 for line in lines if line.startswith("m="))
    if media > limits.max_media:
        raise InputError(
            f"the offer has {media} m-lines; a {kind.upper()} offer may have at most {limits.max_media} "
            "(video and audio, each once)"
        )
    candidates = [line for line in lines if line.startswith("a=candidate:")]
    if len(candidates) <= limits.max_candidates:
        return sdp
    kept = set(sorted(candidates, key=_priority, reverse=True)[: limits.max_candidates])
    log.warning(
        "%s offer listed %d ICE candidates: the %d of highest priority kept",
        kind.upper(),
        len(candidates),
        limits.max_candidates,
    )
    return "\r\n".join(line for line in lines if not line.startswith("a=candidate:") or line in kept) + "\r\n"


def _priority(line: str) -> int:
    """A candidate line's priority (RFC 8839: foundation, component, transport, priority, ...); 0 if garbled."""
    fields = line.split()
    try:
        return int(fields[3])
    except (IndexError, ValueError):
        return 0


class NegotiationGate:
    """At most ``at_once`` offers answered at a time; up to ``QUEUE_FACTOR`` times as many wait; more: 503."""

    def __init__(self, at_once: int) -> None:
        self._turns = asyncio.Semaphore(at_once)
        self._max_waiting = QUEUE_FACTOR * at_once
        self._waiting = 0

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        if self._waiting >= self._max_waiting:
            raise CapacityError(f"{self._waiting} offers are waiting to be answered; send yours again shortly")
        self._waiting += 1
        try:
            await self._turns.acquire()
        finally:
            self._waiting -= 1
        try:
            yield
        finally:
            self._turns.release()

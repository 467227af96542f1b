"""Tracks that hand aiortc already-encoded packets: a WHEP viewer's picture and sound.

aiortc's RTP sender packetises an ``av.Packet`` a track returns as it is, so one shared encoder per stream
(and view and codec) serves every viewer. ``PacketTrack`` is the part both kinds share: ``_put`` on the
encoder's thread (never blocking), ``recv`` on the event loop, a lock-guarded queue between them. Each kind
decides what to do when its viewer falls behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError


class PacketTrack(MediaStreamTrack):
    """Encoded packets from another thread, returned in order; the subclass's ``deliver`` queues them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._event_loop = loop
        self._queue: deque[av.Packet] = deque()
        self._lock = threading.Lock()
        self._event = asyncio.Event()
        self.packets_sent = 0

    def _wake(self) -> None:
        """Call after queueing (outside the lock): the sender's ``recv`` is waiting on the event loop."""
        with contextlib.suppress(RuntimeError):  # the loop is closing: the session is being torn down
            self._event_loop.call_soon_threadsafe(self._event.set)

    async def recv(self) -> av.Packet:
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            self._event.clear()
            with self._lock:
                if self._queue:
                    self.packets_sent += 1
                    return self._queue.popleft()
            await self._event.wait()

    def stop(self) -> None:
        super().stop()
        with self._lock:
            self._queue.clear()
        self._event.set()


class ViewerAudioTrack(PacketTrack):
    """A WHEP viewer's sound: the stream's Opus packets, encoded once for every viewer (``streamer.live.audio``).

    ``deliver`` runs on the stream's audio thread and never blocks: a viewer whose sender falls behind
    loses its oldest packets (``max_packets`` of 20 ms are kept), the other viewers and the stream go on."""

    kind = "audio"

    def __init__(self, loop: asyncio.AbstractEventLoop, max_packets: int = 25) -> None:
        super().__init__(loop)
        self._max = max_packets
        self.packets_dropped = 0

    def deliver(self, packet: av.Packet) -> None:
        with self._lock:
            if self.readyState != "live":
                return
            if len(self._queue) >= self._max:
                self._queue.popleft()
                self.packets_dropped += 1
            self._queue.append(packet)
        self._wake()

"""A WHEP viewer's audio track: the stream's Opus packets, encoded once for every viewer, never waited on."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque

import av
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError


class ViewerAudioTrack(MediaStreamTrack):
    """Returns already-encoded Opus packets (aiortc's sender packetises them as they are).

    ``deliver`` runs on the stream's audio thread and never blocks: a viewer whose sender falls behind
    loses its oldest packets (``max_packets`` of 20 ms are kept), the other viewers and the stream go on."""

    kind = "audio"

    def __init__(self, loop: asyncio.AbstractEventLoop, max_packets: int = 25) -> None:
        super().__init__()
        self._event_loop = loop
        self._max = max_packets
        self._queue: deque[av.Packet] = deque()
        self._lock = threading.Lock()
        self._event = asyncio.Event()
        self.packets_sent = 0
        self.packets_dropped = 0

    def deliver(self, packet: av.Packet) -> None:
        with self._lock:
            if self.readyState != "live":
                return
            if len(self._queue) >= self._max:
                self._queue.popleft()
                self.packets_dropped += 1
            self._queue.append(packet)
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

"""FrameRing: preallocated frame slots between ingest and the worker, latest frame wins.

Ingest ``put``s every decoded frame; the worker ``acquire``s the newest one it has not seen yet. A
frame that is replaced before the worker got to it is dropped and counted, never queued: that is what
keeps the live delay constant when a stage is slow. The slot the worker holds is never written to, so
it can process it in place without a copy.

One interface, two implementations: ``CpuFrameRing`` (numpy slots) here, and a CUDA ring with
page-locked host slots and device slots (``streamer.live.cuda_ring``) for the GPU path. Both pass the same
test-suite.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class FrameMeta:
    """What travels with a frame: its index at ingest, media time, and when it arrived (monotonic s)."""

    index: int
    pts_s: float
    arrived_s: float = field(default_factory=time.monotonic)
    extra: dict[str, Any] = field(default_factory=dict)
    capture_s: float | None = None
    """When the frame was captured, on this machine's monotonic clock, where the source says (a publisher's
    RTCP sender reports, a file's timestamps); the sound captured with it has the same ``capture_s``."""

    @property
    def captured_s(self) -> float:
        """``capture_s``, or the arrival time where the source does not say."""
        return self.arrived_s if self.capture_s is None else self.capture_s


@dataclass
class RingStats:
    written: int = 0
    read: int = 0
    dropped: int = 0
    """Frames replaced by a newer one before the consumer read them."""
    reallocations: int = 0


class RingClosed(Exception):
    """Raised by ``acquire`` once the ring is closed and no unread frame is left."""


class Slot(Protocol):
    image: Any
    """The frame: an H x W x 3 uint8 array (numpy on the CPU ring, a device array on the CUDA ring)."""
    host: np.ndarray
    """The same frame in host memory, valid while the slot is held: ``image`` itself on the CPU ring, the
    page-locked staging buffer the upload came from on the CUDA ring (no download needed to read it)."""
    meta: FrameMeta


class FrameRing(Protocol):
    stats: RingStats

    def put(self, image: np.ndarray, meta: FrameMeta) -> None:
        """Store a frame as the newest; never blocks on the consumer."""
        ...

    def acquire(self, timeout_s: float | None = None) -> Any:
        """Context manager yielding the newest unread ``Slot``, or None after ``timeout_s``."""
        ...

    def close(self) -> None: ...

    def free(self) -> None:
        """Close and release the slots' memory now (when no slot is held; the CUDA ring's device memory)."""
        ...


class LatestWins:
    """The slot bookkeeping both rings share (``CpuFrameRing``, ``streamer.live.cuda_ring.CudaFrameRing``): the
    slot written next, the newest unread one, closing, and the counts. A ring says which slots are free
    (``_is_free``) and how slots are made for a frame size (``_allocate``); its own ``put`` copies the frame
    into the slot ``_claim`` gave it, outside the lock, then ``_publish``-es it, and its ``acquire`` holds
    what ``_take_latest`` hands out."""

    def __init__(self, slots: int) -> None:
        if slots < 3:
            raise ValueError("a latest-frame ring needs at least 3 slots")
        self._n = slots
        self._shape: tuple[int, ...] | None = None
        self._cond = threading.Condition()
        self._latest: int | None = None  # slot index of the newest frame not yet read
        self._next = 0
        self._closed = False
        self.stats = RingStats()

    def _allocate(self, shape: tuple[int, ...]) -> None:
        raise NotImplementedError

    def _is_free(self, index: int) -> bool:
        """Whether slot ``index`` may be written (it is neither the newest nor held)."""
        raise NotImplementedError

    def _claim(self, image: np.ndarray) -> int | None:
        """The index of a free slot for ``image`` (None: the ring is closed); new slots for a new frame size
        (the newest unread frame, of the old size, is dropped)."""
        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError(f"FrameRing takes H x W x C uint8 frames, got {image.dtype} {image.shape}")
        with self._cond:
            if self._closed:
                return None
            if image.shape != self._shape:
                # New frame size: fresh slots. A consumer holding an old slot keeps that object until release.
                self._allocate(image.shape)
                self._shape = image.shape
                self.stats.reallocations += 1
                if self._latest is not None:
                    self.stats.dropped += 1
                self._latest = None
            for _ in range(self._n):
                i = self._next
                self._next = (self._next + 1) % self._n
                if i != self._latest and self._is_free(i):
                    return i
            raise RuntimeError("no free slot")  # unreachable with >= 3 slots

    def _publish(self, index: int) -> None:
        """Slot ``index`` holds the newest frame now (an unread older one is dropped)."""
        with self._cond:
            if self._latest is not None:
                self.stats.dropped += 1
            self._latest = index
            self.stats.written += 1
            self._cond.notify_all()

    def _take_latest(self, timeout_s: float | None) -> int | None:
        """Under ``_cond``: the newest unread slot's index, waiting up to ``timeout_s`` (None: none came);
        RingClosed once the ring is closed and drained."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._latest is None:
            if self._closed:
                raise RingClosed
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._cond.wait(remaining)
        index, self._latest = self._latest, None
        self.stats.read += 1
        return index

    def close(self) -> None:
        """No more frames; a waiting consumer wakes (and gets RingClosed once the last frame is read)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


@dataclass
class _CpuSlot:
    image: np.ndarray
    meta: FrameMeta = field(default_factory=lambda: FrameMeta(-1, 0.0))

    @property
    def host(self) -> np.ndarray:
        return self.image


class CpuFrameRing(LatestWins):
    """Numpy slots (at least 3: one being written, the newest, one held by the consumer)."""

    def __init__(self, slots: int = 3) -> None:
        super().__init__(slots)
        self._slots: list[_CpuSlot] = []
        self._held: int | None = None  # slot index the consumer holds

    def _allocate(self, shape: tuple[int, ...]) -> None:
        self._slots = [_CpuSlot(np.empty(shape, dtype=np.uint8)) for _ in range(self._n)]

    def free(self) -> None:
        """Close; the slots go with the ring (numpy memory needs no explicit release)."""
        self.close()

    def _is_free(self, index: int) -> bool:
        return index != self._held

    def put(self, image: np.ndarray, meta: FrameMeta) -> None:
        """Copy ``image`` into a free slot and make it the newest (one producer thread per ring)."""
        target = self._claim(image)
        if target is None:
            return
        slot = self._slots[target]
        # Copy outside the lock: the slot is neither the newest nor held, and there is one producer.
        np.copyto(slot.image, image)
        slot.meta = meta
        self._publish(target)

    @contextmanager
    def acquire(self, timeout_s: float | None = None) -> Iterator[_CpuSlot | None]:
        """Hold the newest unread frame for the block; None if none came within ``timeout_s``.

        Raises RingClosed once the ring is closed and drained."""
        with self._cond:
            index = self._take_latest(timeout_s)
            self._held = index
        if index is None:
            yield None
            return
        try:
            yield self._slots[index]
        finally:
            with self._cond:
                self._held = None

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


@dataclass
class _CpuSlot:
    image: np.ndarray
    meta: FrameMeta = field(default_factory=lambda: FrameMeta(-1, 0.0))


class CpuFrameRing:
    """Numpy slots (at least 3: one being written, the newest, one held by the consumer)."""

    def __init__(self, slots: int = 3) -> None:
        if slots < 3:
            raise ValueError("a latest-frame ring needs at least 3 slots")
        self._n = slots
        self._slots: list[_CpuSlot] = []
        self._shape: tuple[int, ...] | None = None
        self._cond = threading.Condition()
        self._latest: int | None = None  # slot index of the newest frame not yet read
        self._held: int | None = None  # slot index the consumer holds
        self._next = 0
        self._closed = False
        self.stats = RingStats()

    def _allocate(self, shape: tuple[int, ...]) -> None:
        self._slots = [_CpuSlot(np.empty(shape, dtype=np.uint8)) for _ in range(self._n)]
        self._shape = shape
        self.stats.reallocations += 1

    def put(self, image: np.ndarray, meta: FrameMeta) -> None:
        """Copy ``image`` into a free slot and make it the newest (one producer thread per ring)."""
        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError(f"FrameRing takes H x W x C uint8 frames, got {image.dtype} {image.shape}")
        with self._cond:
            if self._closed:
                return
            if image.shape != self._shape:
                # New frame size: fresh slots. A consumer holding an old slot keeps that object until release.
                self._allocate(image.shape)
                if self._latest is not None:
                    self.stats.dropped += 1
                self._latest = None
            target = self._free_slot()
            slot = self._slots[target]
        # Copy outside the lock: the slot is neither the newest nor held, and there is one producer.
        np.copyto(slot.image, image)
        slot.meta = meta
        with self._cond:
            if self._latest is not None:
                self.stats.dropped += 1
            self._latest = target
            self.stats.written += 1
            self._cond.notify_all()

    def _free_slot(self) -> int:
        for _ in range(self._n):
            i = self._next
            self._next = (self._next + 1) % self._n
            if i != self._latest and i != self._held:
                return i
        raise RuntimeError("no free slot")  # unreachable with >= 3 slots

    @contextmanager
    def acquire(self, timeout_s: float | None = None) -> Iterator[_CpuSlot | None]:
        """Hold the newest unread frame for the block; None if none came within ``timeout_s``.

        Raises RingClosed once the ring is closed and drained."""
        with self._cond:
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            while self._latest is None:
                if self._closed:
                    raise RingClosed
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._cond.wait(remaining)
            if self._latest is None:
                index = None
            else:
                index, self._latest = self._latest, None
                self._held = index
                self.stats.read += 1
        if index is None:
            yield None
            return
        try:
            yield self._slots[index]
        finally:
            with self._cond:
                self._held = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

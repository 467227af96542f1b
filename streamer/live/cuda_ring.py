"""CUDA FrameRing: latest-frame-wins slots in page-locked host memory and device memory (pycuda).

The same contract as ``CpuFrameRing`` (and the same test-suite): ingest ``put``s every decoded frame and
never waits for the consumer; the worker ``acquire``s the newest frame it has not seen; a replaced frame is
dropped and counted; the slot the worker holds is never written. What differs is where the frame lives:

- ``put`` copies the frame into the slot's page-locked host buffer and queues its upload on the ring's
  *copy stream*, recording the slot's ``uploaded`` event, then returns — the upload overlaps the worker's
  compute on the previous frame.
- ``acquire`` waits for the slot's upload to finish and hands out ``slot.image``, a ``DeviceFrame``: device
  memory exposing ``__cuda_array_interface__``, so ``torch.as_tensor(slot.image, device="cuda")`` (and
  TensorRT, through the tensor's pointer) use it in place, without a copy.
- The worker computes on the ring's *compute stream* (``ring.compute_stream``; torch:
  ``torch.cuda.ExternalStream(ring.compute_stream.handle)``). When it releases the slot, the ring records
  the slot's ``consumed`` event on that stream, and the next upload into that slot waits for it on the GPU
  — so a slot is never overwritten while queued kernels still read it, and no thread blocks for it.

Memory comes from the device's *primary* context (``Device(n).retain_primary_context()``), the one torch's
runtime API and TensorRT use, so pointers are valid in all three. Every allocation is made up front per
frame size (no per-frame allocations) and freed explicitly by ``free()`` (or leaving ``with ring:``).
pycuda is the ``gpu`` extra (see README, "GPU"); importing this module without it raises a clear error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamer.live.ring import FrameMeta, LatestWins

try:
    import pycuda.driver as cuda
except ImportError as _exc:  # pragma: no cover - exercised only where pycuda is missing
    raise ImportError(
        "streamer.live.cuda_ring needs pycuda (pip install -e '.[gpu]' on a machine with the CUDA toolkit)"
    ) from _exc


class DeviceFrame:
    """An H x W x C uint8 frame in device memory. ``__cuda_array_interface__`` (version 3) lets torch, CuPy
    and Numba use it in place; ``to_host()`` copies it back (for tests and debugging, not the hot path)."""

    def __init__(self, ring: CudaFrameRing, pointer: int, shape: tuple[int, ...]) -> None:
        self._ring = ring
        self.ptr = int(pointer)
        self.shape = shape
        self.dtype = np.dtype(np.uint8)
        self.nbytes = int(np.prod(shape))

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        # stream None: the ring has waited for the upload before handing the frame out.
        return {
            "shape": self.shape,
            "typestr": "|u1",
            "data": (self.ptr, False),
            "version": 3,
            "strides": None,
            "stream": None,
        }

    def to_host(self) -> np.ndarray:
        """A host copy, after the compute stream's queued work on this frame has finished."""
        out = np.empty(self.shape, dtype=np.uint8)
        with self._ring._current():
            self._ring.compute_stream.synchronize()
            cuda.memcpy_dtoh(out, self.ptr)
        return out


@dataclass
class CudaSlot:
    """One slot: the page-locked host staging buffer, the device frame, and its two events."""

    host: np.ndarray
    device: Any  # pycuda DeviceAllocation
    image: DeviceFrame
    uploaded: Any  # pycuda Event, recorded on the copy stream after the upload
    consumed: Any  # pycuda Event, recorded on the compute stream when the consumer releases the slot
    meta: FrameMeta = field(default_factory=lambda: FrameMeta(-1, 0.0))
    freed: bool = False


class CudaFrameRing(LatestWins):
    """GPU slots (at least 3: one being written, the newest, one held by the consumer); one producer
    thread and one consumer thread per ring, as with ``CpuFrameRing``."""

    def __init__(self, slots: int = 3, device: int = 0) -> None:
        if slots < 3:
            raise ValueError("a latest-frame ring needs at least 3 slots")
        cuda.init()
        self.device = cuda.Device(device)
        self._ctx = self.device.retain_primary_context()
        super().__init__(slots)
        self._slots: list[CudaSlot] = []
        self._retired: list[CudaSlot] = []
        self._held: CudaSlot | None = None
        self._event_flags = cuda.event_flags.DISABLE_TIMING  # events only order work; no timing overhead
        with self._current():
            self.copy_stream = cuda.Stream()
            self.compute_stream = cuda.Stream()

    @contextmanager
    def _current(self) -> Iterator[None]:
        """Make the primary context current on this thread for the block (pycuda's stack is per thread)."""
        self._ctx.push()
        try:
            yield
        finally:
            cuda.Context.pop()

    def _new_slot(self, shape: tuple[int, ...]) -> CudaSlot:
        nbytes = int(np.prod(shape))
        host = cuda.pagelocked_empty(shape, np.uint8)
        device = cuda.mem_alloc(nbytes)
        return CudaSlot(
            host=host,
            device=device,
            image=DeviceFrame(self, int(device), shape),
            uploaded=cuda.Event(self._event_flags),
            consumed=cuda.Event(self._event_flags),
        )

    def _free_slot_memory(self, slot: CudaSlot) -> None:
        if slot.freed:
            return
        slot.uploaded.synchronize()
        slot.consumed.synchronize()
        slot.device.free()
        pinned: Any = slot.host.base  # pycuda's HostAllocation behind the numpy view
        pinned.free()
        slot.freed = True

    def _allocate(self, shape: tuple[int, ...]) -> None:
        """Fresh slots for a new frame size; the old ones are freed (the held one when it is released)."""
        with self._current():
            for slot in self._slots:
                if slot is self._held:
                    self._retired.append(slot)
                else:
                    self._free_slot_memory(slot)
            self._slots = [self._new_slot(shape) for _ in range(self._n)]

    def _is_free(self, index: int) -> bool:
        return self._slots[index] is not self._held

    def put(self, image: np.ndarray, meta: FrameMeta) -> None:
        """Stage ``image`` in a free slot and queue its upload; it becomes the newest frame. Never blocks on
        the consumer (only, rarely, on this slot's own previous upload)."""
        target = self._claim(image)
        if target is None:
            return
        slot = self._slots[target]
        # Outside the lock: the slot is neither the newest nor held, and there is one producer.
        with self._current():
            slot.uploaded.synchronize()  # the host buffer's previous upload has left it
            np.copyto(slot.host, image)
            self.copy_stream.wait_for_event(slot.consumed)  # the consumer's kernels are done with the device slot
            cuda.memcpy_htod_async(slot.device, slot.host, self.copy_stream)
            slot.uploaded.record(self.copy_stream)
        slot.meta = meta
        self._publish(target)

    @contextmanager
    def acquire(self, timeout_s: float | None = None) -> Iterator[CudaSlot | None]:
        """Hold the newest unread frame (uploaded, on the device) for the block; None if none came within
        ``timeout_s``. Queue the block's GPU work on ``compute_stream``. Raises RingClosed once closed and
        drained."""
        with self._cond:
            index = self._take_latest(timeout_s)
            slot = None if index is None else self._slots[index]
            self._held = slot
        if slot is None:
            yield None
            return
        try:
            with self._current():
                slot.uploaded.synchronize()
            yield slot
        finally:
            with self._current():
                slot.consumed.record(self.compute_stream)
            with self._cond:
                self._held = None
                retired, self._retired = self._retired, []
            if retired:
                with self._current():
                    for old in retired:
                        self._free_slot_memory(old)

    def free(self) -> None:
        """Close and release every host and device buffer now (call when no slot is held)."""
        self.close()
        with self._cond:
            if self._held is not None:
                raise RuntimeError("free() while the consumer holds a slot")
            slots, self._slots = [*self._slots, *self._retired], []
            self._retired = []
            self._shape = None
        with self._current():
            for slot in slots:
                self._free_slot_memory(slot)
            self.copy_stream.synchronize()
            self.compute_stream.synchronize()

    def __enter__(self) -> CudaFrameRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.free()

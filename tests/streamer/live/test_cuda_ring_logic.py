"""The CUDA ring's bookkeeping, on a machine without a GPU: pycuda replaced by a simulation in this file.

The simulation copies synchronously in host memory and records what the ring asks of CUDA: which context
is current, which stream waits for which event, what is allocated and freed. It checks the ring's own
logic (latest frame wins, slot reuse, the consumed-event wait before an upload, explicit frees, the
primary context) — the real CUDA behaviour is covered by the shared ring suite under ``make test-gpu``.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from streamer.live.ring import FrameMeta, RingClosed


class _Sim:
    """State of the simulated driver."""

    def __init__(self) -> None:
        self.memory: dict[int, np.ndarray] = {}
        self.next_ptr = 0x1000
        self.freed: list[int] = []
        self.pinned_live = 0
        self.stack = threading.local()
        self.primary_retained = 0
        self.waits: list[tuple[Any, Any]] = []
        self.uploads = 0

    def current(self) -> Any:
        stack = getattr(self.stack, "items", [])
        return stack[-1] if stack else None


def _make_driver(sim: _Sim) -> types.ModuleType:
    drv = types.ModuleType("pycuda.driver")

    def need_context() -> None:
        if sim.current() is None:
            raise RuntimeError("simulated CUDA: no current context on this thread")

    class Context:
        def push(self) -> None:
            sim.stack.items = [*getattr(sim.stack, "items", []), self]

        @staticmethod
        def pop() -> None:
            items = getattr(sim.stack, "items", [])
            if not items:
                raise RuntimeError("simulated CUDA: pop on an empty context stack")
            sim.stack.items = items[:-1]

    primary = Context()

    class Device:
        def __init__(self, n: int) -> None:
            self.n = n

        def retain_primary_context(self) -> Context:
            sim.primary_retained += 1
            return primary

    class Stream:
        handle = 1234

        def __init__(self, flags: int = 0) -> None:
            need_context()

        def synchronize(self) -> None:
            need_context()

        def wait_for_event(self, event: Any) -> None:
            need_context()
            sim.waits.append((self, event))

    class Event:
        def __init__(self, flags: int = 0) -> None:
            need_context()
            self.recorded_on: Any = None

        def record(self, stream: Any = None) -> Event:
            need_context()
            self.recorded_on = stream
            return self

        def synchronize(self) -> Event:
            need_context()
            return self

    class _Pinned(bytearray):
        def free(self) -> None:
            sim.pinned_live -= 1

    class DeviceAllocation:
        def __init__(self, nbytes: int) -> None:
            self.ptr = sim.next_ptr
            sim.next_ptr += nbytes + 256
            sim.memory[self.ptr] = np.zeros(nbytes, np.uint8)

        def __int__(self) -> int:
            return self.ptr

        def free(self) -> None:
            need_context()
            if self.ptr in sim.freed:
                raise RuntimeError("simulated CUDA: double free")
            sim.freed.append(self.ptr)
            del sim.memory[self.ptr]

    def pagelocked_empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        need_context()
        sim.pinned_live += 1
        return np.ndarray(shape, dtype, buffer=_Pinned(int(np.prod(shape)) * np.dtype(dtype).itemsize))

    def mem_alloc(nbytes: int) -> DeviceAllocation:
        need_context()
        return DeviceAllocation(nbytes)

    def memcpy_htod_async(dest: Any, src: np.ndarray, stream: Any = None) -> None:
        need_context()
        assert isinstance(src.base, _Pinned), "async uploads must come from page-locked memory"
        sim.memory[int(dest)][:] = src.reshape(-1)
        sim.uploads += 1

    def memcpy_dtoh(dest: np.ndarray, src: int) -> None:
        need_context()
        dest.reshape(-1)[:] = sim.memory[int(src)][: dest.size]

    drv.init = lambda: None  # type: ignore[attr-defined]
    drv.Device = Device  # type: ignore[attr-defined]
    drv.Context = Context  # type: ignore[attr-defined]
    drv.Stream = Stream  # type: ignore[attr-defined]
    drv.Event = Event  # type: ignore[attr-defined]
    drv.event_flags = types.SimpleNamespace(DISABLE_TIMING=2)  # type: ignore[attr-defined]
    drv.pagelocked_empty = pagelocked_empty  # type: ignore[attr-defined]
    drv.mem_alloc = mem_alloc  # type: ignore[attr-defined]
    drv.memcpy_htod_async = memcpy_htod_async  # type: ignore[attr-defined]
    drv.memcpy_dtoh = memcpy_dtoh  # type: ignore[attr-defined]
    return drv


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Sim]:
    state = _Sim()
    package = types.ModuleType("pycuda")
    driver = _make_driver(state)
    package.driver = driver  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.delitem(sys.modules, "streamer.live.cuda_ring", raising=False)
    yield state
    sys.modules.pop("streamer.live.cuda_ring", None)  # never leave the simulated module imported


def _ring_class() -> Any:
    return importlib.import_module("streamer.live.cuda_ring").CudaFrameRing


def _frame(i: int, shape: tuple[int, int, int] = (8, 10, 3)) -> np.ndarray:
    return np.full(shape, i % 256, np.uint8)


def test_uses_the_primary_context_and_leaves_no_context_pushed(sim: _Sim) -> None:
    ring = _ring_class()(slots=3)
    assert sim.primary_retained == 1
    ring.put(_frame(1), FrameMeta(1, 0.0))
    with ring.acquire(timeout_s=1) as slot:
        assert slot is not None
        assert sim.current() is None  # the consumer's own code runs with the caller's context stack untouched
        cai = slot.image.__cuda_array_interface__
        assert cai["shape"] == (8, 10, 3) and cai["typestr"] == "|u1" and cai["version"] == 3
        assert cai["data"][0] == slot.image.ptr in sim.memory
        assert (slot.image.to_host() == 1).all()
    assert sim.current() is None
    ring.free()


def test_latest_wins_and_every_upload_waits_for_the_slots_consumer(sim: _Sim) -> None:
    ring = _ring_class()(slots=3)
    for i in range(5):
        ring.put(_frame(i), FrameMeta(i, 0.0))
    assert sim.uploads == 5 and ring.stats.dropped == 4
    # Each upload first made the copy stream wait for that slot's "consumed" event.
    assert len(sim.waits) == 5 and all(stream is ring.copy_stream for stream, _ in sim.waits)
    with ring.acquire(timeout_s=1) as slot:
        assert slot is not None and slot.meta.index == 4 and (slot.image.to_host() == 4).all()
        held = slot
        for i in range(10):  # the producer keeps going while the consumer holds its slot
            ring.put(_frame(50 + i), FrameMeta(50 + i, 0.0))
        assert (held.image.to_host() == 4).all()
    assert held.consumed.recorded_on is ring.compute_stream  # released on the compute stream
    with ring.acquire(timeout_s=1) as slot:
        assert slot is not None and slot.meta.index == 59
    ring.free()
    assert sim.memory == {} and sim.pinned_live == 0


def test_resize_frees_old_slots_and_the_held_one_on_release(sim: _Sim) -> None:
    ring = _ring_class()(slots=3)
    ring.put(_frame(1), FrameMeta(1, 0.0))
    with ring.acquire(timeout_s=1) as slot:
        assert slot is not None
        old_ptr = slot.image.ptr
        ring.put(_frame(2, (16, 20, 3)), FrameMeta(2, 0.0))
        assert old_ptr in sim.memory  # still held: not freed under the consumer
        assert len(sim.freed) == 2
        assert (slot.image.to_host() == 1).all()
    assert old_ptr in sim.freed and ring.stats.reallocations == 2
    with ring.acquire(timeout_s=1) as slot:
        assert slot is not None and slot.image.shape == (16, 20, 3) and (slot.image.to_host() == 2).all()
    ring.free()
    assert sim.memory == {} and sim.pinned_live == 0


def test_close_then_drain_then_ring_closed_and_free_refuses_while_held(sim: _Sim) -> None:
    ring = _ring_class()(slots=3)
    ring.put(_frame(3), FrameMeta(3, 0.0))
    ring.close()
    ring.put(_frame(4), FrameMeta(4, 0.0))  # ignored after close
    with ring.acquire(timeout_s=1) as slot:
        assert slot is not None and slot.meta.index == 3
        with pytest.raises(RuntimeError, match="holds a slot"):
            ring.free()
    with pytest.raises(RingClosed), ring.acquire(timeout_s=1):
        pass
    ring.free()
    assert sim.memory == {}


def test_rejects_wrong_frames_and_too_few_slots(sim: _Sim) -> None:
    cls = _ring_class()
    with pytest.raises(ValueError, match="at least 3"):
        cls(slots=2)
    ring = cls(slots=3)
    with pytest.raises(ValueError, match="uint8"):
        ring.put(np.zeros((4, 4, 3), np.float32), FrameMeta(0, 0.0))
    ring.free()

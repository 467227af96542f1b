"""A simulated pycuda for tests on machines without a GPU (``install`` puts it in ``sys.modules``).

The simulation copies synchronously in host memory and records what the code under test asks of CUDA:
which context is current, which stream waits for which event, what is allocated, uploaded and freed. It
lets the CUDA ring's bookkeeping and the service's wiring of it be tested here; the real CUDA behaviour is
covered by the shared ring suite and tests/engines/test_gpu.py under ``make test-gpu``.
"""

from __future__ import annotations

import sys
import threading
import types
from typing import Any

import numpy as np
import pytest


class _Pinned(bytearray):
    """Simulated page-locked host memory (pycuda's HostAllocation behind a numpy view)."""

    def __init__(self, nbytes: int, sim: Sim) -> None:
        super().__init__(nbytes)
        self._sim = sim

    def free(self) -> None:
        self._sim.pinned_live -= 1


class Sim:
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

    @staticmethod
    def is_pinned(array: np.ndarray) -> bool:
        """Whether ``array`` is (a view of) simulated page-locked memory: a ring slot's host buffer."""
        return isinstance(array.base, _Pinned)

    def current(self) -> Any:
        stack = getattr(self.stack, "items", [])
        return stack[-1] if stack else None


def make_driver(sim: Sim) -> types.ModuleType:
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
        return np.ndarray(shape, dtype, buffer=_Pinned(int(np.prod(shape)) * np.dtype(dtype).itemsize, sim))

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


def install(monkeypatch: pytest.MonkeyPatch) -> Sim:
    """Replace pycuda with the simulation for one test (call ``uninstall`` at its end)."""
    state = Sim()
    package = types.ModuleType("pycuda")
    driver = make_driver(state)
    package.driver = driver  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    monkeypatch.delitem(sys.modules, "streamer.live.cuda_ring", raising=False)
    return state


def uninstall() -> None:
    """Drop the ring module imported against the simulation (never leave it imported)."""
    sys.modules.pop("streamer.live.cuda_ring", None)

"""The CUDA ring's bookkeeping, on a machine without a GPU: pycuda replaced by the simulation in
``tests/cuda_sim.py``.

It checks the ring's own logic (latest frame wins, slot reuse, the consumed-event wait before an upload,
explicit frees, the primary context) — the real CUDA behaviour is covered by the shared ring suite under
``make test-gpu``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from streamer.live.ring import FrameMeta, RingClosed
from tests.cuda_sim import Sim, install, uninstall


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sim]:
    yield install(monkeypatch)
    uninstall()


def _ring_class() -> Any:
    return importlib.import_module("streamer.live.cuda_ring").CudaFrameRing


def _frame(i: int, shape: tuple[int, int, int] = (8, 10, 3)) -> np.ndarray:
    return np.full(shape, i % 256, np.uint8)


def test_uses_the_primary_context_and_leaves_no_context_pushed(sim: Sim) -> None:
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


def test_latest_wins_and_every_upload_waits_for_the_slots_consumer(sim: Sim) -> None:
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


def test_resize_frees_old_slots_and_the_held_one_on_release(sim: Sim) -> None:
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


def test_close_then_drain_then_ring_closed_and_free_refuses_while_held(sim: Sim) -> None:
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


def test_rejects_wrong_frames_and_too_few_slots(sim: Sim) -> None:
    cls = _ring_class()
    with pytest.raises(ValueError, match="at least 3"):
        cls(slots=2)
    ring = cls(slots=3)
    with pytest.raises(ValueError, match="uint8"):
        ring.put(np.zeros((4, 4, 3), np.float32), FrameMeta(0, 0.0))
    ring.free()

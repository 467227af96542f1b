"""FrameRing contract: one suite for every implementation (the CUDA ring joins where a GPU exists)."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from streamer.live.ring import CpuFrameRing, FrameMeta, FrameRing, RingClosed


def _cuda_ring_skip_reason() -> str | None:
    if importlib.util.find_spec("pycuda") is None:
        return "pycuda is not installed (pip install -e '.[gpu]' on a CUDA machine)"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA GPU (torch.cuda.is_available() is False)"
    return None


def _cuda_ring() -> FrameRing:
    from streamer.live.cuda_ring import CudaFrameRing

    return CudaFrameRing(slots=3)


_CUDA_SKIP = _cuda_ring_skip_reason()
RINGS = [
    pytest.param(lambda: CpuFrameRing(slots=3), id="cpu"),
    pytest.param(
        _cuda_ring,
        id="cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(_CUDA_SKIP is not None, reason=str(_CUDA_SKIP))],
    ),
]


def _to_host(image: object) -> np.ndarray:
    to_host = getattr(image, "to_host", None)  # device frames copy back explicitly
    return to_host() if to_host is not None else np.asarray(image)


def _frame(i: int, shape: tuple[int, int, int] = (48, 64, 3)) -> np.ndarray:
    return np.full(shape, i % 256, dtype=np.uint8)


@pytest.fixture(params=RINGS)
def ring(request: pytest.FixtureRequest) -> Iterator[FrameRing]:
    r = request.param()
    yield r
    free = getattr(r, "free", None)  # the CUDA ring releases its host and device buffers explicitly
    if free is not None:
        free()


def test_latest_frame_wins_and_drops_are_counted(ring: FrameRing) -> None:
    for i in range(5):
        ring.put(_frame(i), FrameMeta(i, i / 30))
    with ring.acquire(timeout_s=1) as slot:
        assert slot is not None and slot.meta.index == 4
        assert int(_to_host(slot.image)[0, 0, 0]) == 4
    assert ring.stats.written == 5 and ring.stats.read == 1 and ring.stats.dropped == 4


def test_acquire_times_out_without_a_new_frame(ring: FrameRing) -> None:
    ring.put(_frame(1), FrameMeta(1, 0.0))
    with ring.acquire(timeout_s=1) as slot:
        assert slot is not None
    t0 = time.monotonic()
    with ring.acquire(timeout_s=0.05) as slot:
        assert slot is None
    assert time.monotonic() - t0 >= 0.04


def test_held_slot_is_never_overwritten(ring: FrameRing) -> None:
    ring.put(_frame(7), FrameMeta(7, 0.0))
    with ring.acquire(timeout_s=1) as slot:
        assert slot is not None
        for i in range(20):  # the producer keeps going while the consumer holds its slot
            ring.put(_frame(100 + i), FrameMeta(100 + i, 0.0))
        assert (_to_host(slot.image) == 7).all() and slot.meta.index == 7
    with ring.acquire(timeout_s=1) as slot:
        assert slot is not None and slot.meta.index == 119


def test_resolution_change_reallocates(ring: FrameRing) -> None:
    ring.put(_frame(1, (10, 20, 3)), FrameMeta(1, 0.0))
    with ring.acquire(timeout_s=1) as slot:
        ring.put(_frame(2, (30, 40, 3)), FrameMeta(2, 0.0))
        assert _to_host(slot.image).shape == (10, 20, 3)
    with ring.acquire(timeout_s=1) as slot:
        assert _to_host(slot.image).shape == (30, 40, 3) and slot.meta.index == 2


def test_close_wakes_a_waiting_consumer(ring: FrameRing) -> None:
    raised = threading.Event()

    def consume() -> None:
        try:
            with ring.acquire(timeout_s=None):
                pass
        except RingClosed:
            raised.set()

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.05)
    ring.close()
    t.join(30)
    assert raised.is_set()


def test_concurrent_producer_consumer_sees_increasing_frames(ring: FrameRing) -> None:
    n = 400
    seen: list[int] = []

    def produce() -> None:
        for i in range(n):
            ring.put(_frame(i), FrameMeta(i, i / 30))
            time.sleep(0.0005)
        ring.close()

    t = threading.Thread(target=produce)
    t.start()
    try:
        while True:
            with ring.acquire(timeout_s=30) as slot:  # the producer closes the ring
                if slot is None:
                    break
                img = _to_host(slot.image)
                assert (img == slot.meta.index % 256).all()  # never a torn frame
                seen.append(slot.meta.index)
                time.sleep(0.002)  # a slow consumer
    except RingClosed:
        pass
    t.join()
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert ring.stats.read == len(seen)
    assert (
        ring.stats.read + ring.stats.dropped == ring.stats.written
        or ring.stats.written - (ring.stats.read + ring.stats.dropped) == 1
    )


def test_rejects_wrong_dtype(ring: FrameRing) -> None:
    with pytest.raises(ValueError):
        ring.put(np.zeros((4, 4, 3), np.float32), FrameMeta(0, 0.0))

"""Per-stage timings: collected per frame, summarised as percentiles (p50, p99) in milliseconds."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np


class StageTimes:
    """Keeps the last ``window`` samples per stage (all of them when ``window`` is None)."""

    def __init__(self, window: int | None = None) -> None:
        self.window = window
        self._samples: dict[str, deque[float]] = {}

    def add(self, stage: str, ms: float) -> None:
        if stage not in self._samples:
            self._samples[stage] = deque(maxlen=self.window)
        self._samples[stage].append(float(ms))

    def add_all(self, stage_ms: Mapping[str, float]) -> None:
        for stage, ms in stage_ms.items():
            self.add(stage, ms)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {"p50": ms, "p99": ms, "mean": ms, "n": count}}`` (the stats JSON's ``stage_ms``)."""
        out: dict[str, dict[str, float]] = {}
        for stage, samples in self._samples.items():
            if not samples:
                continue
            a = np.fromiter(samples, dtype=np.float64)
            out[stage] = {
                "p50": round(float(np.percentile(a, 50)), 3),
                "p99": round(float(np.percentile(a, 99)), 3),
                "mean": round(float(a.mean()), 3),
                "n": int(a.size),
            }
        return out


@contextmanager
def timed(stage_ms: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the block, in ms, to ``stage_ms[stage]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        stage_ms[stage] = stage_ms.get(stage, 0.0) + (time.perf_counter() - t0) * 1000.0

"""Temporal smoothing of landmarks: a One Euro filter that removes jitter without lagging fast motion.

The filter (Casiez et al., CHI 2012) is a first-order low-pass whose cutoff rises with speed: still
faces get a low cutoff (no jitter), moving faces a high one (no lag). Two choices make it work on a
whole face mesh:

- positions are measured in face units (the inter-ocular distance), so one setting fits a close-up and
  a wide shot;
- the speed that drives the cutoff is at least the face's, shared by all 468 points, so the mesh moves
  as one body instead of points lagging by different amounts (which would distort the face shape); a
  point moving faster than the face (lips, eyelids) uses its own speed so speech and blinks keep up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroConfig:
    min_cutoff_hz: float = 0.6
    """Cutoff when the face is still; lower removes more jitter."""
    beta: float = 6.0
    """How fast the cutoff rises with speed (face units per second); higher lags less on motion."""
    d_cutoff_hz: float = 4.0
    """Cutoff of the speed estimate itself."""


def _alpha(cutoff_hz: float, dt_s: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


class LandmarkSmoother:
    """One Euro filter over an (N, D) landmark array, with a speed shared by the whole face."""

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        self._x = self._dx = self._t = None

    def __call__(self, x: np.ndarray, t_s: float, scale: float) -> np.ndarray:
        """Filter ``x`` observed at time ``t_s``; ``scale`` is the face size in the same units as ``x``."""
        x = x.astype(np.float64)
        if self._x is None or self._t is None or self._dx is None or t_s <= self._t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t_s
            return x.astype(np.float32)
        cfg = self.config
        dt = t_s - self._t
        unit = max(scale, 1e-6)
        dx = (x - self._x) / dt
        a_d = _alpha(cfg.d_cutoff_hz, dt)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        # Speed in face units per second: the face's (mean motion of all points, so the mesh moves as one),
        # or a point's own when it moves faster (a mouth opening while the head is still).
        face_speed = float(np.linalg.norm(self._dx[:, :2].mean(axis=0))) / unit
        point_speed = np.linalg.norm(self._dx[:, :2], axis=1) / unit
        cutoff = cfg.min_cutoff_hz + cfg.beta * np.maximum(face_speed, point_speed)
        tau = 1.0 / (2.0 * np.pi * cutoff)
        a = (1.0 / (1.0 + tau / dt))[:, None]
        self._x = a * x + (1.0 - a) * self._x
        self._t = t_s
        return self._x.astype(np.float32)

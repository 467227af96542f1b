"""Where the picture has moved since its shot began, on a coarse grid of regions (issue 24's moving watermark).

Why: a mark that is static in frame coordinates is re-coded by the encoder in every P-frame wherever the picture
moves (its motion compensation moves the picture's blocks, and with them the mark they carry, to the wrong place).
A mark drawn at the picture's own displacement is carried along by motion compensation instead. This measures
that displacement cheaply: the frame's grey, at half height (360 rows at 720p), cut into ``rows x cols`` regions;
each region's shift against the previous frame by phase correlation; the shifts summed. Phase correlation follows
a region's dominant motion (its strongest peak) and its sub-pixel estimate is biased towards whole pixels (a
uniform 0.75 px pan reads as 0.46-0.75 px per region). Refining it by least squares of the brightness (exact to
~0.02 px on a uniform pan) made s18 dearer (CRF 18: +16% against +10%): where a region holds two motions, the
least-squares shift is their average, which follows neither; working at full resolution did not help (+11%).

- A region whose correlation is weak (flat, or its content changed) takes the median shift of the reliable ones;
  when fewer than a quarter are reliable the shot has changed (a cut, a flash) and the displacement starts again
  from zero — nothing of the previous shot is left for the encoder to carry, so the restart costs nothing.
- A region moving more than ``MAX_STEP_PX`` a frame faster or slower than the median is not followed either.
- The regions may drift apart (parallax: s18's bokeh moves right while the person moves left), which stretches a
  mark drawn on them; a reader then loses the mark. Each region's displacement is kept within ``max_spread_px`` of
  the median's, and pulled towards it by ``relax`` per frame: motion beyond that is not followed.
- Displacements are kept small in floating point by taking whole ``period_px`` off them (the mark's layout is
  periodic with that period, so this changes nothing drawn).

One tracker per stream: ``update`` must see the frames in order. Not thread-safe (one stage calls it).
"""

from __future__ import annotations

import cv2
import numpy as np

WORK_ROWS = 360
MIN_RESPONSE = 0.2
"""Phase correlation's peak share below which a region's shift is not trusted (0.05-0.15 on unrelated content)."""
CUT_SHARE = 0.25
MAX_STEP_PX = 4.0
"""A region moving more than this (px a frame) away from the median is not followed (short_hamilton's passer-by at
~40 px a frame: followed within the spread, its frames 50-58 were read in 1 of 9 after H.264 at 2.5 Mbit/s; not
followed, in 8 of 9, the clip 86.7% -> 98.3% of frames; s18 and roop_target unchanged)."""


class PictureMotion:
    """The displacement (pixels, x then y) of each region of the picture since its shot began."""

    def __init__(
        self, rows: int = 3, cols: int = 4, max_spread_px: float = 8.0, relax: float = 0.05, period_px: float = 0.0
    ) -> None:
        if rows < 1 or cols < 1:
            raise ValueError(f"motion grid must have at least one region, got {rows}x{cols}")
        self.rows, self.cols = rows, cols
        self.max_spread_px, self.relax, self.period_px = max_spread_px, relax, period_px
        self.displacement = np.zeros((rows, cols, 2), np.float32)
        """Per region, how far (px) the picture there has moved since its shot began."""
        self.cuts = 0
        """Shot changes seen (the displacement restarted)."""
        self._prev: np.ndarray | None = None
        self._window: np.ndarray | None = None
        self._size: tuple[int, int] | None = None

    def reset(self) -> None:
        self.displacement[:] = 0.0
        self._prev = None

    def update(self, image: np.ndarray) -> np.ndarray:
        """Take the next frame (BGR or grey uint8); returns the displacement grid (rows x cols x 2, px)."""
        h, w = image.shape[:2]
        if self._size != (w, h):  # a new stream size: start again
            self._size = (w, h)
            self.reset()
            self._window = None
        scale = max(1.0, h / WORK_ROWS)
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        small = cv2.resize(grey, (round(w / scale), round(h / scale)), interpolation=cv2.INTER_AREA).astype(np.float32)
        rh, rw = small.shape[0] // self.rows, small.shape[1] // self.cols
        if self._window is None:
            self._window = cv2.createHanningWindow((rw, rh), cv2.CV_32F)
        prev, self._prev = self._prev, small
        if prev is None:
            return self.displacement
        shifts = np.zeros((self.rows, self.cols, 2), np.float32)
        reliable = np.zeros((self.rows, self.cols), bool)
        for j in range(self.rows):
            for i in range(self.cols):
                ys, xs = slice(j * rh, (j + 1) * rh), slice(i * rw, (i + 1) * rw)
                (dx, dy), response = cv2.phaseCorrelate(prev[ys, xs], small[ys, xs], self._window)
                if response >= MIN_RESPONSE and abs(dx) < rw / 4 and abs(dy) < rh / 4:
                    shifts[j, i] = (dx * scale, dy * scale)
                    reliable[j, i] = True
        if reliable.mean() < CUT_SHARE:
            self.cuts += 1
            self.displacement[:] = 0.0
            return self.displacement
        median = np.median(shifts[reliable], axis=0)
        # a region moving far faster than the rest (a passer-by) is not followed: its content is new each frame, so
        # the encoder codes it anew anyway, and a mark stretched that much is hard to read
        reliable &= np.abs(shifts - median).max(axis=2) <= MAX_STEP_PX
        shifts[~reliable] = median
        moved = self.displacement + shifts
        centre = np.median(moved.reshape(-1, 2), axis=0)
        moved -= self.relax * (moved - centre)
        moved = centre + np.clip(moved - centre, -self.max_spread_px, self.max_spread_px)
        if self.period_px > 0:
            moved -= np.floor(centre / self.period_px) * self.period_px
        self.displacement = moved.astype(np.float32)
        return self.displacement

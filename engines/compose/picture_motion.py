"""Where the picture has moved since its shot began, on a coarse grid of regions (issue 24's moving watermark).

Why: a mark that is static in frame coordinates is re-coded by the encoder in every P-frame wherever the picture
moves (its motion compensation moves the picture's blocks, and with them the mark they carry, to the wrong place).
A mark drawn at the picture's own displacement is carried along by motion compensation instead. This measures
that displacement cheaply: the frame's grey, at a quarter of its height (``WORK_ROWS``: 180 rows at 720p), cut into
``rows x cols`` regions; each region's shift against a key frame by phase correlation. Phase correlation follows a
region's dominant motion (its strongest peak) and its sub-pixel estimate is biased towards whole pixels; measured
frame to frame and summed, that bias adds up (a uniform 0.75 px pan read 2.6 px short after 24 frames at half
height, 5.1 px short at a quarter), so each region is measured against the key frame instead, whose error does not
add up (0.8 px short at a quarter), and the key is renewed only when the picture has moved far from it
(``RENEW_SHARE`` of a region) or a quarter of its regions no longer match it. A quarter of the height costs a
quarter of the half height's phase correlations (~4 -> ~1.3 ms of CPU a 720p frame). Refining the shifts by least
squares of the brightness (exact to ~0.02 px on a uniform pan) made s18 dearer (CRF 18: +16% against +10%): where a
region holds two motions, the least-squares shift is their average, which follows neither.

- A region whose correlation is weak (flat, or its content changed) takes the median step of the reliable ones;
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

WORK_ROWS = 180
MIN_RESPONSE = 0.2
"""Phase correlation's peak share below which a region's shift is not trusted (0.05-0.15 on unrelated content)."""
CUT_SHARE = 0.25
KEEP_SHARE = 0.75
"""The key frame is renewed when fewer of its regions than this still match the frame."""
RENEW_SHARE = 0.125
"""The key frame is renewed when a region has moved this share of its size from it (10 of 80 px at 180 rows: phase
correlation is trusted up to a quarter)."""
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
        self.keys = 0
        """Key frames taken (the first of a shot included)."""
        self._key: np.ndarray | None = None
        self._from_key = np.zeros((rows, cols, 2), np.float32)
        """Per region, where the picture is now relative to the key frame (px of the frame; measured, or the median
        step's sum where it was not)."""
        self.face_share: float | None = None
        """The faces' share of their mask a mark kept weaker on faces drew in the stream's last frame (the watermark's
        ``_face_share``, kept here as the stream's state beside its motion; None before the first)."""
        self.face_share_held = 0
        """Frames since that share last changed."""
        self._window: np.ndarray | None = None
        self._size: tuple[int, int] | None = None

    def reset(self) -> None:
        self.displacement[:] = 0.0
        self._key = None

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
        if self._key is None:
            self._renew(small)
            return self.displacement
        measured = np.zeros((self.rows, self.cols, 2), np.float32)
        reliable = np.zeros((self.rows, self.cols), bool)
        for j in range(self.rows):
            for i in range(self.cols):
                ys, xs = slice(j * rh, (j + 1) * rh), slice(i * rw, (i + 1) * rw)
                (dx, dy), response = cv2.phaseCorrelate(self._key[ys, xs], small[ys, xs], self._window)
                if response >= MIN_RESPONSE and abs(dx) < rw / 4 and abs(dy) < rh / 4:
                    measured[j, i] = (dx * scale, dy * scale)
                    reliable[j, i] = True
        if reliable.mean() < CUT_SHARE:
            self.cuts += 1
            self.displacement[:] = 0.0
            self._renew(small)
            return self.displacement
        shifts = measured - self._from_key  # this frame's step per region
        median = np.median(shifts[reliable], axis=0)
        # a region moving far faster than the rest (a passer-by) is not followed: its content is new each frame, so
        # the encoder codes it anew anyway, and a mark stretched that much is hard to read
        reliable &= np.abs(shifts - median).max(axis=2) <= MAX_STEP_PX
        shifts[~reliable] = median
        self._from_key += shifts
        moved = self.displacement + shifts
        centre = np.median(moved.reshape(-1, 2), axis=0)
        moved -= self.relax * (moved - centre)
        moved = centre + np.clip(moved - centre, -self.max_spread_px, self.max_spread_px)
        if self.period_px > 0:
            moved -= np.floor(centre / self.period_px) * self.period_px
        self.displacement = moved.astype(np.float32)
        far = (np.abs(self._from_key) > RENEW_SHARE * scale * np.array([rw, rh], np.float32)).any()
        if far or reliable.mean() < KEEP_SHARE:
            self._renew(small)
        return self.displacement

    def _renew(self, small: np.ndarray) -> None:
        """This frame becomes the key frame the next ones are measured against."""
        self._key = small
        self._from_key[:] = 0.0
        self.keys += 1

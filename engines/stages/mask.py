"""The mask stage: where the new face goes, and where the actor's skin is (timed as part of ``blend``)."""

from __future__ import annotations

from collections.abc import Set

import cv2
import numpy as np

from engines.compose.blend import BlendConfig, cut_openings, face_alpha_small, skin_mask
from engines.compose.occlusion import OcclusionMasks
from engines.face.glasses import GlassesFinder
from engines.resample import shrink
from engines.stages.base import FaceContext
from engines.swap.learned import LearnedConfig

BLEND = "blend"
"""The ``stage_ms`` key the mask's time is reported under: it is the first half of the blend (the stats have
always named it so)."""


def widen_openings(keep: np.ndarray, learned: LearnedConfig, pixel_px: float) -> np.ndarray:
    """``keep`` (window-size, 1 outside the kept eyes and mouth, 0 in them, as ``cut_openings`` leaves a mask
    of ones) with each opening grown by ``learned.opening_grow_px`` model pixels and its edge blurred over about
    ``learned.opening_feather_px`` of them, for a learned model's face whose pixel is ``pixel_px`` window pixels.

    A model draws no edge finer than its pixel: a 64 px DFM's eyes and lips are dark blurs a few of its pixels
    around where they are, and a hole cut to the actor's eye opening alone left that blur around the actor's eye
    as a dark ring. Grown and blurred, not cut with a wider ramp: the cut's ramp stops at the mesh triangles
    around each opening (so a turned head's far eye leaves the nose alone), which a wider ramp reaches as a
    blocky edge; a blur of the cut hole keeps its extent and stays smooth."""
    grow_px = learned.opening_grow_px * pixel_px
    sigma = learned.opening_feather_px * pixel_px / 2.5  # a Gaussian edge's 10-90% rise is 2.56 sigma
    hole = (1.0 - keep).astype(np.float32)
    rows, cols = np.nonzero(hole > 0.0)
    if pixel_px <= 0.0 or len(rows) == 0 or (grow_px < 0.5 and sigma < 0.3):
        return keep
    reach = int(np.ceil(grow_px + 3.0 * sigma)) + 1
    h, w = keep.shape
    y0, y1 = max(rows.min() - reach, 0), min(rows.max() + reach + 1, h)
    x0, x1 = max(cols.min() - reach, 0), min(cols.max() + reach + 1, w)
    part: np.ndarray = hole[y0:y1, x0:x1]
    radius = int(round(grow_px))
    if radius > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        part = cv2.dilate(part, kernel)
    if sigma >= 0.3:
        part = cv2.GaussianBlur(part, (0, 0), sigma)
    out = keep.astype(np.float32)  # a copy
    out[y0:y1, x0:x1] = 1.0 - np.maximum(part, hole[y0:y1, x0:x1])
    return out


class MaskStage:
    """The outline's ramp from the geometry raster, the kept eyes and mouth cut in at full size, a learned model's
    own mask, and occlusion (``engines.compose``); and the actor's skin and picture at geometry resolution, where
    the relight measures the light and the blend the colour (fewer pixels, same means).

    The actor's glasses (``glasses``: found on every face it masks, ``engines.face.glasses``) are where the blend
    lays the actor's own pixels back over a swapped face with ``keep_glasses`` (``FaceContext.glasses``).

    Its per-face state is the occlusion's (the person segmented around each face, every few frames) and the
    glasses' running average."""

    name = "mask"

    def __init__(
        self,
        config: BlendConfig,
        occlusion: OcclusionMasks | None,
        glasses: GlassesFinder | None = None,
        fused: bool = False,
    ) -> None:
        self.config = config
        self.occlusion = occlusion
        self.glasses = glasses
        self.fused = fused
        """The kept openings' ramps cut in compiled passes (``cut_openings(fused=True)``: the same numbers)."""

    def run(self, face: FaceContext) -> None:
        geometry, actor = face.geometry, face.actor
        assert geometry is not None and actor is not None  # the swap drew the geometry
        with face.frame.timed(BLEND):
            settings = face.frame.settings
            keep_eyes = settings.keep_eyes or not face.swapping
            keep_mouth = settings.keep_mouth or not face.swapping
            # The outline's ramp from the geometry raster (also where skin is measured), then the kept
            # openings cut into the pasted alpha at full size.
            # At the window's size, or at the work size (``SwapConfig.bounded``: scaled up inside the paste).
            alpha_small = face_alpha_small(geometry, self.config, face.seen, self.fused)
            alpha = geometry.to_mask(alpha_small)
            alpha = alpha.copy() if alpha is alpha_small else alpha
            swapped, learned = face.swapped, face.learned.config if face.learned is not None else None
            if swapped is not None and learned is not None and learned.opening_grow_px + learned.opening_feather_px > 0:
                keep = np.ones(alpha.shape, np.float32)  # the openings widened by the model's blur
                cut_openings(keep, geometry, keep_eyes, keep_mouth, self.config, self.fused)
                pixel_px = swapped.pixel_px * alpha.shape[1] / geometry.window.width  # in the alpha's pixels
                alpha *= widen_openings(keep, learned, pixel_px)
            else:
                cut_openings(alpha, geometry, keep_eyes, keep_mouth, self.config, self.fused)
            if face.swapped is not None:  # where the model's crop and its own masks say its face is
                alpha = alpha * geometry.to_mask(face.swapped.mask)
            if self.glasses is not None:
                found = self.glasses.update(face.frame.image, face.face.id, face.face.landmarks)
                face.frame.glasses[face.face.id] = found.present
                if settings.keep_glasses and face.swapping:
                    face.glasses = found.keep(face.frame.image, geometry.window, self.glasses.config)
            if self.occlusion is not None:
                face.visible = self.occlusion.visibility(
                    face.frame.image, face.face.id, face.face.box, geometry.window, (alpha.shape[1], alpha.shape[0])
                )
                alpha *= face.visible
            face.alpha = alpha
            # Statistics (light, colour) are measured at geometry resolution: fewer pixels, same means.
            hs, ws = geometry.small_size
            face.actor_small = shrink(actor, (ws, hs))
            face.skin_small = skin_mask(geometry, alpha_small)

    def forget(self, active: Set[int]) -> None:
        """The glasses of faces no longer tracked; the person masks are shared with the relight and forgotten by
        the processor."""
        if self.glasses is not None:
            self.glasses.forget(active)

"""The mask stage: where the new face goes, and where the actor's skin is (timed as part of ``blend``)."""

from __future__ import annotations

from collections.abc import Set

from engines.compose.blend import BlendConfig, cut_openings, face_alpha_small, skin_mask
from engines.compose.occlusion import OcclusionMasks
from engines.resample import shrink
from engines.stages.base import FaceContext

BLEND = "blend"
"""The ``stage_ms`` key the mask's time is reported under: it is the first half of the blend (the stats have
always named it so)."""


class MaskStage:
    """The outline's ramp from the geometry raster, the kept eyes and mouth cut in at full size, a learned model's
    own mask, and occlusion (``engines.compose``); and the actor's skin and picture at geometry resolution, where
    the relight measures the light and the blend the colour (fewer pixels, same means).

    Its per-face state is the occlusion's (the person segmented around each face, every few frames)."""

    name = "mask"

    def __init__(self, config: BlendConfig, occlusion: OcclusionMasks | None) -> None:
        self.config = config
        self.occlusion = occlusion

    def run(self, face: FaceContext) -> None:
        geometry, actor = face.geometry, face.actor
        assert geometry is not None and actor is not None  # the swap drew the geometry
        with face.frame.timed(BLEND):
            settings = face.frame.settings
            keep_eyes = settings.keep_eyes or not face.swapping
            keep_mouth = settings.keep_mouth or not face.swapping
            # The outline's ramp from the geometry raster (also where skin is measured), then the kept
            # openings cut into the pasted alpha at full size.
            alpha_small = face_alpha_small(geometry, self.config, face.seen)
            alpha = geometry.to_window(alpha_small)
            alpha = alpha.copy() if alpha is alpha_small else alpha
            cut_openings(alpha, geometry, keep_eyes, keep_mouth, self.config)
            if face.swapped is not None:  # where the model's crop and its own masks say its face is
                alpha = alpha * geometry.to_window(face.swapped.mask)
            if self.occlusion is not None:
                face.visible = self.occlusion.visibility(face.frame.image, face.face.id, face.face.box, geometry.window)
                alpha *= face.visible
            face.alpha = alpha
            # Statistics (light, colour) are measured at geometry resolution: fewer pixels, same means.
            hs, ws = geometry.small_size
            face.actor_small = shrink(actor, (ws, hs))
            face.skin_small = skin_mask(geometry, alpha_small)

    def forget(self, active: Set[int]) -> None:
        """Nothing of its own: the person masks are shared with the relight and forgotten by the processor."""

"""The relight stage: the face under the target light, the light measured on the actor (``engines.light``)."""

from __future__ import annotations

import math
from collections.abc import Set

import numpy as np

from engines.compose.blend import ColourGains
from engines.compose.occlusion import PersonMasks
from engines.light.person import PersonLightConfig, neck_from_landmarks, relight_person
from engines.light.relight import FaceRelighter
from engines.stages.base import FaceContext
from engines.stages.ops import FaceOps, NumpyOps, Pixels
from engines.swap.mesh import FaceGeometry
from engines.swap.raster import Window


class RelightStage:
    """Relights each face that is relit (``FaceContext.relight``): the identity's albedo, a learned model's face or
    the actor's own face, from the light measured on the actor to the target light.

    The light is measured on the geometry-resolution copy of the actor's window and smoothed per face
    (``FaceRelighter``: the one implementation of the measure and the target; ``relight_face`` takes the coarse
    normal grid as it is — the shading is smooth — and works per pixel only on colour). The colour match's gains
    (kept by the blend, ``gains``) are folded into the target light, so a relit face needs no colour pass of its
    own. A chosen target light relights the whole person around the face too (``engines.light.person``, with the
    person segmentation), the actor's own face with it.

    The pixel work runs on ``ops`` (``engines.stages.ops``: numpy, or the torch twins on a device); the light is
    measured on the host in numpy (a few thousand samples at geometry resolution) and the person's relight has no
    torch twin yet: on a torch backend its region of the frame is downloaded, relit and uploaded again.

    Its per-face state is the light on each face (``relighter``)."""

    name = "relight"

    def __init__(
        self,
        relighter: FaceRelighter,
        gains: ColourGains,
        person_masks: PersonMasks | None,
        person_light: PersonLightConfig | None,
        ops: FaceOps | None = None,
    ) -> None:
        self.ops = ops if ops is not None else NumpyOps()
        self.relighter = relighter
        self.gains = gains
        """The blend's colour gains per face (read here, kept there)."""
        self.person_masks = person_masks
        self.person_light = person_light

    def run(self, face: FaceContext) -> None:
        if not face.relight:
            return
        geometry, actor = face.geometry, face.actor
        assert geometry is not None and actor is not None and face.actor_small is not None  # swap and mask ran
        settings = face.frame.settings
        # A chosen target light relights the whole person around the face (the actor's own face with it).
        person = self.person_masks is not None and self.person_light is not None
        person = person and settings.relight_target.mode != "match"
        with face.frame.timed(self.name):
            if face.identity is not None:
                held = self.gains.current(face.face.id)
                face.gains_in_light = held if held is not None else np.ones(3)
            light = self._measure(face, geometry)
            if light is None:  # no light measurable on this face yet: it is pasted unrelit
                face.gains_in_light = None
                return
            if not (person and face.actor_only):  # else the person's relight draws this face
                lit = actor if face.swapped is None else face.swapped.image  # a model's face: relit like the actor's
                target = light[1]
                if face.gains_in_light is not None:  # the colour match, folded into the light (RGB columns)
                    target = target * np.asarray(face.gains_in_light)[::-1][None, :]
                covered = geometry.labels() >= 0
                if face.albedo_lookup is not None:  # the albedo looked up as it is relit (numpy's compiled path)
                    assert isinstance(self.ops, NumpyOps)
                    cfg = self.relighter.config
                    normals = geometry.normals_small
                    face.face_bgr = self.ops.relight(
                        lit, normals, covered, light[0], target, None, cfg.max_gain, cfg.shading_grid_px,
                        albedo_lookup=face.albedo_lookup,
                    )  # fmt: skip
                else:
                    face.face_bgr = self._relit(lit, geometry, covered, light[0], target, face.rendered)
            if face.swapping and settings.relight_target.mode != "match":
                # A target light acts on a swapped face exactly as on the actor's own: the colour match compares
                # the face with the actor's face under that light (against the actor as the camera saw it, the
                # gains would undo the light's colour and intensity), and the actor's relit face lies under the
                # swap wherever the swap does not cover it all (its feathered edge, what the photos did not see,
                # the kept eyes and mouth, a strength under 1).
                assert face.skin_small is not None
                face.reference = self._relit(face.actor_small, geometry, face.skin_small, *light)
                if not person:  # the person's relight lays the actor's relit face under the swap instead
                    face.own = self._relit(actor, geometry, geometry.labels() >= 0, *light)
            if person:
                if self._relight_person(face, geometry, *light):
                    face.done = face.actor_only  # the actor's face was relit with the rest of the person
                else:  # no room for the person's square in the frame: the face alone
                    covered = geometry.labels() >= 0
                    if face.actor_only:
                        face.face_bgr = self._relit(actor, geometry, covered, *light)
                    elif face.swapping:
                        face.own = self._relit(actor, geometry, covered, *light)

    def forget(self, active: Set[int]) -> None:
        self.relighter.forget(active)

    def _measure(self, face: FaceContext, geometry: FaceGeometry) -> tuple[np.ndarray, np.ndarray] | None:
        """(measured on the actor, target) as (9, 3) RGB SH, the colour match's gains left out of the target;
        None while no light could be measured on this face yet."""
        assert face.actor_small is not None and face.skin_small is not None
        source = self.relighter.measure_skin(
            face.face.id, face.frame.t, face.actor_small, geometry.normals_small, face.skin_small
        )
        if source is None:
            return None
        return source, self.relighter.target(face.frame.settings.relight_target, source)

    def _relit(
        self,
        image: Pixels,
        geometry: FaceGeometry,
        covered: np.ndarray,
        source: np.ndarray,
        target: np.ndarray,
        albedo: np.ndarray | None = None,
    ) -> Pixels:
        """``relight_face`` (or its torch twin) on the face's coarse normal grid, with the relighter's settings."""
        cfg = self.relighter.config
        return self.ops.relight(
            image, geometry.normals_small, covered, source, target, albedo, cfg.max_gain, cfg.shading_grid_px
        )

    def _relight_person(
        self, face: FaceContext, geometry: FaceGeometry, source: np.ndarray, target: np.ndarray
    ) -> bool:
        """Relight the person around the face in the frame (``engines.light.person``); False when the person's
        square has no room in the frame."""
        masks, cfg, out = self.person_masks, self.person_light, face.out
        assert masks is not None and cfg is not None  # run checked
        region = masks.around(face.frame.image, face.face.id, face.face.box)
        x0, y0, x1, y1 = region.bounds()
        h, w = out.shape[:2]
        wx0, wy0 = max(0, math.floor(x0)), max(0, math.floor(y0))
        wx1, wy1 = min(w, math.ceil(x1)), min(h, math.ceil(y1))
        if wx1 - wx0 < 8 or wy1 - wy0 < 8:
            return False
        window = Window(wx0, wy0, wx1 - wx0, wy1 - wy0)
        open_sides = (x0 >= 0, y0 >= 0, x1 <= w, y1 <= h)
        cover = (geometry.labels_small >= 0).astype(np.float32)
        # No torch twin of the person's relight yet (its grid, fade and detail layer are numpy/cv2): on a torch
        # backend the region is downloaded here and uploaded again below; on numpy ``host`` is the frame itself.
        host = self.ops.window_on_host(out, window)
        relight_person(
            host,
            window,
            lambda size: region.sample(window, size, outside=0.0),
            open_sides,
            geometry.window,
            geometry.normals_small,
            cover,
            geometry.face_scale_px,
            source,
            target,
            cfg,
            neck_from_landmarks(face.face.landmarks, geometry.face_scale_px, cfg),
        )
        self.ops.window_from_host(out, window, host)
        return True

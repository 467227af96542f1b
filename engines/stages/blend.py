"""The blend stage: the face's colour matched to the actor's skin and the face pasted back (``engines.compose``)."""

from __future__ import annotations

from collections.abc import Callable, Set

import numpy as np

from engines.compose.blend import BlendConfig, ColourGains, cut_openings, face_alpha_small, outline_feather
from engines.compose.chroma import chroma_field
from engines.compose.iris import IrisColour, IrisConfig, identity_iris, tint_irises
from engines.compose.relief import combine, relief_field
from engines.compose.seam import seam_field
from engines.identity.store import Identity
from engines.stages.base import FaceContext
from engines.stages.ops import FaceOps, NumpyOps, Pixels


class BlendStage:
    """Pastes each face back: the relit face, else the identity's texture (``texture``: the swap draws it) or the
    model's face as drawn; the actor's own relit face under a swap first, where there is one; the colour matched
    to the actor's skin (a pass of its own unless the relight folded the gains into the light); a black-and-white
    identity takes the actor's colour.

    The pixel work runs on ``ops`` (``engines.stages.ops``: numpy, or the torch twins on a device, pasting into the
    frame on that device); the own face's alpha is the mask stage's numpy work (cv2), uploaded by the ops, and the
    seam's field is measured on the host (no torch twin yet: the face downloaded, the field uploaded).

    Its per-face state is each face's colour-match gains, smoothed like its light (``gains``)."""

    name = "blend"

    def __init__(
        self,
        config: BlendConfig,
        gains: ColourGains,
        texture: Callable[[FaceContext], Pixels],
        match_learned: bool,
        ops: FaceOps | None = None,
    ) -> None:
        self.ops = ops if ops is not None else NumpyOps()
        self.config = config
        self.gains = gains
        self.texture = texture
        """The identity's texture on a face the relight did not relight (the swap stage draws it)."""
        self.match_learned = match_learned
        """Whether a learned model's face is colour matched too (``LearnedConfig.colour_match``)."""
        self.fused_host = isinstance(self.ops, NumpyOps) and self.ops.fused
        """The seam's and the relief's fields measured on the host in compiled loops (numpy's backend's choice)."""
        self._irises: dict[int, tuple[Identity, IrisColour | None]] = {}
        """Each identity's iris colour, read from its texture once (by object: an identity re-enrolled is a new
        object)."""

    def run(self, face: FaceContext) -> None:
        geometry, alpha, actor = face.geometry, face.alpha, face.actor
        assert geometry is not None and alpha is not None and actor is not None  # swap and mask ran
        ops = self.ops
        face_bgr = face.face_bgr
        if face_bgr is None and face.identity is not None:  # no relight, or no light measurable yet
            face_bgr = self.texture(face)
        if face_bgr is None and face.swapped is not None:
            face_bgr = face.swapped.image
        with face.frame.timed(self.name):
            if face_bgr is None:
                return
            settings, out = face.frame.settings, face.out
            if face.own is not None:  # as the relight alone pastes it: the eyes and mouth kept, no photo coverage
                own_alpha = geometry.to_mask(face_alpha_small(geometry, self.config, fused=self.fused_host))
                cut_openings(own_alpha, geometry, True, True, self.config, self.fused_host)
                if face.visible is not None:
                    own_alpha *= face.visible
                ops.paste_face(out, geometry, face.own, None, _weaker(own_alpha, settings.strength))
            face_small = None  # the face at geometry resolution, as the colour match measured it
            if face.identity is not None or (face.swapped is not None and self.match_learned):
                face_bgr, face_small = self._match_colour(face, face_bgr)
            relief = self._relief_field(face, face_bgr, face_small) if face.identity is not None else None
            if face.identity is not None and face.identity.monochrome:  # black-and-white photos: the actor's colour
                if relief is not None:  # on the lightness, before the colour: a gain would scale the colour taken
                    face_bgr, relief = ops.apply_field(face_bgr, relief), None
                colour = self._chroma_field(face, face_bgr, face_small)
                face_bgr, face_small = ops.transfer_chroma(face_bgr, colour), None
            # The seam's and the relief's gains are applied as the face is pasted (one pass on numpy:
            # ``FaceOps.paste_face``).
            field = combine(self._seam_field(face, face_bgr, face_small), relief) if face.identity is not None else None
            ops.paste_face(out, geometry, face_bgr, field, _weaker(alpha, settings.strength))
            if face.identity is not None and settings.keep_eyes and self.config.iris * settings.strength > 0:
                self._tint_irises(face, face.identity, self.config.iris * settings.strength)
            if face.glasses is not None:
                self._keep_glasses(face)

    def forget(self, active: Set[int]) -> None:
        self.gains.forget(set(active))

    def _keep_glasses(self, face: FaceContext) -> None:
        """The actor's glasses over everything drawn: the frame as it came in, where the mask stage said their frame
        is (``FaceContext.glasses``). The frame as it came in, not the morph's warped actor: glasses are a rigid
        thing in front of the face, and stay exactly where the camera saw them. Only their box goes through the
        host (nothing does on numpy)."""
        keep = face.glasses
        assert keep is not None
        host = self.ops.window_on_host(face.out, keep.box)
        keep.lay(host, face.frame.image)
        self.ops.window_from_host(face.out, keep.box, host)

    def _tint_irises(self, face: FaceContext, identity: Identity, strength: float) -> None:
        """The actor's kept irises in the identity's colour (``engines.compose.iris``), after the face is pasted and
        before the glasses are laid over it; only the face's window goes through the host."""
        known = self._irises.get(id(identity))
        if known is None or known[0] is not identity:
            if len(self._irises) > 16:
                self._irises.clear()
            known = (identity, identity_iris(identity.texture, identity.coverage, identity.monochrome))
            self._irises[id(identity)] = known
        iris, geometry = known[1], face.geometry
        if iris is None or geometry is None:
            return
        host = self.ops.window_on_host(face.out, geometry.window)
        config = IrisConfig(strength=strength)
        tint_irises(host, geometry.landmarks, geometry.face_scale_px, iris, config, self.fused_host)
        self.ops.window_from_host(face.out, geometry.window, host)

    def _chroma_field(self, face: FaceContext, face_bgr: Pixels, face_small: Pixels | None) -> np.ndarray:
        """The colour and skin level a monochrome identity takes (``engines.compose.chroma``): the actor's skin's,
        filled over the face, measured on the host at geometry resolution on what the colour match compares with
        (the actor, relit when a target light is set), against the face's own level in ``face_small`` (the face
        at geometry resolution as the colour match left it; None: shrunk here)."""
        geometry = face.geometry
        assert geometry is not None and face.actor_small is not None and face.skin_small is not None
        reference = face.reference if face.reference is not None else face.actor_small
        if face_small is None:
            hs, ws = geometry.small_size
            face_small = self.ops.shrink(face_bgr, (ws, hs))
        return chroma_field(
            self.ops.to_host(reference), self.ops.to_host(face_small), geometry, face.skin_small, self.config.chroma
        )

    def _seam_field(self, face: FaceContext, face_bgr: Pixels, face_small: Pixels | None) -> np.ndarray | None:
        """The gains that give the mesh swap's face the actor's local tone near the outline (``engines.compose.seam``;
        None: nothing to change; applied as the face is pasted): the identity's photo is not one colour, and where
        its forehead is darker or warmer than the actor's, the outline's ramp showed a band of another tone.
        Against the same reference as the colour match.

        The field is measured on ``face_small``, the face at geometry resolution the colour match shrank already
        (None: shrunk here): an area resize of the working-size face to half the geometry resolution cost a
        millisecond at a close-up's fractional ratio, the same low frequencies from the small face a tenth of it."""
        geometry = face.geometry
        assert geometry is not None and face.actor_small is not None
        reference = face.reference if face.reference is not None else face.actor_small
        if face_small is None:
            hs, ws = geometry.small_size
            face_small = self.ops.shrink(face_bgr, (ws, hs))
        # No torch twin of the field yet (cv2's area resize, blurs and a distance transform): measured on the host
        # — on a torch backend the small face is downloaded here and only the field (at half the geometry
        # resolution) goes back up to be applied on the device.
        feather = outline_feather(geometry, self.config)
        return seam_field(
            self.ops.to_host(face_small),
            self.ops.to_host(reference),
            geometry,
            feather,
            self.config.seam,
            face.seen,
            self.fused_host,
        )

    def _relief_field(self, face: FaceContext, face_bgr: Pixels, face_small: Pixels | None) -> np.ndarray | None:
        """The gains that give the face the actor's relative brightness under the nose and on it
        (``engines.compose.relief``: the actor's nostrils and nose shadows, not the photo's; None: nothing to
        change), measured at geometry resolution on the host against the colour match's reference (in compiled
        loops on the numpy backend with ``fused``)."""
        geometry = face.geometry
        assert geometry is not None and face.actor_small is not None
        if self.config.relief.strength <= 0.0:
            return None
        reference = face.reference if face.reference is not None else face.actor_small
        if face_small is None:
            hs, ws = geometry.small_size
            face_small = self.ops.shrink(face_bgr, (ws, hs))
        monochrome = face.identity is not None and face.identity.monochrome
        return relief_field(
            self.ops.to_host(face_small),
            self.ops.to_host(reference),
            geometry,
            self.config.relief,
            self.fused_host,
            monochrome,
        )

    def _match_colour(self, face: FaceContext, face_bgr: Pixels) -> tuple[Pixels, Pixels]:
        """After a relight the gains already went into the light (``RelightStage``): the residual measured now
        refines them for the next frame, and no extra pass is needed. Without a relight, or on a face's first
        frame (no gains yet to fold into its light), the colour match is a pass of its own: a face never shows
        unmatched for a frame. Returns the face and the face at geometry resolution (the gains applied to both)."""
        geometry = face.geometry
        assert geometry is not None and face.actor_small is not None and face.skin_small is not None
        first_colour = face.face.id not in self.gains
        hs, ws = geometry.small_size
        face_small = self.ops.shrink(face_bgr, (ws, hs))
        reference = face.reference if face.reference is not None else face.actor_small
        residual = self.ops.colour_gains(face_small, reference, face.skin_small, self.config)
        relit = face.gains_in_light is not None
        previous = face.gains_in_light if face.gains_in_light is not None else np.ones(3)
        gains = self.gains.smooth(face.face.id, face.frame.t, None if residual is None else previous * residual)
        if gains is not None and (not relit or first_colour):
            pass_gains = gains / previous
            return self.ops.apply_gains(face_bgr, pass_gains), self.ops.apply_gains(face_small, pass_gains)
        return face_bgr, face_small


def _weaker(alpha: np.ndarray, strength: float) -> np.ndarray:
    """``alpha`` scaled by the swap's strength; at full strength (the default) ``alpha`` itself, read only by the
    composite (a window-sized multiply by 1.0 less per face)."""
    return alpha if strength == 1.0 else alpha * float(strength)

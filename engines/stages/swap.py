"""The swap stage: what goes onto each face — the enrolled identity's texture rendered onto the actor's mesh
(``engines.swap.mesh``), or a learned model's face (``engines.swap.learned``) — and the face's geometry, which
every later stage works in."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Set

import numpy as np

from engines.errors import InputError
from engines.identity.store import Identity, IdentityStore
from engines.settings import ProcessSettings
from engines.stages.base import FaceContext, FrameContext
from engines.stages.ops import FaceOps, NumpyOps, Pixels
from engines.swap.learned import LearnedConfig, LearnedSwapper, load_swapper
from engines.swap.mesh import MeshSwapper
from engines.swap.user_models import MESH, SWAP_KINDS, UserModelStore

log = logging.getLogger(__name__)


class SwapStage:
    """Owns the mesh swap (each face's morph), the learned model in use (loaded once, reloaded when registered
    again) and the identities' embeddings for inswapper-style models.

    ``faces`` decides, once per frame, what each face gets; ``run`` draws it. With the morph on, the actor's
    window warped toward the identity's shape goes into the frame here (the relight of the person around the
    face works on it)."""

    name = "swap"

    def __init__(
        self,
        swapper: MeshSwapper,
        identities: IdentityStore | None,
        user_models: UserModelStore | None,
        device: str,
        learned: LearnedConfig,
        ops: FaceOps | None = None,
    ) -> None:
        self.ops = ops if ops is not None else NumpyOps()
        """Where the identity's texture is looked up (numpy, or ``sample_bilinear`` on a device); the geometry,
        the mesh raster and the morph's warp stay numpy (no torch stage for them yet)."""
        self.swapper = swapper
        self.identities = identities
        self.user_models = user_models
        """Registered models (``stageswap models add``) that ``settings.swap_model`` can name."""
        self.device = device
        self.learned_config = learned
        self._learned: LearnedSwapper | None = None
        self._embeddings: dict[str, tuple[Identity, tuple[str, ...], np.ndarray]] = {}

    @property
    def model(self) -> LearnedSwapper | None:
        """The learned model loaded now (None: none loaded, the mesh swap)."""
        return self._learned

    def faces(self, frame: FrameContext) -> Iterator[FaceContext]:
        """The faces this frame works on, each with what it gets, in the tracker's order; a face no rule picks,
        or with nothing to do (no identity, no model, no target light), is left as it is. Names and models are
        resolved before the first face (InputError for one that cannot be used: the swap's failure)."""
        settings, targets = frame.settings, frame.targets
        frame.running = self.name
        names = {t.identity for t in targets.values() if t.identity is not None}
        learned = self._learned_swapper(settings) if frame.faces and (names or not settings.targets) else None
        needs_identity = learned is None or learned.needs_identity
        identities = {n: self._identity(n) for n in sorted(names)} if needs_identity else {}
        for face in frame.faces:
            frame.running = self.name
            target = targets.get(face.id)
            if settings.targets and settings.swap and (target is None or target.identity is None):
                continue  # no rule picks this face: left untouched
            name = target.identity if target is not None else None
            identity = identities.get(name) if name is not None else None
            face_learned, embedding = learned, None
            if face_learned is not None and identity is not None:
                embedding = self._identity_embedding(identity)
            if face_learned is not None and face_learned.needs_identity and identity is None:
                face_learned = None  # an inswapper-style model with no identity selected: nothing to swap to
            # A learned model's face is already in the actor's light: only a chosen target light relights it.
            mesh_swap = identity is not None and face_learned is None
            relight = settings.relight and (mesh_swap or settings.relight_target.mode != "match")
            if identity is None and face_learned is None and not relight:
                continue
            frame.canvas()
            # With a learned model the identity only named the embedding: the mesh swap draws nothing.
            drawn = identity if face_learned is None else None
            yield FaceContext(frame, face, drawn, relight, face_learned, embedding)

    def run(self, face: FaceContext) -> None:
        with face.frame.timed(self.name):
            self._draw(face)

    def _draw(self, ctx: FaceContext) -> None:
        frame, face, identity, settings = ctx.frame, ctx.face, ctx.identity, ctx.frame.settings
        # The face moves toward the identity's shape, or a learned model's person's where it has one (a renderer).
        shape = ctx.learned.shape if ctx.learned is not None else None
        morph = settings.morph * settings.strength if identity is not None or shape is not None else 0.0
        geometry = self.swapper.geometry(frame.image, face.landmarks, face.id, frame.t, identity, morph, shape)
        if geometry is None:  # too small or off the frame: nothing drawn
            ctx.done = True
            return
        ctx.geometry = geometry
        into_frame = geometry.morph is not None and isinstance(frame.ops, NumpyOps)
        if into_frame:  # the morph: the actor's window, warped, goes into the frame (on numpy, warped right there)
            ys, xs = geometry.window.slices
            ctx.actor_window = self.swapper.actor_window(frame.image, geometry, out=ctx.out[ys, xs])
        else:
            ctx.actor_window = self.swapper.actor_window(frame.image, geometry)
        # The mesh swap's face in the measured light shows none of the actor at the work size: only measured there.
        measured_only = identity is not None and ctx.learned is None and settings.relight_target.mode == "match"
        ctx.actor = geometry.to_work(ctx.actor_window, measured_only)
        if into_frame and ctx.actor is ctx.actor_window:  # its own pixels, whatever is drawn into the frame later
            ctx.actor = ctx.actor.copy()
        if ctx.learned is not None:
            ctx.swapped = ctx.learned.swap(
                frame.image, face.landmarks, face.points5, geometry, ctx.embedding, settings.morph, ctx.actor_window
            )
        elif identity is not None:
            ctx.rendered_as = "albedo" if ctx.relight else "texture"
            if ctx.relight and isinstance(self.ops, NumpyOps) and self.ops.fused:
                # Looked up by the relight as it relights (one pass, no work-size albedo in between).
                ctx.albedo_lookup = self.swapper.albedo_lookup(geometry, identity)
            else:
                ctx.rendered = self.ops.render(self.swapper, geometry, identity, ctx.rendered_as)
            ctx.seen = self.swapper.coverage_small(geometry, identity)
        if geometry.morph is not None and not into_frame:  # the morph: the actor's window, warped, into the frame
            frame.ops.paste(ctx.out, geometry.window, ctx.actor_window)

    def texture(self, ctx: FaceContext) -> Pixels:
        """The identity's texture on the face, for a face the relight could not relight (no light measured on it
        yet): its rendering if that was the texture, else drawn now."""
        identity, geometry = ctx.identity, ctx.geometry
        assert identity is not None and geometry is not None  # a mesh swap that drew its geometry
        with ctx.frame.timed(self.name):
            if ctx.rendered is None or ctx.rendered_as != "texture":
                ctx.rendered_as = "texture"
                ctx.rendered = self.ops.render(self.swapper, geometry, identity, "texture")
            return ctx.rendered

    def forget(self, active: Set[int]) -> None:
        self.swapper.forget(set(active))

    def _identity(self, name: str) -> Identity:
        if self.identities is None:
            raise InputError(f"identity {name!r} selected but this processor has no identity store")
        return self.identities.load(name)  # cached by the store; reloaded if re-enrolled

    def _learned_swapper(self, settings: ProcessSettings) -> LearnedSwapper | None:
        """The registered model ``settings.swap_model`` names (loaded once, reloaded if re-registered); None for
        the mesh swap. InputError for a name that is not a registered swap model."""
        if not settings.swap or settings.swap_model == MESH:
            return None
        if self.user_models is None:
            raise InputError(f"swap model {settings.swap_model!r} selected but this processor has no model store")
        model = self.user_models.get(settings.swap_model, SWAP_KINDS)
        current = self._learned
        if current is None or current.model != model:
            self._learned = current = None  # release the previous model before loading the next
            current = self._learned = load_swapper(self.user_models, model.name, self.device, self.learned_config)
            log.info("swap model %s (%s, %s) loaded on %s", model.name, model.kind, model.resolution, current.runtime)
        return current

    def _identity_embedding(self, identity: Identity) -> np.ndarray:
        """The identity's ArcFace embedding for inswapper-style models (``engines.identity.recognition``), cached."""
        from engines.identity.recognition import identity_embedding

        store = self.user_models
        assert store is not None and self.identities is not None  # a learned swapper implies both
        recognisers = tuple(m.sha256 for m in store.list() if m.kind == "arcface")
        cached = self._embeddings.get(identity.name)
        if cached is not None and cached[0] is identity and cached[1] == recognisers:
            return cached[2]
        stored = identity_embedding(store, self.identities.root, identity.name, identity.info.photo_sha256)
        self._embeddings[identity.name] = (identity, recognisers, stored.embedding)
        return stored.embedding

"""FaceProcessor: everything done to one frame, in order, with per-stage timings.

The streamer and the batch `process` command call only this. Per frame: track faces (detect, mesh,
smooth), then for every face: draw its mesh (``swap``: the identity's texture rendered onto it), measure
the light on the actor and relight (``relight``: the identity's albedo under the actor's light, or the
actor's own face under a target light), match colour and paste back (``blend``). Stage times are summed
over faces per frame.

Policy is not decided here: the settings come from the stream's plan (``streamer.plan``), where names were
resolved and consent was checked once when they were set; the processor runs what it is given.

A stage that raises never takes the frame down with it: the frame passes through unprocessed, the
failure is counted and logged once per burst, and the next frame starts clean (the tracker is reset only
when tracking itself failed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.colour import transform
from engines.compose.blend import (
    BlendConfig,
    ColourGains,
    apply_gains,
    colour_gains,
    composite,
    cut_openings,
    face_alpha_small,
    skin_mask,
    transfer_chroma,
)
from engines.compose.occlusion import OcclusionConfig, OcclusionMasks, PersonMasks, PersonSegmenter
from engines.compose.watermark import WatermarkConfig, Watermarker, new_watermark_id
from engines.errors import InputError, ModelError, StageswapError
from engines.face.detect import FaceDetector
from engines.face.landmarks import FaceMesh
from engines.face.overlay import draw_faces
from engines.face.stillness import StillFaceHold, StillnessConfig
from engines.face.tracker import FaceTracker, TrackedFace, TrackerConfig
from engines.identity.performers import Performer, PerformerStore
from engines.identity.store import Identity, IdentityStore
from engines.identity.targets import Describe, FaceTarget, ReidConfig, TargetSelector
from engines.light.person import PersonLightConfig, relight_person
from engines.light.relight import FaceRelighter, RelightConfig, relight_face, skin_samples
from engines.resample import shrink
from engines.runtime import load_model, models
from engines.settings import ProcessSettings
from engines.stats import timed
from engines.swap.learned import LearnedConfig, LearnedFace, LearnedSwapper, load_swapper
from engines.swap.mesh import FaceGeometry, MeshSwapper, SwapConfig
from engines.swap.raster import Window
from engines.swap.user_models import MESH, SWAP_KINDS, UserModelStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessorConfig:
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    detect_width: int = 320
    device: str = "cpu"
    swap: SwapConfig = field(default_factory=SwapConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    occlusion: OcclusionConfig | None = None
    """Person segmentation around each face (``engines.compose.occlusion``); None (the default): off."""
    stillness: StillnessConfig | None = field(default_factory=StillnessConfig)
    """A face whose picture has not changed since its geometry was taken keeps it (``engines.face.stillness``):
    repeated frames give repeated output; None: every frame's landmarks are used as they come."""
    light_time_constant_s: float = 0.3
    """Temporal smoothing of the light measured on each face."""
    person_light: PersonLightConfig | None = field(default_factory=PersonLightConfig)
    """Relighting to a chosen target light covers the whole person around each face — hair, ears, neck,
    shoulders — with the person segmentation model (``engines.light.person``); None, or the model missing:
    the face alone."""
    person_every: int = 6
    """Segment each face's person every this many frames (moved with the face between); with occlusion on,
    ``occlusion.every`` (one segmentation serves both)."""
    hdri_dir: Path | None = None
    """Where ``relight_target.hdri`` images are looked up (the data directory's ``hdri/``)."""
    watermark: WatermarkConfig = field(default_factory=WatermarkConfig)
    """The invisible watermark every output frame carries (``engines.compose.watermark``); on by default."""
    learned: LearnedConfig = field(default_factory=LearnedConfig)
    """Learned swap models (``settings.swap_model`` naming a registered model; ``engines.swap.learned``)."""
    reid: ReidConfig = field(default_factory=ReidConfig)
    """Re-identifying performers for the target rules (``engines.identity.targets``)."""


@dataclass(frozen=True)
class ProcessedFrame:
    image: np.ndarray
    faces: tuple[TrackedFace, ...]
    stage_ms: dict[str, float]
    failed_stage: str | None = None
    error: str | None = None
    """Why ``failed_stage`` failed, in the engine's words (the stream's health shows it to the operator)."""
    targets: dict[int, FaceTarget] = field(default_factory=dict)
    """Each face's identity this frame and why (``engines.identity.targets``), by face id; empty when no face was
    processed (no swap or relight selected, or a failure)."""
    unmarked: np.ndarray | None = None
    """The same frame before the invisible watermark, when ``image`` carries one (None: ``image`` is unmarked):
    a recording asked for without the mark records this (``streamer.record.recording.RecordingRequest``)."""

    def face_list(self) -> list[dict[str, object]]:
        """Each face as the stream's stats show it: id, identity, rule, performer, distance and its box as
        fractions of the frame (x1, y1, x2, y2), so a monitor can draw it and a click can pick it."""
        h, w = self.image.shape[:2]
        out: list[dict[str, object]] = []
        for face in self.faces:
            target = self.targets.get(face.id) or FaceTarget(face.id, None)
            box = [
                round(min(max(float(v) / side, 0.0), 1.0), 4) for v, side in zip(face.box, (w, h, w, h), strict=True)
            ]
            out.append({**target.to_dict(), "box": box})
        return out


def _was(image: np.ndarray, marked: np.ndarray) -> np.ndarray | None:
    """``image`` if marking made a new frame of it, else None (nothing was marked)."""
    return None if marked is image else image


def error_text(exc: BaseException) -> str:
    """An exception as one line for an operator: its message (a StageswapError's is written for one), else
    its type and message."""
    if isinstance(exc, StageswapError) and str(exc):
        return str(exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class FaceProcessor:
    """Tracks faces and applies the enabled stages to each frame (one instance per stream and thread)."""

    def __init__(
        self,
        tracker: FaceTracker,
        config: ProcessorConfig | None = None,
        identities: IdentityStore | None = None,
        occlusion: OcclusionMasks | None = None,
        user_models: UserModelStore | None = None,
        person_masks: PersonMasks | None = None,
        performers: PerformerStore | None = None,
        selector: TargetSelector | None = None,
    ) -> None:
        self.tracker = tracker
        self.config = config or ProcessorConfig()
        self.identities = identities
        self.occlusion = occlusion
        self.person_masks = person_masks if person_masks is not None else (occlusion.masks if occlusion else None)
        """The person around each face (segmentation), for the occlusion and the person's relight; None: none."""
        self.user_models = user_models
        """Registered models (``stageswap models add``) that ``settings.swap_model`` can name."""
        self.swapper = MeshSwapper(self.config.swap)
        self.still = StillFaceHold(self.config.stillness) if self.config.stillness is not None else None
        self._learned: LearnedSwapper | None = None
        self._embeddings: dict[str, tuple[Identity, tuple[str, ...], np.ndarray]] = {}
        self.performers = performers
        """Enrolled performers that ``settings.targets`` rules can name (``engines.identity.performers``)."""
        self.selector = selector if selector is not None else TargetSelector(None, self.config.reid)
        """Which identity goes on which face (``engines.identity.targets``); its recogniser is loaded on the first
        frame whose rules name a performer (``describe_with``)."""
        self._describer_models: str | os.PathLike[str] | None = None
        self.frames = 0
        self.frames_failed = 0
        self._failing: str | None = None
        self.watermarker = Watermarker(self.config.watermark) if self.config.watermark.enabled else None
        self.watermark_id: int | None = new_watermark_id() if self.watermarker is not None else None
        """The id this processor's frames carry: one per processor, so per stream session or batch run."""
        self.relighter = FaceRelighter(
            RelightConfig(time_constant_s=self.config.light_time_constant_s), self.config.hdri_dir
        )
        """The light on each face, measured and smoothed (``engines.light.relight``: the one implementation)."""
        self._stage = "swap"
        """The per-face stage running now (``_timed``): a failure names it."""
        self.gains = ColourGains(self.config.light_time_constant_s)
        """Each face's colour-match gains, smoothed like its light (``engines.compose.blend.ColourGains``)."""

    @classmethod
    def from_models(
        cls,
        models_dir: str | os.PathLike[str] | None = None,
        config: ProcessorConfig | None = None,
        identities: IdentityStore | None = None,
        user_models: UserModelStore | None = None,
        performers: PerformerStore | None = None,
    ) -> FaceProcessor:
        """Build the processor from the model registry (raises ModelError naming a missing/corrupt model). The face
        recogniser is loaded from the registry too, on the first frame with a rule naming a performer."""
        config = config or ProcessorConfig()
        detector = FaceDetector(
            load_model(models.resolve("yunet", models_dir), config.device), input_width=config.detect_width
        )
        mesh = FaceMesh(load_model(models.resolve("facemesh", models_dir), config.device))
        occlusion = person = None
        if config.occlusion is not None:
            segmenter = PersonSegmenter(load_model(models.resolve("selfie_segmentation", models_dir), config.device))
            person = PersonMasks(segmenter, config.occlusion.every)
            occlusion = OcclusionMasks(person, config.occlusion)
        elif config.person_light is not None:
            try:
                segmenter = PersonSegmenter(
                    load_model(models.resolve("selfie_segmentation", models_dir), config.device)
                )
            except ModelError as exc:  # the face alone is still relit
                log.warning("person segmentation unavailable, relighting lights the face only: %s", exc)
            else:
                person = PersonMasks(segmenter, config.person_every)
        tracker = FaceTracker(detector, mesh, config.tracker)
        processor = cls(tracker, config, identities, occlusion, user_models, person, performers)
        processor._describer_models = models_dir
        return processor

    @property
    def runtime(self) -> str:
        return self.tracker.mesh.session.runtime

    def process(
        self, image: np.ndarray, t_s: float | None = None, settings: ProcessSettings | None = None
    ) -> ProcessedFrame:
        """Process one BGR frame taken at ``t_s`` seconds; never raises for a failing stage.

        A uint8 frame, or, when ``settings.colour.input`` declares its colour space, uint8 or uint16 code
        values in that space: converted for the engines and back (``engines.colour``), the result in the
        output space and the same type (the stage time ``colour`` covers both conversions)."""
        settings = settings or ProcessSettings()
        colour = settings.colour
        if colour.input is None:
            return self._process(image, t_s, settings)
        conversion = transform(colour.input, colour.output, colour.config)
        t0 = time.perf_counter()
        linear, engine = conversion.to_engine(image)
        into_ms = (time.perf_counter() - t0) * 1000.0
        result = self._process(engine, t_s, settings)
        t0 = time.perf_counter()
        out = conversion.from_engine(linear, engine, result.image, image.dtype)
        result.stage_ms["colour"] = into_ms + (time.perf_counter() - t0) * 1000.0
        return dataclasses.replace(result, image=out)

    def _process(self, image: np.ndarray, t_s: float | None, settings: ProcessSettings) -> ProcessedFrame:
        self.frames += 1
        t = float(t_s) if t_s is not None else self.frames / 30.0
        if self.person_masks is not None:
            self.person_masks.next_frame()
        stage = "track"
        stage_ms: dict[str, float] = {}
        faces: tuple[TrackedFace, ...] = ()
        targets: dict[int, FaceTarget] = {}
        try:
            faces = tuple(self.tracker.update(image, t_s))
            stage_ms.update(self.tracker.last_stage_ms)
            self._forget({f.id for f in faces})
            if self.still is not None:
                faces = self.still.apply(image, faces)
            out = image
            stage = self._stage = "swap"
            targets = self._targets(image, faces, settings, stage_ms) if faces and settings.swap else {}
            names = {t.identity for t in targets.values() if t.identity is not None}
            learned = self._learned_swapper(settings) if faces and (names or not settings.targets) else None
            needs_identity = learned is None or learned.needs_identity
            identities = {n: self._identity(n) for n in sorted(names)} if needs_identity else {}
            processed = False
            for face in faces:
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
                if not processed:
                    out, processed = image.copy(), True
                stage = self._face(out, image, face, t, identity, relight, settings, stage_ms, face_learned, embedding)
            if settings.debug_overlay:
                stage = "overlay"
                with timed(stage_ms, "overlay"):
                    out = draw_faces(out, faces)
        except Exception as exc:  # a failing engine must not stop the stream
            self.frames_failed += 1
            if stage == "swap":
                stage = self._stage  # the face's stage that failed (relight, blend), for the operator
            if self._failing != stage:
                log.warning("stage %s failed, frames pass through unprocessed: %r", stage, exc, exc_info=True)
                self._failing = stage
            if stage == "track":
                self.tracker.reset()
                self.selector.reset()
                faces = ()
            marked = self._mark(image, stage_ms, settings)
            return ProcessedFrame(
                marked, faces, stage_ms, failed_stage=stage, error=error_text(exc), unmarked=_was(image, marked)
            )
        if self._failing is not None:
            log.info("stage %s recovered", self._failing)
            self._failing = None
        marked = self._mark(out, stage_ms, settings)
        return ProcessedFrame(marked, faces, stage_ms, targets=targets, unmarked=_was(out, marked))

    @contextlib.contextmanager
    def _timed(self, stage_ms: dict[str, float], stage: str) -> Iterator[None]:
        """``timed``, remembering the stage running now (a failure in it is reported as that stage's)."""
        self._stage = stage
        with timed(stage_ms, stage):
            yield

    def _mark(self, image: np.ndarray, stage_ms: dict[str, float], settings: ProcessSettings) -> np.ndarray:
        """The last stage: the invisible watermark, so monitors and recordings get the same marked frame (unless
        the stream's ``settings.watermark`` turns it off)."""
        marker, wid = self.watermarker, self.watermark_id
        if marker is None or wid is None or not settings.watermark or min(image.shape[:2]) < marker.config.min_side_px:
            return image
        with timed(stage_ms, "watermark"):
            return marker.apply(image, wid)

    # ------------------------------------------------------------------------------------------ per face

    def _identity(self, name: str) -> Identity:
        if self.identities is None:
            raise InputError(f"identity {name!r} selected but this processor has no identity store")
        return self.identities.load(name)  # cached by the store; reloaded if re-enrolled

    def _targets(
        self, image: np.ndarray, faces: Sequence[TrackedFace], settings: ProcessSettings, stage_ms: dict[str, float]
    ) -> dict[int, FaceTarget]:
        """Each face's identity this frame (``engines.identity.targets``): the stream's identity on every face
        without rules; with rules, the rule's, performers re-identified by face."""
        rules = settings.targets
        performers: dict[str, Performer] = {}
        wanted = {r.performer for r in rules if r.performer is not None}
        if wanted:
            if self.performers is None:
                raise InputError("target rules name performers but this processor has no performer store")
            performers = {name: self.performers.load(name) for name in sorted(wanted)}  # cached by the store
            if self.selector.describe is None:
                self.selector.describe = self._load_describer()
        with timed(stage_ms, "targets"):
            return self.selector.select(image, faces, rules, performers, settings.identity)

    def _load_describer(self) -> Describe:
        from engines.identity.descriptor import FaceDescriber

        describer = FaceDescriber(models.resolve("face_descriptor", self._describer_models))
        log.info("face recogniser loaded for target rules")
        return describer.describe_many

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
            current = self._learned = load_swapper(
                self.user_models, model.name, self.config.device, self.config.learned
            )
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

    def _face(
        self,
        out: np.ndarray,
        original: np.ndarray,
        face: TrackedFace,
        t: float,
        identity: Identity | None,
        relight: bool,
        settings: ProcessSettings,
        stage_ms: dict[str, float],
        learned: LearnedSwapper | None = None,
        embedding: np.ndarray | None = None,
    ) -> str:
        """Swap and/or relight one face into ``out``; returns the last stage (for failure reports).

        With a ``learned`` swapper the model's face takes the place of the mesh swap's rendering (and
        ``identity``, if any, only named the embedding); relighting and blending are the same."""
        if learned is not None:
            identity = None  # the mesh swap's identity: none (no texture, no morph)
        with self._timed(stage_ms, "swap"):
            morph = settings.morph * settings.strength if identity is not None else 0.0
            geometry = self.swapper.geometry(original, face.landmarks, face.id, t, identity, morph)
            if geometry is None:
                return "swap"
            actor_window = self.swapper.actor_window(original, geometry)
            actor = geometry.to_work(actor_window)
            rendered = seen = None
            swapped: LearnedFace | None = None
            if learned is not None:
                swapped = learned.swap(original, face.landmarks, face.points5, geometry, embedding, settings.morph)
            elif identity is not None:
                rendered = self.swapper.render(geometry, identity, "albedo" if relight else "texture")
                seen = self.swapper.coverage_small(geometry, identity)
        with self._timed(stage_ms, "blend"):
            swapping = identity is not None or swapped is not None
            keep_eyes = settings.keep_eyes or not swapping
            keep_mouth = settings.keep_mouth or not swapping
            # The outline's ramp from the geometry raster (also where skin is measured), then the kept
            # openings cut into the pasted alpha at full size.
            alpha_small = face_alpha_small(geometry, self.config.blend, seen)
            alpha = geometry.to_window(alpha_small)
            alpha = alpha.copy() if alpha is alpha_small else alpha
            cut_openings(alpha, geometry, keep_eyes, keep_mouth, self.config.blend)
            if swapped is not None:  # where the model's crop and its own masks say its face is
                alpha = alpha * geometry.to_window(swapped.mask)
            visible = None
            if self.occlusion is not None:
                visible = self.occlusion.visibility(original, face.id, face.box, geometry.window)
                alpha *= visible
            # Statistics (light, colour) are measured at geometry resolution: fewer pixels, same means.
            hs, ws = geometry.small_size
            actor_small = shrink(actor, (ws, hs))
            skin_small = skin_mask(geometry, alpha_small)
        face_bgr: np.ndarray | None = None
        relit_with_gains: np.ndarray | None = None
        light: tuple[np.ndarray, np.ndarray] | None = None
        first_colour = face.id not in self.gains
        # A chosen target light relights the whole person around the face (the actor's own face with it).
        person = relight and self._person_light(settings) is not None
        actor_only = identity is None and swapped is None
        if relight:
            with self._timed(stage_ms, "relight"):
                if identity is not None:
                    held = self.gains.current(face.id)
                    relit_with_gains = held if held is not None else np.ones(3)
                lit = actor if swapped is None else swapped.image  # a model's face: relit like the actor's
                relit_face = self._relight(
                    face.id,
                    t,
                    lit,
                    actor_small,
                    geometry,
                    skin_small,
                    settings,
                    rendered,
                    relit_with_gains,
                    draw=not (person and actor_only),
                )
            if relit_face is None:
                relit_with_gains = None
            else:
                face_bgr, light = relit_face
        if face_bgr is None and identity is not None:  # no relight, or no light measurable yet
            with self._timed(stage_ms, "swap"):
                if rendered is None or rendered.dtype != np.uint8:
                    rendered = self.swapper.render(geometry, identity, "texture")
            face_bgr = rendered
        if face_bgr is None and swapped is not None:
            face_bgr = swapped.image
        reference, own = actor_small, None
        if light is not None and swapping and settings.relight_target.mode != "match":
            # A target light acts on a swapped face exactly as on the actor's own: the colour match compares the
            # face with the actor's face under that light (against the actor as the camera saw it, the gains
            # would undo the light's colour and intensity), and the actor's relit face lies under the swap
            # wherever the swap does not cover it all (its feathered edge, what the photos did not see, the
            # kept eyes and mouth, a strength under 1).
            with self._timed(stage_ms, "relight"):
                reference = relight_face(actor_small, geometry.normals_small, skin_small, *light)
                if not person:  # the person's relight lays the actor's relit face under the swap instead
                    own = relight_face(actor, geometry.normals_small, geometry.labels() >= 0, *light)
        if geometry.warp is not None:
            with self._timed(stage_ms, "blend"):
                ys, xs = geometry.window.slices
                out[ys, xs] = actor_window
        if person and light is not None:
            with self._timed(stage_ms, "relight"):
                relit_person = self._relight_person(out, original, face, geometry, *light)
                if not relit_person:  # no room for the person's square in the frame: the face alone
                    covered = geometry.labels() >= 0
                    if actor_only:
                        face_bgr = relight_face(actor, geometry.normals_small, covered, *light)
                    elif swapping:
                        own = relight_face(actor, geometry.normals_small, covered, *light)
            if relit_person and actor_only:
                return "relight"  # the actor's face was relit with the rest of the person
        with self._timed(stage_ms, "blend"):
            if face_bgr is None:
                return "blend"
            if own is not None:  # as the relight alone pastes it: the eyes and mouth kept, no photo coverage
                own_alpha = geometry.to_window(face_alpha_small(geometry, self.config.blend))
                cut_openings(own_alpha, geometry, True, True, self.config.blend)
                if visible is not None:
                    own_alpha *= visible
                composite(out, geometry, geometry.to_window(own), own_alpha * float(settings.strength))
            if identity is not None or (swapped is not None and self.config.learned.colour_match):
                # Colour match. After a relight the gains already went into the light (``_relight``): the
                # residual measured now refines them for the next frame, and no extra pass is needed.
                face_small = shrink(face_bgr, (ws, hs))
                residual = colour_gains(face_small, reference, skin_small, self.config.blend)
                relit = relit_with_gains is not None
                previous = relit_with_gains if relit else np.ones(3)
                gains = self.gains.smooth(face.id, t, None if residual is None else previous * residual)
                if gains is not None and (not relit or first_colour):
                    # Without a relight, or on a face's first frame (no gains yet to fold into its light), the
                    # colour match is a pass of its own: a face never shows unmatched for a frame.
                    face_bgr = apply_gains(face_bgr, gains / previous)
            if identity is not None and identity.monochrome:  # black-and-white photos: the actor's colour
                face_bgr = transfer_chroma(face_bgr, actor)
            composite(out, geometry, geometry.to_window(face_bgr), alpha * float(settings.strength))
        return "blend"

    def _relight(
        self,
        face_id: int,
        t: float,
        actor: np.ndarray,
        actor_small: np.ndarray,
        geometry: FaceGeometry,
        skin_small: np.ndarray,
        settings: ProcessSettings,
        albedo: np.ndarray | None,
        gains_bgr: np.ndarray | None = None,
        draw: bool = True,
    ) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray]] | None:
        """The face under the target light (the identity's albedo, or the actor's own face), BGR uint8, and
        the light it was relit with: (measured on the actor, target) as (9, 3) SH, the colour match's gains
        left out of the target. None while no light could be measured on this face yet.

        The light is measured on the geometry-resolution copy of the actor's window; ``relight_face`` takes
        the coarse normal grid as it is (the shading is smooth) and works per pixel only on colour."""
        normals = geometry.normals_small
        colours, nrm = skin_samples(actor_small, normals, skin_small)
        source = self.relighter.measure(face_id, t, colours, nrm)
        if source is None:
            return None
        target = self.relighter.target(settings.relight_target, source)
        lit = target
        if gains_bgr is not None:  # the colour match, folded into the light (RGB columns)
            lit = target * np.asarray(gains_bgr)[::-1][None, :]
        if not draw:  # the person's relight draws this face
            return None, (source, target)
        covered = geometry.labels() >= 0
        return relight_face(actor, normals, covered, source, lit, albedo), (source, target)

    def _person_light(self, settings: ProcessSettings) -> PersonLightConfig | None:
        """How the person is relit this frame: a chosen target light with the segmentation there; else None."""
        if self.person_masks is None or settings.relight_target.mode == "match":
            return None
        return self.config.person_light

    def _relight_person(
        self,
        out: np.ndarray,
        original: np.ndarray,
        face: TrackedFace,
        geometry: FaceGeometry,
        source: np.ndarray,
        target: np.ndarray,
    ) -> bool:
        """Relight the person around ``face`` in ``out`` (``engines.light.person``); False when the person's square
        has no room in the frame."""
        masks, cfg = self.person_masks, self.config.person_light
        assert masks is not None and cfg is not None  # _person_light said so
        region = masks.around(original, face.id, face.box)
        x0, y0, x1, y1 = region.bounds()
        h, w = out.shape[:2]
        wx0, wy0 = max(0, math.floor(x0)), max(0, math.floor(y0))
        wx1, wy1 = min(w, math.ceil(x1)), min(h, math.ceil(y1))
        if wx1 - wx0 < 8 or wy1 - wy0 < 8:
            return False
        window = Window(wx0, wy0, wx1 - wx0, wy1 - wy0)
        open_sides = (x0 >= 0, y0 >= 0, x1 <= w, y1 <= h)
        cover = (geometry.labels_small >= 0).astype(np.float32)
        relight_person(
            out,
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
        )
        return True

    def _forget(self, active: set[int]) -> None:
        self.swapper.forget(active)
        self.relighter.forget(active)
        self.gains.forget(active)
        if self.person_masks is not None:
            self.person_masks.forget(active)
        if self.still is not None:
            self.still.forget(active)

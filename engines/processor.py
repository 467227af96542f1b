"""FaceProcessor: everything done to one frame, as a fixed sequence of stages, with per-stage timings.

The streamer and the batch `process` command call only this. Per frame (``engines.stages``): track faces
(``track``: detect, mesh, smooth), choose each face's identity (``targets``), then for every face: draw it
(``swap``: the identity's texture rendered onto its mesh, or a learned model's face), say where it goes
(``mask``), measure the light on the actor and relight (``relight``: the identity's albedo under the actor's
light, or the actor's own face under a target light), match colour and paste back (``blend``); last the
debug overlay and the invisible watermark (``mark``). Stage times are summed over faces per frame, under the
keys the stats have always reported (the mask's under ``blend``).

Policy is not decided here: the settings come from the stream's plan (``streamer.plan``), where names were
resolved and consent was checked once when they were set; the processor runs what it is given.

A stage that raises never takes the frame down with it: the frame passes through unprocessed, the
failure is counted and logged once per burst, and the next frame starts clean (the tracker is reset only
when tracking itself failed).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.colour import transform
from engines.compose.blend import BlendConfig, ColourGains
from engines.compose.occlusion import OcclusionConfig, OcclusionMasks, PersonMasks, PersonSegmenter
from engines.compose.watermark import (
    DEFAULT_MARK,
    WatermarkConfig,
    Watermarker,
    mark_name,
    new_watermark_id,
    watermark_config,
)
from engines.errors import ModelError, StageswapError
from engines.face.detect import FaceDetector
from engines.face.glasses import GlassesConfig, GlassesFinder
from engines.face.landmarks import FaceMesh
from engines.face.stillness import StillFaceHold, StillnessConfig
from engines.face.tracker import FaceTracker, TrackedFace, TrackerConfig
from engines.identity.performers import PerformerStore
from engines.identity.store import IdentityStore
from engines.identity.targets import FaceTarget, ReidConfig, TargetSelector
from engines.light.person import PersonLightConfig
from engines.light.relight import FaceRelighter, RelightConfig
from engines.runtime import load_model, models
from engines.settings import ProcessSettings
from engines.stages.base import FaceStage, FrameContext, FrameStage
from engines.stages.blend import BlendStage
from engines.stages.mark import MarkStage, OverlayStage
from engines.stages.mask import MaskStage
from engines.stages.ops import StagesBackend, make_ops
from engines.stages.relight import RelightStage
from engines.stages.swap import SwapStage
from engines.stages.track import TargetStage, TrackStage
from engines.swap.learned import LearnedConfig
from engines.swap.mesh import MeshSwapper, SwapConfig
from engines.swap.user_models import UserModelStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessorConfig:
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    detect_width: int = 320
    device: str = "cpu"
    stages: StagesBackend = "auto"
    """What the per-face stages' pixel work runs on (``engines.stages.ops``): ``auto`` — the torch ops on the device
    when it is a GPU, numpy on the CPU (faster there than torch on the CPU); ``numpy``; ``torch`` — the torch ops
    on ``device`` whatever it is (``cpu``: how the suite holds them equal to numpy). Shown as ``frame_path``."""
    fused: bool = True
    """On numpy, the chains of full-size per-pixel passes run as compiled kernels (``engines.fused``, numba: a
    face's relight and paste in one pass each); False: the numpy/cv2 reference, pass by pass."""
    swap: SwapConfig = field(default_factory=SwapConfig)
    blend: BlendConfig = field(default_factory=BlendConfig)
    occlusion: OcclusionConfig | None = None
    """Person segmentation around each face (``engines.compose.occlusion``); None (the default): off."""
    glasses: GlassesConfig | None = field(default_factory=GlassesConfig)
    """Finding each face's glasses, kept in front of the swap (``engines.face.glasses``; ``keep_glasses``); None:
    never looked for."""
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
    watermark: WatermarkConfig = field(default_factory=lambda: watermark_config(DEFAULT_MARK))
    """The invisible watermark every output frame carries (``engines.compose.watermark``); on by default, the
    ``DEFAULT_MARK`` (``hush``: weaker on the faces the track stage finds, which the mark stage passes it)."""
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
    glasses: dict[int, bool] = field(default_factory=dict)
    """Whether each processed face wears glasses (``engines.face.glasses``), by face id; absent: not looked at."""

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
            row: dict[str, object] = {**target.to_dict(), "box": box}
            if face.id in self.glasses:
                row["glasses"] = self.glasses[face.id]
            out.append(row)
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
    """Tracks faces and runs the stages on each frame (one instance per stream and thread).

    The stages, in order (``stages``): ``track`` → ``targets`` → per face ``swap`` → ``mask`` → ``relight`` →
    ``blend`` → ``overlay`` → ``mark`` (``engines.stages``). Each owns its per-face state and is told which faces
    are still tracked after every ``track``."""

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
        describer_models: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config = config = config or ProcessorConfig()
        self.identities = identities
        self.occlusion = occlusion
        self.person_masks = person_masks if person_masks is not None else (occlusion.masks if occlusion else None)
        """The person around each face (segmentation), shared by the occlusion (``mask``) and the person's relight
        (``relight``); None: none."""
        self.user_models = user_models
        self.performers = performers
        self.frames = 0
        self.frames_failed = 0
        self._failing: str | None = None
        still = StillFaceHold(config.stillness) if config.stillness is not None else None
        self.track = TrackStage(tracker, still)
        self.targets = TargetStage(
            selector if selector is not None else TargetSelector(None, config.reid), performers, describer_models
        )
        self.ops = make_ops(config.stages, config.device, config.fused)
        """The backend of the per-face stages' pixel work: numpy, or the torch ops on a device."""
        self.swap = SwapStage(
            MeshSwapper(config.swap, config.fused), identities, user_models, config.device, config.learned, self.ops
        )
        self.mask = MaskStage(
            config.blend,
            occlusion,
            GlassesFinder(config.glasses) if config.glasses is not None else None,
            config.fused,
        )
        gains = ColourGains(config.light_time_constant_s)
        relighter = FaceRelighter(
            RelightConfig(time_constant_s=config.light_time_constant_s), config.hdri_dir, fused=config.fused
        )
        person_light = config.person_light if self.person_masks is not None else None
        self.relight = RelightStage(relighter, gains, self.person_masks, person_light, self.ops)
        self.blend = BlendStage(config.blend, gains, self.swap.texture, config.learned.colour_match, self.ops)
        self.face_stages: tuple[FaceStage, ...] = (self.swap, self.mask, self.relight, self.blend)
        """What is done to each face, in this order: each reads what the ones before it put into its context."""
        self.overlay = OverlayStage()
        marker = Watermarker(config.watermark) if config.watermark.enabled else None
        self.mark = MarkStage(marker, new_watermark_id() if marker is not None else None)

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
        return cls(tracker, config, identities, occlusion, user_models, person, performers, None, models_dir)

    @property
    def stages(self) -> tuple[FrameStage | FaceStage, ...]:
        """Every stage in the order it runs (the face stages once per face, between ``targets`` and ``overlay``)."""
        return (self.track, self.targets, *self.face_stages, self.overlay, self.mark)

    @property
    def tracker(self) -> FaceTracker:
        return self.track.tracker

    @property
    def watermark_id(self) -> int | None:
        """The id this processor's frames carry (None: not marked): one per processor, so per stream session or
        batch run."""
        return self.mark.watermark_id

    @property
    def watermark_mark(self) -> str | None:
        """Which of ``engines.compose.watermark.MARKS`` this processor's frames carry (None: not marked, or a mark of
        other settings)."""
        marker = self.mark.marker
        return mark_name(marker.config) if marker is not None and self.mark.watermark_id is not None else None

    @property
    def runtime(self) -> str:
        return self.tracker.mesh.session.runtime

    @property
    def frame_path(self) -> str:
        """What the per-face stages' pixel work runs on: ``numpy``, ``torch-cuda`` or ``torch-cpu`` (stats'
        ``frame_path``; ``runtime`` is the models')."""
        return self.ops.name

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
        frame = FrameContext(image, t_s, t, settings, ops=self.ops)
        try:
            self._run(self.track, frame)
            self._forget({f.id for f in frame.faces})
            self._run(self.targets, frame)
            for face in self.swap.faces(frame):
                for stage in self.face_stages:
                    if face.done:
                        break
                    stage.run(face)
            frame.to_host()  # the frame's one download (none on numpy), for the overlay, the mark and encoding
            self._run(self.overlay, frame)
        except Exception as exc:  # a failing engine must not stop the stream
            return self._failed(frame, exc)
        if self._failing is not None:
            log.info("stage %s recovered", self._failing)
            self._failing = None
        out = frame.result
        self.mark.run(frame)
        return ProcessedFrame(
            frame.result,
            frame.faces,
            frame.stage_ms,
            targets=frame.targets,
            unmarked=_was(out, frame.result),
            glasses=frame.glasses,
        )

    def _run(self, stage: FrameStage, frame: FrameContext) -> None:
        frame.running = stage.name
        stage.run(frame)

    def _failed(self, frame: FrameContext, exc: Exception) -> ProcessedFrame:
        """The frame as it came in (marked), the failure counted, logged once per burst and named after the stage
        that raised (``FrameContext.running``); the tracker starts again only when tracking itself failed."""
        self.frames_failed += 1
        stage = frame.running
        if self._failing != stage:
            log.warning("stage %s failed, frames pass through unprocessed: %r", stage, exc, exc_info=True)
            self._failing = stage
        if stage == self.track.name:
            self.track.reset()
            self.targets.reset()
            frame.faces = ()
        frame.out = frame.image
        self.mark.run(frame)
        return ProcessedFrame(
            frame.result,
            frame.faces,
            frame.stage_ms,
            failed_stage=stage,
            error=error_text(exc),
            unmarked=_was(frame.image, frame.result),
        )

    def _forget(self, active: set[int]) -> None:
        """Every stage drops what it keeps for faces no longer tracked."""
        for stage in self.stages:
            stage.forget(active)
        if self.person_masks is not None:
            self.person_masks.forget(active)

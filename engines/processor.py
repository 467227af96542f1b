"""FaceProcessor: everything done to one frame, in order, with per-stage timings.

The streamer and the batch `process` command call only this. A stage that raises never takes the
frame down with it: the frame passes through unprocessed, the failure is counted and logged once
per burst, and the next frame starts clean.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from engines import models
from engines.detect import FaceDetector
from engines.landmarks import FaceMesh
from engines.overlay import draw_faces
from engines.runtime import load_model
from engines.settings import ProcessSettings
from engines.stats import timed
from engines.tracker import FaceTracker, TrackedFace, TrackerConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessorConfig:
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    detect_width: int = 320
    device: str = "cpu"


@dataclass(frozen=True)
class ProcessedFrame:
    image: np.ndarray
    faces: tuple[TrackedFace, ...]
    stage_ms: dict[str, float]
    failed_stage: str | None = None


class FaceProcessor:
    """Tracks faces and applies the enabled stages to each frame (one instance per stream and thread)."""

    def __init__(self, tracker: FaceTracker, config: ProcessorConfig | None = None) -> None:
        self.tracker = tracker
        self.config = config or ProcessorConfig()
        self.frames = 0
        self.frames_failed = 0
        self._failing: str | None = None

    @classmethod
    def from_models(
        cls, models_dir: str | os.PathLike[str] | None = None, config: ProcessorConfig | None = None
    ) -> FaceProcessor:
        """Build the processor from the model registry (raises ModelError naming a missing/corrupt model)."""
        config = config or ProcessorConfig()
        detector = FaceDetector(
            load_model(models.resolve("yunet", models_dir), config.device), input_width=config.detect_width
        )
        mesh = FaceMesh(load_model(models.resolve("facemesh", models_dir), config.device))
        return cls(FaceTracker(detector, mesh, config.tracker), config)

    @property
    def runtime(self) -> str:
        return self.tracker.mesh.session.runtime

    def process(
        self, image: np.ndarray, t_s: float | None = None, settings: ProcessSettings | None = None
    ) -> ProcessedFrame:
        """Process one BGR uint8 frame taken at ``t_s`` seconds; never raises for a failing stage."""
        settings = settings or ProcessSettings()
        self.frames += 1
        stage = "track"
        stage_ms: dict[str, float] = {}
        try:
            faces = tuple(self.tracker.update(image, t_s))
            stage_ms.update(self.tracker.last_stage_ms)
            out = image
            if settings.debug_overlay:
                stage = "overlay"
                with timed(stage_ms, "overlay"):
                    out = draw_faces(image, faces)
        except Exception as exc:  # a failing engine must not stop the stream
            self.frames_failed += 1
            if self._failing != stage:
                log.warning("stage %s failed, frames pass through unprocessed: %r", stage, exc, exc_info=True)
                self._failing = stage
            self.tracker.reset()
            return ProcessedFrame(image, (), stage_ms, failed_stage=stage)
        if self._failing is not None:
            log.info("stage %s recovered", self._failing)
            self._failing = None
        return ProcessedFrame(out, faces, stage_ms)

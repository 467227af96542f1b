"""The first stages, on the whole frame: find and follow the faces (``TrackStage``), then decide which identity
goes onto which face (``TargetStage``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Set

from engines.errors import InputError
from engines.face.stillness import StillFaceHold
from engines.face.tracker import FaceTracker
from engines.identity.performers import Performer, PerformerStore
from engines.identity.targets import Describe, TargetSelector
from engines.runtime import models
from engines.stages.base import FrameContext

log = logging.getLogger(__name__)


class TrackStage:
    """Faces in the frame: detect now and then, follow every face with the mesh, keep ids, smooth
    (``engines.face.tracker``; its own timings: ``detect``, ``landmarks``, ...); a face whose picture has not
    changed since its geometry was taken keeps that geometry (``StillFaceHold``: repeated frames, repeated output)."""

    name = "track"

    def __init__(self, tracker: FaceTracker, still: StillFaceHold | None) -> None:
        self.tracker = tracker
        self.still = still

    def run(self, frame: FrameContext) -> None:
        faces = tuple(self.tracker.update(frame.image, frame.t_s))
        frame.stage_ms.update(self.tracker.last_stage_ms)
        if self.still is not None:
            faces = self.still.apply(frame.image, faces)
        frame.faces = faces

    def forget(self, active: Set[int]) -> None:
        if self.still is not None:
            self.still.forget(set(active))

    def reset(self) -> None:
        """After tracking itself failed: start again from a detection."""
        self.tracker.reset()


class TargetStage:
    """Each face's identity this frame (``engines.identity.targets``): the stream's identity on every face without
    rules; with rules, the rule's, performers re-identified by face (the recogniser is loaded on the first frame
    whose rules name a performer). Only when the frame swaps."""

    name = "targets"

    def __init__(
        self,
        selector: TargetSelector,
        performers: PerformerStore | None,
        describer_models: str | os.PathLike[str] | None = None,
    ) -> None:
        self.selector = selector
        self.performers = performers
        """Enrolled performers that ``settings.targets`` rules can name (``engines.identity.performers``)."""
        self.describer_models = describer_models
        """Where the face recogniser is looked up (the model registry's folder; None: its default)."""

    def run(self, frame: FrameContext) -> None:
        settings = frame.settings
        if not frame.faces or not settings.swap:
            frame.targets = {}
            return
        rules = settings.targets
        performers: dict[str, Performer] = {}
        wanted = {r.performer for r in rules if r.performer is not None}
        if wanted:
            if self.performers is None:
                raise InputError("target rules name performers but this processor has no performer store")
            performers = {name: self.performers.load(name) for name in sorted(wanted)}  # cached by the store
            if self.selector.describe is None:
                self.selector.describe = self._load_describer()
        with frame.timed(self.name):
            frame.targets = self.selector.select(frame.image, frame.faces, rules, performers, settings.identity)

    def forget(self, active: Set[int]) -> None:
        """Nothing: the selector follows the faces it is given itself (and keeps a performer's descriptors)."""

    def reset(self) -> None:
        """After tracking failed: the ids start again, so do the targets."""
        self.selector.reset()

    def _load_describer(self) -> Describe:
        from engines.identity.descriptor import FaceDescriber

        describer = FaceDescriber(models.resolve("face_descriptor", self.describer_models))
        log.info("face recogniser loaded for target rules")
        return describer.describe_many

"""Who gets swapped: each tracked face's identity from a stream's target rules, performers re-identified by face.

``TargetSelector.select`` runs once per frame after tracking. With no rules every face gets the stream's identity
(what stageswap always did). With rules (``engines.settings.TargetRule``), in order, each rule takes at most one
face that no earlier rule took — the face re-identified as its performer, the face with its id, the largest,
leftmost or rightmost, or (``any``) every face left — and gives it the rule's identity (None: left alone). Faces
no rule takes are left untouched.

Re-identification never runs the recogniser on every frame (dlib's ResNet costs ~150-190 ms of CPU per face
on the development machine). Each track keeps its own descriptors and the performer they matched; the recogniser
runs

- on a new track (a face coming into the frame, or a track the tracker started again under an old id: a new
  track is never trusted to be who was there before), then every ``retry_every`` frames until it is decided;
- after two faces overlapped (the mesh can slide from one onto the other), once they are apart again;
- every ``recheck_every`` frames to confirm, staggered so two faces are not checked on the same frame.

A performer is matched when a track's descriptor (the mean of its last few) is within ``threshold`` of the
performer's nearest enrollment descriptor; a matched track keeps its performer until a check finds it further
than ``drop_threshold``. One performer is one person: when two faces match the same performer, the nearer one
gets them. A face too turned away for a trustworthy descriptor (``max_yaw_deg``) waits for a better view.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from engines.face.geometry import box_iou
from engines.identity.descriptor import descriptor_distance
from engines.identity.performers import Performer
from engines.settings import TargetRule


class Face(Protocol):
    """What selection reads of a tracked face (``engines.face.tracker.TrackedFace``)."""

    @property
    def id(self) -> int: ...
    @property
    def landmarks(self) -> np.ndarray: ...
    @property
    def box(self) -> np.ndarray: ...
    @property
    def pose_deg(self) -> tuple[float, float, float]: ...
    @property
    def age(self) -> int: ...


Describe = Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray]
"""The recogniser: (frame, landmarks of some of its faces) -> (n, 128) descriptors (``FaceDescriber.describe_many``)."""


@dataclass(frozen=True)
class ReidConfig:
    threshold: float = 0.40
    """Largest descriptor distance at which a face is taken for a performer. Measured (BENCHMARKS.md,
    re-identification; benchmarks/eval_reid.py): at 0.40 no false accept on the shared and generated material and
    2-4% of single frames falsely rejected (retried: a track is checked again every ``retry_every`` frames); at
    dlib's own 0.6, and already at 0.45, two different men of the shared clips are taken for each other."""
    drop_threshold: float = 0.48
    """A track that matched keeps its performer unless a later check finds it further than this (a bad frame
    does not drop a performer; the overlap rule guards against the mesh sliding onto someone else)."""
    retry_every: int = 3
    """Frames between checks of a track that is not decided yet (no descriptor, or nobody matched)."""
    retry_frames: int = 45
    """How long a new track keeps being retried that often; after that only ``recheck_every``."""
    recheck_every: int = 300
    """Frames between confirmations of a decided track (10 s at 30 fps): what keeps the recogniser's cost per face
    under 1 ms a frame (one description, ~150-190 ms of CPU here, per 300 frames: BENCHMARKS.md)."""
    mean_of: int = 4
    """A track's descriptor is the mean of its last this many (since it last overlapped another face)."""
    max_yaw_deg: float = 50.0
    overlap_iou: float = 0.02
    """Two faces whose boxes overlap more than this may exchange meshes: both are checked once apart."""
    largest_margin: float = 0.15
    """``largest`` stays on the face it picked until another is this much larger (no flicker between equals)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= self.drop_threshold:
            raise ValueError("ReidConfig: 0 < threshold <= drop_threshold")
        if min(self.retry_every, self.recheck_every, self.mean_of) < 1:
            raise ValueError("ReidConfig: retry_every, recheck_every and mean_of must be at least 1")


@dataclass(frozen=True)
class FaceTarget:
    """What one face gets this frame, and why (for stats, the monitor and provenance)."""

    face_id: int
    identity: str | None
    """The identity swapped onto it; None: left untouched."""
    rule: int | None = None
    """The index of the rule that took it; None: no rule (untouched, or no rules: the stream's identity)."""
    performer: str | None = None
    """Who the recogniser says it is (None: nobody enrolled, or not decided yet)."""
    distance: float | None = None
    """Its descriptor's distance to that performer (or to the nearest one when nobody matched)."""

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.face_id,
            "identity": self.identity,
            "rule": self.rule,
            "performer": self.performer,
            "distance": None if self.distance is None else round(self.distance, 3),
        }


class TargetTally:
    """Which identity went on which face over a run, for stats and provenance: per face id, its frames, the
    performer it was recognised as most often, and its frames by identity (None: left untouched)."""

    def __init__(self) -> None:
        self._faces: dict[int, dict[str, Any]] = {}

    def add(self, targets: Iterable[FaceTarget]) -> None:
        for t in targets:
            row = self._faces.setdefault(t.face_id, {"frames": 0, "performers": Counter(), "identities": Counter()})
            row["frames"] += 1
            if t.performer is not None:
                row["performers"][t.performer] += 1
            row["identities"][t.identity] += 1

    def summary(self) -> list[dict[str, Any]]:
        """``[{face, frames, performer, identities: {name: frames}, untouched}]`` by face id."""
        out = []
        for face_id, row in sorted(self._faces.items()):
            performers: Counter[str] = row["performers"]
            identities: Counter[str | None] = row["identities"]
            out.append(
                {
                    "face": face_id,
                    "frames": row["frames"],
                    "performer": performers.most_common(1)[0][0] if performers else None,
                    "identities": {k: v for k, v in identities.most_common() if k is not None},
                    "untouched": identities.get(None, 0),
                }
            )
        return out


@dataclass
class _Track:
    age: int
    born: int
    """Frame the track was first seen (this selector's count)."""
    descriptors: list[np.ndarray] = field(default_factory=list)
    performer: str | None = None
    distance: float | None = None
    nearest: float | None = None
    checked: int = -1
    """Frame of the last check (-1: never)."""
    overlapped: bool = False


class TargetSelector:
    """Per stream: each face's identity, frame by frame. Keeps per-track descriptors; ``describe`` is the recogniser
    (None: performer rules match nobody)."""

    def __init__(self, describe: Describe | None, config: ReidConfig | None = None) -> None:
        self.describe = describe
        self.config = config or ReidConfig()
        self._tracks: dict[int, _Track] = {}
        self._frame = 0
        self._largest: int | None = None
        self.descriptors_run = 0
        """Faces described so far (the recogniser's work: the cost that is amortised)."""

    def reset(self) -> None:
        self._tracks.clear()
        self._largest = None

    def performer_of(self, face_id: int) -> str | None:
        track = self._tracks.get(face_id)
        return None if track is None else track.performer

    def select(
        self,
        image: np.ndarray,
        faces: Sequence[Face],
        rules: Sequence[TargetRule],
        performers: Mapping[str, Performer],
        default_identity: str | None,
    ) -> dict[int, FaceTarget]:
        """Each face's target this frame, by face id. ``performers``: the enrolled performers the rules name."""
        self._frame += 1
        if not rules:
            self.reset()
            return {f.id: FaceTarget(f.id, default_identity) for f in faces}
        self._follow(faces)
        if any(r.performer is not None for r in rules) and self.describe is not None and performers:
            self._recognise(image, faces, performers)
        return self._apply(faces, rules)

    # ------------------------------------------------------------------------------------------ tracks

    def _follow(self, faces: Sequence[Face]) -> None:
        """Start, restart and forget tracks; note faces that overlap another (checked once apart)."""
        active = {f.id for f in faces}
        for face_id in [i for i in self._tracks if i not in active]:
            del self._tracks[face_id]
        for face in faces:
            track = self._tracks.get(face.id)
            if track is None or face.age < track.age:  # new, or started again under an old id: nobody yet
                self._tracks[face.id] = _Track(face.age, self._frame)
            else:
                track.age = face.age
        for a in faces:
            close = any(b.id != a.id and box_iou(a.box, b.box) > self.config.overlap_iou for b in faces)
            track = self._tracks[a.id]
            if close:
                track.overlapped = True
            elif track.overlapped:  # apart again: what it matched before may be the other face's
                track.overlapped = False
                track.descriptors.clear()
                track.checked = -1

    def _due(self, face: Face, track: _Track) -> bool:
        cfg = self.config
        if track.overlapped or abs(face.pose_deg[0]) > cfg.max_yaw_deg:
            return False
        if track.checked < 0:
            return True
        since = self._frame - track.checked
        young = self._frame - track.born < cfg.retry_frames
        if track.performer is None and young:
            return since >= cfg.retry_every
        # staggered by id: faces found together are not all confirmed on the same frame
        return since >= cfg.recheck_every and (self._frame + face.id) % max(cfg.retry_every, 1) == 0

    def _recognise(self, image: np.ndarray, faces: Sequence[Face], performers: Mapping[str, Performer]) -> None:
        assert self.describe is not None
        due = [f for f in faces if self._due(f, self._tracks[f.id])]
        if due:
            descs = self.describe(image, [f.landmarks for f in due])
            self.descriptors_run += len(due)
            for face, desc in zip(due, descs, strict=True):
                track = self._tracks[face.id]
                track.checked = self._frame
                track.descriptors = [*track.descriptors[-(self.config.mean_of - 1) :], np.asarray(desc)]
        self._match(faces, performers)

    def _match(self, faces: Sequence[Face], performers: Mapping[str, Performer]) -> None:
        """Give each performer to at most one face: nearest pairs first, within the thresholds."""
        cfg = self.config
        names = sorted(performers)
        pairs: list[tuple[float, int, str]] = []
        for face in faces:
            track = self._tracks[face.id]
            if not track.descriptors or not names:
                track.nearest = None
                continue
            mean = np.mean(np.stack(track.descriptors), axis=0)
            dists = [float(descriptor_distance(mean, performers[n].descriptors).min()) for n in names]
            track.nearest = min(dists)
            for name, d in zip(names, dists, strict=True):
                limit = cfg.drop_threshold if track.performer == name else cfg.threshold
                if d <= limit:
                    pairs.append((d, face.id, name))
        taken_faces: set[int] = set()
        taken_names: set[str] = set()
        matched: dict[int, tuple[str, float]] = {}
        for d, face_id, name in sorted(pairs):
            if face_id in taken_faces or name in taken_names:
                continue
            taken_faces.add(face_id)
            taken_names.add(name)
            matched[face_id] = (name, d)
        for face in faces:
            track = self._tracks[face.id]
            found = matched.get(face.id)
            track.performer, track.distance = (found[0], found[1]) if found else (None, track.nearest)

    # ------------------------------------------------------------------------------------------ rules

    def _apply(self, faces: Sequence[Face], rules: Sequence[TargetRule]) -> dict[int, FaceTarget]:
        left = list(faces)
        chosen: dict[int, tuple[int, str | None]] = {}
        for index, rule in enumerate(rules):
            picked = self._pick(rule, left)
            for face in picked:
                chosen[face.id] = (index, rule.identity)
            left = [f for f in left if f.id not in chosen]
        out: dict[int, FaceTarget] = {}
        for face in faces:
            track = self._tracks.get(face.id)
            rule_index, identity = chosen.get(face.id, (None, None))
            out[face.id] = FaceTarget(
                face.id,
                identity,
                rule_index,
                track.performer if track is not None else None,
                track.distance if track is not None else None,
            )
        return out

    def _pick(self, rule: TargetRule, left: Sequence[Face]) -> list[Face]:
        if not left:
            return []
        if rule.match == "any":
            return list(left)
        if rule.face_id is not None:
            return [f for f in left if f.id == rule.face_id]
        if rule.match == "largest":
            return [self._pick_largest(left)]
        if rule.match in ("leftmost", "rightmost"):
            centre = {f.id: float(f.box[0] + f.box[2]) / 2 for f in left}
            pick = min if rule.match == "leftmost" else max
            return [pick(left, key=lambda f: centre[f.id])]
        return [f for f in left if self.performer_of(f.id) == rule.performer][:1]

    def _pick_largest(self, left: Sequence[Face]) -> Face:
        def area(f: Face) -> float:
            return float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))

        best = max(left, key=area)
        held = next((f for f in left if f.id == self._largest), None)
        if held is not None and area(held) * (1.0 + self.config.largest_margin) >= area(best):
            best = held
        self._largest = best.id
        return best

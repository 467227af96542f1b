"""Who gets swapped (issue 22): the ``targets`` rules, the selector that applies them and re-identifies performers,
the performer store — units with a fake recogniser, then dlib's recogniser on the shared clips."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engines.errors import InputError
from engines.identity.descriptor import DESCRIPTOR_DIM, descriptor_distance
from engines.identity.performers import (
    MAX_DESCRIPTORS,
    Performer,
    PerformerSource,
    PerformerStore,
    check_performer_name,
    select_descriptors,
)
from engines.identity.targets import ReidConfig, TargetSelector
from engines.settings import ProcessSettings, TargetRule, apply_patch, parse_targets

# ------------------------------------------------------------------------------------------ the setting


def test_targets_setting_parses_rules_in_order() -> None:
    settings = apply_patch(
        ProcessSettings(),
        {"targets": [{"match": "alice", "identity": "bob"}, {"match": "id:3"}, {"match": "largest", "identity": "x"}]},
    )
    assert settings.targets == (TargetRule("alice", "bob"), TargetRule("id:3", None), TargetRule("largest", "x"))
    assert [r.performer for r in settings.targets] == ["alice", None, None]
    assert settings.targets[1].face_id == 3
    assert settings.target_identities == ("bob", "x")
    assert apply_patch(settings, {"targets": None}).targets == ()
    assert apply_patch(settings, {"targets": []}).targets == ()


@pytest.mark.parametrize(
    "value, message",
    [
        ("alice", "must be a list of rules"),
        ([{"identity": "bob"}], "targets[0] needs 'match'"),
        ([{"match": "alice", "who": 1}], "unknown setting 'targets[0].who'"),
        ([{"match": "id:0"}], "a face id is 'id:' and a number from 1"),
        ([{"match": "id:x"}], "a face id is 'id:' and a number from 1"),
        ([{"match": "Bad/Name"}], "targets[0].match"),
        ([{"match": "alice", "identity": 3}], "targets[0].identity must be"),
        ([{"match": "alice"}, {"match": "alice", "identity": "b"}], "targets[1] matches 'alice' again"),
        ([{"match": "any"}, {"match": "alice"}], "the rules after it never apply"),
        ([{"match": f"id:{i + 1}"} for i in range(17)], "at most 16 target rules"),
    ],
)
def test_bad_targets_are_refused_naming_the_rule(value: object, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_targets(value)


def test_a_performer_cannot_be_named_like_a_position() -> None:
    with pytest.raises(InputError, match="target rules use it for a position"):
        check_performer_name("largest")
    assert check_performer_name("lead-actor") == "lead-actor"


# ------------------------------------------------------------------------------------------ the selector


@dataclass(frozen=True)
class FakeFace:
    id: int
    x: float
    """Left edge; faces are 100 px squares, or ``size``."""
    age: int = 5
    size: float = 100.0
    who: int = 0
    """Which fake person it is: the fake recogniser's descriptor."""
    pose_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def box(self) -> np.ndarray:
        return np.array([self.x, 100.0, self.x + self.size, 100.0 + self.size])

    @property
    def landmarks(self) -> np.ndarray:
        return np.full((468, 3), float(self.who), np.float32)


def _person(who: int) -> np.ndarray:
    v = np.zeros(DESCRIPTOR_DIM, np.float32)
    v[who] = 1.0
    return v


class FakeRecogniser:
    """Describes a fake face as its person's unit vector (distance 0 to itself, 1.41 to anyone else)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, image: np.ndarray, landmarks: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += len(landmarks)
        return np.stack([_person(int(lm[0, 0])) for lm in landmarks])


def _performer(name: str, who: int) -> Performer:
    return Performer(name, "now", "sha", _person(who)[None], (), 1, 0)


IMAGE = np.zeros((480, 640, 3), np.uint8)


def test_no_rules_every_face_gets_the_streams_identity() -> None:
    selector = TargetSelector(FakeRecogniser())
    out = selector.select(IMAGE, [FakeFace(1, 0), FakeFace(2, 300)], (), {}, "bob")
    assert {k: v.identity for k, v in out.items()} == {1: "bob", 2: "bob"}


def test_position_and_id_rules_take_one_face_each_and_leave_the_rest() -> None:
    selector = TargetSelector(None)
    faces = [FakeFace(1, 0), FakeFace(2, 300, size=150), FakeFace(3, 500)]
    rules = parse_targets([{"match": "largest", "identity": "a"}, {"match": "leftmost", "identity": "b"}])
    out = selector.select(IMAGE, faces, rules, {}, None)
    assert {k: (v.identity, v.rule) for k, v in out.items()} == {1: ("b", 1), 2: ("a", 0), 3: (None, None)}
    rules = parse_targets([{"match": "id:3", "identity": None}, {"match": "any", "identity": "c"}])
    out = selector.select(IMAGE, faces, rules, {}, None)
    assert {k: v.identity for k, v in out.items()} == {1: "c", 2: "c", 3: None}
    assert out[3].rule == 0  # taken by the "leave alone" rule, not by 'any'


def test_largest_does_not_flicker_between_faces_of_nearly_the_same_size() -> None:
    selector = TargetSelector(None)
    rules = parse_targets([{"match": "largest", "identity": "a"}])
    assert selector.select(IMAGE, [FakeFace(1, 0, size=100), FakeFace(2, 300, size=98)], rules, {}, None)[1].identity
    out = selector.select(IMAGE, [FakeFace(1, 0, size=100), FakeFace(2, 300, size=104)], rules, {}, None)
    assert out[1].identity == "a" and out[2].identity is None  # 4% larger is within the margin
    out = selector.select(IMAGE, [FakeFace(1, 0, size=100), FakeFace(2, 300, size=130)], rules, {}, None)
    assert out[2].identity == "a" and out[1].identity is None


def test_performers_are_found_by_face_and_keep_their_identity_when_they_swap_places() -> None:
    recogniser = FakeRecogniser()
    selector = TargetSelector(recogniser, ReidConfig(recheck_every=1000))
    performers = {"ann": _performer("ann", 1), "ben": _performer("ben", 2)}
    rules = parse_targets([{"match": "ann", "identity": "x"}, {"match": "ben", "identity": "y"}])
    for _ in range(30):
        out = selector.select(IMAGE, [FakeFace(1, 0, who=1), FakeFace(2, 300, who=2)], rules, performers, None)
        assert out[1].identity == "x" and out[2].identity == "y"
        assert out[1].performer == "ann" and out[1].distance == 0.0
    assert recogniser.calls == 2  # once per new track, not per frame
    # the two leave, and come back on the other sides under new track ids: each gets their own identity back
    selector.select(IMAGE, [], rules, performers, None)
    out = selector.select(IMAGE, [FakeFace(7, 0, who=2), FakeFace(8, 300, who=1)], rules, performers, None)
    assert out[7].identity == "y" and out[8].identity == "x"


def test_a_stranger_is_left_alone_and_rechecked_while_young_then_rarely() -> None:
    recogniser = FakeRecogniser()
    cfg = ReidConfig(retry_every=3, retry_frames=45, recheck_every=150)
    selector = TargetSelector(recogniser, cfg)
    rules = parse_targets([{"match": "ann", "identity": "x"}])
    for _ in range(300):
        out = selector.select(IMAGE, [FakeFace(1, 0, who=5)], rules, {"ann": _performer("ann", 1)}, None)
        assert out[1].identity is None and out[1].performer is None
    assert 15 <= recogniser.calls <= 19  # every 3rd frame for 45 frames, then every 150


def test_a_track_restarted_under_an_old_id_is_recognised_again() -> None:
    """The tracker can reuse the id of a face lost a moment ago for whoever appears there: never trusted."""
    selector = TargetSelector(FakeRecogniser())
    performers = {"ann": _performer("ann", 1)}
    rules = parse_targets([{"match": "ann", "identity": "x"}])
    for age in range(5, 10):
        assert selector.select(IMAGE, [FakeFace(1, 0, age=age, who=1)], rules, performers, None)[1].identity == "x"
    out = selector.select(IMAGE, [FakeFace(1, 0, age=0, who=4)], rules, performers, None)
    assert out[1].identity is None


def test_one_performer_goes_to_the_nearer_of_two_look_alikes() -> None:
    def describe(image: np.ndarray, landmarks: Sequence[np.ndarray]) -> np.ndarray:
        out = []
        for lm in landmarks:
            v = _person(1) + (0.1 if lm[0, 0] == 1 else 0.3) * _person(9)
            out.append(v / np.linalg.norm(v))
        return np.stack(out)

    selector = TargetSelector(describe)
    faces = [FakeFace(1, 0, who=1), FakeFace(2, 300, who=2)]
    out = selector.select(
        IMAGE, faces, parse_targets([{"match": "ann", "identity": "x"}]), {"ann": _performer("ann", 1)}, None
    )
    assert out[1].identity == "x" and out[2].identity is None


def test_faces_that_overlapped_are_recognised_again_once_apart() -> None:
    recogniser = FakeRecogniser()
    selector = TargetSelector(recogniser, ReidConfig(recheck_every=1000))
    performers = {"ann": _performer("ann", 1)}
    rules = parse_targets([{"match": "ann", "identity": "x"}])
    selector.select(IMAGE, [FakeFace(1, 0, who=1), FakeFace(2, 300, who=2)], rules, performers, None)
    calls = recogniser.calls
    selector.select(IMAGE, [FakeFace(1, 0, who=1), FakeFace(2, 50, who=2)], rules, performers, None)  # crossing
    assert recogniser.calls == calls  # not described while overlapping
    # apart again, and the mesh of track 1 now sits on the other person: not ann any more
    out = selector.select(IMAGE, [FakeFace(1, 0, who=2), FakeFace(2, 300, who=1)], rules, performers, None)
    assert out[1].identity is None and out[2].identity == "x"


# ------------------------------------------------------------------------------------------ the store


def test_enrollment_leaves_out_someone_else_and_thins_repeats() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=DESCRIPTOR_DIM)
    base /= np.linalg.norm(base)
    own = base + rng.normal(scale=0.02, size=(60, DESCRIPTOR_DIM))
    other = rng.normal(size=(5, DESCRIPTOR_DIM))
    other /= np.linalg.norm(other, axis=1, keepdims=True)
    kept, outliers = select_descriptors(np.concatenate([own, other]).astype(np.float32))
    assert outliers == 5 and kept.shape == (MAX_DESCRIPTORS, DESCRIPTOR_DIM)
    assert descriptor_distance(kept, base[None]).max() < 0.5


def test_performer_store_round_trip_and_errors(tmp_path: Path) -> None:
    store = PerformerStore(tmp_path / "performers")
    d = np.stack([_person(1), _person(1) * 0.99 + _person(2) * 0.01])
    store.save("ann", d, [PerformerSource("clip.mp4", "ab" * 32, 2)], "sha")
    ann = store.load("ann")
    assert ann.descriptors.shape[1] == DESCRIPTOR_DIM and ann.faces_used == 2 and ann.sources[0].faces == 2
    assert [p.name for p in store.list()] == ["ann"]
    with pytest.raises(InputError, match="already exists"):
        store.save("ann", d, [], "sha")
    with pytest.raises(InputError, match="no performer named 'bob' \\(enrolled: ann\\)"):
        store.load("bob")
    (tmp_path / "performers" / "ann" / "performer.json").write_text(json.dumps({"format": "nope"}))
    with pytest.raises(InputError, match="performer 'ann' is damaged"):
        store.load("ann")
    assert store.list() == []  # a damaged performer is left out of the list, not fatal
    store.remove("ann")
    with pytest.raises(InputError, match="no performer named 'ann'"):
        store.remove("ann")


# ------------------------------------------------------------------------------------------ real faces


@pytest.fixture(scope="module")
def clip_descriptors(models_dir: Path, clips: Path) -> dict[str, np.ndarray]:
    """dlib descriptors of the largest face every 40th frame of three shared clips (two women, a man)."""
    from engines.face.detect import FaceDetector
    from engines.face.landmarks import FaceMesh
    from engines.face.tracker import FaceTracker
    from engines.identity.descriptor import FaceDescriber
    from engines.runtime import load_model, models
    from streamer.record.media import VideoReader

    tracker = FaceTracker(
        FaceDetector(load_model(models.resolve("yunet", models_dir))),
        FaceMesh(load_model(models.resolve("facemesh", models_dir))),
    )
    describer = FaceDescriber(models.resolve("face_descriptor", models_dir))
    out: dict[str, np.ndarray] = {}
    for clip in ("d3", "d10", "d13"):
        tracker.reset()
        found = []
        with VideoReader(clips / f"{clip}.mp4") as reader:
            for i, frame in enumerate(reader.frames()):
                faces = tracker.update(frame.image, frame.time_s)
                if i % 40 == 0 and faces:
                    found.append(describer.describe(frame.image, faces[0].landmarks))
                if i >= 200:
                    break
        out[clip] = np.stack(found)
    return out


def test_dlib_tells_the_shared_clips_people_apart_at_the_threshold(clip_descriptors: dict[str, np.ndarray]) -> None:
    """Enrolled from a clip's first three described frames, the person is matched in its last three — the mean of
    their descriptors (what a track holds) within the threshold, each frame within the drop threshold — and
    nobody else is, by any single frame (selection compares with the nearest enrollment descriptor)."""
    cfg = ReidConfig()
    enrolled = {clip: select_descriptors(d[:3])[0] for clip, d in clip_descriptors.items()}
    for clip, d in clip_descriptors.items():
        assert d.shape == (6, DESCRIPTOR_DIM)
        for other, refs in enrolled.items():
            nearest = descriptor_distance(d[3:], refs).min(axis=1)
            mean = float(descriptor_distance(d[3:].mean(axis=0), refs).min())
            if other == clip:
                assert mean <= cfg.threshold and nearest.max() <= cfg.drop_threshold, (clip, mean, nearest)
            else:
                assert nearest.min() > cfg.threshold and mean > cfg.threshold, (clip, other, nearest)

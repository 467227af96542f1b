"""Eyeglasses (issue 21): found on d13's actor and kept in front of the swap; never found on a face without them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from benchmarks.artifacts import JUDGED, REGIONS, STATS, ArtifactMeter, artifact_report, region_map, region_stats
from benchmarks.glasses_kept import ACCEPT_KEPT_FRAMES, GlassesMeter, GlassesReport
from engines.errors import InputError
from engines.face.glasses import GlassesFinder
from engines.face.tracker import FaceTracker
from engines.identity.cleanup import CleanupConfig
from engines.identity.enroll import EnrollConfig
from engines.identity.store import IdentityStore
from engines.processor import FaceProcessor
from engines.settings import ProcessSettings, apply_patch
from tests.face_helpers import clip_frames

FRAMES = 30
"""Enough for the decision (6 looks, one every 2 frames) and 19 frames judged after it."""


@dataclass
class Run:
    report: GlassesReport
    glasses: dict[int, bool]
    face_list: list[dict[str, object]]
    artifacts: ArtifactMeter
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]]
    """Every 5th frame after the glasses' decision: input, output, the input's mesh."""


def _swap(frames: list[tuple[np.ndarray, float]], models_dir: Path, store: IdentityStore, keep: bool) -> Run:
    processor = FaceProcessor.from_models(models_dir, identities=store)
    settings = ProcessSettings(identity="s1", keep_glasses=keep)
    meter, artifacts = GlassesMeter(), ArtifactMeter()
    samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    result = None
    for image, t in frames:
        result = processor.process(image, t, settings)
        assert result.failed_stage is None, result.error
        face = max(result.faces, key=lambda f: f.box[2] - f.box[0]) if result.faces else None
        meter.add(image, result.image, None if face is None else face.landmarks)
        if face is not None:
            artifacts.add(image, result.image, face.landmarks)
            if len(artifacts.frames) > 10 and len(artifacts.frames) % 5 == 0:
                samples.append((image, result.image, face.landmarks))
    assert result is not None
    return Run(meter.report(), result.glasses, result.face_list(), artifacts, samples)


@pytest.fixture(scope="module")
def d13(clips: Path) -> list[tuple[np.ndarray, float]]:
    return clip_frames(clips / "d13.mp4", FRAMES)


@pytest.fixture(scope="module")
def kept(d13, models_dir: Path, store: IdentityStore) -> Run:  # type: ignore[no-untyped-def]
    return _swap(d13, models_dir, store, keep=True)


@pytest.fixture(scope="module")
def painted(d13, models_dir: Path, store: IdentityStore) -> Run:  # type: ignore[no-untyped-def]
    return _swap(d13, models_dir, store, keep=False)


def test_d13_keeps_its_glasses_under_the_swap(kept: Run) -> None:
    report = kept.report
    assert report.detected >= FRAMES - 12  # found after the first few looks, and held
    assert report.kept_frames >= ACCEPT_KEPT_FRAMES, report


def test_without_keep_glasses_the_swap_paints_them_over(painted: Run) -> None:
    """The measure can fail: with the option off the frame's lines are gone in (nearly) every frame."""
    assert painted.report.detected >= FRAMES - 12
    assert painted.report.kept_frames <= 0.2, painted.report


def test_stats_say_the_face_wears_glasses(kept: Run, painted: Run) -> None:
    for run in (kept, painted):  # detected whether or not they are kept
        assert list(run.glasses.values()) == [True]
        assert [f["glasses"] for f in run.face_list] == [True]


@pytest.fixture(scope="module")
def kept_fringe_painted(d13, tmp_path_factory: pytest.TempPathFactory, faces: Path, models_dir: Path) -> Run:  # type: ignore[no-untyped-def]
    """``kept`` with s1.jpg's fringe painted (``CleanupConfig(fringe=False)``), as when her lashes were found: left
    out (the default), the actor's brows and lids show above her eyes and her lash line reads within the bound."""
    store = IdentityStore(
        tmp_path_factory.mktemp("painted") / "identities",
        models_dir,
        config=EnrollConfig(cleanup=CleanupConfig(fringe=False)),
    )
    store.enroll("s1", [faces / "s1.jpg"], face="largest")
    return _swap(d13, models_dir, store, keep=True)


def test_the_artifact_measure_does_not_take_s1s_lashes_for_a_defect(kept_fringe_painted: Run) -> None:
    """d13 x s1 (her fringe painted) read 0% of frames within the artifact bound (benchmarks/artifacts.py):
    every frame's worst region was an eye ring's darkest tenth, about 20 units from the actor's. Those pixels
    are s1's lash line and eyeliner (her photo's own rings read 17-40 units below her face's median, the
    actor's 12), not the kept glasses (painted over, it read worse). The eye rings' darkest tenth is no longer
    judged (``JUDGED``); the rest of the measure is unchanged. On these 30 frames 90% are now within the bound
    (the others: the upper lip, where the actor has a moustache and s1 none, and the first frames, before the
    glasses are found); the statistic left out is still beyond the bound in every frame looked at."""
    kept = kept_fringe_painted
    report = artifact_report(kept.artifacts)
    assert report.within >= 0.8, report
    eyes = [REGIONS.index("right eye"), REGIONS.index("left eye")]
    assert not JUDGED[eyes, STATS.index("dark")].any() and JUDGED.sum() == JUDGED.size - 2
    raw = []  # the eye rings' darkest tenth, output against input, as it was judged before
    for image_in, image_out, lm in kept.samples:
        regions = region_map(lm, image_in.shape)
        s_in, s_out = region_stats(image_in, regions), region_stats(image_out, regions)
        raw.append(float(np.max(np.abs(s_out[eyes, 0] - s_in[eyes, 0]))))
    assert len(raw) >= 3 and min(raw) > report.bound, (raw, report.bound)


@pytest.mark.parametrize("clip", ["d3.mp4", "Obama_speaking.mp4"])
def test_no_glasses_found_on_a_face_without_them(clip: str, clips: Path, tracker: FaceTracker) -> None:
    finder = GlassesFinder()
    scores = []
    for image, t in clip_frames(clips / clip, 40):
        for face in tracker.update(image, t):
            found = finder.update(image, face.id, face.landmarks)
            assert not found.present and found.keep(image, _whole(image)) is None
            scores.append(found.score)
    assert len(scores) >= 30
    assert np.nanmax(scores) < finder.config.off  # well under even the level that would lose glasses


def _whole(image: np.ndarray):  # type: ignore[no-untyped-def]
    from engines.swap.raster import Window

    return Window(0, 0, image.shape[1], image.shape[0])


def test_keep_glasses_is_a_setting() -> None:
    assert ProcessSettings().keep_glasses
    assert not apply_patch(ProcessSettings(), {"keep_glasses": False}).keep_glasses
    with pytest.raises(InputError, match="keep_glasses must be true or false"):
        apply_patch(ProcessSettings(), {"keep_glasses": "no"})


def test_torch_stages_keep_the_same_glasses(d13, models_dir: Path, store: IdentityStore) -> None:  # type: ignore[no-untyped-def]
    """The glasses go back over the face through the host on the torch path too (its box downloaded and uploaded):
    the same frame as numpy's, to the levels the torch stages are held to."""
    from engines.compose.watermark import WatermarkConfig
    from engines.face.glasses import GlassesConfig
    from engines.processor import ProcessorConfig

    config = ProcessorConfig(watermark=WatermarkConfig(enabled=False), glasses=GlassesConfig(min_looks=1))
    outputs = []
    for stages in ("numpy", "torch"):
        processor = FaceProcessor.from_models(models_dir, dataclasses.replace(config, stages=stages), store)
        for image, t in d13[:2]:
            result = processor.process(image, t, ProcessSettings(identity="s1"))
            assert result.failed_stage is None, result.error
        assert list(result.glasses.values()) == [True]
        outputs.append(result.image.astype(np.int16))
    diff = np.abs(outputs[0] - outputs[1]).max(axis=-1)
    assert diff.max() <= 32 and (diff <= 2).mean() >= 0.998, (diff.max(), (diff <= 2).mean())


def test_process_stats_count_the_frames_each_face_wears_glasses(
    d13,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    models_dir: Path,
    store: IdentityStore,
) -> None:
    import cv2

    from engines.compose.watermark import WatermarkConfig
    from engines.face.glasses import GlassesConfig
    from engines.processor import ProcessorConfig
    from streamer.record.batch import ProcessJob, run_process

    clip = tmp_path / "d13-12.mp4"
    h, w = d13[0][0].shape[:2]
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, (w, h))
    for image, _ in d13[:12]:
        writer.write(image)
    writer.release()
    config = ProcessorConfig(watermark=WatermarkConfig(enabled=False), glasses=GlassesConfig(min_looks=1))
    processor = FaceProcessor.from_models(models_dir, config, store)
    job = ProcessJob(clip, tmp_path / "out.mp4", ProcessSettings(identity="s1"), progress=False)
    stats = run_process(job, processor)
    assert stats["frames"] == 12
    assert list(stats["glasses_frames"].values()) == [12]


def test_no_lid_lines_kept_under_the_eyes(d13, tracker: FaceTracker) -> None:  # type: ignore[no-untyped-def]
    """The band is cut under each eye (``GlassesConfig.under_eye``): d13's lower-lid crease and eye-bag line,
    laid back as a dark line inside the lens without the cut, are mostly gone, and the rims are all still kept."""
    import cv2

    from engines.face.glasses import GlassesConfig, grid_size, under_eyes

    configs = {"cut": GlassesConfig(), "uncut": GlassesConfig(under_eye=0.0)}
    finders = {name: GlassesFinder(config) for name, config in configs.items()}
    under = {name: 0.0 for name in configs}
    total = {name: 0.0 for name in configs}
    for image, t in d13:
        faces = tracker.update(image, t)
        assert len(faces) == 1
        face = faces[0]
        for name, finder in finders.items():
            found = finder.update(image, face.id, face.landmarks)
            keep = found.keep(image, _whole(image), finder.config)
            if keep is None or found.grid_to_frame is None:
                continue
            h, w = grid_size(finder.config.px_per_unit)
            below = round(configs["cut"].under_eye * finder.config.px_per_unit)
            zone = under_eyes(face.landmarks, found.grid_to_frame, (h, w), finder.config.feature_grow_px, below)
            size = (image.shape[1], image.shape[0])
            in_frame = cv2.warpAffine(zone.astype(np.uint8), found.grid_to_frame, size, flags=cv2.INTER_NEAREST)
            levels = keep.levels()
            under[name] += float(levels[in_frame[keep.box.slices] > 0].sum())
            total[name] += float(levels.sum())
    assert under["uncut"] > 0.0  # d13 has lines there for the cut to take out
    assert under["cut"] < 0.5 * under["uncut"]
    assert total["cut"] > 0.97 * total["uncut"]

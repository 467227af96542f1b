"""The frame path as stages (``engines.stages``), through a real FaceProcessor on shared material: the order the
stages run in, per face; each stage's time under its own ``stage_ms`` key; a failure named after the stage that
raised; per-face state dropped when a face leaves."""

from __future__ import annotations

import time
from collections.abc import Set
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.compose.watermark import WatermarkConfig
from engines.identity.store import IdentityStore
from engines.processor import FaceProcessor, ProcessorConfig
from engines.settings import ProcessSettings, RelightTarget
from engines.stages.base import FaceContext, FrameContext
from tests.face_helpers import clip_frames

SIDE = RelightTarget(mode="direction", direction=(1.0, 0.0, 0.3))
"""A chosen target light: every face is relit (also the actor's own), the person around it too."""


@pytest.fixture(scope="module")
def d3(clips: Path) -> list[tuple[np.ndarray, float]]:
    return clip_frames(clips / "d3.mp4", 4)


@pytest.fixture(scope="module")
def two(faces: Path) -> np.ndarray:
    """A still with two people side by side (and a third face in the background)."""
    image = cv2.imread(str(faces / "obama_and_biden.jpg"))
    assert image is not None
    return image


def _processor(models_dir: Path, store: IdentityStore | None = None, watermark: bool = True) -> FaceProcessor:
    config = ProcessorConfig(watermark=WatermarkConfig(enabled=watermark))
    return FaceProcessor.from_models(models_dir, config, store)


def _record_runs(proc: FaceProcessor, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int | None]]:
    """Every stage's ``run`` as it happens: (stage name, face id or None for a frame stage)."""
    calls: list[tuple[str, int | None]] = []
    for stage in proc.stages:
        run = stage.run

        def spy(ctx: FrameContext | FaceContext, _run=run, _name=stage.name) -> None:  # type: ignore[no-untyped-def]
            calls.append((_name, ctx.face.id if isinstance(ctx, FaceContext) else None))
            _run(ctx)

        monkeypatch.setattr(stage, "run", spy)
    return calls


def test_the_stages_run_in_a_fixed_visible_order_face_by_face(  # type: ignore[no-untyped-def]
    models_dir: Path, store: IdentityStore, two, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = _processor(models_dir, store)
    names = [s.name for s in proc.stages]
    assert names == ["track", "targets", "swap", "mask", "relight", "blend", "overlay", "watermark"]
    assert [s.name for s in proc.face_stages] == ["swap", "mask", "relight", "blend"]
    calls = _record_runs(proc, monkeypatch)
    result = proc.process(two, 0.0, ProcessSettings(identity="s1", relight_target=SIDE))
    assert result.failed_stage is None and len(result.faces) >= 2
    ids = [f.id for f in result.faces]
    per_face = [("swap", i) for i in ids]
    expected = [("track", None), ("targets", None)]
    for i in ids:  # each face through all its stages before the next face starts
        expected += [(name, i) for name in ("swap", "mask", "relight", "blend")]
    expected += [("overlay", None), ("watermark", None)]
    assert calls == expected
    assert [c for c in calls if c[0] == "swap"] == per_face


def test_a_face_with_nothing_to_do_skips_the_face_stages(  # type: ignore[no-untyped-def]
    models_dir: Path, d3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No identity and the light already there: no face stage runs, and no face stage's time is reported (the
    targets still choose: the stream swaps, to nobody)."""
    proc = _processor(models_dir)
    calls = _record_runs(proc, monkeypatch)
    image, t = d3[0]
    result = proc.process(image, t, ProcessSettings())
    assert result.faces and [name for name, _ in calls] == ["track", "targets", "overlay", "watermark"]
    assert not {"swap", "relight", "blend"} & set(result.stage_ms)
    assert "watermark" in result.stage_ms and "landmarks" in result.stage_ms


def test_each_stage_times_its_own_work_under_the_keys_the_stats_report(  # type: ignore[no-untyped-def]
    models_dir: Path, store: IdentityStore, d3, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = _processor(models_dir, store)
    image, t = d3[0]
    first = proc.process(image, t, ProcessSettings(identity="s1"))
    # The mask's time is the first half of the blend's: no new key.
    assert {"targets", "swap", "relight", "blend", "watermark", "landmarks"} <= set(first.stage_ms)
    assert "mask" not in first.stage_ms and "track" not in first.stage_ms
    # A slow relight shows in the relight's time and nowhere else.
    measure = proc.relight.relighter.measure_skin

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.05)
        return measure(*args, **kwargs)

    monkeypatch.setattr(proc.relight.relighter, "measure_skin", slow)
    image, t = d3[1]
    result = proc.process(image, t, ProcessSettings(identity="s1"))
    assert result.failed_stage is None and result.stage_ms["relight"] >= 50.0
    monkeypatch.undo()
    # The same for the mask, reported under blend.
    import engines.stages.mask as mask_module

    alpha = mask_module.face_alpha_small

    def slow_alpha(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.05)
        return alpha(*args, **kwargs)

    monkeypatch.setattr(mask_module, "face_alpha_small", slow_alpha)
    image, t = d3[2]
    result = proc.process(image, t, ProcessSettings(identity="s1"))
    assert result.failed_stage is None and result.stage_ms["blend"] >= 50.0


def test_a_failure_is_named_after_the_stage_that_raised(  # type: ignore[no-untyped-def]
    models_dir: Path, store: IdentityStore, d3, two, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = _processor(models_dir, store, watermark=False)
    settings = ProcessSettings(identity="s1")

    def boom(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    import engines.stages.mask as mask_module

    for target, name, stage in (
        (proc.relight.relighter, "measure_skin", "relight"),
        (mask_module, "face_alpha_small", "blend"),  # the mask is timed and named as the blend's first half
        (proc.blend.gains, "smooth", "blend"),
        (proc.swap.swapper, "texture_lookup", "swap"),  # the identity's texture, drawn or looked up by the relight
    ):
        with monkeypatch.context() as m:
            m.setattr(target, name, boom)
            image, t = d3[0]
            result = proc.process(image, t, settings)
        assert result.failed_stage == stage and result.image is image and result.error == "RuntimeError: boom"
    # The second face's swap failing is the swap's failure too (not the stage the first face ended in).
    geometry = proc.swap.swapper.geometry
    faces = proc.process(two, 0.0, settings).faces
    assert len(faces) >= 2
    second = faces[1].id

    def second_fails(image, landmarks, face_id, *args, **kwargs):  # type: ignore[no-untyped-def]
        if face_id == second:
            raise RuntimeError("second face")
        return geometry(image, landmarks, face_id, *args, **kwargs)

    monkeypatch.setattr(proc.swap.swapper, "geometry", second_fails)
    result = proc.process(two, 0.04, settings)
    assert result.failed_stage == "swap" and result.error == "RuntimeError: second face"
    assert proc.frames_failed == 5


def test_per_face_state_is_forgotten_when_the_face_leaves(  # type: ignore[no-untyped-def]
    models_dir: Path, store: IdentityStore, two, monkeypatch: pytest.MonkeyPatch
) -> None:
    proc = _processor(models_dir, store)
    settings = ProcessSettings(identity="s1", relight_target=SIDE)
    forgotten: dict[str, list[set[int]]] = {}
    for stage in proc.stages:
        forget = stage.forget

        def spy(active: Set[int], _forget=forget, _name=stage.name) -> None:  # type: ignore[no-untyped-def]
            forgotten.setdefault(_name, []).append(set(active))
            _forget(active)

        monkeypatch.setattr(stage, "forget", spy)
    result = None
    for k in range(3):
        result = proc.process(two, k / 30, settings)
    assert result is not None and len(result.faces) >= 2
    ids = {f.id for f in result.faces}
    assert {i for i in ids if i in proc.blend.gains} == ids  # the colour match kept gains per face
    assert len(proc.relight.relighter.current()) == len(ids)  # and the relight a light per face
    # Cover the leftmost face: it leaves, the others stay, and every stage is told which are left.
    left = min(result.faces, key=lambda f: f.box[0])
    covered = two.copy()
    x1, y1, x2, y2 = (int(v) for v in left.box)
    pad = (x2 - x1) // 2
    covered[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad] = 0
    for k in range(3, 12):
        result = proc.process(covered, k / 30, settings)
        if left.id not in {f.id for f in result.faces}:
            break
    assert result.failed_stage is None
    remaining = {f.id for f in result.faces}
    assert left.id not in remaining and remaining and remaining <= ids
    assert set(forgotten) == {"track", "targets", "swap", "mask", "relight", "blend", "overlay", "watermark"}
    assert all(calls[-1] == remaining for calls in forgotten.values())
    assert left.id not in proc.blend.gains and all(i in proc.blend.gains for i in remaining)
    assert len(proc.relight.relighter.current()) == len(remaining)
    # An empty frame: every face leaves.
    empty = proc.process(np.zeros_like(two), 1.0, settings)
    assert empty.faces == () and all(calls[-1] == set() for calls in forgotten.values())
    assert proc.relight.relighter.current() == [] and not any(i in proc.blend.gains for i in ids)

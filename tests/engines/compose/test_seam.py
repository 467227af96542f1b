"""The seam correction: the face's low frequencies matched to the actor's near the outline, nothing else."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engines.compose.blend import outline_feather
from engines.compose.seam import SeamConfig, apply_field, seam_field
from engines.light.sh import linear_to_srgb, srgb_to_linear
from engines.resample import shrink
from engines.swap.mesh import FaceGeometry, MeshSwapper
from tests.face_helpers import clip_frames, photo_mesh, swapped_faces


def _face(detector, mesh, faces: Path) -> tuple[FaceGeometry, np.ndarray]:  # type: ignore[no-untyped-def]
    """A real face's geometry and its pixels at working size (the actor)."""
    image, lm = photo_mesh(detector, mesh, faces / "roop_source.jpg")
    swapper = MeshSwapper()
    geometry = swapper.geometry(image, lm)
    assert geometry is not None
    return geometry, geometry.to_work(swapper.actor_window(image, geometry))


def _bands(geometry: FaceGeometry) -> tuple[np.ndarray, np.ndarray, float]:
    """(distance inside the outline in eye-corner distances, the upper half of the window) at geometry size."""
    hs, ws = geometry.small_size
    unit = geometry.face_scale_px * ws / geometry.window.width
    covered = (geometry.labels_small >= 0).astype(np.uint8)
    inside = cv2.distanceTransform(np.pad(covered, 1), cv2.DIST_L2, 3)[1:-1, 1:-1] / unit
    upper = np.zeros((hs, ws), bool)
    upper[: hs // 2] = True
    return inside, upper & (covered > 0), unit


def _luma(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64)


def test_a_darker_forehead_takes_the_actors_tone_at_the_outline_and_the_middle_is_untouched(  # type: ignore[no-untyped-def]
    detector, mesh, faces: Path
) -> None:
    """The face is the actor's own, darkened smoothly toward the top (a photo's darker, warmer forehead): at
    the outline's top the correction brings it back to the actor's tone; the middle of the face (its
    features) is exactly the face as it came."""
    geometry, actor = _face(detector, mesh, faces)
    h, w = actor.shape[:2]
    ramp = np.clip(np.linspace(0.55, 1.3, h), 0.0, 1.0)[:, None, None]  # 0.55 at the top, 1 from 60% down
    face = linear_to_srgb(srgb_to_linear(actor / 255.0) * ramp * np.array([0.9, 1.0, 1.05])) * 255 + 0.5
    face = face.astype(np.uint8)
    hs, ws = geometry.small_size
    field = seam_field(face, shrink(actor, (ws, hs)), geometry, outline_feather(geometry))
    assert field is not None
    out = apply_field(face, field)
    inside, upper, _ = _bands(geometry)
    top = upper & (inside < 0.08) & (geometry.labels_small == 0)
    small = {k: _luma(shrink(v, (ws, hs))) for k, v in (("face", face), ("out", out), ("actor", actor))}
    before = np.abs(small["face"] - small["actor"])[top].mean()
    after = np.abs(small["out"] - small["actor"])[top].mean()
    assert before > 10.0 and after < 0.35 * before
    # Beyond the ramp and the reach, nothing changes: the likeness is the face's.
    far = cv2.resize(
        (inside > 0.25 + SeamConfig().reach + 0.05).astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST
    )
    assert far.sum() > 0.1 * far.size
    assert np.array_equal(out[far > 0], face[far > 0])


def test_where_the_photos_coverage_ends_inside_the_outline_the_face_meets_the_actors_tone(  # type: ignore[no-untyped-def]
    detector, mesh, faces: Path
) -> None:
    """A photo's fringe left out of the identity: its coverage is nil from the brows up and the actor's forehead
    shows there. The face (here darker than the actor) takes the actor's tone along that edge, as at the outline;
    without the coverage the same pixels, far from the outline, are left as they came."""
    geometry, actor = _face(detector, mesh, faces)
    face = (linear_to_srgb(srgb_to_linear(actor / 255.0) * 0.6) * 255 + 0.5).astype(np.uint8)
    hs, ws = geometry.small_size
    inside, _, unit = _bands(geometry)
    edge_row = int(0.35 * hs)
    seen = np.ones((hs, ws), np.float32)
    seen[:edge_row] = 0.0
    rows = np.arange(hs)[:, None] * np.ones((1, ws))
    band = (rows >= edge_row) & (rows < edge_row + 0.06 * unit) & (inside > 0.5) & (geometry.labels_small == 0)
    assert band.sum() > 10
    errors = []
    for cover in (seen, None):
        field = seam_field(face, shrink(actor, (ws, hs)), geometry, outline_feather(geometry), seen=cover)
        out = face if field is None else apply_field(face, field)
        errors.append(np.abs(_luma(shrink(out, (ws, hs))) - _luma(shrink(actor, (ws, hs))))[band].mean())
    before = np.abs(_luma(shrink(face, (ws, hs))) - _luma(shrink(actor, (ws, hs))))[band].mean()
    assert before > 10.0 and errors[0] < 0.35 * before
    assert errors[1] == before


def test_where_a_fringe_left_out_ends_at_the_brows_the_skin_under_them_takes_the_actors_tone(  # type: ignore[no-untyped-def]
    detector, mesh, faces: Path
) -> None:
    """A fringe left out of the identity ends at the brows' lower edge: the band from there to the lids is labelled
    a feature (the brows' and lids' band), not skin. Its skin-toned pixels count as skin near that edge, so the face
    (here darker than the actor) takes the actor's tone under the brows instead of meeting the actor's brow bone as
    a step (d10.mp4 x s1.jpg); without the coverage they are left about as they came (the outline's own
    correction reaches them a little)."""
    from engines.face.topology import EYE_OPENING, FEATURE

    geometry, actor = _face(detector, mesh, faces)
    face = (linear_to_srgb(srgb_to_linear(actor / 255.0) * 0.6) * 255 + 0.5).astype(np.uint8)
    hs, ws = geometry.small_size
    labels = geometry.labels_small
    _, _, unit = _bands(geometry)
    edge_row = int(np.nonzero(labels == EYE_OPENING)[0].min() - 0.1 * unit)  # the brows' lower edge, about
    seen = np.ones((hs, ws), np.float32)
    seen[:edge_row] = 0.0
    rows = np.arange(hs)[:, None] * np.ones((1, ws))
    lids = (rows >= edge_row) & (rows < edge_row + 0.08 * unit) & (labels == FEATURE)
    luma = {k: _luma(shrink(v, (ws, hs))) for k, v in (("face", face), ("actor", actor))}
    lids &= np.abs(luma["actor"] - np.median(luma["actor"][labels == 0])) < 30  # skin, not brow or lashes
    assert lids.sum() > 10
    errors = []
    for cover in (seen, None):
        field = seam_field(face, shrink(actor, (ws, hs)), geometry, outline_feather(geometry), seen=cover)
        out = face if field is None else apply_field(face, field)
        errors.append(np.abs(_luma(shrink(out, (ws, hs))) - luma["actor"])[lids].mean())
    before = np.abs(luma["face"] - luma["actor"])[lids].mean()
    # Measured: 34 levels before, 3.4 after (8.2 with the skin-labelled pixels alone), 30 without the coverage.
    assert before > 10.0 and errors[0] < 0.15 * before and errors[1] > 0.5 * before, (before, errors)


def test_the_actors_hair_at_the_outline_does_not_darken_the_face(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    """Where the mesh's top reaches into the actor's hair, the hair is not skin: the face keeps its tone there
    instead of taking the hair's."""
    geometry, face = _face(detector, mesh, faces)
    hs, ws = geometry.small_size
    inside, upper, _ = _bands(geometry)
    hair_small = upper & (inside < 0.1)
    hair = cv2.resize(hair_small.astype(np.uint8), face.shape[1::-1], interpolation=cv2.INTER_NEAREST) > 0
    actor = face.copy()
    actor[hair] = (25, 22, 20)  # dark hair over the forehead's top
    field = seam_field(face, shrink(actor, (ws, hs)), geometry, outline_feather(geometry))
    out = face if field is None else apply_field(face, field)
    assert abs(_luma(out)[hair].mean() - _luma(face)[hair].mean()) < 3.0


def test_off_when_reach_is_zero(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    geometry, face = _face(detector, mesh, faces)
    hs, ws = geometry.small_size
    small = shrink(face, (ws, hs))
    assert seam_field(face, small, geometry, outline_feather(geometry), SeamConfig(reach=0.0)) is None


def test_the_blend_stage_changes_the_swap_near_its_outline_only(  # type: ignore[no-untyped-def]
    tmp_path: Path, faces: Path, clips: Path, models_dir: Path
) -> None:
    """Through the processor on d3 with s1: the seam correction changes the pasted face near the mesh's outline
    (and where s1's fringe, left out, gives way to the actor's forehead) and leaves its middle (around the nose,
    below the eyes) exactly as without it."""
    from engines.compose.blend import BlendConfig
    from engines.compose.watermark import WatermarkConfig
    from engines.face.topology import face_scale_px
    from engines.processor import FaceProcessor, ProcessorConfig
    from engines.settings import ProcessSettings
    from tests.face_helpers import enrolled_store

    store = enrolled_store(tmp_path / "identities", faces, models_dir, ("s1.jpg",))
    frames = clip_frames(clips / "d3.mp4", 3)
    outputs = []
    for seam in (SeamConfig(), SeamConfig(reach=0.0)):
        config = ProcessorConfig(watermark=WatermarkConfig(enabled=False), blend=BlendConfig(seam=seam))
        proc = FaceProcessor.from_models(models_dir, config, store)
        outputs.append([proc.process(image, t, ProcessSettings(identity="s1")) for image, t in frames])
    on, off = outputs[0][-1], outputs[1][-1]
    assert on.faces and off.failed_stage is None and on.failed_stage is None
    lm = on.faces[0].landmarks
    changed = cv2.absdiff(on.image, off.image).max(axis=2) > 3
    assert changed.sum() > 500  # the correction does something on this pair
    yy, xx = np.mgrid[: changed.shape[0], : changed.shape[1]]
    # Below the eyes: above them the face meets the actor's forehead, where s1's fringe is left out (its edge
    # is a seam too, and its tone match reaches a little below the lower lids: 3-4 levels a tenth of the face's
    # scale under them, 2 from 0.15).
    nose = np.hypot(xx - lm[4, 0], yy - lm[4, 1]) < 0.3 * face_scale_px(lm)
    nose &= yy > lm[[145, 374], 1].max() + 0.15 * face_scale_px(lm)
    assert nose.sum() > 100 and not changed[nose].any()


def test_the_compiled_field_equals_numpys_on_shared_clips(clips: Path, detector, mesh, store) -> None:  # type: ignore[no-untyped-def]
    """``seam_field(fused=True)`` (the numpy backend's default: ``engines.fused.seam_weights``, ``seam_gains``) is
    numpy's field within 1e-5 (the same float32 expressions; the logarithm's and exponential's last bits differ:
    measured 2.4e-7), with and without the photos' coverage, on the identity's texture over three frames each of
    d3, d10 and s18 (a skin sample taken or left, or a fade off by a pixel, moves it by 1e-3 or more)."""
    identity = store.load("s1")
    compared = 0
    for clip, swapper, geometry, actor in swapped_faces(clips, detector, mesh, identity):
        rendered = swapper.render(geometry, identity, "texture")
        feather = outline_feather(geometry)
        for seen in (swapper.coverage_small(geometry, identity), None):
            ref = seam_field(rendered, actor, geometry, feather, seen=seen)
            got = seam_field(rendered, actor, geometry, feather, seen=seen, fused=True)
            assert ref is not None and got is not None and got.dtype == np.float32
            assert np.abs(ref - 1.0).max() > 0.01, f"{clip}: the field changes nothing: nothing compared"
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5, err_msg=clip)
            compared += 1
    assert compared == 18

"""The mesh swap: geometry drawn in a face window, the identity rendered onto it, the morph."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.face.topology import (
    EYE_OPENING,
    LEFT_BROW,
    LEFT_EYE,
    LIPS_OUTER,
    MOUTH_OPENING,
    RIGHT_BROW,
    RIGHT_EYE,
    face_scale_px,
    frontalise,
)
from engines.identity.store import IdentityStore
from engines.swap.mesh import _EYE_PAIRS, _LOWER_OUTER_LIP, _MOUTH_PAIRS, FaceGeometry, MeshSwapper, SwapConfig
from tests.face_helpers import clip_frames, enrolled_store, image_mesh, photo_mesh


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, faces: Path, models_dir: Path) -> IdentityStore:
    return enrolled_store(tmp_path_factory.mktemp("ids") / "identities", faces, models_dir, ("obama.jpg", "s1.jpg"))


def test_rendering_an_identity_onto_its_own_photo_gives_the_photo_back(  # type: ignore[no-untyped-def]
    tmp_path: Path, models_dir: Path, detector, mesh, faces: Path
) -> None:
    """Unwrap then render through the same mesh is the identity map: the texture path is consistent (at the
    window's own size: a work size the photo's face fits in). The photo is enrolled without the clean-up, which
    changes the texture on purpose (its grain, highlights and blotchy skin colour)."""
    from engines.identity.enroll import EnrollConfig

    raw = IdentityStore(tmp_path / "ids", models_dir, config=EnrollConfig(cleanup=None))
    raw.enroll("obama", [faces / "obama.jpg"], face="largest")
    image, lm = photo_mesh(detector, mesh, faces / "obama.jpg")
    swapper = MeshSwapper(SwapConfig(work_px=1024))
    geometry = swapper.geometry(image, lm)
    assert geometry is not None
    identity = raw.load("obama")
    rendered = swapper.render(geometry, identity, "texture")
    assert rendered.shape == (geometry.window.height, geometry.window.width, 3) and rendered.dtype == np.uint8
    actor = swapper.actor_window(image, geometry)
    seen = geometry.upsample(swapper.coverage_small(geometry, identity))
    skin = (geometry.labels() == 0) & (seen > 0.5)
    assert skin.mean() > 0.2
    diff = np.abs(rendered.astype(np.int16) - actor.astype(np.int16))[skin]
    assert float(np.median(diff)) < 6.0  # texel blur and the mesh's third pass are all that differ
    # The openings are where the eyes and the mouth are.
    labels = geometry.labels()
    for eye in (RIGHT_EYE, LEFT_EYE):
        cx, cy = lm[list(eye), :2].mean(axis=0)
        assert labels[int(cy) - geometry.window.y0, int(cx) - geometry.window.x0] == EYE_OPENING
    mx, my = lm[[13, 14], :2].mean(axis=0)
    assert labels[int(my) - geometry.window.y0, int(mx) - geometry.window.x0] == MOUTH_OPENING


def test_albedo_render_and_normals(store: IdentityStore, detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    image, lm = photo_mesh(detector, mesh, faces / "s1.jpg")
    swapper = MeshSwapper()
    geometry = swapper.geometry(image, lm)
    assert geometry is not None
    rendered = swapper.render(geometry, store.load("obama"), "albedo")
    assert rendered.dtype == np.float32 and rendered.shape[2] == 3
    skin = geometry.labels() == 0
    assert 0.5 < float(np.median(rendered[skin])) < 2.0  # about 1: the photo's light divided out
    normals = geometry.normals()
    assert normals.shape == rendered.shape[:2] + (3,)
    k = geometry.work_size[1] / geometry.window.width  # work-size arrays: scale window coordinates
    nose = np.round((lm[1, :2] - (geometry.window.x0, geometry.window.y0)) * k).astype(int)
    assert normals[nose[1], nose[0], 2] > 0.7  # camera frame: the nose tip faces the camera (z toward it)


def test_face_half_out_of_frame(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    image, lm = photo_mesh(detector, mesh, faces / "obama.jpg")
    nose_x = int(lm[1, 0])
    cut = np.ascontiguousarray(image[:, nose_x:])  # the left half of the face is outside the frame
    moved = lm.copy()
    moved[:, 0] -= nose_x
    swapper = MeshSwapper()
    geometry = swapper.geometry(cut, moved)
    assert geometry is not None
    w = geometry.window
    assert w.x0 == 0 and w.x0 + w.width <= cut.shape[1] and w.y0 + w.height <= cut.shape[0]
    assert (geometry.labels() >= 0).mean() > 0.4
    # A face entirely outside: nothing to draw.
    gone = lm.copy()
    gone[:, 0] -= 5000
    assert swapper.geometry(image, gone) is None


def test_a_shape_without_an_identity_morphs_as_that_identity_would(  # type: ignore[no-untyped-def]
    store: IdentityStore, detector, mesh, faces: Path
) -> None:
    """A learned model's person's shape (``shape=``, no identity drawn: a neural renderer's) moves the face exactly
    as an identity with that shape does; with no identity and no shape nothing moves."""
    image, lm = photo_mesh(detector, mesh, faces / "s1.jpg")
    identity = store.load("obama")
    by_identity = MeshSwapper().geometry(image, lm, 1, 0.0, identity, 1.0)
    by_shape = MeshSwapper().geometry(image, lm, 1, 0.0, None, 1.0, identity.canonical)
    neither = MeshSwapper().geometry(image, lm, 1, 0.0, None, 1.0)
    assert by_identity is not None and by_shape is not None and neither is not None
    assert by_shape.morph is not None and neither.morph is None
    np.testing.assert_array_equal(by_shape.landmarks, by_identity.landmarks)
    assert np.abs(by_shape.landmarks - lm).max() > 2.0  # pixels: s1's face moved toward Obama's
    np.testing.assert_array_equal(neither.landmarks, lm.astype(np.float32))


def test_morph_moves_the_face_toward_the_identity_and_keeps_the_actors_openings(  # type: ignore[no-untyped-def]
    store: IdentityStore, detector, mesh, faces: Path
) -> None:
    """obama.jpg smiles with teeth: the morph takes his face's and features' shapes (the mouth's width) but
    not the photo's open mouth — every facing pair of lip and lid points keeps the actor's gap."""
    image, lm = photo_mesh(detector, mesh, faces / "s1.jpg")
    identity = store.load("obama")
    swapper = MeshSwapper(SwapConfig(rigid_mouth=False))  # the lips take the identity's shape
    plain = swapper.geometry(image, lm, 1, 0.0, identity, 0.0)
    morphed = swapper.geometry(image, lm, 1, 0.0, identity, 1.0)
    assert plain is not None and morphed is not None and morphed.warp is not None and plain.warp is None
    before = np.abs(frontalise(plain.landmarks) - identity.canonical).mean()
    after = np.abs(frontalise(morphed.landmarks) - identity.canonical).mean()
    assert after < 0.8 * before

    def width(points: np.ndarray) -> float:  # mouth corner to corner over the outer eye corners
        return float(
            np.linalg.norm(points[291, :2] - points[61, :2]) / np.linalg.norm(points[263, :2] - points[33, :2])
        )

    target = width(identity.canonical)
    assert abs(width(morphed.landmarks) - target) < 0.5 * abs(width(plain.landmarks) - target)
    for upper, lower in _MOUTH_PAIRS + _EYE_PAIRS[0] + _EYE_PAIRS[1]:
        gap_plain = plain.landmarks[lower, :2] - plain.landmarks[upper, :2]
        gap_morphed = morphed.landmarks[lower, :2] - morphed.landmarks[upper, :2]
        assert np.linalg.norm(gap_morphed - gap_plain) < 0.5  # pixels
    # Without matching the openings, the photo's smile opens the actor's mouth.
    opened = MeshSwapper(SwapConfig(match_openings=False, rigid_mouth=False)).geometry(image, lm, 1, 0.0, identity, 1.0)
    assert opened is not None
    lip_gap = np.linalg.norm(opened.landmarks[14, :2] - opened.landmarks[13, :2])
    assert lip_gap > np.linalg.norm(plain.landmarks[14, :2] - plain.landmarks[13, :2]) + 3.0
    # With rigid features the eyes and the mouth keep the actor's shapes, moved and scaled as wholes.
    rigid = MeshSwapper(SwapConfig(rigid_features=True)).geometry(image, lm, 1, 0.0, identity, 1.0)
    assert rigid is not None
    for group in (RIGHT_EYE, LEFT_EYE, LIPS_OUTER):
        a = plain.landmarks[list(group), :2]
        b = rigid.landmarks[list(group), :2]
        a0, b0 = a - a.mean(axis=0), b - b.mean(axis=0)
        scale = float(np.sqrt((b0**2).sum() / (a0**2).sum()))
        residual = np.linalg.norm(b0 - scale * a0, axis=1).max()
        assert residual < 0.02 * float(np.ptp(lm[:, 0]))
    # The image warp fades out before the window's edge: no tear in the picture.
    w = morphed.window
    grid_x, grid_y = np.meshgrid(np.arange(w.width), np.arange(w.height))
    shift = np.hypot(morphed.warp[..., 0] - grid_x, morphed.warp[..., 1] - grid_y)
    border = np.concatenate([shift[0], shift[-1], shift[:, 0], shift[:, -1]])
    assert border.max() < 0.5 and shift.max() > 2.0


def _s1_toward_obama(  # type: ignore[no-untyped-def]
    store: IdentityStore, detector, mesh, faces: Path
) -> tuple[FaceGeometry, FaceGeometry]:
    """s1.jpg's face drawn as obama without the morph and with it in full (the morph's warp present)."""
    image, lm = photo_mesh(detector, mesh, faces / "s1.jpg")
    identity = store.load("obama")
    swapper = MeshSwapper()
    plain = swapper.geometry(image, lm, 1, 0.0, identity, 0.0)
    morphed = swapper.geometry(image, lm, 1, 0.0, identity, 1.0)
    assert plain is not None and morphed is not None and morphed.warp is not None
    return plain, morphed


def test_the_morph_leaves_the_top_of_the_forehead_where_the_actor_has_it(  # type: ignore[no-untyped-def]
    store: IdentityStore, detector, mesh, faces: Path
) -> None:
    """The mesh's top outline is a line in the actor's forehead below the hairline, not the face's edge: moved
    to the identity's (obama's forehead on s1's face), the warp dragged the actor's hair over the forehead.
    The top stays to the pixel; the brows still take the identity's place."""
    plain, morphed = _s1_toward_obama(store, detector, mesh, faces)
    top = [10, 338, 109]  # the forehead's top outline, canonical height -1.0
    assert np.abs(morphed.landmarks[top, :2] - plain.landmarks[top, :2]).max() < 0.01
    brows = list(RIGHT_BROW + LEFT_BROW)
    brows_moved = np.linalg.norm(morphed.landmarks[brows, :2] - plain.landmarks[brows, :2], axis=1).mean()
    assert brows_moved > 1.0
    # The image warp there hardly moves the actor's pixels: the hair above stays put.
    w = morphed.window
    for x, y in plain.landmarks[top, :2]:
        i, j = round(y) - w.y0, round(x) - w.x0
        assert np.hypot(morphed.warp[i, j, 0] - j, morphed.warp[i, j, 1] - i) < 0.25 * brows_moved


def test_the_morph_leaves_the_bottom_of_the_chin_where_the_actor_has_it(  # type: ignore[no-untyped-def]
    store: IdentityStore, detector, mesh, faces: Path
) -> None:
    """The mesh's bottom outline is the actor's jaw line, with the actor's under-jaw (the shadow under the chin,
    the neck) just below it: moved to the identity's chin (obama's on s1's face: 15 px), the warp pulled that
    under-jaw into the face, a dark band where the actor's chin was. The chin's bottom stays within a pixel;
    the mouth still takes the identity's place (what it looks like: ``tests/engines/swap/test_realism.py``)."""
    plain, morphed = _s1_toward_obama(store, detector, mesh, faces)
    chin = [152, 148, 377]  # the chin's bottom outline, canonical height 0.95-0.98
    lips = list(LIPS_OUTER)
    lips_moved = np.linalg.norm(morphed.landmarks[lips, :2] - plain.landmarks[lips, :2], axis=1).mean()
    assert lips_moved > 1.0
    assert np.abs(morphed.landmarks[chin, :2] - plain.landmarks[chin, :2]).max() < 1.0  # 15 px before


def test_the_identitys_chin_keeps_its_place_in_the_actors_skin_as_the_mouth_opens_wide(  # type: ignore[no-untyped-def]
    store: IdentityStore, detector, mesh, faces: Path
) -> None:
    """The morph adds a fixed offset, the identity's shape less the actor's average. Opened wide, an actor's lower
    lip comes down toward the chin and squeezes the skin between them; the chin's offset beyond the mouth's, fixed,
    drew the identity's skin from nearer its own lower lip there (a photo's crease under the lip on the actor's
    chin: d10.mp4 x a grey biden.jpg, ``tests/engines/swap/test_realism.py``). It now shrinks with that squeeze
    (``SwapConfig.chin_follows_opening``); the lips go where they went, and at the actor's usual opening nothing
    moves."""
    image, lm = photo_mesh(detector, mesh, faces / "s1.jpg")
    identity = store.load("obama")
    wide = lm.copy()
    lower = [lo for _, lo in _MOUTH_PAIRS] + list(_LOWER_OUTER_LIP)
    wide[lower, 1] += 0.05 * face_scale_px(lm)  # the lower lip comes down, the chin stays
    drawn = {}
    for follows in (False, True):
        swapper = MeshSwapper(SwapConfig(chin_follows_opening=follows))
        at_usual = swapper.geometry(image, lm, 1, 0.0, identity, 1.0)
        opened = swapper.geometry(image, wide, 1, 1 / 30, identity, 1.0)
        assert at_usual is not None and opened is not None
        drawn[follows] = (at_usual.landmarks, opened.landmarks)
    np.testing.assert_array_equal(drawn[True][0], drawn[False][0])
    lips, (top, bottom) = list(LIPS_OUTER), (17, 200)  # the lower lip's outer edge and the chin's top, mid-face
    np.testing.assert_allclose(drawn[True][1][lips], drawn[False][1][lips], atol=1e-3)

    def share(actor: np.ndarray, morphed: np.ndarray) -> float:
        """The drawn skin under the lower lip against the actor's there (heights)."""
        return float((morphed[bottom, 1] - morphed[top, 1]) / (actor[bottom, 1] - actor[top, 1]))

    usual = share(lm, drawn[True][0])
    off, on = share(wide, drawn[False][1]), share(wide, drawn[True][1])
    # Off, the fixed offset is a larger share of the squeezed skin (1.027 -> 1.042: obama's chin sits a little lower
    # under his lips than s1's); on, the share stays as it was (1.027).
    assert off - usual > 0.01, (usual, off)
    assert abs(on - usual) < 0.2 * (off - usual), (usual, off, on)


def test_a_held_face_is_drawn_exactly_where_it_was(  # type: ignore[no-untyped-def]
    store: IdentityStore, detector, mesh, faces: Path
) -> None:
    """The morph starts from the actor's shape averaged over time. While the stillness hold repeats a
    face's landmarks, that average must not creep on toward them: the morphed mesh (and so the drawn face)
    would move by a fraction of a pixel every frame of a face that is held still."""
    image, lm = photo_mesh(detector, mesh, faces / "s1.jpg")
    identity = store.load("obama")
    swapper = MeshSwapper()
    moved = lm.copy()
    moved[:, :2] = lm[:, :2] * 1.02 + np.array([3.0, -2.0], np.float32)  # the actor moves, then holds still
    moved[[lower for _, lower in _MOUTH_PAIRS], 1] += 4.0  # and opens the mouth
    first = swapper.geometry(image, lm, 1, 0.0, identity, 1.0)
    held = [swapper.geometry(image, moved, 1, t, identity, 1.0) for t in (1 / 30, 2 / 30, 3 / 30, 4 / 30)]
    assert first is not None and all(g is not None for g in held)
    assert np.abs(held[0].landmarks - first.landmarks).max() > 1.0  # type: ignore[union-attr]
    for g in held[1:]:
        assert np.array_equal(g.landmarks, held[0].landmarks)  # type: ignore[union-attr]
    # Once the face moves again, the average moves on with it.
    again = swapper.geometry(image, lm, 1, 5 / 30, identity, 1.0)
    assert again is not None
    ref_now = swapper._reference[1][0]
    assert not np.allclose(ref_now, frontalise(moved)) and not np.allclose(ref_now, frontalise(lm))


def test_large_faces_are_rendered_at_a_bounded_size(store: IdentityStore, detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    import cv2

    image, lm = photo_mesh(detector, mesh, faces / "obama.jpg")
    big = cv2.resize(image, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_LINEAR)
    big_lm = lm * 2.5
    swapper = MeshSwapper()
    geometry = swapper.geometry(big, big_lm)
    assert geometry is not None and geometry.reduced
    assert max(geometry.work_size) <= swapper.config.work_px < max(geometry.window.height, geometry.window.width)
    rendered = swapper.render(geometry, store.load("obama"), "texture")
    assert rendered.shape[:2] == geometry.work_size
    back = geometry.to_window(rendered)
    assert back.shape[:2] == (geometry.window.height, geometry.window.width)
    actor = geometry.to_work(swapper.actor_window(big, geometry))
    skin = geometry.labels() == 0
    assert float(np.median(np.abs(rendered.astype(int) - actor.astype(int))[skin])) < 8.0


def test_a_smaller_work_size_reads_the_texture_at_the_detail_sizes_level(  # type: ignore[no-untyped-def]
    store: IdentityStore, detector, mesh, faces: Path
) -> None:
    """A close-up drawn at a work size under ``detail_px`` reads the identity's texture at the level of detail of a
    face at ``detail_px`` (the texels a smaller work size can still carry, not a coarser mip level), and never more
    than a texel a work pixel: a much smaller work size reads a coarser level; with the detail at the work size
    (the earlier behaviour), a coarser level too."""
    image, lm = photo_mesh(detector, mesh, faces / "obama.jpg")
    big = cv2.resize(image, None, fx=2.5, fy=2.5, interpolation=cv2.INTER_LINEAR)
    identity = store.load("obama")

    def level(config: SwapConfig) -> tuple[np.ndarray, tuple[int, int]]:
        swapper = MeshSwapper(config)
        geometry = swapper.geometry(big, lm * 2.5)
        assert geometry is not None
        texture, _ = swapper.texture_lookup(geometry, identity, "texture")
        return texture, geometry.work_size

    at_detail, size_detail = level(SwapConfig(work_px=400, detail_px=400))
    held, size_held = level(SwapConfig(work_px=300, detail_px=400))
    coarse, _ = level(SwapConfig(work_px=300, detail_px=300))
    floor, size_floor = level(SwapConfig(work_px=64, detail_px=400))
    assert max(size_held) == 300 < max(size_detail) == 400 and max(size_floor) == 64
    np.testing.assert_array_equal(held, at_detail)  # the same level (and blend) of the mip chain
    # Coarser: a smaller mip level, or the same level with more of the next one blended in.
    for finer, coarser in ((at_detail, coarse), (coarse, floor)):
        assert finer.shape[0] >= coarser.shape[0]
        assert finer.shape != coarser.shape or not np.array_equal(finer, coarser)


def test_the_texture_level_of_detail_changes_smoothly(store: IdentityStore, detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    """A face that grows or shrinks through a mip level changes sharpness in small steps, never in one pop:
    the level of detail is swept (through ``mip_bias``) across a level boundary on the same geometry."""
    import dataclasses

    image, lm = photo_mesh(detector, mesh, faces / "s1.jpg")
    identity = store.load("obama")
    skin = None

    def sweep(steps: int) -> list[float]:
        nonlocal skin
        renders = []
        for bias in np.arange(0.0, 2.01, 0.05):
            swapper = MeshSwapper(dataclasses.replace(SwapConfig(), mip_bias=float(bias), mip_steps=steps))
            geometry = swapper.geometry(image, lm)
            assert geometry is not None
            skin = geometry.labels() >= 0
            renders.append(swapper.render(geometry, identity, "texture").astype(np.float32))
        return [float(np.abs(b - a)[skin].mean()) for a, b in zip(renders, renders[1:], strict=False)]

    nearest, blended = sweep(1), sweep(8)
    # Nearest level: nothing changes until the lod crosses a level, then everything at once.
    assert max(nearest) > 3.0 * float(np.median(nearest)) + 0.5
    # Blended: the same total change, spread over the sweep.
    assert max(blended) < 0.5 * max(nearest)
    assert sum(blended) == pytest.approx(sum(nearest), rel=0.5)
    # Whole levels are the levels themselves.
    swapper = MeshSwapper()
    chain = swapper._mip_chain(identity, "texture")
    assert swapper._texture_at(identity, "texture", chain, 1.0) is chain[1]
    assert swapper._texture_at(identity, "texture", chain, 99.0) is chain[-1]
    half = swapper._texture_at(identity, "texture", chain, 0.5).astype(np.float32)
    up = cv2.resize(chain[1], chain[0].shape[1::-1], interpolation=cv2.INTER_LINEAR).astype(np.float32)
    assert np.abs(half - (chain[0] * 0.5 + up * 0.5)).max() <= 1.0


def test_the_morph_field_is_smooth_across_the_faces_edge() -> None:
    """The morph's displacement is exact inside the face and a smooth continuation outside. Switched at the
    raster's edge, the field jumped along that edge's stair steps and the warped actor's jaw line showed
    them (a serrated jaw in 1080p close-ups, crawling as the head moved). On a disc-shaped face with a
    radial displacement, the field along circles near the edge must be about the same all round."""
    from engines.swap.mesh import _displacement_field

    size, centre, radius = 128, 63.7, 40.3
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    mask = (xx - centre) ** 2 + (yy - centre) ** 2 <= radius * radius
    inside = (np.dstack([0.2 * (xx - centre), 0.2 * (yy - centre)]) * mask[..., None]).astype(np.float32)
    field = _displacement_field(inside, mask, 30.0)
    angles = np.linspace(0.0, 2.0 * np.pi, 720, endpoint=False)

    def radial(rho: float) -> np.ndarray:
        px = (centre + rho * np.cos(angles)).astype(np.float32)[None]
        py = (centre + rho * np.sin(angles)).astype(np.float32)[None]
        sampled = cv2.remap(field, px, py, cv2.INTER_LINEAR)[0]
        return np.asarray(sampled[:, 0] * np.cos(angles) + sampled[:, 1] * np.sin(angles))

    for rho in (radius - 3.0, radius - 2.0, radius - 1.0, radius - 0.5, radius + 0.5, radius + 2.0):
        values = radial(rho)
        # before: std 0.40, steps of 0.61 pixels between neighbouring angles at the edge
        assert values.std() < 0.15 and np.abs(np.diff(values)).max() < 0.1, (rho, values.std())
    # Deep inside, the exact displacement; far outside, none.
    np.testing.assert_allclose(radial(radius - 8.0), 0.2 * (radius - 8.0), atol=0.02)
    assert np.abs(field[np.hypot(xx - centre, yy - centre) > radius + 31.0]).max() < 1e-3


RIGID_MOUTH_FRAMES = (0, 12, 24, 36)
"""Obama_speaking's first second and a half: he speaks, the mouth opens, closes and rounds."""


def _shape_residual(actor: np.ndarray, morphed: np.ndarray) -> float:
    """Largest distance (pixels) of the morphed points from the actor's best similarity (2D rotation, scale,
    shift) onto them: 0 when the shape is the actor's, moved and scaled."""
    a, b = actor[:, :2].astype(np.float64), morphed[:, :2].astype(np.float64)
    a0, b0 = a - a.mean(axis=0), b - b.mean(axis=0)
    za, zb = a0[:, 0] + 1j * a0[:, 1], b0[:, 0] + 1j * b0[:, 1]
    k = np.vdot(za, zb) / np.vdot(za, za)  # complex least squares: rotation and scale in one
    return float(np.abs(zb - k * za).max())


@pytest.fixture(scope="module")
def rigid_mouth_morphs(store: IdentityStore, detector, mesh, clips: Path):  # type: ignore[no-untyped-def]
    """Per chosen frame: (actor landmarks, morphed without rigid_mouth, morphed with it), toward obama."""
    identity = store.load("obama")
    off, on = MeshSwapper(SwapConfig(rigid_mouth=False)), MeshSwapper(SwapConfig(rigid_mouth=True))
    frames = clip_frames(clips / "Obama_speaking.mp4", max(RIGID_MOUTH_FRAMES) + 1)
    out = []
    for i in RIGID_MOUTH_FRAMES:
        image, t_s = frames[i]
        lm = image_mesh(detector, mesh, image)
        a = off.geometry(image, lm, 1, t_s, identity, 1.0)
        b = on.geometry(image, lm, 1, t_s, identity, 1.0)
        assert a is not None and b is not None
        out.append((lm, a.landmarks, b.landmarks))
    return out


def test_rigid_mouth_keeps_the_actors_lip_shape_and_the_identitys_eyes(rigid_mouth_morphs) -> None:  # type: ignore[no-untyped-def]
    """With ``rigid_mouth`` the outer lip is the actor's up to a similarity (moved with the face as a whole);
    without it the lips take the identity's shape. The eyes take the identity's shape either way."""
    lips, eyes = list(LIPS_OUTER), list(RIGHT_EYE) + list(LEFT_EYE)
    for lm, off, on in rigid_mouth_morphs:
        face_px = float(np.ptp(lm[:, 0]))
        assert _shape_residual(lm[lips], on[lips]) < 0.001 * face_px
        assert _shape_residual(lm[lips], off[lips]) > 0.015 * face_px  # about 5 px on a 145 px face
        shift_on = on[lips, :2].mean(axis=0) - lm[lips, :2].mean(axis=0)
        shift_off = off[lips, :2].mean(axis=0) - lm[lips, :2].mean(axis=0)
        assert np.linalg.norm(shift_on - shift_off) < 0.01 * face_px  # the mouth still goes where the morph puts it
        np.testing.assert_allclose(on[eyes], off[eyes])

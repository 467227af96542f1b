"""A black-and-white identity's colour (``engines.compose.chroma``): the actor's skin's, wherever the identity draws,
whatever covers the actor's skin."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.compose.blend import face_alpha_small, skin_mask
from engines.compose.chroma import ChromaConfig, chroma_field, transfer_chroma
from engines.face.topology import LIPS, SKIN
from engines.resample import shrink
from engines.swap.mesh import FaceGeometry, MeshSwapper
from tests.face_helpers import photo_mesh


def _actor(detector, mesh, faces: Path, name: str) -> tuple[FaceGeometry, np.ndarray]:  # type: ignore[no-untyped-def]
    """A real face's geometry and its pixels at geometry resolution (the actor)."""
    image, lm = photo_mesh(detector, mesh, faces / name)
    swapper = MeshSwapper()
    geometry = swapper.geometry(image, lm)
    assert geometry is not None
    hs, ws = geometry.small_size
    return geometry, shrink(geometry.to_work(swapper.actor_window(image, geometry)), (ws, hs))


def _at(field: np.ndarray, geometry: FaceGeometry) -> np.ndarray:
    """The field (made at half the geometry resolution) at geometry resolution, as ``transfer_chroma`` scales it."""
    hs, ws = geometry.small_size
    return cv2.resize(field, (ws, hs), interpolation=cv2.INTER_LINEAR)


def _chroma(bgr: np.ndarray) -> np.ndarray:
    """(..., 2) float32 Cr, Cb less 128."""
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YCrCb)[..., 1:].astype(np.float32) - 128.0


@pytest.mark.parametrize("name", ["obama.jpg", "roop_source.jpg"])  # dark and light skin
@pytest.mark.parametrize(
    "cover",
    [
        ((40, 30, 28), (50, 50, 52)),  # black hair over the forehead, a dark beard
        ((170, 175, 180), (200, 200, 205)),  # grey hair, a white beard
    ],
    ids=["dark", "grey"],
)
def test_hair_and_a_beard_over_the_skin_do_not_colour_the_face(  # type: ignore[no-untyped-def]
    detector, mesh, faces: Path, name: str, cover: tuple[tuple[int, int, int], tuple[int, int, int]]
) -> None:
    """Hair painted over the top third of the actor's face and a beard over its bottom third (both within the mesh's
    skin, where the skin is looked for): the field's colour there is still the skin's (within a few levels of the
    same face unpainted, where the paint is ~20-40 levels away), and the cheeks between are unchanged."""
    geometry, actor = _actor(detector, mesh, faces, name)
    skin = skin_mask(geometry, face_alpha_small(geometry))
    before = _at(chroma_field(actor, geometry, skin), geometry)
    rows = np.flatnonzero((geometry.labels_small >= 0).any(axis=1))
    top, bottom = rows[0] + len(rows) // 3, rows[-1] - len(rows) // 3
    painted = actor.copy()
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 6.0, actor.shape)
    for band, colour in ((slice(0, top), cover[0]), (slice(bottom, None), cover[1])):
        painted[band] = np.clip(np.array(colour) + noise[band], 0, 255).astype(np.uint8)
    after = _at(chroma_field(painted, geometry, skin), geometry)
    face = geometry.labels_small == SKIN
    skin_colour = np.median(before[skin][:, :2], axis=0)
    for band, colour in ((slice(0, top), cover[0]), (slice(bottom, None), cover[1])):
        paint = _chroma(np.array([[colour]], np.uint8))[0, 0]
        assert np.linalg.norm(paint - skin_colour) > 15.0, (paint, skin_colour)  # the paint is of another colour
        got = np.median(after[band][face[band]][:, :2], axis=0)
        assert np.linalg.norm(got - skin_colour) < 5.0, (name, got, skin_colour, paint)
    middle = face.copy()
    middle[: top + 4] = False
    middle[bottom - 4 :] = False
    assert middle.sum() > 100
    moved = np.linalg.norm(after[middle][:, :2] - before[middle][:, :2], axis=1)
    assert float(np.median(moved)) < 1.5, float(np.median(moved))


def test_a_grey_face_takes_the_skins_colour_its_dark_features_a_weaker_one(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    """The actor's face made grey and given back its colour: its skin is the actor's colour (within a few levels);
    its lips the lips' tint; pixels much darker than the skin (brows, lashes) take the
    colour in proportion to their lightness; the lightness itself is kept."""
    geometry, actor = _actor(detector, mesh, faces, "obama.jpg")
    skin = skin_mask(geometry, face_alpha_small(geometry))
    field = chroma_field(actor, geometry, skin)
    grey = cv2.cvtColor(cv2.cvtColor(actor, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    out = transfer_chroma(grey, field)
    face = geometry.labels_small >= 0  # (outside it, a white collar with skin's colour is clipped in BGR)
    lightness = cv2.cvtColor(out, cv2.COLOR_BGR2YCrCb)[..., 0].astype(int)
    assert np.percentile(np.abs(lightness - grey[..., 0])[face], 99) <= 2
    got, want = _chroma(out), _chroma(actor)
    assert np.linalg.norm(np.median(got[skin], axis=0) - np.median(want[skin], axis=0)) < 3.0
    lips = geometry.labels_small == LIPS
    lit = lips & (grey[..., 0] >= 0.5 * np.median(grey[..., 0][skin]))  # not the mouth's dark inside
    assert np.linalg.norm(np.median(got[lit], axis=0) - np.median(want[lit], axis=0)) < 3.0
    # Darker than the knee, the colour fades with the lightness. The knee is ``ChromaConfig.knee_hair`` of the skin's
    # lightness on the forehead (a fringe there is hair), ``knee`` on the lower face (a shadow there is skin's) ...
    knee = _at(field, geometry)[..., 2]
    rows = np.flatnonzero(skin.any(axis=1))
    for part, fraction in (
        (slice(rows[0], rows[0] + len(rows) // 6), ChromaConfig().knee_hair),
        (slice(rows[0] + len(rows) // 2, None), ChromaConfig().knee),
    ):
        here = skin[part]
        assert np.allclose(np.median(knee[part][here]), fraction * np.median(grey[part][here][:, 0]), rtol=0.15)
    # ... and a pixel at a third of the knee takes a third of the skin's colour.
    dark = grey.copy()
    dark[skin] = np.floor(knee[skin] / 3.0).astype(np.uint8)[:, None]
    faded = np.linalg.norm(_chroma(transfer_chroma(dark, field))[skin], axis=1)
    full = np.linalg.norm(_at(field, geometry)[skin][:, :2], axis=1)
    assert np.all(faded <= full / 3.0 + 2.5), float((faded - full / 3.0).max())
    assert float(np.median(faded)) > 0.2 * float(np.median(full))  # faded, not grey


def test_an_actor_with_no_skin_to_see_leaves_the_face_grey(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    """A black window (the face in the dark, or everything over it near-neutral): no skin colour is found, and the
    grey face stays grey rather than taking a made-up colour; nothing warns or fails."""
    import warnings

    geometry, actor = _actor(detector, mesh, faces, "roop_source.jpg")
    skin = skin_mask(geometry, face_alpha_small(geometry))
    grey = cv2.cvtColor(cv2.cvtColor(actor, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    for dark in (np.zeros_like(actor), cv2.cvtColor(cv2.cvtColor(actor, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = transfer_chroma(grey, chroma_field(dark, geometry, skin))
        assert np.abs(_chroma(out)).max() <= 1.0

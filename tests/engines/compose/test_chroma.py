"""A black-and-white identity's colour and level (``engines.compose.chroma``): the actor's skin's, wherever the
identity draws, whatever covers the actor's skin; the identity's own shading within the face kept."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.compose.blend import face_alpha_small, skin_mask
from engines.compose.chroma import (
    LUMINANCE_BGR,
    U8_TO_LINEAR,
    ChromaConfig,
    chroma_field,
    lab_from_linear,
    transfer_chroma,
)
from engines.face.topology import LIPS, SKIN
from engines.resample import shrink
from engines.swap.mesh import FaceGeometry, MeshSwapper
from tests.face_helpers import clip_frames, image_mesh, photo_mesh


def _actor(detector, mesh, faces: Path, name: str) -> tuple[FaceGeometry, np.ndarray]:  # type: ignore[no-untyped-def]
    """A real face's geometry and its pixels at geometry resolution (the actor)."""
    image, lm = photo_mesh(detector, mesh, faces / name)
    return _geometry(image, lm)


def _geometry(image: np.ndarray, lm: np.ndarray) -> tuple[FaceGeometry, np.ndarray]:
    swapper = MeshSwapper()
    geometry = swapper.geometry(image, lm)
    assert geometry is not None
    hs, ws = geometry.small_size
    return geometry, shrink(geometry.to_work(swapper.actor_window(image, geometry)), (ws, hs))


def _at(field: np.ndarray, geometry: FaceGeometry) -> np.ndarray:
    """The field (made at half the geometry resolution) at geometry resolution, as ``transfer_chroma`` scales it."""
    hs, ws = geometry.small_size
    return cv2.resize(field, (ws, hs), interpolation=cv2.INTER_LINEAR)


def _lab(bgr: np.ndarray) -> np.ndarray:
    """(..., 3) float32 CIE L*a*b* of uint8 BGR."""
    return lab_from_linear(U8_TO_LINEAR[bgr])


def _grey(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def _srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light 0..1 to sRGB-encoded 0..1."""
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(np.maximum(linear, 1e-9), 1 / 2.4) - 0.055)


def _luminance_of_lightness(lightness: np.ndarray) -> np.ndarray:
    """CIE L* back to relative luminance."""
    f = (lightness + 16.0) / 116.0
    return np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29))


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
    skin, where the skin is looked for): the field's colour there is still the skin's (a*, b* within a few units of
    the same face unpainted, where the paint is 20-40 away), and the cheeks between are unchanged."""
    geometry, actor = _actor(detector, mesh, faces, name)
    skin = skin_mask(geometry, face_alpha_small(geometry))
    grey = _grey(actor)
    before = _at(chroma_field(actor, grey, geometry, skin), geometry)
    rows = np.flatnonzero((geometry.labels_small >= 0).any(axis=1))
    top, bottom = rows[0] + len(rows) // 3, rows[-1] - len(rows) // 3
    painted = actor.copy()
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 6.0, actor.shape)
    for band, colour in ((slice(0, top), cover[0]), (slice(bottom, None), cover[1])):
        painted[band] = np.clip(np.array(colour) + noise[band], 0, 255).astype(np.uint8)
    after = _at(chroma_field(painted, grey, geometry, skin), geometry)
    face = geometry.labels_small == SKIN
    skin_colour = np.median(before[skin][:, :2], axis=0)
    for band, colour in ((slice(0, top), cover[0]), (slice(bottom, None), cover[1])):
        paint = _lab(np.array([[colour]], np.uint8))[0, 0, 1:]
        assert np.linalg.norm(paint - skin_colour) > 20.0, (paint, skin_colour)  # the paint is of another colour
        got = np.median(after[band][face[band]][:, :2], axis=0)
        assert np.linalg.norm(got - skin_colour) < 6.0, (name, got, skin_colour, paint)
    middle = face.copy()
    middle[: top + 4] = False
    middle[bottom - 4 :] = False
    assert middle.sum() > 100
    moved = np.linalg.norm(after[middle][:, :2] - before[middle][:, :2], axis=1)
    assert float(np.median(moved)) < 2.0, float(np.median(moved))


def test_a_grey_face_takes_the_skins_colour_its_dark_features_a_weaker_one(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    """The actor's face made grey and given back its colour: its skin comes back the actor's (L*a*b* within a few
    units); its lips take the lips' tint; pixels much darker than the skin (brows, lashes) take the colour in
    proportion to their lightness."""
    geometry, actor = _actor(detector, mesh, faces, "obama.jpg")
    skin = skin_mask(geometry, face_alpha_small(geometry))
    grey = _grey(actor)
    field = chroma_field(actor, grey, geometry, skin)
    out = transfer_chroma(grey, field)
    got, want = _lab(out), _lab(actor)
    assert np.linalg.norm(np.median(got[skin], axis=0) - np.median(want[skin], axis=0)) < 3.0
    lips = geometry.labels_small == LIPS
    lit = lips & (want[..., 0] >= 0.5 * np.median(want[..., 0][skin]))  # not the mouth's dark inside
    assert np.linalg.norm(np.median(got[lit][:, 1:], axis=0) - np.median(want[lit][:, 1:], axis=0)) < 4.0
    # Darker than the knee, the colour fades with the lightness. The knee is ``ChromaConfig.knee_hair`` of the skin's
    # L* on the forehead (a fringe there is hair), ``knee`` on the lower face (a shadow there is skin's) ...
    knee = _at(field, geometry)[..., 3]
    rows = np.flatnonzero(skin.any(axis=1))
    for part, fraction in (
        (slice(rows[0], rows[0] + len(rows) // 6), ChromaConfig().knee_hair),
        (slice(rows[0] + len(rows) // 2, None), ChromaConfig().knee),
    ):
        here = skin[part]
        assert np.allclose(np.median(knee[part][here]), fraction * np.median(want[part][here][:, 0]), rtol=0.15)
    # ... and a pixel at a third of the knee takes a third of the skin's colour (a* and b*).
    dark = grey.copy()
    code = np.clip(np.round(255.0 * _srgb(_luminance_of_lightness(knee[skin] / 3.0))), 0, 255).astype(np.uint8)
    dark[skin] = code[:, None]
    as_painted = field.copy()
    as_painted[..., 2] = 1.0  # the level's gain left out: the pixels' lightness as painted
    faded = np.linalg.norm(_lab(transfer_chroma(dark, as_painted))[skin][:, 1:], axis=1)
    full = np.linalg.norm(_at(field, geometry)[skin][:, :2], axis=1)
    assert np.all(faded <= full / 3.0 + 2.5), float((faded - full / 3.0).max())
    assert float(np.median(faded)) > 0.2 * float(np.median(full))  # faded, not grey


def test_a_grey_faces_skin_takes_the_actors_lightness_its_own_shading_stays(detector, mesh, clips: Path) -> None:  # type: ignore[no-untyped-def]
    """A grey photo's lightness is its light's and its print's: its lower face lit less than its brow (a photo lit
    from above), all of it darker than the actor under the stage's light. Drawn over a real d10.mp4 frame, the
    face's skin takes the actor's lightness and colour (L*, a*, b* within a few units of the actor's own skin in
    the input, where the grey face's lower third was ~14 L* darker: with its lightness kept, as before, biden.jpg's
    shaded lower face was a dark, muddy brown over d10's evenly lit skin), while a dark feature of the identity (a
    spot at half the skin's luminance, smaller than ``ChromaConfig.level_sigma``) stays as dark relative to the skin
    around it, in the skin's colour (skin in shadow keeps its a* and b*)."""
    image, _ = clip_frames(clips / "d10.mp4", 31)[30]
    geometry, actor = _geometry(image, image_mesh(detector, mesh, image))
    skin = skin_mask(geometry, face_alpha_small(geometry))
    rows = np.flatnonzero(skin.any(axis=1))
    top, bottom = rows[0], rows[-1]
    # The identity: the actor made grey, 0.85 of her luminance at the brow down to 0.45 at the chin, with a spot.
    ramp = np.interp(np.arange(skin.shape[0]), [top, bottom], [0.85, 0.45]).astype(np.float32)[:, None]
    luminance = (U8_TO_LINEAR[actor] @ LUMINANCE_BGR) * ramp
    cy = (top + bottom * 2) // 3
    cx = int(np.median(np.flatnonzero(skin[cy])))
    unit = geometry.face_scale_px * skin.shape[1] / geometry.window.width
    spot = np.zeros(skin.shape, np.uint8)
    cv2.circle(spot, (cx - int(0.35 * unit), cy), max(int(0.05 * unit), 2), 1, -1)
    spot = spot.astype(bool) & skin
    assert spot.sum() >= 5
    luminance[spot] *= 0.5
    grey = np.repeat(np.round(255.0 * _srgb(luminance))[..., None], 3, axis=2).astype(np.uint8)
    lower = skin & (np.arange(skin.shape[0])[:, None] > top + 2 * (bottom - top) // 3) & ~spot
    assert float(np.median(_lab(actor)[lower][:, 0] - _lab(grey)[lower][:, 0])) > 10.0  # the photo is darker there
    out = transfer_chroma(grey, chroma_field(actor, grey, geometry, skin))
    got, want = _lab(out), _lab(actor)
    for part in (skin & ~spot, lower):
        difference = np.median(got[part], axis=0) - np.median(want[part], axis=0)
        assert np.all(np.abs(difference) < 3.0), difference  # L* -13 in the lower third with the lightness kept
    # The spot: as dark against the skin around it as the identity's is (a ratio of luminances), in the skin's colour.
    around = cv2.dilate(spot.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & skin & ~spot
    out_luminance = U8_TO_LINEAR[out] @ LUMINANCE_BGR
    ratio = float(np.median(out_luminance[spot]) / np.median(out_luminance[around]))
    assert abs(ratio - float(np.median(luminance[spot]) / np.median(luminance[around]))) < 0.08, ratio
    assert np.linalg.norm(np.median(got[spot][:, 1:], axis=0) - np.median(got[around][:, 1:], axis=0)) < 3.0


def test_an_actor_with_no_skin_to_see_leaves_the_face_grey(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    """A black window (the face in the dark, or everything over it near-neutral): no skin colour is found, and the
    grey face stays grey rather than taking a made-up colour; nothing warns or fails."""
    import warnings

    geometry, actor = _actor(detector, mesh, faces, "roop_source.jpg")
    skin = skin_mask(geometry, face_alpha_small(geometry))
    grey = _grey(actor)
    for dark in (np.zeros_like(actor), grey):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out = transfer_chroma(grey, chroma_field(dark, grey, geometry, skin))
        assert np.abs(_lab(out)[..., 1:]).max() <= 1.0

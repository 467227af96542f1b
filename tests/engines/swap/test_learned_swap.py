"""Learned swap models end to end on the shared clips: inswapper-style and DFM models in the FaceProcessor.

No real weights exist here, so the models are generated at test time with the real signatures and a known
behaviour (``tests.onnx_models``): an inswapper that shifts the colour by a linear function of the latent
it is given, DFMs that paint a constant colour, output their morph value, or mask half the crop. What is
proven is the plumbing: the alignment and the paste-back (the face lands where it was), the identity's
ArcFace embedding through the model's ``emap``, the morph value reaching the model, the model's masks and
our blend mask deciding what shows, our relighting applied to the model's face, refusals that never take
a stream down, and the CLI, HTTP API and build_engines.py around them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import aiohttp
import cv2
import numpy as np
import pytest

from engines.compose.watermark import WatermarkConfig
from engines.errors import InputError
from engines.face.tracker import TrackedFace
from engines.identity.recognition import EMBEDDINGS_FILE, embed_identity, identity_embedding
from engines.identity.store import IdentityStore
from engines.processor import FaceProcessor, ProcessedFrame, ProcessorConfig
from engines.settings import ProcessSettings, RelightTarget, apply_patch
from engines.swap.align import align_points5, arcface_template
from engines.swap.learned import DfmSwapper, InswapperSwapper, LearnedConfig, load_swapper
from engines.swap.user_models import UserModelStore
from streamer.governance.consent import ConsentRecord, add_model
from tests import onnx_models as om
from tests.clip_helpers import lighter_clip
from tests.face_helpers import clip_frames

SHIFT = (np.random.default_rng(5).standard_normal((512, 3)) * 0.02).astype(np.float32)
"""The colour inswapper's latent -> RGB shift (a few levels per channel for a unit latent)."""
EMAP = om.random_emap(11)
DFM_COLOUR_BGR = (0.2, 0.8, 0.3)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory, faces: Path, models_dir: Path) -> Path:
    """A data directory with every test model registered and two identities enrolled and embedded (plus one
    enrolled before any recogniser existed, so it has no embedding)."""
    files = tmp_path_factory.mktemp("files")
    data = tmp_path_factory.mktemp("data")
    store = UserModelStore(data)
    half = np.zeros((224, 224), np.float32)
    half[:, :112] = 1.0  # the crop's image-left half: the subject's right cheek
    store.add(om.inswapper(files / "colour.onnx", SHIFT, EMAP), name="colour", licence="CC BY-NC 4.0")
    store.add(om.identity_inswapper(files / "same.onnx", EMAP), name="same", licence="MIT")
    store.add(om.inswapper(files / "dot.onnx", np.zeros((512, 3), np.float32), EMAP, overlay=_dot()), name="dot")
    # A DFM is a likeness of its own: registered with consent (morph) or explicitly unverified (the others).
    consent = ConsentRecord.create("Morph Model", "Plumbing tests", valid_from="2020-01-01", valid_until="2099-12-31")
    add_model(store, om.dfm(files / "morph.dfm", 224, gain=0.0), name="morph", consent=consent)
    paint = om.dfm(files / "paint.dfm", 224, gain=0.0, bias=DFM_COLOUR_BGR, morph=False)
    store.add(paint, name="paint", unverified=True)
    paint64 = om.dfm(files / "paint64.dfm", 64, gain=0.0, bias=DFM_COLOUR_BGR, morph=False)
    store.add(paint64, name="paint64", unverified=True)
    half_dfm = om.dfm(files / "half.dfm", 224, gain=0.0, bias=DFM_COLOUR_BGR, morph=False, celeb_mask=half)
    store.add(half_dfm, name="half", unverified=True)
    identities = IdentityStore(data / "identities", models_dir)
    identities.enroll("plain", [faces / "biden.jpg"], face="largest")  # before the recogniser: no embedding
    store.add(om.arcface(files / "arc.onnx"), name="arc")
    for name, photo in (("obama", "obama.jpg"), ("lin", "lin-manuel-miranda.png")):
        identities.enroll(name, [faces / photo], face="largest")
        assert embed_identity(store, identities.root, name, [faces / photo]) == ["arc"]
    return data


@pytest.fixture(scope="module")
def frames(clips: Path) -> dict[str, list[tuple[np.ndarray, float]]]:
    return {"d3": clip_frames(clips / "d3.mp4", 8), "roop": clip_frames(clips / "roop_target_1080p.mp4", 6)}


DOT_CROP = (arcface_template(128)[0] + arcface_template(128)[3]) / 2
"""Where the marking inswapper darkens its crop: the image-left cheek (mid-tone skin: the mark is not clipped)."""


def _dot() -> np.ndarray:
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    blob = np.exp(-((xx - DOT_CROP[0]) ** 2 + (yy - DOT_CROP[1]) ** 2) / (2 * 3.0**2))
    return np.repeat(-0.2 * blob[None], 3, axis=0)


def _processor(data: Path, models_dir: Path, learned: LearnedConfig | None = None) -> FaceProcessor:
    config = ProcessorConfig(watermark=WatermarkConfig(enabled=False), learned=learned or LearnedConfig())
    return FaceProcessor.from_models(
        models_dir, config, IdentityStore(data / "identities", models_dir), UserModelStore(data)
    )


def _run(
    data: Path,
    models_dir: Path,
    frames: list[tuple[np.ndarray, float]],
    settings: ProcessSettings,
    learned: LearnedConfig | None = None,
) -> tuple[np.ndarray, ProcessedFrame]:
    """Process the frames; the last input and its result (the tracker has settled by then)."""
    processor = _processor(data, models_dir, learned)
    result = None
    for image, t in frames:
        result = processor.process(image, t, settings)
    assert result is not None and result.faces
    return frames[-1][0], result


def _cheek(face: TrackedFace, side: int) -> tuple[slice, slice]:
    """A small patch on a cheek (side 0: image left, 1: image right), between the eye and the nose tip."""
    centre = (face.points5[side] + face.landmarks[1, :2]) / 2 + [0.0, 0.1 * np.ptp(face.points5[:2, 0])]
    r = max(3, int(0.06 * np.ptp(face.points5[:2, 0])))
    x, y = int(centre[0]), int(centre[1])
    return slice(y - r, y + r + 1), slice(x - r, x + r + 1)


def _mean_change(before: np.ndarray, after: np.ndarray, patch: tuple[slice, slice]) -> np.ndarray:
    """Mean BGR change over a patch, in 0..1 units."""
    return (after[patch].astype(np.float64) - before[patch].astype(np.float64)).reshape(-1, 3).mean(axis=0) / 255.0


def _expected_shift_bgr(embedding: np.ndarray) -> np.ndarray:
    latent = embedding / np.linalg.norm(embedding) @ EMAP.astype(np.float64)
    latent /= np.linalg.norm(latent)
    return (latent @ SHIFT.astype(np.float64))[::-1]


def _no_relight(**kw: Any) -> ProcessSettings:
    return ProcessSettings(relight=False, **kw)


# ---- the swappers on real crops ------------------------------------------------------------------------------


def test_inswapper_latent_is_the_embedding_through_emap(data: Path, frames, detector, mesh) -> None:  # type: ignore[no-untyped-def]
    """The latent is normalise(normalise(e) @ emap) and the model's output is what that latent makes it."""
    store = UserModelStore(data)
    swapper = load_swapper(store, "colour")
    assert isinstance(swapper, InswapperSwapper) and swapper.needs_identity
    ids = IdentityStore(data / "identities")
    embedding = identity_embedding(store, ids.root, "obama", ids.load("obama").info.photo_sha256).embedding
    latent = swapper.latent(embedding * 7.0)  # the embedding's own length does not matter
    expected = embedding / np.linalg.norm(embedding) @ EMAP
    np.testing.assert_allclose(latent[0], expected / np.linalg.norm(expected), atol=1e-5)
    from engines.face.tracker import FaceTracker
    from engines.swap.align import align_points5

    tracker = FaceTracker(detector, mesh)
    for image, t in frames["d3"]:
        faces = tracker.update(image, t)
    crop = align_points5(faces[0].points5, 128).crop(image)
    out = swapper.run_crop(crop, latent)
    inside = (crop > 30).all(axis=2) & (crop < 225).all(axis=2)  # away from clipping
    change = (out.astype(np.float64) - crop)[inside].mean(axis=0) / 255.0
    np.testing.assert_allclose(change, _expected_shift_bgr(embedding), atol=0.004)
    raw = (embedding @ SHIFT)[::-1]  # what the model would do with the embedding fed in directly
    assert np.abs(change - raw).max() > 0.004


def test_dfm_receives_the_morph_value(data: Path) -> None:
    store = UserModelStore(data)
    swapper = load_swapper(store, "morph")
    assert isinstance(swapper, DfmSwapper) and not swapper.needs_identity and swapper.has_morph
    crop = np.full((224, 224, 3), 128, np.uint8)
    for morph in (0.0, 0.3, 0.9):
        face, mask = swapper.run_crop(crop, morph)
        assert abs(float(face.mean()) - morph * 255) < 1.0 and mask.min() == 1.0
    plain = load_swapper(store, "paint")
    assert isinstance(plain, DfmSwapper) and not plain.has_morph
    face, _ = plain.run_crop(crop, 0.5)
    np.testing.assert_allclose(face.reshape(-1, 3).mean(axis=0), np.array(DFM_COLOUR_BGR) * 255, atol=1.0)


# ---- in the FaceProcessor, on shared clips ----------------------------------------------------------------


@pytest.mark.parametrize("clip", ["d3", "roop"])
def test_paste_back_puts_a_crop_pixel_where_it_came_from(data: Path, models_dir: Path, frames, clip: str) -> None:  # type: ignore[no-untyped-def]
    """A mark the model draws on the template's cheek appears in the frame exactly where that crop point is
    in the frame (under half a pixel), at the close-up (reduced work size) and the medium shot alike. The mark
    is isolated by subtracting the same pipeline's result with an unmarked model."""
    _, result = _run(data, models_dir, frames[clip], _no_relight(identity="obama", swap_model="dot"))
    _, unmarked = _run(data, models_dir, frames[clip], _no_relight(identity="obama", swap_model="same"))
    assert result.failed_stage is None and np.array_equal(result.faces[0].points5, unmarked.faces[0].points5)
    expected = align_points5(result.faces[0].points5, 128).to_frame(DOT_CROP[None])[0]
    darker = (unmarked.image.astype(np.float64) - result.image).sum(axis=2)  # the mark alone
    r = int(0.15 * np.ptp(result.faces[0].points5[:2, 0]))
    x, y = int(expected[0]), int(expected[1])
    patch = darker[y - r : y + r + 1, x - r : x + r + 1]
    patch = np.where(patch > 0.2 * patch.max(), patch, 0.0)
    ys, xs = np.mgrid[y - r : y + r + 1, x - r : x + r + 1]
    found = np.array([(patch * xs).sum(), (patch * ys).sum()]) / patch.sum()
    assert patch.max() > 40 and np.linalg.norm(found - expected) < 0.5, (found, expected)


@pytest.mark.parametrize("clip", ["d3", "roop"])
def test_paste_back_lands_where_the_face_was(data: Path, models_dir: Path, frames, clip: str) -> None:  # type: ignore[no-untyped-def]
    """A model returning its input unchanged gives the face back in place: no shift (phase correlation under
    half a pixel), only the crop's resampling softness, and nothing outside the face's window changes."""
    before, result = _run(data, models_dir, frames[clip], _no_relight(identity="obama", swap_model="same"))
    assert result.failed_stage is None and result.stage_ms["swap"] > 0
    after = result.image
    face = result.faces[0]
    x0, y0, x1, y1 = (int(v) for v in face.box)
    region = (slice(max(y0, 0), y1), slice(max(x0, 0), x1))
    a = cv2.cvtColor(before[region], cv2.COLOR_BGR2GRAY).astype(np.float32)
    b = cv2.cvtColor(after[region], cv2.COLOR_BGR2GRAY).astype(np.float32)
    (dx, dy), _ = cv2.phaseCorrelate(a, b, cv2.createHanningWindow(a.shape[::-1], cv2.CV_32F))
    assert np.hypot(dx, dy) < 0.5, (dx, dy)
    assert float(np.abs(a - b).mean()) < 4.0
    changed = np.abs(after.astype(np.int16) - before).sum(axis=2) > 0
    ys, xs = np.nonzero(changed)
    assert changed.any() and xs.min() >= x0 - 8 and xs.max() <= x1 + 8 and ys.min() >= y0 - 8 and ys.max() <= y1 + 8


def test_identity_embedding_reaches_the_model_through_emap(data: Path, models_dir: Path, frames) -> None:  # type: ignore[no-untyped-def]
    """Each identity's colour shift is the one its own embedding, through emap, makes: on the frame's cheek."""
    ids = IdentityStore(data / "identities")
    store = UserModelStore(data)
    shifts = {}
    for name in ("obama", "lin"):
        embedding = identity_embedding(store, ids.root, name, ids.load(name).info.photo_sha256).embedding
        before, result = _run(data, models_dir, frames["d3"], _no_relight(identity=name, swap_model="colour"))
        assert result.failed_stage is None
        change = _mean_change(before, result.image, _cheek(result.faces[0], 0))
        np.testing.assert_allclose(change, _expected_shift_bgr(embedding), atol=0.006)
        shifts[name] = change
    assert np.abs(shifts["obama"] - shifts["lin"]).max() > 0.01  # two identities, two different swaps


def test_dfm_morph_value_reaches_the_model(data: Path, models_dir: Path, frames) -> None:  # type: ignore[no-untyped-def]
    """A DFM needs no identity: ``morph`` goes to its morph_value:0 (this model paints it as grey)."""
    for morph in (0.25, 0.75):
        _, result = _run(data, models_dir, frames["d3"], _no_relight(swap_model="morph", morph=morph))
        assert result.failed_stage is None
        level = result.image[_cheek(result.faces[0], 1)].astype(np.float64).mean()
        assert abs(level - morph * 255) < 4.0, (morph, level)


def test_dfm_masks_decide_where_its_face_shows(data: Path, models_dir: Path, frames) -> None:  # type: ignore[no-untyped-def]
    """The DFM's celeb mask covers the crop's image-left half: that cheek takes the model's colour, the other
    cheek stays the actor's. The same model without the mask paints both."""
    colour = np.array(DFM_COLOUR_BGR) * 255
    before, result = _run(data, models_dir, frames["d3"], _no_relight(swap_model="half"))
    face = result.faces[0]
    left, right = result.image[_cheek(face, 0)], result.image[_cheek(face, 1)]
    np.testing.assert_allclose(left.reshape(-1, 3).mean(axis=0), colour, atol=4.0)
    assert float(np.abs(right.astype(np.float64) - before[_cheek(face, 1)]).mean()) < 1.5
    _, painted = _run(data, models_dir, frames["d3"], _no_relight(swap_model="paint"))
    for side in (0, 1):
        np.testing.assert_allclose(painted.image[_cheek(face, side)].reshape(-1, 3).mean(axis=0), colour, atol=4.0)
    # Our blend mask still applies: the kept eyes are the actor's, not the model's paint.
    eye = face.points5[0].astype(int)
    assert float(np.abs(painted.image[eye[1], eye[0]].astype(np.float64) - colour).max()) > 40


def _eye_band(face: TrackedFace, shape: tuple[int, ...], near_px: float, far_px: float) -> np.ndarray:
    """(n, 2) row, col of the pixels ``near_px`` to ``far_px`` outside the subject's right eye's contour."""
    from engines.face.topology import RIGHT_EYE

    contour = face.landmarks[list(RIGHT_EYE), :2].astype(np.float32)
    x0, y0 = np.floor(contour.min(axis=0) - far_px - 1).astype(int)
    x1, y1 = np.ceil(contour.max(axis=0) + far_px + 1).astype(int)
    pixels = [
        (y, x)
        for y in range(max(y0, 0), min(y1, shape[0]))
        for x in range(max(x0, 0), min(x1, shape[1]))
        if near_px <= -cv2.pointPolygonTest(contour, (float(x), float(y)), True) <= far_px
    ]
    return np.array(pixels)


def test_kept_eyes_widened_by_a_coarse_models_blur(data: Path, models_dir: Path, frames) -> None:  # type: ignore[no-untyped-def]
    """A model draws nothing finer than its pixel: with ``opening_grow_px`` the actor's kept eye is widened in
    the model's pixels, so half to one of a 64 px model's pixels out (4-8 frame pixels on d3) the actor's own
    lids show, where the narrow cut lets the model's blurred rim through (a dark ring, issue 19). A 224 px
    model's pixel is 3.5 times finer: the same band stays the model's. Off (the default): the model's."""
    paint = np.array(DFM_COLOUR_BGR) * 255
    widened = LearnedConfig(opening_grow_px=1.5, opening_feather_px=2.0)

    def painted_share(model: str, learned: LearnedConfig | None) -> float:
        before, result = _run(data, models_dir, frames["d3"], _no_relight(swap_model=model), learned)
        band = _eye_band(result.faces[0], before.shape, 4.0, 8.0)
        assert len(band) > 50
        out = result.image[band[:, 0], band[:, 1]].astype(np.float64)
        actor = before[band[:, 0], band[:, 1]].astype(np.float64)
        # Per pixel, how far the output went from the actor's pixel toward the paint (0: actor, 1: paint).
        share = ((out - actor) * (paint - actor)).sum(axis=1) / ((paint - actor) ** 2).sum(axis=1)
        return float(np.mean(share))

    coarse, fine = painted_share("paint64", widened), painted_share("paint", widened)
    assert coarse < 0.4, coarse  # mostly the actor's lids (0.16)
    assert fine > 0.5, fine  # mostly the model's face (0.67)
    assert painted_share("paint64", None) > 0.95  # the default: the narrow cut alone, all paint


def test_learned_face_is_relit_by_our_relighting(data: Path, models_dir: Path, frames) -> None:  # type: ignore[no-untyped-def]
    """With a target light, the model's face is relit like any face: a key light from the image right makes the
    right cheek brighter relative to the left; 'match' leaves the model's face in the actor's light."""
    key_right = RelightTarget(mode="direction", direction=(1.0, 0.0, 0.3), ambient=0.1)
    base = dict(identity="obama", swap_model="same")
    before, matched = _run(data, models_dir, frames["d3"], ProcessSettings(**base))
    assert "relight" not in matched.stage_ms  # match: the model's face keeps the actor's light
    _, relit = _run(data, models_dir, frames["d3"], ProcessSettings(relight_target=key_right, **base))
    assert relit.failed_stage is None and relit.stage_ms["relight"] > 0
    face = relit.faces[0]

    def balance(image: np.ndarray) -> float:
        return float(image[_cheek(face, 1)].mean() / max(image[_cheek(face, 0)].mean(), 1.0))

    assert balance(relit.image) > balance(before) * 1.1


def test_refusals_pass_frames_through_and_the_stream_goes_on(  # type: ignore[no-untyped-def]
    data: Path, models_dir: Path, frames, tmp_path: Path
) -> None:
    image, t = frames["d3"][0]
    processor = _processor(data, models_dir)
    for settings in (
        ProcessSettings(swap_model="nosuch"),  # not registered
        ProcessSettings(swap_model="arc"),  # a recogniser, not a swap model
        ProcessSettings(swap_model="colour", identity="plain"),  # enrolled before the recogniser: no embedding
    ):
        result = processor.process(image, t, settings)
        assert result.failed_stage == "swap" and np.array_equal(result.image, image)
    # An inswapper-style model with no identity selected swaps nothing (like the mesh swap).
    result = processor.process(image, t, _no_relight(swap_model="colour"))
    assert result.failed_stage is None and np.array_equal(result.image, image)
    # And the next frame with good settings is swapped.
    assert processor.process(image, t, _no_relight(swap_model="paint")).failed_stage is None
    # A registered file damaged on disk is refused when loaded (sha256), never run.
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    store = UserModelStore(copy)
    path = store.path(store.get("paint"))
    path.write_bytes(path.read_bytes()[:-100])
    damaged = FaceProcessor.from_models(
        models_dir, ProcessorConfig(watermark=WatermarkConfig(enabled=False)), None, UserModelStore(copy)
    )
    result = damaged.process(image, t, ProcessSettings(swap_model="paint"))
    assert result.failed_stage == "swap" and np.array_equal(result.image, image)


def test_swap_model_setting_is_validated() -> None:
    settings = apply_patch(ProcessSettings(), {"swap_model": "jane_doe-2"})
    assert settings.swap_model == "jane_doe-2" and ProcessSettings().swap_model == "mesh"
    for bad in (None, 3, "../x", "Bad Name", ""):
        with pytest.raises(InputError, match="swap_model"):
            apply_patch(ProcessSettings(), {"swap_model": bad})


def test_embeddings_are_tied_to_the_identity_photos(data: Path, faces: Path, tmp_path: Path, models_dir: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    store = UserModelStore(copy)
    ids = IdentityStore(copy / "identities", models_dir)
    obama = identity_embedding(store, ids.root, "obama", ids.load("obama").info.photo_sha256)
    assert obama.model_name == "arc" and obama.embedding.shape == (512,)
    assert abs(float(np.linalg.norm(obama.embedding)) - 1.0) < 1e-5
    # Re-enrolled with another photo and not re-embedded: the old embedding is not used.
    ids.enroll("obama", [faces / "s1.jpg"], face="largest", replace=True)
    with pytest.raises(InputError, match="enroll it again"):
        identity_embedding(store, ids.root, "obama", ids.load("obama").info.photo_sha256)
    with pytest.raises(InputError, match="not one of identity 'lin'"):
        embed_identity(store, ids.root, "lin", [faces / "obama.jpg"])
    # No recogniser registered: the message says how to get one.
    store.remove("arc")
    with pytest.raises(InputError, match="stageswap models add FILE --kind arcface"):
        identity_embedding(store, ids.root, "lin", ids.load("lin").info.photo_sha256)
    assert embed_identity(store, ids.root, "lin", [faces / "lin-manuel-miranda.png"]) == []


# ---- CLI, HTTP API, build_engines.py ------------------------------------------------------------------------


def test_cli_identities_add_embeds_and_process_runs_a_dfm(  # type: ignore[no-untyped-def]
    data: Path, faces: Path, clips: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamer.__main__ import main
    from streamer.record.media import VideoReader

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    argv = ["identities", "add", "woman", str(faces / "woman.png"), "--unverified", "--data-dir", str(copy)]
    assert main(argv) == 0
    assert "embedded for inswapper-style models by: arc" in capsys.readouterr().out
    assert (copy / "identities" / "woman" / EMBEDDINGS_FILE).is_file()

    out, stats = tmp_path / "out.mp4", tmp_path / "stats.json"
    clip = lighter_clip(clips / "d0.mp4", tmp_path, seconds=1.0)  # 25 frames: two runs of the pipeline
    common = ["--input", str(clip), "--output", str(out), "--no-progress", "--no-watermark"]
    argv = ["process", *common, "--swap-model", "paint", "--no-relight", "--stats", str(stats), "--data-dir", str(copy)]
    assert main(argv) == 0, capsys.readouterr().err
    assert "warning: model 'paint': licence undeclared" in capsys.readouterr().out
    report = json.loads(stats.read_text())
    assert report["frames_with_face"] > 0.8 * report["frames"] and "swap" in report["stage_ms"]
    colour = np.array(DFM_COLOUR_BGR) * 255
    with VideoReader(out) as reader:
        frame = next(iter(reader.frames())).image
    near = np.abs(frame.astype(np.float64) - colour).max(axis=2) < 20
    assert near.mean() > 0.02  # the model's face is in the video
    # An inswapper-style model needs an identity; one given as a photo is embedded for the run.
    argv = ["process", *common, "--swap-model", "colour", "--data-dir", str(copy)]
    assert main(argv) == 2 and "give --identity" in capsys.readouterr().err
    argv = [
        "process",
        *common,
        "--swap-model",
        "colour",
        "--identity",
        str(faces / "alex-lacamoire.png"),
        "--unverified",
        "--data-dir",
        str(copy),
    ]
    assert main(argv) == 0, capsys.readouterr().err
    assert "warning: model 'colour': licence CC BY-NC 4.0" in capsys.readouterr().out
    argv = ["process", *common, "--swap-model", "nosuch", "--data-dir", str(copy)]
    assert main(argv) == 2 and "no registered model named 'nosuch'" in capsys.readouterr().err


def test_http_models_list_and_swap_model_checks(data: Path, faces: Path, clips: Path, tmp_path: Path) -> None:
    from streamer.api.server import processor_factory
    from streamer.config import InputSpec, ServeConfig
    from tests.live_helpers import live_server

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    config = ServeConfig(
        port=0,
        data_dir=copy,
        inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),),
        processor="passthrough",
        max_streams=2,
    )

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            base = srv.url

            async def patch(body: dict[str, Any]) -> tuple[int, Any]:
                async with http.patch(f"{base}/api/streams/cam", json=body) as r:
                    return r.status, await r.json()

            async with http.get(f"{base}/api/models") as r:
                assert r.status == 200
                models = {m["name"]: m for m in (await r.json())["models"]}
            assert list(models)[0] == "mesh" and models["mesh"]["builtin"] is True
            assert models["colour"]["research_only"] and models["colour"]["licence_flag"] == "research-only"
            assert models["morph"]["licence_flag"] == "undeclared" and models["same"]["licence_flag"] is None
            assert models["arc"]["kind"] == "arcface" and models["half"]["resolution"] == 224
            status, body = await patch({"swap_model": "nosuch"})
            assert status == 400 and "unknown swap model 'nosuch': the swap models are mesh, " in body["error"]
            assert "colour" in body["error"] and "arc" not in body["error"].split("(")[0]
            status, body = await patch({"swap_model": "arc"})
            assert status == 400 and "is of kind arcface" in body["error"]
            status, body = await patch({"swap_model": "colour", "identity": "plain"})
            assert status == 400 and "has no embedding" in body["error"]
            status, body = await patch({"swap_model": "paint"})
            assert status == 200 and body["settings"]["swap_model"] == "paint"
            # An identity enrolled over HTTP is embedded at once, and usable with the inswapper.
            form = aiohttp.FormData()
            form.add_field("name", "woman")
            form.add_field("allow_unverified", "true")
            form.add_field("photo", (faces / "woman.png").read_bytes(), filename="woman.png")
            async with http.post(f"{base}/api/identities", data=form) as r:
                assert r.status == 201, await r.text()
                assert (await r.json())["embedded_by"] == ["arc"]
            status, body = await patch({"swap_model": "colour", "identity": "woman"})
            assert status == 200 and body["settings"]["identity"] == "woman"
            # The service's processors see the same registered models.
            full = dataclasses.replace(srv.service.config, processor="full")
            processor = processor_factory(full, srv.service)()
            assert isinstance(processor, FaceProcessor) and processor.user_models is srv.service.user_models()

    asyncio.run(scenario())


def test_build_engines_validates_and_compiles_registered_models(  # type: ignore[no-untyped-def]
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    import build_engines
    from engines.runtime import tensorrt
    from engines.runtime.plans import Manifest, PlanKey
    from engines.swap.learned import user_engine

    args = ["--dry-run", "--data-dir", str(data), "--no-progress", "--only", "user-colour", "user-half", "user-arc"]
    assert build_engines.main(args) == 0
    text = capsys.readouterr().out
    for name in ("user-colour", "user-half", "user-arc"):
        assert f"ok   {name}" in text
    assert "inswapper signature ok at 128 px" in text and "dfm signature ok at 224 px" in text

    # Compiling: the TensorRT build and session stood in for (TensorRT cannot be installed here).
    class OrtPlan:
        def __init__(self, plan_path: Path, profiles: Any) -> None:
            import onnxruntime as ort

            self._s = ort.InferenceSession(plan_path.read_text(), providers=["CPUExecutionProvider"])

        def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return dict(zip([o.name for o in self._s.get_outputs()], self._s.run(None, feeds), strict=True))

        def close(self) -> None:
            pass

    def fake_build(onnx_path: Path, plan_path: Path, profiles: Any, options: Any) -> dict[str, Any]:
        plan_path.parent.mkdir(parents=True, exist_ok=True)
        plan_path.write_text(str(onnx_path))
        return dict(profiles)

    monkeypatch.setattr(tensorrt, "build_plan", fake_build)
    monkeypatch.setattr(tensorrt, "TrtSession", OrtPlan)
    store = UserModelStore(data)
    model = store.get("half")
    engine = user_engine(store, model)
    report = build_engines.EngineReport(engine.name)
    ns = argparse.Namespace(fp16=True, workspace_gb=1.0, force=False)
    out = tmp_path / "engines"
    build_engines.compile_engine(engine, engine.path, None, out, "NVIDIA H200", "10.8.0", ns, report)
    assert report.plan.startswith("built: user-half.nvidia-h200.trt10.8.0.")
    entry = Manifest.load(out).entries[0]
    assert entry.name == "user-half" and entry.key.model_sha256 == model.sha256
    assert entry.profiles["in_face:0"].min == (1, 224, 224, 3) == entry.profiles["in_face:0"].max
    assert Manifest.load(out).lookup("user-half", PlanKey("NVIDIA H200", "10.8.0", model.sha256)).ok


# ---- the monitor page -----------------------------------------------------------------------------------------


@pytest.mark.browser
def test_monitor_page_picks_a_model_and_warns_about_its_licence(  # type: ignore[no-untyped-def]
    data: Path, clips: Path, models_dir: Path, tmp_path: Path
) -> None:
    """Headless Chromium on the monitor page of a real `stageswap serve` (full processor, a clip as input):
    the model picker lists the registered swap models (not the recogniser), marks the research-only and
    undeclared licences and the DFMs' unverified consent, warns under the list, and choosing a model makes the
    live stream swap with it."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("chromium is not installed: run `make browser-setup`")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    from tests.conftest import REPO

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    log_path = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "streamer", "serve", "--port", "0", "--data-dir", str(copy)]
    cmd += ["--input", f"cam={clips / 'd3.mp4'}", "--no-watermark"]
    env = {**os.environ, "STAGESWAP_MODELS": str(models_dir), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "wb") as log_file:
        server = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)

    def stream() -> dict[str, Any]:
        with urllib.request.urlopen(f"{url}api/streams/cam", timeout=10) as r:
            return dict(json.loads(r.read()))

    try:
        deadline = time.monotonic() + 60
        url = ""
        while not url:
            found = re.search(r"open (http://\S+/) in a browser", log_path.read_text(errors="replace"))
            if found:
                url = found.group(1)
            elif server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"stageswap serve did not start:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.1)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}monitor.html?stream=cam")
            page.wait_for_function("document.querySelectorAll('#swap-model option').length >= 6", timeout=30_000)
            options = page.eval_on_selector_all("#swap-model option", "els => els.map(e => [e.value, e.textContent])")
            labels = dict(options)
            assert list(labels)[0] == "mesh" and "arc" not in labels
            assert "research only" in labels["colour"] and "licence?" in labels["paint"]
            assert "research only" not in labels["same"] and "licence?" not in labels["same"]
            # A DFM is a likeness: unverified consent is marked like an identity's, verified consent is not.
            assert "unverified" in labels["paint"] and "unverified" not in labels["morph"]
            page.wait_for_selector("#control-fields:not([disabled])", timeout=30_000)
            page.select_option("#swap-model", "colour")
            assert "Research only" in (page.text_content("#model-note") or "")
            page.select_option("#swap-model", "same")
            page.wait_for_function("document.querySelector('#model-note').hidden")
            page.select_option("#swap-model", "paint")
            note = page.text_content("#model-note") or ""
            assert "Licence undeclared" in note and "Consent unverified" in note, note
            deadline = time.monotonic() + 30
            while stream()["settings"]["swap_model"] != "paint" and time.monotonic() < deadline:
                time.sleep(0.2)
            # The live stream now swaps with the DFM (its stage time shows), and no frame failed.
            while "swap" not in stream()["stats"]["stage_ms"] and time.monotonic() < deadline:
                time.sleep(0.2)
            state = stream()
            assert state["settings"]["swap_model"] == "paint" and "swap" in state["stats"]["stage_ms"], state
            assert state["stats"]["frames_failed"] == 0 and not errors, (state, errors)
            browser.close()
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()

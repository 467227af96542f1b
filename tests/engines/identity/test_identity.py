"""Identity enrollment on the shared photos: what is accepted, what is refused and why, and storage that
survives damage."""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.errors import InputError
from engines.identity.enroll import FaceAnalyser
from engines.identity.photos import MAX_PHOTO_PIXELS, WORK_MAX_SIDE, load_photo
from engines.identity.store import Identity, IdentityCorruptError, IdentityInfo, IdentityStore
from engines.swap.texture import texture_regions


def _imread(path: Path) -> np.ndarray:
    """A shared photo as BGR; fails the test, not later with a None, when it is missing."""
    image = cv2.imread(str(path))
    assert image is not None, f"cannot read {path}"
    return image


@pytest.fixture(scope="module")
def analyser(models_dir: Path) -> FaceAnalyser:
    from engines.face.detect import FaceDetector
    from engines.face.landmarks import FaceMesh
    from engines.runtime import load_model

    return FaceAnalyser(
        FaceDetector(load_model(models_dir / "yunet_s_dynamic.onnx"), input_width=640),
        FaceMesh(load_model(models_dir / "face_landmark.tflite")),
    )


@pytest.fixture
def store(tmp_path: Path, analyser: FaceAnalyser) -> IdentityStore:
    return IdentityStore(tmp_path / "identities", analyser=analyser)


Enrolled = Callable[[IdentityStore, str], IdentityInfo]


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory, analyser: FaceAnalyser, faces: Path) -> Enrolled:
    """``enrolled(store, photo)``: the shared photo enrolled with the default settings, named after its stem, put
    into ``store`` as its ``enroll`` writes it, and what that ``enroll`` returned. Each photo is enrolled once
    for the module (one enrollment is about a second of CPU): for the tests whose input is an enrolled identity;
    what enrollment itself does is tried through ``store.enroll``."""
    cache = IdentityStore(tmp_path_factory.mktemp("enrolled") / "identities", analyser=analyser)
    infos: dict[str, IdentityInfo] = {}

    def put(store: IdentityStore, photo: str) -> IdentityInfo:
        assert store.config == cache.config, "enrolled() holds default-settings enrollments only"
        name = Path(photo).stem.replace("_", "-").lower()
        if name not in infos:
            infos[name] = cache.enroll(name, [faces / photo])
        store.root.mkdir(parents=True, exist_ok=True)
        shutil.copytree(cache.root / name, store.root / name)
        return infos[name]

    return put


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def test_enroll_load_list_remove(store: IdentityStore, faces: Path) -> None:
    info = store.enroll("obama", [faces / "obama.jpg"])
    assert info.name == "obama" and info.photos == 1 and info.texture_size == 512
    assert info.photo_sha256 == ("0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",)
    assert info.created.endswith("+00:00")
    assert len(info.warnings) == 1 and "mouth is open" in info.warnings[0]  # he smiles with teeth
    assert info.to_dict()["photo_sha256"] == list(info.photo_sha256)
    assert [i.name for i in store.list()] == ["obama"]

    ident = store.load("obama")
    assert ident.texture.shape == (512, 512, 3) and ident.texture.dtype == np.uint8
    assert ident.shading is not None and ident.shading.shape == (512, 512, 3)
    assert ident.canonical.shape == (468, 3) and len(ident.landmarks) == 1
    assert store.load("obama") is ident  # cached
    # The albedo is the texture with the photo's light divided out: about 1 on the well-seen skin.
    skin = (texture_regions(512) == 0) & (ident.coverage > 0.5)
    assert skin.mean() > 0.2
    assert 0.7 < float(np.median(ident.albedo[skin])) < 1.4
    # A second store on the same directory reads the same identity.
    again = IdentityStore(store.root).load("obama")
    np.testing.assert_array_equal(again.texture, ident.texture)

    with pytest.raises(InputError, match="already exists"):
        store.enroll("obama", [faces / "obama.jpg"])
    replaced = store.enroll("obama", [faces / "obama.jpg"], replace=True)
    assert replaced.photos == 1
    store.remove("obama")
    assert store.list() == []
    with pytest.raises(InputError, match="no identity named 'obama'"):
        store.load("obama")
    with pytest.raises(InputError, match="no identity named"):
        store.remove("obama")
    assert not any(p.name.startswith(".") for p in store.root.iterdir())  # no temporary leftovers


def test_names_are_validated(store: IdentityStore, faces: Path) -> None:
    for bad in ("../evil", "Obama", "", "a/b", ".hidden"):
        with pytest.raises(InputError, match="invalid identity name"):
            store.enroll(bad, [faces / "obama.jpg"])
        with pytest.raises(InputError, match="invalid identity name"):
            store.load(bad)


def test_several_faces_need_a_choice(store: IdentityStore, faces: Path) -> None:
    with pytest.raises(InputError, match=r"has 3 faces .*--face largest") as err:
        store.enroll("pair", [faces / "obama_and_biden.jpg"])
    assert "#0:" in str(err.value) and "#2:" in str(err.value)
    with pytest.raises(InputError, match="there is no face #7"):
        store.enroll("pair", [faces / "obama_and_biden.jpg"], face=7)
    with pytest.raises(InputError, match="'largest' or a number"):
        store.enroll("pair", [faces / "obama_and_biden.jpg"], face="left")
    assert store.enroll("pair", [faces / "obama_and_biden.jpg"], face="largest").photos == 1
    assert store.enroll("second", [faces / "obama_and_biden.jpg"], face="1").photos == 1


def test_monkey_is_refused(store: IdentityStore, faces: Path) -> None:
    with pytest.raises(InputError, match="does not look like a human face"):
        store.enroll("monkey", [faces / "s22.jpg"])
    assert not store.exists("monkey")


def test_every_identity_photo_is_accepted(store: IdentityStore, enrolled: Enrolled) -> None:
    for name in ("biden.jpg", "s1.jpg", "woman.png", "roop_source.jpg", "alex-lacamoire.png"):
        info = enrolled(store, name)
        assert info.photos == 1, name
        assert not any("human" in w or "skin" in w for w in info.warnings), (name, info.warnings)
    assert store.load("s1").info.warnings == ()


def test_no_face_tiny_face_and_cut_face_are_refused(store: IdentityStore, faces: Path) -> None:
    monkey = _imread(faces / "s22.jpg")
    with pytest.raises(InputError, match="no face found in photo 1"):
        store.enroll("trees", [_jpeg(monkey[:, :300])])  # the tree trunk on the left, no face
    obama = _imread(faces / "obama.jpg")
    small = cv2.resize(obama, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)  # face about 48 px wide
    canvas = np.full((400, 400, 3), 128, np.uint8)
    canvas[100 : 100 + small.shape[0], 100 : 100 + small.shape[1]] = small
    with pytest.raises(InputError, match=r"px wide; at least 80 px"):
        store.enroll("tiny", [canvas])
    # Cut through the face (it spans x = 373..611 in the photo).
    with pytest.raises(InputError, match=r"cut by the image border \(left\)"):
        store.enroll("cut", [obama[:, 460:]])
    assert store.list() == []


def test_photo_decoding_limits(store: IdentityStore, faces: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read photo 1: not an image in a format stageswap reads"):
        store.enroll("junk", [b"this is not an image at all" * 10])
    with pytest.raises(InputError, match="empty"):
        store.enroll("junk", [b""])
    with pytest.raises(InputError, match="cannot read photo"):
        store.enroll("junk", [tmp_path / "missing.jpg"])
    # A header claiming 12000 x 12000 pixels is refused before any pixel is decoded.
    ihdr = struct.pack(">IIBBBBB", 12000, 12000, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    bomb = b"\x89PNG\r\n\x1a\n" + chunk + struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    assert MAX_PHOTO_PIXELS < 12000 * 12000
    with pytest.raises(InputError, match=r"a PNG of 12000x12000 \(144.0 Mpx\), over the 100 Mpx limit"):
        store.enroll("bomb", [bomb])


def test_8000_by_8000_photo_is_downscaled_and_enrolled(store: IdentityStore, faces: Path) -> None:
    obama = _imread(faces / "obama.jpg")
    big = np.full((8000, 8000, 3), 200, np.uint8)
    face = cv2.resize(obama, (obama.shape[1] * 5, obama.shape[0] * 5), interpolation=cv2.INTER_LINEAR)
    big[1000 : 1000 + face.shape[0], 1000 : 1000 + face.shape[1]] = face
    data = _jpeg(big)
    photo = load_photo(data, "big")
    assert max(photo.image.shape[:2]) <= WORK_MAX_SIDE and photo.original_size == (8000, 8000)
    info = store.enroll("big", [data])
    assert info.photos == 1


def test_multiple_photos_merge_by_visibility(store: IdentityStore, faces: Path, enrolled: Enrolled) -> None:
    one = enrolled(store, "obama.jpg")
    two = store.enroll("two", [faces / "obama.jpg", faces / "obama_and_biden.jpg"], face="largest")
    assert two.photos == 2 and len(set(two.photo_sha256)) == 2 and one.photos == 1
    a, b = store.load("obama"), store.load("two")
    assert b.coverage.sum() > a.coverage.sum()  # the second photo adds what the first saw badly
    assert len(b.landmarks) == 2


def test_corrupted_identity_files_give_a_clear_error(store: IdentityStore, enrolled: Enrolled) -> None:
    good, bad = enrolled(store, "obama.jpg").name, enrolled(store, "s1.jpg").name
    texture = store.root / bad / "texture.png"
    texture.write_bytes(texture.read_bytes()[:1000])  # truncated
    fresh = IdentityStore(store.root)
    with pytest.raises(IdentityCorruptError, match=rf"'{bad}' is corrupted: texture.png .*--replace"):
        fresh.load(bad)
    assert fresh.load(good).texture.shape == (512, 512, 3)  # the others still load

    (store.root / bad / "identity.json").write_text('{"format": "stageswap-identity", "version": 1, "na')
    with pytest.raises(IdentityCorruptError, match="not valid JSON"):
        fresh.load(bad)
    listed = {i.name: i for i in fresh.list()}
    assert listed[good].photos == 1
    assert listed[bad].warnings and listed[bad].warnings[0].startswith("corrupted:")

    (store.root / bad / "identity.json").unlink()
    with pytest.raises(IdentityCorruptError, match="identity.json is missing"):
        fresh.load(bad)
    shading = store.root / good / "shading.npy"
    shading.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(IdentityCorruptError, match="shading.npy does not match"):
        IdentityStore(store.root).load(good)


def test_cleanup_fills_the_microphone_and_keeps_the_face(
    tmp_path: Path, analyser: FaceAnalyser, faces: Path, enrolled: Enrolled
) -> None:
    """lin-manuel-miranda.png holds a microphone under his chin: cleaned, the chin is skin (of the skin's hue,
    like his cheeks), not grey metal; his beard, dark but of the skin's hue, brows and eyes stay as they were;
    coverage does not change (the identity is drawn there). A fringe is left out unless asked to stay."""
    from dataclasses import replace

    from engines.face.topology import SKIN
    from engines.identity.cleanup import CleanupConfig, brow_mask
    from engines.swap.texture import texture_canonical_y, texture_labels

    raw_store = IdentityStore(tmp_path / "raw", analyser=analyser, config=replace(analyser.config, cleanup=None))
    clean_store = IdentityStore(tmp_path / "clean", analyser=analyser)
    raw = raw_store.load(raw_store.enroll("lin", [faces / "lin-manuel-miranda.png"]).name)
    clean = clean_store.load(enrolled(clean_store, "lin-manuel-miranda.png").name)
    y = texture_canonical_y(512)
    labels = texture_labels(512)
    chin = (y > 0.8) & (labels == SKIN) & (raw.coverage > 0.5)
    cheeks = (y > -0.2) & (y < 0.2) & (labels == SKIN) & (raw.coverage > 0.5)

    def hue_distance(identity: Identity, where: np.ndarray) -> float:
        lab = cv2.cvtColor(np.ascontiguousarray(identity.texture), cv2.COLOR_BGR2LAB).astype(float)
        return float(np.linalg.norm(np.median(lab[where][:, 1:], axis=0) - np.median(lab[cheeks][:, 1:], axis=0)))

    assert hue_distance(raw, chin) > 2.0 * hue_distance(clean, chin)
    np.testing.assert_array_equal(raw.coverage > 0.5, clean.coverage > 0.5)
    # Eyes and brows untouched but for the grain: within a few levels.
    eyes = (y > -0.75) & (y < -0.3) & (labels != SKIN) & (raw.coverage > 0.5)
    assert float(np.median(np.abs(raw.texture[eyes].astype(int) - clean.texture[eyes].astype(int)))) < 6.0
    # s1.jpg's fringe (hair over the forehead and her brows) is filled with skin and left out of the identity by
    # default (its coverage drops: the actor's own forehead, or fringe, shows there); asked to, it stays.
    painted_store = IdentityStore(
        tmp_path / "painted", analyser=analyser, config=replace(analyser.config, cleanup=CleanupConfig(fringe=False))
    )
    kept = painted_store.load(painted_store.enroll("s1", [faces / "s1.jpg"]).name)
    filled = clean_store.load(enrolled(clean_store, "s1.jpg").name)
    forehead = (y < -0.8) & (labels >= 0) & (kept.coverage > 0.5)
    lightness = [float(cv2.cvtColor(i.texture, cv2.COLOR_BGR2LAB)[..., 0][forehead].std()) for i in (kept, filled)]
    assert lightness[1] < 0.6 * lightness[0]  # hair strands gone: an even forehead
    assert float(np.mean(filled.coverage[forehead])) < 0.5 * float(np.mean(kept.coverage[forehead]))
    # Her brows are under the fringe: left out too (painted, the fringe's strip over them read as heavy bars).
    brows = brow_mask(512) & (kept.coverage > 0.5)
    assert float(np.mean(filled.coverage[brows])) < 0.5 * float(np.mean(kept.coverage[brows]))
    cheeks_seen = cheeks & (kept.coverage > 0.9)
    np.testing.assert_allclose(filled.coverage[cheeks_seen], kept.coverage[cheeks_seen], atol=0.02)
    # A face with no fringe keeps its forehead and brows: lin-manuel-miranda.png's hair starts above the mesh.
    lin_painted = painted_store.load(painted_store.enroll("lin", [faces / "lin-manuel-miranda.png"]).name)
    upper = (y < -0.5) & (labels >= 0) & (clean.coverage > 0.5)
    np.testing.assert_allclose(clean.coverage[upper], lin_painted.coverage[upper], atol=0.02)


def test_a_fringe_is_found_whole_and_stays_out_on_both_sides(
    tmp_path: Path, analyser: FaceAnalyser, faces: Path
) -> None:
    """s1.jpg's fringe is brown over her right brow and lit blond over her left one, as light and as warm as her skin
    there: found by its strands too, it is left out over the whole forehead, each corner as much as the middle. A
    corner the colour alone missed is not drawn back from the other side's mirror image either (its left part came
    back from the right one's hair); and no bare forehead among the shared photos is taken for a fringe."""
    from dataclasses import replace

    from engines.identity.cleanup import CleanupConfig
    from engines.swap.texture import texture_canonical_x, texture_canonical_y, texture_labels

    x, y, labels = texture_canonical_x(512), texture_canonical_y(512), texture_labels(512)

    def enrol(config: CleanupConfig, photo: str) -> Identity:
        store = IdentityStore(tmp_path / "ids", analyser=analyser, config=replace(analyser.config, cleanup=config))
        return store.load(store.enroll(Path(photo).stem.replace("_", "-"), [faces / photo], replace=True).name)

    kept = enrol(CleanupConfig(fringe=False), "s1.jpg")
    forehead = (y < -0.8) & (labels >= 0) & (kept.coverage > 0.5)
    right, left = forehead & (x < -0.3), forehead & np.isfinite(x) & (x > 0.3)
    whole = enrol(CleanupConfig(fringe=True), "s1.jpg")
    for side in (right, forehead & (np.abs(x) <= 0.3), left):
        assert float(np.mean(whole.coverage[side])) < 0.05
    # By its colour alone (no strands), her left corner is partly missed (0.06 of its coverage kept against none;
    # 0.1 before the fringe's edge ramped out from 1); the right one stays out all the same.
    by_colour = enrol(CleanupConfig(fringe=True, fringe_strands=np.inf), "s1.jpg")
    assert float(np.mean(by_colour.coverage[left])) > 0.04
    assert float(np.mean(by_colour.coverage[right])) < 0.02
    for photo in ("obama.jpg", "biden.jpg", "roop_source.jpg", "woman.png", "lin-manuel-miranda.png"):
        bare = enrol(CleanupConfig(fringe=True), photo)
        upper = (y < -0.5) & (labels >= 0) & (bare.coverage > 0.0)
        plain = enrol(CleanupConfig(fringe=False), photo)
        np.testing.assert_allclose(bare.coverage[upper], plain.coverage[upper], atol=0.02, err_msg=photo)


def test_the_identity_gives_way_to_the_actor_under_a_fringe_without_a_jump(
    tmp_path: Path, analyser: FaceAnalyser, faces: Path
) -> None:
    """s1.jpg's fringe left out ends at her brows' lower edge; from there down to the lids the identity's coverage
    rises smoothly. The mask blurred and laid under itself jumped from 0 to about half at its edge (0.47 between
    two texels), and the identity's face began under the actor's brows as a hard line however wide the blur; as a
    Gaussian of the distance from the fringe no step between neighbouring texels is over 0.1 (measured 0.05)."""
    from dataclasses import replace

    from engines.identity.cleanup import CleanupConfig
    from engines.swap.texture import texture_canonical_x, texture_canonical_y, texture_labels

    x, y, labels = texture_canonical_x(512), texture_canonical_y(512), texture_labels(512)
    config = replace(analyser.config, cleanup=CleanupConfig(fringe=True))
    store = IdentityStore(tmp_path / "ids", analyser=analyser, config=config)
    coverage = store.load(store.enroll("s1", [faces / "s1.jpg"]).name).coverage
    band = np.isfinite(x) & (np.abs(x) < 0.45) & (y > -0.6) & (y < -0.3) & (labels >= 0)
    assert float(coverage[band & (y < -0.55)].mean()) < 0.05 and float(coverage[band & (y > -0.35)].mean()) > 0.9
    steps = np.abs(np.diff(coverage, axis=0))[band[1:] & band[:-1]]
    assert float(steps.max()) < 0.1


def _brim_shadow(image: np.ndarray, landmarks: np.ndarray, depth: float, light: float) -> np.ndarray:
    """``image`` with a hat brim's shadow painted over the forehead: everything above a line ``depth`` of the way
    from the mesh's top (point 10) down to the brows' top keeps ``light`` of its light (linear), over a soft edge."""
    from engines.face.topology import LEFT_BROW, RIGHT_BROW
    from engines.light.sh import linear_to_srgb, srgb_to_linear

    top, brows = float(landmarks[10, 1]), float(landmarks[list(RIGHT_BROW + LEFT_BROW), 1].min())
    line = top + depth * (brows - top)
    rows = np.arange(image.shape[0], dtype=np.float32)[:, None, None]
    shadow = 1.0 / (1.0 + np.exp(np.clip((rows - line) / max(0.04 * (brows - top), 1.0), -50.0, 50.0)))
    lin = srgb_to_linear(image.astype(np.float32) / 255.0) * (1.0 - shadow * (1.0 - light))
    return np.clip(np.round(linear_to_srgb(np.clip(lin, 0.0, 1.0)) * 255.0), 0, 255).astype(np.uint8)


def test_a_shadowed_forehead_or_hair_beside_the_temples_is_not_a_fringe(
    tmp_path: Path, analyser: FaceAnalyser, faces: Path, clips: Path
) -> None:
    """What is darker than the cheeks over the forehead is not always a fringe. d10.mp4's actress (frames 44 and
    442, as ``identities add NAME CLIP`` picks them) has black hair parted in the middle beside her temples, over
    the mesh's forehead corners, and a raised brow's hairs joining it (frame 442): taken for a fringe, 50-75% of
    her forehead was left out of every identity enrolled from her footage. A hat brim's shadow painted over a bare
    forehead (obama.jpg, lin-manuel-miranda.png and d10's frame 44; halfway down the forehead at 0.35 of the
    light, down to the brows at 0.45) is darker than the cheeks but keeps the skin's colour and smoothness: 80-100%
    was left out. None is a fringe: the forehead's coverage is the enrollment's without the fringe test."""
    from dataclasses import replace

    from engines.identity.cleanup import CleanupConfig
    from engines.swap.texture import texture_canonical_y, texture_labels
    from streamer.record.media import VideoReader

    y, labels = texture_canonical_y(512), texture_labels(512)
    photos: dict[str, np.ndarray] = {}
    with VideoReader(clips / "d10.mp4") as reader:
        for index, frame in enumerate(reader.frames()):
            if index in (44, 442):
                photos[f"d10-{index}"] = frame.image
            if index >= 442:
                break
    assert len(photos) == 2
    bare = {"obama": _imread(faces / "obama.jpg"), "lin": _imread(faces / "lin-manuel-miranda.png")}
    bare["d10-44"] = photos["d10-44"]
    for name, image in bare.items():
        landmarks = analyser.analyse(load_photo(image, name), "largest").landmarks
        photos[f"{name}-brim-half"] = _brim_shadow(image, landmarks, 0.5, 0.35)
        photos[f"{name}-brim-whole"] = _brim_shadow(image, landmarks, 1.0, 0.45)
    configs = {taken: replace(analyser.config, cleanup=CleanupConfig(fringe=taken)) for taken in (False, True)}
    stores = {taken: IdentityStore(tmp_path / str(taken), analyser=analyser, config=c) for taken, c in configs.items()}
    for name, image in photos.items():
        plain, tested = (s.load(s.enroll(name, [image], face="largest").name) for s in (stores[False], stores[True]))
        forehead = (y < -0.5) & (labels >= 0) & (plain.coverage > 0.0)
        np.testing.assert_allclose(tested.coverage[forehead], plain.coverage[forehead], atol=0.02, err_msg=name)


def test_the_far_side_of_a_turned_photo_is_filled_from_the_near_side(
    tmp_path: Path, analyser: FaceAnalyser, faces: Path, enrolled: Enrolled
) -> None:
    """lin-manuel-miranda.png is turned a little: his left cheek (image right) is seen at a grazing angle.
    Its texels take the mirrored right cheek, so the identity shows there when an actor turns that way."""
    from dataclasses import replace

    from engines.swap.texture import texture_canonical_x

    x = texture_canonical_x(512)
    far, near = np.isfinite(x) & (x > 0.3), x < -0.3
    plain = IdentityStore(tmp_path / "plain", analyser=analyser, config=replace(analyser.config, mirror=False))
    mirrored = IdentityStore(tmp_path / "mirrored", analyser=analyser)
    a = plain.load(plain.enroll("lin", [faces / "lin-manuel-miranda.png"]).name)
    b = mirrored.load(enrolled(mirrored, "lin-manuel-miranda.png").name)
    assert a.coverage[far].mean() < 0.75 < 0.85 < b.coverage[far].mean()
    np.testing.assert_array_equal(a.coverage[near], b.coverage[near])
    # What was filled looks like his skin there: as bright as the near cheek's texels, not the fill's grey.
    filled = far & (b.coverage - a.coverage > 0.3)
    lightness = cv2.cvtColor(b.texture, cv2.COLOR_BGR2LAB)[..., 0].astype(float)
    assert abs(np.median(lightness[filled]) - np.median(lightness[near & (a.coverage > 0.9)])) < 30


def test_white_hair_and_the_outline_draw_no_bright_streak(store: IdentityStore, enrolled: Enrolled) -> None:
    """biden.jpg is small, side-lit and turned a little, with white hair at his left temple (the texture's
    x > 0) down to the jaw. That hair is not skin: under an eighth of that side (12% at 91a5642) stays
    paler and greyer than his cheeks. And near the outline, where the photo's shading at grazing normals is
    small, dividing it out may not make the albedo much brighter than the cheeks (its brightest 5% were
    2.4x the cheeks' on that side, 1.3x on the other: a white-cyan streak down the side of every frame)."""
    from engines.swap.texture import texture_canonical_x, texture_canonical_y

    ident = store.load(enrolled(store, "biden.jpg").name)
    size = ident.texture.shape[0]
    x, y = texture_canonical_x(size), texture_canonical_y(size)
    skin = texture_regions(size) == 0
    lab = cv2.cvtColor(ident.texture, cv2.COLOR_BGR2LAB).astype(np.float32)
    chroma = np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)
    albedo = ident.albedo @ np.array([0.0722, 0.7152, 0.2126], np.float32)
    for side, most_pale, most_bright in ((1, 0.06, 1.6), (-1, 0.02, 1.2)):
        cheek = skin & (y > -0.1) & (y < 0.2) & (np.abs(x) > 0.3) & (np.abs(x) < 0.5) & (np.sign(x) == side)
        band = skin & (np.abs(x) > 0.45) & (y > -0.9) & (y < 0.55) & (np.sign(x) == side)
        assert cheek.sum() > 500 and band.sum() > 2000
        pale = (lab[..., 0] > np.median(lab[..., 0][cheek]) + 25) & (chroma < 0.6 * np.median(chroma[cheek]))
        assert pale[band].mean() < most_pale, (side, pale[band].mean())
        brightest = np.percentile(albedo[band], 95) / np.median(albedo[cheek])
        assert brightest < most_bright, (side, brightest)


def test_the_foreheads_top_corners_are_not_limited_to_grey(store: IdentityStore, enrolled: Enrolled) -> None:
    """Near the outline the albedo is limited to a little over the skin beside it. At the forehead's top corners
    little skin lies within reach (the brows' band is not skin) and what does (the lids' lashes and shadow) read at
    a third of the skin's level: roop_source.jpg's corners were limited to a grey patch (their median 0.66-0.72 of
    the forehead's middle, their darkest quarter 0.47-0.52), drawn on the forehead and temple of every actor turned
    to show it (s18.mp4's close-up). Now the level leans to the face's median where little skin is in reach."""
    from engines.identity.store import _outline_depth
    from engines.swap.texture import texture_canonical_x, texture_canonical_y

    ident = store.load(enrolled(store, "roop_source.jpg").name)
    size = ident.texture.shape[0]
    x, y = texture_canonical_x(size), texture_canonical_y(size)
    skin = (texture_regions(size) == 0) & (ident.coverage > 0.5)
    albedo = ident.albedo @ np.array([0.0722, 0.7152, 0.2126], np.float32)
    middle = float(np.median(albedo[skin & (np.abs(x) < 0.3) & (y > -0.9) & (y < -0.55)]))
    for side, was in ((-1, (0.66, 0.47)), (1, (0.72, 0.52))):
        corner = skin & (_outline_depth(size) < 0.1) & (np.abs(x) > 0.3) & (y < -0.55) & (np.sign(x) == side)
        assert corner.sum() > 4000
        ratios = np.percentile(albedo[corner], [50, 25]) / middle
        assert ratios[0] > 0.76 and ratios[1] > 0.6, (side, ratios, "was", was)


def test_white_hair_leaves_no_spot_beside_the_brow_nor_a_line_down_the_jaw(
    store: IdentityStore, enrolled: Enrolled
) -> None:
    """biden.jpg's white hair at his left temple also lies over his brow's outer end, and thins out down his jaw into a
    streak a few texels of skin in from the rest of it. Kept as brow, the first was a white spot beside the brow on
    every frame (449 texels of that temple paler and greyer than his cheeks; 0 now); left, the second a faint pale
    line low on the jaw (39 texels somewhat paler and greyer; 0 now)."""
    from engines.swap.texture import texture_canonical_x, texture_canonical_y

    ident = store.load(enrolled(store, "biden.jpg").name)
    size = ident.texture.shape[0]
    x, y = texture_canonical_x(size), texture_canonical_y(size)
    inside = texture_regions(size) >= 0
    lab = cv2.cvtColor(ident.texture, cv2.COLOR_BGR2LAB).astype(np.float32)
    chroma = np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)
    cheek = (texture_regions(size) == 0) & (y > -0.1) & (y < 0.2) & (x > 0.3) & (x < 0.5)
    lighter = lab[..., 0] - np.median(lab[..., 0][cheek])
    greyer = chroma / np.median(chroma[cheek])
    temple = inside & (x > 0.45) & (x < 0.7) & (y > -0.75) & (y < -0.45)
    jaw = inside & (x > 0.38) & (x < 0.55) & (y > 0.2) & (y < 0.55)
    assert temple.sum() > 3000 and jaw.sum() > 2000
    assert ((lighter > 25) & (greyer < 0.6) & temple).sum() < 50
    assert ((lighter > 12) & (greyer < 0.8) & jaw).sum() < 10


def test_a_closed_mouths_corners_are_not_painted_as_smudges(
    store: IdentityStore, enrolled: Enrolled, analyser: FaceAnalyser, faces: Path, tmp_path: Path
) -> None:
    """biden.jpg's lips are closed: the texture stretches his mouth's corners, and their shadow, over the whole width
    of the opening, and they were drawn as two grey-brown smudges beside every frame's mouth (d10.mp4). Lifted
    halfway at enrollment (``CleanupConfig.mouth_corners``), the darkest tenth of the albedo around the corners is
    0.37 of the cheeks' above them (0.14 before). A photo with parted lips (s1.jpg) is left as it was."""
    from engines.identity.cleanup import CleanupConfig
    from engines.identity.enroll import EnrollConfig
    from engines.swap.texture import texture_canonical_x, texture_canonical_y

    ident = store.load(enrolled(store, "biden.jpg").name)
    size = ident.texture.shape[0]
    x, y = np.abs(texture_canonical_x(size)), texture_canonical_y(size)
    labels = texture_regions(size)
    corners = (labels >= 0) & (((x - 0.3) / 0.1) ** 2 + ((y - 0.47) / 0.12) ** 2 < 1.0) & (ident.coverage > 0.5)
    cheeks = (labels == 0) & (x > 0.3) & (x < 0.55) & (y > 0.2) & (y < 0.35) & (ident.coverage > 0.5)
    assert corners.sum() > 2000 and cheeks.sum() > 2000
    luma = ident.albedo @ np.array([0.0722, 0.7152, 0.2126], np.float32)
    assert np.percentile(luma[corners], 10) / np.median(luma[cheeks]) > 0.25
    off = IdentityStore(
        tmp_path / "off", analyser=analyser, config=EnrollConfig(cleanup=CleanupConfig(mouth_corners=0.0))
    )
    off.enroll("s1", [faces / "s1.jpg"])
    np.testing.assert_array_equal(off.load("s1").texture, store.load(enrolled(store, "s1.jpg").name).texture)


def test_the_photos_side_light_is_divided_out_and_its_colour_kept(store: IdentityStore, enrolled: Enrolled) -> None:
    """s1.jpg is lit more on one side (its shading: one cheek about twice the other). The albedo's two
    cheeks come out within 40% of each other (1.27; dividing only a clipped shading left one cheek twice as
    bright as the other, and one side of every swap pale), and the photo's own colours, blush included, stay."""
    from engines.light.sh import srgb_to_linear
    from engines.swap.texture import texture_canonical_x, texture_canonical_y

    ident = store.load(enrolled(store, "s1.jpg").name)
    assert ident.shading is not None
    size = ident.texture.shape[0]
    x, y = texture_canonical_x(size), texture_canonical_y(size)
    seen = (texture_regions(size) == 0) & (ident.coverage > 0.9)
    luma = np.array([0.0722, 0.7152, 0.2126], np.float32)
    cheeks = [
        seen & (y > -0.1) & (y < 0.2) & (np.abs(x) > 0.35) & (np.abs(x) < 0.6) & (np.sign(x) == side)
        for side in (-1, 1)
    ]
    assert all(c.sum() > 1000 for c in cheeks)
    shade = [float(np.median(ident.shading[c] @ luma)) for c in cheeks]
    assert max(shade) / min(shade) > 1.8  # the photo's light really is one-sided
    albedo = [float(np.median(ident.albedo[c] @ luma)) for c in cheeks]
    assert max(albedo) / min(albedo) < 1.4, albedo
    # Colour: only the light's brightness and one overall tint are divided out, so each texel's red/green
    # and blue/green stay the photo's times one constant (a spatial cast removal moved them by +-30%).
    lin = srgb_to_linear(ident.texture.astype(np.float32) / 255.0)
    skin = seen & (lin.min(axis=2) > 0.01)
    for channel in (2, 0):
        ratio = (ident.albedo[skin][:, channel] / ident.albedo[skin][:, 1]) / (lin[skin][:, channel] / lin[skin][:, 1])
        assert np.percentile(ratio, 95) / np.percentile(ratio, 5) < 1.05


def test_a_photos_blush_is_not_painted_on_the_actor(store: IdentityStore, enrolled: Enrolled) -> None:
    """s1.jpg wears heavy blush: its cheeks' broad a* was 11.0 units over its skin's median (a face's own cheeks are
    1-5 redder than its forehead on the shared photos without make-up), two red discs on every actor. The clean-up
    takes the skin's broad colour back to within a few units of the face's own (``CleanupConfig.skin_colour``): 7.0;
    the lightness stays."""
    from engines.light.sh import linear_to_srgb
    from engines.swap.texture import texture_canonical_x, texture_canonical_y

    ident = store.load(enrolled(store, "s1.jpg").name)
    size = ident.texture.shape[0]
    x, y = np.abs(texture_canonical_x(size)), texture_canonical_y(size)
    skin = (texture_regions(size) == 0) & (ident.coverage > 0.5)
    luma = ident.albedo @ np.array([0.0722, 0.7152, 0.2126], np.float32)
    srgb = linear_to_srgb(np.clip(ident.albedo * (0.35 / float(np.median(luma[skin]))), 0.0, 1.0))
    a = cv2.cvtColor(srgb.astype(np.float32), cv2.COLOR_BGR2LAB)[..., 1]
    w = skin.astype(np.float32)
    broad = cv2.GaussianBlur(a * w, (0, 0), size / 24) / np.maximum(cv2.GaussianBlur(w, (0, 0), size / 24), 1e-3)
    cheeks = skin & (x > 0.3) & (x < 0.7) & (y > -0.15) & (y < 0.45)
    assert cheeks.sum() > 5000
    assert np.percentile(broad[cheeks], 95) - np.median(a[skin]) < 9.0


def test_a_photos_blotchy_skin_colour_is_not_painted_as_a_mottle(store: IdentityStore, enrolled: Enrolled) -> None:
    """s1.jpg's flash-lit, retouched skin is blotchy in colour: below the eyes its lower cheeks are paler and less red
    than her median skin, the shadow beside her mouth olive, her blush in patches — drawn on a pale actor (s18.mp4's
    close-up) a mottle of teal, yellow and pink. The clean-up evens the skin's colour at a finer scale and keeps half
    of its colour detail (``CleanupConfig.skin_colour_detail``): a few texels around, the lower cheeks' colour departs
    from its median by 5.1 a*b* units at the median, 15.7 at the 99th percentile (before) -> 3.7 and 10.9."""
    from engines.face.topology import SKIN
    from engines.light.sh import linear_to_srgb
    from engines.swap.texture import texture_canonical_x, texture_canonical_y, texture_labels

    ident = store.load(enrolled(store, "s1.jpg").name)
    size = ident.texture.shape[0]
    x, y = np.abs(texture_canonical_x(size)), texture_canonical_y(size)
    skin = (texture_labels(size) == SKIN) & (ident.coverage > 0.5)
    luma = ident.albedo @ np.array([0.0722, 0.7152, 0.2126], np.float32)
    srgb = linear_to_srgb(np.clip(ident.albedo * (0.35 / float(np.median(luma[skin]))), 0.0, 1.0))
    lab = cv2.cvtColor(srgb.astype(np.float32), cv2.COLOR_BGR2LAB)
    w = skin.astype(np.float32)
    norm = np.maximum(cv2.GaussianBlur(w, (0, 0), size / 128), 1e-3)
    ab = np.dstack([cv2.GaussianBlur(lab[..., c] * w, (0, 0), size / 128) / norm for c in (1, 2)])
    lower = skin & (y > 0.05) & (x > 0.15) & (x < 0.7)
    assert lower.sum() > 5000
    spread = np.linalg.norm(ab - np.median(ab[lower], axis=0), axis=2)[lower]
    assert np.median(spread) < 4.4 and np.percentile(spread, 99) < 13.0


def test_the_skin_beside_the_lips_is_evened_with_the_skin(store: IdentityStore, enrolled: Enrolled) -> None:
    """The band of the mesh around the lips (triangles touching the outer lip contour, labelled a feature) is mostly
    skin. s1.jpg's olive shadow at her mouth's corners and under her lower lip, there, was left out of the
    skin-colour evening while the skin around it was evened: a yellow-green band around the lips on every actor. Its
    skin-coloured texels (nearer the skin's median a*b* than the lips') now depart from the skin's median by 5.4 a*b*
    units at the 90th percentile of their broad colour (9.0 before); the lips keep their colour."""
    from engines.face.topology import FEATURE, LIPS, SKIN
    from engines.light.sh import linear_to_srgb
    from engines.swap.texture import texture_canonical_y, texture_labels

    ident = store.load(enrolled(store, "s1.jpg").name)
    size = ident.texture.shape[0]
    labels = texture_labels(size)
    y = np.nan_to_num(texture_canonical_y(size), nan=-9.0, posinf=-9.0, neginf=-9.0)
    seen = ident.coverage > 0.5
    skin = (labels == SKIN) & seen & (y > -0.3)
    lips = (labels == LIPS) & seen
    luma = ident.albedo @ np.array([0.0722, 0.7152, 0.2126], np.float32)
    # Exposed low enough that her flash-lit chin is not clipped.
    srgb = linear_to_srgb(np.clip(ident.albedo * (0.2 / float(np.median(luma[skin]))), 0.0, 1.0))
    ab = cv2.cvtColor(srgb.astype(np.float32), cv2.COLOR_BGR2LAB)[..., 1:]
    skin_ab, lips_ab = np.median(ab[skin], axis=0), np.median(ab[lips], axis=0)
    band = (labels == FEATURE) & (y > 0.0) & seen
    like = band & (np.linalg.norm(ab - skin_ab, axis=2) < np.linalg.norm(ab - lips_ab, axis=2))
    assert like.sum() > 0.8 * band.sum() > 3000
    w = like.astype(np.float32)
    norm = np.maximum(cv2.GaussianBlur(w, (0, 0), size / 128), 1e-3)
    broad = np.dstack([cv2.GaussianBlur(ab[..., c] * w, (0, 0), size / 128) / norm for c in (0, 1)])
    assert np.percentile(np.linalg.norm(broad - skin_ab, axis=2)[like], 90) < 7.0
    assert lips_ab[0] - skin_ab[0] > 10.0  # her lipstick stays


def test_a_chin_lit_from_below_is_not_drawn_pale(store: IdentityStore, enrolled: Enrolled) -> None:
    """s1.jpg's chin is lit by a bounce from her clothes, which the photo's light model (lit from above: a chin turned
    down gets little) has no term for: divided by too little, its albedo was 1.34x her cheeks' and drawn as a pale
    chin on an evenly lit actor (d10.mp4). Below the mouth the albedo's broad level is now at most 1.1x the photo's own
    there (relative to the cheeks): 1.14."""
    from engines.swap.texture import texture_canonical_x, texture_canonical_y

    ident = store.load(enrolled(store, "s1.jpg").name)
    size = ident.texture.shape[0]
    x, y = np.abs(texture_canonical_x(size)), texture_canonical_y(size)
    skin = (texture_regions(size) == 0) & (ident.coverage > 0.5)
    luma = ident.albedo @ np.array([0.0722, 0.7152, 0.2126], np.float32)
    cheeks = skin & (x > 0.3) & (x < 0.6) & (y > -0.1) & (y < 0.3)
    chin = skin & (x < 0.3) & (y > 0.7)
    assert cheeks.sum() > 3000 and chin.sum() > 1000
    assert np.median(luma[chin]) / np.median(luma[cheeks]) < 1.25


def _sepia(image: np.ndarray) -> np.ndarray:
    """A sepia print of ``image``: one brown hue whose strength follows the lightness."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    tint = np.array([0.62, 0.82, 1.0], np.float32)  # BGR: brown
    return np.clip(grey[..., None] * tint * 255.0 * 1.05, 0, 255).astype(np.uint8)


def test_black_and_white_and_sepia_photos_are_enrolled_monochrome(
    store: IdentityStore, faces: Path, enrolled: Enrolled
) -> None:
    """An archival portrait has no colour of the person: a grey and a sepia copy of s1.jpg are enrolled (they
    were refused as 'only 0% of it has skin tones'), marked monochrome with a warning that says the swap takes
    the actor's skin colour; their texture is grey (no sepia cast painted onto the actor). The colour photo
    itself stays colour."""
    from engines.identity.photos import photo_tone

    s1 = _imread(faces / "s1.jpg")
    grey = cv2.cvtColor(cv2.cvtColor(s1, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert photo_tone(s1) == "colour" and photo_tone(grey) == "monochrome" and photo_tone(_sepia(s1)) == "toned"
    for name in ("roop_source.jpg", "lin-manuel-miranda.png", "obama.jpg", "biden.jpg", "woman.png"):
        assert photo_tone(_imread(faces / name)) == "colour", name
    for name, image in (("grey", grey), ("sepia", _sepia(s1))):
        info = store.enroll(name, [_jpeg(image)], face="largest")
        assert info.monochrome, name
        assert any("takes the actor's skin colour" in w for w in info.warnings), info.warnings
        ident = store.load(name)
        assert ident.monochrome
        seen = ident.coverage > 0.5
        bgr = ident.texture[seen].astype(np.int16)
        assert np.percentile(bgr.max(axis=1) - bgr.min(axis=1), 99) <= 3, name  # grey: B = G = R
    assert not enrolled(store, "s1.jpg").monochrome
    assert not store.load("s1").monochrome


def test_a_grey_monkey_is_still_refused(store: IdentityStore, faces: Path) -> None:
    """The non-human check does not rest on hue alone: s22.jpg in black and white is refused too (by its
    pale fur ring's lightness), while grey human photos pass it (above)."""
    monkey = _imread(faces / "s22.jpg")
    grey = cv2.cvtColor(cv2.cvtColor(monkey, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    for image in (grey, _sepia(monkey)):
        with pytest.raises(InputError, match="does not look like a human face"):
            store.enroll("monkey", [_jpeg(image)])
    assert not store.exists("monkey")


def test_a_smile_is_taken_out_of_the_identity(store: IdentityStore, enrolled: Enrolled) -> None:
    """roop_source.jpg smiles broadly with teeth. Its identity's face shape (which drives the morph) has the
    mouth back to a neutral width, and its texture's lips carry no teeth: the mouth's texels are lip-coloured
    (a*, red), not the teeth's white. A neutral photo's shape is left as it was."""
    from engines.face.topology import LIPS, MOUTH_OPENING, frontalise
    from engines.identity.expression import smile_amount

    ident = store.load(enrolled(store, "roop_source.jpg").name)
    photo_shape = frontalise(ident.landmarks[0])
    assert smile_amount(photo_shape) > 0.8
    assert smile_amount(ident.canonical) == 0.0
    width = float(np.linalg.norm(ident.canonical[291, :2] - ident.canonical[61, :2]))
    assert width < float(np.linalg.norm(photo_shape[291, :2] - photo_shape[61, :2])) - 0.1
    labels = texture_regions(512)
    mouth = ((labels == LIPS) | (labels == MOUTH_OPENING)) & (ident.coverage > 0.3)
    lab = cv2.cvtColor(ident.texture, cv2.COLOR_BGR2LAB).astype(np.float32)
    teeth = (lab[..., 0] > 170) & (np.abs(lab[..., 1] - 128) < 12)
    assert (teeth & mouth).sum() < 0.02 * mouth.sum(), (teeth & mouth).sum() / mouth.sum()
    neutral = store.load(enrolled(store, "lin-manuel-miranda.png").name)
    assert np.allclose(neutral.canonical, frontalise(neutral.landmarks[0]), atol=1e-4)


def test_a_grins_raised_upper_lip_is_lowered_in_the_identitys_shape(
    store: IdentityStore, enrolled: Enrolled, analyser: FaceAnalyser, faces: Path, tmp_path: Path
) -> None:
    """A grin raises the upper lip off the teeth: roop_source.jpg's upper lip sits 0.097 eye-corner distances under her
    nose tip (landmark 2 to 0), obama.jpg's 0.120, where the photos that do not smile read 0.14-0.18. The identity's
    shape lowers it by a tenth of the lips' gap, at most ``GRIN_LIP_MAX`` (``EnrollConfig.grin_lip``; 0.112 and
    0.140), the lower lip where the photo had it, the nose where it was. A photo that does not smile keeps its shape
    (biden.jpg), and ``grin_lip`` 0 leaves the grin's upper lip as it was."""
    from engines.face.topology import frontalise
    from engines.identity.enroll import EnrollConfig
    from engines.identity.expression import GRIN_LIP, GRIN_LIP_MAX, smile_amount

    def philtrum(shape: np.ndarray) -> float:
        return float(shape[0, 1] - shape[2, 1])

    for photo in ("roop_source.jpg", "obama.jpg"):
        ident = store.load(enrolled(store, photo).name)
        raw = frontalise(ident.landmarks[0])
        assert philtrum(raw) < 0.125, photo
        drop = philtrum(ident.canonical) - philtrum(raw)
        expected = smile_amount(raw) * min(GRIN_LIP * float(raw[14, 1] - raw[13, 1]), GRIN_LIP_MAX)
        assert drop > 0.012 and abs(drop - expected) < 1e-3, (photo, drop, expected)
        assert abs(float(ident.canonical[2, 1] - raw[2, 1])) < 1e-4  # the nose stays
        assert abs(float(ident.canonical[14, 1] - raw[14, 1])) < 1e-4  # so does the lower lip
    biden = store.load(enrolled(store, "biden.jpg").name)
    assert np.allclose(biden.canonical, frontalise(biden.landmarks[0]), atol=1e-4)
    kept = IdentityStore(tmp_path / "kept", analyser=analyser, config=EnrollConfig(grin_lip=0.0))
    kept.enroll("roop", [faces / "roop_source.jpg"])
    shape = kept.load("roop").canonical
    assert abs(philtrum(shape) - philtrum(frontalise(kept.load("roop").landmarks[0]))) < 1e-4


def _nose_base_zones() -> tuple[np.ndarray, np.ndarray]:
    """The skin under the nose (the nostrils' and the nose base's zones, not the holes) and the cheeks beside the
    nose, on a 512 texture."""
    from engines.swap.texture import shadow_zones, texture_canonical_x, texture_canonical_y

    zones = shadow_zones(512)
    zone = (np.maximum(zones.nostrils, zones.under_nose) > 0.9) & (texture_regions(512) == 0)
    x, y = texture_canonical_x(512), texture_canonical_y(512)
    beside = (texture_regions(512) == 0) & (np.abs(x) > 0.3) & (np.abs(x) < 0.5) & (y > -0.1) & (y < 0.2)
    return zone, beside


def _nose_base_darkest(ident: Identity) -> float:
    """The darkest tenth of the skin under the nose in an identity's albedo against its cheeks' median."""
    zone, beside = _nose_base_zones()
    return _zone_against(ident, zone, beside, 10)


def _zone_against(
    ident: Identity, zone: np.ndarray, reference: np.ndarray, percentile: float, sigma: float = 0.0
) -> float:
    """A percentile of an identity's albedo lightness over ``zone`` (blurred by ``sigma`` texels first: its broad
    lightness) against the median over ``reference``, both where the photos saw the texels well."""
    seen = ident.coverage > 0.5
    lum = ident.albedo @ np.array([0.0722, 0.7152, 0.2126], np.float32)
    broad = cv2.GaussianBlur(lum, (0, 0), sigma) if sigma > 0 else lum
    return float(np.percentile(broad[zone & seen], percentile)) / float(np.median(lum[reference & seen]))


def test_the_photos_nose_base_shadow_is_lifted_and_a_moustache_kept(
    store: IdentityStore, enrolled: Enrolled, faces: Path, analyser: FaceAnalyser, tmp_path: Path
) -> None:
    """biden.jpg is lit from above: its nostrils and the shadow under its nose stay in the albedo (the de-lighting
    divides its light out only within ``SHADING_RANGE`` there) as a dark band, drawn under every frame's nose (d10.mp4:
    under the nose 14 L*a*b* units darker than the actress's). The skin's darkest tenth in that zone is 0.25 of the
    cheeks beside it without the lift, 0.47 with the default clean-up (``nose_shadows``). lin-manuel-miranda.png's
    moustache is hair, not shadow: left exactly as it was (``MOUSTACHE_DETAIL``). s1.jpg is lit by a flash, which casts
    no shadow under the nose (``NOSE_UNDERSIDE_SHADE``), but her nostrils are dark cavities all the same: lifted by half
    as much (``nose_shadows_unlit``), 0.36 -> 0.52."""
    from engines.identity.cleanup import CleanupConfig
    from engines.identity.enroll import EnrollConfig

    darkest = _nose_base_darkest
    zone, _ = _nose_base_zones()
    off = IdentityStore(tmp_path / "off", analyser=analyser, config=EnrollConfig(cleanup=CleanupConfig(nose_shadows=0)))
    for photo, name in (("biden.jpg", "biden"), ("lin-manuel-miranda.png", "lin-manuel-miranda"), ("s1.jpg", "s1")):
        off.enroll(name, [faces / photo], face="largest")
        enrolled(store, photo)
    assert darkest(off.load("biden")) < 0.35  # 0.25
    assert darkest(store.load("biden")) > 0.45, darkest(store.load("biden"))  # 0.47 (0.50 before the nose's light)
    moustache, kept = store.load("lin-manuel-miranda"), off.load("lin-manuel-miranda")
    assert darkest(kept) < 0.35  # the moustache is dark: 0.22
    assert np.array_equal(moustache.albedo[zone], kept.albedo[zone])
    s1, unlit = store.load("s1"), off.load("s1")
    assert darkest(unlit) < 0.42, darkest(unlit)  # 0.36
    assert darkest(s1) > 0.47, darkest(s1)  # 0.52


def test_a_photo_seen_from_below_keeps_its_nostrils_as_a_flash_lit_ones(
    store: IdentityStore, enrolled: Enrolled, faces: Path, analyser: FaceAnalyser, tmp_path: Path
) -> None:
    """roop_source.jpg is taken from 12 degrees below her face under a light from above: her nose's base shows its
    nostrils open, and what darkens it is those cavities, not a shadow the nose casts (foreshortened from there). Lifted
    as biden.jpg's (seen from 4 degrees above), the skin under her nose came out lighter than every clip's actor's and
    her nostrils a pale ring; she now gets a flash-lit photo's lift (``CleanupConfig.nose_shadows_below_deg``): the
    zone's darkest tenth 0.63 -> 0.57 of her cheeks (0.50 with no lift at all). biden.jpg,
    and every shared photo not lit from above or seen from above, enroll to the same bytes with the test off."""
    import math

    from engines.identity.cleanup import CleanupConfig
    from engines.identity.enroll import EnrollConfig

    darkest = _nose_base_darkest
    by_light = IdentityStore(
        tmp_path / "light",
        analyser=analyser,
        config=EnrollConfig(cleanup=CleanupConfig(nose_shadows_below_deg=math.inf)),
    )
    for photo in ("roop_source.jpg", "biden.jpg"):
        by_light.enroll(Path(photo).stem.replace("_", "-"), [faces / photo])
    now, before = store.load(enrolled(store, "roop_source.jpg").name), by_light.load("roop-source")
    assert darkest(now) < darkest(before) - 0.03, (darkest(now), darkest(before))
    biden = store.load(enrolled(store, "biden.jpg").name)
    assert np.array_equal(biden.texture, by_light.load("biden").texture)


def test_a_side_lit_photos_nose_shadow_and_ridge_highlight_are_not_painted(
    store: IdentityStore, enrolled: Enrolled, faces: Path, analyser: FaceAnalyser, tmp_path: Path
) -> None:
    """s1.jpg is lit from her left and by a flash: her nose's right sidewall lies in shadow and its ridge shines. The
    light model, smooth over the face, leaves both in the albedo (the de-lighting divides the photo's light's detail out
    only within ``SHADING_RANGE``), and the swap drew them on every frame whatever the actor's light (BENCHMARKS.md,
    issue 21). Across her nose (ridge and sidewalls below the eyes) the albedo's broad lightness runs from 0.29 to 1.24
    of her cheeks' beside it (5th and 95th percentiles) without the clean-up step; with it, the highlight goes and half
    the shadow: 0.45 to 1.08. roop_source.jpg's nose, lit softly from the front, is left within 0.02."""
    from engines.identity.cleanup import CleanupConfig, nose_zone
    from engines.identity.enroll import EnrollConfig
    from engines.swap.texture import texture_canonical_x, texture_canonical_y

    off = IdentityStore(
        tmp_path / "off",
        analyser=analyser,
        config=EnrollConfig(cleanup=CleanupConfig(nose_shading=0, nose_highlight=0, mouth_skin_pale=0, pale_cheeks=0)),
    )
    x, y = texture_canonical_x(512), texture_canonical_y(512)
    skin = texture_regions(512) == 0
    zone = (nose_zone(512) > 0.9) & skin
    beside = skin & (np.abs(x) > 0.3) & (np.abs(x) < 0.5) & (y > -0.2) & (y < 0.1)
    luma = np.array([0.0722, 0.7152, 0.2126], np.float32)

    def spread(ident: Identity) -> tuple[float, float]:
        seen = ident.coverage > 0.5
        lum = ident.albedo @ luma
        w = seen.astype(np.float32)
        broad = cv2.GaussianBlur(lum * w, (0, 0), 512 / 96) / np.maximum(cv2.GaussianBlur(w, (0, 0), 512 / 96), 1e-3)
        low, high = np.percentile(broad[zone & seen], (5, 95)) / float(np.median(lum[beside & seen]))
        return float(low), float(high)

    for photo, name in (("s1.jpg", "s1"), ("roop_source.jpg", "roop")):
        off.enroll(name, [faces / photo], face="largest")
    low, high = spread(off.load("s1"))
    assert low < 0.35 and high > 1.18, (low, high)  # 0.29, 1.24
    # The step alone: the skin round the mouth and the cheeks dimmed on a flash-lit photo (``mouth_skin_pale``,
    # ``pale_cheeks``) would move the cheeks this is measured against, and the one-sided shadow's part
    # (``nose_side_light``) the sidewall.
    alone = IdentityStore(
        tmp_path / "alone",
        analyser=analyser,
        config=EnrollConfig(cleanup=CleanupConfig(mouth_skin_pale=0, pale_cheeks=0, nose_side_light=0)),
    )
    for photo, name in (("s1.jpg", "s1"), ("roop_source.jpg", "roop")):
        alone.enroll(name, [faces / photo], face="largest")
    low, high = spread(alone.load("s1"))
    assert low > 0.4 and high < 1.12, (low, high)  # 0.45, 1.08
    kept, flat = spread(off.load("roop")), spread(alone.load("roop"))
    assert np.allclose(kept, flat, atol=0.02), (kept, flat)


def test_a_side_lights_shadow_down_one_sidewall_of_the_nose_is_taken_out(
    enrolled: Enrolled, faces: Path, analyser: FaceAnalyser, tmp_path: Path
) -> None:
    """s1.jpg is lit from her left: her nose's right sidewall lies in a shadow its left one does not have, the photo's
    light, not her nose's shape. Judged as a shadow both sidewalls share (``nose_shading``: half beyond the tolerance)
    it stayed a dark stripe down every actor's nose beside the lit ridge, the nose the worst region of every frame of
    s18.mp4 (under the actress's own highlight) and of most of d0.mp4 (BENCHMARKS.md, issue 21). The right sidewall's
    broad lightness, at its median, is 0.58 of the left one's without the one-sided step, 0.67 with the default
    clean-up (``nose_side_light``: half of what one side has beyond the other and the tolerance). roop_source.jpg's
    sidewalls (1.03) are left as they were; obama.jpg's left sidewall, 0.77 of his right one, is lifted a little
    (within the tolerance but for 0.01)."""
    from engines.identity.cleanup import CleanupConfig, nose_zone
    from engines.identity.enroll import EnrollConfig
    from engines.swap.texture import texture_canonical_x

    x = texture_canonical_x(512)
    zone = (nose_zone(512) > 0.9) & (texture_regions(512) == 0)
    luma = np.array([0.0722, 0.7152, 0.2126], np.float32)

    def right_over_left(ident: Identity) -> float:
        seen = (ident.coverage > 0.5).astype(np.float32)
        lum = ident.albedo @ luma
        broad = cv2.GaussianBlur(lum * seen, (0, 0), 512 / 96) / np.maximum(
            cv2.GaussianBlur(seen, (0, 0), 512 / 96), 1e-3
        )
        side = zone & (seen > 0)
        return float(np.median(broad[side & (x < -0.06)]) / np.median(broad[side & (x > 0.06)]))

    off = IdentityStore(
        tmp_path / "off", analyser=analyser, config=EnrollConfig(cleanup=CleanupConfig(nose_side_light=0))
    )
    on = IdentityStore(tmp_path / "on", analyser=analyser)
    ratios = {}
    for photo, name in (("s1.jpg", "s1"), ("roop_source.jpg", "roop-source"), ("obama.jpg", "obama")):
        off.enroll(name, [faces / photo], face="largest")
        enrolled(on, photo)
        ratios[name] = (right_over_left(off.load(name)), right_over_left(on.load(name)))
    before, after = ratios["s1"]
    assert before < 0.62 and after > 0.64, ratios  # 0.58 -> 0.67
    for name in ("roop-source", "obama"):
        assert abs(ratios[name][1] - ratios[name][0]) < 0.02, ratios  # 1.029 -> 1.029, 1.29 -> 1.28


def test_the_photos_cheek_shadows_are_lifted_and_a_flash_lit_photo_kept(
    store: IdentityStore, enrolled: Enrolled, faces: Path, analyser: FaceAnalyser, tmp_path: Path
) -> None:
    """biden.jpg is lit from above with his face turned: his brow and nose shade the skin under his left eye and down
    beside his nose, a shadow a smooth light model has no terms for, which stays in his albedo and was drawn as a
    bruise down the cheek of a flatly lit actor (d0.mp4). The darkest tenth of that skin's broad brightness is 0.47 of
    his cheeks' median without the lift, 0.55 with the default clean-up (``cheek_shadows``), and the skin under his
    right eye is lifted less (0.59 -> 0.63). s1.jpg and woman.png are lit by a flash, which casts no such shadow: their
    dark rings and folds are theirs, and they enroll to the same bytes either way (``NOSE_UNDERSIDE_SHADE``)."""
    from engines.identity.cleanup import CleanupConfig
    from engines.identity.enroll import EnrollConfig
    from engines.swap.texture import texture_canonical_x, texture_canonical_y

    off = IdentityStore(
        tmp_path / "off", analyser=analyser, config=EnrollConfig(cleanup=CleanupConfig(cheek_shadows=0))
    )
    x, y = texture_canonical_x(512), texture_canonical_y(512)
    skin = texture_regions(512) == 0
    under_eye = skin & (x > 0.2) & (x < 0.45) & (y > -0.3) & (y < -0.1)  # the subject's left
    beside = skin & (np.abs(x) > 0.3) & (np.abs(x) < 0.5) & (y > -0.1) & (y < 0.2)

    def darkest(ident: Identity) -> float:
        return _zone_against(ident, under_eye, beside, 10, sigma=8.0)

    for photo, name in (("biden.jpg", "biden"), ("s1.jpg", "s1"), ("woman.png", "woman")):
        off.enroll(name, [faces / photo], face="largest")
        enrolled(store, photo)
    assert darkest(off.load("biden")) < 0.5, darkest(off.load("biden"))  # 0.47
    assert darkest(store.load("biden")) > 0.52, darkest(store.load("biden"))  # 0.55
    for name in ("s1", "woman"):
        assert np.array_equal(store.load(name).texture, off.load(name).texture), name


def test_a_flash_lit_photos_eye_make_up_is_evened_its_lashes_kept_and_a_photo_lit_from_above_kept(
    store: IdentityStore, enrolled: Enrolled, faces: Path, analyser: FaceAnalyser, tmp_path: Path
) -> None:
    """s1.jpg is lit by a flash, which casts no shadow around the eyes: what darkens them is her make-up, kohl on and
    under her lower lashes smudged into the skin below. Drawn as her albedo, with her eye shape lower than the actor's,
    it was a dark ring under Obama_speaking.mp4's eyes (BENCHMARKS.md, issue 21). The broad brightness of her lower
    lids and the skin under them, at its darkest tenth, is 0.32 of her cheeks without the lift and 0.40 with the
    default clean-up (``CleanupConfig.eye_rings``: what both eyes share; her right eye's ring, darker under her
    fringe's shadow, keeps the difference); her lash line (the lower lid's texels beside the opening) stays near-black
    (its median 0.110 -> 0.127 of her cheeks: the lift fades in over a few texels from the opening) and the openings
    keep theirs (0.038). obama.jpg is lit from above: his sockets' darkness is his light's (the swap exchanges
    it for the actor's), and he enrolls to the same bytes either way."""
    from engines.face.topology import EYE_OPENING
    from engines.identity.cleanup import CleanupConfig, eye_ring_area
    from engines.identity.enroll import EnrollConfig
    from engines.swap.texture import texture_canonical_x, texture_canonical_y, texture_labels

    off = IdentityStore(tmp_path / "off", analyser=analyser, config=EnrollConfig(cleanup=CleanupConfig(eye_rings=0)))
    x, y = texture_canonical_x(512), texture_canonical_y(512)
    labels = texture_labels(512)
    under = eye_ring_area(512) & (y > -0.38) & (np.abs(x) > 0.2) & (np.abs(x) < 0.5)
    opening = (labels == EYE_OPENING).astype(np.uint8)
    beside_opening = cv2.dilate(opening, np.ones((5, 5), np.uint8)) > 0
    lashes = beside_opening & (opening == 0) & (y > -0.39)
    cheeks = (labels == 0) & (np.abs(x) > 0.3) & (np.abs(x) < 0.5) & (y > -0.1) & (y < 0.2)
    luma = np.array([0.0722, 0.7152, 0.2126], np.float32)

    def rings(ident: Identity) -> tuple[float, float, float]:
        seen = ident.coverage > 0.5
        lum = ident.albedo @ luma
        ref = float(np.median(lum[cheeks & seen]))
        broad = cv2.GaussianBlur(lum, (0, 0), 8.0)
        return (
            float(np.percentile(broad[under & seen], 10)) / ref,
            float(np.median(lum[lashes & seen])) / ref,
            float(np.median(lum[(opening > 0) & seen])) / ref,
        )

    for photo, name in (("s1.jpg", "s1"), ("obama.jpg", "obama")):
        off.enroll(name, [faces / photo])
        enrolled(store, photo)
    ring_off, lashes_off, opening_off = rings(off.load("s1"))
    ring_on, lashes_on, opening_on = rings(store.load("s1"))
    assert ring_off < 0.35, ring_off  # 0.32
    assert ring_on > 0.37, ring_on  # 0.40
    assert lashes_on < 0.16 and lashes_on - lashes_off < 0.04, (lashes_off, lashes_on)  # 0.110 -> 0.127
    assert abs(opening_on - opening_off) < 0.002, (opening_off, opening_on)  # 0.0375 -> 0.0378
    assert np.array_equal(store.load("obama").texture, off.load("obama").texture)


def test_a_flash_lit_photos_pale_skin_round_the_mouth_is_dimmed_and_other_photos_kept(
    store: IdentityStore, enrolled: Enrolled, faces: Path, analyser: FaceAnalyser, tmp_path: Path
) -> None:
    """s1.jpg is lit by a flash: de-lit, the skin round her mouth (the upper lip, beside and below the lips, the chin)
    is paler than her cheeks, drawn as a pale, flat patch round every actor's mouth (s18.mp4's upper lip the worst
    region of every frame). Its broad brightness over her cheeks' median, at the 90th percentile of that skin, is 1.47
    without the dimming and 1.31 with the default clean-up (half of what exceeds 1.1: ``mouth_skin_pale``,
    ``pale_cheeks``); roop_source.jpg, the lit, stretched skin under her smile's lower lip, 1.39 -> 1.25. obama.jpg and
    woman.png, whose skin there is as light as their cheeks or darker, enroll to the same bytes either way
    (``MOUTH_SKIN_PALE``)."""
    from engines.face.topology import SKIN
    from engines.identity.cleanup import CleanupConfig, mouth_skin_zone
    from engines.identity.enroll import EnrollConfig
    from engines.swap.texture import texture_canonical_x, texture_canonical_y, texture_labels

    off = IdentityStore(
        tmp_path / "off",
        analyser=analyser,
        config=EnrollConfig(cleanup=CleanupConfig(mouth_skin_pale=0, pale_cheeks=0)),
    )
    x, y = np.abs(texture_canonical_x(512)), texture_canonical_y(512)
    skin = texture_labels(512) == SKIN
    cheeks = skin & (x > 0.3) & (x < 0.6) & (y > -0.1) & (y < 0.3)
    mouth = skin & (mouth_skin_zone(512) > 0.5)

    def paleness(ident: Identity) -> float:
        return _zone_against(ident, mouth, cheeks, 90, sigma=8.0)

    photos = (("s1.jpg", "s1"), ("roop_source.jpg", "roop"), ("obama.jpg", "obama"), ("woman.png", "woman"))
    default = {}
    for photo, name in photos:
        off.enroll(name, [faces / photo], face="largest")
        default[name] = store.load(enrolled(store, photo).name)
    for _, name in photos[:2]:
        before, after = paleness(off.load(name)), paleness(default[name])
        assert before > 1.35 and after < before - 0.1, (name, before, after)  # s1 1.47 -> 1.31, roop 1.39 -> 1.25
    for _, name in photos[2:]:
        assert np.array_equal(default[name].texture, off.load(name).texture), name


def test_the_lips_colour_is_not_painted_on_the_skin_beside_a_mouth_corner(
    faces: Path, analyser: FaceAnalyser, tmp_path: Path
) -> None:
    """The mesh's lip contour runs past s1.jpg's right mouth corner: there the lips' texels are her skin, paler and
    greyer than her lipstick, and they were taken for teeth; grown by a few texels, the "teeth" reached past the lips,
    and the lips' colour was painted on 69 texels of the skin beside the corner (up to 64 levels), a lip-coloured
    notch beside every actor's mouth. A tooth now joins the mouth opening, and the lips' colour goes on the lips and
    the opening only (``CleanupConfig.teeth_at_opening``): outside them the texture is what it is without the teeth's
    step at all, but for a few texels (the skin-colour evening tells the skin beside the lips from lipstick by the
    lips' median colour, which the step moves: 2 texels)."""
    from engines.face.topology import LIPS, MOUTH_OPENING
    from engines.identity.cleanup import CleanupConfig
    from engines.identity.enroll import EnrollConfig
    from engines.swap.texture import texture_labels

    labels = texture_labels(512)
    outside = (labels >= 0) & (labels != LIPS) & (labels != MOUTH_OPENING)
    textures = {}
    for name, cfg in (
        ("none", CleanupConfig(teeth=False)),
        ("grown", CleanupConfig(teeth_at_opening=False)),
        ("default", CleanupConfig()),
    ):
        store = IdentityStore(tmp_path / name, analyser=analyser, config=EnrollConfig(cleanup=cfg))
        store.enroll("s1", [faces / "s1.jpg"])
        textures[name] = store.load("s1").texture.astype(np.int16)

    def painted(name: str) -> int:
        return int((outside & (np.abs(textures[name] - textures["none"]).max(axis=2) > 2)).sum())

    assert painted("grown") > 30, painted("grown")  # 69
    assert painted("default") <= 5, painted("default")  # 2


def test_the_photos_shadow_under_the_nose_is_not_painted_as_skin(
    store: IdentityStore, faces: Path, analyser: FaceAnalyser, tmp_path: Path
) -> None:
    """Between a photo's nose and lip lies its nostrils' shadow (the dark "moustache" over the actor's lip) and,
    once the photo's light is divided out, pale patches where the light model overshoots. Enrolled with
    ``CleanupConfig(cavities=True)``, the identity's albedo in that zone is the skin beside it, within 25%
    darker and 35% brighter (the shine of obama.jpg's nose tip is in the skin around); roop_source.jpg and
    obama.jpg are lit from above, roop_source's uncleaned albedo has its darkest tenth under 70% there."""
    from engines.identity.cleanup import CleanupConfig
    from engines.identity.enroll import EnrollConfig
    from engines.swap.texture import shadow_zones, texture_canonical_x, texture_canonical_y

    raw = IdentityStore(tmp_path / "raw", analyser=analyser, config=EnrollConfig(cleanup=None))
    store = IdentityStore(
        tmp_path / "lifted", analyser=analyser, config=EnrollConfig(cleanup=CleanupConfig(cavities=True))
    )
    x, y = texture_canonical_x(512), texture_canonical_y(512)
    zone = shadow_zones(512).under_nose > 0.9
    beside = (texture_regions(512) == 0) & (np.abs(x) > 0.3) & (np.abs(x) < 0.5) & (y > -0.1) & (y < 0.2)
    luma = np.array([0.0722, 0.7152, 0.2126], np.float32)

    def spread(ident: Identity) -> tuple[float, float]:
        seen = ident.coverage > 0.5
        lum = ident.albedo @ luma
        ref = float(np.median(lum[beside & seen]))
        return float(np.percentile(lum[zone & seen], 10)) / ref, float(np.percentile(lum[zone & seen], 90)) / ref

    for name in ("roop_source.jpg", "obama.jpg"):
        label = Path(name).stem.replace("_", "-")
        raw.enroll(label, [faces / name], face="largest")
        store.enroll(label, [faces / name], face="largest")
        if name == "roop_source.jpg":
            assert spread(raw.load(label))[0] < 0.7
        low, high = spread(store.load(label))
        assert low > 0.75 and high < 1.35, (name, low, high)

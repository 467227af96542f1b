"""The swap survives a close look (issue 21): a smiling photo's grin is not painted over the actor's mouth, a
black-and-white photo takes the actor's skin colour, the photo's nostril shadow is not a dark patch on the
actor's upper lip, a shorter chin does not pull the actor's under-jaw into the face. Real clips and photos
through the real ``FaceProcessor``; the evaluation-only landmark model (``pfld.onnx``) measures the mouth, as
``benchmarks/eval_quality.py`` does."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.artifacts import REGIONS, STATS, ArtifactMeter, artifact_report
from benchmarks.eval_quality import ACCEPT_MOUTH
from benchmarks.quality_metrics import Landmarks68, correlation, face_square, mouth_opening
from engines.compose.watermark import WatermarkConfig
from engines.identity.store import IdentityStore
from engines.processor import FaceProcessor, ProcessorConfig
from engines.settings import ProcessSettings
from tests.face_helpers import clip_frames

FRAMES = 60


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, faces: Path, models_dir: Path) -> IdentityStore:
    root = tmp_path_factory.mktemp("ids") / "identities"
    store = IdentityStore(root, models_dir)
    store.enroll("roop", [faces / "roop_source.jpg"], face="largest")
    store.enroll("obama", [faces / "obama.jpg"], face="largest")
    s1 = cv2.imread(str(faces / "s1.jpg"))
    grey = cv2.cvtColor(cv2.cvtColor(s1, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    ok, buf = cv2.imencode(".png", grey)
    assert ok
    store.enroll("grey", [buf.tobytes()], face="largest")
    biden = cv2.imread(str(faces / "biden.jpg"), cv2.IMREAD_GRAYSCALE)  # one channel, as a scanned archival print
    ok, buf = cv2.imencode(".jpg", biden)
    assert ok
    store.enroll("biden_grey", [buf.tobytes()], face="largest")
    store.enroll("biden", [faces / "biden.jpg"], face="largest")
    store.enroll("s1", [faces / "s1.jpg"], face="largest")
    return store


def _processor(models_dir: Path, store: IdentityStore) -> FaceProcessor:
    return FaceProcessor.from_models(models_dir, ProcessorConfig(watermark=WatermarkConfig(enabled=False)), store)


def test_a_smiling_photo_does_not_lend_its_smile(models_dir: Path, store: IdentityStore, clips: Path) -> None:
    """roop_source.jpg grins with teeth; d10.mp4's actor talks. The output's mouth opens and closes with the
    actor's (correlation >= 0.85; -0.25 on a held-out pair and a visible grin before issue 21), and the
    grin's folds and dark mouth corners no longer make the upper lip a defect (it was the face's worst region in
    every frame, 30 L*a*b* units from the actor's; now 3-5, within the clip's bound: benchmarks/artifacts.py)."""
    lm68 = Landmarks68(models_dir / "pfld.onnx")
    proc = _processor(models_dir, store)
    mouth_in, mouth_out = [], []
    meter = ArtifactMeter()
    for image, t in clip_frames(clips / "d10.mp4", FRAMES):
        result = proc.process(image, t, ProcessSettings(identity="roop"))
        assert result.faces, "d10.mp4 has a face in every frame"
        lm = result.faces[0].landmarks
        square = face_square(lm)
        mouth_in.append(mouth_opening(lm68(image, square)))
        mouth_out.append(mouth_opening(lm68(result.image, square)))
        meter.add(image, result.image, lm)
    assert float(np.std(mouth_in)) > 0.02  # the actor really talks in these frames
    assert correlation(mouth_in, mouth_out) >= ACCEPT_MOUTH
    # A closed-mouth frame of the actor stays closed: the photo's open grin is not painted there.
    closed = int(np.argmin(mouth_in))
    assert mouth_out[closed] < np.median(mouth_out), (mouth_in[closed], mouth_out[closed])
    report = artifact_report(meter)
    # The upper lip's own deviation, not how often it is the worst region: with the other regions' defects mended it
    # is the worst of a face within the bound on some frames (8 of 60 since the eye sockets, at 3.6 at the median).
    lip = np.nanmax(np.stack(meter.per_region)[:, REGIONS.index("upper lip")], axis=1)
    assert float(np.median(lip)) < 6.0 and float(np.mean(lip <= report.bound)) >= 0.95, (lip, report)
    assert report.p50 < 22.0, report


def _creases(image: np.ndarray, landmarks: np.ndarray) -> float:
    """How deep the darkest creases beside the mouth are (L*): in the skin from the nose's wings down past the mouth
    corners (the smile's folds; mesh triangles placed on the canonical face), the 5th percentile of L* below its
    own blur over 0.06 eye-corner distances, negated."""
    from engines.face.topology import SKIN, face_topology

    topo = face_topology()
    tris = topo.all_triangles
    c = topo.canonical[tris].mean(axis=1)
    x, y = np.abs(c[:, 0]), c[:, 1]
    band = (x > 0.22) & (x < 0.48) & (y > 0.1) & (y < 0.65) & (topo.labels == SKIN)
    mask = np.zeros(image.shape[:2], np.uint8)
    for tri in tris[band]:
        cv2.fillPoly(mask, [np.round(landmarks[tri, :2]).astype(np.int32)], 1)
    lightness = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[..., 0].astype(np.float32) * (100.0 / 255.0)
    eye = float(np.linalg.norm(landmarks[33, :2] - landmarks[263, :2]))
    detail = lightness - cv2.GaussianBlur(lightness, (0, 0), 0.06 * eye)
    return -float(np.percentile(detail[mask > 0], 5))


def test_a_smiling_photos_folds_are_not_drawn_on_a_still_mouth(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """obama.jpg smiles broadly: deep creases run from his nose's wings past the mouth's corners. Drawn on a close-up of
    d13.mp4's actor, whose mouth is closed and still, they were a grin's "parentheses" around a closed mouth, the
    darkest creases there 13.2 L* deep against the actor's own 2.7 (BENCHMARKS.md, issue 21). The enrollment now lifts
    a smiling photo's fold creases to the skin a few texels around them (``CleanupConfig.smile_folds``): 6.6, the
    folds' soft shading left."""
    from benchmarks.closeup import closeup_crop, face_boxes

    frames = clip_frames(clips / "d13.mp4", 8)
    crop = closeup_crop((frames[0][0].shape[1], frames[0][0].shape[0]), face_boxes([frames[0][0]], models_dir), 16 / 9)
    proc = _processor(models_dir, store)
    for image, t in frames:
        closeup = crop.apply(image, (1280, 720))
        result = proc.process(closeup, t, ProcessSettings(identity="obama"))
    assert result.faces
    lm = result.faces[0].landmarks
    actor, swapped = _creases(closeup, lm), _creases(result.image, lm)
    assert actor < 4.0, actor  # the actor's own skin there is smooth (2.7)
    assert swapped < 9.0, (swapped, actor)  # 13.2 before


def _rim_colour(image_in: np.ndarray, image_out: np.ndarray, landmarks: np.ndarray) -> float:
    """How far from the face's skin colour the output is where the actor has dark creases at the nose's base but the
    output is lit: in the skin from the nose's wings down to above the lip (mesh triangles placed on the canonical
    face), the pixels at least 8 L* under that band's median in the input and not 4 under it in the output, the 90th
    percentile of their a*b* distance from the output's cheeks' median (L*a*b* units)."""
    from benchmarks.artifacts import region_map
    from engines.face.topology import SKIN, face_topology

    topo = face_topology()
    tris = topo.all_triangles
    c = topo.canonical[tris].mean(axis=1)
    band = (np.abs(c[:, 0]) < 0.3) & (c[:, 1] > -0.12) & (c[:, 1] < 0.2) & (topo.labels == SKIN)
    mask = np.zeros(image_in.shape[:2], np.uint8)
    for tri in tris[band]:
        cv2.fillPoly(mask, [np.round(landmarks[tri, :2]).astype(np.int32)], 1)
    inside = mask > 0
    lab_in, lab_out = (
        cv2.cvtColor(im, cv2.COLOR_BGR2LAB).astype(np.float32) - (0, 128, 128) for im in (image_in, image_out)
    )
    l_in, l_out = lab_in[..., 0] * (100.0 / 255.0), lab_out[..., 0] * (100.0 / 255.0)
    lit_over_crease = inside & (l_in < np.median(l_in[inside]) - 8.0) & (l_out > np.median(l_out[inside]) - 4.0)
    regions = region_map(landmarks, image_in.shape)
    cheeks = np.isin(regions.labels, [REGIONS.index("right cheek"), REGIONS.index("left cheek")])
    skin = np.median(cv2.cvtColor(regions.crop(image_out), cv2.COLOR_BGR2LAB)[cheeks][:, 1:].astype(np.float32), axis=0)
    return float(np.percentile(np.linalg.norm(lab_out[..., 1:][lit_over_crease] - (skin - 128.0), axis=1), 90))


def test_the_actors_nostril_creases_do_not_draw_orange_rims_on_a_close_up(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """d13.mp4's actor has dark, red creases round his nostrils' wings and a bluish shadow under one. Swapped with
    roop_source.jpg on a close-up of him, the face's lit skin over those creases took their colour (the relief's
    colour under the nose, taken in full whatever the brightness did): orange rims at both nostrils' wings and a blue
    patch under one, 19.6-22.0 L*a*b* units from her cheeks (BENCHMARKS.md, issue 21). The colour now goes as far as
    the brightness (``ReliefConfig.colour_dark``): 12."""
    from benchmarks.closeup import closeup_crop, face_boxes

    frames = clip_frames(clips / "d13.mp4", 8)
    crop = closeup_crop((frames[0][0].shape[1], frames[0][0].shape[0]), face_boxes([frames[0][0]], models_dir), 16 / 9)
    proc = _processor(models_dir, store)
    rims = []
    for i, (image, t) in enumerate(frames):
        closeup = crop.apply(image, (1280, 720))
        result = proc.process(closeup, t, ProcessSettings(identity="roop"))
        assert result.faces
        if i >= 4:
            rims.append(_rim_colour(closeup, result.image, result.faces[0].landmarks))
    assert float(np.median(rims)) < 16.0, rims  # 19.6-22.0 before


def test_a_black_and_white_photo_takes_the_actors_colour(models_dir: Path, store: IdentityStore, clips: Path) -> None:
    """A grey copy of s1.jpg swapped onto d3.mp4: the swapped face is not grey — its skin's chroma (a*, b*)
    is the actor's within a few units — while its lightness pattern is the identity's (the output differs
    from the input)."""
    proc = _processor(models_dir, store)
    frames = clip_frames(clips / "d3.mp4", 8)
    for image, t in frames:
        result = proc.process(image, t, ProcessSettings(identity="grey"))
    assert result.faces
    lm = result.faces[0].landmarks
    from benchmarks.artifacts import region_map

    regions = region_map(lm, image.shape)
    skin = regions.labels >= 0
    lab_in = cv2.cvtColor(regions.crop(image), cv2.COLOR_BGR2LAB).astype(np.float32)
    lab_out = cv2.cvtColor(regions.crop(result.image), cv2.COLOR_BGR2LAB).astype(np.float32)
    chroma_in = np.median(lab_in[skin][:, 1:], axis=0) - 128.0
    chroma_out = np.median(lab_out[skin][:, 1:], axis=0) - 128.0
    assert np.hypot(*chroma_in) > 8.0  # the actor's skin has colour
    assert np.linalg.norm(chroma_out - chroma_in) < 4.0, (chroma_in, chroma_out)
    assert float(cv2.absdiff(regions.crop(image), regions.crop(result.image))[skin].mean()) > 3.0


def _per_region(proc: FaceProcessor, clip: Path, identity: str, frames: int = 12) -> np.ndarray:
    """The artifact measure's statistics, (frames, regions, stats), of ``identity`` swapped onto ``clip``'s first
    ``frames`` frames (each has a face)."""
    meter = ArtifactMeter()
    for image, t in clip_frames(clip, frames):
        result = proc.process(image, t, ProcessSettings(identity=identity))
        assert result.faces, f"{clip.name} has a face in every frame"
        meter.add(image, result.image, result.faces[0].landmarks)
    return np.stack(meter.per_region)


def test_a_photo_lit_from_above_draws_no_bruise_down_a_flatly_lit_actors_cheek(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """biden.jpg is lit from above with his face turned: the shadow his brow and nose cast under his left eye and
    down beside his nose stayed in his albedo (a smooth light model has no terms for it), half as bright as his
    cheeks. Drawn on d0.mp4's actor, lit flat and frontal, it was a bruise from the left eye down the cheek, that
    cheek's darkest tenth the frame's worst region on 23 of 30 frames, over the clip's bound of 8 on half of them
    (BENCHMARKS.md, issue 21; the relief's half exchange in the folds, ``ReliefConfig.folds``, brought it to 7.2-7.7
    on these 12 frames, the eye ring's median still 4.7-5.1). The enrollment now lifts half of that broad darkness
    toward the skin around, its fine detail kept (``CleanupConfig.cheek_shadows``): 6.3-6.9 and 2.7-3.0."""
    per_region = _per_region(_processor(models_dir, store), clips / "d0.mp4", "biden")
    cheek = np.nanmax(per_region[:, REGIONS.index("left cheek")], axis=1)
    eye = np.nanmax(per_region[:, REGIONS.index("left eye")], axis=1)
    assert float(np.median(cheek)) < 7.1, cheek  # 7.55 before, 6.7 now
    # The shadow under the eye was the eye ring's too (its median L*): 4.9 before, 2.9 now.
    assert float(np.median(eye)) < 4.0, eye


def test_a_black_and_white_photos_nostril_shadow_is_not_a_dark_patch_under_a_dark_skinned_actors_nose(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """biden.jpg as one grey channel swapped onto Obama_speaking.mp4: the photo, lit from above, has a deep nostril
    and philtrum shadow. Since the grey identity takes the actor's skin lightness in L*a*b* (BENCHMARKS.md, issue 21)
    nothing lightened it any more (the old colour step had, by accident: a strong colour added to a dark pixel at a
    kept luma raised its L*), and the region under the nose read 9.7 L*a*b* units from Obama's there (its darkest
    tenth), over the clip's bound of 8 on half the frames. A grey identity's own deepest shadows there are now brought
    up to ``ReliefConfig.shadow_floor_monochrome`` of its skin around them."""
    per_region = _per_region(_processor(models_dir, store), clips / "Obama_speaking.mp4", "biden_grey")
    under = per_region[:, REGIONS.index("under nose")]
    assert float(np.median(np.nanmax(under, axis=1))) < 8.0, under  # 9.7 before, 5.7 now


def test_a_black_and_white_photos_brows_take_the_actors_skin_colour_not_his_brows(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """biden.jpg made one grey channel, swapped onto Obama_speaking.mp4: Biden's pale brows are drawn over Obama's
    dark ones. Their colour is Obama's skin's (L*a*b* chroma within a few units of his cheeks'), as a colour
    photo's brows are, not his dark brows' blue-grey: the colour was taken pixel by pixel from the actor, and
    the brows came out as two blue-grey bars, 23 units from his cheeks' chroma (BENCHMARKS.md, issue 21)."""
    from benchmarks.artifacts import region_map
    from engines.face.topology import LEFT_BROW, RIGHT_BROW

    proc = _processor(models_dir, store)
    for image, t in clip_frames(clips / "Obama_speaking.mp4", 6):
        result = proc.process(image, t, ProcessSettings(identity="biden_grey"))
    assert result.faces
    lm = result.faces[0].landmarks
    brows = np.zeros(image.shape[:2], np.uint8)
    for brow in (RIGHT_BROW, LEFT_BROW):
        cv2.fillConvexPoly(brows, cv2.convexHull(lm[list(brow), :2].astype(np.int32)), 1)
    regions = region_map(lm, image.shape)
    cheeks = np.isin(regions.labels, [REGIONS.index("right cheek"), REGIONS.index("left cheek")])

    def chroma(img: np.ndarray, where: np.ndarray) -> np.ndarray:
        return np.median(cv2.cvtColor(img, cv2.COLOR_BGR2LAB)[where][:, 1:].astype(np.float32), axis=0) - 128.0

    skin = chroma(regions.crop(image), cheeks)
    brows_in, brows_out = chroma(image, brows > 0), chroma(result.image, brows > 0)
    assert np.linalg.norm(brows_in - skin) > 12.0, (brows_in, skin)  # his brows are not skin-coloured
    assert np.linalg.norm(brows_out - skin) < 6.0, (brows_out, skin, brows_in)
    # The swapped face is still Biden's lightness (the brows are his pale ones, not Obama's dark ones).
    lightness = cv2.cvtColor(result.image, cv2.COLOR_BGR2LAB)[..., 0][brows > 0].astype(np.float32)
    assert (
        float(np.median(lightness)) > float(np.median(cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[..., 0][brows > 0])) + 10
    )


def test_a_black_and_white_photos_face_is_as_light_as_the_actors_skin(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """biden.jpg as one grey channel swapped onto d10.mp4 (an actress lit evenly by a ring light): the photo is lit
    from above and its lower face is dark. The swapped face's skin is as light as hers under the same light (its
    mean luminance, linear light, over her skin inside the face's outline: within 3%), where with the photo's own
    lightness kept it was 5-6% darker (0.945 on these frames, the lower face a muddy brown: BENCHMARKS.md, issue
    21)."""
    from engines.face.topology import FACE_OVAL, LEFT_BROW, LEFT_EYE, LIPS_OUTER, RIGHT_BROW, RIGHT_EYE

    proc = _processor(models_dir, store)
    weights = np.array([0.0722, 0.7152, 0.2126])  # BGR, linear light
    ratios = []
    for i, (image, t) in enumerate(clip_frames(clips / "d10.mp4", 9)):
        result = proc.process(image, t, ProcessSettings(identity="biden_grey"))
        if i % 2:
            continue
        assert result.faces, "d10.mp4 has a face in every frame"
        lm = result.faces[0].landmarks
        inside = np.zeros(image.shape[:2], np.uint8)
        cv2.fillConvexPoly(inside, cv2.convexHull(lm[list(FACE_OVAL), :2].astype(np.int32)), 1)
        for part in (LEFT_EYE, RIGHT_EYE, LEFT_BROW, RIGHT_BROW, LIPS_OUTER):
            cv2.fillConvexPoly(inside, cv2.convexHull(lm[list(part), :2].astype(np.int32)), 0)
        inside = cv2.erode(inside, np.ones((9, 9), np.uint8)) > 0
        lightness = cv2.cvtColor(image, cv2.COLOR_BGR2LAB)[..., 0].astype(np.float32)
        skin = inside & (lightness > np.median(lightness[inside]) - 38.0)  # her skin, not her hair over the outline
        luminance = [float((((im[skin] / 255.0) ** 2.2) @ weights).mean()) for im in (image, result.image)]
        ratios.append(luminance[1] / luminance[0])
    assert abs(float(np.median(ratios)) - 1.0) < 0.03, ratios


def test_a_shorter_chin_does_not_pull_the_actors_under_jaw_into_the_face(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """roop_source.jpg's chin is shorter than Obama's. The morph moved the face's bottom outline up to hers and
    its warp pulled what lies under Obama's jaw (the shadow under his chin, his stubble) up into the band
    between: a dark, greyish goatee in every frame, the chin region's median 9 L* darker than the input's and
    the frame's worst region (benchmarks/artifacts.py; Obama_speaking x roop_source, BENCHMARKS.md issue 21).
    The bottom outline now stays the actor's jaw line: the chin is the identity's skin down to it."""
    chin = _per_region(_processor(models_dir, store), clips / "Obama_speaking.mp4", "roop")[
        :, REGIONS.index("chin")
    ]  # (frames, stats)
    median_l = float(np.median(chin[:, STATS.index("median")]))
    assert median_l < 3.0, median_l  # 9.3 before
    assert float(np.median(chin.max(axis=1))) < 7.5, chin  # within Obama_speaking's bound (8); 9.3 before


def test_a_grinning_photos_raised_upper_lip_does_not_lift_the_actors_mouth(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """roop_source.jpg grins with her upper teeth bared: her upper lip sat 0.097 eye-corner distances under her nose
    (the photos that do not smile 0.14-0.18), and the swap closed her mouth by raising the lower lip to it, so every
    frame drew the actor's mouth that much higher on the face. d0.mp4's actor, whose philtrum is long, smiles broadly
    from frame 20: his mouth corners came up into the skin over his own upper lip, that region's darkest tenth 25 L*
    under the face against his 11 — over the clip's bound of 8 on 8 of 30 frames (7.2-13.7 from frame 20;
    BENCHMARKS.md, issue 21). The identity's shape now closes a tenth of a grin's gap from above, 1.5 mm
    (``engines.identity.expression.GRIN_LIP``): at most 5.4."""
    per_region = _per_region(_processor(models_dir, store), clips / "d0.mp4", "roop", frames=30)
    lip = np.nanmax(per_region[:, REGIONS.index("upper lip")], axis=1)
    assert float(lip.max()) < 8.0, lip  # 13.7 before
    # She is seen from 12 degrees below: her nose base's darkness is her nostrils', lifted as a flash-lit photo's
    # (``CleanupConfig.nose_shadows_below_deg``), not as one under a light from above: the skin under her nose was
    # lighter than the actor's (his nostrils and stubble), at the bound of 8 (8.1 on main; 8.4 with the grin's lip
    # alone), now at most 7.7 — 7.9 with the pale skin under her smile's lower lip dimmed
    # (``CleanupConfig.mouth_skin_pale``: the face's median the measure reads against falls), within the clip's bound.
    under = np.nanmax(per_region[:, REGIONS.index("under nose")], axis=1)
    assert float(under.max()) < 8.0, under


def test_an_actor_opening_wide_is_not_given_the_identitys_crease_under_the_lower_lip(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """biden.jpg's mouth sits lower over a longer chin than d10.mp4's actress's, and his photo, lit from above, keeps
    the crease and shadow under his lower lip. The morph's offset below the mouth is fixed; as she sings with her
    mouth open wide, the skin under her lower lip is squeezed to 40% of its height, and the same offset drew his skin
    from nearer his lip there: a dark arc across her chin, its darkest tenth 9.1-9.2 L* under hers on frames 26-27
    (7.4-7.9 on 11-13), over the clip's bound of 8 (BENCHMARKS.md, issue 21; 100% within with the morph off). That
    offset now shrinks with the squeeze (``SwapConfig.chin_follows_opening``): at most 7.4."""
    per_region = _per_region(_processor(models_dir, store), clips / "d10.mp4", "biden_grey", frames=30)
    chin = np.nanmax(per_region[:, REGIONS.index("chin")], axis=1)
    assert float(chin.max()) < 8.0, chin  # 9.3 before (this store's grey copy; 9.2 in the evaluation)


def test_the_photos_nose_shadows_give_way_to_the_actors(models_dir: Path, store: IdentityStore, clips: Path) -> None:
    """s1.jpg's photo leaves dark sidewalls down her nose and her nostrils' and philtrum's shadow in her albedo (the
    de-lighting divides its light out only within ``SHADING_RANGE`` there). d10.mp4's actress is lit evenly by a ring
    light: drawn on her, those shadows were the face's worst regions, the nose and under the nose 11-16 L*a*b* units
    from the input's (a grey copy of s1 here: the case of a black-and-white photo, whose lightness is all it gives),
    beyond d10's bound of 10 (BENCHMARKS.md, issue 21). The face now takes the actor's relative brightness there in
    part (``engines.compose.relief``): 7-8."""
    per_region = _per_region(_processor(models_dir, store), clips / "d10.mp4", "grey")
    nose = np.nanmax(per_region[:, [REGIONS.index("nose"), REGIONS.index("under nose")]], axis=(1, 2))
    assert float(np.median(nose)) < 10.0, nose  # 15.2 before (under the nose's darkest tenth)


def test_a_photo_lit_from_above_draws_no_dark_band_under_the_actors_nose(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """biden.jpg is lit from above: its nostrils and the shadow under its nose stayed in his albedo, and drawn on
    d10.mp4's evenly lit actress (whose nostrils are two small dots) they were a dark band under her nose, the frame's
    worst region on every frame: 14 L*a*b* units from hers (its darkest tenth), over the clip's bound of 8
    (BENCHMARKS.md, issue 21). The enrollment now takes half of that darkness out and floors it at half the skin's
    (``CleanupConfig.nose_shadows``); the relief exchanges part of the rest for the actor's."""
    per_region = _per_region(_processor(models_dir, store), clips / "d10.mp4", "biden")
    under = np.nanmax(per_region[:, REGIONS.index("under nose")], axis=1)
    assert float(np.median(under)) < 8.0, under  # 13.6-14.6 before


@pytest.mark.parametrize(("clip", "stat"), [("d10.mp4", "dark"), ("Obama_speaking.mp4", "bright")])
def test_a_side_lit_photos_nose_draws_neither_its_shadow_nor_its_highlight(
    models_dir: Path, store: IdentityStore, clips: Path, clip: str, stat: str
) -> None:
    """s1.jpg is lit from her left and by a flash: down her nose's right sidewall a shadow, along its ridge a highlight,
    which the light model (smooth over the face) left in her albedo. Drawn on every frame whatever the actor's light,
    the nose was the worst region of every frame: on d10.mp4's evenly lit actress its darkest tenth 10.3 L*a*b* units
    darker than hers, on Obama_speaking.mp4 its brightest tenth 9.2 units brighter, over both clips' bound of 8
    (BENCHMARKS.md, issue 21). The enrollment takes the ridge's highlight and half of the sidewall's shadow out
    (``CleanupConfig.nose_highlight``, ``nose_shading``)."""
    per_region = _per_region(_processor(models_dir, store), clips / clip, "s1")
    nose = per_region[:, REGIONS.index("nose"), STATS.index(stat)]
    assert float(np.median(nose)) < 8.0, nose  # 10.3 (d10, dark) and 9.2 (Obama_speaking, bright) before


def test_a_photos_folds_in_its_own_light_give_way_to_the_actors(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """biden.jpg is lit from above: the folds beside his nose and mouth are in shadow in the photo, and the de-lighting
    divides its light out only within ``SHADING_RANGE`` there. Drawn on d0.mp4's evenly lit actor they were a dark
    furrow down his left cheek, its worst region on most frames (its darkest tenth 9.0 L*a*b* units from his, over
    the clip's bound of 8). The folds now take the actor's relative brightness in part, as the zone under the nose
    does (``ReliefConfig.folds``): 7.7."""
    per_region = _per_region(_processor(models_dir, store), clips / "d0.mp4", "biden")
    cheek = np.nanmax(per_region[:, REGIONS.index("left cheek")], axis=1)
    assert float(np.median(cheek)) < 8.0, cheek  # 9.0 before


def test_a_photos_eye_sockets_are_not_drawn_around_a_flat_lit_actors_eyes(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """d0.mp4's actor is lit flat from the front: the skin around his eyes is as light as his cheeks. obama.jpg
    smiles under a light from his right, and his left eye's socket and lower lid are in shade: drawn as his albedo
    it was a dark ring around the actor's left eye, the frame's worst region on every frame, its median 9.5 L*a*b*
    units darker than the actor's, over the clip's bound of 8; a grey biden.jpg's lit temple beside his left eye, its
    brightest tenth 8 units over the actor's (BENCHMARKS.md, issue 21). The sockets' skin now takes the actor's
    relative brightness in part, both ways (``ReliefConfig.sockets``)."""
    left = REGIONS.index("left eye")
    obama = _per_region(_processor(models_dir, store), clips / "d0.mp4", "obama")[:, left]
    median_l = float(np.median(obama[:, STATS.index("median")]))
    assert median_l < 7.0, median_l  # 9.3 before (7.6 with the enrollment's cheek-shadow lift), 5.9 now
    grey = _per_region(_processor(models_dir, store), clips / "d0.mp4", "biden_grey")[:, left]
    bright = float(np.median(grey[:, STATS.index("bright")]))
    assert bright < 6.0, bright  # 7.9 before, 2.9 now


def test_the_skin_around_the_actors_eyes_keeps_its_colour(models_dir: Path, store: IdentityStore, clips: Path) -> None:
    """d10.mp4's actress: the skin around her eyes is 7 b* units bluer than her face (the thin skin under the eyes, her
    make-up's tint); obama.jpg's is his face's colour. Drawn as it was, her left eye's ring was the frame's worst region
    on every frame, its colour 7.2 units from hers (over the clip's bound of 8 on 13% of the frames). The sockets' skin
    now takes her relative colour as far as it takes her relative brightness (``ReliefConfig.sockets_colour``): the
    ring's colour 7.07 -> 6.43 units from hers at the median of these 12 frames, within the bound on every frame of 30
    (BENCHMARKS.md)."""
    left = _per_region(_processor(models_dir, store), clips / "d10.mp4", "obama")[:, REGIONS.index("left eye")]
    chroma = float(np.median(left[:, STATS.index("chroma")]))
    assert chroma < 6.7, chroma  # 7.07 before (7.40 with the cheek-shadow lift), 6.43 now


def test_a_made_up_photos_eye_rings_are_not_drawn_around_the_actors_eyes(
    models_dir: Path, store: IdentityStore, clips: Path
) -> None:
    """s1.jpg wears dark eye make-up: kohl on and under her lower lashes, smudged into the skin below, under a flash
    that casts no shadow there. The morph gives Obama_speaking.mp4's actor her eye shape, 0.06 eye-corner distances
    lower than his, so her lower lids and the skin under them lie in his eye rings: drawn as her albedo, the ring
    under his left eye was hers, its median 7.6 L*a*b* units darker than his, over the clip's bound of 8 on a third
    of 30 frames (BENCHMARKS.md, issue 21). The enrollment now takes the broad darkness there that both her eyes share
    beyond 0.85 of her clean skin out, her lash line kept (``CleanupConfig.eye_rings``): 7.15 -> 5.39 on these frames
    (the right eye's 6.89 -> 4.91)."""
    per_region = _per_region(_processor(models_dir, store), clips / "Obama_speaking.mp4", "s1")
    left = per_region[:, REGIONS.index("left eye"), STATS.index("median")]
    assert float(np.median(left)) < 6.3, left  # 7.15 before


@pytest.mark.parametrize("clip", ["s18.mp4", "d0.mp4"])
def test_a_flash_lit_photo_draws_no_pale_patch_round_the_actors_mouth(
    models_dir: Path, store: IdentityStore, clips: Path, clip: str
) -> None:
    """s1.jpg is lit by a flash: de-lit, the skin round her mouth and the shine on her right cheek's apple were paler
    than her cheeks, drawn as a pale, flat patch round the mouth and a pale pink disc on the cheek of every actor. The
    brightest tenth of the upper lip, the chin and the right cheek (each against the face's median, against the
    actor's) read up to 8.9 L*a*b* units from the actress's on s18.mp4 (the upper lip: every frame's worst region, over
    the clip's bound of 8) and 6.9 from d0.mp4's actor's (the chin; the upper lip 6.6, the cheek 6.5), at the median of
    these 12 frames. The enrollment now takes half of the paleness beyond 1.1 times her cheeks' level out there
    (``CleanupConfig.mouth_skin_pale``, ``pale_cheeks``): at most 5.7 (the upper lip) and 5.1 (the chin)."""
    per_region = _per_region(_processor(models_dir, store), clips / clip, "s1")
    bright = per_region[:, [REGIONS.index(r) for r in ("upper lip", "chin", "right cheek")], STATS.index("bright")]
    worst = np.nanmedian(bright, axis=0)
    assert float(worst.max()) < 6.3, worst  # s18: 8.9 before, 5.7 now; d0: 6.9 before, 5.1 now


@pytest.mark.parametrize(("clip", "stat", "bound"), [("s18.mp4", "bright", 7.4), ("d0.mp4", "dark", 6.3)])
def test_a_side_lit_photos_shadowed_sidewall_is_not_drawn_down_the_actors_nose(
    models_dir: Path, store: IdentityStore, clips: Path, clip: str, stat: str, bound: float
) -> None:
    """s1.jpg is lit from her left: her nose's right sidewall lies in a shadow the left one does not have, which the
    enrollment took as a shadow of her nose's shape and kept half of beyond its tolerance (``nose_shading``). Drawn on
    every actor it was a dark stripe down the nose beside a lit ridge: on s18.mp4 where the actress's own key light
    lights that sidewall (the nose's brightest tenth, against the face's median, 7.8 L*a*b* units under hers at the
    median of these 12 frames; the worst region of every frame, over the clip's bound of 8 on 3 of 30), on d0.mp4's
    evenly lit actor (its darkest tenth 7.3 under his). The enrollment now takes half of what one sidewall has darker
    than the other first (``CleanupConfig.nose_side_light``): 6.9 and 5.2."""
    per_region = _per_region(_processor(models_dir, store), clips / clip, "s1")
    nose = per_region[:, REGIONS.index("nose"), STATS.index(stat)]
    assert float(np.nanmedian(nose)) < bound, nose  # s18: 7.82 before, 6.92 now; d0: 7.29 before, 5.17 now


def test_the_sockets_exchange_keeps_the_identitys_eye_region(
    models_dir: Path, store: IdentityStore, clips: Path, faces: Path
) -> None:
    """The sockets' skin takes half of the actor's relative brightness (``ReliefConfig.sockets`` 0.5; beside the nose's
    bridge all of it, ``sockets_inner``): the photo's light there still goes in part, and the face keeps the rest of
    its own eye region, which the recogniser knows a face by. Taken in full, s1.jpg on Obama_speaking.mp4 read
    0.02 less like her from the brows down (the evaluation's recogniser, ``cos_identity_below_brows``, every 5th of
    30 frames; BENCHMARKS.md, issue 21): here at least 0.01 more like her than the full exchange on the first 20
    frames, every 2nd judged."""
    from dataclasses import replace

    from benchmarks.eval_quality import identity_embedding
    from benchmarks.quality_metrics import FaceEmbedder, QualityMeter
    from engines.compose.relief import ReliefConfig

    embedder = FaceEmbedder(models_dir / "mobilefacenet.onnx")
    lm68 = Landmarks68(models_dir / "pfld.onnx")
    photo = cv2.imread(str(faces / "s1.jpg"))
    assert photo is not None
    target = identity_embedding(photo, FaceProcessor.from_models(models_dir).tracker, embedder, lm68)
    below_brows = {}
    for sockets in (ReliefConfig().sockets, 1.0):
        base = ProcessorConfig(watermark=WatermarkConfig(enabled=False))
        config = replace(base, blend=replace(base.blend, relief=replace(base.blend.relief, sockets=sockets)))
        proc = FaceProcessor.from_models(models_dir, config, store)
        meter = QualityMeter(embedder, lm68, target, identity_every=2)
        for image, t in clip_frames(clips / "Obama_speaking.mp4", 20):
            result = proc.process(image, t, ProcessSettings(identity="s1"))
            assert result.faces
            meter.add(image, result.image, result.faces[0].landmarks)
        below_brows[sockets] = meter.report().cos_identity_below_brows
    assert below_brows[ReliefConfig().sockets] > below_brows[1.0] + 0.01, below_brows

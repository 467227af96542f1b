"""Enrollment analysis: find the face in a photo, check it is usable, and turn photos into a texture.

A photo is refused, with the reason, when it has no face, several faces and no choice of one, a face
too small (``min_face_px``), cut by the image border, turned too far from the camera, or one that does
not look like a human face. The detector and the mesh both answer with full confidence on a monkey
(``s22.jpg``), and the mesh is a regressor that always returns a human-shaped face, so the human check
looks at the unwrapped texture: human skin has much the same colourfulness and lightness all over the
face, while an animal's face ringed by fur shows a pale periphery around its centre — colourless in a
colour photo, near-white and brighter than the centre in any photo.

Black-and-white and toned photos (sepia; ``engines.identity.photos.photo_tone``) are accepted: their
colours are the print's, not the person's, so they are enrolled from their lightness alone and the
identity is marked monochrome — the swap then takes the face's colour from the actor's own skin
(``engines.compose.chroma``), with a warning saying so. The skin-tone check, which is
about hue, applies to colour photos only.

Each photo's unwrapped face is cleaned first (``engines.identity.cleanup``: objects in front of the chin, hair and
background at the sides, specular highlights, grain). The texture of several photos is their per-texel
weighted mean (weights: how squarely each photo saw each texel); what none of them saw well takes the
mirrored texel from the other side of the face where that was seen better. Each photo's own lighting is
estimated with ``engines.light.relight.estimate_sh`` on its skin texels and kept as a *shading* texture, so the
albedo (texture / shading) can be rendered under the stage's light.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from engines.errors import InputError
from engines.face.detect import Detection, FaceDetector
from engines.face.landmarks import FaceMesh, MeshResult, five_points, head_pose, roi_from_detection, roi_from_landmarks
from engines.face.topology import FACE_OVAL, face_topology, frontalise
from engines.identity.cleanup import CleanupConfig, clean_texture
from engines.identity.expression import GRIN_LIP, smile_amount
from engines.identity.photos import Photo, as_grey, photo_tone
from engines.swap.texture import TEXTURE_SIZE, fill_holes, texture_canonical_y, texture_regions, unwrap

FaceChoice = str | int | None
UPPER_FACE_Y = 0.3
"""Canonical height (eye-corner distances, y down) of the mouth: the fur test's periphery lies above it."""


@dataclass(frozen=True)
class EnrollConfig:
    min_face_px: float = 80.0
    """Narrowest face accepted (detector box width, in photo pixels): below it the texture is a blur."""
    min_presence: float = 0.8
    """Mesh face-presence probability needed."""
    max_yaw_deg: float = 45.0
    warn_yaw_deg: float = 25.0
    border_tolerance: float = 0.03
    """How far (in face widths) the face outline may run past the image border before it counts as cut."""
    max_keypoint_error: float = 0.4
    """Detector and mesh must agree on eyes, nose and mouth within this many eye distances."""
    min_chroma_ratio: float = 0.5
    """Colourfulness of the face's outer part over its centre; human skin is about 0.7-1.6, fur ~0.3."""
    fur_lightness: float = 210.0
    """L* (0-255 scale) of the face's outer part above which, being also ``fur_lightness_ratio`` times the
    centre's, it is pale fur rather than skin (s22.jpg's white fur: 233 against 197; the shared human
    photos' outer part: 88-193, at most 1.19 times their centre)."""
    fur_lightness_ratio: float = 1.1
    min_skin_fraction: float = 0.5
    warn_skin_fraction: float = 0.8
    min_brightness: float = 40.0
    """Median L* (0-255 scale) of the face; darker photos cannot give a usable texture."""
    warn_mouth_open: float = 0.08
    """Inner-lip gap, in eye distances, above which the photo gets a warning (the lips texture then
    carries the photo's expression onto every frame)."""
    texture_size: int = TEXTURE_SIZE
    cleanup: CleanupConfig | None = field(default_factory=CleanupConfig)
    """What is taken out of each photo's texture before merging (``engines.identity.cleanup``: objects in front of the
    chin, hair and background at the sides, a fringe, teeth, cavities and cast shadows, specular highlights,
    grain); None: the photos' pixels as they are."""
    mirror: bool = True
    """Texels no photo saw well take the mirrored texel from the other side of the face, where that was seen
    better (the far cheek of a turned photo): the identity, not the actor, shows there."""
    grin_lip: float = GRIN_LIP
    """Share of a smiling photo's lip gap closed in the identity's shape by lowering its upper lip (a grin raises it;
    ``engines.identity.expression.GRIN_LIP``); 0: the upper lip where the photo had it."""


@dataclass(frozen=True)
class PhotoFace:
    """A checked face of one photo."""

    photo: Photo
    landmarks: np.ndarray
    """(468, 3) in the (possibly scaled) photo's pixels."""
    box: np.ndarray
    presence: float
    pose_deg: tuple[float, float, float]
    warnings: tuple[str, ...]
    monochrome: bool = False
    """A black-and-white or toned photo (``photo`` then holds its grey copy): it gives no skin colour."""


@dataclass(frozen=True)
class TextureSet:
    texture: np.ndarray
    """(T, T, 3) uint8 BGR: the photos' pixels, merged and hole-filled."""
    coverage: np.ndarray
    """(T, T) float32 0..1: how well the photos saw each texel together."""
    shading: np.ndarray | None
    """(T, T, 3) float32 linear BGR: each texel's shading under its photos' light (None: not de-lit)."""
    light_sh: tuple[np.ndarray, ...]
    """Per photo, the (9, 3) RGB shading SH estimated on it."""
    monochrome: bool = False
    """Every photo was black and white (or toned): the texture is grey and the swap takes its colour from
    the actor's skin."""
    point_weights: np.ndarray | None = None
    """(photos, 468) float32: the weight each photo's texels around each mesh point had in the merge
    (``merged_shape`` places the identity's points in the same proportions)."""


def _describe(dets: Sequence[Detection]) -> str:
    return "; ".join(
        f"#{i}: {int(d.width)}x{int(d.height)} px at ({int(d.box[0])}, {int(d.box[1])})" for i, d in enumerate(dets)
    )


class FaceAnalyser:
    """Finds and checks the enrollment face in photos (one instance per thread: it holds model sessions)."""

    def __init__(self, detector: FaceDetector, mesh: FaceMesh, config: EnrollConfig | None = None) -> None:
        self.detector = detector
        self.mesh = mesh
        self.config = config or EnrollConfig()

    def faces(self, image: np.ndarray) -> list[Detection]:
        """Detected faces, largest first: the order ``--face N`` counts in (0 = largest)."""
        return sorted(self.detector.detect(image), key=lambda d: d.width * d.height, reverse=True)

    def analyse(self, photo: Photo, face: FaceChoice = None) -> PhotoFace:
        """The chosen face of ``photo``, checked; raises InputError naming the photo and the problem."""
        cfg = self.config
        tone = photo_tone(photo.image)
        monochrome = tone != "colour"
        if monochrome:
            photo = as_grey(photo)
        dets = self.faces(photo.image)
        label = photo.label
        if not dets:
            raise InputError(f"no face found in {label}")
        index = _choose(dets, face, label)
        det = dets[index]
        scale = 1.0 / photo.scale if photo.scale > 0 else 1.0
        if det.width * scale < cfg.min_face_px:
            raise InputError(
                f"the face in {label} is {det.width * scale:.0f} px wide; at least {cfg.min_face_px:.0f} px is "
                "needed for a usable texture (use a closer or larger photo)"
            )
        result = self._mesh(photo.image, det)
        if result is None or result.presence < cfg.min_presence:
            raise InputError(
                f"no clear face in {label}: the face mesh does not fit it (covered, blurred or not a face)"
            )
        lm = result.landmarks
        warnings: list[str] = []
        self._check_border(photo, lm)
        self._check_keypoints(label, det, lm)
        yaw, pitch, roll = head_pose(lm)
        if abs(yaw) > cfg.max_yaw_deg or abs(pitch) > cfg.max_yaw_deg:
            raise InputError(
                f"the face in {label} is turned {max(abs(yaw), abs(pitch)):.0f} degrees from the camera; "
                f"use a photo within {cfg.max_yaw_deg:.0f} degrees of frontal"
            )
        if max(abs(yaw), abs(pitch)) > cfg.warn_yaw_deg:
            warnings.append(f"{label}: face turned {max(abs(yaw), abs(pitch)):.0f} degrees; its far side is blurry")
        warnings.extend(self._check_human(photo, lm, monochrome))
        if monochrome:
            kind = "black-and-white" if tone == "monochrome" else "toned (one hue, like sepia)"
            warnings.append(
                f"{label}: a {kind} photo: the face is enrolled from its lightness and takes the actor's skin "
                "colour when swapped"
            )
        lips_gap = float(np.linalg.norm(lm[13, :2] - lm[14, :2])) / max(
            float(np.linalg.norm(det.points[1] - det.points[0])), 1.0
        )
        if lips_gap > cfg.warn_mouth_open:
            warnings.append(
                f"{label}: the mouth is open (a smile with teeth?); a photo with closed lips and a neutral "
                "expression swaps more naturally"
            )
        return PhotoFace(photo, lm, det.box, result.presence, (yaw, pitch, roll), tuple(warnings), monochrome)

    def _mesh(self, image: np.ndarray, det: Detection) -> MeshResult | None:
        first = self.mesh.infer(image, roi_from_detection(det))
        if first.presence < self.config.min_presence:
            return None
        second = self.mesh.infer(image, roi_from_landmarks(first.landmarks))
        third = self.mesh.infer(image, roi_from_landmarks(second.landmarks))
        return third

    def _check_border(self, photo: Photo, lm: np.ndarray) -> None:
        h, w = photo.image.shape[:2]
        oval = lm[list(FACE_OVAL), :2]
        margin = self.config.border_tolerance * float(np.ptp(oval[:, 0]))
        sides = []
        if oval[:, 0].min() < -margin:
            sides.append("left")
        if oval[:, 0].max() > w - 1 + margin:
            sides.append("right")
        if oval[:, 1].min() < -margin:
            sides.append("top")
        if oval[:, 1].max() > h - 1 + margin:
            sides.append("bottom")
        if sides:
            raise InputError(
                f"the face in {photo.label} is cut by the image border ({', '.join(sides)}); "
                "use a photo showing the whole face"
            )

    def _check_keypoints(self, label: str, det: Detection, lm: np.ndarray) -> None:
        points = five_points(lm)
        iod = float(np.linalg.norm(points[1] - points[0]))
        error = float(np.linalg.norm(points - det.points, axis=1).mean()) / max(iod, 1.0)
        if error > self.config.max_keypoint_error:
            raise InputError(
                f"the face in {label} is unclear: the detector and the face mesh disagree on where its eyes, "
                f"nose and mouth are ({error:.2f} eye distances apart)"
            )

    def _check_human(self, photo: Photo, lm: np.ndarray, monochrome: bool = False) -> list[str]:
        """Refuse faces whose texture does not look like human skin (see the module docstring): a pale
        periphery (fur) by colourfulness in colour photos and by lightness in any; skin tones (hue) in
        colour photos only."""
        cfg = self.config
        size = 256
        un = unwrap(photo.image, lm, size)
        regions = texture_regions(size)
        seen = (regions == 0) & (un.weight > 0.2)
        if seen.sum() < 500:
            raise InputError(f"the face in {photo.label} is not seen well enough to enroll (turned or covered)")
        lab = cv2.cvtColor(un.texture, cv2.COLOR_BGR2LAB).astype(np.float32)
        chroma = np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)
        lightness = lab[..., 0]
        uv = face_topology().uv * size
        yy, xx = np.mgrid[0:size, 0:size]
        from_nose = np.hypot(xx - uv[1, 0], yy - uv[1, 1]) / float(np.ptp(uv[:, 0]))
        centre, outer = seen & (from_nose < 0.18), seen & (from_nose > 0.33)
        brightness = float(np.median(lightness[seen]))
        if brightness < cfg.min_brightness:
            raise InputError(f"the face in {photo.label} is too dark to enroll (use a photo in even light)")
        label = photo.label
        # The lightness test looks above the mouth only: a white beard is a pale periphery too, but of a chin.
        upper = outer & (texture_canonical_y(size) < UPPER_FACE_Y)
        if centre.sum() > 50 and upper.sum() > 50:
            l_centre, l_outer = float(np.median(lightness[centre])), float(np.median(lightness[upper]))
            if l_outer > cfg.fur_lightness and l_outer > cfg.fur_lightness_ratio * l_centre:
                raise InputError(
                    f"the face in {label} does not look like a human face: its outer part is near-white and "
                    f"brighter than its centre (lightness {l_outer:.0f} against {l_centre:.0f}), like fur "
                    "rather than skin. Enroll a photo of a person in neutral light."
                )
        if not monochrome and centre.sum() > 50 and outer.sum() > 50:
            c_centre = float(np.median(chroma[centre]))
            c_outer = float(np.median(chroma[outer]))
            if c_outer < cfg.min_chroma_ratio * c_centre and float(np.median(lightness[outer])) > brightness * 0.8:
                raise InputError(
                    f"the face in {label} does not look like a human face: its outer part is pale and colourless "
                    f"(colourfulness {c_outer:.0f} against {c_centre:.0f} at its centre), like fur rather than "
                    "skin. Enroll a photo of a person in neutral light."
                )
        if monochrome:
            return []
        ycc = cv2.cvtColor(un.texture, cv2.COLOR_BGR2YCrCb)[seen].astype(np.int16)
        skin = (ycc[:, 1] >= 135) & (ycc[:, 1] <= 180) & (ycc[:, 2] >= 80) & (ycc[:, 2] <= 130)
        fraction = float(skin.mean())
        if fraction < cfg.min_skin_fraction:
            raise InputError(
                f"the face in {label} does not look like a human face: only {fraction:.0%} of it has skin tones "
                f"(at least {cfg.min_skin_fraction:.0%} needed; coloured light, paint or a covered face?)"
            )
        if fraction < cfg.warn_skin_fraction:
            return [f"{label}: only {fraction:.0%} of the face has skin tones (shadow, hair or coloured light?)"]
        return []


def _choose(dets: Sequence[Detection], face: FaceChoice, label: str) -> int:
    if face is None:
        if len(dets) > 1:
            raise InputError(
                f"{label} has {len(dets)} faces ({_describe(dets)}); say which one to enroll: "
                "--face largest, or --face N with N counted from 0 = the largest"
            )
        return 0
    if isinstance(face, str):
        if face == "largest":
            return 0
        if not face.strip().isdigit():
            raise InputError(f"face must be 'largest' or a number (0 = largest face), got {face!r}")
        face = int(face)
    if isinstance(face, bool) or not isinstance(face, int):
        raise InputError(f"face must be 'largest' or a number (0 = largest face), got {face!r}")
    if not 0 <= face < len(dets):
        raise InputError(f"{label} has {len(dets)} face(s) ({_describe(dets)}); there is no face #{face}")
    return face


def build_texture(
    faces: Sequence[PhotoFace],
    size: int = TEXTURE_SIZE,
    delight: bool = True,
    cleanup: CleanupConfig | None = None,
    mirror: bool = True,
    lead_first: bool = False,
) -> TextureSet:
    """Unwrap, clean (``cleanup``), de-light and merge the photos' faces into one texture (see the module
    docstring).

    ``lead_first``: the first photo leads — the others fill in only what it did not see well (their weight
    scaled down to ``LEAD_FILL`` where it saw a texel fully), the coverage is still all of theirs. For frames
    of one clip (``engines.identity.footage``): nearly the same view of the same face a second apart, which
    averaged do not add detail but blur it (the features never land on exactly the same texels): on d10 the
    merged identity's likeness fell below that of its sharpest frame alone, on d3 and Obama_speaking to it.
    The identity's shape then follows its texture (``merged_shape`` with ``TextureSet.point_weights``)."""
    regions = texture_regions(size)
    acc_tex = np.zeros((size, size, 3), np.float64)
    acc_shade = np.zeros((size, size, 3), np.float64)
    acc_w = np.zeros((size, size), np.float64)
    acc_seen = np.zeros((size, size), np.float64)
    acc_left_out = np.zeros((size, size), np.float64)
    lights: list[np.ndarray] = []
    monochrome = all(f.monochrome for f in faces)
    lead: np.ndarray | None = None
    uv = face_topology().uv
    points = np.clip(np.round(uv * size - 0.5).astype(np.int64), 0, size - 1)
    point_weights: list[np.ndarray] = []
    for face in faces:
        un = unwrap(face.photo.image, face.landmarks, size)
        seen = un.weight.astype(np.float64)
        # Beside colour photos a grey one only fills in what they did not see (it has no colour to give).
        w = seen * MONOCHROME_WEIGHT if face.monochrome and not monochrome else seen
        if lead_first:
            if lead is None:
                lead = np.clip(seen / SEEN_FULL, 0.0, 1.0)
            else:
                w = w * (1.0 - (1.0 - LEAD_FILL) * lead)
        shading = _shading(un.texture, un.normals, seen, regions) if delight else None
        texture = un.texture
        if cleanup is not None:
            shape = frontalise(face.landmarks)
            gap = float(np.linalg.norm(shape[LIPS_INNER_MIDDLE[0], :2] - shape[LIPS_INNER_MIDDLE[1], :2]))
            shade = None if shading is None else shading[1]
            pitch = face.pose_deg[1]
            cleaned = clean_texture(un.texture, un.weight, shade, cleanup, smile_amount(shape), gap, pitch)
            texture = cleaned.texture
            # A filled-in texel counts for less than one another photo saw, where several photos merge.
            w = w * (1.0 - 0.9 * cleaned.occluded)
            if cleaned.fringe is not None:
                # The photo's fringe is left out of the identity: unseen there, the actor's forehead shows.
                acc_left_out += seen * cleaned.fringe * cleanup.fringe_left_out
        acc_seen += seen
        # Around each mesh point (blurred: the outline's points lie on the texture's edge, where no texel is seen).
        around = cv2.GaussianBlur(w.astype(np.float32), (0, 0), size / 128.0)
        point_weights.append(around[points[:, 1], points[:, 0]])
        if shading is not None:
            sh, shade_bgr = shading
            lights.append(sh)
            acc_shade += w[..., None] * shade_bgr
        acc_tex += w[..., None] * texture
        acc_w += w
    known = acc_w > 1e-3
    inv = np.where(known, 1.0 / np.maximum(acc_w, 1e-9), 0.0)[..., None]
    texture_out = fill_holes((acc_tex * inv).astype(np.float32), acc_w.astype(np.float32))
    shade_out = None
    if delight and lights:
        shade_out = fill_holes((acc_shade * inv).astype(np.float32), acc_w.astype(np.float32))
        shade_out = np.maximum(shade_out, 1e-3).astype(np.float32)
    # Coverage: how well the photos saw a texel, saturating at SEEN_FULL (a surface at 75 degrees counts as
    # seen). Filled-in texels count as seen: the identity is drawn there, not the actor; but for a fringe, left
    # out in the share of the photos' view of the texel that it covered.
    kept = 1.0 - acc_left_out / np.maximum(acc_seen, 1e-9)
    coverage = (np.clip(acc_seen / SEEN_FULL, 0.0, 1.0) * kept).astype(np.float32)
    if mirror:
        texture_out, coverage = _mirror_unseen(texture_out, shade_out, coverage, kept.astype(np.float32))
    return TextureSet(
        np.clip(np.round(texture_out), 0, 255).astype(np.uint8),
        coverage,
        shade_out,
        tuple(lights),
        monochrome,
        np.stack(point_weights).astype(np.float32),
    )


LIPS_INNER_MIDDLE = (13, 14)
"""The inner lips' middle points, top and bottom: their distance is how far the mouth is open."""
MONOCHROME_WEIGHT = 0.05
"""A black-and-white photo's texels count this much beside a colour photo's (``build_texture``)."""
LEAD_FILL = 0.0
"""With ``build_texture(lead_first=True)``: another photo's texels count this much where the first saw them fully.
0: where the lead saw, the identity is the lead's (d3.mp4's merge 0.408 -> 0.415 with 0.05 -> 0, against its lead
frame alone 0.412: a twentieth of its winking frame's eyes was a cost, not an average)."""


MIRROR_TRUST = 0.8
"""A texel filled from its mirror image counts as seen this much (a face is nearly, not exactly, symmetric)."""
MIRROR_FROM_X = 0.3
"""Texels this far from the face's middle (eye-corner distances) may be filled from their mirror image."""


def _mirror_unseen(
    texture: np.ndarray, shading: np.ndarray | None, coverage: np.ndarray, kept: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Texels the photos saw badly (the far side of a turned face) take the mirrored texel from the other
    side where that was seen better: its colour de-lit with the other side's shading and relit with this
    side's, so the photo's light stays consistent. Coverage rises accordingly, so the identity, not the
    actor, is drawn there when the actor turns that side to the camera.

    ``kept`` (0..1 per texel; None: all 1): the share of the photos' view of a texel the identity keeps — 0 where
    a fringe is left out (``CleanupConfig.fringe``). Such a texel stays unseen: filled from its mirror image, a
    fringe's corner left out on one side came back as the hair over the other corner (s1.jpg, the left part of
    her fringe drawn back from its right part, which was not found)."""
    from engines.identity.cleanup import mirror_map
    from engines.light.sh import linear_to_srgb, srgb_to_linear
    from engines.swap.texture import texture_canonical_x

    size = texture.shape[0]
    mx, my = mirror_map(size)
    valid = (mx >= 0).astype(np.float32)
    mirrored_cover = cv2.remap(coverage, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT) * valid
    # Only the sides: near the middle a texel's mirror is next to it anyway (and the mesh is not symmetric
    # enough to mirror a nostril onto a nostril).
    sides = (np.abs(texture_canonical_x(size)) > MIRROR_FROM_X).astype(np.float32)
    if kept is not None:
        mirrored_cover = mirrored_cover * np.clip(kept, 0.0, 1.0)
    gain = np.clip(mirrored_cover * MIRROR_TRUST - coverage, 0.0, 1.0) * sides
    if not (gain > 0.05).any():
        return texture, coverage
    lin = srgb_to_linear(np.clip(texture, 0.0, 255.0) / 255.0).astype(np.float32)
    if shading is not None:
        albedo = lin / shading
        mirrored = cv2.remap(albedo, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) * shading
    else:
        mirrored = cv2.remap(lin, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    share = (gain / np.maximum(gain + coverage, 1e-6))[..., None]
    out = linear_to_srgb(np.clip(lin + share * (mirrored - lin), 0.0, 1.0)) * 255.0
    return out.astype(np.float32), np.maximum(coverage, mirrored_cover * MIRROR_TRUST).astype(np.float32)


SEEN_FULL = 0.08
"""Visibility weight (cos(normal, view) squared) at which a texel counts as fully seen."""


def _shading(
    texture: np.ndarray, normals_mesh: np.ndarray, weight: np.ndarray, regions: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The photo's light (9, 3) RGB and its shading per texel (T, T, 3) linear BGR; None if unmeasurable."""
    from engines.light.relight import estimate_sh, skin_samples
    from engines.light.sh import mesh_to_camera, sh_basis

    normals = mesh_to_camera(normals_mesh)
    mask = ((regions == 0) & (weight > 0.25)).astype(np.float32)
    colours, nrm = skin_samples(texture, normals, mask, max_samples=8192)
    if colours.shape[0] < 200:
        return None
    sh = estimate_sh(colours, nrm)
    shade_rgb = sh_basis(normals.reshape(-1, 3).astype(np.float64)) @ sh
    floor = 0.05 * max(float(shade_rgb.mean()), 1e-4)
    shade = np.maximum(shade_rgb, floor).reshape(texture.shape[0], texture.shape[1], 3)[..., ::-1]
    return sh, shade


def canonical_shape(faces: Sequence[PhotoFace], neutral: bool = True, grin_lip: float = GRIN_LIP) -> np.ndarray:
    """The identity's face shape: the frontalised meshes of its photos, each with its smile taken out
    (``neutral``: ``engines.identity.expression``; ``grin_lip`` as there), averaged (468, 3)."""
    return average_shape([f.landmarks for f in faces], neutral, grin_lip=grin_lip)


def merged_shape(faces: Sequence[PhotoFace], point_weights: np.ndarray, grin_lip: float = GRIN_LIP) -> np.ndarray:
    """The identity's shape for a texture merged with ``build_texture(lead_first=True)``: each photo's
    frontalised, neutral mesh (as ``canonical_shape``) brought onto the first's (the lead's) by a similarity
    transform (Procrustes: the frames' own estimates of the face's frame, its centre, axes and eye distance,
    differ by a little), then averaged point by point in the proportions the photos' texels had in the merge
    (``point_weights``, (photos, 468), ``TextureSet.point_weights``): where the lead's texels make the texture,
    its own points place them (the texture and the mesh it was unwrapped with agree), and the frames that
    filled in what the lead did not see place their points there. A plain mean of the meshes moved the lead's
    features off where its texture has them: d3.mp4's merged identity 0.397 against 0.408 for this shape,
    Obama_speaking 0.603 against 0.607 (eval_footage's recogniser; one photo: ``canonical_shape``)."""
    from engines.face.topology import frontalise
    from engines.identity.expression import neutral_shape

    shapes = [neutral_shape(frontalise(f.landmarks), grin_lip).astype(np.float64) for f in faces]
    lead = shapes[0]
    if len(shapes) == 1:
        return lead.astype(np.float32)
    aligned = [lead] + [_similar_onto(s, lead) for s in shapes[1:]]
    w = np.asarray(point_weights, np.float64)
    w = np.maximum(w, 1e-6 * max(float(w.max()), 1e-12))  # a point no photo saw: their plain mean
    merged = (w[..., None] * np.stack(aligned)).sum(axis=0) / w.sum(axis=0)[:, None]
    return merged.astype(np.float32)


def _similar_onto(points: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``points`` (n, 3) moved, turned and scaled onto ``target`` (n, 3) by the least-squares similarity
    transform (Umeyama's solution, no reflection)."""
    p_mean, t_mean = points.mean(axis=0), target.mean(axis=0)
    p, t = points - p_mean, target - t_mean
    u, d, vt = np.linalg.svd(t.T @ p / len(p))
    flip = np.eye(3)
    if np.linalg.det(u @ vt) < 0:
        flip[2, 2] = -1.0
    rot = u @ flip @ vt
    scale = float(np.trace(np.diag(d) @ flip) / max(float((p**2).sum(axis=1).mean()), 1e-12))
    return (scale * p @ rot.T + t_mean).astype(np.float64)


def average_shape(
    meshes: Sequence[np.ndarray], neutral: bool = True, median: bool = False, grin_lip: float = GRIN_LIP
) -> np.ndarray:
    """A person's face shape from meshes of their face ((468, 3) each, any pixels): each frontalised, its smile
    taken out (``neutral``), then averaged point by point (468, 3) — or their median (``median``: footage, where
    a share of the frames speak, blink or frown). The identity's shape (``canonical_shape``) and a trained
    renderer's (``engines.train.shape``) are both this, so the swap's morph treats them alike."""
    from engines.face.topology import frontalise
    from engines.identity.expression import neutral_shape

    shapes = np.stack([neutral_shape(frontalise(m), grin_lip) if neutral else frontalise(m) for m in meshes])
    return (np.median(shapes, axis=0) if median else shapes.mean(axis=0)).astype(np.float32)

"""Quality metrics for the swap and relighting evaluation (issue 3): identity, expression, stability, images.

EVALUATION ONLY. ``mobilefacenet.onnx`` (a face recogniser) and ``pfld.onnx`` (68 facial landmarks) carry
no licence: they are loaded from the shared models folder by path, here and in the tests, and never by the
stageswap engines or the model registry. Measuring with models the swap does not use keeps the figures
honest: the swap cannot have been tuned against its own judge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from benchmarks.artifacts import ArtifactMeter, ArtifactReport, artifact_report

ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
"""Where ArcFace-style recognisers expect the 5 points (subject's right eye, left eye, nose tip, right and
left mouth corner; subject's right = image left) in their 112x112 input."""

# 68-point (iBUG 300-W) indices, 0-based.
_INNER_LIP_TOP, _INNER_LIP_BOTTOM = 62, 66
_RIGHT_EYE = (36, 37, 38, 39, 40, 41)  # image left
_LEFT_EYE = (42, 43, 44, 45, 46, 47)
_NOSE_TIP, _MOUTH_RIGHT, _MOUTH_LEFT = 30, 48, 54  # mouth corners: image left, image right


def _session(path: Path, blocked_layout: bool = True) -> ort.InferenceSession:
    """One thread; ``blocked_layout=False`` leaves out ONNX Runtime's NCHWc layout rewrite (the last level of
    graph optimisation), which makes some graphs slower on the CPU rather than faster."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"evaluation model not found: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    if not blocked_layout:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def align_112(image_bgr: np.ndarray, points5: np.ndarray) -> np.ndarray:
    """The 112x112 ArcFace-aligned crop of the face whose 5 points (frame pixels) are given."""
    m, _ = cv2.estimateAffinePartial2D(points5.astype(np.float32), ARCFACE_TEMPLATE_112, method=cv2.LMEDS)
    if m is None:
        raise ValueError("cannot align: degenerate 5 points")
    return cv2.warpAffine(image_bgr, m, (112, 112), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))


BROWS_ROW = 46
"""The aligned 112-px crop's first row at the brows: the rows above hold the forehead and the hair. Where a photo's
fringe is left out (``CleanupConfig.fringe``), the swap draws the identity from the brows down and leaves those rows
to the actor; a recogniser that sees them judges the hairstyles (s1.jpg, BENCHMARKS.md, issue 21)."""


class FaceEmbedder:
    """MobileFaceNet identity embeddings: 112x112 ArcFace-aligned, BGR->RGB, (x - 127.5) / 128, 128-d, L2=1."""

    def __init__(self, model_path: Path) -> None:
        self.session = _session(model_path)
        self._input = self.session.get_inputs()[0].name

    def embed_aligned(self, crop_bgr: np.ndarray, from_row: int = 0) -> np.ndarray:
        """``from_row``: the rows above it are set to mid-grey first (``BROWS_ROW``: the face from the brows down)."""
        if from_row:
            crop_bgr = crop_bgr.copy()
            crop_bgr[:from_row] = 127
        x = (crop_bgr[:, :, ::-1].astype(np.float32) - 127.5) / 128.0
        out = self.session.run(None, {self._input: x.transpose(2, 0, 1)[None]})[0].reshape(-1)
        return out / max(float(np.linalg.norm(out)), 1e-12)

    def embed(self, image_bgr: np.ndarray, points5: np.ndarray, from_row: int = 0) -> np.ndarray:
        return self.embed_aligned(align_112(image_bgr, points5), from_row)


def face_square(landmarks: np.ndarray, scale: float = 1.0) -> tuple[float, float, float]:
    """A square around a 468-point mesh, (cx, cy, side): brows to chin, cheek to cheek, like a detector box.

    The mesh reaches up to the forehead; landmark detectors trained on detector boxes (300-W) expect the
    box to start around the brows, so the top is taken a third of the way from the mesh top to the eyes.
    """
    xy = landmarks[:, :2]
    x1, x2 = float(xy[:, 0].min()), float(xy[:, 0].max())
    y1, y2 = float(xy[:, 1].min()), float(xy[:, 1].max())
    eye_y = float((landmarks[33, 1] + landmarks[263, 1]) / 2)
    top = y1 + (eye_y - y1) / 3.0
    side = max(x2 - x1, y2 - top) * scale
    return (x1 + x2) / 2, (top + y2) / 2, side


EXPRESSION_JITTER = ((0.0, 0.0, 1.0), (0.03, 0.0, 1.0), (-0.03, 0.0, 1.0), (0.0, 0.03, 1.0), (0.0, -0.03, 1.0),
                     (0.0, 0.0, 1.05), (0.0, 0.0, 0.95))  # fmt: skip
"""(dx, dy, scale) of the squares the expression curves are read in, as fractions of the face's square: PFLD's
reading of one unchanged frame moves with its crop (on Obama_speaking the mouth opening read 3% of a face to
one side correlates 0.95-0.98 with the centred reading over 90 frames), and a mean over these reads 0.99."""
ONE_SQUARE = ((0.0, 0.0, 1.0),)


class Landmarks68:
    """PFLD 68-point landmarks on a 112x112 RGB 0..1 square crop; points back in frame pixels."""

    def __init__(self, model_path: Path, box_scale: float = 1.1) -> None:
        # PFLD in the NCHWc layout: 62 ms a call on the development VM, 46 ms without it (MobileFaceNet is
        # the other way round: 4.4 against 9.3 ms, so it keeps the default).
        self.session = _session(model_path, blocked_layout=False)
        self._input = self.session.get_inputs()[0].name
        self.box_scale = box_scale

    def __call__(self, image_bgr: np.ndarray, square: tuple[float, float, float]) -> np.ndarray:
        cx, cy, side = square
        side *= self.box_scale
        s = 112.0 / side
        m = np.array([[s, 0.0, 56.0 - s * cx], [0.0, s, 56.0 - s * cy]])
        crop = cv2.warpAffine(image_bgr, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        x = crop[:, :, ::-1].astype(np.float32).transpose(2, 0, 1)[None] / 255.0
        out = self.session.run(None, {self._input: x})[0].reshape(68, 2) * 112.0
        return (out - m[:, 2]) / s

    def steady(
        self,
        image_bgr: np.ndarray,
        square: tuple[float, float, float],
        jitter: tuple[tuple[float, float, float], ...] = EXPRESSION_JITTER,
    ) -> np.ndarray:
        """(68, 2) the mean of the points read in the squares ``jitter`` around ``square``: an expression
        curve read this way follows the face, not the few pixels its crop moved by."""
        cx, cy, side = square
        reads = [self(image_bgr, (cx + dx * side, cy + dy * side, side * k)) for dx, dy, k in jitter]
        return np.mean(reads, axis=0)


def five_points_68(points68: np.ndarray) -> np.ndarray:
    """The ArcFace 5 points (eye centres, nose tip, mouth corners; subject's right first) of 68 landmarks."""
    p = np.asarray(points68, np.float32)
    return np.stack(
        [p[list(_RIGHT_EYE)].mean(0), p[list(_LEFT_EYE)].mean(0), p[_NOSE_TIP], p[_MOUTH_RIGHT], p[_MOUTH_LEFT]]
    ).astype(np.float32)


@dataclass(frozen=True)
class PhotoEmbedding:
    """An identity photo's recogniser embedding, aligned two ways (see ``QualityMeter``)."""

    own: np.ndarray
    """Aligned on the 5 points the landmark model finds in the photo (how the output is measured)."""
    mesh: np.ndarray
    """Aligned on the 5 points of the tracker's mesh (the earlier measure, kept for comparison)."""
    below_brows: np.ndarray | None = None
    """As ``own``, the crop above ``BROWS_ROW`` blanked: what the swap draws when a fringe is left out."""


def photo_embedding(
    image_bgr: np.ndarray, mesh_landmarks: np.ndarray, embedder: FaceEmbedder, landmarks68: Landmarks68
) -> PhotoEmbedding:
    """The embedding of the face whose 468-point mesh is ``mesh_landmarks`` in a photo, both alignments."""
    from engines.face.landmarks import five_points

    points68 = landmarks68(image_bgr, face_square(mesh_landmarks))
    return PhotoEmbedding(
        own=embedder.embed(image_bgr, five_points_68(points68)),
        mesh=embedder.embed(image_bgr, five_points(mesh_landmarks)),
        below_brows=embedder.embed(image_bgr, five_points_68(points68), BROWS_ROW),
    )


def mouth_opening(points68: np.ndarray) -> float:
    """Inner-lip gap at the centre over the distance between the eye centres (scale-free)."""
    gap = float(np.linalg.norm(points68[_INNER_LIP_BOTTOM] - points68[_INNER_LIP_TOP]))
    return gap / max(_eye_distance(points68), 1e-6)


def eye_opening(points68: np.ndarray) -> float:
    """Mean eye aspect ratio of both eyes (lid-to-lid height over corner-to-corner width)."""

    def ear(idx: tuple[int, ...]) -> float:
        p = points68[list(idx)]
        h = np.linalg.norm(p[1] - p[5]) + np.linalg.norm(p[2] - p[4])
        return float(h / max(2.0 * float(np.linalg.norm(p[0] - p[3])), 1e-6))

    return (ear(_RIGHT_EYE) + ear(_LEFT_EYE)) / 2.0


def _eye_distance(points68: np.ndarray) -> float:
    return float(np.linalg.norm(points68[list(_LEFT_EYE)].mean(0) - points68[list(_RIGHT_EYE)].mean(0)))


def correlation(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """Pearson correlation over the entries finite in both; NaN when either curve is flat or too short."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 3 or x.std() < 1e-12 or y.std() < 1e-12:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


@dataclass
class FlickerMeter:
    """Mean absolute frame-to-frame change inside the face box, of the output over that of the input.

    Real motion moves both alike; a processed face that shimmers (texture, mask or light popping) adds
    change the input does not have, so the ratio rises above 1. The box is the union of the face's boxes
    in the two frames, from the input's tracking, so both videos are measured in the same pixels.
    """

    sum_out: float = 0.0
    sum_in: float = 0.0
    pairs: int = 0
    _prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def add(self, image_in: np.ndarray, image_out: np.ndarray, box: np.ndarray | None) -> None:
        """Feed the next frame pair with the face box (x1, y1, x2, y2) or None when there is no face."""
        if box is None:
            self._prev = None
            return
        if self._prev is not None:
            p_in, p_out, p_box = self._prev
            h, w = image_in.shape[:2]
            x1 = int(max(0, math.floor(min(box[0], p_box[0]))))
            y1 = int(max(0, math.floor(min(box[1], p_box[1]))))
            x2 = int(min(w, math.ceil(max(box[2], p_box[2]))))
            y2 = int(min(h, math.ceil(max(box[3], p_box[3]))))
            if x2 > x1 and y2 > y1:
                d_in = cv2.absdiff(image_in[y1:y2, x1:x2], p_in[y1:y2, x1:x2])
                d_out = cv2.absdiff(image_out[y1:y2, x1:x2], p_out[y1:y2, x1:x2])
                self.sum_in += float(d_in.mean())
                self.sum_out += float(d_out.mean())
                self.pairs += 1
        self._prev = (image_in, image_out, np.asarray(box, dtype=np.float64))

    @property
    def ratio(self) -> float:
        return self.sum_out / self.sum_in if self.sum_in > 0 else math.nan


def masked_mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared error over the mask's pixels (all channels), values as given (use 0..1 floats)."""
    m = np.asarray(mask) > 0.5
    if not m.any():
        raise ValueError("empty mask")
    d = np.asarray(a, dtype=np.float64)[m] - np.asarray(b, dtype=np.float64)[m]
    return float(np.mean(d * d))


def masked_dssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """Structural dissimilarity (1 - SSIM) / 2 averaged over the mask, SSIM on luminance of 0..1 images.

    SSIM's local-window form (Wang et al. 2004: Gaussian window sigma 1.5, K1 0.01, K2 0.03), evaluated as a
    map so it can be averaged over the face only.
    """
    m = np.asarray(mask) > 0.5
    if not m.any():
        raise ValueError("empty mask")
    x, y = _luma(a), _luma(b)
    c1, c2 = 0.01**2, 0.03**2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mx, my = blur(x), blur(y)
    vx = blur(x * x) - mx * mx
    vy = blur(y * y) - my * my
    cxy = blur(x * y) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(np.mean((1.0 - ssim[m]) / 2.0))


def _luma(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 2:
        return a
    return a[..., 0] * 0.114 + a[..., 1] * 0.587 + a[..., 2] * 0.299  # BGR


def side_by_side(panels: list[np.ndarray], height: int = 320, labels: list[str] | None = None) -> np.ndarray:
    """Panels (BGR or grey, any size) scaled to one height and put in a row, each with an optional label."""
    row = []
    for i, p in enumerate(panels):
        img = p if p.ndim == 3 else cv2.cvtColor(p, cv2.COLOR_GRAY2BGR)
        if img.dtype != np.uint8:
            img = np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        scale = height / img.shape[0]
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), height), interpolation=cv2.INTER_AREA)
        if labels is not None and i < len(labels):
            cv2.putText(img, labels[i], (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(img, labels[i], (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        row.append(img)
        row.append(np.full((height, 4, 3), 255, np.uint8))
    return np.concatenate(row[:-1], axis=1)


@dataclass
class QualityReport:
    frames: int
    frames_with_face: int
    identity_frames: int
    cos_identity: float
    """Mean cosine of the output face to the identity photo."""
    cos_actor: float
    """Mean cosine of the output face to the actor's original face in the same frame."""
    closer_to_identity: float
    """Share of evaluated frames whose output is closer to the identity than to the actor (0..1)."""
    cos_identity_below_brows: float
    """``cos_identity`` with the recogniser's crops (output and photo) blanked above the brows (``BROWS_ROW``): the
    likeness of what the swap draws, without the hairstyles (a photo's fringe is left to the actor's forehead)."""
    closer_below_brows: float
    """``closer_to_identity`` on the same blanked crops (the actor's crop blanked alike)."""
    cos_identity_actor_points: float
    """The earlier measure of ``cos_identity``: the output's crop aligned on the actor's tracked points (and
    the photo on its mesh's), wherever the swap drew the face's features (for comparison only)."""
    mouth_corr: float
    eye_corr: float
    flicker: float
    mouth_range_in: float
    """Spread (std) of the input's mouth opening: a clip without speech cannot show a correlation."""
    artifacts: ArtifactReport | None = None
    """The worst face region per frame, output against input (``benchmarks.artifacts``)."""

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for k, v in self.__dict__.items():
            if isinstance(v, ArtifactReport):
                out.update({f"artifact_{name}": value for name, value in v.to_dict().items()})
            elif v is not None:
                out[k] = round(v, 4) if isinstance(v, float) else v
        return out


class QualityMeter:
    """Accumulates the identity, expression and stability measures over a clip, frame pair by frame pair.

    Feed each input frame, the processor's output for it and the input's tracked 468-point landmarks of
    the face being judged (None when no face is tracked). Those landmarks place the expression and
    stability crops in both images, so input and output are measured in the same pixels. The recogniser's
    crops are aligned on each image's own 5 points, found by the landmark model in that image: a swap
    that morphs the face's shape draws the eyes and mouth where the identity's proportions put them, and a
    crop aligned on the actor's points would judge a misaligned face (the earlier measure, still reported
    as ``cos_identity_actor_points``). Identity is measured on every ``identity_every``-th frame with a
    face (the recogniser is the slow part).
    """

    def __init__(
        self,
        embedder: FaceEmbedder,
        landmarks68: Landmarks68,
        identity_embedding: PhotoEmbedding | np.ndarray | None,
        identity_every: int = 3,
        jitter: tuple[tuple[float, float, float], ...] = ONE_SQUARE,
    ) -> None:
        self.embedder = embedder
        self.landmarks68 = landmarks68
        # A bare array: one embedding used for both alignments (a test's crude reference).
        self.identity = (
            PhotoEmbedding(identity_embedding, identity_embedding)
            if isinstance(identity_embedding, np.ndarray)
            else identity_embedding
        )
        self.identity_every = max(1, identity_every)
        self.jitter = jitter
        """The squares the expression curves are read in (``Landmarks68.steady``): ``EXPRESSION_JITTER`` in the
        evaluation (seven PFLD readings per image), one square by default (the tests of the other measures)."""
        self.frames = 0
        self.with_face = 0
        self.cos_identity: list[float] = []
        self.cos_actor: list[float] = []
        self.cos_identity_actor_points: list[float] = []
        self.cos_identity_below: list[float] = []
        self.cos_actor_below: list[float] = []
        self.mouth_in: list[float] = []
        self.mouth_out: list[float] = []
        self.eye_in: list[float] = []
        self.eye_out: list[float] = []
        self.flicker = FlickerMeter()
        self.artifacts = ArtifactMeter()

    def add(
        self,
        image_in: np.ndarray,
        image_out: np.ndarray,
        landmarks: np.ndarray | None,
        landmarks_out: np.ndarray | None = None,
    ) -> None:
        """``landmarks``: the input's tracked face; ``landmarks_out``: the same face tracked in the output, where
        its expression is read (the morph moves and reshapes the face: read in the input's square, the output's
        mouth was judged in a crop up to a tenth of a face off its own, and PFLD's reading moves with the crop);
        None: the input's."""
        self.frames += 1
        if landmarks is None:
            self.flicker.add(image_in, image_out, None)
            for curve in (self.mouth_in, self.mouth_out, self.eye_in, self.eye_out):
                curve.append(math.nan)
            return
        from engines.face.landmarks import five_points

        self.with_face += 1
        xy = landmarks[:, :2]
        box = np.array([xy[:, 0].min(), xy[:, 1].min(), xy[:, 0].max(), xy[:, 1].max()])
        self.flicker.add(image_in, image_out, box)
        self.artifacts.add(image_in, image_out, landmarks)
        square = face_square(landmarks)
        square_out = square if landmarks_out is None else face_square(landmarks_out)
        s_in = self.landmarks68.steady(image_in, square, self.jitter)
        s_out = self.landmarks68.steady(image_out, square_out, self.jitter)
        self.mouth_in.append(mouth_opening(s_in))
        self.mouth_out.append(mouth_opening(s_out))
        self.eye_in.append(eye_opening(s_in))
        self.eye_out.append(eye_opening(s_out))
        if (self.with_face - 1) % self.identity_every == 0:
            # The recogniser's alignment keeps its one reading in the input's square (its figures stay comparable).
            p_in = s_in if self.jitter == ONE_SQUARE else self.landmarks68(image_in, square)
            same = self.jitter == ONE_SQUARE and square_out == square
            p_out = s_out if same else self.landmarks68(image_out, square)
            e_out = self.embedder.embed(image_out, five_points_68(p_out))
            e_in = self.embedder.embed(image_in, five_points_68(p_in))
            self.cos_actor.append(float(e_out @ e_in))
            if self.identity is not None:
                self.cos_identity.append(float(e_out @ self.identity.own))
                if self.identity.below_brows is not None:
                    b_out = self.embedder.embed(image_out, five_points_68(p_out), BROWS_ROW)
                    b_in = self.embedder.embed(image_in, five_points_68(p_in), BROWS_ROW)
                    self.cos_identity_below.append(float(b_out @ self.identity.below_brows))
                    self.cos_actor_below.append(float(b_out @ b_in))
                e_actor_points = self.embedder.embed(image_out, five_points(landmarks))
                self.cos_identity_actor_points.append(float(e_actor_points @ self.identity.mesh))

    def report(self) -> QualityReport:
        ids, actors = np.array(self.cos_identity), np.array(self.cos_actor)
        closer = float(np.mean(ids > actors[: ids.size])) if ids.size else math.nan
        below, below_actor = np.array(self.cos_identity_below), np.array(self.cos_actor_below)
        return QualityReport(
            frames=self.frames,
            frames_with_face=self.with_face,
            identity_frames=int(actors.size),
            cos_identity=float(ids.mean()) if ids.size else math.nan,
            cos_actor=float(actors.mean()) if actors.size else math.nan,
            closer_to_identity=closer,
            cos_identity_below_brows=float(below.mean()) if below.size else math.nan,
            closer_below_brows=float(np.mean(below > below_actor)) if below.size else math.nan,
            cos_identity_actor_points=(
                float(np.mean(self.cos_identity_actor_points)) if self.cos_identity_actor_points else math.nan
            ),
            mouth_corr=correlation(self.mouth_in, self.mouth_out),
            eye_corr=correlation(self.eye_in, self.eye_out),
            flicker=self.flicker.ratio,
            mouth_range_in=float(np.nanstd(self.mouth_in)) if self.with_face else math.nan,
            artifacts=artifact_report(self.artifacts) if self.with_face else None,
        )

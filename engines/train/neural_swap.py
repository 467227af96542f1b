"""A trained neural renderer (``engines.train.neural_render``) on a live face: no torch, an ONNX session.

The renderer's input is the actor's mesh, not the actor's pixels, so it cannot be a DFM; this is how it would run
beside one. Per face, exactly as the training faceset was cut: the whole-face crop (``engines.swap.align.align_mesh``
at the faceset's coverage) at the renderer's resolution, the tracked mesh moved into it and rasterised over the
mesh swap's texture layout (``uv_maps``, the mesh swap's rasteriser), the session renders the src person there, the
face takes the actor's colour statistics inside the mesh (its light is its footage's), and it goes back into the
face's window with the mesh's coverage (feathered at the crop's border) as its mask: a ``LearnedFace``, what the
swap stage's learned swappers hand the relight and the blend (``engines.swap.learned``).

``NeuralRenderSwapper`` has the learned swappers' ``swap`` signature; registering it (a model kind ``dnr`` in
``engines.swap.user_models`` and ``load_swapper``) is the hook left to the swap engine's owners.
"""

from __future__ import annotations

import numpy as np

from engines.face.topology import face_topology
from engines.runtime.base import Session
from engines.swap.align import align_mesh, border_ramp
from engines.swap.learned import LearnedFace, frame_to_work
from engines.swap.mesh import FaceGeometry
from engines.swap.raster import Window, rasterize
from engines.train.faceset import TRAIN_COVERAGE

UV_NAME, COVERED_NAME, FACE_NAME = "uv", "covered", "face"
"""The exported renderer's inputs and output (``engines.train.neural_render.export_onnx``)."""

_TO_YCC = np.array([[0.114, 0.587, 0.299], [0.5, -0.331264, -0.168736], [-0.081312, -0.418688, 0.5]], np.float32)
"""BGR -> (Y, Cb, Cr), offsets left out (they cancel in a mean/spread transfer); the training's own matrix."""
_FROM_YCC = np.linalg.inv(_TO_YCC).astype(np.float32)


def uv_maps(landmarks: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Per face crop, where each pixel lies in the mesh swap's texture layout.

    ``landmarks`` (N, 468, 2 or 3) in crop pixels (a faceset's, at ``resolution``; only x and y are used). Returns
    ``uv`` (N, R, R, 2) float32 (0..1, u right, v down; 0 where no triangle) and ``covered`` (N, R, R) float32 (1
    where a triangle of the mesh, its eye and mouth fills included, is drawn). A faceset keeps no depth, so the
    nearer of two overlapping triangles is found by their winding: only triangles facing the camera are drawn
    (the far cheek folded behind the nose of a turned head faces away); live faces are drawn the same way, so
    they look like what the renderer was trained on.
    """
    topo = face_topology()
    tris = topo.all_triangles
    lm = np.asarray(landmarks, np.float64)
    n = lm.shape[0]
    uv = np.zeros((n, resolution, resolution, 2), np.float32)
    covered = np.zeros((n, resolution, resolution), np.float32)
    window = Window(0, 0, resolution, resolution)
    for i in range(n):
        raster = rasterize(lm[i, :, :2], tris, window, cull_back_faces=True)
        uv[i] = raster.interpolate(topo.uv)
        covered[i] = raster.mask
    return uv, covered


def colour_match(face: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``face`` (R, R, 3) float32 BGR 0..1 with the YCbCr mean and spread of ``reference`` (same shape) inside
    ``mask`` (R, R) 0..1; clipped to 0..1."""
    w = mask.reshape(-1, 1).astype(np.float32)
    total = max(float(w.sum()), 1.0)

    def stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        y = x.reshape(-1, 3).astype(np.float32) @ _TO_YCC.T
        mean = (y * w).sum(axis=0) / total
        std = np.sqrt(np.maximum((((y - mean) ** 2) * w).sum(axis=0) / total, 1e-6))
        return y, mean, std

    y, m_face, s_face = stats(face)
    _, m_ref, s_ref = stats(reference)
    out = ((y - m_face) / s_face * s_ref + m_ref) @ _FROM_YCC.T
    return np.clip(out, 0.0, 1.0).reshape(face.shape).astype(np.float32)


class NeuralRenderSwapper:
    """A neural renderer's session -> the src person on each face, in the learned swappers' terms."""

    needs_identity = False
    """The identity is the renderer's own (its neural texture)."""

    def __init__(
        self,
        session: Session,
        resolution: int,
        coverage: float = TRAIN_COVERAGE,
        crop_feather: float = 0.08,
        match_colour: bool = True,
    ) -> None:
        self.session = session
        self.runtime = session.runtime
        self.size = int(resolution)
        self.coverage = float(coverage)
        """The training faceset's framing (``faceset.json``'s coverage): the renderer learned faces that size."""
        self.match_colour = match_colour
        self._ramp = border_ramp(self.size, crop_feather)

    def render_crop(self, crop_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The person on the mesh ``crop_landmarks`` (468, 2+, crop pixels): (face (R, R, 3) float32 BGR 0..1,
        covered (R, R) float32)."""
        uv, covered = uv_maps(crop_landmarks[None], self.size)
        out = self.session.run({UV_NAME: uv, COVERED_NAME: covered[..., None]})
        return np.asarray(out[FACE_NAME], np.float32).reshape(self.size, self.size, 3), covered[0]

    def swap(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        points5: np.ndarray,
        geometry: FaceGeometry,
        embedding: np.ndarray | None = None,
        morph: float = 0.0,
    ) -> LearnedFace:
        """The learned swappers' ``swap``: the person at this face's pose and expression, in the face's window at
        the geometry's work size, with where it may show. ``points5``, ``embedding`` and ``morph`` are unused."""
        alignment = align_mesh(landmarks, self.size, self.coverage)
        face, covered = self.render_crop(alignment.to_crop(np.asarray(landmarks, np.float64)[:, :2]))
        if self.match_colour:
            actor = alignment.crop(image).astype(np.float32) / 255.0
            face = colour_match(face, actor, covered)
        crop = np.clip(face * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
        to_work = frame_to_work(geometry)
        work_image = alignment.paste(crop, to_work, geometry.work_size)
        work_mask = alignment.paste((covered * self._ramp).astype(np.float32), to_work, geometry.work_size)
        return LearnedFace(work_image, np.clip(work_mask, 0.0, 1.0).astype(np.float32), 1.0 / alignment.scale)

"""Learned swappers behind the swap seam: inswapper-style, DFM (DeepFaceLab/DeepFaceLive) and neural-renderer models.

The mesh swap draws an identity's texture on the tracked mesh; a learned swapper instead runs a user's
model on the face cut out in the framing the model was trained on, and hands back the swapped face in the
same window and work resolution as the mesh swap's ``FaceGeometry``. The processor then treats it like a
rendered face: relighting, the mesh's blend mask (outline feather, kept eyes and mouth), occlusion and the
paste are the same for every swapper.

- **inswapper-style** (``InswapperSwapper``): the face aligned to the ArcFace 5-point template at 128 px,
  RGB 0..1 NCHW as ``target``; the identity's ArcFace embedding, normalised, through the model's ``emap``
  (its last initializer) and normalised again as ``source``. The identity comes from enrollment
  (``engines.identity.recognition`` embeds the photos), so one model swaps to any enrolled identity.
- **DFM** (``DfmSwapper``): the whole face (``engines.swap.align.align_mesh``) at the model's resolution, BGR 0..1
  NHWC as ``in_face:0``, and ``morph_value:0`` (how far toward the trained identity) when the model takes
  it. The identity is baked in. The model's own masks (``out_face_mask:0`` × ``out_celeb_face_mask:0``) limit
  where its face is pasted.
- **neural renderer** (``NeuralRenderSwapper``, kind ``dnr``, ``stageswap train --arch dnr``): the same whole-face
  crop, but its input is the actor's tracked mesh rasterised over the mesh swap's texture layout
  (``engines.swap.neural.uv_maps``), not the actor's pixels; it renders the trained person there, the face takes
  the actor's colour statistics inside the mesh, and the mesh's coverage less the actor's upper lids is its mask.
  The identity is baked in.

Each result carries a mask in the work window: the crop's own extent with a feathered border (a model
never paints past its crop) times the model's masks, so the blend only shows the model's face where the
model produced one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engines.errors import EngineError, InputError, ModelError
from engines.runtime.base import Session
from engines.swap.align import Alignment, align_mesh, align_points5, border_ramp, compose
from engines.swap.mesh import FaceGeometry
from engines.swap.user_models import EMBEDDING_DIM, SWAP_KINDS, UserModel, UserModelStore, example_feeds

log = logging.getLogger(__name__)

PLAN_PREFIX = "user-"
"""build_engines.py names a user model's TensorRT plan ``user-NAME``."""


@dataclass(frozen=True)
class LearnedConfig:
    crop_feather: float = 0.08
    """Width of the ramp at the crop's border, as a fraction of its side: the model's square never shows."""
    colour_match: bool = False
    """Move the model's face to the actor's skin colour like the mesh swap does. Off: a learned model's
    colour is part of the likeness it was trained on (and it sees the actor's light in its input)."""
    opening_grow_px: float = 0.0
    """The actor's kept eyes and mouth are grown by this many of the model's own pixels ... A model draws no
    edge finer than its pixel: a 64 px DFM's eyes and lips are dark blurs a few of its pixels wide, and the
    hole cut to the actor's eye opening keeps that blur around the actor's eye as a dark ring. Grown (1.5, with
    a feather of 2) the ring is gone, but the actor's lids show and the face reads as the actor's: obama-64 on
    d3 went from 76% to 40% of frames closer to the identity (BENCHMARKS.md, issue 19); so off by default: the
    ring is the model's, and a model at a higher resolution is the fix. Counted in the model's pixels, so a
    256 px model, whose lids and lips are sharp, gives up a quarter as much (``engines.stages.mask``)."""
    opening_feather_px: float = 0.0
    """... and their edge blurred over about this many of the model's pixels."""


@dataclass(frozen=True)
class LearnedFace:
    """A learned swapper's result in the face's window, at the geometry's work size."""

    image: np.ndarray
    """(h, w, 3) uint8 BGR."""
    mask: np.ndarray
    """(h, w) float32 0..1: where the model's face may show (crop extent × the model's masks)."""
    pixel_px: float = 0.0
    """Frame pixels per model pixel: the finest detail the model's face can carry (0: unknown)."""


class LearnedSwapper(Protocol):
    model: UserModel
    runtime: str
    config: LearnedConfig
    shape: np.ndarray | None
    """The model's person's face shape (468, 3, frontal frame) the swap morphs the actor's mesh toward before
    ``swap`` (``MeshSwapper.geometry``'s ``shape``); None: the actor's shape stays."""

    @property
    def needs_identity(self) -> bool:
        """True when the swap needs an enrolled identity's embedding (inswapper), False when the identity is
        the model's own (DFM)."""
        ...

    def swap(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        points5: np.ndarray,
        geometry: FaceGeometry,
        embedding: np.ndarray | None = None,
        morph: float = 0.0,
        actor_window: np.ndarray | None = None,
    ) -> LearnedFace:
        """The model's face on the actor's (``landmarks``, frame pixels, in ``image``), in ``geometry``'s work window.
        ``actor_window``: the actor's pixels in ``geometry.window`` as the later stages see them (warped by the morph
        when ``geometry`` has one; None: ``image``'s)."""
        ...


def frame_to_work(geometry: FaceGeometry) -> np.ndarray:
    """2x3: frame pixels to the geometry's work-size window pixels (``cv2.resize``'s pixel-centre rule)."""
    win = geometry.window
    h, w = geometry.work_size
    sx, sy = w / win.width, h / win.height
    return np.array([[sx, 0.0, (0.5 - win.x0) * sx - 0.5], [0.0, sy, (0.5 - win.y0) * sy - 0.5]], dtype=np.float64)


def _paste(alignment: Alignment, crop: np.ndarray, mask: np.ndarray, geometry: FaceGeometry) -> LearnedFace:
    to_work = frame_to_work(geometry)
    image = alignment.paste(crop, to_work, geometry.work_size)
    work_mask = alignment.paste(mask.astype(np.float32), to_work, geometry.work_size)
    return LearnedFace(image, np.clip(work_mask, 0.0, 1.0).astype(np.float32), 1.0 / alignment.scale)


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


def _batch1(shape: tuple[Any, ...]) -> tuple[int, ...]:
    return tuple(1 if not isinstance(d, int) or d <= 0 else d for d in shape)


class InswapperSwapper:
    """An inswapper-style model: ArcFace-aligned 128 px face + the identity's latent -> swapped face."""

    needs_identity = True
    shape: np.ndarray | None = None

    def __init__(self, session: Session, model: UserModel, emap: np.ndarray, config: LearnedConfig | None = None):
        if model.kind != "inswapper":
            raise ModelError(f"model {model.name!r} is a {model.kind} model, not inswapper-style")
        emap = np.asarray(emap, dtype=np.float32)
        if emap.shape != (EMBEDDING_DIM, EMBEDDING_DIM):
            raise ModelError(f"model {model.name!r}: its emap is {emap.shape}, not 512x512")
        self.session, self.model, self.emap = session, model, emap
        self.config = config or LearnedConfig()
        self.runtime = session.runtime
        self.size = model.resolution
        self._ramp = border_ramp(self.size, self.config.crop_feather)
        self._shapes = {t.name: _batch1(t.shape) for t in model.inputs}

    def latent(self, embedding: np.ndarray) -> np.ndarray:
        """(1, 512) float32: the identity's embedding normalised, through the emap, normalised again."""
        e = np.asarray(embedding, dtype=np.float64).reshape(-1)
        if e.shape != (EMBEDDING_DIM,) or not np.isfinite(e).all() or np.linalg.norm(e) < 1e-9:
            raise InputError(f"an identity embedding must be {EMBEDDING_DIM} finite numbers, not all zero")
        latent = (e / np.linalg.norm(e)) @ self.emap.astype(np.float64)
        norm = np.linalg.norm(latent)
        if norm < 1e-12:
            raise EngineError(f"model {self.model.name!r}: the emap maps this identity's embedding to zero")
        return (latent / norm).astype(np.float32).reshape(1, EMBEDDING_DIM)

    def run_crop(self, crop_bgr: np.ndarray, latent: np.ndarray) -> np.ndarray:
        """The model on one aligned crop (uint8 BGR, size x size): the swapped crop, uint8 BGR."""
        target = (crop_bgr[..., ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        feeds = {
            "target": np.ascontiguousarray(target.reshape(self._shapes["target"])),
            "source": np.ascontiguousarray(latent.reshape(self._shapes["source"])),
        }
        result = self.session.run(feeds)
        out = np.asarray(result[self.model.outputs[0].name], dtype=np.float32).reshape(3, self.size, self.size)
        return np.ascontiguousarray(_to_u8(out.transpose(1, 2, 0))[..., ::-1])

    def swap(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        points5: np.ndarray,
        geometry: FaceGeometry,
        embedding: np.ndarray | None = None,
        morph: float = 0.0,
        actor_window: np.ndarray | None = None,
    ) -> LearnedFace:
        if embedding is None:
            raise InputError(f"model {self.model.name!r} swaps to an enrolled identity: select one")
        alignment = align_points5(points5, self.size)
        swapped = self.run_crop(alignment.crop(image), self.latent(embedding))
        return _paste(alignment, swapped, self._ramp, geometry)


class _WholeFaceModel:
    """What the whole-face swappers share: a registered model of one ``kind``, run on the mesh-aligned crop of
    ``resolution`` px at the ``coverage`` its training faceset was cut at, pasted back through a feathered ramp."""

    needs_identity = False
    kind = ""
    label = ""
    """The kind this swapper runs, and its name in the error for a model of another kind."""
    default_coverage: float | None = None
    """The crop's coverage when the model's record has none (None: the record must have it)."""
    shape: np.ndarray | None = None
    """``LearnedSwapper.shape``: a DFM has none (its person's shape is in its pixels)."""

    def __init__(self, session: Session, model: UserModel, config: LearnedConfig | None = None):
        if model.kind != self.kind:
            raise ModelError(f"model {model.name!r} is a {model.kind} model, not {self.label}")
        self.session, self.model = session, model
        self.config = config or LearnedConfig()
        self.runtime = session.runtime
        self.size = model.resolution
        coverage = model.options.get("coverage", self.default_coverage)
        if coverage is None:
            raise ModelError(f"model {model.name!r} has no recorded coverage: add it again with `models add`")
        self.coverage = float(coverage)
        self._ramp = border_ramp(self.size, self.config.crop_feather)


class DfmSwapper(_WholeFaceModel):
    """A DeepFaceLab DFM: whole-face crop (+ morph value) -> the trained identity's face and its masks."""

    kind, label, default_coverage = "dfm", "a DFM", 2.2

    def __init__(self, session: Session, model: UserModel, config: LearnedConfig | None = None):
        super().__init__(session, model, config)
        self.has_morph = bool(model.options.get("has_morph", False))
        self._shapes = {t.name: _batch1(t.shape) for t in model.inputs}

    def run_crop(self, crop_bgr: np.ndarray, morph: float) -> tuple[np.ndarray, np.ndarray]:
        """The model on one aligned crop (uint8 BGR): (its face, uint8 BGR; its mask, float32 0..1)."""
        feeds = {"in_face:0": (crop_bgr.astype(np.float32) / 255.0).reshape(self._shapes["in_face:0"])}
        if self.has_morph:
            feeds["morph_value:0"] = np.full(self._shapes["morph_value:0"], float(morph), np.float32)
        result = self.session.run(feeds)
        r = self.size
        face = np.asarray(result["out_celeb_face:0"], dtype=np.float32).reshape(r, r, 3)
        face_mask = np.asarray(result["out_face_mask:0"], dtype=np.float32).reshape(r, r)
        celeb_mask = np.asarray(result["out_celeb_face_mask:0"], dtype=np.float32).reshape(r, r)
        mask = np.clip(face_mask, 0.0, 1.0) * np.clip(celeb_mask, 0.0, 1.0)
        return np.ascontiguousarray(_to_u8(face)), mask.astype(np.float32)

    def swap(
        self,
        image: np.ndarray,
        landmarks: np.ndarray,
        points5: np.ndarray,
        geometry: FaceGeometry,
        embedding: np.ndarray | None = None,
        morph: float = 0.0,
        actor_window: np.ndarray | None = None,
    ) -> LearnedFace:
        alignment = align_mesh(landmarks, self.size, self.coverage)
        face, mask = self.run_crop(alignment.crop(image), morph)
        return _paste(alignment, face, mask * self._ramp, geometry)


class NeuralRenderSwapper(_WholeFaceModel):
    """A deferred neural renderer (``engines.train.neural_render``): the actor's mesh in the whole-face crop ->
    the trained person at the actor's pose and expression, coloured like the actor's face. Its coverage is the
    training faceset's framing (the renderer learned faces that size in its crop): recorded by ``models add``."""

    kind, label = "dnr", "a neural renderer (dnr)"

    def __init__(
        self,
        session: Session,
        model: UserModel,
        config: LearnedConfig | None = None,
        shape: np.ndarray | None = None,
    ):
        super().__init__(session, model, config)
        self.shape = None if shape is None else np.asarray(shape, np.float32)
        """Its person's face shape (``engines.swap.neural.read_shape``; None for a model exported without one)."""

    def render_crop(self, crop_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The person on the mesh ``crop_landmarks`` (468, 2+, crop pixels): (face (R, R, 3) float32 BGR 0..1,
        where the mesh is drawn (R, R) float32)."""
        from engines.swap.neural import COVERED_NAME, FACE_NAME, UV_NAME, uv_maps

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
        actor_window: np.ndarray | None = None,
    ) -> LearnedFace:
        from engines.swap.neural import colour_match, drawn, shading_match, tone_match, upper_lids

        if geometry.morph is not None:  # the face morphed toward its person's shape: rendered on that mesh
            landmarks = geometry.landmarks
        alignment = align_mesh(landmarks, self.size, self.coverage)
        crop_lm = alignment.to_crop(np.asarray(landmarks, np.float64)[:, :2])
        face, covered = self.render_crop(crop_lm)
        mask = drawn(covered, self.size)  # not at the outline, where the renderer learned nothing
        if geometry.morph is not None and actor_window is not None:
            # The actor warped with the morph, as the face is pasted over: the unwarped frame, under a mesh moved
            # wider than the actor's face, would bring hair and background into the colour's statistics.
            win = geometry.window
            from_window = compose(alignment.matrix, np.array([[1.0, 0.0, win.x0], [0.0, 1.0, win.y0]]))
            actor = Alignment(from_window, self.size).crop(actor_window).astype(np.float32) / 255.0
        else:
            actor = alignment.crop(image).astype(np.float32) / 255.0
        face = colour_match(face, actor, mask)  # its light is its footage's: the actor's is wanted
        face = shading_match(face, actor, mask, crop_lm)  # and the light's pattern over the face (SHADING_SIGMA)
        face = tone_match(face, actor, mask, crop_lm)  # and the skin's tone across it (TONE_SIGMA)
        keep = 1.0 - upper_lids(crop_lm, self.size)  # the actor's lids, not its greyish ones (LIDS_KEPT)
        return _paste(alignment, _to_u8(face), mask * keep * self._ramp, geometry)


def read_emap(path: Path) -> np.ndarray:
    """The inswapper ``emap``: the graph's last initializer (512x512)."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path), load_external_data=False)
        return np.asarray(numpy_helper.to_array(model.graph.initializer[-1]), dtype=np.float32)
    except Exception as exc:  # a damaged file fails its sha256 check first; this is the last line of defence
        raise ModelError(f"cannot read the emap of {path}: {exc}") from exc


def load_session(
    model: UserModel, path: Path, device: str = "cpu", engines_dir: str | os.PathLike[str] | None = None
) -> Session:
    """The model in the best runtime for ``device``: its TensorRT plan from build_engines.py when one is
    valid for this GPU, TensorRT and file, else ``engines.runtime.load_model`` (torch on CUDA, or the CPU)."""
    from engines.runtime import load_model

    if device != "cpu":
        plan = _plan_session(model, engines_dir)
        if plan is not None:
            return plan
    return load_model(path, device)


def _plan_session(model: UserModel, engines_dir: str | os.PathLike[str] | None) -> Session | None:
    from engines.runtime.plans import Manifest, PlanKey, default_engines_dir
    from engines.runtime.select import cuda_available, gpu_name
    from engines.runtime.tensorrt import TrtSession, tensorrt_version

    version = tensorrt_version()
    if version is None or not cuda_available():
        return None
    directory = Path(engines_dir) if engines_dir is not None else default_engines_dir()
    try:
        found = Manifest.load(directory).lookup(PLAN_PREFIX + model.name, PlanKey(gpu_name(), version, model.sha256))
        if found.ok and found.path is not None and found.entry is not None:
            return TrtSession(found.path, found.entry.profiles)
        log.info("model %s: %s", model.name, found.reason)
    except ModelError as exc:
        log.warning("model %s: no TensorRT plan: %s", model.name, exc)
    return None


def load_swapper(
    store: UserModelStore,
    name: str,
    device: str = "cpu",
    config: LearnedConfig | None = None,
    engines_dir: str | os.PathLike[str] | None = None,
) -> LearnedSwapper:
    """The registered swap model ``name``, loaded (its file checked against its sha256 first)."""
    model = store.get(name, kinds=SWAP_KINDS)
    path = store.path(model)
    session = load_session(model, path, device, engines_dir)
    if model.kind == "inswapper":
        return InswapperSwapper(session, model, read_emap(path), config)
    if model.kind == "dnr":
        from engines.swap.neural import read_shape

        return NeuralRenderSwapper(session, model, config, read_shape(path))
    return DfmSwapper(session, model, config)


# ---- build_engines.py: user models as engines ----------------------------------------------------------


@dataclass(frozen=True)
class UserModelEngine:
    """A registered model as build_engines.py compiles it: fixed shapes (one face per call), its own sha256."""

    name: str
    description: str
    model: UserModel
    path: Path
    profiles: Mapping[str, Any]
    trt_tolerance: Any
    registry_model: None = None

    def fingerprint(self, models_dir: str | os.PathLike[str] | None = None) -> str:
        return self.model.sha256

    def example_inputs(self, batch: int) -> dict[str, np.ndarray]:
        return example_feeds(self.model.inputs, self.model.resolution, 1)


def user_engine(store: UserModelStore, model: UserModel) -> UserModelEngine:
    """The build_engines.py engine for ``model`` (its file checked against its sha256)."""
    from engines.runtime.export import ShapeRange, Tolerance

    path = store.path(model)
    profiles = {}
    for t in model.inputs:
        shape = _batch1(t.shape)
        profiles[t.name] = ShapeRange(shape, shape, shape)
    # Images 0..1 out: fp16 TensorRT within 2/100.
    return UserModelEngine(
        name=PLAN_PREFIX + model.name,
        description=f"user {model.kind} model {model.name!r} ({model.resolution} px, {model.source})",
        model=model,
        path=path,
        profiles=profiles,
        trt_tolerance=Tolerance(2e-2, 2e-2),
    )

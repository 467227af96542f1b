"""What every stage is and what it works on: the two stage interfaces and the frame and face contexts.

A frame stage (``FrameStage``) works on the whole frame; a face stage (``FaceStage``) on one face of it, after
the stages before it put their part into the face's ``FaceContext``. Both are two methods: ``run`` and
``forget`` (drop the per-face state of faces no longer tracked), and a ``name`` (the stage in the order, as
tests and the GPU path name it). Timings go into ``FrameContext.stage_ms`` under the keys the stats report
(``swap``, ``relight``, ``blend``, ...), through ``FrameContext.timed``, which also remembers the key running
now: a failure is reported as that stage's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Set
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engines.face.glasses import GlassesKeep
from engines.face.tracker import TrackedFace
from engines.identity.store import Identity
from engines.identity.targets import FaceTarget
from engines.settings import ProcessSettings
from engines.stages.ops import FaceOps, NumpyOps, Pixels
from engines.stats import timed
from engines.swap.learned import LearnedFace, LearnedSwapper
from engines.swap.mesh import FaceGeometry


@dataclass
class FrameContext:
    """One frame on its way through the stages: what came in, what is being made, and the time each stage took."""

    image: np.ndarray
    """The frame as it came in (read only: everything is measured on it)."""
    t_s: float | None
    """Its time as the caller gave it (the tracker's clock)."""
    t: float
    """Its time in seconds as the per-face stages use it (``t_s``, or the frame count at 30 fps)."""
    settings: ProcessSettings
    stage_ms: dict[str, float] = field(default_factory=dict)
    out: Pixels | None = None
    """The frame being made: ``image`` itself until a face stage needs a copy to draw into (``canvas``), on the
    backend's device from then until ``to_host``."""
    faces: tuple[TrackedFace, ...] = ()
    targets: dict[int, FaceTarget] = field(default_factory=dict)
    """Each face's identity this frame and why (``engines.identity.targets``), by face id."""
    running: str = "track"
    """The stage (its ``stage_ms`` key) running now: a failure is reported as this stage's."""
    ops: FaceOps = field(default_factory=NumpyOps)
    """The backend the face stages draw with (``engines.stages.ops``): where ``canvas`` lives."""
    glasses: dict[int, bool] = field(default_factory=dict)
    """Whether each face processed this frame wears glasses (``engines.face.glasses``), by face id."""

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = self.image

    @property
    def result(self) -> np.ndarray:
        """The frame made, on the host (after ``to_host``)."""
        assert isinstance(self.out, np.ndarray)  # set in __post_init__; on the host again after to_host
        return self.out

    def canvas(self) -> Pixels:
        """The frame the faces are drawn into: a copy of ``image`` on the backend's device, made once per frame,
        when first needed (the frame's one upload)."""
        if self.out is None or self.out is self.image:
            self.out = self.ops.canvas(self.image)
        return self.out

    def to_host(self) -> None:
        """The frame made back on the host, after the face stages (the frame's one download; nothing to do on the
        numpy backend)."""
        if self.out is not None and self.out is not self.image:
            self.out = self.ops.to_host(self.out)

    @contextlib.contextmanager
    def timed(self, key: str) -> Iterator[None]:
        """Add the block's wall time to ``stage_ms[key]``; a failure in it is reported as ``key``'s."""
        self.running = key
        with timed(self.stage_ms, key):
            yield


@dataclass
class FaceContext:
    """One face in one frame: what it gets (set when the face is chosen) and what each face stage adds, in order."""

    frame: FrameContext
    face: TrackedFace
    identity: Identity | None
    """The identity the mesh swap draws (None: no mesh swap — the actor's own face, or a learned model's)."""
    relight: bool
    """Whether this face is relit (a mesh swap, or a chosen target light)."""
    learned: LearnedSwapper | None = None
    """The learned model that draws this face (None: the mesh swap, or no swap)."""
    embedding: np.ndarray | None = None
    """The identity's embedding for an inswapper-style model."""
    done: bool = False
    """Nothing more to do for this face this frame: the later stages skip it."""
    # swap
    geometry: FaceGeometry | None = None
    actor_window: np.ndarray | None = None
    """The actor's pixels in the face's window (warped by the morph, if any); with the morph on the numpy backend,
    the canvas's window itself, where it was warped into (later stages draw over it)."""
    actor: np.ndarray | None = None
    """``actor_window`` at the face's working size."""
    rendered: Pixels | None = None
    """The identity rendered onto the actor's mesh (on the backend's device): its albedo when relit, else its
    texture (``rendered_as``)."""
    rendered_as: str | None = None
    albedo_lookup: tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]] | None = None
    """On the numpy backend with compiled kernels, a relit face's albedo is not drawn by the swap: this is what the
    relight looks it up from as it relights (``MeshSwapper.albedo_lookup``; ``rendered`` stays None)."""
    """``"albedo"`` or ``"texture"``: what ``rendered`` holds."""
    seen: np.ndarray | None = None
    """Where the identity's photos saw its face, at geometry resolution."""
    swapped: LearnedFace | None = None
    """A learned model's face and masks."""
    # mask
    alpha: np.ndarray | None = None
    """Where the new face goes in the window, 0..1: outline, kept openings, the model's mask, occlusion."""
    visible: np.ndarray | None = None
    """Occlusion: 0 where something in front covers the face (None: occlusion off)."""
    glasses: GlassesKeep | None = None
    """The actor's glasses' frame, laid back over the swapped face by the blend (None: no glasses, not swapped, or
    ``keep_glasses`` off)."""
    actor_small: np.ndarray | None = None
    """The actor at geometry resolution, where light and colour are measured."""
    skin_small: np.ndarray | None = None
    """The actor's skin at geometry resolution."""
    # relight
    face_bgr: Pixels | None = None
    """The face to paste (relit), BGR uint8 on the backend's device; None: the blend takes the texture or the
    model's face as drawn."""
    gains_in_light: np.ndarray | None = None
    """The colour gains the relight folded into the target light (None: not relit with them)."""
    reference: Pixels | None = None
    """What the colour match compares the face with (None: ``actor_small``, the actor as the camera saw it)."""
    own: Pixels | None = None
    """The actor's own face under the target light, laid under a swap (None: none)."""

    @property
    def out(self) -> Pixels:
        """The frame the face is drawn into (the faces before it already are)."""
        return self.frame.canvas()

    @property
    def swapping(self) -> bool:
        """Another face goes onto the actor's (the mesh swap's or a model's)."""
        return self.identity is not None or self.swapped is not None

    @property
    def actor_only(self) -> bool:
        """The actor's own face, only relit."""
        return self.identity is None and self.swapped is None


class FrameStage(Protocol):
    """A stage that works on the whole frame."""

    name: str

    def run(self, frame: FrameContext) -> None: ...

    def forget(self, active: Set[int]) -> None:
        """Drop what is kept for faces not in ``active`` (the ids tracked this frame)."""


class FaceStage(Protocol):
    """A stage that works on one face of the frame, after the stages before it."""

    name: str

    def run(self, face: FaceContext) -> None: ...

    def forget(self, active: Set[int]) -> None:
        """Drop what is kept for faces not in ``active`` (the ids tracked this frame)."""

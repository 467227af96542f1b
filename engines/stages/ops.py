"""The array operations the per-face stages call, on one backend: numpy (the CPU path) or torch ops on a device.

A stage keeps one orchestration and calls its pixel work through a ``FaceOps`` chosen when the processor is
built (``make_ops``): ``NumpyOps`` calls the numpy/cv2 functions of ``engines.light`` and ``engines.compose`` (the
default: on a CPU they are 2-50x faster than the torch ops, BENCHMARKS.md "torch ops"), ``TorchOps``
(``engines.stages.torch_ops``) their torch twins on a device (``cuda``; ``cpu`` for the suite's parity check).

The frame being drawn (``FrameContext.canvas``) lives on the backend's device: uploaded once when the first face
needs it and downloaded once (``to_host``) before the overlay and the watermark. What the stages that have no
torch twin yet compute (the geometry, the masks, the light measured on the face) stays numpy on the host and is
uploaded where a torch op takes it (``TorchOps.device_array``).
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, TypeAlias

import numpy as np

from engines.compose.blend import BlendConfig, apply_gains, colour_gains, composite, paste_face
from engines.compose.chroma import transfer_chroma
from engines.compose.seam import apply_field
from engines.errors import InputError
from engines.identity.store import Identity
from engines.light.relight import MAX_GAIN, SHADING_GRID_PX, relight_face
from engines.resample import shrink
from engines.swap.mesh import FaceGeometry, MeshSwapper
from engines.swap.raster import Window

Pixels: TypeAlias = Any
"""An image or mask on the backend's device: ``np.ndarray`` for ``NumpyOps``, ``torch.Tensor`` for ``TorchOps``
(which also takes host ``np.ndarray`` inputs and uploads them). ``Any`` because the stages pass them through
without looking inside: only the backend that made one reads it."""

StagesBackend = Literal["auto", "numpy", "torch"]
"""``ProcessorConfig.stages``: ``auto`` — torch ops on a CUDA device, numpy on the CPU; ``numpy``; ``torch`` — the
torch ops on the processor's device whatever it is (on ``cpu``: the suite's check against numpy)."""


class FaceOps(Protocol):
    """The per-face pixel work, on one backend; each method mirrors the numpy function it names."""

    name: str
    """What the stats show as ``frame_path``: ``numpy``, ``torch-cuda`` or ``torch-cpu``."""

    def canvas(self, image: np.ndarray) -> Pixels:
        """A copy of the frame to draw the faces into, on the device (the frame's one upload)."""

    def to_host(self, pixels: Pixels) -> np.ndarray:
        """``pixels`` as a host uint8 array (the frame's one download, for the overlay, the mark and encoding)."""

    def paste(self, canvas: Pixels, window: Window, pixels: np.ndarray) -> None:
        """Host ``pixels`` written into ``canvas``'s ``window`` (the morph's warped actor)."""

    def window_on_host(self, canvas: Pixels, window: Window) -> np.ndarray:
        """A frame-sized host array whose ``window`` holds ``canvas``'s pixels there (only there), for a step with no
        torch twin that edits the frame in place; ``window_from_host`` puts its work back."""

    def window_from_host(self, canvas: Pixels, window: Window, host: np.ndarray) -> None:
        """``host``'s ``window`` (from ``window_on_host``, edited) back into ``canvas``."""

    def render(self, swapper: MeshSwapper, geometry: FaceGeometry, identity: Identity, source: str) -> Pixels:
        """``MeshSwapper.render``: the identity's texture or albedo looked up over the face's work size."""

    def to_window(self, geometry: FaceGeometry, pixels: Pixels) -> Pixels:
        """``FaceGeometry.to_window``: a small-raster or work-size array resized to the window."""

    def shrink(self, pixels: Pixels, size: tuple[int, int]) -> Pixels:
        """``engines.resample.shrink`` to ``size`` = (width, height)."""

    def relight(
        self,
        image: Pixels,
        normals: np.ndarray,
        mask: Pixels,
        source: np.ndarray,
        target: np.ndarray,
        albedo: Pixels | None,
        max_gain: float,
        shading_grid_px: int | None,
    ) -> Pixels:
        """``engines.light.relight.relight_face`` on the face's coarse normal grid."""

    def colour_gains(self, face: Pixels, reference: Pixels, skin: np.ndarray, config: BlendConfig) -> np.ndarray | None:
        """``engines.compose.blend.colour_gains``; the gains on the host (the blend smooths them there)."""

    def apply_gains(self, face: Pixels, gains: np.ndarray) -> Pixels:
        """``engines.compose.blend.apply_gains``."""

    def transfer_chroma(self, face: Pixels, field_small: np.ndarray) -> Pixels:
        """``engines.compose.chroma.transfer_chroma``: a monochrome face in the colour ``field_small`` (host, geometry
        resolution: ``chroma_field``) gives it."""

    def apply_field(self, face: Pixels, field_small: np.ndarray) -> Pixels:
        """``engines.compose.seam.apply_field``: the seam's gains (host, geometry resolution) on the face."""

    def composite(self, canvas: Pixels, geometry: FaceGeometry, face: Pixels, alpha: np.ndarray) -> None:
        """``engines.compose.blend.composite``: the face blended into ``canvas``'s window, in place."""

    def paste_face(
        self, canvas: Pixels, geometry: FaceGeometry, face: Pixels, field_small: np.ndarray | None, alpha: np.ndarray
    ) -> None:
        """The face at its work size with the seam's gains (``apply_field``; None: none), scaled to the window
        (``to_window``) and composited into ``canvas`` by the window-size ``alpha`` (``composite``), in place."""


class NumpyOps:
    """The numpy/cv2 stages themselves: the CPU path and the default.

    ``fused`` (the default): the chains of full-size per-pixel passes — the relight's field, product and sRGB
    lookup; the seam's gains, the scale to the window and the composite — run as one compiled pass each
    (``engines.fused``, numba); False: the numpy/cv2 functions pass by pass, the reference they are tested
    against (within a level or two, tests/engines/test_fused.py)."""

    name = "numpy"

    def __init__(self, fused: bool = True) -> None:
        self.fused = fused

    def canvas(self, image: np.ndarray) -> np.ndarray:
        return image.copy()

    def to_host(self, pixels: np.ndarray) -> np.ndarray:
        return pixels

    def paste(self, canvas: np.ndarray, window: Window, pixels: np.ndarray) -> None:
        ys, xs = window.slices
        canvas[ys, xs] = pixels

    def window_on_host(self, canvas: np.ndarray, window: Window) -> np.ndarray:
        return canvas  # the canvas is on the host: edited in place

    def window_from_host(self, canvas: np.ndarray, window: Window, host: np.ndarray) -> None:
        """Nothing to do: ``host`` is the canvas."""

    def render(self, swapper: MeshSwapper, geometry: FaceGeometry, identity: Identity, source: str) -> np.ndarray:
        return swapper.render(geometry, identity, source)

    def to_window(self, geometry: FaceGeometry, pixels: np.ndarray) -> np.ndarray:
        return geometry.to_window(pixels)

    def shrink(self, pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return shrink(pixels, size)

    def relight(
        self,
        image: np.ndarray,
        normals: np.ndarray,
        mask: np.ndarray,
        source: np.ndarray,
        target: np.ndarray,
        albedo: np.ndarray | None,
        max_gain: float = MAX_GAIN,
        shading_grid_px: int | None = SHADING_GRID_PX,
        albedo_lookup: tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]] | None = None,
    ) -> np.ndarray:
        """``relight_face``; ``albedo_lookup`` (numpy's own: ``MeshSwapper.albedo_lookup``) instead of ``albedo``: the
        albedo looked up as the face is relit."""
        return relight_face(
            image,
            normals,
            mask,
            source,
            target,
            albedo,
            max_gain=max_gain,
            shading_grid_px=shading_grid_px,
            fused=self.fused,
            albedo_lookup=albedo_lookup,
        )

    def colour_gains(
        self, face: np.ndarray, reference: np.ndarray, skin: np.ndarray, config: BlendConfig
    ) -> np.ndarray | None:
        return colour_gains(face, reference, skin, config, self.fused)

    def apply_gains(self, face: np.ndarray, gains: np.ndarray) -> np.ndarray:
        return apply_gains(face, gains)

    def transfer_chroma(self, face: np.ndarray, field_small: np.ndarray) -> np.ndarray:
        return transfer_chroma(face, field_small)

    def apply_field(self, face: np.ndarray, field_small: np.ndarray) -> np.ndarray:
        return apply_field(face, field_small)

    def composite(self, canvas: np.ndarray, geometry: FaceGeometry, face: np.ndarray, alpha: np.ndarray) -> None:
        composite(canvas, geometry, face, alpha)

    def paste_face(
        self,
        canvas: np.ndarray,
        geometry: FaceGeometry,
        face: np.ndarray,
        field_small: np.ndarray | None,
        alpha: np.ndarray,
    ) -> None:
        if self.fused:
            paste_face(canvas, geometry, face, field_small, alpha)
            return
        if field_small is not None:
            face = apply_field(face, field_small)
        composite(canvas, geometry, geometry.to_window(face), alpha)


def make_ops(backend: str, device: str, fused: bool = True) -> FaceOps:
    """The backend the per-face stages run on: ``backend`` as ``StagesBackend`` says, ``device`` the processor's
    (``auto``, ``cpu`` or ``cuda``, resolved as ``engines.runtime.select.resolve_device``); ``fused``: numpy's
    compiled kernels (``NumpyOps``). InputError for an unknown backend."""
    if backend not in ("auto", "numpy", "torch"):
        raise InputError(f"unknown stages backend {backend!r}: choose auto, numpy or torch")
    if backend == "numpy":
        return NumpyOps(fused)
    from engines.runtime.select import resolve_device

    resolved = resolve_device(device)
    if backend == "auto" and resolved == "cpu":
        return NumpyOps(fused)
    from engines.stages.torch_ops import TorchOps

    return TorchOps(resolved)

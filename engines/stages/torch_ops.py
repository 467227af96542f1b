"""The per-face stages' pixel work as torch ops on one device (``FaceOps``, ``engines.stages.ops``).

Each method calls the torch twin of the numpy function ``NumpyOps`` calls — ``engines.light.torch_ops``,
``engines.compose.torch_ops``, ``engines.torch_resample`` — so the stages keep one orchestration. Images the
stages make here stay tensors on the device; host arrays from the stages with no torch twin yet (the geometry's
normals and labels, the masks made with cv2 distance transforms, the actor's window and the identity's
rendering from the mesh swap, the light measured on the host) are uploaded where an op takes them
(``device_array``: a view, no copy, on a CPU device). The frame itself is uploaded once (``canvas``) and
downloaded once (``to_host``).
"""

from __future__ import annotations

import numpy as np
import torch

from engines.compose import torch_ops as compose_t
from engines.compose.blend import BlendConfig
from engines.identity.store import Identity
from engines.light import torch_ops as light_t
from engines.light.relight import MAX_GAIN, SHADING_GRID_PX
from engines.swap.mesh import FaceGeometry, MeshSwapper
from engines.swap.raster import Window
from engines.swap.torch_ops import sample_bilinear
from engines.torch_resample import resize_linear, shrink

PixelsT = torch.Tensor | np.ndarray


class TorchOps:
    """The torch twins of the numpy stages, on ``device`` (``cuda`` for the GPU path; ``cpu`` is slower than numpy
    there and is used by the suite to hold the twins equal to numpy through the whole processor)."""

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)
        self.name = f"torch-{self.device.type}"
        self._textures: dict[int, tuple[np.ndarray, torch.Tensor]] = {}
        """The identities' textures on the device, by the host array's id (the swapper keeps each level and blend
        until the identity changes): uploaded once, not per face and frame."""

    def device_array(self, pixels: PixelsT) -> torch.Tensor:
        """``pixels`` as a tensor on the device: a tensor as it is, a host array uploaded (a view on a CPU device:
        the ops never write into their inputs)."""
        if isinstance(pixels, torch.Tensor):
            return pixels.to(self.device)
        array = np.ascontiguousarray(pixels)
        if not array.flags.writeable:  # torch wants a writable buffer to wrap
            array = array.copy()
        return torch.from_numpy(array).to(self.device)

    def canvas(self, image: np.ndarray) -> torch.Tensor:
        return torch.tensor(np.ascontiguousarray(image), device=self.device)  # a copy on every device

    def to_host(self, pixels: PixelsT) -> np.ndarray:
        if isinstance(pixels, np.ndarray):
            return pixels
        return pixels.cpu().numpy()

    def paste(self, canvas: torch.Tensor, window: Window, pixels: np.ndarray) -> None:
        ys, xs = window.slices
        canvas[ys, xs] = self.device_array(pixels)

    def window_on_host(self, canvas: torch.Tensor, window: Window) -> np.ndarray:
        host = np.empty(tuple(canvas.shape), dtype=np.uint8)  # only the window is read: no fill
        ys, xs = window.slices
        host[ys, xs] = canvas[ys, xs].cpu().numpy()
        return host

    def window_from_host(self, canvas: torch.Tensor, window: Window, host: np.ndarray) -> None:
        self.paste(canvas, window, host[window.slices])

    def render(self, swapper: MeshSwapper, geometry: FaceGeometry, identity: Identity, source: str) -> torch.Tensor:
        """``MeshSwapper.render`` with the lookup as ``sample_bilinear``: the same texture level and texel
        positions (chosen on the host), upsampled to the work size and sampled in the face's box on the device."""
        tex, texel_small = swapper.texture_lookup(geometry, identity, source)
        h, w = geometry.work_size
        texel = resize_linear(self.device_array(texel_small), (w, h))
        ys, xs = geometry.face_box()
        texture = self._texture(tex)
        out = torch.zeros((h, w, int(texture.shape[2])), dtype=texture.dtype, device=self.device)
        out[ys, xs] = sample_bilinear(texture, texel[ys, xs])
        return out

    def _texture(self, tex: np.ndarray) -> torch.Tensor:
        cached = self._textures.get(id(tex))
        if cached is not None and cached[0] is tex:
            return cached[1]
        if len(self._textures) > 16:
            self._textures.clear()
        tensor = torch.from_numpy(np.ascontiguousarray(tex)).to(self.device)
        self._textures[id(tex)] = (tex, tensor)
        return tensor

    def to_window(self, geometry: FaceGeometry, pixels: PixelsT) -> torch.Tensor:
        x = self.device_array(pixels)
        h, w = geometry.window.height, geometry.window.width
        if tuple(x.shape[:2]) == (h, w):
            return x
        return resize_linear(x, (w, h))

    def shrink(self, pixels: PixelsT, size: tuple[int, int]) -> torch.Tensor:
        return shrink(self.device_array(pixels), size)

    def relight(
        self,
        image: PixelsT,
        normals: np.ndarray,
        mask: PixelsT,
        source: np.ndarray,
        target: np.ndarray,
        albedo: PixelsT | None,
        max_gain: float = MAX_GAIN,
        shading_grid_px: int | None = SHADING_GRID_PX,
    ) -> torch.Tensor:
        """``relight_window``: the coarse normal grid upsampled as ``relight_face`` does. Per-pixel normals over a
        window past 4/3 of the shading grid (which ``relight_face`` would coarsen first) are refused there; the
        stages pass the geometry's grid, which is never that."""
        if shading_grid_px != SHADING_GRID_PX:
            raise ValueError(f"the torch relight shades on a {SHADING_GRID_PX} px grid, not {shading_grid_px}")
        return light_t.relight_window(
            self.device_array(image),
            self.device_array(normals),
            self.device_array(mask),
            torch.as_tensor(np.asarray(source, dtype=np.float64), device=self.device),
            torch.as_tensor(np.asarray(target, dtype=np.float64), device=self.device),
            None if albedo is None else self.device_array(albedo),
            max_gain=max_gain,
        )

    def colour_gains(
        self, face: PixelsT, reference: PixelsT, skin: np.ndarray, config: BlendConfig
    ) -> np.ndarray | None:
        gains = compose_t.colour_gains(
            self.device_array(face), self.device_array(reference), self.device_array(skin), config
        )
        return None if gains is None else gains.cpu().numpy()  # three numbers, smoothed on the host

    def apply_gains(self, face: PixelsT, gains: np.ndarray) -> torch.Tensor:
        return compose_t.apply_gains(self.device_array(face), torch.as_tensor(np.asarray(gains, dtype=np.float64)))

    def transfer_chroma(self, face: PixelsT, field_small: np.ndarray) -> torch.Tensor:
        return compose_t.transfer_chroma(self.device_array(face), self.device_array(field_small))

    def apply_field(self, face: PixelsT, field_small: np.ndarray) -> torch.Tensor:
        return compose_t.apply_field(self.device_array(face), self.device_array(field_small))

    def composite(self, canvas: torch.Tensor, geometry: FaceGeometry, face: PixelsT, alpha: np.ndarray) -> None:
        # A work-size alpha (``FaceGeometry.mask_size``) scaled to the window on the host, as the numpy reference does.
        alpha = geometry.to_window(alpha)
        compose_t.composite(canvas, geometry.window, self.device_array(face), self.device_array(alpha))

    def paste_face(
        self,
        canvas: torch.Tensor,
        geometry: FaceGeometry,
        face: PixelsT,
        field_small: np.ndarray | None,
        alpha: np.ndarray,
    ) -> None:
        if field_small is not None:
            face = self.apply_field(face, field_small)
        self.composite(canvas, geometry, self.to_window(geometry, face), alpha)

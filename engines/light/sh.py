"""Second-order spherical-harmonics (SH) lighting maths: basis, lights, projections, colour transfer curves.

Conventions used everywhere in stageswap's relighting:

- **Camera frame** for directions and normals: x to the right of the picture, y up, z toward the camera.
  (The face mesh uses image axes instead: x right, y down, z negative toward the camera;
  ``mesh_to_camera`` converts, a 180-degree turn about x, so handedness is kept.)
- **Shading SH**: a (9, 3) array ``L`` (9 real SH coefficients, colour channels R, G, B) describing the
  shading of a white Lambertian surface, ``E(n) = sh_basis(n) @ L``; a surface of albedo ``a`` shows
  ``a * E(n)`` in linear light. So the band-0 coefficient of a uniform light of level 1 is ``1 / Y00``.
  The order of the 9 functions is (l, m) = (0,0), (1,-1), (1,0), (1,1), (2,-2), (2,-1), (2,0), (2,1), (2,2),
  i.e. 1, y, z, x, xy, yz, 3z^2-1, xz, x^2-y^2 with the usual real-SH normalisation.
- **Radiance SH** (incoming light per direction, as an HDRI holds it) become shading SH by the
  Lambertian convolution (Ramamoorthi and Hanrahan 2001): band l is scaled by A_l / pi = 1, 2/3, 1/4.

Everything here is float64 numpy and independent of images; ``engines.light.relight`` uses it per frame.
"""

from __future__ import annotations

import math

import numpy as np

SH_COUNT = 9
Y00 = 0.5 * math.sqrt(1.0 / math.pi)  # 0.282095
_C1 = math.sqrt(3.0 / (4.0 * math.pi))  # 0.488603
_C2 = 0.5 * math.sqrt(15.0 / math.pi)  # 1.092548
_C20 = 0.25 * math.sqrt(5.0 / math.pi)  # 0.315392
_C22 = 0.25 * math.sqrt(15.0 / math.pi)  # 0.546274
BASIS_CONSTANTS = np.array([Y00, _C1, _C2, _C20, _C22], np.float32)
"""Y00, C1, C2, C20, C22 of ``sh_basis`` in float32, for a compiled loop that evaluates it (``engines.fused``)."""
BASIS_CONSTANTS.setflags(write=False)
BASIS_CONSTANTS64 = np.array([Y00, _C1, _C2, _C20, _C22], np.float64)
"""The same in float64, as ``sh_basis`` evaluates them for the light's fit (``engines.light.fused``)."""
BASIS_CONSTANTS64.setflags(write=False)

BAND_OF_COEFF = np.array([0, 1, 1, 1, 2, 2, 2, 2, 2])
LAMBERT_BAND_GAIN = np.array([1.0, 2.0 / 3.0, 0.25])
"""A_l / pi: the clamped-cosine kernel's SH gain per band, normalised so a uniform light passes unchanged."""

HEMISPHERE_MEAN_WEIGHTS = np.array([Y00, 0.0, 0.5 * _C1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
"""``w @ L`` is the mean of ``E(n)`` over the hemisphere of normals facing the camera (z > 0): the mean of
z there is 1/2, the mean of 3z^2-1 is 0 and every other function averages out by symmetry."""


FACE_MEAN_WEIGHTS = np.array([Y00, 0.005, 0.3595, 0.0, 0.0, 0.0213, 0.241, 0.0, 0.109])
"""``w @ L`` is the mean of ``E(n)`` over the pixels of a frontal face: the canonical face mesh's triangle
normals weighted by their area on screen (``tests/test_relight.py`` recomputes it from
``engines.face.topology``; terms odd in x are zero by symmetry). A face shows only part of the hemisphere,
where the light is well measured, so exposures are compared here rather than over the whole hemisphere."""


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """The 9 real SH functions at each direction: (N, 3) unit vectors (camera frame) -> (N, 9).

    Works for any leading shape: (..., 3) -> (..., 9). Inputs are not renormalised (callers pass unit
    vectors; a zero vector gives the constant term only).
    """
    n = np.asarray(normals)
    dtype = n.dtype if n.dtype in (np.float32, np.float64) else np.float64
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    out = np.empty(n.shape[:-1] + (SH_COUNT,), dtype=dtype)
    out[..., 0] = Y00
    out[..., 1] = _C1 * y
    out[..., 2] = _C1 * z
    out[..., 3] = _C1 * x
    out[..., 4] = _C2 * x * y
    out[..., 5] = _C2 * y * z
    out[..., 6] = _C20 * (3.0 * z * z - 1.0)
    out[..., 7] = _C2 * x * z
    out[..., 8] = _C22 * (x * x - y * y)
    return out


def shading(sh: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """``E(n)`` per direction and channel: (9, C) coefficients, (..., 3) normals -> (..., C)."""
    return sh_basis(normals) @ np.asarray(sh, dtype=np.float64)


def mesh_to_camera(normals_mesh: np.ndarray) -> np.ndarray:
    """Mesh/image axes (x right, y down, z away from the camera) to the camera frame (x right, y up, z toward)."""
    out = np.array(normals_mesh, dtype=np.float32, copy=True)
    out[..., 1:] *= -1.0
    return out


def lambert(radiance_sh: np.ndarray) -> np.ndarray:
    """Radiance SH (incoming light) -> shading SH of a white Lambertian surface (divided by pi)."""
    gain = LAMBERT_BAND_GAIN[BAND_OF_COEFF]
    return np.asarray(radiance_sh, dtype=np.float64) * gain[:, None]


def constant_sh(level: np.ndarray | float) -> np.ndarray:
    """Shading SH of a uniform light: ``E(n) = level`` (scalar or per channel)."""
    out = np.zeros((SH_COUNT, 3))
    out[0] = np.broadcast_to(np.asarray(level, dtype=np.float64), (3,)) / Y00
    return out


def directional_sh(
    direction: np.ndarray | tuple[float, float, float],
    intensity: float = 1.0,
    colour: np.ndarray | tuple[float, float, float] = (1.0, 1.0, 1.0),
    ambient: float = 0.0,
) -> np.ndarray:
    """Shading SH of a distant key light plus a uniform ambient fill.

    ``E(n) ~= ambient + intensity * colour * max(0, n . d)`` with ``d`` the unit direction toward the
    light in the camera frame; order 2 keeps the clamped cosine's low frequencies (the usual ~10% ringing
    on the dark side, where the ambient term dominates).
    """
    d = np.asarray(direction, dtype=np.float64)
    norm = float(np.linalg.norm(d))
    if not math.isfinite(norm) or norm < 1e-9:
        raise ValueError("light direction must be a non-zero finite vector")
    d = d / norm
    # A delta light toward d with radiance SH pi * Y(d) lights a white Lambertian surface to max(0, n . d).
    rgb = intensity * np.asarray(colour, dtype=np.float64).reshape(1, 3)
    key = lambert(math.pi * sh_basis(d)[:, None] * rgb)
    return key + constant_sh(ambient)


def hemisphere_mean(sh: np.ndarray) -> np.ndarray:
    """Mean of ``E(n)`` per channel over the normals facing the camera (the face's side of the sphere)."""
    return HEMISPHERE_MEAN_WEIGHTS @ np.asarray(sh, dtype=np.float64)


def face_mean(sh: np.ndarray) -> np.ndarray:
    """Mean of ``E(n)`` per channel over a frontal face: the exposure a light gives a face."""
    return FACE_MEAN_WEIGHTS @ np.asarray(sh, dtype=np.float64)


def equirect_directions(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions (H, W, 3) of an equirectangular image's pixel centres, and their solid angles (H, W).

    Mapping (camera frame): the image centre looks toward the camera (+z), so light drawn in the middle
    of the image falls on the front of the face; the right half lights the side of the face seen on the
    right of the picture (+x); the top row is straight up (+y).
    """
    v = (np.arange(height) + 0.5) / height
    u = (np.arange(width) + 0.5) / width
    lat = (0.5 - v) * math.pi  # +pi/2 at the top
    lon = (u - 0.5) * 2.0 * math.pi  # 0 at the centre, +pi/2 to the right
    cos_lat = np.cos(lat)[:, None]
    dirs = np.stack(
        np.broadcast_arrays(
            cos_lat * np.sin(lon)[None, :],
            np.sin(lat)[:, None],
            cos_lat * np.cos(lon)[None, :],
        ),
        axis=-1,
    )
    solid_angle = np.broadcast_to(cos_lat * (math.pi / height) * (2.0 * math.pi / width), (height, width))
    return dirs, np.ascontiguousarray(solid_angle)


def project_equirect(radiance_rgb: np.ndarray) -> np.ndarray:
    """Radiance SH (9, 3) of a linear-light equirectangular image (H, W, 3, RGB), by solid-angle quadrature."""
    img = np.asarray(radiance_rgb, dtype=np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {img.shape}")
    dirs, d_omega = equirect_directions(img.shape[0], img.shape[1])
    basis = sh_basis(dirs)  # (H, W, 9)
    weighted = img * d_omega[..., None]
    return np.einsum("hwk,hwc->kc", basis, weighted)


def sh_from_flat(values: tuple[float, ...] | list[float] | np.ndarray) -> np.ndarray:
    """27 numbers, R's 9 coefficients then G's then B's (the settings' ``relight_target.sh``) -> (9, 3)."""
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (27,):
        raise ValueError(f"expected 27 SH coefficients (9 per channel, R then G then B), got {a.size}")
    return a.reshape(3, SH_COUNT).T.copy()


def sh_to_flat(sh: np.ndarray) -> tuple[float, ...]:
    """Inverse of ``sh_from_flat``."""
    return tuple(float(v) for v in np.asarray(sh, dtype=np.float64).T.reshape(-1))


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in 0..1 to linear light (IEC 61966-2-1)."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x <= 0.04045, x / 12.92, ((np.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light in 0..1 to sRGB-encoded values in 0..1 (clipped)."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(np.maximum(x, 0.0031308), 1.0 / 2.4) - 0.055)

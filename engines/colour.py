"""Colour management with OpenColorIO: log and ACES footage in, scene-linear light where it matters, the
declared space back out.

The engines see what they were built for, a display-referred 8-bit BGR picture: detection, landmarks and
the swap work on it unchanged. Around them (``ColourTransform``):

1. the frame's code values (8-bit, or 16-bit holding 10/12-bit footage) are decoded from the declared
   input space (e.g. ``ARRI LogC4``, ``ACEScct``, ``S-Log3 S-Gamut3.Cine``) to scene-linear light with
   Rec.709 primaries (``Linear Rec.709 (sRGB)``), kept in float;
2. the engines' picture is that light through the sRGB curve, clipped at 1 and rounded to 8 bits — so
   the relighting, which decodes its input with the same curve (``engines.light``'s ``srgb_to_linear``),
   computes its ratio of shadings in real scene-linear light, not on log code values;
3. what the engines changed is added back in linear light: ``out = linear + lin(processed) - lin(engine)``
   (``lin`` the same sRGB curve, by table). A pixel they did not touch keeps its full-precision linear
   value exactly, so a frame with nothing done to it comes back within OCIO's round-trip (well under one
   10-bit code value); a relit pixel is ``linear * gain`` to 8-bit precision of the change;
4. the result is encoded into the output space (the input's unless another is declared), in the input's
   bit depth.

Colour spaces are named as in OCIO's built-in ACES studio config (``studio-config-latest``: ARRI, Sony,
RED, Canon, Panasonic, Blackmagic, Apple, DJI log encodings, ACES2065-1/ACEScg/ACEScc/ACEScct, Rec.709,
sRGB, Rec.2020, P3...). ``spaces()`` lists them; an unknown name is an InputError listing close matches.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass

import cv2
import numpy as np

from engines.errors import InputError

BUILTIN_CONFIGS = ("studio-config-latest", "cg-config-latest")
DEFAULT_CONFIG = "studio-config-latest"
WORKING_LINEAR = "Linear Rec.709 (sRGB)"
"""Scene-linear light in Rec.709/sRGB primaries: what the engines' sRGB picture decodes to."""
ENGINE_ENCODED = "sRGB Encoded Rec.709 (sRGB)"
"""The engines' picture: ``WORKING_LINEAR`` through the sRGB curve."""

_U8_TO_LINEAR: np.ndarray | None = None


def _u8_to_linear() -> np.ndarray:
    """The sRGB curve as a table of the 256 8-bit codes (the relighting decodes with the same function)."""
    global _U8_TO_LINEAR
    if _U8_TO_LINEAR is None:
        from engines.light.sh import srgb_to_linear

        table = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
        table.setflags(write=False)
        _U8_TO_LINEAR = table
    return _U8_TO_LINEAR


@functools.cache
def _config(name: str) -> object:
    import PyOpenColorIO as ocio

    if name not in BUILTIN_CONFIGS:
        raise InputError(f"unknown OCIO config {name!r}: use one of {', '.join(BUILTIN_CONFIGS)}")
    return ocio.Config.CreateFromBuiltinConfig(name)


def spaces(config: str = DEFAULT_CONFIG) -> list[str]:
    """The colour space names ``config`` knows (what ``colour.input`` / ``colour.output`` accept)."""
    return [cs.getName() for cs in _config(config).getColorSpaces()]  # type: ignore[attr-defined]


def check_space(name: object, what: str, config: str = DEFAULT_CONFIG) -> str:
    """``name`` if ``config`` has that colour space (raises InputError with the closest names otherwise)."""
    if not isinstance(name, str) or not name:
        raise InputError(f"{what} must be a colour space name, got {name!r}")
    known = spaces(config)
    if name in known:
        return name
    close = difflib.get_close_matches(name, known, n=4, cutoff=0.4)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}" if close else ""
    raise InputError(f"{what} {name!r} is not a colour space of OCIO's {config}{hint} (stageswap colour list)")


@dataclass(frozen=True)
class ColourTransform:
    """The conversions for one (config, input space, output space); thread-safe (OCIO processors are)."""

    config: str
    input: str
    output: str

    @functools.cached_property
    def _procs(self) -> tuple[object, object, object]:
        import PyOpenColorIO as ocio

        cfg = _config(self.config)
        f32 = ocio.BIT_DEPTH_F32

        def cpu(src: str, dst: str) -> object:
            proc = cfg.getProcessor(src, dst)  # type: ignore[attr-defined]
            return proc.getOptimizedCPUProcessor(f32, f32, ocio.OPTIMIZATION_DEFAULT)

        return cpu(self.input, WORKING_LINEAR), cpu(WORKING_LINEAR, ENGINE_ENCODED), cpu(WORKING_LINEAR, self.output)

    def to_engine(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scene-linear float32 BGR, the engines' 8-bit sRGB BGR picture) of a frame in the input space.

        ``image``: H x W x 3 BGR code values, uint8 or uint16 (full range of the type)."""
        to_linear, to_engine, _ = self._procs
        linear = _as_float(image)
        _apply_bgr(to_linear, linear)
        encoded = np.clip(linear, 0.0, 1.0)
        _apply_bgr(to_engine, encoded)
        return linear, _to_code(encoded, np.dtype(np.uint8))

    def from_engine(
        self, linear: np.ndarray, engine: np.ndarray, processed: np.ndarray, dtype: np.dtype | type
    ) -> np.ndarray:
        """The output frame (BGR, ``dtype`` uint8 or uint16) in the output space: ``linear`` plus, in linear
        light, what the engines changed between ``engine`` and ``processed``."""
        *_, to_output = self._procs
        table = _u8_to_linear().reshape(1, 256)
        # The sRGB curve by table: the change is exactly zero wherever the engines did nothing.
        out: np.ndarray = cv2.LUT(processed, table) - cv2.LUT(engine, table)
        out += linear
        _apply_bgr(to_output, out)
        return _to_code(out, np.dtype(dtype))


@dataclass(frozen=True)
class MonitorView:
    """What a monitor shows of footage in ``space``: OCIO's ``display``/``view`` (e.g. ``sRGB - Display`` /
    ``ACES 2.0 - SDR 100 nits (Rec.709)``), for 8-bit BGR frames.

    The view is baked once into a 65-point 3D table (evaluated by OCIO at full precision) that OCIO then
    applies with tetrahedral interpolation: the ACES 2.0 output transforms cost about a second per 720p
    frame evaluated per pixel on this machine's CPU, the table a few milliseconds."""

    config: str
    space: str
    display: str
    view: str
    grid: int = 65

    @functools.cached_property
    def _proc(self) -> object:
        import PyOpenColorIO as ocio

        cfg = _config(self.config)
        exact = cfg.getProcessor(  # type: ignore[attr-defined]
            ocio.DisplayViewTransform(src=self.space, display=self.display, view=self.view)
        ).getDefaultCPUProcessor()
        axis = np.linspace(0.0, 1.0, self.grid, dtype=np.float32)
        r, g, b = np.meshgrid(axis, axis, axis, indexing="ij")  # OCIO's order: blue changes fastest
        samples = np.ascontiguousarray(np.stack([r, g, b], axis=-1).reshape(-1, 1, 3))
        exact.applyRGB(samples)
        lut = ocio.Lut3DTransform()
        lut.setGridSize(self.grid)
        lut.setData(np.ascontiguousarray(samples.reshape(-1), dtype=np.float32))
        lut.setInterpolation(ocio.INTERP_TETRAHEDRAL)
        u8 = ocio.BIT_DEPTH_UINT8
        return cfg.getProcessor(lut).getOptimizedCPUProcessor(u8, u8, ocio.OPTIMIZATION_DEFAULT)  # type: ignore[attr-defined]

    def apply(self, image: np.ndarray) -> np.ndarray:
        """A new H x W x 3 uint8 BGR frame: ``image`` (in ``space``) as the monitor shows it."""
        import PyOpenColorIO as ocio

        out = np.array(image, dtype=np.uint8, order="C", copy=True)
        h, w = out.shape[:2]
        desc = ocio.PackedImageDesc(
            out,
            width=w,
            height=h,
            chanOrder=ocio.CHANNEL_ORDERING_BGR,
            bitDepth=ocio.BIT_DEPTH_UINT8,
            chanStrideBytes=1,
            xStrideBytes=3,
            yStrideBytes=3 * w,
        )
        self._proc.apply(desc)  # type: ignore[attr-defined]
        return out


def displays(config: str = DEFAULT_CONFIG) -> dict[str, list[str]]:
    """The monitor displays of ``config`` and each one's views (what ``colour.monitor`` accepts)."""
    cfg = _config(config)
    return {d: list(cfg.getViews(d)) for d in cfg.getDisplays()}  # type: ignore[attr-defined]


def monitor_view(space: str, display: str, view: str | None = None, config: str = DEFAULT_CONFIG) -> MonitorView:
    """The (cached, validated) monitor view of footage in ``space``; ``view`` None: the display's default."""
    return _monitor_view(config, space, display, view)


@functools.lru_cache(maxsize=8)
def _monitor_view(config: str, space: str, display: str, view: str | None) -> MonitorView:
    known = displays(config)
    if display not in known:
        raise InputError(f"colour.monitor {display!r} is not a display of {config}: use one of {', '.join(known)}")
    if view is None:
        view = str(_config(config).getDefaultView(display))  # type: ignore[attr-defined]
    if view not in known[display]:
        raise InputError(
            f"colour.monitor_view {view!r} is not a view of {display!r}: use one of {', '.join(known[display])}"
        )
    check_space(space, "colour space", config)
    return MonitorView(config, space, display, view)


def transform(input_space: str, output_space: str | None = None, config: str = DEFAULT_CONFIG) -> ColourTransform:
    """The (cached) transform for a stream's or a run's colour settings."""
    return _transform(config, input_space, output_space or input_space)


@functools.lru_cache(maxsize=16)
def _transform(config: str, input_space: str, output_space: str) -> ColourTransform:
    check_space(input_space, "colour.input", config)
    check_space(output_space, "colour.output", config)
    return ColourTransform(config, input_space, output_space)


def _apply_bgr(processor: object, image: np.ndarray) -> None:
    """Apply an OCIO CPU processor in place to a contiguous H x W x 3 float32 BGR image."""
    import PyOpenColorIO as ocio

    h, w = image.shape[:2]
    desc = ocio.PackedImageDesc(image, width=w, height=h, chanOrder=ocio.CHANNEL_ORDERING_BGR)
    processor.apply(desc)  # type: ignore[attr-defined]


def _as_float(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError(f"a colour-managed frame must be H x W x 3, got {image.shape}")
    if image.dtype == np.uint8:
        scale = 1.0 / 255.0
    elif image.dtype == np.uint16:
        scale = 1.0 / 65535.0
    else:
        raise InputError(f"a colour-managed frame must be uint8 or uint16, got {image.dtype}")
    out = image.astype(np.float32)
    out *= np.float32(scale)
    return out


def _to_code(bgr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    top = np.float32(255.0 if dtype == np.uint8 else 65535.0)
    bgr *= top
    np.clip(bgr, 0.0, top, out=bgr)
    return np.rint(bgr, out=bgr).astype(dtype)

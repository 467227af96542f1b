"""Every engine ``build_engines.py`` exports and compiles, with the shapes TensorRT optimises for.

The catalogue sits here, next to the engines it lists (the face detector and mesh, person segmentation for
occlusion, the relight modules), so ``engines.runtime`` — which builds and runs any of them — knows nothing
about faces. Each entry carries one explicit optimisation profile per input (faces 1-8 for per-face engines;
frame sizes for the detector), the tolerances its checks use, and a fingerprint that changes whenever the
graph would (``engines.runtime.export``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from engines.errors import ModelError
from engines.runtime.export import (
    MAX_FACES,
    OPT_FACES,
    Engine,
    OnnxModelEngine,
    ShapeRange,
    Tolerance,
    TorchEngine,
    converted_tflite_engine,
    source_sha256,
)

FACEMESH = converted_tflite_engine(
    "facemesh",
    "468-point face mesh, converted from MediaPipe's face_landmark.tflite",
    192,
    ("conv2d_21", "conv2d_31"),
    # Landmarks are crop pixels (0..192) and a presence logit: fp16 TensorRT within half a pixel.
    onnx_tolerance=Tolerance(2e-3, 1e-4),
    trt_tolerance=Tolerance(0.5, 1e-2),
)

SELFIE_SEGMENTATION = converted_tflite_engine(
    "selfie_segmentation",
    "person segmentation around each face (occlusion), converted from MediaPipe's selfie_segmentation.tflite",
    256,
    ("activation_10",),
    # Person probability 0..1: fp16 TensorRT within 2/100.
    onnx_tolerance=Tolerance(1e-4, 1e-4),
    trt_tolerance=Tolerance(2e-2, 0.0),
)


# ---- relight: the per-pixel SH relight modules of engines.light.relight_torch ----------------------------------------

RELIGHT_WINDOW = (64, 256, 1024)
"""Face window side in pixels: smallest, tuned-for, largest (a close-up face at 4K is about 1000 px)."""


def _relight_fingerprint(models_dir: str | os.PathLike[str] | None) -> str:
    import engines.light.relight
    import engines.light.relight_torch
    import engines.light.sh

    return source_sha256(engines.light.relight_torch, engines.light.relight, engines.light.sh)


def _relight_inputs(module: nn.Module, batch: int) -> tuple[torch.Tensor, ...]:
    return tuple(module.example_inputs(batch=batch))  # type: ignore[operator]


def _relight_axes(name: str) -> dict[int, str]:
    # The same rule as the modules' own dynamic_axes() (a test keeps the two equal).
    return {0: "faces"} if name.startswith("sh_") else {0: "faces", 2: "height", 3: "width"}


def _relight_profile(name: str) -> ShapeRange:
    lo, opt, hi = RELIGHT_WINDOW
    if name.startswith("sh_"):
        return ShapeRange((1, 9, 3), (OPT_FACES, 9, 3), (MAX_FACES, 9, 3))
    channels = 1 if name == "mask" else 3
    return ShapeRange((1, channels, lo, lo), (OPT_FACES, channels, opt, opt), (MAX_FACES, channels, hi, hi))


def _relight_engine(name: str, class_name: str, description: str) -> TorchEngine:
    import engines.light.relight_torch

    cls = getattr(engines.light.relight_torch, class_name)
    inputs, outputs = tuple(cls.input_names), tuple(cls.output_names)
    return TorchEngine(
        name=name,
        description=description,
        factory=lambda models_dir: getattr(engines.light.relight_torch, class_name)().eval(),
        example_inputs=_relight_inputs,
        input_names=inputs,
        output_names=outputs,
        dynamic_axes={n: _relight_axes(n) for n in (*inputs, *outputs)},
        profiles={n: _relight_profile(n) for n in inputs},
        fingerprint=_relight_fingerprint,
        # sRGB 0..1 output: fp16 TensorRT within 1/100 (2.5 of 255 levels).
        onnx_tolerance=Tolerance(1e-4, 1e-4),
        trt_tolerance=Tolerance(1e-2, 0.0),
    )


RELIGHT = _relight_engine("relight", "SHRelight", "per-pixel SH ratio relight of the actor's face (SHRelight)")
RELIGHT_ALBEDO = _relight_engine(
    "relight_albedo", "SHRelightAlbedo", "per-pixel SH relight of a swapped-in albedo (SHRelightAlbedo)"
)


# ---- yunet: the registry's detector as published ----------------------------------------------------------


def _yunet_inputs(batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {"input": rng.uniform(0, 255, (batch, 3, 192, 320)).astype(np.float32)}


YUNET = OnnxModelEngine(
    name="yunet",
    description="YuNet face detector (registry ONNX, dynamic input size)",
    registry_model="yunet",
    # One frame at a time, downscaled to the detect width (multiples of 32): 192x320 is a 16:9 frame at the
    # default --detect-width 320; up to 1280 on either side for wide detect widths and portrait frames.
    profiles={"input": ShapeRange((1, 3, 32, 32), (1, 3, 192, 320), (1, 3, 1280, 1280))},
    example_inputs=_yunet_inputs,
    trt_tolerance=Tolerance(3e-2, 3e-2),
    torch_tolerance=Tolerance(1e-4, 1e-4),
)


CATALOGUE: Mapping[str, Engine] = {e.name: e for e in (YUNET, FACEMESH, SELFIE_SEGMENTATION, RELIGHT, RELIGHT_ALBEDO)}
"""Every engine build_engines handles, by name (build order)."""


def torch_engine(name: str) -> TorchEngine:
    """The catalogue's torch engine ``name`` (e.g. ``relight``); ModelError naming the known ones otherwise."""
    engine = CATALOGUE.get(name)
    if not isinstance(engine, TorchEngine):
        known = ", ".join(n for n, e in CATALOGUE.items() if isinstance(e, TorchEngine))
        raise ModelError(f"unknown torch engine {name!r}; known: {known}")
    return engine

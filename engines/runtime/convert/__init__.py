"""Model conversions for the GPU path: published model files turned into torch modules (must not import
anything of ours outside ``engines.errors``).

The weights are always read from the published file at load time (nothing is re-published), so the
converted module is exactly the model in the registry, and it runs on CUDA in torch (the GPU fallback
runtime) and exports to ONNX (for TensorRT):

- ``tflite_torch``: MediaPipe's ``.tflite`` face mesh (parsed with LiteRT's own flatbuffer schema);
- ``onnx_torch``: a small ONNX interpreter in torch for the registry's ONNX-only models (YuNet), so the
  detector runs on the GPU without onnxruntime-gpu (see README, "GPU").
"""

from __future__ import annotations

from engines.runtime.convert.onnx_torch import OnnxModule, load_onnx_module
from engines.runtime.convert.tflite_torch import TfliteModule, load_tflite_module

__all__ = ["OnnxModule", "TfliteModule", "load_onnx_module", "load_tflite_module"]

"""A ``.tflite`` graph as a torch module, its weights read from the file when it is loaded.

Why: MediaPipe publishes its face mesh only as TFLite. LiteRT runs it well on the CPU, but the GPU path
needs the same network on CUDA (torch, the GPU fallback) and as ONNX (TensorRT). Reading the flatbuffer
with LiteRT's own generated schema gives every operator with its options (strides, padding, fused
activation), which the interpreter's op details do not expose, and the constant buffers (fp16 weights
behind DEQUANTIZE ops, folded to fp32 here).

Layout: TFLite is NHWC; the module takes and returns tensors in the TFLite layout (with a free batch
dimension, so several faces run in one call) and computes in NCHW inside, the layout cuDNN and TensorRT
prefer. TFLite's SAME padding is asymmetric for even sizes (the extra row/column goes after), which is
reproduced with an explicit pad where needed.

Only the operators the registry's TFLite models need are supported; any other one is a ModelError
naming it, never a silently wrong network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engines.errors import ModelError

_NUMPY_TYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
"""TFLite TensorType -> numpy dtype (FLOAT32, FLOAT16, INT32, UINT8, INT64, INT8)."""

SUPPORTED_OPS = (
    "ADD",
    "AVERAGE_POOL_2D",
    "CONV_2D",
    "CUSTOM:Convolution2DTransposeBias",
    "DEPTHWISE_CONV_2D",
    "DEQUANTIZE",
    "HARD_SWISH",
    "LOGISTIC",
    "MAX_POOL_2D",
    "MUL",
    "PAD",
    "PRELU",
    "RELU",
    "RELU6",
    "RESIZE_BILINEAR",
)
"""What the registry's TFLite models use: the face mesh, and MediaPipe's selfie segmentation."""


@dataclass(frozen=True)
class _Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: Any
    data: np.ndarray | None  # constant value (fp32 after folding), None for activations


def _same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TFLite/TensorFlow SAME padding for one axis: (before, after); the odd pixel goes after."""
    out = math.ceil(size / stride)
    effective = (kernel - 1) * dilation + 1
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def _activation(code: int, op: str) -> nn.Module:
    # ActivationFunctionType: NONE 0, RELU 1, RELU_N1_TO_1 2, RELU6 3, TANH 4.
    if code == 0:
        return nn.Identity()
    if code == 1:
        return nn.ReLU()
    if code == 3:
        return nn.ReLU6()
    if code == 4:
        return nn.Tanh()
    raise ModelError(f"TFLite {op} uses fused activation {code}, which the converter does not support")


class _Conv(nn.Module):
    """CONV_2D / DEPTHWISE_CONV_2D with TFLite padding and fused activation."""

    weight: torch.Tensor
    bias: torch.Tensor | None

    def __init__(
        self,
        weight: np.ndarray,
        bias: np.ndarray | None,
        stride: tuple[int, int],
        dilation: tuple[int, int],
        pads: tuple[int, int, int, int],
        groups: int,
        act: nn.Module,
    ) -> None:
        super().__init__()
        self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(weight, np.float32)))
        self.register_buffer("bias", None if bias is None else torch.from_numpy(np.ascontiguousarray(bias, np.float32)))
        self.stride = stride
        self.dilation = dilation
        top, bottom, left, right = pads
        # Symmetric padding is the conv's own; asymmetric (SAME, even size, stride 2) needs an explicit pad.
        self.symmetric = top == bottom and left == right
        self.conv_padding = (top, left) if self.symmetric else (0, 0)
        self.pad = (left, right, top, bottom)
        self.groups = groups
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.symmetric:
            x = F.pad(x, self.pad)
        y = F.conv2d(x, self.weight, self.bias, self.stride, self.conv_padding, self.dilation, self.groups)
        return self.act(y)


class _PRelu(nn.Module):
    alpha: torch.Tensor

    def __init__(self, alpha: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("alpha", torch.from_numpy(np.ascontiguousarray(alpha.reshape(-1), np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.prelu(x, self.alpha)


class _Binary(nn.Module):
    """ADD / MUL of two activations (NHWC broadcasting carries over to NCHW for 4-d tensors)."""

    def __init__(self, multiply: bool, act: nn.Module) -> None:
        super().__init__()
        self.multiply = multiply
        self.act = act

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.act(a * b if self.multiply else a + b)


class _HardSwish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.relu6(x + 3.0) * (1.0 / 6.0)  # TFLite's formula (exports as plain ops)


class _AvgPool(nn.Module):
    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int]) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel, self.stride)


class _ResizeBilinear(nn.Module):
    """TFLite RESIZE_BILINEAR with half-pixel centres = torch's bilinear without corner alignment."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)


class _TransposeConvBias(nn.Module):
    """MediaPipe's custom Convolution2DTransposeBias: a transposed convolution with TensorFlow padding."""

    weight: torch.Tensor
    bias: torch.Tensor

    def __init__(self, weight: np.ndarray, bias: np.ndarray, stride: tuple[int, int], crop: tuple[int, int, int, int]):
        super().__init__()
        self.register_buffer("weight", torch.from_numpy(np.ascontiguousarray(weight, np.float32)))
        self.register_buffer("bias", torch.from_numpy(np.ascontiguousarray(bias, np.float32)))
        self.stride = stride
        self.crop = crop  # top, bottom, left, right rows/columns cut from the full transposed output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.conv_transpose2d(x, self.weight, self.bias, self.stride)
        top, bottom, left, right = self.crop
        if any(self.crop):
            y = y[:, :, top : y.shape[2] - bottom, left : y.shape[3] - right]
        return y


class _MaxPool(nn.Module):
    def __init__(self, kernel: tuple[int, int], stride: tuple[int, int], pads: tuple[int, int, int, int]) -> None:
        super().__init__()
        self.kernel = kernel
        self.stride = stride
        top, bottom, left, right = pads
        self.pad = (left, right, top, bottom) if any(pads) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad, value=float("-inf"))  # padded cells never win the max, as in TFLite
        return F.max_pool2d(x, self.kernel, self.stride)


class _Pad(nn.Module):
    """Zero padding; MediaPipe uses it on the channel axis to widen residual branches."""

    def __init__(self, nhwc_pads: np.ndarray) -> None:
        super().__init__()
        (n0, n1), (h0, h1), (w0, w1), (c0, c1) = (tuple(int(v) for v in row) for row in nhwc_pads)
        if n0 or n1:
            raise ModelError("TFLite PAD on the batch axis is not supported")
        self.pad = (w0, w1, h0, h1, c0, c1)  # F.pad order for NCHW: last axis first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, self.pad)


@dataclass(frozen=True)
class _Step:
    inputs: tuple[int, ...]
    output: int


class TfliteModule(nn.Module):
    """The graph of one ``.tflite`` file. ``forward(x)`` takes the input in TFLite layout (NHWC) with any
    batch size and returns the outputs in TFLite layout, in the file's output order."""

    def __init__(
        self,
        ops: Sequence[nn.Module],
        steps: Sequence[_Step],
        input_tensor: int,
        output_tensors: Sequence[int],
        input_name: str,
        input_shape: tuple[int, ...],
        output_names: Sequence[str],
        output_shapes: Sequence[tuple[int, ...]],
        source: Path,
    ) -> None:
        super().__init__()
        self.ops = nn.ModuleList(ops)
        self._steps = tuple(steps)
        self._input = input_tensor
        self._outputs = tuple(output_tensors)
        self.input_name = input_name
        self.input_shape = input_shape
        self.output_names = tuple(output_names)
        self.output_shapes = tuple(output_shapes)
        self.source = source

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values: dict[int, torch.Tensor] = {self._input: x.permute(0, 3, 1, 2)}
        for op, step in zip(self.ops, self._steps, strict=True):
            values[step.output] = op(*[values[i] for i in step.inputs])
        return tuple(values[i].permute(0, 2, 3, 1) for i in self._outputs)


def load_tflite_module(path: str | Path) -> TfliteModule:
    """Read ``path`` and build its torch module (on the CPU, eval mode); ModelError if it cannot be converted."""
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    try:
        buf = path.read_bytes()
        model = schema.ModelT.InitFromPackedBuf(buf, 0)
    except OSError as exc:
        raise ModelError(f"cannot read TFLite model {path}: {exc.strerror}") from exc
    except Exception as exc:  # flatbuffers raises assorted errors on garbage
        raise ModelError(f"cannot parse TFLite model {path}: {type(exc).__name__}") from exc
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise ModelError(f"TFLite model {path} has {len(model.subgraphs or [])} subgraphs; the converter needs one")
    graph = model.subgraphs[0]
    op_names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    tensors: list[_Tensor] = []
    for t in graph.tensors:
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        shape = tuple(int(s) for s in (t.shape if t.shape is not None else ()))
        dtype = _NUMPY_TYPES.get(int(t.type))
        data = None
        buffer = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        if buffer is not None and buffer.data is not None and len(buffer.data) > 0:
            if dtype is None:
                raise ModelError(f"TFLite model {path}: constant {name!r} has unsupported type {t.type}")
            data = np.frombuffer(bytes(buffer.data), dtype=dtype).reshape(shape)
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale) > 0 and dtype in (np.int8, np.uint8):
            raise ModelError(f"TFLite model {path} is integer-quantized ({name!r}); the converter takes float models")
        tensors.append(_Tensor(name, shape, dtype, data))

    if len(graph.inputs) != 1:
        raise ModelError(f"TFLite model {path} has {len(graph.inputs)} inputs; the converter needs one")

    ops: list[nn.Module] = []
    steps: list[_Step] = []
    for op in graph.operators:
        code_entry = model.operatorCodes[op.opcodeIndex]
        code = max(int(code_entry.builtinCode), int(code_entry.deprecatedBuiltinCode))
        name = op_names.get(code, f"#{code}")
        if name == "CUSTOM":
            custom = code_entry.customCode
            name = "CUSTOM:" + (custom.decode() if isinstance(custom, bytes) else str(custom))
        ins = [int(i) for i in op.inputs]
        out = int(op.outputs[0])
        options = op.builtinOptions

        def const(index: int, what: str, *, _name: str = name) -> np.ndarray:
            value = tensors[index].data if index >= 0 else None
            if value is None:
                raise ModelError(f"TFLite model {path}: {_name} needs a constant {what}, got an activation")
            return value

        if name == "DEQUANTIZE":
            src = const(ins[0], "input")
            tensors[out] = _Tensor(tensors[out].name, tensors[out].shape, np.float32, src.astype(np.float32))
            continue
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            x_shape = tensors[ins[0]].shape
            w = const(ins[1], "weight").astype(np.float32)
            b = const(ins[2], "bias").astype(np.float32) if len(ins) > 2 and ins[2] >= 0 else None
            stride = (int(options.strideH), int(options.strideW))
            dilation = (int(options.dilationHFactor), int(options.dilationWFactor))
            if name == "CONV_2D":
                weight = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
                groups = 1
                if weight.shape[1] != x_shape[3]:
                    raise ModelError(f"TFLite model {path}: grouped CONV_2D is not supported")
            else:
                weight = w.transpose(3, 0, 1, 2)  # 1HW(C*M) -> (C*M)1HW
                groups = int(x_shape[3])
            kh, kw = weight.shape[2], weight.shape[3]
            if int(options.padding) == 0:  # SAME
                top, bottom = _same_pads(x_shape[1], kh, stride[0], dilation[0])
                left, right = _same_pads(x_shape[2], kw, stride[1], dilation[1])
            else:
                top = bottom = left = right = 0
            act = _activation(int(options.fusedActivationFunction), name)
            ops.append(_Conv(weight, b, stride, dilation, (top, bottom, left, right), groups, act))
            steps.append(_Step((ins[0],), out))
        elif name == "PRELU":
            alpha = const(ins[1], "alpha")
            if alpha.size != tensors[ins[0]].shape[-1]:
                raise ModelError(f"TFLite model {path}: PRELU with a non per-channel alpha is not supported")
            ops.append(_PRelu(alpha))
            steps.append(_Step((ins[0],), out))
        elif name in ("ADD", "MUL"):
            shapes = [tensors[i].shape for i in ins]
            if any(tensors[i].data is not None for i in ins) or any(len(sh) != 4 for sh in shapes):
                raise ModelError(f"TFLite model {path}: {name} is supported between two 4-d activations")
            ops.append(_Binary(name == "MUL", _activation(int(options.fusedActivationFunction), name)))
            steps.append(_Step((ins[0], ins[1]), out))
        elif name in ("RELU", "RELU6", "LOGISTIC", "HARD_SWISH"):
            simple = {"RELU": nn.ReLU(), "RELU6": nn.ReLU6(), "LOGISTIC": nn.Sigmoid(), "HARD_SWISH": _HardSwish()}
            ops.append(simple[name])
            steps.append(_Step((ins[0],), out))
        elif name == "AVERAGE_POOL_2D":
            x_shape = tensors[ins[0]].shape
            kernel = (int(options.filterHeight), int(options.filterWidth))
            stride = (int(options.strideH), int(options.strideW))
            same_pads = (*_same_pads(x_shape[1], kernel[0], stride[0]), *_same_pads(x_shape[2], kernel[1], stride[1]))
            if int(options.fusedActivationFunction) != 0 or (int(options.padding) == 0 and any(same_pads)):
                raise ModelError(f"TFLite model {path}: AVERAGE_POOL_2D with padding or an activation is not supported")
            ops.append(_AvgPool(kernel, stride))
            steps.append(_Step((ins[0],), out))
        elif name == "RESIZE_BILINEAR":
            if not options.halfPixelCenters or options.alignCorners:
                raise ModelError(f"TFLite model {path}: RESIZE_BILINEAR without half-pixel centres is not supported")
            height, width = (int(v) for v in const(ins[1], "size"))
            ops.append(_ResizeBilinear((height, width)))
            steps.append(_Step((ins[0],), out))
        elif name == "CUSTOM:Convolution2DTransposeBias":
            # Custom options: TfLiteTransposeConvParams {padding (1 SAME, 2 VALID), stride_w, stride_h} as int32.
            padding, stride_w, stride_h = (int(v) for v in np.frombuffer(bytes(op.customOptions), np.int32)[:3])
            w = const(ins[1], "weight")  # OHWI
            b = const(ins[2], "bias")
            x_shape, out_shape = tensors[ins[0]].shape, tensors[out].shape
            kh, kw = w.shape[1], w.shape[2]
            full_h, full_w = (x_shape[1] - 1) * stride_h + kh, (x_shape[2] - 1) * stride_w + kw
            if padding not in (1, 2) or out_shape[1] > full_h or out_shape[2] > full_w:
                raise ModelError(
                    f"TFLite model {path}: Convolution2DTransposeBias with padding {padding} is not supported"
                )
            cut_h, cut_w = full_h - out_shape[1], full_w - out_shape[2]
            crop_box = (cut_h // 2, cut_h - cut_h // 2, cut_w // 2, cut_w - cut_w // 2)
            ops.append(_TransposeConvBias(w.transpose(3, 0, 1, 2), b, (stride_h, stride_w), crop_box))
            steps.append(_Step((ins[0],), out))
        elif name == "MAX_POOL_2D":
            x_shape = tensors[ins[0]].shape
            kernel = (int(options.filterHeight), int(options.filterWidth))
            stride = (int(options.strideH), int(options.strideW))
            if int(options.fusedActivationFunction) != 0:
                raise ModelError(f"TFLite model {path}: MAX_POOL_2D with a fused activation is not supported")
            if int(options.padding) == 0:
                pads = (*_same_pads(x_shape[1], kernel[0], stride[0]), *_same_pads(x_shape[2], kernel[1], stride[1]))
            else:
                pads = (0, 0, 0, 0)
            ops.append(_MaxPool(kernel, stride, pads))
            steps.append(_Step((ins[0],), out))
        elif name == "PAD":
            ops.append(_Pad(const(ins[1], "paddings")))
            steps.append(_Step((ins[0],), out))
        else:
            supported = ", ".join(SUPPORTED_OPS)
            raise ModelError(
                f"TFLite model {path} uses operator {name}, which the converter does not support "
                f"(supported: {supported})"
            )
        if len(tensors[out].shape) != 4:
            raise ModelError(
                f"TFLite model {path}: {name} gives a {len(tensors[out].shape)}-d tensor; "
                "the converter handles 4-d (NHWC) activations"
            )

    inp = int(graph.inputs[0])
    outs = [int(o) for o in graph.outputs]
    module = TfliteModule(
        ops,
        steps,
        inp,
        outs,
        tensors[inp].name,
        tensors[inp].shape,
        [tensors[o].name for o in outs],
        [tensors[o].shape for o in outs],
        path,
    )
    return module.eval()

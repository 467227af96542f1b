"""An ONNX graph run by torch (eager), its weights read from the ``.onnx`` file when it is loaded.

Why: on a GPU without a TensorRT plan, the registry's ONNX-only models (YuNet) still have to run on the
GPU, next to our torch engines, with no copy through the host between them. onnxruntime-gpu would do it
but replaces the CPU onnxruntime package in an environment (both install the module ``onnxruntime``),
pins a CUDA/cuDNN pair of its own and is a ~250 MB wheel; onnx2torch needs torchvision. The registry's
ONNX models, the DFMs ``stageswap train`` exports and its neural renderers (kind ``dnr``: GridSample over the
neural texture, a little shape arithmetic) use a couple of dozen plain operators, so a small interpreter is
the lighter dependency: every node
maps to one torch call, the test-suite compares it with ONNX Runtime on real photos, and an operator or
attribute it does not handle is a ModelError naming it at load time, never a wrong result.

Shape arithmetic (Shape, Gather, Unsqueeze, Concat feeding Reshape) stays in small int64 tensors on the
CPU, and so do the constants that parametrise an operator (Resize scales, Reshape shapes, Gather indices),
so running on CUDA never waits for the GPU to read a parameter back.

This module is for running (the GPU fallback). TensorRT parses the original ``.onnx`` file itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper
from torch import nn

from engines.errors import ModelError

_Op = Callable[[list[Any], dict[str, Any]], list[torch.Tensor]]


def _conv(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ModelError("ONNX Conv with auto_pad is not supported")
    nd = w.dim() - 2
    if nd != 2:
        raise ModelError(f"ONNX Conv over {nd} spatial axes is not supported (2-d only)")
    pads = list(a.get("pads", [0] * 4))
    stride = tuple(a.get("strides", [1, 1]))
    dilation = tuple(a.get("dilations", [1, 1]))
    groups = int(a.get("group", 1))
    top, left, bottom, right = pads
    if top == bottom and left == right:
        return [F.conv2d(x, w, b, stride, (top, left), dilation, groups)]
    x = F.pad(x, (left, right, top, bottom))
    return [F.conv2d(x, w, b, stride, 0, dilation, groups)]


def _max_pool(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or a.get("storage_order", 0):
        raise ModelError("ONNX MaxPool with auto_pad or storage_order is not supported")
    kernel = tuple(a["kernel_shape"])
    stride = tuple(a.get("strides", [1] * len(kernel)))
    top, left, bottom, right = a.get("pads", [0, 0, 0, 0])
    x = ins[0]
    if (top, left) != (bottom, right):
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        top = left = 0
    dilation = tuple(a.get("dilations", [1] * len(kernel)))
    return [F.max_pool2d(x, kernel, stride, (top, left), dilation, ceil_mode=bool(a.get("ceil_mode", 0)))]


def _resize(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    mode = a.get("mode", b"nearest")
    ctm = a.get("coordinate_transformation_mode", b"half_pixel")
    x = ins[0]
    scales = ins[2] if len(ins) > 2 and ins[2] is not None and ins[2].numel() else None
    sizes = ins[3] if len(ins) > 3 and ins[3] is not None and ins[3].numel() else None
    if sizes is not None:
        size = [int(v) for v in sizes.tolist()[2:]]
        kwargs: dict[str, Any] = {"size": size}
    elif scales is not None:
        s = [float(v) for v in scales.tolist()]
        if s[0] != 1.0 or s[1] != 1.0:
            raise ModelError("ONNX Resize scaling the batch or channel axis is not supported")
        kwargs = {"scale_factor": s[2:]}
    else:
        raise ModelError("ONNX Resize without scales or sizes is not supported")
    if mode == b"nearest" and ctm == b"asymmetric" and a.get("nearest_mode", b"round_prefer_floor") == b"floor":
        return [F.interpolate(x, mode="nearest", **kwargs)]  # torch's nearest is ONNX's asymmetric + floor
    if mode == b"linear" and ctm in (b"half_pixel", b"pytorch_half_pixel"):
        return [F.interpolate(x, mode="bilinear", align_corners=False, **kwargs)]
    if mode == b"linear" and ctm == b"align_corners":
        return [F.interpolate(x, mode="bilinear", align_corners=True, **kwargs)]
    raise ModelError(f"ONNX Resize mode {mode!r} with coordinate_transformation_mode {ctm!r} is not supported")


def _reshape(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    x, shape = ins[0], [int(v) for v in ins[1].tolist()]
    if not a.get("allowzero", 0):
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return [x.reshape(shape)]


def _gather(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    data, idx = ins[0], ins[1]
    axis = int(a.get("axis", 0))
    if idx.dim() == 0:  # indices are host constants: reading one never waits for the GPU
        return [data.select(axis, int(idx) % data.shape[axis])]
    idx = idx.to(data.device)
    idx = torch.where(idx < 0, idx + data.shape[axis], idx)
    return [
        torch.index_select(data, axis, idx.reshape(-1)).reshape(*data.shape[:axis], *idx.shape, *data.shape[axis + 1 :])
    ]


def _unsqueeze(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    x = ins[0]
    axes = a["axes"] if "axes" in a else [int(v) for v in ins[1].tolist()]
    rank = x.dim() + len(axes)
    for axis in sorted(int(v) % rank for v in axes):
        x = x.unsqueeze(axis)
    return [x]


def _concat(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    device = next((t.device for t in ins if t.is_floating_point()), ins[0].device)
    return [torch.cat([t.to(device) for t in ins], dim=int(a["axis"]))]


def _shape(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    if "start" in a or "end" in a:
        raise ModelError("ONNX Shape with start/end is not supported")
    return [torch.tensor(tuple(ins[0].shape), dtype=torch.int64)]  # host tensor: no GPU sync


def _depth_to_space(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    x, b = ins[0], int(a["blocksize"])
    if a.get("mode", b"DCR") in (b"CRD", "CRD"):
        return [F.pixel_shuffle(x, b)]  # torch's pixel shuffle is ONNX's column-row-depth order
    n, c, h, w = x.shape
    y = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
    return [y.reshape(n, c // (b * b), h * b, w * b)]


def _slice(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    x = ins[0]
    starts, ends = ins[1].tolist(), ins[2].tolist()
    axes = ins[3].tolist() if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
    steps = ins[4].tolist() if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * x.dim()
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step != 1:
            raise ModelError("ONNX Slice with a step other than 1 is not supported")
        size = x.shape[axis]
        index[int(axis) % x.dim()] = slice(max(-size, min(int(start), size)), max(-size - 1, min(int(end), size)))
    return [x[tuple(index)]]


def _gemm(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    x, w = ins[0], ins[1]
    if a.get("transA", 0):
        x = x.t()
    if a.get("transB", 0):
        w = w.t()
    y = float(a.get("alpha", 1.0)) * (x @ w)
    if len(ins) > 2 and ins[2] is not None:
        y = y + float(a.get("beta", 1.0)) * ins[2]
    return [y]


def _flatten(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    x = ins[0]
    axis = int(a.get("axis", 1)) % max(1, x.dim())
    return [x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)]


def _aligned(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Two operands on one device: a host constant (a CPU tensor) goes to where the data is."""
    if x.device == y.device:
        return x, y
    return (x.to(y.device), y) if x.device.type == "cpu" else (x, y.to(x.device))


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> _Op:
    """An elementwise operator with ONNX's (numpy's) broadcasting, which torch shares."""
    return lambda i, a: [fn(*_aligned(i[0], i[1]))]


def _where(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    cond, x = _aligned(ins[0], ins[1])
    x, y = _aligned(x, ins[2])
    return [torch.where(cond.to(x.device).bool(), x, y)]


def _clip(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    low = ins[1] if len(ins) > 1 and ins[1] is not None else a.get("min")
    high = ins[2] if len(ins) > 2 and ins[2] is not None else a.get("max")
    return [torch.clamp(ins[0], None if low is None else float(low), None if high is None else float(high))]


def _constant_of_shape(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    value = numpy_helper.to_array(a["value"]).reshape(-1) if "value" in a else np.zeros(1, np.float32)
    dtype = torch.int64 if np.issubdtype(value.dtype, np.integer) else torch.float32
    if value.dtype == np.bool_:
        dtype = torch.bool
    return [torch.full([int(v) for v in ins[0].tolist()], value[0].item(), dtype=dtype)]  # host: shape arithmetic


def _expand(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    x, shape = ins[0], tuple(int(v) for v in ins[1].tolist())
    return [x.expand(torch.broadcast_shapes(tuple(x.shape), shape))]  # ONNX's Expand broadcasts both ways


_GRID_MODES = {b"bilinear": "bilinear", b"linear": "bilinear", b"nearest": "nearest", b"bicubic": "bicubic",
               b"cubic": "bicubic"}  # fmt: skip
"""GridSample's modes by their opset-16 and opset-20 names."""
_GRID_PADDING = (b"zeros", b"border", b"reflection")


def _grid_sample(ins: list[Any], a: dict[str, Any]) -> list[torch.Tensor]:
    x, grid = _aligned(ins[0], ins[1])
    mode = _GRID_MODES[a.get("mode", b"bilinear")]
    padding = a.get("padding_mode", b"zeros").decode()
    return [F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=bool(a.get("align_corners", 0)))]


_OPS: dict[str, _Op] = {
    "Add": _binary(torch.add),
    "Clip": _clip,
    "Concat": _concat,
    "ConstantOfShape": _constant_of_shape,
    "Conv": _conv,
    "Gather": _gather,
    "DepthToSpace": _depth_to_space,
    "Equal": _binary(torch.eq),
    "Expand": _expand,
    "Flatten": _flatten,
    "Gemm": _gemm,
    "GridSample": _grid_sample,
    "Identity": lambda i, a: [i[0]],
    "LeakyRelu": lambda i, a: [F.leaky_relu(i[0], float(a.get("alpha", 0.01)))],
    "MaxPool": _max_pool,
    "Mul": _binary(torch.mul),
    "Relu": lambda i, a: [torch.relu(i[0])],
    "Reshape": _reshape,
    "Resize": _resize,
    "Shape": _shape,
    "Sigmoid": lambda i, a: [torch.sigmoid(i[0])],
    "Slice": _slice,
    "Sub": _binary(torch.sub),
    "Transpose": lambda i, a: [i[0].permute(*a["perm"])],
    "Unsqueeze": _unsqueeze,
    "Where": _where,
}

SUPPORTED_OPS = tuple(sorted(_OPS))

_HOST_INPUTS: dict[str, tuple[int, ...]] = {
    "Clip": (1, 2),
    "ConstantOfShape": (0,),
    "Expand": (1,),
    "Gather": (1,),
    "Reshape": (1,),
    "Resize": (1, 2, 3),
    "Slice": (1, 2, 3, 4),
    "Unsqueeze": (1,),
}
"""Operator inputs that are parameters, not data: their constants stay on the CPU."""

_RESIZE_MODES = {
    (b"nearest", b"asymmetric"),
    (b"linear", b"half_pixel"),
    (b"linear", b"pytorch_half_pixel"),
    (b"linear", b"align_corners"),
}


def _check_attrs(op: str, a: dict[str, Any]) -> str | None:
    """The reason a node's attributes are not handled, checked at load time (None when they are)."""
    if op in ("Conv", "MaxPool") and a.get("auto_pad", b"NOTSET") != b"NOTSET":
        return f"{op} with auto_pad"
    if op == "GridSample":
        mode, padding = a.get("mode", b"bilinear"), a.get("padding_mode", b"zeros")
        if mode not in _GRID_MODES or padding not in _GRID_PADDING:
            return f"GridSample mode {mode.decode()} / padding_mode {padding.decode()}"
    if op == "Resize":
        mode = a.get("mode", b"nearest")
        ctm = a.get("coordinate_transformation_mode", b"half_pixel")
        if (mode, ctm) not in _RESIZE_MODES or (mode == b"nearest" and a.get("nearest_mode") != b"floor"):
            return f"Resize mode {mode.decode()} / {ctm.decode()}"
    return None


@dataclass(frozen=True)
class _Node:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any]


class OnnxModule(nn.Module):
    """One ONNX graph; ``forward(**feeds)`` returns the graph's outputs by name.

    Floating-point initializers are buffers (they follow ``.to(device)``); integer ones (shapes, axes,
    indices) and operator parameters (Resize scales) stay on the CPU, where the shape arithmetic runs."""

    def __init__(
        self,
        nodes: Sequence[_Node],
        float_consts: dict[str, np.ndarray],
        host_consts: dict[str, np.ndarray],
        input_names: Sequence[str],
        output_names: Sequence[str],
        source: Path,
    ) -> None:
        super().__init__()
        self._nodes = tuple(nodes)
        self._buffer_names: dict[str, str] = {}
        for i, (name, value) in enumerate(float_consts.items()):
            key = f"c{i}"
            self.register_buffer(key, torch.from_numpy(np.array(value, order="C")))
            self._buffer_names[name] = key
        # np.array, not np.ascontiguousarray: the latter turns 0-d scalars (Gather indices) into 1-d arrays.
        self._host_consts = {k: torch.from_numpy(np.array(v, order="C")) for k, v in host_consts.items()}
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)
        self.source = source

    def forward(self, **feeds: torch.Tensor) -> dict[str, torch.Tensor]:
        values: dict[str, Any] = {"": None}
        values.update(self._host_consts)
        for name, key in self._buffer_names.items():
            values[name] = getattr(self, key)
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise ModelError(f"missing input(s) {missing} for {self.source.name}")
        values.update(feeds)
        for node in self._nodes:
            results = _OPS[node.op]([values[i] for i in node.inputs], node.attrs)
            values.update(zip(node.outputs, results, strict=False))
        return {n: values[n] for n in self.output_names}


def load_onnx_module(path: str | Path) -> OnnxModule:
    """Read ``path`` and build its torch interpreter (CPU, eval mode); ModelError for anything unsupported."""
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except OSError as exc:
        raise ModelError(f"cannot read ONNX model {path}: {exc.strerror or exc}") from exc
    except Exception as exc:  # protobuf's DecodeError and friends for a damaged file
        raise ModelError(f"cannot read ONNX model {path}: not a valid ONNX file ({type(exc).__name__})") from exc
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    if set(opsets) - {"ai.onnx"}:
        raise ModelError(f"ONNX model {path} uses operator domains {sorted(set(opsets) - {'ai.onnx'})}")
    float_consts: dict[str, np.ndarray] = {}
    host_consts: dict[str, np.ndarray] = {}
    host_names = {n.input[i] for n in model.graph.node for i in _HOST_INPUTS.get(n.op_type, ()) if i < len(n.input)}

    def add_const(name: str, value: np.ndarray) -> None:
        if not np.issubdtype(value.dtype, np.floating):
            host_consts[name] = value.astype(np.int64)
        elif name in host_names:
            host_consts[name] = value.astype(np.float32)
        else:
            float_consts[name] = value.astype(np.float32)

    for init in model.graph.initializer:
        add_const(init.name, numpy_helper.to_array(init))
    nodes: list[_Node] = []
    unsupported: set[str] = set()
    for n in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Constant":
            if "value" not in attrs:
                raise ModelError(f"ONNX model {path}: Constant without a tensor value is not supported")
            add_const(n.output[0], numpy_helper.to_array(attrs["value"]))
            continue
        if n.op_type not in _OPS:
            unsupported.add(n.op_type)
            continue
        problem = _check_attrs(n.op_type, attrs)
        if problem:
            raise ModelError(f"ONNX model {path}: {problem} is not supported by the torch converter")
        nodes.append(_Node(n.op_type, tuple(n.input), tuple(n.output), attrs))
    if unsupported:
        raise ModelError(
            f"ONNX model {path} uses operator(s) {', '.join(sorted(unsupported))}, which the torch converter does "
            f"not support (supported: {', '.join(SUPPORTED_OPS)}); build a TensorRT plan with build_engines.py"
        )
    initializer_names = {i.name for i in model.graph.initializer}
    inputs = [i.name for i in model.graph.input if i.name not in initializer_names]
    outputs = [o.name for o in model.graph.output]
    return OnnxModule(nodes, float_consts, host_consts, inputs, outputs, path).eval()

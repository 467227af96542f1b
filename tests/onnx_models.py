"""Small ONNX models with the real signatures of user swap models and simple, known behaviour (tests only).

No inswapper, DFM or ArcFace weights are available to the tests, so each is generated here with
``onnx.helper`` at the exact I/O of the real thing and a behaviour a test can predict:

- ``inswapper``: ``out = clip(target + (source @ shift), 0, 1)``: a colour shift per RGB channel that is a
  known linear function of the latent it is given; the emap is the last initializer, as in real files.
- ``dfm``: ``out_celeb_face = clip(in_face * gain + bias, 0, 1)`` (+ the morph value, broadcast, when the
  model takes one) and constant masks drawn by the test.
- ``arcface``: 14x14 average pooling to 3x8x8, flattened and projected to 512-d: a deterministic function of
  the face's coarse appearance (different faces, different embeddings).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8
OPSET = 17


def _save(graph: onnx.GraphProto, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _init(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _vi(name: str, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def inswapper(
    path: Path,
    shift: np.ndarray,
    emap: np.ndarray,
    size: int = 128,
    source_dim: int = 512,
    output_size: int | None = None,
    overlay: np.ndarray | None = None,
) -> Path:
    """``out = clip(target + reshape(source @ shift) (+ overlay), 0, 1)``; ``shift`` (512, 3) maps the latent to
    an RGB shift; ``overlay`` (3, size, size) is a fixed pattern drawn in crop coordinates; ``emap`` is stored
    as the last initializer (unused by the graph, as in real inswapper files)."""
    out_size = output_size or size
    nodes = [
        helper.make_node("MatMul", ["source", "shift"], ["rgb"]),
        helper.make_node("Reshape", ["rgb", "rgb_shape"], ["rgb4"]),
        helper.make_node("Add", ["target", "rgb4"], ["moved"]),
        helper.make_node("Clip", ["marked" if overlay is not None else "moved", "zero", "one"], ["clipped"]),
    ]
    if overlay is not None:
        nodes.insert(3, helper.make_node("Add", ["moved", "overlay"], ["marked"]))
    last = "clipped"
    if out_size != size:
        nodes.append(helper.make_node("Resize", ["clipped", "", "scales"], ["resized"], mode="linear"))
        last = "resized"
    nodes.append(helper.make_node("Identity", [last], ["output"]))
    inits = [
        _init("shift", shift.astype(np.float32)),
        _init("rgb_shape", np.array([1, 3, 1, 1], np.int64)),
        _init("zero", np.array(0.0, np.float32)),
        _init("one", np.array(1.0, np.float32)),
    ]
    if out_size != size:
        inits.append(_init("scales", np.array([1, 1, out_size / size, out_size / size], np.float32)))
    if overlay is not None:
        inits.append(_init("overlay", overlay.astype(np.float32).reshape(1, 3, size, size)))
    inits.append(_init("emap", emap.astype(np.float32)))
    graph = helper.make_graph(
        nodes,
        "inswapper_test",
        [_vi("target", [1, 3, size, size]), _vi("source", [1, source_dim])],
        [_vi("output", [1, 3, out_size, out_size])],
        inits,
    )
    return _save(graph, path)


def dfm(
    path: Path,
    size: int,
    face_mask: np.ndarray | None = None,
    celeb_mask: np.ndarray | None = None,
    gain: float = 1.0,
    bias: Sequence[float] = (0.0, 0.0, 0.0),
    morph: bool = True,
    output_size: int | None = None,
    batch: int | str = "N",
) -> Path:
    """``out_celeb_face:0 = clip(in_face * gain + bias (+ morph_value), 0, 1)``, BGR; masks are the constants
    given ((size, size) arrays, default all ones)."""
    out_size = output_size or size
    fm = np.ones((size, size), np.float32) if face_mask is None else face_mask.astype(np.float32)
    cm = np.ones((size, size), np.float32) if celeb_mask is None else celeb_mask.astype(np.float32)
    nodes = [
        helper.make_node("Mul", ["in_face:0", "gain"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["biased"]),
    ]
    last = "biased"
    inputs = [_vi("in_face:0", [batch, size, size, 3])]
    if morph:
        inputs.append(_vi("morph_value:0", [1]))
        nodes.append(helper.make_node("Add", ["biased", "morph_value:0"], ["morphed"]))
        last = "morphed"
    nodes.append(helper.make_node("Clip", [last, "zero", "one"], ["out_celeb_face:0"]))
    nodes.append(helper.make_node("Identity", ["face_mask_const"], ["out_face_mask:0"]))
    nodes.append(helper.make_node("Identity", ["celeb_mask_const"], ["out_celeb_face_mask:0"]))
    inits = [
        _init("gain", np.array(gain, np.float32)),
        _init("bias", np.asarray(bias, np.float32).reshape(1, 1, 1, 3)),
        _init("zero", np.array(0.0, np.float32)),
        _init("one", np.array(1.0, np.float32)),
        _init("face_mask_const", fm.reshape(1, size, size, 1)),
        _init("celeb_mask_const", cm.reshape(1, size, size, 1)),
    ]
    outputs = [
        _vi("out_face_mask:0", [1, size, size, 1]),
        _vi("out_celeb_face:0", [batch, out_size, out_size, 3]),
        _vi("out_celeb_face_mask:0", [1, size, size, 1]),
    ]
    if out_size != size:
        nodes[-3] = helper.make_node("Clip", [last, "zero", "one"], ["clipped"])
        nodes.insert(-2, helper.make_node("Resize", ["clipped", "", "scales"], ["out_celeb_face:0"], mode="linear"))
        inits.append(_init("scales", np.array([1, out_size / size, out_size / size, 1], np.float32)))
    graph = helper.make_graph(nodes, "dfm_test", inputs, outputs, inits)
    return _save(graph, path)


def arcface(path: Path, seed: int = 0, size: int = 112, dim: int = 512, nhwc: bool = False) -> Path:
    """Pool to 3x8x8, flatten, project to ``dim`` with a fixed random matrix."""
    rng = np.random.default_rng(seed)
    pool = size // 8
    proj = rng.standard_normal((3 * 8 * 8, dim)).astype(np.float32)
    nodes = []
    name = "input.1"
    if nhwc:
        nodes.append(helper.make_node("Transpose", [name], ["nchw"], perm=[0, 3, 1, 2]))
        name = "nchw"
    nodes += [
        helper.make_node("AveragePool", [name], ["pooled"], kernel_shape=[pool, pool], strides=[pool, pool]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "proj"], ["embedding"]),
    ]
    shape = [1, size, size, 3] if nhwc else [1, 3, size, size]
    graph = helper.make_graph(
        nodes, "arcface_test", [_vi("input.1", shape)], [_vi("embedding", [1, dim])], [_init("proj", proj)]
    )
    return _save(graph, path)


def identity_inswapper(path: Path, emap: np.ndarray) -> Path:
    """An inswapper whose output is its target (zero shift): pasting it back must leave the face in place."""
    return inswapper(path, np.zeros((512, 3), np.float32), emap)


def random_emap(seed: int = 1) -> np.ndarray:
    """A random 512x512 matrix: rotates and stretches, so a latent through it differs in direction and norm."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((512, 512)) / np.sqrt(512.0)).astype(np.float32)

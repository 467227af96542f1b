"""Checking a model file users bring: is it one self-contained ONNX graph of a kind stageswap runs?

``inspect_model`` parses the file (a truncated or foreign file fails here), refuses external weights, runs
the ONNX checker, reads the graph's real inputs and outputs, detects the kind from their names and ranks
(``detect_kind``) or checks the declared one, validates every shape, resolution and dtype the kind needs
(``KIND_SIGNATURES``), and finally loads the graph in ONNX Runtime and runs it once on a test input, so a
missing weight, an operator ONNX Runtime lacks or an output whose real shape is not the declared one is
found before anything is registered. Every refusal is a ``ModelError`` naming the file, the problem and
what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import InputError, ModelError

KINDS: tuple[str, ...] = ("inswapper", "dfm", "dnr", "arcface")
SWAP_KINDS: tuple[str, ...] = ("inswapper", "dfm", "dnr")
LIKENESS_KINDS: tuple[str, ...] = ("dfm", "dnr")
"""Swap models with a person's identity trained in: registered only with that person's consent."""
MAX_MODEL_BYTES = 2 * 1024**3 - 1
"""Largest model file accepted: ONNX files over 2 GiB keep their weights outside the file."""
INSWAPPER_SIZE = 128
ARCFACE_SIZE = 112
EMBEDDING_DIM = 512
DFM_SIZES = (64, 1024)
"""Smallest and largest DFM resolution accepted (DeepFaceLab trains 64..640)."""
DNR_SIZES = (32, 512)
"""Smallest and largest neural-renderer resolution accepted (``engines.train.neural_render.DnrConfig``)."""

KIND_SIGNATURES: Mapping[str, str] = {
    "inswapper": "inputs 'target' float32 [1,3,128,128] (RGB 0..1, ArcFace-aligned) and 'source' float32 [1,512] "
    "(the identity's embedding through the model's emap), output float32 [1,3,128,128], and the emap as its "
    "last initializer (512x512)",
    "dfm": "input 'in_face:0' float32 [N,R,R,3] (BGR 0..1), optional 'morph_value:0' float32 [1], outputs "
    "'out_face_mask:0' [N,R,R,1], 'out_celeb_face:0' [N,R,R,3] and 'out_celeb_face_mask:0' [N,R,R,1] at the "
    f"same resolution R ({DFM_SIZES[0]}..{DFM_SIZES[1]})",
    "dnr": "inputs 'uv' float32 [N,R,R,2] (the face crop's texture coordinates) and 'covered' float32 [N,R,R,1], "
    f"output 'face' float32 [N,R,R,3] (BGR 0..1) at the same resolution R ({DNR_SIZES[0]}..{DNR_SIZES[1]}): a "
    "neural renderer from stageswap train --arch dnr",
    "arcface": "one float32 image input [N,3,112,112] (or [N,112,112,3]) and one float32 output [N,512]",
}
"""What each kind must look like, as shown to users when a file is refused."""

_ONNX_DTYPES = {1: "float32", 10: "float16", 11: "float64", 6: "int32", 7: "int64", 2: "uint8", 9: "bool"}

Dim = int | str | None


@dataclass(frozen=True)
class TensorSig:
    """One graph input or output as registered: name, shape (ints, or names for free axes), dtype."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name!r} {self.dtype} [{dims}]"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TensorSig:
        return cls(str(obj["name"]), tuple(obj["shape"]), str(obj["dtype"]))


@dataclass(frozen=True)
class Inspection:
    """What ``inspect_model`` found in a graph: the kind, its resolution and the kind's options."""

    kind: str
    resolution: int
    inputs: tuple[TensorSig, ...]
    outputs: tuple[TensorSig, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    expected: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    """Each output's shape for one face, as the kind requires it (what the test run must give)."""


# ---- inspecting a graph ------------------------------------------------------------------------------------


def _refuse(path: Path, problem: str, kind: str | None = None) -> ModelError:
    expected = (
        f"a {kind} model: {KIND_SIGNATURES[kind]}"
        if kind is not None
        else "one of: " + "; ".join(f"{k}: {sig}" for k, sig in KIND_SIGNATURES.items())
    )
    return ModelError(f"{path.name}: {problem}. Expected {expected}. Nothing was registered")


def _sig(value: Any) -> TensorSig:
    tt = value.type.tensor_type
    dims: list[Dim] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(str(d.dim_param))
        else:
            dims.append(None)
    return TensorSig(value.name, tuple(dims), _ONNX_DTYPES.get(int(tt.elem_type), f"type {tt.elem_type}"))


def _free(d: Dim) -> bool:
    return not isinstance(d, int) or d <= 0


def _batch_ok(d: Dim) -> bool:
    """A batch axis must be 1 or free (stageswap runs one face per call)."""
    return _free(d) or d == 1


def _fixed(d: Dim) -> int | None:
    return d if isinstance(d, int) and d > 0 else None


def _agrees(sig: TensorSig, expected: tuple[int, ...]) -> bool:
    """Whether a declared shape allows ``expected`` (free axes allow anything; no shape at all: the test run
    decides). The batch axis may be 1 or free."""
    if not sig.shape:
        return True
    if len(sig.shape) != len(expected):
        return False
    return _batch_ok(sig.shape[0]) and all(_free(d) or d == e for d, e in zip(sig.shape[1:], expected[1:], strict=True))


def _io_text(inputs: Sequence[TensorSig], outputs: Sequence[TensorSig]) -> str:
    return (
        f"the graph has inputs {', '.join(t.describe() for t in inputs) or 'none'} "
        f"and outputs {', '.join(t.describe() for t in outputs) or 'none'}"
    )


def detect_kind(inputs: Sequence[TensorSig], outputs: Sequence[TensorSig]) -> str | None:
    """The kind a graph's signature names, from its input and output names and ranks (None: none of ours)."""
    in_names = {t.name for t in inputs}
    out_names = {t.name for t in outputs}
    if {"target", "source"} <= in_names:
        return "inswapper"
    if "uv" in in_names:
        return "dnr"
    if "in_face:0" in in_names or {"out_celeb_face:0", "out_celeb_face_mask:0"} <= out_names:
        return "dfm"
    if len(inputs) == 1 and len(outputs) == 1 and len(inputs[0].shape) == 4 and len(outputs[0].shape) == 2:
        dims = inputs[0].shape
        if (dims[1] == 3 and dims[2] == dims[3] == ARCFACE_SIZE) or (
            dims[3] == 3 and dims[1] == dims[2] == ARCFACE_SIZE
        ):
            return "arcface"
        if outputs[0].shape[1] == EMBEDDING_DIM and (dims[1] == 3 or dims[3] == 3):
            return "arcface"
    return None


def _check_float(path: Path, kind: str, tensors: Sequence[TensorSig]) -> None:
    for t in tensors:
        if t.dtype != "float32":
            raise _refuse(path, f"{t.describe()} is {t.dtype}, not float32", kind)


def _check_inswapper(path: Path, model: Any, ins: dict[str, TensorSig], outs: Sequence[TensorSig]) -> Inspection:
    from onnx import numpy_helper

    kind = "inswapper"
    if set(ins) != {"target", "source"}:
        raise _refuse(
            path,
            f"an inswapper-style model takes exactly 'target' and 'source'; {_io_text([*ins.values()], outs)}",
            kind,
        )
    if len(outs) != 1:
        raise _refuse(path, f"it has {len(outs)} outputs, not one", kind)
    target, source, out = ins["target"], ins["source"], outs[0]
    _check_float(path, kind, [target, source, out])
    if len(target.shape) != 4 or not _batch_ok(target.shape[0]) or target.shape[1] != 3:
        raise _refuse(path, f"its target is {target.describe()}", kind)
    h, w = _fixed(target.shape[2]), _fixed(target.shape[3])
    if h is None or w is None:
        raise _refuse(path, f"its target's resolution is not fixed ({target.describe()})", kind)
    if (h, w) != (INSWAPPER_SIZE, INSWAPPER_SIZE):
        raise _refuse(
            path, f"its target is {h}x{w}; inswapper-style models work on {INSWAPPER_SIZE}x{INSWAPPER_SIZE}", kind
        )
    if len(source.shape) != 2 or not _batch_ok(source.shape[0]) or source.shape[1] != EMBEDDING_DIM:
        raise _refuse(path, f"its source is {source.describe()}, not a {EMBEDDING_DIM}-d embedding", kind)
    if not _agrees(out, (1, 3, h, w)):
        raise _refuse(path, f"its output {out.describe()} is not a 3-channel {h}x{w} image like its target", kind)
    inits = model.graph.initializer
    if not inits:
        raise _refuse(path, "it has no initializers, so no emap (the last initializer)", kind)
    emap = numpy_helper.to_array(inits[-1])
    if emap.shape != (EMBEDDING_DIM, EMBEDDING_DIM) or not np.issubdtype(emap.dtype, np.floating):
        raise _refuse(
            path,
            f"its last initializer {inits[-1].name!r} is {emap.dtype} {tuple(emap.shape)}, not the 512x512 emap",
            kind,
        )
    if not np.isfinite(emap).all():
        raise _refuse(path, "its emap has non-finite values", kind)
    return Inspection(kind, h, (target, source), (out,), {"emap": inits[-1].name}, {out.name: (1, 3, h, w)})


def _check_dfm(path: Path, ins: dict[str, TensorSig], outs: Sequence[TensorSig]) -> Inspection:
    kind = "dfm"
    face = ins.get("in_face:0")
    extra = set(ins) - {"in_face:0", "morph_value:0"}
    if face is None or extra:
        raise _refuse(
            path, f"a DFM takes 'in_face:0' and optionally 'morph_value:0'; {_io_text([*ins.values()], outs)}", kind
        )
    by_name = {t.name: t for t in outs}
    missing = [n for n in ("out_face_mask:0", "out_celeb_face:0", "out_celeb_face_mask:0") if n not in by_name]
    if missing:
        raise _refuse(path, f"it lacks the output(s) {', '.join(missing)}; {_io_text([*ins.values()], outs)}", kind)
    morph = ins.get("morph_value:0")
    used_outs = [by_name["out_face_mask:0"], by_name["out_celeb_face:0"], by_name["out_celeb_face_mask:0"]]
    _check_float(path, kind, [face, *([morph] if morph else []), *used_outs])
    if len(face.shape) != 4 or not _batch_ok(face.shape[0]) or face.shape[3] != 3:
        raise _refuse(path, f"its input is {face.describe()}, not NHWC with 3 channels", kind)
    h, w = _fixed(face.shape[1]), _fixed(face.shape[2])
    if h is None or w is None:
        raise _refuse(path, f"its input's resolution is not fixed ({face.describe()})", kind)
    if h != w or not DFM_SIZES[0] <= h <= DFM_SIZES[1]:
        raise _refuse(
            path, f"its input is {h}x{w}; a DFM works on a square face of {DFM_SIZES[0]}..{DFM_SIZES[1]} px", kind
        )
    if morph is not None and not (len(morph.shape) <= 1 and all(_free(d) or d == 1 for d in morph.shape)):
        raise _refuse(path, f"its morph input is {morph.describe()}, not one value", kind)
    expected = {t.name: (1, h, w, c) for t, c in zip(used_outs, (1, 3, 1), strict=True)}
    for t, channels in zip(used_outs, (1, 3, 1), strict=True):
        if not _agrees(t, expected[t.name]):
            raise _refuse(
                path,
                f"its output {t.describe()} disagrees with its {h}x{w} input (expected [N,{h},{w},{channels}])",
                kind,
            )
    return Inspection(
        kind, h, (face, *([morph] if morph else [])), tuple(used_outs), {"has_morph": morph is not None}, expected
    )


def _check_dnr(path: Path, ins: dict[str, TensorSig], outs: Sequence[TensorSig]) -> Inspection:
    kind = "dnr"
    uv, covered = ins.get("uv"), ins.get("covered")
    face = next((t for t in outs if t.name == "face"), None)
    if uv is None or covered is None or face is None or len(ins) != 2:
        raise _refuse(
            path,
            f"a neural renderer takes 'uv' and 'covered' and gives 'face'; {_io_text([*ins.values()], outs)}",
            kind,
        )
    _check_float(path, kind, [uv, covered, face])
    if len(uv.shape) != 4 or not _batch_ok(uv.shape[0]) or uv.shape[3] != 2:
        raise _refuse(path, f"its uv is {uv.describe()}, not NHWC with 2 channels", kind)
    h, w = _fixed(uv.shape[1]), _fixed(uv.shape[2])
    if h is None or w is None or h != w or not DNR_SIZES[0] <= h <= DNR_SIZES[1]:
        raise _refuse(
            path,
            f"its uv is {uv.describe()}; a neural renderer works on a square {DNR_SIZES[0]}..{DNR_SIZES[1]} px crop",
            kind,
        )
    for t, channels in ((covered, 1), (face, 3)):
        if not _agrees(t, (1, h, w, channels)):
            raise _refuse(path, f"{t.describe()} disagrees with its {h}x{w} uv (expected [N,{h},{w},{channels}])", kind)
    return Inspection(kind, h, (uv, covered), (face,), {}, {face.name: (1, h, w, 3)})


def _check_arcface(path: Path, model: Any, ins: dict[str, TensorSig], outs: Sequence[TensorSig]) -> Inspection:
    kind = "arcface"
    if len(ins) != 1 or len(outs) != 1:
        raise _refuse(
            path, f"a recognition model has one input and one output; {_io_text([*ins.values()], outs)}", kind
        )
    image, emb = next(iter(ins.values())), outs[0]
    _check_float(path, kind, [image, emb])
    if len(image.shape) != 4 or not _batch_ok(image.shape[0]):
        raise _refuse(path, f"its input is {image.describe()}, not a batch of images", kind)
    if image.shape[1] == 3:
        layout, size = "nchw", (_fixed(image.shape[2]), _fixed(image.shape[3]))
    elif image.shape[3] == 3:
        layout, size = "nhwc", (_fixed(image.shape[1]), _fixed(image.shape[2]))
    else:
        raise _refuse(path, f"its input {image.describe()} has no 3-channel axis", kind)
    if size != (ARCFACE_SIZE, ARCFACE_SIZE):
        found = "x".join("?" if s is None else str(s) for s in size)
        raise _refuse(
            path, f"it takes {found} faces; ArcFace-style recognisers take {ARCFACE_SIZE}x{ARCFACE_SIZE}", kind
        )
    if not _agrees(emb, (1, EMBEDDING_DIM)):
        raise _refuse(path, f"its output is {emb.describe()}, not a {EMBEDDING_DIM}-d embedding", kind)
    # Recognisers either take pixels as they are and normalise inside (the graph starts with Sub/Mul/Div/Add
    # on the input) or expect (x - 127.5) / 127.5 from the caller.
    first_ops = {n.op_type for n in model.graph.node if image.name in n.input}
    normalised = bool(first_ops & {"Sub", "Mul", "Div", "Add"})
    options = {"layout": layout, "normalised_in_graph": normalised}
    return Inspection(kind, ARCFACE_SIZE, (image,), (emb,), options, {emb.name: (1, EMBEDDING_DIM)})


def inspect_model(path: str | os.PathLike[str], kind: str | None = None) -> Inspection:
    """Parse, check and classify the ONNX file at ``path`` (``kind``: the declared kind, or None to detect it).

    Raises ModelError naming the file, what is wrong and what was expected."""
    import onnx
    from onnx import external_data_helper

    path = Path(path)
    if kind is not None and kind not in KINDS:
        raise InputError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"cannot read model file {path}: {exc.strerror or exc}") from exc
    if not path.is_file():
        raise ModelError(f"{path} is not a file")
    if size == 0:
        raise _refuse(path, "the file is empty", kind)
    if size > MAX_MODEL_BYTES:
        raise _refuse(
            path,
            f"the file is {size / 1024**3:.1f} GiB; ONNX files over 2 GiB keep weights outside the file, "
            "which stageswap does not load",
            kind,
        )
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: not ONNX, or cut short
        raise _refuse(
            path, f"it is not an ONNX model or it is truncated (it does not parse: {_first_line(exc)})", kind
        ) from exc
    if not model.HasField("graph") or not model.graph.node:
        raise _refuse(path, "it does not parse as an ONNX model with a graph (another format, or truncated)", kind)
    if any(external_data_helper.uses_external_data(t) for t in model.graph.initializer):
        raise _refuse(path, "its weights are kept in external data files; export it as one self-contained file", kind)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx.checker.ValidationError, or a protobuf error on a damaged graph
        raise _refuse(path, f"the ONNX checker rejects it ({_first_line(exc)}); truncated or damaged?", kind) from exc
    inits = {i.name for i in model.graph.initializer}
    inputs = [_sig(v) for v in model.graph.input if v.name not in inits]
    outputs = [_sig(v) for v in model.graph.output]
    detected = detect_kind(inputs, outputs)
    if detected is None:
        raise _refuse(path, f"it is not a model stageswap can run: {_io_text(inputs, outputs)}", kind)
    if kind is not None and detected != kind:
        raise _refuse(
            path,
            f"it was declared --kind {kind}, but its graph is of kind {detected}: {_io_text(inputs, outputs)}",
            kind,
        )
    ins = {t.name: t for t in inputs}
    if detected == "inswapper":
        found = _check_inswapper(path, model, ins, outputs)
    elif detected == "dfm":
        found = _check_dfm(path, ins, outputs)
    elif detected == "dnr":
        found = _check_dnr(path, ins, outputs)
    else:
        found = _check_arcface(path, model, ins, outputs)
    _smoke_run(path, found)
    return found


def example_feeds(inputs: Sequence[TensorSig], resolution: int, batch: int = 1) -> dict[str, np.ndarray]:
    """Deterministic inputs for a model of this signature (free axes: ``batch`` for the first, else 1)."""
    rng = np.random.default_rng(7)
    feeds: dict[str, np.ndarray] = {}
    for t in inputs:
        shape = tuple(
            (batch if i == 0 and len(t.shape) > 1 else 1) if _free(d) else int(d)  # type: ignore[arg-type]
            for i, d in enumerate(t.shape)
        )
        if t.name == "morph_value:0":
            feeds[t.name] = np.full(shape, 0.5, np.float32)
        elif t.name == "source":
            v = rng.standard_normal(shape).astype(np.float32)
            feeds[t.name] = v / np.linalg.norm(v, axis=-1, keepdims=True)
        else:
            feeds[t.name] = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    return feeds


def _smoke_run(path: Path, found: Inspection) -> None:
    """Load the graph in ONNX Runtime and run it once: what checks cannot see (a missing weight, an operator
    ONNX Runtime lacks, outputs whose real shape is not the declared one) shows here, before registration."""
    from engines.runtime.onnxrt import OrtSession

    try:
        session = OrtSession(path)
    except ModelError as exc:
        raise _refuse(path, f"ONNX Runtime cannot load it ({_first_line(exc)})", found.kind) from exc
    feeds = example_feeds(found.inputs, found.resolution)
    try:
        result = session.run(feeds)
    except Exception as exc:  # onnxruntime's own error types
        raise _refuse(path, f"it fails when run ({_first_line(exc)})", found.kind) from exc
    for sig in found.outputs:
        got = result.get(sig.name)
        if got is None:
            raise _refuse(path, f"running it gave no {sig.name!r}", found.kind)
        expected = list(found.expected.get(sig.name, ()))
        if list(got.shape) != expected:
            raise _refuse(
                path, f"running it gave {sig.name!r} of shape {list(got.shape)}, expected {expected}", found.kind
            )
        if not np.isfinite(got).all():
            raise _refuse(path, f"running it on a test input gave non-finite values in {sig.name!r}", found.kind)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__

"""Models users bring: inswapper-style and DFM swappers, ArcFace-style recognisers, registered per data directory.

Studios train their own swap models or license them; stageswap runs them through its own tracking,
relighting, blending, recording and GPU compilation. A user registers a file once
(``stageswap models add PATH``); it is checked before anything is stored:

- it must parse as one self-contained ONNX file (no external weights), pass the ONNX checker, load in ONNX
  Runtime and run once on zeros with the output shapes its signature promises;
- its kind is read from the graph's inputs and outputs (``KIND_SIGNATURES``), or checked against the kind
  the user declares; shapes, resolutions and dtypes must be what that kind needs;
- its sha256, size, resolution and I/O are recorded with the licence the user declares; licences that
  restrict use to research or non-commercial work are flagged (``research_only``) wherever models are
  listed, and so is a licence left undeclared.

A model that passes is copied to ``data_dir/models/NAME.onnx`` (under a temporary name first, renamed
into place) and recorded in ``data_dir/models.json`` (written whole and renamed, so readers never see half
of it). Anything else is refused with a ``ModelError`` saying what was expected, and nothing is stored.
When a model is loaded its file is checked against the recorded sha256, so an edited or truncated copy is
reported instead of run.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import tempfile
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from engines.errors import InputError, ModelError, OutputError
from engines.paths import check_name, inside

ModelKind = Literal["inswapper", "dfm", "arcface"]
KINDS: tuple[str, ...] = ("inswapper", "dfm", "arcface")
SWAP_KINDS: tuple[str, ...] = ("inswapper", "dfm")
MESH = "mesh"
"""The built-in swap (``engines.swap.mesh``): the default ``swap_model``, a name no user model may take."""

INDEX_FILE = "models.json"
MODELS_SUBDIR = "models"
INDEX_FORMAT = "stageswap-user-models"
INDEX_VERSION = 1
MAX_MODEL_BYTES = 2 * 1024**3 - 1
"""Largest model file accepted: ONNX files over 2 GiB keep their weights outside the file."""

INSWAPPER_SIZE = 128
ARCFACE_SIZE = 112
EMBEDDING_DIM = 512
DFM_SIZES = (64, 1024)
"""Smallest and largest DFM resolution accepted (DeepFaceLab trains 64..640)."""

KIND_SIGNATURES: Mapping[str, str] = {
    "inswapper": "inputs 'target' float32 [1,3,128,128] (RGB 0..1, ArcFace-aligned) and 'source' float32 [1,512] "
    "(the identity's embedding through the model's emap), output float32 [1,3,128,128], and the emap as its "
    "last initializer (512x512)",
    "dfm": "input 'in_face:0' float32 [N,R,R,3] (BGR 0..1), optional 'morph_value:0' float32 [1], outputs "
    "'out_face_mask:0' [N,R,R,1], 'out_celeb_face:0' [N,R,R,3] and 'out_celeb_face_mask:0' [N,R,R,1] at the "
    f"same resolution R ({DFM_SIZES[0]}..{DFM_SIZES[1]})",
    "arcface": "one float32 image input [N,3,112,112] (or [N,112,112,3]) and one float32 output [N,512]",
}
"""What each kind must look like, as shown to users when a file is refused."""

_RESEARCH_PATTERNS = (
    r"non[- ]?commercial",
    r"research",
    r"academic",
    r"evaluation[- ]only",
    r"personal[- ]use",
    r"\bcc[- ]by(?:[- ]sa)?[- ]nc",
    r"\bnc\b",
    r"not for commercial",
)
_RESEARCH_RE = re.compile("|".join(_RESEARCH_PATTERNS), re.IGNORECASE)

_ONNX_DTYPES = {1: "float32", 10: "float16", 11: "float64", 6: "int32", 7: "int64", 2: "uint8", 9: "bool"}

Dim = int | str | None


def is_research_only(licence: str) -> bool:
    """Whether a declared licence restricts use to research, evaluation or non-commercial work."""
    return bool(_RESEARCH_RE.search(licence or ""))


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


@dataclass(frozen=True)
class UserModel:
    """A registered model, as ``models.json`` records it."""

    name: str
    kind: str
    file: str
    """File name inside ``data_dir/models``."""
    sha256: str
    size_bytes: int
    resolution: int
    """Side of the square face crop the model works on, in pixels."""
    inputs: tuple[TensorSig, ...]
    outputs: tuple[TensorSig, ...]
    licence: str = ""
    """As the user declared it; empty: undeclared."""
    added: str = ""
    """UTC, ISO 8601."""
    source: str = ""
    """The file name it was registered from."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Kind-specific: dfm ``has_morph``, ``coverage``; arcface ``layout``, ``normalised_in_graph``."""

    @property
    def research_only(self) -> bool:
        return is_research_only(self.licence)

    @property
    def licence_flag(self) -> str:
        """``"research-only"``, ``"undeclared"`` or ``""`` (a declared licence without a restriction we know)."""
        if not self.licence.strip():
            return "undeclared"
        return "research-only" if self.research_only else ""

    @property
    def is_swap(self) -> bool:
        return self.kind in SWAP_KINDS

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "file": self.file,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "resolution": self.resolution,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "licence": self.licence,
            "added": self.added,
            "source": self.source,
            "options": dict(self.options),
        }

    def summary(self) -> dict[str, Any]:
        """What ``GET /api/models`` and ``models list --json`` show."""
        return {
            "name": self.name,
            "kind": self.kind,
            "resolution": self.resolution,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "licence": self.licence or None,
            "research_only": self.research_only,
            "licence_flag": self.licence_flag or None,
            "added": self.added,
            "source": self.source,
            "options": dict(self.options),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> UserModel:
        model = cls(
            name=check_name(str(obj["name"]), "model name"),
            kind=str(obj["kind"]),
            file=str(obj["file"]),
            sha256=str(obj["sha256"]),
            size_bytes=int(obj["size_bytes"]),
            resolution=int(obj["resolution"]),
            inputs=tuple(TensorSig.from_json(t) for t in obj["inputs"]),
            outputs=tuple(TensorSig.from_json(t) for t in obj["outputs"]),
            licence=str(obj.get("licence", "")),
            added=str(obj.get("added", "")),
            source=str(obj.get("source", "")),
            options=dict(obj.get("options", {})),
        )
        if model.kind not in KINDS:
            raise ValueError(f"unknown kind {model.kind!r}")
        if Path(model.file).name != model.file or model.file.startswith("."):
            raise ValueError(f"file {model.file!r} is not a plain file name")
        if not re.fullmatch(r"[0-9a-f]{64}", model.sha256):
            raise ValueError("sha256 is not 64 hex digits")
        return model


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
    if len(out.shape) != 4 or out.shape[1] != 3 or (_fixed(out.shape[2]), _fixed(out.shape[3])) != (h, w):
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
    return Inspection(kind, h, (target, source), (out,), {"emap": inits[-1].name})


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
    for t, channels in zip(used_outs, (1, 3, 1), strict=True):
        if len(t.shape) != 4 or (_fixed(t.shape[1]), _fixed(t.shape[2])) != (h, w) or t.shape[3] != channels:
            raise _refuse(
                path,
                f"its output {t.describe()} disagrees with its {h}x{w} input (expected [N,{h},{w},{channels}])",
                kind,
            )
    return Inspection(kind, h, (face, *([morph] if morph else [])), tuple(used_outs), {"has_morph": morph is not None})


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
    if len(emb.shape) != 2 or emb.shape[1] != EMBEDDING_DIM:
        raise _refuse(path, f"its output is {emb.describe()}, not a {EMBEDDING_DIM}-d embedding", kind)
    # Recognisers either take pixels as they are and normalise inside (the graph starts with Sub/Mul/Div/Add
    # on the input) or expect (x - 127.5) / 127.5 from the caller.
    first_ops = {n.op_type for n in model.graph.node if image.name in n.input}
    normalised = bool(first_ops & {"Sub", "Mul", "Div", "Add"})
    return Inspection(kind, ARCFACE_SIZE, (image,), (emb,), {"layout": layout, "normalised_in_graph": normalised})


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
            path, f"it was declared --kind {kind}, but its graph is of kind {detected}: {_io_text(inputs, outputs)}", kind
        )
    ins = {t.name: t for t in inputs}
    if detected == "inswapper":
        found = _check_inswapper(path, model, ins, outputs)
    elif detected == "dfm":
        found = _check_dfm(path, ins, outputs)
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
        expected = [1 if _free(d) else d for d in sig.shape]
        if list(got.shape) != expected:
            raise _refuse(
                path, f"running it gave {sig.name!r} of shape {list(got.shape)}, declared {expected}", found.kind
            )
        if not np.isfinite(got).all():
            raise _refuse(path, f"running it on a test input gave non-finite values in {sig.name!r}", found.kind)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


# ---- the store -------------------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def default_name(path: Path) -> str:
    """A model name from a file name: lower case, runs of other characters as '-', at most 64 characters."""
    stem = re.sub(r"[^a-z0-9_-]+", "-", path.stem.lower()).strip("-_")[:64]
    return stem or "model"


class UserModelStore:
    """The models registered in one data directory. Safe to share between threads (changes are serialised)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.models_dir = self.data_dir / MODELS_SUBDIR
        self.index_path = self.data_dir / INDEX_FILE
        self._lock = threading.Lock()
        self._verified: dict[tuple[str, int, int], str] = {}
        self._index: tuple[tuple[int, int, int], builtins.list[UserModel]] | None = None
        """The parsed index and the (mtime, size, inode) it was read at: processors ask every frame."""

    # ---- queries

    def list(self) -> builtins.list[UserModel]:
        """Every registered model, in registration order (ModelError if ``models.json`` is damaged)."""
        return self._read()

    def names(self, kinds: Sequence[str] = KINDS) -> builtins.list[str]:
        return [m.name for m in self._read() if m.kind in kinds]

    def get(self, name: str, kinds: Sequence[str] = KINDS) -> UserModel:
        """The model called ``name`` (of one of ``kinds``); InputError naming the ones there are otherwise."""
        check_name(name, "model name")
        models = self._read()
        for m in models:
            if m.name == name:
                if m.kind not in kinds:
                    raise InputError(f"model {name!r} is a {m.kind} model, not one of: {', '.join(kinds)}")
                return m
        known = ", ".join(m.name for m in models if m.kind in kinds) or "none"
        raise InputError(
            f"no registered model named {name!r} (registered: {known}; add one: stageswap models add FILE)"
        )

    def path(self, model: UserModel) -> Path:
        """The model's file, checked against its recorded sha256 (ModelError if missing or changed)."""
        path = inside(self.models_dir, model.file)
        try:
            st = path.stat()
        except OSError:
            raise ModelError(
                f"model {model.name!r}: its file {path} is missing; register it again: stageswap models add FILE "
                f"--name {model.name} --replace"
            ) from None
        key = (str(path), st.st_size, st.st_mtime_ns)
        digest = self._verified.get(key)
        if digest is None:
            digest = _sha256_file(path)
            self._verified[key] = digest
        if digest != model.sha256:
            raise ModelError(
                f"model {model.name!r}: {path} does not match its recorded sha256 ({digest[:12]}…, registered "
                f"{model.sha256[:12]}…): truncated or modified; register it again with --replace"
            )
        return path

    # ---- changes

    def add(
        self,
        source: str | os.PathLike[str],
        kind: str | None = None,
        licence: str | None = None,
        name: str | None = None,
        replace: bool = False,
        coverage: float | None = None,
    ) -> UserModel:
        """Check ``source`` and register it (see the module docstring); ModelError/InputError when refused."""
        src = Path(source)
        name = check_name(name if name is not None else default_name(src), "model name")
        if name == MESH:
            raise InputError(f"{MESH!r} is the built-in swap; give the model another --name")
        if kind is not None and kind not in KINDS:
            raise InputError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
        if coverage is not None and not 0.5 <= coverage <= 8.0:
            raise InputError(f"--coverage must be between 0.5 and 8 face widths, got {coverage}")
        licence = (licence or "").strip()
        if len(licence) > 500:
            raise InputError("the licence text is over 500 characters: give its name or URL")
        if not replace and name in self.names():
            raise InputError(f"a model named {name!r} is registered already; use --replace or another --name")
        try:
            src_size = src.stat().st_size
        except OSError as exc:
            raise ModelError(f"cannot read model file {src}: {exc.strerror or exc}") from exc
        if src_size > MAX_MODEL_BYTES:
            raise ModelError(f"{src.name}: the file is over 2 GiB; ONNX files that large keep weights outside the file")
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {self.models_dir}: {exc.strerror or exc}") from exc
        # Copy first, check the copy: what is registered is exactly what was checked.
        tmp = self.models_dir / f".add-{uuid.uuid4().hex[:12]}.onnx"
        try:
            digest = _copy_hashing(src, tmp)
            found = inspect_model(tmp, kind)
            if coverage is not None and found.kind != "dfm":
                raise InputError("--coverage applies to DFM models only")
            options = dict(found.options)
            if found.kind == "dfm":
                from engines.align import DFM_COVERAGE

                options["coverage"] = float(coverage if coverage is not None else DFM_COVERAGE)
            model = UserModel(
                name=name,
                kind=found.kind,
                file=f"{name}.onnx",
                sha256=digest,
                size_bytes=tmp.stat().st_size,
                resolution=found.resolution,
                inputs=found.inputs,
                outputs=found.outputs,
                licence=licence,
                added=datetime.now(UTC).replace(microsecond=0).isoformat(),
                source=src.name,
                options=options,
            )
            with self._lock:
                current = self._read()
                if not replace and any(m.name == name for m in current):
                    raise InputError(f"a model named {name!r} is registered already; use --replace or another --name")
                models = [m for m in current if m.name != name]
                os.replace(tmp, inside(self.models_dir, model.file))
                self._write([*models, model])
            return model
        except OSError as exc:
            raise OutputError(f"cannot store model {name!r} in {self.models_dir}: {exc.strerror or exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)

    def remove(self, name: str) -> UserModel:
        """Unregister ``name`` and delete its file; InputError if there is no such model."""
        with self._lock:
            model = self.get(name)
            self._write([m for m in self._read() if m.name != name])
            inside(self.models_dir, model.file).unlink(missing_ok=True)
        return model

    # ---- internals

    def _read(self) -> builtins.list[UserModel]:
        try:
            st = self.index_path.stat()
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            cached = self._index
            if cached is not None and cached[0] == stamp:
                return list(cached[1])
            raw = self.index_path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ModelError(f"cannot read {self.index_path}: {exc.strerror or exc}") from exc
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict) or obj.get("format") != INDEX_FORMAT:
                raise ValueError("not a stageswap model index")
            if obj.get("version") != INDEX_VERSION:
                raise ValueError(f"version {obj.get('version')!r}, this stageswap reads {INDEX_VERSION}")
            models = [UserModel.from_json(m) for m in obj["models"]]
            self._index = (stamp, models)
            return list(models)
        except (ValueError, KeyError, TypeError, InputError) as exc:
            raise ModelError(
                f"the model index {self.index_path} is damaged ({exc}); fix or delete it and add the models again"
            ) from exc

    def _write(self, models: Sequence[UserModel]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        data = json.dumps(
            {"format": INDEX_FORMAT, "version": INDEX_VERSION, "models": [m.to_json() for m in models]}, indent=1
        )
        fd, tmp = tempfile.mkstemp(prefix=".models.", suffix=".json", dir=self.data_dir)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(data + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.index_path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise OutputError(f"cannot write {self.index_path}: {exc.strerror or exc}") from exc


def _copy_hashing(src: Path, dest: Path) -> str:
    h = hashlib.sha256()
    try:
        with open(src, "rb") as fin, open(dest, "wb") as fout:
            while chunk := fin.read(1 << 20):
                h.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
    except IsADirectoryError as exc:
        raise ModelError(f"{src} is a directory, not a model file") from exc
    except OSError as exc:
        raise ModelError(f"cannot read model file {src}: {exc.strerror or exc}") from exc
    return h.hexdigest()

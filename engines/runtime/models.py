"""Model registry: every model stageswap runs, declared as data, and how a file for it is found.

A model is resolved from a models directory in this order: the explicit ``--models DIR``, then the
``STAGESWAP_MODELS`` environment variable, then the user cache (``~/.cache/stageswap/models``). The
first directory holding the file wins; a file that is there but whose sha256 does not match is an
error (never silently skipped), because a corrupt model must be noticed, not worked around.

``fetch`` downloads from the model's official public URL with a progress bar, checks the sha256 while
streaming and renames into place atomically, so a directory never holds a half-written model.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from engines.errors import ModelError

MODELS_ENV = "STAGESWAP_MODELS"
"""Environment variable naming a models directory (second in the resolution order)."""


@dataclass(frozen=True)
class TensorDesc:
    """One named input or output of a model, as documentation and for validation."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    meaning: str


@dataclass(frozen=True)
class ModelSpec:
    """A model declared as data: what file, where it officially comes from, its licence and I/O."""

    name: str
    filename: str
    sha256: str
    size_bytes: int
    urls: tuple[str, ...]
    licence: str
    homepage: str
    task: str
    inputs: tuple[TensorDesc, ...] = ()
    outputs: tuple[TensorDesc, ...] = ()
    notes: str = ""
    package: str = ""
    """A PyPI package that ships the file (``module/folder``): a model no models directory holds is taken from the
    installed package, so it needs no download."""

    @property
    def short_sha(self) -> str:
        return self.sha256[:12]


YUNET = ModelSpec(
    name="yunet",
    filename="yunet_s_dynamic.onnx",
    sha256="daede24002cc8590f457998cc5e6c9e8b82f45f6bd969506a8913cd4ed10a2d3",
    size_bytes=237823,
    urls=(
        "https://github.com/ShiqiYu/libfacedetection.train/raw/master/onnx/yunet_s_dynamic.onnx",
        "https://raw.githubusercontent.com/ShiqiYu/libfacedetection.train/master/onnx/yunet_s_dynamic.onnx",
    ),
    licence="Apache-2.0",
    homepage="https://github.com/ShiqiYu/libfacedetection.train",
    task="face detection: boxes + 5 keypoints",
    inputs=(TensorDesc("input", ("batch", 3, "height", "width"), "float32", "BGR 0..255, H and W multiples of 32"),),
    outputs=tuple(
        TensorDesc(f"{kind}_{stride}", ("batch", "anchors", n), "float32", meaning)
        for stride in (8, 16, 32)
        for kind, n, meaning in (
            ("cls", 1, "class score per anchor"),
            ("obj", 1, "objectness per anchor"),
            ("bbox", 4, "box offsets (cx, cy in cells; log w, log h)"),
            ("kps", 10, "5 keypoints offsets in cells"),
        )
    ),
    notes="YuNet-s with a dynamic input size, run on a downscaled frame.",
)

FACEMESH = ModelSpec(
    name="facemesh",
    filename="face_landmark.tflite",
    sha256="c603fa6149219a3e9487dc9abd7a0c24474c77263273d24868378cdf40aa26d1",
    size_bytes=1241896,
    urls=(
        "https://raw.githubusercontent.com/google-ai-edge/mediapipe/master/"
        "mediapipe/modules/face_landmark/face_landmark.tflite",
        "https://github.com/google-ai-edge/mediapipe/raw/master/mediapipe/modules/face_landmark/face_landmark.tflite",
    ),
    licence="Apache-2.0",
    homepage="https://github.com/google-ai-edge/mediapipe",
    task="468-point face mesh on a 192x192 face crop",
    inputs=(TensorDesc("input_1", (1, 192, 192, 3), "float32", "RGB 0..1, face centred, upright"),),
    outputs=(
        TensorDesc("conv2d_21", (1, 1, 1, 1404), "float32", "468 x (x, y, z) in crop pixels"),
        TensorDesc("conv2d_31", (1, 1, 1, 1), "float32", "face presence logit"),
    ),
    notes="MediaPipe's own TFLite file, run by LiteRT on the CPU; converted for the GPU by build_engines.py.",
)

SELFIE_SEGMENTATION = ModelSpec(
    name="selfie_segmentation",
    filename="selfie_segmentation.tflite",
    sha256="8d13b7fae74af625c641226813616a2117bd6bca19eb3b75574621fc08557f27",
    size_bytes=249024,
    urls=(
        "https://raw.githubusercontent.com/google-ai-edge/mediapipe/master/"
        "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
    ),
    licence="Apache-2.0",
    homepage="https://github.com/google-ai-edge/mediapipe",
    task="person / background mask, 256x256 (occlusion handling)",
    inputs=(TensorDesc("input_1", (1, 256, 256, 3), "float32", "RGB 0..1"),),
    outputs=(TensorDesc("activation_10", (1, 256, 256, 1), "float32", "person probability"),),
)

FACE_DESCRIPTOR = ModelSpec(
    name="face_descriptor",
    filename="dlib_face_recognition_resnet_model_v1.dat",
    sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    size_bytes=22466066,
    urls=(
        "https://github.com/ageitgey/face_recognition_models/raw/master/"
        "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
    ),
    licence="CC0-1.0 (public domain; dlib-models by Davis King)",
    homepage="https://github.com/davisking/dlib-models",
    task="face recognition: a 150x150 face aligned on 5 points in, a 128-d descriptor out (who is who on set)",
    inputs=(TensorDesc("face_chip", (150, 150, 3), "uint8", "RGB, aligned as dlib.get_face_chip does, padding 0.25"),),
    outputs=(TensorDesc("descriptor", (128,), "float32", "same person: Euclidean distance below ~0.6"),),
    notes="dlib's ResNet, run by dlib (dlib-bin); installed with the face-recognition-models package, whose "
    "68-point predictor (iBUG 300-W, non-commercial) stageswap never loads.",
    package="face_recognition_models/models",
)

REGISTRY: Mapping[str, ModelSpec] = {
    spec.name: spec for spec in (YUNET, FACEMESH, SELFIE_SEGMENTATION, FACE_DESCRIPTOR)
}
"""Every model the product itself runs, by name."""


def user_cache_dir() -> Path:
    """The per-user cache (honours XDG_CACHE_HOME)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stageswap" / "models"


def search_dirs(models_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """The directories looked in, in resolution order: explicit, environment, user cache."""
    dirs: list[Path] = []
    if models_dir:
        dirs.append(Path(models_dir).expanduser())
    env = os.environ.get(MODELS_ENV)
    if env:
        dirs.append(Path(env).expanduser())
    dirs.append(user_cache_dir())
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def spec_for(name: str) -> ModelSpec:
    """The registry entry called ``name``, or a ModelError listing the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ModelError(f"unknown model {name!r}; known models: {known} (see `stageswap models list`)") from None


def sha256_file(path: Path, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


_verified: dict[tuple[str, int, int], str] = {}
"""sha256 by (path, size, mtime_ns): hashing the same unchanged file twice in one process is wasted work."""


def _cached_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    digest = _verified.get(key)
    if digest is None:
        digest = sha256_file(path)
        _verified[key] = digest
    return digest


def _fix_command(spec: ModelSpec, models_dir: str | os.PathLike[str] | None, force: bool = False) -> str:
    cmd = f"stageswap models fetch {spec.name}"
    if models_dir:
        cmd += f" --models {models_dir}"
    if force:
        cmd += " --force"
    return cmd


@dataclass(frozen=True)
class ModelStatus:
    """Where a model was found (if anywhere) and whether its bytes are the declared ones."""

    spec: ModelSpec
    path: Path | None
    ok: bool
    problem: str = ""
    looked_in: tuple[Path, ...] = field(default_factory=tuple)


def package_dir(spec: ModelSpec) -> Path | None:
    """The folder inside the installed package that ships ``spec`` (None: none declared, or not installed)."""
    if not spec.package:
        return None
    import importlib.util

    module, _, folder = spec.package.partition("/")
    try:
        found = importlib.util.find_spec(module)  # located, not imported
    except (ImportError, ValueError):
        return None
    locations = list(found.submodule_search_locations or []) if found is not None else []
    return Path(locations[0]) / folder if locations else None


def check(spec: ModelSpec, models_dir: str | os.PathLike[str] | None = None) -> ModelStatus:
    """Locate ``spec`` in the search directories (then the package that ships it) and verify its sha256,
    without raising."""
    shipped = package_dir(spec)
    dirs = tuple(search_dirs(models_dir)) + ((shipped,) if shipped is not None else ())
    for d in dirs:
        candidate = d / spec.filename
        if not candidate.is_file():
            continue
        try:
            digest = _cached_sha256(candidate)
        except OSError as exc:
            return ModelStatus(spec, candidate, False, f"cannot be read ({exc.strerror})", dirs)
        if digest != spec.sha256:
            return ModelStatus(
                spec, candidate, False, f"is corrupt: sha256 {digest[:12]}…, expected {spec.short_sha}…", dirs
            )
        return ModelStatus(spec, candidate, True, "", dirs)
    return ModelStatus(spec, None, False, "not found", dirs)


def resolve(name: str, models_dir: str | os.PathLike[str] | None = None) -> Path:
    """Path of a verified model file, or a ModelError that names the model, the paths and the fix."""
    spec = spec_for(name)
    status = check(spec, models_dir)
    if status.ok and status.path is not None:
        return status.path
    if status.path is None:
        looked = ", ".join(str(d / spec.filename) for d in status.looked_in)
        raise ModelError(
            f"model {spec.name!r} ({spec.filename}) not found; looked at: {looked}. "
            f"Fix: {_fix_command(spec, models_dir)}"
        )
    raise ModelError(
        f"model {spec.name!r} at {status.path} {status.problem}. Fix: {_fix_command(spec, models_dir, force=True)}"
    )


class ProgressSink(Protocol):
    """Receives byte counts during a download (the CLI plugs a tqdm bar in here)."""

    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


ProgressFactory = Callable[[int, str], ProgressSink]
"""Called with (total bytes, file name) when a download starts."""


def _download(url: str, dest: Path, spec: ModelSpec, progress: ProgressFactory | None, timeout_s: float) -> None:
    """Stream ``url`` into a temp file next to ``dest``, check size and sha256, then rename atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "stageswap-model-fetch"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response, os.fdopen(fd, "wb") as out:
            total = int(response.headers.get("Content-Length") or spec.size_bytes)
            bar = progress(total, spec.filename) if progress else None
            h = hashlib.sha256()
            try:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    h.update(chunk)
                    if bar:
                        bar.update(len(chunk))
            finally:
                if bar:
                    bar.close()
            out.flush()
            os.fsync(out.fileno())
        digest = h.hexdigest()
        if digest != spec.sha256:
            raise ModelError(
                f"download of {spec.name!r} from {url} has sha256 {digest[:12]}…, expected {spec.short_sha}…; "
                "the file was not installed"
            )
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def fetch(
    name: str,
    models_dir: str | os.PathLike[str] | None = None,
    *,
    force: bool = False,
    mirror: str | None = None,
    progress: ProgressFactory | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Make sure a verified copy of model ``name`` exists; download it if missing, corrupt or ``force``.

    Downloads go to the first search directory (``--models DIR`` if given, else the environment's, else
    the user cache). ``mirror`` is a base URL tried before the official URLs (a studio LAN mirror).
    """
    spec = spec_for(name)
    status = check(spec, models_dir)
    if status.ok and status.path is not None and not force:
        return status.path
    dest = search_dirs(models_dir)[0] / spec.filename
    urls: list[str] = []
    if mirror:
        urls.append(mirror.rstrip("/") + "/" + spec.filename)
    urls.extend(spec.urls)
    errors: list[str] = []
    for url in urls:
        try:
            _download(url, dest, spec, progress, timeout_s)
            return dest
        except ModelError as exc:
            errors.append(str(exc))
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            errors.append(f"{url}: {reason}")
    raise ModelError(f"could not fetch model {spec.name!r} into {dest}: " + "; ".join(errors))


def iter_status(
    names: Sequence[str] | None = None, models_dir: str | os.PathLike[str] | None = None
) -> Iterator[ModelStatus]:
    for name in names or sorted(REGISTRY):
        yield check(spec_for(name), models_dir)

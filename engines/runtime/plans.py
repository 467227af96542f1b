"""The TensorRT plan manifest: which plan was built for which GPU, TensorRT version and model.

A TensorRT plan only runs on the GPU model and TensorRT version it was built with, and is only right for
the exact model it was built from. ``build_engines.py`` records each plan here under that key (GPU name,
TensorRT version, model fingerprint); the runtime loads a plan only when all three match and the plan
file's own sha256 is the recorded one. Anything else is *stale*, and the lookup says exactly why, so the
service can log it and fall back, and ``build_engines.py`` can rebuild it.

The manifest is ``manifest.json`` in the engines directory: ``--out`` of build_engines.py, else
``$STAGESWAP_ENGINES``, else ``~/.cache/stageswap/engines``. Several GPUs can share one directory: plan
file names carry the key.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.errors import ModelError
from engines.paths import write_atomic
from engines.runtime.export import ShapeRange
from engines.runtime.models import sha256_file

ENGINES_ENV = "STAGESWAP_ENGINES"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


def default_engines_dir() -> Path:
    """``$STAGESWAP_ENGINES``, else the user cache (``$XDG_CACHE_HOME`` honoured)."""
    env = os.environ.get(ENGINES_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stageswap" / "engines"


@dataclass(frozen=True)
class PlanKey:
    """What a plan is valid for."""

    gpu: str
    tensorrt: str
    model_sha256: str

    def file_stem(self, name: str) -> str:
        gpu = re.sub(r"[^a-z0-9]+", "-", self.gpu.lower()).strip("-") or "gpu"
        return f"{name}.{gpu}.trt{self.tensorrt}.{self.model_sha256[:12]}"


@dataclass(frozen=True)
class PlanEntry:
    name: str
    key: PlanKey
    plan: str
    """Plan file name, relative to the engines directory."""
    plan_sha256: str
    fp16: bool
    profiles: Mapping[str, ShapeRange]
    onnx_sha256: str = ""
    built_at: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "gpu": self.key.gpu,
            "tensorrt": self.key.tensorrt,
            "model_sha256": self.key.model_sha256,
            "plan": self.plan,
            "plan_sha256": self.plan_sha256,
            "fp16": self.fp16,
            "profiles": {k: v.to_json() for k, v in self.profiles.items()},
            "onnx_sha256": self.onnx_sha256,
            "built_at": self.built_at,
            **({"extra": dict(self.extra)} if self.extra else {}),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PlanEntry:
        plan = str(obj["plan"])
        if Path(plan).name != plan or plan.startswith("."):
            raise ValueError(f"plan file name {plan!r} is not a plain file name")
        return cls(
            name=str(obj["name"]),
            key=PlanKey(str(obj["gpu"]), str(obj["tensorrt"]), str(obj["model_sha256"])),
            plan=plan,
            plan_sha256=str(obj["plan_sha256"]),
            fp16=bool(obj["fp16"]),
            profiles={k: ShapeRange.from_json(v) for k, v in dict(obj["profiles"]).items()},
            onnx_sha256=str(obj.get("onnx_sha256", "")),
            built_at=str(obj.get("built_at", "")),
            extra=dict(obj.get("extra", {})),
        )


@dataclass(frozen=True)
class PlanLookup:
    """A usable plan (``path`` and ``entry`` set), or why there is none (``reason``)."""

    path: Path | None
    entry: PlanEntry | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.path is not None


class Manifest:
    """The plans recorded in one engines directory."""

    def __init__(self, directory: Path, entries: list[PlanEntry] | None = None) -> None:
        self.directory = directory
        self.entries: list[PlanEntry] = list(entries or [])

    @property
    def path(self) -> Path:
        return self.directory / MANIFEST_NAME

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> Manifest:
        """The manifest in ``directory`` (empty when there is none); ModelError if it is unreadable."""
        directory = Path(directory)
        path = directory / MANIFEST_NAME
        if not path.is_file():
            return cls(directory)
        try:
            obj = json.loads(path.read_text())
            if obj.get("format") != MANIFEST_FORMAT:
                raise ValueError(f"format {obj.get('format')!r}, expected {MANIFEST_FORMAT}")
            entries = [PlanEntry.from_json(e) for e in obj["plans"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ModelError(
                f"engine manifest {path} is unreadable ({exc}); rebuild it: python build_engines.py --out {directory}"
            ) from exc
        return cls(directory, entries)

    def save(self) -> None:
        """Write atomically (temp file + rename): a reader never sees half a manifest."""
        self.directory.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"format": MANIFEST_FORMAT, "plans": [e.to_json() for e in self.entries]}, indent=2)
        try:
            write_atomic(self.path, data + "\n", mode=0o644)
        except OSError as exc:
            raise ModelError(f"cannot write engine manifest {self.path}: {exc.strerror}") from exc

    def record(self, entry: PlanEntry) -> PlanEntry | None:
        """Add ``entry``, replacing the plan of the same name for the same GPU and TensorRT (returned)."""
        replaced = None
        kept = []
        for e in self.entries:
            if e.name == entry.name and e.key.gpu == entry.key.gpu and e.key.tensorrt == entry.key.tensorrt:
                replaced = e
            else:
                kept.append(e)
        self.entries = [*kept, entry]
        return replaced

    def lookup(self, name: str, key: PlanKey, verify_file: bool = True) -> PlanLookup:
        """The plan for ``name`` valid for ``key``, or the reason there is none (stale, missing, corrupt)."""
        mine = [e for e in self.entries if e.name == name]
        if not mine:
            return PlanLookup(None, None, f"no TensorRT plan for {name!r} in {self.directory}")
        exact = [e for e in mine if e.key == key]
        if not exact:
            return PlanLookup(None, None, _stale_reason(name, mine, key))
        entry = exact[-1]
        path = self.directory / entry.plan
        if not path.is_file():
            return PlanLookup(None, entry, f"TensorRT plan {path} for {name!r} is listed in the manifest but missing")
        if verify_file:
            try:
                digest = sha256_file(path)
            except OSError as exc:
                return PlanLookup(None, entry, f"TensorRT plan {path} cannot be read ({exc.strerror})")
            if digest != entry.plan_sha256:
                return PlanLookup(
                    None,
                    entry,
                    f"TensorRT plan {path} is corrupt (sha256 {digest[:12]}…, manifest says {entry.plan_sha256[:12]}…)",
                )
        return PlanLookup(path, entry, "")


def _stale_reason(name: str, entries: list[PlanEntry], key: PlanKey) -> str:
    """Say what differs from the closest recorded plan (same GPU and TensorRT first)."""

    def closeness(e: PlanEntry) -> int:
        return (e.key.gpu == key.gpu) * 2 + (e.key.tensorrt == key.tensorrt)

    best = max(entries, key=closeness)
    diffs = []
    if best.key.gpu != key.gpu:
        diffs.append(f"built for GPU {best.key.gpu!r}, this is {key.gpu!r}")
    if best.key.tensorrt != key.tensorrt:
        diffs.append(f"built with TensorRT {best.key.tensorrt}, installed is {key.tensorrt}")
    if best.key.model_sha256 != key.model_sha256:
        diffs.append(f"built from model {best.key.model_sha256[:12]}…, the model is now {key.model_sha256[:12]}…")
    return f"TensorRT plan for {name!r} is stale: " + "; ".join(diffs)

"""Models users bring: inswapper-style, DFM and neural-renderer swappers, ArcFace-style recognisers, per data directory.

Studios train their own swap models or license them; stageswap runs them through its own tracking,
relighting, blending, recording and GPU compilation. A user registers a file once
(``stageswap models add PATH``); it is checked before anything is stored:

- it must parse as one self-contained ONNX file (no external weights), pass the ONNX checker, load in ONNX
  Runtime and run once on zeros with the output shapes its signature promises;
- its kind is read from the graph's inputs and outputs, or checked against the kind the user declares;
  shapes, resolutions and dtypes must be what that kind needs (``engines.swap.model_inspect``);
- its sha256, size, resolution and I/O are recorded with the licence the user declares; licences that
  restrict use to research or non-commercial work are flagged (``research_only``) wherever models are
  listed, and so is a licence left undeclared;
- a DFM (or a neural renderer, kind ``dnr``: ``LIKENESS_KINDS``) has a person's identity trained in, so it is a
  likeness of its own: it is registered only with a
  consent record (kept in its ``models.json`` entry, so the model and its consent are written together) or
  explicitly unverified, like an enrolled identity; consent can be recorded or renewed later
  (``set_consent``). What a record says and whether it allows a swap is policy (``streamer.governance``):
  this store keeps the record as the JSON it was given and asks the caller's ``approve_likeness`` before a DFM
  or a neural renderer is registered. Other kinds swap to, or embed, enrolled identities: consent does not
  apply to them.

A model that passes is copied to ``data_dir/models/NAME.onnx`` (under a temporary name first, renamed
into place) and recorded in ``data_dir/models.json`` (written whole and renamed, so readers never see half
of it). Anything else is refused with a ``ModelError`` saying what was expected, and nothing is stored.
When a model is loaded its file is checked against the recorded sha256, so an edited or truncated copy is
reported instead of run.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import json
import os
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engines.errors import InputError, ModelError, OutputError
from engines.paths import check_name, inside, write_atomic
from engines.swap.model_inspect import (
    ARCFACE_SIZE,
    EMBEDDING_DIM,
    KINDS,
    LIKENESS_KINDS,
    MAX_MODEL_BYTES,
    SWAP_KINDS,
    Inspection,
    TensorSig,
    example_feeds,
    inspect_model,
)

__all__ = [
    "ARCFACE_SIZE",
    "EMBEDDING_DIM",
    "KINDS",
    "LIKENESS_KINDS",
    "MESH",
    "SWAP_KINDS",
    "Inspection",
    "TensorSig",
    "UserModel",
    "UserModelStore",
    "example_feeds",
    "inspect_model",
    "is_research_only",
]

MESH = "mesh"
"""The built-in swap (``engines.swap.mesh``): the default ``swap_model``, a name no user model may take."""

INDEX_FILE = "models.json"
MODELS_SUBDIR = "models"
INDEX_FORMAT = "stageswap-user-models"
INDEX_VERSION = 1

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


def is_research_only(licence: str) -> bool:
    """Whether a declared licence restricts use to research, evaluation or non-commercial work."""
    return bool(_RESEARCH_RE.search(licence or ""))


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
    consent: Mapping[str, Any] | None = field(default=None, compare=False)
    """A DFM's consent record as stored (None: unverified; read it with
    ``streamer.governance.consent.model_consent``); always None for other kinds. Not part of the model's
    equality: renewing consent does not make a running processor reload the model."""

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

    @property
    def is_likeness(self) -> bool:
        """Whether the model carries an identity of its own (a DFM, a neural renderer) and so needs consent like an
        identity."""
        return self.kind in LIKENESS_KINDS

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
            "consent": dict(self.consent) if self.consent is not None else None,
        }

    def summary(self) -> dict[str, Any]:
        """What ``GET /api/models`` and ``models list --json`` show (with the consent summary governance adds)."""
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
            consent=_consent_json(obj.get("consent")),
        )
        if model.kind not in KINDS:
            raise ValueError(f"unknown kind {model.kind!r}")
        if model.consent is not None and not model.is_likeness:
            raise ValueError(f"a {model.kind} model has no consent record of its own")
        if Path(model.file).name != model.file or model.file.startswith("."):
            raise ValueError(f"file {model.file!r} is not a plain file name")
        if not re.fullmatch(r"[0-9a-f]{64}", model.sha256):
            raise ValueError("sha256 is not 64 hex digits")
        return model


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
                    raise InputError(f"model {name!r} is of kind {m.kind}, not one of: {', '.join(kinds)}")
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
        consent: Mapping[str, Any] | None = None,
        unverified: bool = False,
        approve_likeness: Callable[[str, Mapping[str, Any] | None, str], None] | None = None,
    ) -> UserModel:
        """Check ``source`` and register it (see the module docstring); ModelError/InputError when refused.

        A DFM (or dnr) is registered only if ``approve_likeness(name, record, kind)`` accepts the record it would get
        (``streamer.governance.consent.add_model`` passes it: ``consent`` or ``unverified=True``; ConsentError
        otherwise, and for consent already expired); without ``approve_likeness`` only ``unverified=True`` and no
        record. Replacing a DFM without a new record keeps the one it had. Other kinds refuse ``consent`` and
        ``unverified``.
        """
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
            likeness = found.kind in LIKENESS_KINDS
            if coverage is not None and not likeness:
                raise InputError("--coverage applies to DFM and neural-renderer (dnr) models only")
            # A file that is not a valid model is said first; then whether consent applies and is there.
            if not likeness and (consent is not None or unverified):
                raise InputError(consent_not_applicable(found.kind))
            if likeness:
                consent = self._likeness_consent(name, found.kind, consent, unverified, replace, approve_likeness)
            options = dict(found.options)
            if likeness:
                options["coverage"] = float(coverage if coverage is not None else _default_coverage(found.kind))
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
                consent=consent if likeness else None,
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

    def set_consent(self, name: str, record: Mapping[str, Any]) -> UserModel:
        """Record (or replace) the consent of the DFM ``name``; InputError for another kind or an unknown name.

        The record may be expired or pending (it is what was signed): the status says so and new swaps are
        refused until it is renewed."""
        with self._lock:
            models = self._read()
            model = self.get(name)
            if not model.is_likeness:
                raise InputError(f"model {name!r}: {consent_not_applicable(model.kind)}")
            updated = dataclasses.replace(model, consent=dict(record))
            self._write([updated if m.name == name else m for m in models])
        return updated

    def remove(self, name: str) -> UserModel:
        """Unregister ``name`` and delete its file; InputError if there is no such model."""
        with self._lock:
            model = self.get(name)
            self._write([m for m in self._read() if m.name != name])
            inside(self.models_dir, model.file).unlink(missing_ok=True)
        return model

    # ---- internals

    def _likeness_consent(
        self,
        name: str,
        kind: str,
        consent: Mapping[str, Any] | None,
        unverified: bool,
        replace: bool,
        approve: Callable[[str, Mapping[str, Any] | None, str], None] | None,
    ) -> Mapping[str, Any] | None:
        """The record a DFM is registered with: the one given, else (``replace``) the one it had, once
        ``approve`` accepted it; without ``approve`` only an explicitly unverified DFM with no record (there is
        nothing to judge) is registered."""
        if consent is None and replace:
            previous = next((m for m in self._read() if m.name == name and m.is_likeness), None)
            consent = previous.consent if previous is not None else None
        if approve is not None:
            approve(name, consent, kind)
        elif consent is not None or not unverified:
            raise InputError(
                f"model {name!r} has a likeness of its own: registering it with a consent record needs the "
                "consent check (streamer.governance.consent.add_model); without one it must be --unverified"
            )
        return consent

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
        try:
            write_atomic(self.index_path, data + "\n")
        except OSError as exc:
            raise OutputError(f"cannot write {self.index_path}: {exc.strerror or exc}") from exc


def _default_coverage(kind: str) -> float:
    """The crop a likeness model was trained on, in face widths, when the user does not say: DeepFaceLab's
    whole-face framing for a DFM, a stageswap faceset's for a neural renderer (trained on one)."""
    if kind == "dnr":
        from engines.train.faceset import TRAIN_COVERAGE

        return TRAIN_COVERAGE
    from engines.swap.align import DFM_COVERAGE

    return DFM_COVERAGE


def _consent_json(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError("consent is not a JSON object")
    return dict(value)


def consent_not_applicable(kind: str) -> str:
    """Why consent options are refused for a model that is not a DFM."""
    return (
        f"an {kind} model has no identity of its own ({'it swaps to' if kind == 'inswapper' else 'it embeds'} "
        "enrolled identities), so --consent-by/--consent/--unverified do not apply; record consent for the "
        "identity: stageswap identities consent NAME"
    )


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

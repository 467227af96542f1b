"""Identity embeddings for inswapper-style swaps: an ArcFace-style recogniser run on the enrollment photos.

An inswapper-style model is told who to swap to by a 512-d ArcFace embedding. stageswap does not keep
enrollment photos, so the embedding is computed when an identity is enrolled (``embed_identity``), from
the same photos and the same face the enrollment chose (its recorded landmarks give the five alignment
points), with every ArcFace-style model registered at the time. The embeddings are kept next to the
identity in ``embeddings.json``, keyed by the recogniser's sha256 and tied to the identity's photos: an
identity enrolled again with other photos, or a recogniser replaced, leaves no stale embedding in use.

Recognisers: one 112x112 face (ArcFace template), RGB, NCHW or NHWC; pixels as they are when the graph
normalises them itself, else (x - 127.5) / 127.5 as ArcFace models are trained; a 512-d output.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import InputError, ModelError, OutputError
from engines.paths import check_name, inside, write_atomic
from engines.runtime.base import Session
from engines.swap.align import align_points5
from engines.swap.user_models import ARCFACE_SIZE, EMBEDDING_DIM, UserModel, UserModelStore

EMBEDDINGS_FILE = "embeddings.json"
EMBEDDINGS_FORMAT = "stageswap-embeddings"
EMBEDDINGS_VERSION = 1


class FaceRecognizer:
    """An ArcFace-style model: a face (BGR frame + 5 points) in, a unit 512-d embedding out."""

    def __init__(self, session: Session, model: UserModel) -> None:
        if model.kind != "arcface":
            raise ModelError(f"model {model.name!r} is a {model.kind} model, not an ArcFace-style recogniser")
        self.session, self.model = session, model
        self.layout = str(model.options.get("layout", "nchw"))
        self.normalised_in_graph = bool(model.options.get("normalised_in_graph", False))
        self.input_name = model.inputs[0].name
        self.output_name = model.outputs[0].name

    def embed_crop(self, crop_bgr: np.ndarray) -> np.ndarray:
        """(512,) float32 unit vector for one aligned 112x112 BGR uint8 face."""
        rgb = crop_bgr[..., ::-1].astype(np.float32)
        x = rgb if self.normalised_in_graph else (rgb - 127.5) / 127.5
        blob = x[None] if self.layout == "nhwc" else x.transpose(2, 0, 1)[None]
        out = np.asarray(self.session.run({self.input_name: np.ascontiguousarray(blob)})[self.output_name])
        e = out.reshape(-1).astype(np.float64)
        if e.shape != (EMBEDDING_DIM,) or not np.isfinite(e).all() or np.linalg.norm(e) < 1e-12:
            raise ModelError(f"recognition model {self.model.name!r} gave no usable embedding (shape {out.shape})")
        return (e / np.linalg.norm(e)).astype(np.float32)

    def embed(self, image_bgr: np.ndarray, points5: np.ndarray) -> np.ndarray:
        """(512,) float32 unit vector for the face with these 5 points in ``image_bgr``."""
        return self.embed_crop(align_points5(points5, ARCFACE_SIZE).crop(image_bgr))


def mean_embedding(embeddings: Sequence[np.ndarray]) -> np.ndarray:
    """The identity's embedding over several photos: the mean of the unit vectors, normalised."""
    if not embeddings:
        raise InputError("no face to embed")
    m = np.mean(np.stack([np.asarray(e, np.float64) for e in embeddings]), axis=0)
    norm = np.linalg.norm(m)
    if norm < 1e-9:
        raise InputError("the photos' embeddings cancel out: they do not look like one person")
    return (m / norm).astype(np.float32)


@dataclass(frozen=True)
class StoredEmbedding:
    model_name: str
    model_sha256: str
    embedding: np.ndarray


def load_recognizer(store: UserModelStore, model: UserModel, device: str = "cpu") -> FaceRecognizer:
    from engines.swap.learned import load_session

    return FaceRecognizer(load_session(model, store.path(model), device), model)


def embed_identity(
    store: UserModelStore,
    identities_root: str | os.PathLike[str],
    name: str,
    photos: Sequence[Any],
    device: str = "cpu",
) -> list[str]:
    """Embed identity ``name``'s enrollment ``photos`` with every registered recogniser; returns the names of
    the recognisers used (none registered: nothing to do, an empty list).

    Call it right after ``IdentityStore.enroll`` with the same photos: the faces are the ones enrollment
    chose (their landmarks are read from the identity), so photos with several faces embed the right one."""
    from engines.face.landmarks import five_points
    from engines.identity.photos import load_photo
    from engines.identity.store import IdentityStore

    recognisers = [m for m in store.list() if m.kind == "arcface"]
    if not recognisers:
        return []
    identity = IdentityStore(Path(identities_root)).load(name)
    by_sha = {sha: i for i, sha in enumerate(identity.info.photo_sha256)}
    faces: list[tuple[np.ndarray, np.ndarray]] = []
    for i, src in enumerate(photos):
        photo = load_photo(src, f"photo {i + 1}")
        index = by_sha.get(photo.sha256)
        if index is None or index >= len(identity.landmarks):
            raise InputError(f"{photo.label} is not one of identity {name!r}'s enrollment photos")
        faces.append((photo.image, five_points(identity.landmarks[index])))
    entries: dict[str, dict[str, Any]] = {}
    for model in recognisers:
        recognizer = load_recognizer(store, model, device)
        emb = mean_embedding([recognizer.embed(img, pts) for img, pts in faces])
        entries[model.sha256] = {"model": model.name, "embedding": [round(float(v), 7) for v in emb]}
    _write_embeddings(
        inside(Path(identities_root), check_name(name, "identity")),
        {
            "format": EMBEDDINGS_FORMAT,
            "version": EMBEDDINGS_VERSION,
            "photo_sha256": list(identity.info.photo_sha256),
            "models": entries,
        },
    )
    return [m.name for m in recognisers]


def identity_embedding(
    store: UserModelStore, identities_root: str | os.PathLike[str], name: str, photo_sha256: Sequence[str]
) -> StoredEmbedding:
    """The identity's embedding from the first registered recogniser it has one for; InputError saying how
    to get one otherwise (register a recogniser, enroll the identity again)."""
    path = inside(Path(identities_root), check_name(name, "identity")) / EMBEDDINGS_FILE
    recognisers = [m for m in store.list() if m.kind == "arcface"]
    fix = f"stageswap identities add {name} PHOTO... --replace"
    if not recognisers:
        raise InputError(
            "inswapper-style models need an ArcFace-style recognition model to know who to swap to: register one "
            f"(stageswap models add FILE --kind arcface), then enroll {name!r} again ({fix})"
        )
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise InputError(
            f"identity {name!r} has no embedding for inswapper-style models; enroll it again: {fix}"
        ) from None
    except (OSError, ValueError) as exc:
        raise InputError(f"identity {name!r}: {EMBEDDINGS_FILE} is unreadable ({exc}); enroll it again: {fix}") from exc
    if not isinstance(obj, dict) or obj.get("format") != EMBEDDINGS_FORMAT or not isinstance(obj.get("models"), dict):
        raise InputError(
            f"identity {name!r}: {EMBEDDINGS_FILE} is not a stageswap embeddings file; enroll it again: {fix}"
        )
    if list(obj.get("photo_sha256", [])) != list(photo_sha256):
        raise InputError(f"identity {name!r} was enrolled again since its embedding was made; enroll it again: {fix}")
    for model in recognisers:
        entry = obj["models"].get(model.sha256)
        if entry is None:
            continue
        try:
            emb = np.asarray(entry["embedding"], dtype=np.float32)
        except (KeyError, TypeError, ValueError):
            emb = np.zeros(0, np.float32)
        if emb.shape != (EMBEDDING_DIM,) or not np.isfinite(emb).all() or np.linalg.norm(emb) < 1e-6:
            raise InputError(f"identity {name!r}: its embedding by {model.name!r} is damaged; enroll it again: {fix}")
        return StoredEmbedding(model.name, model.sha256, emb)
    names = ", ".join(m.name for m in recognisers)
    raise InputError(
        f"identity {name!r} has no embedding by the registered recogniser(s) {names}; enroll it again: {fix}"
    )


def _write_embeddings(directory: Path, obj: dict[str, Any]) -> None:
    try:
        write_atomic(directory / EMBEDDINGS_FILE, json.dumps(obj))
    except OSError as exc:
        raise OutputError(f"cannot write {directory / EMBEDDINGS_FILE}: {exc.strerror or exc}") from exc

"""Whose face a swap puts on the actor (an enrolled identity, or a DFM model's trained-in identity) and its consent.

Consent is about a person's likeness, wherever it comes from. The mesh swap and inswapper-style models swap
in an enrolled identity (``settings.identity``), whose consent record lives beside it
(``streamer.governance.consent``). A DFM has a person's identity trained in and ignores ``settings.identity``: the
likeness is the model itself, whose consent record lives in its ``models.json`` entry
(``engines.swap.user_models``). Everything that marks, checks or logs a swap — the stream JSON, ``PATCH``
checks, the audit log's swap events, recordings' provenance — asks this module what is swapped in, so a
DFM is treated exactly like an identity.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from engines.errors import StageswapError
from engines.swap.user_models import MESH
from streamer.governance.consent import (
    ConsentRecord,
    ConsentStatus,
    consent_summary,
    identity_consent,
    identity_consent_summary,
    model_consent,
)

LikenessKind = Literal["identity", "dfm"]


class ModelLookup(Protocol):
    """What this module needs of ``engines.swap.user_models.UserModelStore``."""

    def get(self, name: str) -> Any: ...


@dataclass(frozen=True)
class Likeness:
    """The person a swap puts on the actor: an enrolled identity, or the identity trained into a DFM model."""

    kind: LikenessKind
    """``dfm`` is what records (audit log, provenance) have always called the likeness of any model with a
    trained-in identity, a DFM or a neural renderer (dnr): kept so that every record reads the same."""
    name: str
    """The identity's name, or the model's registered name."""
    model_kind: str = field(default="dfm", compare=False)
    """The registered kind of a model likeness (``dfm``, ``dnr``): what messages call it."""

    @property
    def subject(self) -> str:
        """The consent subject (``streamer.governance.consent``): ``identity``, or the model's kind."""
        return "identity" if self.kind == "identity" else self.model_kind

    def fields(self) -> dict[str, str]:
        """How the stream JSON and the audit log's swap events name it: ``{"identity": N}`` or ``{"model": N}``."""
        return {"identity": self.name} if self.kind == "identity" else {"model": self.name}


def swapped_in(settings: Any, models: ModelLookup | None) -> Likeness | None:
    """What ``settings`` (``ProcessSettings``, or its dict form from a recording's sidecar) swap in; None: nothing.

    A ``swap_model`` that names a registered likeness model (a DFM or a neural renderer, kind ``"dfm"`` here for
    both: a model's trained-in identity) is the likeness; otherwise the selected identity is (the mesh
    swap, an inswapper-style model). Without ``models``, or when the model cannot be looked up (unknown,
    removed, a damaged index), only the identity is considered.
    """
    swap, identity, model_name = (_setting(settings, key) for key in ("swap", "identity", "swap_model"))
    if not swap:
        return None
    if isinstance(model_name, str) and model_name != MESH and models is not None:
        try:
            model = models.get(model_name)
        except StageswapError:
            model = None
        if model is not None and getattr(model, "is_likeness", False):
            return Likeness("dfm", model_name, str(getattr(model, "kind", "dfm")))
    return Likeness("identity", identity) if isinstance(identity, str) and identity else None


def swapped_in_all(settings: Any, models: ModelLookup | None) -> tuple[Likeness, ...]:
    """Every likeness ``settings`` swap in: with target rules (``settings.targets``), each rule's identity (or the
    DFM, when one is the swap model and some rule swaps a face); without, ``swapped_in``'s one."""
    rules = _setting(settings, "targets") or ()
    if not rules:
        single = swapped_in(settings, models)
        return (single,) if single is not None else ()
    if not _setting(settings, "swap"):
        return ()
    names = [n for n in dict.fromkeys(_setting(r, "identity") for r in rules) if isinstance(n, str) and n]
    model = swapped_in({"swap": True, "identity": None, "swap_model": _setting(settings, "swap_model")}, models)
    if model is not None:  # a DFM puts its own likeness on every face a rule swaps
        return (model,) if names else ()
    return tuple(Likeness("identity", n) for n in names)


def likeness_consent(
    likeness: Likeness, identities_root: str | os.PathLike[str], models: ModelLookup | None
) -> ConsentRecord | None:
    """The consent record on file for ``likeness`` (None: unverified). Raises InputError for an unknown
    model or a damaged record."""
    if likeness.kind == "identity":
        return identity_consent(identities_root, likeness.name)
    if models is None:
        raise ValueError("a DFM model's consent needs the model store")
    return model_consent(models.get(likeness.name))


def likeness_consent_summary(
    likeness: Likeness,
    identities_root: str | os.PathLike[str],
    models: ModelLookup | None,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """``consent_summary`` for ``likeness``; a damaged record or a model no longer registered reads as
    unverified with the ``error``."""
    if likeness.kind == "identity":
        return identity_consent_summary(identities_root, likeness.name, today)
    try:
        return consent_summary(likeness_consent(likeness, identities_root, models), today)
    except (StageswapError, ValueError) as exc:
        return {"status": ConsentStatus.UNVERIFIED.value, "verified": False, "error": str(exc)}


def _setting(settings: Any, key: str) -> Any:
    if isinstance(settings, Mapping):
        return settings.get(key)
    return getattr(settings, key, None)

"""Consent records: who agreed that their likeness may be swapped in, for which production and dates.

A studio must be able to show, for every take, whose likeness was used and with what consent. Each
enrolled identity may carry one ``ConsentRecord``, stored as ``consent.json`` beside the identity's
files (``data_dir/identities/NAME/consent.json``). The signed document itself stays with the studio:
the record holds its sha256 (and its file name), so the document can later be matched to the record
without stageswap ever keeping a copy.

An identity's consent status is one of:

- ``verified``: a record exists and today is within its dates;
- ``unverified``: no record. Enrolling such an identity needs an explicit flag (``--unverified`` /
  ``"allow_unverified": true``) and it is marked unverified wherever it appears;
- ``pending``: a record whose ``valid_from`` is still in the future;
- ``expired``: a record whose ``valid_until`` has passed.

New swaps with a ``pending`` or ``expired`` identity are refused (``check_swap_allowed``); a swap
already running is not cut off mid-take, the worker checks when a swap starts.

A DFM model, like a neural renderer (kind ``dnr``), has a person's identity trained in, so it is a likeness of its
own: it carries the same record (in its ``models.json`` entry, ``engines.swap.user_models``), goes through the
same checks (``subject=`` its kind, which names it in messages), and has the same statuses
(``streamer.governance.likeness`` says what a swap puts on the actor).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from engines.errors import InputError, OutputError
from engines.paths import check_name, inside, write_atomic

if TYPE_CHECKING:
    from engines.swap.user_models import UserModel, UserModelStore

CONSENT_FILE = "consent.json"
RECORD_VERSION = 1
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_NAME = 200
_MAX_NOTE = 2000
_FIELDS = (
    "consent_by",
    "production",
    "valid_from",
    "valid_until",
    "document_sha256",
    "document_name",
    "note",
    "recorded_at",
    "version",
)


class ConsentStatus(enum.StrEnum):
    VERIFIED = "verified"
    UNVERIFIED = "unverified"
    PENDING = "pending"
    EXPIRED = "expired"


class ConsentError(InputError):
    """An identity cannot be used (or enrolled) because of its consent status."""


@dataclass(frozen=True)
class ConsentRecord:
    """One person's consent to the use of their likeness, validated on construction."""

    consent_by: str
    """Who gave consent: the person whose likeness it is, or their legal representative."""
    production: str
    """The production (show, film, campaign) the consent covers."""
    valid_from: dt.date
    valid_until: dt.date | None = None
    """Last day the consent covers (inclusive); None: open-ended."""
    document_sha256: str | None = None
    """sha256 (hex) of the signed consent document; the document itself is never stored."""
    document_name: str | None = None
    """The document's file name, to help find it again in the studio's records."""
    note: str = ""
    recorded_at: dt.datetime | None = None
    """When this record was made (UTC); set by ``create``."""
    version: int = RECORD_VERSION

    def __post_init__(self) -> None:
        _text("consent_by", self.consent_by, _MAX_NAME, required=True)
        _text("production", self.production, _MAX_NAME, required=True)
        _text("note", self.note, _MAX_NOTE, required=False)
        if not isinstance(self.valid_from, dt.date) or isinstance(self.valid_from, dt.datetime):
            raise InputError(f"consent valid_from must be a date, got {self.valid_from!r}")
        if self.valid_until is not None:
            if not isinstance(self.valid_until, dt.date) or isinstance(self.valid_until, dt.datetime):
                raise InputError(f"consent valid_until must be a date, got {self.valid_until!r}")
            if self.valid_until < self.valid_from:
                raise InputError(
                    f"consent valid_until ({self.valid_until.isoformat()}) is before valid_from "
                    f"({self.valid_from.isoformat()})"
                )
        if self.document_sha256 is not None and (
            not isinstance(self.document_sha256, str) or not _SHA256.fullmatch(self.document_sha256)
        ):
            raise InputError(f"consent document_sha256 must be 64 lower-case hex digits, got {self.document_sha256!r}")
        if self.document_name is not None:
            _text("document_name", self.document_name, _MAX_NAME, required=True)
            if "/" in self.document_name or "\\" in self.document_name:
                raise InputError("consent document_name must be a file name, not a path")
        if self.recorded_at is not None and (
            not isinstance(self.recorded_at, dt.datetime) or self.recorded_at.tzinfo is None
        ):
            raise InputError("consent recorded_at must be a timezone-aware datetime")
        if self.version != RECORD_VERSION:
            raise InputError(f"consent record version {self.version!r} is not supported (expected {RECORD_VERSION})")

    @classmethod
    def create(
        cls,
        consent_by: str,
        production: str,
        valid_until: dt.date | str | None,
        valid_from: dt.date | str | None = None,
        document: str | os.PathLike[str] | None = None,
        document_sha256: str | None = None,
        note: str = "",
        now: dt.datetime | None = None,
    ) -> ConsentRecord:
        """A new record from what an operator types: ISO dates, an optional document file to hash.

        ``valid_from`` defaults to today. ``document`` is read only to compute its sha256.
        """
        now = now or dt.datetime.now(dt.UTC)
        name = None
        if document is not None:
            path = Path(document)
            digest = file_sha256(path)
            if document_sha256 is not None and document_sha256.lower() != digest:
                raise InputError(f"document {path} has sha256 {digest}, not the given {document_sha256}")
            document_sha256, name = digest, path.name
        elif document_sha256 is not None and isinstance(document_sha256, str):
            document_sha256 = document_sha256.lower()
        start = _date("valid_from", valid_from) if valid_from is not None else now.date()
        end = _date("valid_until", valid_until) if valid_until is not None else None
        return cls(
            consent_by=consent_by.strip() if isinstance(consent_by, str) else consent_by,
            production=production.strip() if isinstance(production, str) else production,
            valid_from=start,
            valid_until=end,
            document_sha256=document_sha256,
            document_name=name,
            note=note.strip() if isinstance(note, str) else note,
            recorded_at=now.astimezone(dt.UTC).replace(microsecond=0),
        )

    @classmethod
    def from_json(cls, obj: Any) -> ConsentRecord:
        """A record from its JSON form (a consent file, an API body); raises InputError naming the problem."""
        if not isinstance(obj, Mapping):
            raise InputError("consent must be a JSON object")
        unknown = sorted(set(obj) - set(_FIELDS))
        if unknown:
            raise InputError(f"unknown consent field(s): {', '.join(unknown)}; allowed: {', '.join(_FIELDS)}")
        for key in ("consent_by", "production", "valid_from"):
            if key not in obj:
                raise InputError(f"consent is missing {key!r}")
        recorded = obj.get("recorded_at")
        return cls(
            consent_by=obj["consent_by"],
            production=obj["production"],
            valid_from=_date("valid_from", obj["valid_from"]),
            valid_until=_date("valid_until", obj["valid_until"]) if obj.get("valid_until") is not None else None,
            document_sha256=obj.get("document_sha256"),
            document_name=obj.get("document_name"),
            note=obj.get("note", ""),
            recorded_at=_datetime("recorded_at", recorded) if recorded is not None else None,
            version=obj.get("version", RECORD_VERSION),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "consent_by": self.consent_by,
            "production": self.production,
            "valid_from": self.valid_from.isoformat(),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "document_sha256": self.document_sha256,
            "document_name": self.document_name,
            "note": self.note,
            "recorded_at": self.recorded_at.isoformat() if self.recorded_at else None,
        }

    def status(self, today: dt.date | None = None) -> ConsentStatus:
        today = today or dt.date.today()
        if today < self.valid_from:
            return ConsentStatus.PENDING
        if self.valid_until is not None and today > self.valid_until:
            return ConsentStatus.EXPIRED
        return ConsentStatus.VERIFIED


def consent_status(record: ConsentRecord | None, today: dt.date | None = None) -> ConsentStatus:
    return ConsentStatus.UNVERIFIED if record is None else record.status(today)


def consent_summary(record: ConsentRecord | None, today: dt.date | None = None) -> dict[str, Any]:
    """What the API, stats, recordings' sidecars and provenance manifests show about an identity's consent.

    Always has ``status``; ``verified`` is a plain boolean for UIs that only mark unverified use.
    """
    status = consent_status(record, today)
    summary: dict[str, Any] = {"status": status.value, "verified": status is ConsentStatus.VERIFIED}
    if record is not None:
        summary.update(
            consent_by=record.consent_by,
            production=record.production,
            valid_from=record.valid_from.isoformat(),
            valid_until=record.valid_until.isoformat() if record.valid_until else None,
            document_sha256=record.document_sha256,
        )
    return summary


_SUBJECTS = {
    "identity": ("identity", "stageswap identities consent"),
    "dfm": ("DFM model", "stageswap models consent"),
    "dnr": ("neural-renderer (dnr) model", "stageswap models consent"),
}
"""What a record can be about, for messages: (noun, the command that records or renews its consent)."""


def _subject(subject: str) -> tuple[str, str]:
    try:
        return _SUBJECTS[subject]
    except KeyError:
        raise ValueError(f"consent subject must be one of {', '.join(_SUBJECTS)}, got {subject!r}") from None


def check_enrollment(
    name: str,
    record: ConsentRecord | None,
    allow_unverified: bool,
    today: dt.date | None = None,
    subject: str = "identity",
) -> ConsentStatus:
    """Refuse to enroll ``name`` without consent unless explicitly allowed, or with consent already expired.

    ``subject`` is ``"identity"`` (an enrolled identity), or a model kind with a trained-in identity, a likeness
    of its own (``"dfm"``, ``"dnr"``: registered by ``stageswap models add`` or ``train``). Returns the status.
    """
    noun, _ = _subject(subject)
    if record is None and not allow_unverified:
        if subject != "identity":
            raise ConsentError(
                f"{noun} {name!r} has a person's identity trained in and no consent record: give who consented, "
                "the production and the end date (--consent-by NAME --production P --valid-until YYYY-MM-DD "
                "[--document FILE], or --consent FILE.json), or register it explicitly unverified (--unverified); "
                "nothing was registered"
            )
        raise ConsentError(
            f"identity {name!r} has no consent record: give who consented, the production and the end date "
            "(--consent-by NAME --production P --valid-until YYYY-MM-DD [--document FILE], or --consent FILE.json; "
            'API: a "consent" object), or enroll it explicitly unverified (--unverified / "allow_unverified": true)'
        )
    status = consent_status(record, today)
    if record is not None and status is ConsentStatus.EXPIRED:
        until = record.valid_until.isoformat() if record.valid_until else "?"
        raise ConsentError(f"the consent given for {noun} {name!r} already expired on {until}: check its dates")
    return status


def check_swap_allowed(
    name: str, record: ConsentRecord | None, today: dt.date | None = None, subject: str = "identity"
) -> ConsentStatus:
    """Raise ConsentError if a NEW swap with ``name`` must not start; returns its status otherwise.

    Unverified identities (and models with a trained-in identity, ``subject="dfm"`` or ``"dnr"``) were enrolled
    with an explicit flag and may be used (marked unverified); expired or not-yet-valid consent stops new swaps.
    """
    noun, command = _subject(subject)
    today = today or dt.date.today()
    status = consent_status(record, today)
    if record is not None and status is ConsentStatus.EXPIRED:
        until = record.valid_until.isoformat() if record.valid_until else "?"
        raise ConsentError(
            f"consent for {noun} {name!r} (given by {record.consent_by} for {record.production!r}) expired on "
            f"{until}: new swaps with it are refused; record renewed consent with `{command} {name} ...`"
        )
    if record is not None and status is ConsentStatus.PENDING:
        raise ConsentError(
            f"consent for {noun} {name!r} (given by {record.consent_by} for {record.production!r}) is valid "
            f"only from {record.valid_from.isoformat()}: new swaps with it are refused until then (record "
            f"corrected dates with `{command} {name} ...`)"
        )
    return status


def consent_path(identity_dir: str | os.PathLike[str]) -> Path:
    return Path(identity_dir) / CONSENT_FILE


def load_consent(identity_dir: str | os.PathLike[str]) -> ConsentRecord | None:
    """The identity's record, None if it has none; a damaged file is an InputError naming it."""
    path = consent_path(identity_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"consent record {path} cannot be read: {exc.strerror or exc}") from exc
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"consent record {path} is not valid JSON (line {exc.lineno}): {exc.msg}") from exc
    try:
        return ConsentRecord.from_json(obj)
    except InputError as exc:
        raise InputError(f"consent record {path}: {exc}") from exc


def save_consent(identity_dir: str | os.PathLike[str], record: ConsentRecord) -> Path:
    """Write ``consent.json`` atomically (temporary file, fsync, rename) and return its path."""
    directory = Path(identity_dir)
    if not directory.is_dir():
        raise OutputError(f"identity folder {directory} does not exist: enroll the identity first")
    path = consent_path(directory)
    data = json.dumps(record.to_json(), indent=2, sort_keys=True) + "\n"
    try:
        write_atomic(path, data)
    except OSError as exc:
        raise OutputError(f"consent record {path} cannot be written: {exc.strerror or exc}") from exc
    return path


def load_consent_file(path: str | os.PathLike[str]) -> ConsentRecord:
    """A record from a consent JSON file an operator wrote (``--consent FILE``); ``recorded_at`` defaults to now."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"consent file {p} does not exist") from None
    except OSError as exc:
        raise InputError(f"consent file {p} cannot be read: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"consent file {p} is not valid JSON (line {exc.lineno}): {exc.msg}") from exc
    if isinstance(obj, dict) and obj.get("recorded_at") is None:
        obj = {**obj, "recorded_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}
    try:
        return ConsentRecord.from_json(obj)
    except InputError as exc:
        raise InputError(f"consent file {p}: {exc}") from exc


def file_sha256(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    digest = hashlib.sha256()
    try:
        with p.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise InputError(f"document {p} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"document {p} is a folder, not a file") from None
    except OSError as exc:
        raise InputError(f"document {p} cannot be read: {exc.strerror or exc}") from exc
    return digest.hexdigest()


def _text(key: str, value: Any, max_len: int, required: bool) -> None:
    if not isinstance(value, str):
        raise InputError(f"consent {key} must be text, got {value!r}")
    if required and not value.strip():
        raise InputError(f"consent {key} must not be empty")
    if len(value) > max_len:
        raise InputError(f"consent {key} is too long ({len(value)} characters, at most {max_len})")
    if any(ord(c) < 32 and c not in "\n\t" for c in value):
        raise InputError(f"consent {key} contains control characters")


def _date(key: str, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise InputError(f"consent {key} must be a date YYYY-MM-DD, got {value!r}")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise InputError(f"consent {key} must be a date YYYY-MM-DD, got {value!r}") from None


def _datetime(key: str, value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            raise InputError(f"consent {key} must be an ISO 8601 time, got {value!r}") from None
    else:
        raise InputError(f"consent {key} must be an ISO 8601 time, got {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


# -- what the identity store, the CLI and the API call -----------------------------------------------------


class IdentityStoreLike(Protocol):
    """What ``enroll_with_consent`` needs of ``engines.identity.store.IdentityStore``."""

    root: Path

    def exists(self, name: str) -> bool: ...

    def enroll(
        self, name: str, photos: Any, face: Any = None, replace: bool = False, lead_first: bool = False
    ) -> Any: ...


def identity_dir(identities_root: str | os.PathLike[str], name: str) -> Path:
    """``identities_root/name``, the name checked and the path kept inside the root."""
    return inside(Path(identities_root), check_name(name, "identity"))


def identity_consent(identities_root: str | os.PathLike[str], name: str) -> ConsentRecord | None:
    return load_consent(identity_dir(identities_root, name))


def identity_consent_summary(
    identities_root: str | os.PathLike[str], name: str, today: dt.date | None = None
) -> dict[str, Any]:
    """``consent_summary`` for an enrolled identity, read from its folder (a damaged record reads as such)."""
    try:
        return consent_summary(identity_consent(identities_root, name), today)
    except InputError as exc:
        return {"status": ConsentStatus.UNVERIFIED.value, "verified": False, "error": str(exc)}


def enroll_with_consent(
    store: IdentityStoreLike,
    name: str,
    photos: Any,
    consent: ConsentRecord | None,
    allow_unverified: bool,
    face: Any = None,
    replace: bool = False,
    lead_first: bool = False,
) -> tuple[Any, ConsentRecord | None]:
    """Enroll through ``store`` only with consent (or the explicit flag), then store the record beside it.

    Re-enrolling (``replace``) without a new record keeps the one the identity had. Returns the store's
    info and the record now on file (None: the identity is unverified).
    """
    check_name(name, "identity")
    if consent is None and replace and store.exists(name):
        consent = identity_consent(store.root, name)
    check_enrollment(name, consent, allow_unverified)
    lead = {"lead_first": True} if lead_first else {}  # a store without the option still enrolls photos
    info = store.enroll(name, photos, face=face, replace=replace, **lead)
    if consent is not None:
        save_consent(identity_dir(store.root, name), consent)
    return info, consent


def consent_from_fields(fields: Mapping[str, Any]) -> ConsentRecord | None:
    """A record from an API request: a ``consent`` object (or JSON text), or flat fields.

    Flat fields are the CLI's flags: ``consent_by``, ``production``, ``valid_until``, ``valid_from``,
    ``document_sha256``, ``note``. None when none of them is there (the identity would be unverified).
    """
    flat = ("consent_by", "production", "valid_until", "valid_from", "document_sha256", "note")
    given = fields.get("consent")
    if given is not None and any(k in fields for k in flat):
        raise InputError("give consent either as a 'consent' object or as separate fields, not both")
    if isinstance(given, str):
        try:
            given = json.loads(given)
        except json.JSONDecodeError as exc:
            raise InputError(f"consent is not valid JSON: {exc.msg}") from exc
    if given is not None:
        if isinstance(given, Mapping) and given.get("recorded_at") is None:
            given = {**given, "recorded_at": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()}
        return ConsentRecord.from_json(given)
    if not any(fields.get(k) for k in flat):
        return None
    for key in ("consent_by", "production"):
        if not fields.get(key):
            raise InputError(f"consent needs {key!r} as well (who consented, for which production)")
    return ConsentRecord.create(
        consent_by=str(fields["consent_by"]),
        production=str(fields["production"]),
        valid_until=fields.get("valid_until") or None,
        valid_from=fields.get("valid_from") or None,
        document_sha256=fields.get("document_sha256") or None,
        note=str(fields.get("note") or ""),
    )


# -- a DFM model's record (kept in its models.json entry by engines.swap.user_models) -------------------------


def model_consent(model: UserModel) -> ConsentRecord | None:
    """The consent record a DFM model was registered with (None: unverified, or not a DFM); InputError for
    a record the index holds but that does not parse."""
    if not model.is_likeness or model.consent is None:
        return None
    try:
        return ConsentRecord.from_json(model.consent)
    except InputError as exc:
        raise InputError(f"model {model.name!r}: its consent record is damaged: {exc}") from exc


def model_consent_summary(model: UserModel, today: dt.date | None = None) -> dict[str, Any] | None:
    """``consent_summary`` of a DFM's record (a damaged one reads as unverified with the error); None for
    the other kinds, which carry no likeness of their own."""
    if not model.is_likeness:
        return None
    try:
        return consent_summary(model_consent(model), today)
    except InputError as exc:
        return {"status": ConsentStatus.UNVERIFIED.value, "verified": False, "error": str(exc)}


def likeness_approval(allow_unverified: bool) -> Callable[[str, Mapping[str, Any] | None, str], None]:
    """The consent decision ``UserModelStore.add(approve_likeness=...)`` asks for before it registers a model with
    a trained-in identity (DFM, dnr): a record, or the explicit ``--unverified`` flag, and never one that already
    expired (ConsentError)."""

    def approve(name: str, record: Mapping[str, Any] | None, kind: str) -> None:
        parsed = ConsentRecord.from_json(record) if record is not None else None
        check_enrollment(name, parsed, allow_unverified, subject=kind)

    return approve


def add_model(
    store: UserModelStore, source: Any, consent: ConsentRecord | None = None, unverified: bool = False, **kwargs: Any
) -> UserModel:
    """Register a model through ``store`` with the consent decision a DFM needs (``likeness_approval``)."""
    return store.add(
        source,
        consent=consent.to_json() if consent is not None else None,
        unverified=unverified,
        approve_likeness=likeness_approval(unverified),
        **kwargs,
    )


def set_model_consent(store: UserModelStore, name: str, record: ConsentRecord) -> UserModel:
    """Record (or renew) a DFM's consent in its ``models.json`` entry."""
    return store.set_consent(name, record.to_json())

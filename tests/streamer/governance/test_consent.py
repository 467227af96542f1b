"""Consent records: validation, storage beside an identity, status over time, and the checks that
refuse enrolment without consent and new swaps with expired consent."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import pytest

from engines.errors import InputError, OutputError
from streamer.governance.consent import (
    CONSENT_FILE,
    ConsentError,
    ConsentRecord,
    ConsentStatus,
    check_enrollment,
    check_swap_allowed,
    consent_from_fields,
    consent_status,
    consent_summary,
    enroll_with_consent,
    identity_consent,
    identity_consent_summary,
    load_consent,
    load_consent_file,
    save_consent,
)

NOW = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)


def record(**overrides: object) -> ConsentRecord:
    args: dict = {
        "consent_by": "Alice Example",
        "production": "Night Shift S2",
        "valid_until": "2025-12-31",
        "now": NOW,
    }
    args.update(overrides)
    return ConsentRecord.create(**args)  # type: ignore[arg-type]


def test_create_hashes_the_document_and_never_keeps_it(faces: Path, tmp_path: Path) -> None:
    doc = faces / "t1.jpg"  # any real file stands in for the signed PDF
    rec = record(document=doc)
    assert rec.document_sha256 == hashlib.sha256(doc.read_bytes()).hexdigest()
    assert rec.document_name == "t1.jpg"
    assert rec.valid_from == NOW.date() and rec.valid_until == dt.date(2025, 12, 31)
    ident = tmp_path / "identities" / "alice"
    ident.mkdir(parents=True)
    path = save_consent(ident, rec)
    assert path == ident / CONSENT_FILE
    assert sorted(p.name for p in ident.iterdir()) == [CONSENT_FILE]  # the document is not copied
    assert doc.read_bytes()[:64] not in path.read_bytes()
    assert load_consent(ident) == rec


def test_document_hash_given_directly_or_mismatching(faces: Path) -> None:
    digest = hashlib.sha256(b"signed").hexdigest()
    assert record(document_sha256=digest.upper()).document_sha256 == digest
    with pytest.raises(InputError, match="not the given"):
        record(document=faces / "t1.jpg", document_sha256=digest)


def test_status_over_time() -> None:
    rec = record(valid_from="2025-07-01")
    assert rec.status(dt.date(2025, 6, 30)) is ConsentStatus.PENDING
    assert rec.status(dt.date(2025, 7, 1)) is ConsentStatus.VERIFIED
    assert rec.status(dt.date(2025, 12, 31)) is ConsentStatus.VERIFIED  # the last day is covered
    assert rec.status(dt.date(2026, 1, 1)) is ConsentStatus.EXPIRED
    assert consent_status(None) is ConsentStatus.UNVERIFIED
    assert record(valid_until=None).status(dt.date(2099, 1, 1)) is ConsentStatus.VERIFIED


def test_summary_marks_unverified_and_carries_the_reference() -> None:
    assert consent_summary(None) == {"status": "unverified", "verified": False}
    summary = consent_summary(record(document_sha256="ab" * 32), dt.date(2025, 6, 2))
    assert summary["status"] == "verified" and summary["verified"] is True
    assert summary["consent_by"] == "Alice Example" and summary["document_sha256"] == "ab" * 32
    assert consent_summary(record(), dt.date(2026, 1, 1))["status"] == "expired"


def test_enrolling_without_consent_is_refused_unless_flagged() -> None:
    with pytest.raises(ConsentError, match="no consent record.*--unverified"):
        check_enrollment("alice", None, allow_unverified=False)
    assert check_enrollment("alice", None, allow_unverified=True) is ConsentStatus.UNVERIFIED
    june = dt.date(2025, 6, 2)
    assert check_enrollment("alice", record(), allow_unverified=False, today=june) is ConsentStatus.VERIFIED
    with pytest.raises(ConsentError, match="already expired on 2025-12-31"):
        check_enrollment("alice", record(), allow_unverified=False, today=dt.date(2026, 1, 1))


def test_expired_consent_blocks_a_new_swap_with_a_clear_message() -> None:
    rec = record()
    assert check_swap_allowed("alice", rec, dt.date(2025, 12, 31)) is ConsentStatus.VERIFIED
    with pytest.raises(ConsentError, match=r"expired on 2025-12-31.*stageswap identities consent alice"):
        check_swap_allowed("alice", rec, dt.date(2026, 1, 1))
    with pytest.raises(ConsentError, match="valid only from 2025-07-01"):
        check_swap_allowed("alice", record(valid_from="2025-07-01"), dt.date(2025, 6, 15))
    # unverified identities were enrolled explicitly: usable, and marked as such
    assert check_swap_allowed("bob", None) is ConsentStatus.UNVERIFIED


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"consent_by": "  "}, "consent_by must not be empty"),
        ({"production": ""}, "production must not be empty"),
        ({"consent_by": "x" * 201}, "too long"),
        ({"valid_until": "31/12/2025"}, "YYYY-MM-DD"),
        ({"valid_until": "2025-02-30"}, "YYYY-MM-DD"),
        ({"valid_from": "2025-07-01", "valid_until": "2025-06-30"}, "before valid_from"),
        ({"document_sha256": "abc"}, "64 lower-case hex"),
        ({"note": "a\x00b"}, "control characters"),
    ],
)
def test_invalid_records_are_refused_with_the_reason(overrides: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        record(**overrides)


def test_document_that_is_missing_or_a_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        record(document=tmp_path / "nope.pdf")
    with pytest.raises(InputError, match="folder"):
        record(document=tmp_path)


def test_json_round_trip_and_unknown_fields() -> None:
    rec = record(note="signed at the studio", document_sha256="cd" * 32)
    assert ConsentRecord.from_json(json.loads(json.dumps(rec.to_json()))) == rec
    with pytest.raises(InputError, match="unknown consent field"):
        ConsentRecord.from_json({**rec.to_json(), "document": "base64..."})
    with pytest.raises(InputError, match="missing 'production'"):
        ConsentRecord.from_json({"consent_by": "A", "valid_from": "2025-01-01"})
    with pytest.raises(InputError, match="JSON object"):
        ConsentRecord.from_json(["not", "an", "object"])


def test_consent_file_from_an_operator(tmp_path: Path) -> None:
    f = tmp_path / "alice-consent.json"
    f.write_text(json.dumps({"consent_by": "Alice", "production": "Pilot", "valid_from": "2025-01-01"}))
    rec = load_consent_file(f)
    assert rec.recorded_at is not None and rec.valid_until is None
    f.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_consent_file(f)
    with pytest.raises(InputError, match="does not exist"):
        load_consent_file(tmp_path / "missing.json")


def test_damaged_stored_record_names_the_file(tmp_path: Path) -> None:
    ident = tmp_path / "alice"
    ident.mkdir()
    assert load_consent(ident) is None
    (ident / CONSENT_FILE).write_text('{"consent_by": "A"}')
    with pytest.raises(InputError, match=r"consent\.json.*missing"):
        load_consent(ident)
    with pytest.raises(OutputError, match="enroll the identity first"):
        save_consent(tmp_path / "nobody", record())


def test_saving_again_replaces_atomically(tmp_path: Path) -> None:
    ident = tmp_path / "alice"
    ident.mkdir()
    save_consent(ident, record())
    renewed = record(valid_until="2026-12-31")
    save_consent(ident, renewed)
    assert load_consent(ident) == renewed
    assert [p.name for p in ident.iterdir()] == [CONSENT_FILE]  # no temporary files left behind


class _Store:
    """Stands in for engines.identity.store.IdentityStore: records what it is asked to enroll (isolates the wrapper)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.enrolled: list[tuple[str, bool]] = []

    def exists(self, name: str) -> bool:
        return (self.root / name).is_dir()

    def enroll(self, name: str, photos: object, face: object = None, replace: bool = False) -> str:
        (self.root / name).mkdir(parents=True, exist_ok=replace)
        for stale in (self.root / name).iterdir():  # like the real store, re-enrolling replaces the folder
            stale.unlink()
        self.enrolled.append((name, replace))
        return f"info:{name}"


def test_enroll_with_consent_refuses_first_and_keeps_the_record_on_re_enrollment(tmp_path: Path) -> None:
    store = _Store(tmp_path / "identities")
    with pytest.raises(ConsentError, match="no consent record"):
        enroll_with_consent(store, "alice", ["photo"], None, allow_unverified=False)
    assert store.enrolled == []  # refused before anything was enrolled
    rec = record(valid_until="2099-12-31")
    info, kept = enroll_with_consent(store, "alice", ["photo"], rec, allow_unverified=False)
    assert info == "info:alice" and kept == rec and identity_consent(store.root, "alice") == rec
    info, kept = enroll_with_consent(store, "alice", ["photo"], None, allow_unverified=False, replace=True)
    assert kept == rec and identity_consent(store.root, "alice") == rec  # new photos, same consent
    _, kept = enroll_with_consent(store, "bob", ["photo"], None, allow_unverified=True)
    assert kept is None and identity_consent_summary(store.root, "bob")["status"] == "unverified"


def test_consent_from_api_fields() -> None:
    assert consent_from_fields({"name": "alice"}) is None
    rec = consent_from_fields({"consent_by": "Alice", "production": "Pilot", "valid_until": "2099-01-31"})
    assert rec is not None and rec.valid_until == dt.date(2099, 1, 31) and rec.recorded_at is not None
    as_json = json.dumps({"consent_by": "Alice", "production": "Pilot", "valid_from": "2025-01-01"})
    rec = consent_from_fields({"consent": as_json})
    assert rec is not None and rec.recorded_at is not None
    with pytest.raises(InputError, match="'production' as well"):
        consent_from_fields({"consent_by": "Alice"})
    with pytest.raises(InputError, match="not both"):
        consent_from_fields({"consent": as_json, "production": "Other"})
    with pytest.raises(InputError, match="not valid JSON"):
        consent_from_fields({"consent": "{oops"})
    with pytest.raises(InputError, match="invalid identity"):
        identity_consent(Path("/tmp"), "../etc")


def test_cli_consent_flags(tmp_path: Path, faces: Path) -> None:
    import argparse

    from streamer.commands import add_consent_args, consent_from_args

    parser = argparse.ArgumentParser()
    add_consent_args(parser)
    args = parser.parse_args(
        [
            "--consent-by",
            "Alice",
            "--production",
            "Pilot",
            "--valid-until",
            "2099-12-31",
            "--document",
            str(faces / "t1.jpg"),
        ]
    )
    rec = consent_from_args(args)
    assert rec is not None and rec.document_name == "t1.jpg" and rec.valid_until == dt.date(2099, 12, 31)
    assert consent_from_args(parser.parse_args(["--unverified"])) is None
    with pytest.raises(InputError, match="--production as well"):
        consent_from_args(parser.parse_args(["--consent-by", "Alice"]))
    f = tmp_path / "c.json"
    f.write_text(json.dumps({"consent_by": "A", "production": "P", "valid_from": "2025-01-01"}))
    assert consent_from_args(parser.parse_args(["--consent", str(f)])) is not None
    with pytest.raises(InputError, match="not both"):
        consent_from_args(parser.parse_args(["--consent", str(f), "--production", "P"]))

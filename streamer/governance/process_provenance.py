"""Provenance for `stageswap process` outputs: signed like live recordings, with the data directory's keys.

A processed file is as much a synthetic likeness as a recording is, so it carries the same C2PA manifest
(``streamer.governance.provenance.sign_recording``: embedded in MP4/MOV, a ``.c2pa`` sidecar beside MKV) stating
who was swapped in and their consent, the invisible watermark's id and mark and the input it was made from, and
``stageswap verify OUT`` validates it. The run is also written to the audit log (``process.signed``),
so the log anchors the manifest as it does for recordings.

Without credentials (``stageswap keys init`` or ``$STAGESWAP_SIGNING_CERT``/``KEY``) the output is left
unsigned and the reason is returned, never an error: the file itself is fine.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.errors import StageswapError
from streamer.governance.audit import AuditLog, read_head
from streamer.governance.likeness import ModelLookup, likeness_consent_summary, swapped_in_all
from streamer.governance.provenance import IdentityUse, ProvenanceFacts, sign_recording, signing_config, utc_now

log = logging.getLogger(__name__)

PROCESS_SIGNED = "process.signed"
"""Audit log event: a `stageswap process` output was signed (or could not be: ``signed`` false, ``reason``)."""


@dataclass(frozen=True)
class ProcessedFile:
    """What a `process` run made, as its manifest states it."""

    output: Path
    input: Path
    settings: Any
    """The run's ``ProcessSettings``."""
    watermark_id: str | None
    unverified_photo: str | None = None
    """The photo's file name when ``--identity PHOTO --unverified`` swapped in a person with no consent record."""
    targets: tuple[dict[str, Any], ...] = ()
    """With target rules: which identity went on which face (and performer), from the run's stats."""
    watermark_mark: str | None = None
    """Which mark carries ``watermark_id`` (``--watermark-mark``: standard, quiet, ...: the stats'
    ``watermark_mark``)."""


def sign_processed(
    done: ProcessedFile,
    data_dir: Path,
    models: ModelLookup | None = None,
    started_utc: str | None = None,
    cert: Path | None = None,
    key: Path | None = None,
) -> dict[str, Any]:
    """Sign ``done.output`` (with ``cert``/``key`` when given, else as ``signing_config`` finds credentials);
    returns ``{"signed": True, "manifest", "label", ...}`` or ``{"signed": False, "reason"}``. The audit log in
    ``data_dir`` gets a ``process.signed`` entry either way."""
    audit = AuditLog.in_data_dir(data_dir)
    identities = _identities(done, data_dir, models)
    head = read_head(audit.path) if audit.path.exists() else None
    run_id = "process-" + _sha256(done.output)[:16]
    facts = ProvenanceFacts(
        recording_id=run_id,
        created_at=started_utc or utc_now(),
        identities=identities,
        watermark_id=done.watermark_id,
        watermark_mark=done.watermark_mark,
        audit_head={"seq": head[0], "sha256": head[1]} if head else None,
        view="processed",
        extra={
            "command": "stageswap process",
            "input": done.input.name,
            "output": done.output.name,
            **({"targets": list(done.targets)} if done.targets else {}),
        },
    )
    try:
        signing = signing_config(data_dir, cert, key)
        result: dict[str, Any] = {"signed": True, **sign_recording(done.output, facts, signing).to_dict()}
    except StageswapError as exc:
        result = {"signed": False, "reason": str(exc)}
    try:
        audit.append(
            PROCESS_SIGNED,
            {
                "id": run_id,
                "input": str(done.input),
                "output": str(done.output),
                "identities": [{**u.to_dict(), "consent": u.consent.get("status")} for u in identities],
                "watermark_id": done.watermark_id,
                "watermark_mark": facts.to_dict()["watermark_mark"],  # the mark's name, or unmarked
                **result,
            },
        )
    except Exception:  # the file is made and signed; a log that cannot be written is reported, not fatal
        log.exception("AUDIT LOG NOT WRITTEN: process output %s", done.output)
    return result


def _identities(done: ProcessedFile, data_dir: Path, models: ModelLookup | None) -> tuple[IdentityUse, ...]:
    if done.unverified_photo is not None:
        consent = {"status": "unverified", "verified": False, "photo": done.unverified_photo}
        return (IdentityUse(done.unverified_photo, consent),)
    return tuple(
        IdentityUse(likeness.name, likeness_consent_summary(likeness, data_dir / "identities", models), likeness.kind)
        for likeness in swapped_in_all(done.settings, models)
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

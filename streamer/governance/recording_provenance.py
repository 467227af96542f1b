"""The recorder's post-finalise hook: sign every finished recording and write down who and what it shows.

When a recording is finalised (files closed, sidecar final), ``RecordingSigner.on_finished``:

1. works out which likenesses were swapped in during it — enrolled identities and DFM models' trained-in
   identities (``streamer.governance.likeness``): the one its settings started with, and every ``swap.started`` on its
   stream that the audit log holds between its start and its end — with their consent summaries;
2. signs each file with a C2PA manifest (``streamer.governance.provenance.sign_recording``): the processed view
   as synthetic, the source view as the camera's capture;
3. adds the same facts to the sidecar JSON (``provenance`` per view, ``c2pa`` per view,
   ``consent_unverified``), so the sidecar and the manifests can be checked against each other;
4. appends ``recording.finished`` and ``recording.signed`` to the audit log.

Without signing credentials (``stageswap keys init``, ``$STAGESWAP_SIGNING_CERT``/``KEY``) the files are
left unsigned, and the sidecar and the audit log say so. ``streamer.api.recording.register_signing`` wires it
into the live service after the recording routes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engines.errors import StageswapError
from engines.paths import write_atomic
from streamer.governance.audit import (
    RECORDING_FINISHED,
    RECORDING_SIGNED,
    RECORDING_STARTED,
    SWAP_STARTED,
    AuditLog,
    read_head,
)
from streamer.governance.likeness import Likeness, ModelLookup, likeness_consent_summary, swapped_in_all
from streamer.governance.provenance import (
    IdentityUse,
    ProvenanceFacts,
    SigningConfig,
    sign_recording,
    signing_config,
    utc_now,
)

log = logging.getLogger(__name__)

Record = Callable[..., None]
"""``record(event, **data)``: appends to the audit log (``Service.record``)."""


class RecordingSigner:
    """Signs finished recordings; one per service. ``on_finished`` runs on the thread that stopped it."""

    def __init__(
        self,
        data_dir: Path,
        audit: AuditLog,
        record: Record,
        operator: str | None,
        signing: SigningConfig | None,
        unsigned_reason: str = "",
        models: ModelLookup | None = None,
    ) -> None:
        self.identities_root = Path(data_dir) / "identities"
        if models is None:
            from engines.swap.user_models import UserModelStore

            models = UserModelStore(data_dir)
        self.models: ModelLookup = models
        """The registered models: a DFM swapped in is a likeness whose consent the recording states."""
        self.audit = audit
        self.record = record
        self.operator = operator
        self.signing = signing
        self.unsigned_reason = unsigned_reason
        self._watermarks: dict[str, tuple[str | None, str | None]] = {}
        """Per recording started: its processed view's watermark id and the mark carrying it (None: unmarked)."""

    @classmethod
    def for_data_dir(
        cls,
        data_dir: Path,
        audit: AuditLog,
        record: Record,
        operator: str | None,
        models: ModelLookup | None = None,
        cert: Path | None = None,
        key: Path | None = None,
    ) -> RecordingSigner:
        """The signer with the operator's credentials (``cert``/``key``: ``--signing-cert/--signing-key``), else
        the environment's or the data directory's; without any, recordings are marked unsigned (and why)."""
        try:
            signing: SigningConfig | None = signing_config(data_dir, cert, key)
            reason = ""
        except StageswapError as exc:
            signing, reason = None, str(exc)
            log.warning("recordings will NOT carry a signed provenance manifest: %s", reason)
        return cls(data_dir, audit, record, operator, signing, reason, models)

    def on_started(self, recording: Mapping[str, Any], watermark_id: str | None) -> None:
        """A recording started: remember its stream's watermark id and the mark carrying it, and log them."""
        rec_id = str(recording.get("id"))
        mark = recording.get("watermark_mark") if watermark_id is not None else None
        self._watermarks[rec_id] = (watermark_id, mark if isinstance(mark, str) else None)
        self.record(
            RECORDING_STARTED,
            recording=rec_id,
            stream=recording.get("stream"),
            files=recording.get("files"),
            watermark_id=watermark_id,
            watermark_marks=recording.get("watermark_marks"),  # per view: the mark's name, or unmarked
        )

    def on_finished(self, finished: Any) -> None:
        """The finalise hook (``RecordingManager.add_finalise_hook``): sign, update the sidecar, audit."""
        summary: Mapping[str, Any] = finished.summary
        stream = str(summary.get("stream"))
        identities = self.identities_used(stream, summary)
        targets = (summary.get("settings") or {}).get("targets") or []  # which identity goes on which performer
        watermark, mark = self._watermarks.pop(finished.id, (None, None))
        head = read_head(self.audit.path) if self.audit.path.exists() else None
        created = str(summary.get("first_frame_utc") or summary.get("start_utc") or utc_now())
        facts: dict[str, ProvenanceFacts] = {}
        c2pa: dict[str, dict[str, Any]] = {}
        for view, path in finished.files.items():
            facts[view] = ProvenanceFacts(
                recording_id=finished.id,
                created_at=created,
                identities=identities if view == "processed" else (),
                stream=stream,
                operator=self.operator,
                watermark_id=watermark if view == "processed" else None,
                watermark_mark=mark if view == "processed" else None,  # the source view: stated unmarked
                audit_head={"seq": head[0], "sha256": head[1]} if head else None,
                view=view,
                extra={"targets": targets} if targets and view == "processed" else {},
            )
            c2pa[view] = self._sign(Path(path), facts[view])
        self._update_sidecar(finished.sidecar, facts, c2pa)
        self.record(
            RECORDING_FINISHED,
            recording=finished.id,
            stream=stream,
            state=summary.get("state"),
            frames_written=summary.get("frames_written"),
            identities=[{**u.to_dict(), "consent": u.consent.get("status")} for u in identities],
        )
        self.record(
            RECORDING_SIGNED,
            recording=finished.id,
            signed={view: result.get("signed", False) for view, result in c2pa.items()},
            manifests={view: result.get("label") for view, result in c2pa.items()},
            reason=next((r.get("reason") for r in c2pa.values() if not r.get("signed")), None),
        )

    def identities_used(self, stream: str, summary: Mapping[str, Any]) -> tuple[IdentityUse, ...]:
        """The likenesses swapped in on ``stream`` while the recording ran (enrolled identities and DFM models),
        with their consent now."""
        used: list[Likeness] = []
        used.extend(swapped_in_all(summary.get("settings") or {}, self.models))  # with target rules: each one's
        start, end = _time(summary.get("start_utc")), _time(summary.get("end_utc"))
        if start is not None:
            for entry in self.audit.entries():
                if entry.event != SWAP_STARTED or entry.data.get("stream") != stream:
                    continue
                moment = _time(entry.time)
                if moment is None or moment < start or (end is not None and moment > end):
                    continue
                if isinstance(entry.data.get("model"), str):
                    used.append(Likeness("dfm", entry.data["model"]))
                elif isinstance(entry.data.get("identity"), str):
                    used.append(Likeness("identity", entry.data["identity"]))
        unique = list(dict.fromkeys(u for u in used if u.name and u.name != "None"))
        return tuple(
            IdentityUse(u.name, likeness_consent_summary(u, self.identities_root, self.models), kind=u.kind)
            for u in unique
        )

    def _sign(self, path: Path, facts: ProvenanceFacts) -> dict[str, Any]:
        if self.signing is None:
            return {"signed": False, "reason": self.unsigned_reason}
        if not path.is_file() or path.stat().st_size == 0:
            return {"signed": False, "reason": f"{path.name} is missing or empty"}
        try:
            result = sign_recording(path, facts, self.signing)
        except StageswapError as exc:
            log.error("recording %s not signed: %s", path, exc)
            return {"signed": False, "reason": str(exc)}
        return {"signed": True, **result.to_dict()}

    def _update_sidecar(
        self, sidecar: Path, facts: Mapping[str, ProvenanceFacts], c2pa: Mapping[str, Mapping[str, Any]]
    ) -> None:
        try:
            data = json.loads(Path(sidecar).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.error("cannot read the sidecar %s to add provenance: %s", sidecar, exc)
            return
        data["provenance"] = {view: f.to_dict() for view, f in facts.items()}
        data["c2pa"] = {view: dict(result) for view, result in c2pa.items()}
        data["consent_unverified"] = any(f.unverified for f in facts.values())
        data["watermark_id"] = next((f.watermark_id for f in facts.values() if f.watermark_id), None)
        data["watermark_marks"] = {view: f.to_dict()["watermark_mark"] for view, f in facts.items()}
        try:
            write_atomic(Path(sidecar), json.dumps(data, indent=2) + "\n", mode=0o644)
        except OSError as exc:
            log.error("cannot write provenance into the sidecar %s: %s", sidecar, exc)


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

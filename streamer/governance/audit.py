"""An append-only audit log whose every line is chained to the one before it.

Studios must be able to show who enrolled which likeness, with what consent, and when it was swapped
in and recorded. Each event is one JSON line in ``data_dir/audit/audit.jsonl``::

    {"data": {...}, "event": "swap.started", "prev": "<sha256 of the previous line>", "seq": 7, "time": "..."}

``prev`` is the sha256 of the previous line's bytes (64 zeros for the first), so editing, inserting,
reordering or deleting any line breaks the chain at the line after it, and ``stageswap audit verify``
names that line. Deleting lines at the *end* leaves an intact chain, so the log keeps a head record
beside it (``audit.jsonl.head``: the last line's number and hash), and verify checks that the log
reaches it. (A hash chain shows accidental or careless edits; someone who rewrites the whole chain
and the head defeats it — recordings' signed provenance carries the head at signing time as an
anchor outside the log.)

Appends are serialised by a lock within the process and an ``flock`` across processes, and each
line is fsync'd before the head moves.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engines.errors import InputError, OutputError
from engines.paths import write_atomic
from streamer.governance.likeness import Likeness

AUDIT_DIR = "audit"
AUDIT_FILE = "audit.jsonl"
HEAD_SUFFIX = ".head"
GENESIS = "0" * 64
_EVENT = re.compile(r"[a-z][a-z_]*(\.[a-z][a-z_]*)+")
_TAIL_CHUNK = 64 * 1024
_KEYS = {"seq", "time", "event", "data", "prev"}
_PREV_MISMATCH = "its 'prev' hash does not match the line before it (it was edited)"

# The events stageswap writes; other dotted lower-case names are accepted for extensions.
IDENTITY_ENROLLED = "identity.enrolled"
IDENTITY_REMOVED = "identity.removed"
CONSENT_RECORDED = "consent.recorded"
MODEL_REGISTERED = "model.registered"
MODEL_REMOVED = "model.removed"
SWAP_STARTED = "swap.started"
SWAP_STOPPED = "swap.stopped"
SWAP_REFUSED = "swap.refused"
TARGETS_CHANGED = "targets.changed"
"""A stream's target rules (who gets which identity) changed: the rules before and after."""
PERFORMER_ENROLLED = "performer.enrolled"
PERFORMER_REMOVED = "performer.removed"
RECORDING_STARTED = "recording.started"
RECORDING_FINISHED = "recording.finished"
RECORDING_SIGNED = "recording.signed"


def audit_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / AUDIT_DIR / AUDIT_FILE


def token_id(token: str | None) -> str | None:
    """A stable, non-reversible name for an API token, for logs and manifests (never the token itself)."""
    if not token:
        return None
    return "tok-" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def line_hash(line: bytes) -> str:
    """The hash that chains a line: sha256 of its bytes without the newline."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: str
    event: str
    data: dict[str, Any]
    prev: str
    sha256: str
    """Hash of this entry's line (what the next line's ``prev`` must be)."""


@dataclass(frozen=True)
class AuditReport:
    ok: bool
    lines: int
    """Lines that verified (all of them when ``ok``)."""
    bad_line: int | None = None
    """1-based number of the first line that fails, or that is missing."""
    reason: str = ""

    def message(self, path: Path) -> str:
        if self.ok:
            return f"audit log {path}: OK, {self.lines} line(s), hash chain intact"
        where = f"line {self.bad_line}" if self.bad_line is not None else "head record"
        return f"audit log {path}: BROKEN at {where}: {self.reason}"


class AuditLog:
    """Appends chained events to one log file; safe for concurrent appends."""

    def __init__(self, path: str | os.PathLike[str], clock: Callable[[], dt.datetime] | None = None) -> None:
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + HEAD_SUFFIX)
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._lock = threading.Lock()

    @classmethod
    def in_data_dir(cls, data_dir: str | os.PathLike[str]) -> AuditLog:
        return cls(audit_path(data_dir))

    def append(self, event: str, data: Mapping[str, Any] | None = None, **fields: Any) -> AuditEntry:
        """Append one event (``data`` and keyword fields merged) and return it; raises OutputError if it cannot."""
        if not isinstance(event, str) or not _EVENT.fullmatch(event):
            raise InputError(f"audit event must be a dotted lower-case name like 'swap.started', got {event!r}")
        payload = {**(data or {}), **fields}
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("ab+") as fh:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                    try:
                        seq, prev = self._tail(fh)
                        line = _encode(
                            {
                                "seq": seq + 1,
                                "time": self._clock().astimezone(dt.UTC).isoformat(timespec="milliseconds"),
                                "event": event,
                                "data": payload,
                                "prev": prev,
                            }
                        )
                        fh.write(line + b"\n")
                        fh.flush()
                        os.fsync(fh.fileno())
                        digest = line_hash(line)
                        self._write_head(seq + 1, digest)
                    finally:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            except OSError as exc:
                raise OutputError(f"audit log {self.path} cannot be written: {exc.strerror or exc}") from exc
        entry = json.loads(line)
        return AuditEntry(entry["seq"], entry["time"], event, entry["data"], prev, digest)

    def entries(self) -> Iterator[AuditEntry]:
        """Every entry, in order (for display; use ``verify_log`` to check the chain)."""
        try:
            fh = self.path.open("rb")
        except FileNotFoundError:
            return
        with fh:
            for n, raw in enumerate(fh, start=1):
                try:
                    obj = json.loads(raw)
                    entry = AuditEntry(obj["seq"], obj["time"], obj["event"], obj["data"], obj["prev"], line_hash(raw))
                except (ValueError, KeyError, TypeError) as exc:
                    raise InputError(f"audit log {self.path} line {n} is not an entry ({exc!r}); run verify") from exc
                yield entry

    def _tail(self, fh: Any) -> tuple[int, str]:
        """(seq, hash) of the last line; (0, GENESIS) for an empty log. A torn last line is an error."""
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return 0, GENESIS
        start = size
        buf = b""
        while start > 0:
            step = min(_TAIL_CHUNK, start)
            start -= step
            fh.seek(start)
            buf = fh.read(step) + buf
            if buf.count(b"\n") >= 2 or start == 0:
                break
        if not buf.endswith(b"\n"):
            raise OutputError(
                f"audit log {self.path} ends with an incomplete line (interrupted write?): "
                "run `stageswap audit verify` and repair it before new events can be appended"
            )
        last = buf[:-1].rsplit(b"\n", 1)[-1]
        try:
            seq = int(json.loads(last)["seq"])
        except (ValueError, KeyError, TypeError) as exc:
            raise OutputError(
                f"audit log {self.path}: the last line is not a valid entry ({exc}); run `stageswap audit verify`"
            ) from exc
        return seq, line_hash(last)

    def _write_head(self, seq: int, digest: str) -> None:
        data = json.dumps({"seq": seq, "sha256": digest}).encode() + b"\n"
        write_atomic(self.head_path, data)


def read_head(log_path: str | os.PathLike[str]) -> tuple[int, str] | None:
    """The head record (last line number, its hash) beside ``log_path``, None if there is none."""
    path = Path(log_path)
    head = path.with_name(path.name + HEAD_SUFFIX)
    try:
        obj = json.loads(head.read_text(encoding="utf-8"))
        return int(obj["seq"]), str(obj["sha256"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"audit head record {head} is damaged: {exc}") from exc


def verify_log(path: str | os.PathLike[str]) -> AuditReport:
    """Check every line's JSON, number and chain, and that the log reaches its head record."""
    log_path = Path(path)
    try:
        fh = log_path.open("rb")
    except FileNotFoundError:
        raise InputError(f"audit log {log_path} does not exist") from None
    except OSError as exc:
        raise InputError(f"audit log {log_path} cannot be read: {exc.strerror or exc}") from exc
    prev = GENESIS
    n = 0
    with fh:
        for n, raw in enumerate(fh, start=1):  # noqa: B007 - n is used after the loop
            problem = _check_line(raw, n, prev)
            if problem == _PREV_MISMATCH and n > 1:
                # The chain breaks between n-1 and n while the numbering is intact: line n-1 was changed.
                reason = (
                    f"line {n - 1} was changed after it was written: its hash no longer matches the 'prev' "
                    f"recorded in line {n} (or line {n}'s 'prev' was edited)"
                )
                return AuditReport(False, n - 2, n - 1, reason)
            if problem:
                return AuditReport(False, n - 1, n, problem)
            prev = line_hash(raw)
    head = read_head(log_path)
    if head is None:
        if n == 0:
            return AuditReport(True, 0)
        return AuditReport(
            False, n, None, "the head record is missing, so lines deleted at the end cannot be ruled out"
        )
    head_seq, head_hash = head
    if n < head_seq:
        return AuditReport(
            False, n, n + 1, f"line {n + 1} is missing: the log ends after line {n} but the head records {head_seq}"
        )
    if n > head_seq:
        return AuditReport(
            False, head_seq, head_seq + 1, f"line {head_seq + 1} and after are not covered by the head record"
        )
    if n and prev != head_hash:
        return AuditReport(
            False, n - 1, n, f"line {n} was changed after it was written: it no longer matches the head record"
        )
    return AuditReport(True, n)


def _check_line(raw: bytes, n: int, prev: str) -> str:
    if not raw.endswith(b"\n"):
        return "incomplete line (no newline): the write was interrupted or the line was cut"
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(obj, dict) or set(obj) != _KEYS:
        return f"not an audit entry (expected the keys {', '.join(sorted(_KEYS))})"
    if obj["seq"] != n:
        return f"sequence number {obj['seq']!r} where {n} was expected (a line was deleted, inserted or moved)"
    if obj["prev"] != prev:
        return _PREV_MISMATCH
    if _encode(obj) != raw.rstrip(b"\n"):
        return "not in canonical form (the line was re-written by hand)"
    return ""


def _encode(obj: Mapping[str, Any]) -> bytes:
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise InputError(f"audit event data must be plain JSON values: {exc}") from exc


def swap_events(stream: str, old: Likeness | None, new: Likeness | None) -> list[tuple[str, dict[str, Any]]]:
    """The ``swap.stopped`` / ``swap.started`` events of a change of who is swapped in (a change of likeness is
    both): an identity (``{"identity": NAME}``) or a DFM model's trained-in identity (``{"model": NAME}``;
    ``streamer.governance.likeness``)."""
    if old == new:
        return []
    events: list[tuple[str, dict[str, Any]]] = []
    if old is not None:
        events.append((SWAP_STOPPED, {"stream": stream, **old.fields()}))
    if new is not None:
        events.append((SWAP_STARTED, {"stream": stream, **new.fields()}))
    return events


def target_events(
    stream: str, before: Any, after: Any, stream_likenesses: tuple[Likeness | None, Likeness | None] = (None, None)
) -> list[tuple[str, dict[str, Any]]]:
    """The events a change of a stream's target rules makes (``settings.targets``, run settings before and after):
    ``targets.changed`` with the rules before and after, and ``swap.started`` / ``swap.stopped`` for each identity
    a rule starts or stops putting on faces (not for the stream's own likeness, ``stream_likenesses`` before and
    after, whose events ``swap_events`` makes)."""
    rules_before, rules_after = _rules(before), _rules(after)
    if rules_before == rules_after:
        return []
    old = {n for n in _rule_identities(before) if Likeness("identity", n) != stream_likenesses[0]}
    new = {n for n in _rule_identities(after) if Likeness("identity", n) != stream_likenesses[1]}
    events: list[tuple[str, dict[str, Any]]] = [
        (TARGETS_CHANGED, {"stream": stream, "before": rules_before, "after": rules_after})
    ]
    events += [(SWAP_STOPPED, {"stream": stream, "identity": n}) for n in sorted(old - new)]
    events += [(SWAP_STARTED, {"stream": stream, "identity": n}) for n in sorted(new - old)]
    return events


def _rules(settings: Any) -> list[dict[str, Any]]:
    rules = getattr(settings, "targets", None) if settings is not None else None
    return [{"match": r.match, "identity": r.identity} for r in rules or ()]


def _rule_identities(settings: Any) -> set[str]:
    if settings is None or not getattr(settings, "swap", False):
        return set()
    return set(getattr(settings, "target_identities", ()))


def cli_operator() -> str:
    """Who acts from the command line, for the audit log: the local user name."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"

"""`stageswap audit verify | show`: check the hash chain of the audit log, or print its entries."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engines.errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser(
        "audit",
        help="verify or show the audit log (enrollments, consent, swaps, recordings)",
        description="The audit log is append-only JSON lines, each carrying the sha256 of the line before it. "
        "`verify` checks the whole chain and names the first line that was edited, removed or inserted.",
    )
    asub = a.add_subparsers(dest="audit_command", metavar="ACTION", required=True)
    for name, text in (("verify", "check the hash chain; exit 2 naming the first bad line"), ("show", "print it")):
        p = asub.add_parser(name, help=text)
        p.add_argument("--data-dir", metavar="DIR", help="data directory (default $STAGESWAP_DATA or ~/.local/share)")
        p.add_argument("--log", type=Path, metavar="FILE", help="the log file (default DATA_DIR/audit/audit.jsonl)")
        if name == "show":
            p.add_argument("--last", type=int, metavar="N", help="only the last N entries")
            p.add_argument("--json", action="store_true", help="print the raw JSON lines")
    a.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engines.paths import data_dir
    from streamer.governance.audit import AuditLog, audit_path, verify_log

    path = args.log or audit_path(data_dir(args.data_dir))
    if args.audit_command == "verify":
        report = verify_log(path)
        if not report.ok:
            raise InputError(report.message(path))
        print(report.message(path))
        return 0
    if not path.exists():
        raise InputError(f"audit log {path} does not exist")
    entries = list(AuditLog(path).entries())
    if args.last is not None:
        entries = entries[-args.last :] if args.last > 0 else []
    for e in entries:
        if args.json:
            print(json.dumps({"seq": e.seq, "time": e.time, "event": e.event, "data": e.data}, sort_keys=True))
        else:
            fields = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(e.data.items()))
            print(f"{e.seq:>6} {e.time} {e.event:<20} {fields}")
    return 0

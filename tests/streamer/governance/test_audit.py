"""The audit log: a hash chain that `stageswap audit verify` checks, naming the first line that was
edited, deleted, inserted or moved; safe for concurrent appends."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from engines.errors import InputError, OutputError
from streamer.__main__ import main
from streamer.governance.audit import (
    GENESIS,
    SWAP_STARTED,
    AuditLog,
    audit_path,
    line_hash,
    read_head,
    swap_events,
    token_id,
    verify_log,
)

Edit = Callable[[list[bytes]], list[bytes]]


def make_log(path: Path, n: int = 10) -> AuditLog:
    log = AuditLog(path)
    for i in range(n):
        log.append(SWAP_STARTED, stream=f"stage-{i % 3}", identity="alice", operator=token_id("secret-token"), i=i)
    return log


def test_append_chains_lines_and_keeps_a_head(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    log = make_log(path, 3)
    lines = path.read_bytes().splitlines()
    entries = [json.loads(raw) for raw in lines]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["prev"] == GENESIS
    assert entries[1]["prev"] == line_hash(lines[0]) and entries[2]["prev"] == line_hash(lines[1])
    assert read_head(path) == (3, line_hash(lines[2]))
    assert verify_log(path).ok and verify_log(path).lines == 3
    assert [e.data["i"] for e in log.entries()] == [0, 1, 2]
    # a second writer object on the same file continues the chain
    AuditLog(path).append("recording.started", recording="r1")
    assert verify_log(path).ok and verify_log(path).lines == 4


def test_tokens_never_appear_only_their_id(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, 2)
    assert b"secret-token" not in path.read_bytes()
    assert token_id("secret-token") == token_id("secret-token") != token_id("other")
    assert token_id(None) is None


def _edit_line(n: int) -> Edit:
    def edit(lines: list[bytes]) -> list[bytes]:
        obj = json.loads(lines[n - 1])
        obj["data"]["identity"] = "mallory"
        # keep it canonical, so only the chain can tell
        lines[n - 1] = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        return lines

    return edit


def _delete_line(n: int) -> Edit:
    return lambda lines: lines[: n - 1] + lines[n:]


CASES: dict[str, tuple[Edit, int]] = {
    "edit first line": (_edit_line(1), 1),
    "edit a middle line": (_edit_line(5), 5),
    "edit the last line": (_edit_line(10), 10),
    "delete first line": (_delete_line(1), 1),
    "delete a middle line": (_delete_line(6), 6),
    "delete the last line": (_delete_line(10), 10),
    "delete the last three lines": (lambda lines: lines[:7], 8),
    "swap two lines": (lambda lines: lines[:3] + [lines[4], lines[3]] + lines[5:], 4),
    "insert a copied line": (lambda lines: lines[:4] + [lines[2]] + lines[4:], 5),
    "reformat a line by hand": (lambda lines: lines[:2] + [lines[2].replace(b",", b", ")] + lines[3:], 3),
    "garbage in a line": (lambda lines: lines[:6] + [b"not json\n"] + lines[7:], 7),
    "truncate the last line": (lambda lines: lines[:9] + [lines[9][:-20]], 10),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampering_is_detected_and_the_line_named(tmp_path: Path, case: str, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    path = audit_path(data)
    make_log(path, 10)
    edit, bad_line = CASES[case]
    path.write_bytes(b"".join(edit(path.read_bytes().splitlines(keepends=True))))
    report = verify_log(path)
    assert not report.ok
    assert report.bad_line == bad_line, report
    # and the command fails, naming the line
    assert main(["audit", "verify", "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert f"line {bad_line}" in err and "BROKEN" in err


def test_verify_command_passes_on_an_intact_log(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    make_log(audit_path(data), 5)
    assert main(["audit", "verify", "--data-dir", str(data)]) == 0
    assert "OK, 5 line(s)" in capsys.readouterr().out
    assert main(["audit", "show", "--data-dir", str(data), "--last", "2"]) == 0
    shown = capsys.readouterr().out.strip().splitlines()
    assert len(shown) == 2 and shown[0].split()[0] == "4" and "swap.started" in shown[0]


def test_missing_log_or_head(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["audit", "verify", "--data-dir", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    path = tmp_path / "audit.jsonl"
    make_log(path, 3)
    path.with_name("audit.jsonl.head").unlink()
    report = verify_log(path)
    assert not report.ok and "head record is missing" in report.reason


def test_concurrent_appends_from_threads_keep_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(25):
                log.append("swap.stopped", stream=f"s{k}", i=i)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    report = verify_log(path)
    assert report.ok and report.lines == 150


def test_bad_events_and_values_are_refused(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(InputError, match="dotted lower-case"):
        log.append("Swap Started")
    with pytest.raises(InputError, match="plain JSON"):
        log.append("swap.started", when=object())
    with pytest.raises(InputError, match="plain JSON"):
        log.append("swap.started", value=float("nan"))
    assert not (tmp_path / "audit.jsonl").exists() or verify_log(tmp_path / "audit.jsonl").ok


def test_append_refuses_to_chain_onto_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    make_log(path, 2)
    with path.open("ab") as fh:
        fh.write(b'{"seq": 3, "torn')
    with pytest.raises(OutputError, match="incomplete line"):
        AuditLog(path).append("swap.started")


def test_swap_events_from_settings_changes() -> None:
    from engines.settings import ProcessSettings, apply_patch
    from streamer.governance.likeness import swapped_in

    def events(before: ProcessSettings, after: ProcessSettings) -> list[tuple[str, dict[str, str]]]:
        return swap_events("cam", swapped_in(before, None), swapped_in(after, None))

    off = ProcessSettings()
    alice = apply_patch(off, {"identity": "alice"})
    assert events(off, alice) == [("swap.started", {"stream": "cam", "identity": "alice"})]
    assert events(alice, apply_patch(alice, {"strength": 0.5})) == []
    assert events(alice, apply_patch(alice, {"swap": False})) == [
        ("swap.stopped", {"stream": "cam", "identity": "alice"})
    ]
    assert [e for e, _ in events(alice, apply_patch(alice, {"identity": "bob"}))] == ["swap.stopped", "swap.started"]

"""`stageswap performers add | list | remove`: performers enrolled from real footage and photos, and the one-line
errors users get."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamer.__main__ import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_performer_enrolled_from_a_clip_and_a_photo(
    tmp_path: Path, clips: Path, faces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    rc, out, _ = _run(capsys, "performers", "add", "lead", str(clips / "d0.mp4"), "--every", "10", "--data-dir", data)
    assert rc == 0 and "enrolled performer 'lead'" in out, out
    rc, out, _ = _run(capsys, "performers", "list", "--json", "--data-dir", data)
    listed = json.loads(out)["performers"]
    assert rc == 0 and [p["name"] for p in listed] == ["lead"]
    assert listed[0]["faces_used"] == 8 and listed[0]["sources"][0]["name"] == "d0.mp4"  # 78 frames, every 10th
    rc, out, err = _run(capsys, "performers", "add", "lead", str(faces / "s1.jpg"), "--data-dir", data)
    assert rc == 2 and "already exists; use --replace" in err
    rc, out, _ = _run(capsys, "performers", "add", "lead", str(faces / "s1.jpg"), "--replace", "--data-dir", data)
    assert rc == 0 and "1 faces described" in out
    events = [
        json.loads(line)["event"] for line in (tmp_path / "data" / "audit" / "audit.jsonl").read_text().splitlines()
    ]
    assert events == ["performer.enrolled", "performer.enrolled"]
    rc, out, _ = _run(capsys, "performers", "remove", "lead", "--data-dir", data)
    assert rc == 0 and "removed performer 'lead'" in out
    rc, out, _ = _run(capsys, "performers", "list", "--data-dir", data)
    assert "no performers enrolled" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["add", "largest", "s1.jpg"], "target rules use it for a position"),
        (["add", "crowd", "obama_and_biden.jpg"], "refused: 1 several faces (pick one with --face)"),
        (["add", "ghost", "missing.jpg"], "missing.jpg"),
        (["add", "x", "s1.jpg", "--every", "0"], "--every must be at least 1"),
        (["remove", "nobody"], "no performer named 'nobody'"),
    ],
)
def test_performer_errors_are_one_line(
    tmp_path: Path, faces: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    args = [a if not a.endswith((".jpg", ".png")) else str(faces / a) for a in argv]
    rc, _, err = _run(capsys, "performers", *args, "--data-dir", str(tmp_path))
    assert rc == 2 and message in err and "Traceback" not in err, err
    assert err.splitlines()[-1].startswith("stageswap: error:")  # after the progress bar, if any

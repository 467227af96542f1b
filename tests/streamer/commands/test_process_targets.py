"""`stageswap process --target REF=NAME`: performers enrolled from footage, the chosen one swapped, the stats and
the signed manifest naming which identity went on which performer; one-line errors for what users get wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from benchmarks.two_people import LEFT_CLIP, TwoPeople, write_two_people
from streamer.__main__ import main
from streamer.governance.provenance import create_trial_credentials, verify_file


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_process_swaps_the_performer_a_target_names(
    tmp_path: Path, clips: Path, faces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = str(tmp_path / "data")
    create_trial_credentials(tmp_path / "data" / "keys")
    clip = write_two_people(clips, TwoPeople(frames=30, away=None), tmp_path / "two.mp4")
    assert _run(capsys, "identities", "add", "s1", str(faces / "s1.jpg"), "--data-dir", data, "--unverified")[0] == 0
    rc, out, err = _run(
        capsys, "performers", "add", "lead", str(clips / LEFT_CLIP), "--every", "30", "--data-dir", data
    )
    assert rc == 0, err
    stats = tmp_path / "stats.json"
    rc, out, err = _run(
        capsys, "process", "-i", str(clip), "-o", str(tmp_path / "out.mp4"), "--target", "lead=s1",
        "--stats", str(stats), "--data-dir", data, "--no-progress",
    )  # fmt: skip
    assert rc == 0, err
    rows = json.loads(stats.read_text())["targets"]
    lead = [r for r in rows if r["performer"] == "lead"]
    others = [r for r in rows if r["performer"] != "lead"]
    assert len(lead) == 1 and lead[0]["identities"] == {"s1": lead[0]["frames"]} and lead[0]["untouched"] == 0
    assert others and all(r["identities"] == {} and r["untouched"] == r["frames"] for r in others)
    assert "(performer lead): 30 frames; swapped to s1 30" in out
    # the signed manifest names the identity and the performer it went on
    report = verify_file(tmp_path / "out.mp4", Path(data) / "keys" / "trust.pem")
    assert report.ok, report.summary()
    facts = report.facts or {}
    assert [i["name"] for i in facts["identities"]] == ["s1"] and facts["synthetic_faces"] is True
    assert [(t["performer"], t["identities"]) for t in facts["extra"]["targets"] if t["performer"]] == [
        ("lead", {"s1": 30})
    ]


@pytest.fixture(scope="module")
def s1_enrolled(tmp_path_factory: pytest.TempPathFactory, faces: Path, models_dir: Path) -> Path:
    """A data folder with s1.jpg enrolled by `identities add`, once for the module (each test copies it)."""
    data = tmp_path_factory.mktemp("targets") / "data"
    argv = ["identities", "add", "s1", str(faces / "s1.jpg"), "--unverified", "--models", str(models_dir)]
    assert main([*argv, "--data-dir", str(data)]) == 0
    return data


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target", "lead"], "--target must be REF=NAME"),
        (["--target", "=s1"], "--target must be REF=NAME"),
        (["--target", "nobody=s1"], "unknown performer 'nobody' in targets (enrolled: none)"),
        (["--target", "largest=ghost"], "no identity named 'ghost'"),
        (["--target", "id:0=s1"], "a face id is 'id:' and a number from 1"),
        (
            ["--target", "largest=s1", "--target", "largest=s1", "--target", "any=s1", "--target", "id:2=s1"],
            "the rules after it never apply",
        ),
    ],
)
def test_process_target_errors(
    tmp_path: Path, clips: Path, s1_enrolled: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    data = str(tmp_path / "data")
    shutil.copytree(s1_enrolled, data)
    argv = ["process", "-i", str(clips / "d0.mp4"), "-o", str(tmp_path / "o.mp4"), "--no-progress", "--data-dir", data]
    rc, _, err = _run(capsys, *argv, *extra)
    assert rc == 2 and message in err and "Traceback" not in err, err

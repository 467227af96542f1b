"""`stageswap process` outputs carry a signed C2PA manifest (like recordings) that `stageswap verify` validates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engines.compose.watermark import DEFAULT_MARK
from streamer.__main__ import main
from streamer.governance.audit import AuditLog
from streamer.governance.process_provenance import PROCESS_SIGNED
from streamer.governance.provenance import create_trial_credentials, verify_file


@pytest.fixture(scope="module")
def clip(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first second of a shared clip (what is signed does not depend on the length; the test time does)."""
    import av

    path = tmp_path_factory.mktemp("clip") / "d3.mp4"
    with av.open(str(clips / "d3.mp4")) as src, av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 512, 512, "yuv420p"
        for frame, _ in zip(src.decode(video=0), range(30), strict=False):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.to_ndarray(format="bgr24"), format="bgr24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


@pytest.fixture()
def data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    create_trial_credentials(folder / "keys")
    return folder


def _process(src: Path, out: Path, data: Path, *extra: str) -> int:
    return main(["process", "-i", str(src), "-o", str(out), "--data-dir", str(data), "--no-progress", *extra])


def test_a_processed_mp4_is_signed_and_verify_passes(
    tmp_path: Path, clip: Path, faces: Path, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mp4"
    assert _process(clip, out, data, "--identity", str(faces / "s1.jpg"), "--unverified") == 0
    assert "signed" in capsys.readouterr().out
    report = verify_file(out, data / "keys" / "trust.pem")
    assert report.ok and report.validation_state == "Trusted", report.summary()
    facts = report.facts or {}
    assert facts["synthetic_faces"] is True and facts["consent_unverified"] is True
    assert facts["identities"][0]["name"] == "s1.jpg" and facts["watermark_id"]
    assert facts["extra"]["input"] == "d3.mp4"
    assert facts["watermark_mark"] == DEFAULT_MARK == "hush"  # which mark carries the id (issue 24)
    capsys.readouterr()
    assert main(["verify", str(out), "--data-dir", str(data), "--max-frames", "30"]) == 0
    said = capsys.readouterr().out
    assert f"watermark stated: id {facts['watermark_id']}, hush mark" in said, said
    # d3 is a 512x512 crop its face fills: hush raises the faces' share there (``face_floor_rms``), so its reader
    # finds the id on the default path (before that rule: no id; BENCHMARKS.md "The hush mark")
    assert "the manifest's mark's reader (hush) finds it: yes" in said, said
    entries = [e for e in AuditLog.in_data_dir(data).entries() if e.event == PROCESS_SIGNED]
    assert entries and entries[-1].data["signed"] is True and entries[-1].data["output"] == str(out)
    assert entries[-1].data["watermark_mark"] == DEFAULT_MARK


@pytest.mark.parametrize(
    ("flags", "stated"), [(("--watermark-mark", "quiet"), "quiet"), (("--no-watermark",), "unmarked")]
)
def test_the_manifest_names_the_mark_or_says_unmarked(
    tmp_path: Path, clip: Path, data: Path, flags: tuple[str, ...], stated: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The manifest, the audit log and `verify` name the mark `--watermark-mark` chose, or say the output is
    unmarked (issue 24); verify reads the frames with that mark's reader."""
    from streamer.commands.verify import read_watermark

    out = tmp_path / "out.mp4"
    assert _process(clip, out, data, "--no-swap", "--no-relight", *flags) == 0
    facts = verify_file(out, data / "keys" / "trust.pem").facts or {}
    assert facts["watermark_mark"] == stated, facts
    entry = [e for e in AuditLog.in_data_dir(data).entries() if e.event == PROCESS_SIGNED][-1]
    assert entry.data["watermark_mark"] == stated
    read = read_watermark(out, 30, first=stated)  # as verify reads it: the stated mark's reader first
    if stated == "unmarked":
        assert facts["watermark_id"] is None and read["id"] is None
        capsys.readouterr()
        assert main(["verify", str(out), "--data-dir", str(data), "--max-frames", "10", "--no-watermark"]) == 0
        assert "watermark stated: none, the processed view is unmarked" in capsys.readouterr().out
    else:
        assert read["reader"] == stated and read["id"] == facts["watermark_id"], read
        # without the manifest, the coarse mark's reader (tried before the quiet one) reads it too: one carrier
        assert read_watermark(out, 30)["reader"] in ("coarse", "quiet")


def test_a_processed_mkv_gets_a_sidecar_manifest(tmp_path: Path, clip: Path, data: Path) -> None:
    out = tmp_path / "out.mkv"
    assert _process(clip, out, data, "--no-swap", "--no-relight") == 0
    assert (tmp_path / "out.c2pa").is_file()
    report = verify_file(out, data / "keys" / "trust.pem")
    assert report.ok, report.summary()
    assert report.facts and report.facts["synthetic_faces"] is False and report.facts["identities"] == []
    out.write_bytes(out.read_bytes()[:-1000])  # cut: the manifest no longer matches the bytes
    assert not verify_file(out, data / "keys" / "trust.pem").ok


def test_without_keys_the_output_is_kept_unsigned_and_says_how(
    tmp_path: Path, clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out.mp4"
    assert _process(clip, out, tmp_path / "empty", "--no-swap", "--no-relight") == 0
    said = capsys.readouterr().out
    assert "NOT signed" in said and "stageswap keys init" in said
    assert out.is_file() and not verify_file(out).found
    assert json.loads(json.dumps(verify_file(out).to_dict()))["found"] is False

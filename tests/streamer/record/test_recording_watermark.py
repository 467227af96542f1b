"""The watermark in recordings (issue 24): the source view is never marked, and a recording can leave the mark
out of its processed view while the stream's monitors keep it; the sidecar and each file's signed C2PA manifest
say which mark a view carries, or that it is unmarked.

Real frames of a shared clip go through the real FaceProcessor (mark on, then a second processor with the mark
off), the stream's OutputFanout and RecordingSessions into H.264 files, which are decoded and compared frame by
frame, bit for bit, and signed by the service's finalise hook (``RecordingSigner``) with trial credentials."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from engines.compose.watermark import WatermarkConfig, Watermarker, format_id
from engines.errors import InputError
from engines.processor import FaceProcessor, ProcessorConfig
from engines.settings import ProcessSettings
from streamer.governance.audit import AuditLog
from streamer.governance.provenance import create_trial_credentials, signing_config, verify_file
from streamer.governance.recording_provenance import RecordingSigner
from streamer.live.fanout import OutputFanout
from streamer.live.ring import FrameMeta
from streamer.record.recording import RecordingConfig, RecordingManager, RecordingRequest
from tests.face_helpers import clip_frames

FRAMES = 15
FPS = 25
SETTINGS = ProcessSettings(swap=False, relight=False)  # the mark is the processor's last stage either way


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [frame.to_ndarray(format="bgr24") for frame in c.decode(video=0)]


def record(
    folder: Path, models_dir: Path, frames: list[tuple[np.ndarray, float]], marked: bool, requests: dict[str, dict]
) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict[str, dict], int | None]:
    """Run ``frames`` through a processor (mark on or off) and one fan-out with a recording per request (keyed
    by a stream name), the way the live worker does, each recording signed as the service signs them; decoded
    frames per recording and view, their sidecars as written (provenance included) and the processor's
    watermark id."""
    processor = FaceProcessor.from_models(models_dir, ProcessorConfig(watermark=WatermarkConfig(enabled=marked)))
    wid = processor.watermark_id
    data = folder / "data"
    create_trial_credentials(data / "keys")
    audit = AuditLog.in_data_dir(data)
    signer = RecordingSigner(
        data, audit, lambda event, **fields: audit.append(event, fields), None, signing_config(data), models=None
    )
    manager = RecordingManager(RecordingConfig(folder, min_free_bytes=0))
    manager.add_finalise_hook(signer.on_finished)
    fanout = OutputFanout("cam")
    sessions = {
        name: manager.start(
            name,
            RecordingRequest.from_json({"view": "both", **body}),
            settings=None,
            watermark_id=format_id(wid) if wid is not None else None,
            watermark_mark=processor.watermark_mark,
        )
        for name, body in requests.items()
    }
    for session in sessions.values():
        signer.on_started(session.snapshot(), session.watermark_id)  # as the service's listener does
        fanout.add_sink(session)
    for index, (image, t_s) in enumerate(frames):
        slot = image.copy()  # the ring slot the worker hands on: reused after publish
        result = processor.process(slot, t_s, SETTINGS)
        fanout.publish(result.image, slot, FrameMeta(index, index / FPS), result)
        slot[:] = 0
    for name in sessions:
        manager.stop(name)
    # the sidecars as written and signed, with the folder they are in
    summaries = {name: {**json.loads(s.sidecar.read_text()), "_folder": str(folder)} for name, s in sessions.items()}
    fanout.close()
    out = {name: {view: decoded(path) for view, path in s.files.items()} for name, s in sessions.items()}
    return out, summaries, wid


@pytest.fixture(scope="module")
def recordings(
    clips: Path, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, dict[str, list[np.ndarray]]], dict[str, dict], int | None]:
    frames = clip_frames(clips / "s18.mp4", FRAMES)
    on, on_json, wid = record(
        tmp_path_factory.mktemp("on"), models_dir, frames, True, {"marked": {}, "unmarked": {"watermark": False}}
    )
    off, off_json, no_wid = record(tmp_path_factory.mktemp("off"), models_dir, frames, False, {"mark_off": {}})
    assert wid is not None and no_wid is None
    return {**on, **off}, {**on_json, **off_json}, wid


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) == FRAMES and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_source_view_recording_is_bit_identical_to_one_made_with_the_mark_off(recordings: tuple) -> None:
    files, _, wid = recordings
    assert same(files["marked"]["source"], files["mark_off"]["source"])
    assert same(files["unmarked"]["source"], files["mark_off"]["source"])
    assert Watermarker().read_clip(files["marked"]["source"]).id is None
    # ... while the processed view of the same recording does carry the mark (the comparison can fail)
    assert not same(files["marked"]["processed"], files["mark_off"]["processed"])
    assert Watermarker().read_clip(files["marked"]["processed"]).id == wid


def test_a_recording_can_leave_the_mark_out_while_the_stream_marks(recordings: tuple) -> None:
    files, summaries, wid = recordings
    # watermark false: the processed view as the processor made it before the mark, bit for bit
    assert same(files["unmarked"]["processed"], files["mark_off"]["processed"])
    assert Watermarker().read_clip(files["unmarked"]["processed"]).id is None
    assert (summaries["unmarked"]["watermark"], summaries["unmarked"]["watermark_id"]) == (False, None)
    assert (summaries["marked"]["watermark"], summaries["marked"]["watermark_id"]) == (True, format_id(wid))
    assert (summaries["mark_off"]["watermark"], summaries["mark_off"]["watermark_id"]) == (False, None)


def test_the_sidecar_and_each_manifest_name_the_mark_and_the_source_view_is_unmarked(recordings: tuple) -> None:
    files, sidecars, wid = recordings
    marked, unmarked, mark_off = sidecars["marked"], sidecars["unmarked"], sidecars["mark_off"]
    # the sidecar: which mark carries the id, and per view the mark or "unmarked" (the source view always)
    assert (marked["watermark_mark"], marked["watermark_marks"]) == (
        "standard",
        {"processed": "standard", "source": "unmarked"},
    ), marked
    assert (unmarked["watermark_mark"], unmarked["watermark_marks"]) == (
        None,
        {"processed": "unmarked", "source": "unmarked"},
    )
    assert mark_off["watermark_marks"] == {"processed": "unmarked", "source": "unmarked"}
    # the provenance in the sidecar and in each file's signed manifest say the same
    for sidecar in (marked, unmarked):
        for view, path in sidecar["files"].items():
            facts = sidecar["provenance"][view]
            assert facts["watermark_mark"] == sidecar["watermark_marks"][view], (view, facts)
            assert sidecar["c2pa"][view]["signed"] is True, sidecar["c2pa"]
            report = verify_file(Path(sidecar["_folder"]) / path, None)
            assert report.intact and report.facts == facts, report.summary()
    assert marked["provenance"]["processed"]["watermark_id"] == format_id(wid)
    assert marked["provenance"]["source"]["watermark_id"] is None
    # the audit log's recording.started names them too
    started = [e.data for e in AuditLog.in_data_dir(Path(marked["_folder"]) / "data").entries()]
    assert any(e.get("watermark_marks") == marked["watermark_marks"] for e in started), started


def test_verify_shows_the_stated_mark_and_that_the_source_view_is_unmarked(
    recordings: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    from streamer.__main__ import main

    _, sidecars, wid = recordings
    marked = sidecars["marked"]
    folder = Path(marked["_folder"])
    data = ["--data-dir", str(folder / "data"), "--max-frames", str(FRAMES)]
    assert main(["verify", str(folder / marked["files"]["processed"]), *data]) == 0
    out = capsys.readouterr().out
    assert f"watermark stated: id {format_id(wid)}, standard mark" in out, out
    assert "found by the standard mark's reader" in out, out
    assert "the manifest's mark's reader (standard) finds it: yes" in out, out
    assert main(["verify", str(folder / marked["files"]["source"]), *data]) == 0
    out = capsys.readouterr().out
    assert "watermark stated: none, the source view is unmarked" in out and "watermark: none found" in out, out


def test_an_old_manifest_without_the_mark_reads_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    """Sidecars and manifests written before they named the mark still read: the mark is unknown, not an error."""
    from streamer.commands.verify import _print
    from streamer.governance.provenance import ProvenanceFacts, VerifyReport, stated_mark

    old = {"recording_id": "cam-1", "view": "processed", "watermark_id": "0badc0de", "identities": []}
    assert stated_mark(old) == "unknown" and stated_mark(None) == "unknown" and stated_mark({}) == "unknown"
    _print(VerifyReport(Path("old.mp4"), True, embedded=True, validation_state="Valid", facts=old), None, None)
    assert "watermark stated: id 0badc0de, mark unknown" in capsys.readouterr().out
    facts = ProvenanceFacts("cam-1", "2026-12-07T00:00:00Z", watermark_id="0badc0de", watermark_mark="quiet")
    assert stated_mark(facts.to_dict()) == "quiet"
    assert stated_mark(ProvenanceFacts("cam-1", "t", view="source").to_dict()) == "unmarked"


def test_a_source_only_recording_names_no_watermark(tmp_path: Path) -> None:
    manager = RecordingManager(RecordingConfig(tmp_path, min_free_bytes=0))
    session = manager.start(
        "cam", RecordingRequest.from_json({"view": "source"}), watermark_id="0badc0de", watermark_mark="standard"
    )
    try:
        snapshot = session.snapshot()
        assert (snapshot["watermark"], snapshot["watermark_id"], snapshot["watermark_mark"]) == (False, None, None)
        assert snapshot["watermark_marks"] == {"source": "unmarked"}
    finally:
        manager.stop("cam")


@pytest.mark.parametrize("value", ["no", 0, 1, "false"])
def test_the_watermark_option_is_a_boolean(value: object) -> None:
    with pytest.raises(InputError, match="watermark must be true or false"):
        RecordingRequest.from_json({"watermark": value})
    assert RecordingRequest.from_json({"watermark": False}).watermark is False
    assert RecordingRequest.from_json({}).watermark is True

"""Provenance of recordings: a C2PA manifest that c2pa-python reads and validates with the configured
certificate, whose facts match the sidecar JSON, and which tampering breaks; `stageswap keys init` and
`stageswap verify` on real footage carrying the watermark."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import av
import c2pa
import pytest

from engines.compose.watermark import DEFAULT_MARK, MARKS, Watermarker, format_id
from engines.errors import InputError, OutputError
from streamer.__main__ import main
from streamer.governance.audit import AuditLog, read_head, token_id
from streamer.governance.consent import ConsentRecord, consent_summary
from streamer.governance.provenance import (
    ASSERTION_LABEL,
    DIGITAL_SOURCE_ENHANCED,
    DIGITAL_SOURCE_SYNTHETIC,
    ProvenanceFacts,
    build_manifest,
    create_trial_credentials,
    identities_from,
    sidecar_path,
    sign_recording,
    signing_config,
    verify_file,
)
from streamer.record.media import VideoReader
from tests.face_helpers import write_video

WID = 0x0BADC0DE
FRAMES = 45


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("data")
    create_trial_credentials(data / "keys")
    return data


@pytest.fixture(scope="module")
def recording(clips: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real clip's frames, watermarked, written as MP4 and MKV the way recordings are (H.264)."""
    out = tmp_path_factory.mktemp("rec")
    marker = Watermarker()
    paths = {}
    for suffix in (".mp4", ".mkv"):
        with VideoReader(clips / "s18.mp4") as reader:
            frames = itertools.islice(reader.frames(), FRAMES)
            marked = ((marker.apply(frame.image, WID), frame.pts) for frame in frames)
            paths[suffix] = write_video(out / f"take{suffix}", marked, reader.info)
    return paths


def facts_for(tmp_path: Path) -> ProvenanceFacts:
    consent = ConsentRecord.create("Alice Example", "Night Shift", valid_until="2099-12-31", document_sha256="ab" * 32)
    log = AuditLog(tmp_path / "audit.jsonl")
    log.append("recording.started", recording="take-1")
    seq, digest = read_head(log.path) or (0, "")
    return ProvenanceFacts(
        recording_id="take-1",
        created_at="2026-01-02T03:04:05+00:00",
        identities=identities_from(
            [("alice", consent_summary(consent)), ("bob", consent_summary(None)), ("alice", consent_summary(consent))]
        ),
        stream="stage-a",
        operator=token_id("the-operators-secret-token"),
        watermark_id=format_id(WID),
        audit_head={"seq": seq, "sha256": digest},
    )


def copy(src: Path, dst_dir: Path) -> Path:
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    return dst


def test_signed_mp4_validates_with_the_configured_certificate(
    recording: dict[str, Path], keys: Path, tmp_path: Path
) -> None:
    rec = copy(recording[".mp4"], tmp_path)
    signing = signing_config(keys)
    facts = facts_for(tmp_path)
    result = sign_recording(rec, facts, signing)
    assert result.embedded and result.manifest_path is None and result.validation_state == "Trusted"
    assert not sidecar_path(rec).exists()

    # c2pa-python itself, with the configured trust anchor
    context = c2pa.Context.from_dict({"trust": {"trust_anchors": signing.trust_path.read_text()}})  # type: ignore[union-attr]
    with rec.open("rb") as stream, c2pa.Reader("video/mp4", stream, None, context) as reader:
        assert reader.get_validation_state() == "Trusted"
        manifest = reader.get_active_manifest()
    assert manifest is not None
    assertions = {a["label"]: a["data"] for a in manifest["assertions"]}
    action = assertions["c2pa.actions.v2"]["actions"][0]
    assert action["action"] == "c2pa.created" and action["digitalSourceType"] == DIGITAL_SOURCE_SYNTHETIC
    assert "alice" in action["description"] and "NOT verified" in action["description"]  # bob is unverified
    stated = assertions[ASSERTION_LABEL]
    assert stated == facts.to_dict()
    assert stated["synthetic_faces"] is True and stated["consent_unverified"] is True
    assert [u["name"] for u in stated["identities"]] == ["alice", "bob"]
    assert stated["identities"][0]["consent"]["status"] == "verified"
    assert stated["identities"][1]["consent"] == {"status": "unverified", "verified": False}
    assert stated["operator"].startswith("tok-") and "secret" not in json.dumps(manifest)
    assert manifest["claim_generator_info"][0]["name"] == "stageswap"

    # the recording still plays, every frame, and still carries the watermark
    with VideoReader(rec) as reader:
        frames = [f.image for f in reader.frames()]
    assert len(frames) == FRAMES
    assert Watermarker().read_clip(frames).id == WID


def test_sidecar_json_matches_the_manifest(recording: dict[str, Path], keys: Path, tmp_path: Path) -> None:
    rec = copy(recording[".mp4"], tmp_path)
    facts = facts_for(tmp_path)
    result = sign_recording(rec, facts, signing_config(keys))
    sidecar = {"provenance": facts.to_dict(), "c2pa": result.to_dict()}  # what the recorder writes
    sidecar_file = tmp_path / "take.json"
    sidecar_file.write_text(json.dumps(sidecar))
    report = verify_file(rec, signing_config(keys).trust_path)
    assert report.ok and report.facts == json.loads(sidecar_file.read_text())["provenance"]
    assert report.label == sidecar["c2pa"]["label"]


def test_tampering_with_the_file_fails_validation(recording: dict[str, Path], keys: Path, tmp_path: Path) -> None:
    rec = copy(recording[".mp4"], tmp_path)
    signing = signing_config(keys)
    sign_recording(rec, facts_for(tmp_path), signing)
    data = bytearray(rec.read_bytes())
    mdat = data.find(b"mdat")
    assert mdat > 0
    data[mdat + 4000] ^= 0x5A  # one byte of video
    rec.write_bytes(bytes(data))
    report = verify_file(rec, signing.trust_path)
    assert not report.ok and report.validation_state == "Invalid"
    assert any("mismatch" in f["code"] for f in report.failures)


def test_another_certificate_is_not_trusted(recording: dict[str, Path], keys: Path, tmp_path: Path) -> None:
    rec = copy(recording[".mp4"], tmp_path)
    sign_recording(rec, facts_for(tmp_path), signing_config(keys))
    other = create_trial_credentials(tmp_path / "other-keys")
    report = verify_file(rec, other.trust_path)
    assert report.intact and not report.ok
    assert any(f["code"] == "signingCredential.untrusted" for f in report.failures)
    assert verify_file(rec).validation_state == "Valid"  # without a trust list: intact, signer unchecked


def test_mkv_gets_a_sidecar_manifest_bound_to_its_bytes(recording: dict[str, Path], keys: Path, tmp_path: Path) -> None:
    rec = copy(recording[".mkv"], tmp_path)
    before = rec.read_bytes()
    signing = signing_config(keys)
    result = sign_recording(rec, facts_for(tmp_path), signing)
    assert not result.embedded and result.manifest_path == tmp_path / "take.c2pa"
    assert rec.read_bytes() == before  # the Matroska file itself is not touched
    report = verify_file(rec, signing.trust_path)
    assert report.ok and not report.embedded and report.facts is not None
    data = bytearray(before)
    data[len(data) // 2] ^= 0x01
    rec.write_bytes(bytes(data))
    assert verify_file(rec, signing.trust_path).validation_state == "Invalid"


def test_keys_init_and_verify_commands(
    recording: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = tmp_path / "data"
    assert main(["keys", "init", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "signer.pem" in out and "trust.pem" in out
    key = data / "keys" / "signer.key"
    assert key.stat().st_mode & 0o077 == 0  # private key readable by the owner only
    assert main(["keys", "init", "--data-dir", str(data)]) == 2  # never overwritten silently
    assert "--force" in capsys.readouterr().err

    rec = copy(recording[".mp4"], tmp_path)
    sign_recording(rec, facts_for(tmp_path), signing_config(data))
    assert main(["verify", str(rec), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "Trusted" in out and "synthetic faces: yes" in out and "identity bob: consent unverified" in out
    assert f"watermark: id {format_id(WID)} in {FRAMES}/{FRAMES} frames" in out
    assert "matches the manifest's watermark id: yes" in out and "result: OK" in out

    assert main(["verify", str(rec), "--data-dir", str(data), "--json", "--max-frames", "10"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["c2pa"]["ok"] and report["watermark"]["id"] == format_id(WID)


def test_verify_a_copy_reencoded_by_someone_else(
    recording: dict[str, Path], keys: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The manifest does not survive a re-encode; the watermark does, and verify says which recording it was."""
    copy_path = tmp_path / "reupload.mp4"
    with av.open(str(recording[".mp4"])) as src, av.open(str(copy_path), "w") as dst:
        stream = dst.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.bit_rate = 1_250_000
        for frame in src.decode(video=0):
            image = frame.to_ndarray(format="bgr24")
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    recordings = tmp_path / "data" / "recordings"
    recordings.mkdir(parents=True)
    (recordings / "cam-20260101T000000.000Z.json").write_text(
        json.dumps({"id": "cam-20260101T000000.000Z", "watermark_id": format_id(WID)})
    )
    (recordings / "cam-20260102T000000.000Z.json").write_text(json.dumps({"id": "other", "watermark_id": "00000001"}))
    shutil.copytree(keys / "keys", tmp_path / "data" / "keys")
    assert main(["verify", str(copy_path), "--data-dir", str(tmp_path / "data")]) == 2
    captured = capsys.readouterr()
    assert "C2PA manifest: none" in captured.out and f"watermark: id {format_id(WID)}" in captured.out
    assert "recordings in this data directory with that id: cam-20260101T000000.000Z" in captured.out
    assert f"identifies recording/session {format_id(WID)}" in captured.err


@pytest.mark.parametrize("carrier", ["luma", "chroma", "moving", "coarse"])
def test_verify_reads_the_masked_and_chroma_marks(clips: Path, keys: Path, tmp_path: Path, carrier: str) -> None:
    """A recording marked with WatermarkConfig(masked=True), CHROMA_MASKED, MOVING or COARSE (issue 24): verify finds
    its id too, and says which reader found it."""
    from engines.compose.watermark import CHROMA_MASKED, COARSE, MOVING, WatermarkConfig
    from streamer.commands.verify import read_watermark

    config = {"chroma": CHROMA_MASKED, "moving": MOVING, "coarse": COARSE}.get(carrier, WatermarkConfig(masked=True))
    marker = Watermarker(config)
    motion = marker.motion()  # the moving mark follows the clip from its first frame; None for the others
    with VideoReader(clips / "s18.mp4") as reader:
        frames = itertools.islice(reader.frames(), 30)
        marked = ((marker.apply(f.image, WID, motion), f.pts) for f in frames)
        path = write_video(tmp_path / "masked.mp4", marked, reader.info)
    mark = read_watermark(path, 30)
    assert mark["id"] == format_id(WID) and mark["masked"] is True and mark["detected_ratio"] >= 0.9
    assert mark["carrier"] == config.carrier and mark["motion"] is (carrier in ("moving", "coarse"))
    assert mark["grid_cells"] == config.grid_cells


def test_unmarked_unsigned_clip(clips: Path, keys: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["verify", str(clips / "s18.mp4"), "--data-dir", str(keys), "--max-frames", "30"]) == 2
    out = capsys.readouterr().out
    assert "C2PA manifest: none" in out and "watermark: none found in 30 frames" in out


def test_configuration_errors_are_clear(recording: dict[str, Path], keys: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="stageswap keys init"):
        signing_config(tmp_path / "no-data")
    with pytest.raises(InputError, match="does not exist"):
        verify_file(tmp_path / "missing.mp4")
    bad_trust = tmp_path / "trust.pem"
    bad_trust.write_text("not a certificate")
    with pytest.raises(InputError, match="no PEM certificate"):
        verify_file(recording[".mp4"], bad_trust)
    # a key that does not belong to the certificate
    other = create_trial_credentials(tmp_path / "other")
    mixed = signing_config(keys, key=other.key_path)
    rec = copy(recording[".mp4"], tmp_path)
    before = rec.read_bytes()
    with pytest.raises((InputError, OutputError)):
        sign_recording(rec, facts_for(tmp_path), mixed)
    assert rec.read_bytes() == before  # a failed signing leaves the recording as it was
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".take")) == []
    with pytest.raises(OutputError, match="already exists"):
        create_trial_credentials(keys / "keys")


def test_relight_only_recording_is_not_called_synthetic() -> None:
    facts = ProvenanceFacts("take-2", "2026-01-01T00:00:00+00:00")
    assert facts.to_dict()["synthetic_faces"] is False and facts.to_dict()["consent_unverified"] is False
    action = build_manifest(facts, "take-2.mp4")["assertions"][0]["data"]["actions"][0]
    assert action["digitalSourceType"] == DIGITAL_SOURCE_ENHANCED and "none replaced" in action["description"]


def test_a_recording_made_by_the_service_is_signed_and_its_sidecar_matches(
    tmp_path: Path, clips: Path, faces: Path, models_dir: Path
) -> None:
    """Through the live service: an unverified identity swapped in, recorded as MP4 and MKV, stopped."""
    import asyncio

    import aiohttp

    from streamer.config import InputSpec, ServeConfig
    from streamer.governance.audit import audit_path, verify_log
    from tests.live_helpers import live_server, wait_for

    data = tmp_path / "data"
    create_trial_credentials(data / "keys")
    config = ServeConfig(
        port=0,
        token="secret-operator-token",
        data_dir=data,
        models_dir=models_dir,
        processor="full",
        inputs=(InputSpec.parse(f"cam={clips / 's18.mp4'}"),),
    )
    headers = {"Authorization": "Bearer secret-operator-token"}
    sidecars: dict[str, dict] = {}
    stream_marks: list[str | None] = []

    async def scenario() -> None:
        async with live_server(config) as server, aiohttp.ClientSession(headers=headers) as http:
            form = aiohttp.FormData()
            form.add_field("name", "bob")
            form.add_field("allow_unverified", "true")
            form.add_field("photo", (faces / "obama.jpg").read_bytes(), filename="obama.jpg")
            async with http.post(f"{server.url}/api/identities", data=form) as r:
                assert r.status == 201, await r.text()
            assert await wait_for(lambda: server.service.streams.find("cam") is not None, 30)
            async with http.patch(f"{server.url}/api/streams/cam", json={"identity": "bob"}) as r:
                assert r.status == 200, await r.text()
            assert await wait_for(lambda: server.service.streams.get("cam").watermark_id is not None, 60)
            async with http.get(f"{server.url}/api/streams/cam") as r:
                body = await r.json()
                stream_marks.append(body["watermark_id"])
                assert body["watermark_mark"] == DEFAULT_MARK == "hush", body  # which mark carries it (serve's default)
            for container in ("mp4", "mkv"):
                async with http.post(f"{server.url}/api/streams/cam/recording", json={"container": container}) as r:
                    assert r.status == 201, await r.text()
                    rec_id = (await r.json())["id"]
                    assert (await r.json())["watermark_id"] == stream_marks[0]  # the recording says its mark
                stream = server.service.streams.get("cam")
                done = stream.stats.snapshot()["frames_processed"]
                assert await wait_for(lambda s=stream, d=done: s.stats.snapshot()["frames_processed"] > d + 20, 45)
                async with http.delete(f"{server.url}/api/streams/cam/recording") as r:
                    assert r.status == 200, await r.text()
                sidecars[container] = json.loads((data / "recordings" / f"{rec_id}.json").read_text())
            # a recording without the mark while the stream keeps it (issue 24)
            async with http.post(f"{server.url}/api/streams/cam/recording", json={"watermark": False}) as r:
                assert r.status == 201, await r.text()
                started = await r.json()
                assert (started["watermark"], started["watermark_id"]) == (False, None)
            stream = server.service.streams.get("cam")
            done = stream.stats.snapshot()["frames_processed"]
            assert await wait_for(lambda s=stream, d=done: s.stats.snapshot()["frames_processed"] > d + 20, 45)
            async with http.get(f"{server.url}/api/streams/cam") as r:
                body = await r.json()
                assert body["watermark_id"] == stream_marks[0] and body["recording"]["watermark"] is False
            async with http.delete(f"{server.url}/api/streams/cam/recording") as r:
                assert r.status == 200, await r.text()
            unmarked.update(json.loads((data / "recordings" / f"{started['id']}.json").read_text()))

    unmarked: dict = {}
    asyncio.run(scenario())

    # the unmarked recording: no id in its sidecar, its provenance or its frames
    assert unmarked["watermark"] is False and unmarked["watermark_id"] is None
    assert unmarked["provenance"]["processed"]["watermark_id"] is None
    assert unmarked["provenance"]["processed"]["watermark_mark"] == "unmarked"  # said plainly (issue 24)
    with VideoReader(data / "recordings" / unmarked["files"]["processed"]) as reader:
        assert Watermarker(MARKS[DEFAULT_MARK]).read_clip(f.image for f in reader.frames()).id is None

    trust = data / "keys" / "trust.pem"
    for container, sidecar in sidecars.items():
        rec = data / "recordings" / sidecar["files"]["processed"]
        # the sidecar carries the facts, marks the unverified identity, and names the manifest
        facts = sidecar["provenance"]["processed"]
        assert sidecar["consent_unverified"] is True
        assert facts["identities"] == [{"name": "bob", "consent": {"status": "unverified", "verified": False}}]
        assert facts["synthetic_faces"] is True and facts["stream"] == "cam" and facts["recording_id"] == sidecar["id"]
        assert facts["operator"] == token_id("secret-operator-token")
        assert sidecar["c2pa"]["processed"]["signed"] is True
        assert sidecar["c2pa"]["processed"]["validation_state"] == "Trusted"
        # the processor's watermark id: in the sidecar, the manifest and the recorded frames
        assert sidecar["watermark_id"] == facts["watermark_id"] == stream_marks[0] is not None
        # ... and the mark that carries it (serve's default), in the sidecar and the manifest (issue 24)
        assert sidecar["watermark_mark"] == sidecar["watermark_marks"]["processed"] == facts["watermark_mark"]
        assert facts["watermark_mark"] == DEFAULT_MARK, facts
        with VideoReader(rec) as reader:
            clip = Watermarker(MARKS[DEFAULT_MARK]).read_clip(f.image for f in reader.frames())
            assert clip.id is not None and format_id(clip.id) == sidecar["watermark_id"]
        # c2pa-python reads it and validates it with the configured certificate; it says what the sidecar says
        report = verify_file(rec, trust)
        assert report.ok and report.validation_state == "Trusted", report.summary()
        assert report.facts == facts and report.label == sidecar["c2pa"]["processed"]["label"]
        assert report.embedded == (container == "mp4")
        if container == "mkv":
            assert sidecar_path(rec).is_file() and sidecar["c2pa"]["processed"]["manifest"] == sidecar_path(rec).name
        # tampering with the recording makes validation fail
        data_bytes = bytearray(rec.read_bytes())
        data_bytes[len(data_bytes) // 2] ^= 0x20
        rec.write_bytes(bytes(data_bytes))
        assert verify_file(rec, trust).validation_state == "Invalid"

    report = verify_log(audit_path(data))
    assert report.ok
    events = [json.loads(line)["event"] for line in audit_path(data).read_text().splitlines()]
    assert events.count("recording.started") == 3 and events.count("recording.finished") == 3
    assert events.count("recording.signed") == 3 and events[:2] == ["identity.enrolled", "swap.started"]


def test_without_credentials_recordings_are_marked_unsigned(recording: dict[str, Path], tmp_path: Path) -> None:
    from streamer.governance.recording_provenance import RecordingSigner
    from streamer.record.recording import FinishedRecording

    data = tmp_path / "data"
    log = AuditLog(data / "audit" / "audit.jsonl")

    def record(event: str, **fields: object) -> None:
        log.append(event, fields, operator="tok-test")

    signer = RecordingSigner.for_data_dir(data, log, record, "tok-test")
    assert signer.signing is None and "stageswap keys init" in signer.unsigned_reason
    rec = copy(recording[".mp4"], tmp_path)
    before = rec.read_bytes()
    sidecar = tmp_path / "take.json"
    summary = {"id": "cam-1", "stream": "cam", "state": "finished", "settings": {"swap": True, "identity": "zed"}}
    sidecar.write_text(json.dumps(summary))
    signer.on_started({"id": "cam-1", "stream": "cam", "files": {"processed": rec.name}}, "0badc0de")
    signer.on_finished(FinishedRecording("cam-1", sidecar, {"processed": rec}, summary))
    assert rec.read_bytes() == before
    data_out = json.loads(sidecar.read_text())
    assert data_out["c2pa"]["processed"]["signed"] is False and "keys init" in data_out["c2pa"]["processed"]["reason"]
    assert data_out["provenance"]["processed"]["identities"][0]["name"] == "zed"
    assert data_out["consent_unverified"] is True and data_out["watermark_id"] == "0badc0de"
    events = [e.event for e in log.entries()]
    assert events == ["recording.started", "recording.finished", "recording.signed"]
    assert list(log.entries())[-1].data["signed"] == {"processed": False}


def test_the_unsigned_warnings_flags_are_the_clis(keys: Path, tmp_path: Path) -> None:
    """The warning names flags that serve and process take (issue 25: it suggested flags serve rejected), and
    they sign: serve's recordings with the given pair, kept outside the data directory."""
    import re

    from streamer.__main__ import build_parser
    from streamer.commands.serve import build_config
    from streamer.governance.recording_provenance import RecordingSigner

    data = tmp_path / "data"
    log = AuditLog(data / "audit" / "audit.jsonl")
    reason = RecordingSigner.for_data_dir(data, log, lambda event, **fields: None, None).unsigned_reason
    suggested = re.findall(r"--[a-z][a-z-]+", reason)
    assert suggested == ["--signing-cert", "--signing-key"], reason
    elsewhere = create_trial_credentials(tmp_path / "elsewhere")
    flags = [suggested[0], str(elsewhere.cert_path), suggested[1], str(elsewhere.key_path)]
    parser = build_parser()
    config = build_config(parser.parse_args(["serve", "--processor", "passthrough", "--data-dir", str(data), *flags]))
    assert (config.signing_cert, config.signing_key) == (elsewhere.cert_path, elsewhere.key_path)
    paths = (config.signing_cert, config.signing_key)
    signer = RecordingSigner.for_data_dir(data, log, lambda event, **fields: None, None, None, *paths)
    assert signer.signing is not None and signer.signing.cert_path == elsewhere.cert_path
    process = parser.parse_args(["process", "--input", "in.mp4", "--output", "out.mp4", *flags])
    assert (process.signing_cert, process.signing_key) == (elsewhere.cert_path, elsewhere.key_path)
    # Half a pair, or a file that is not there: refused before the service starts, naming what is wrong.
    with pytest.raises(InputError, match="go together"):
        build_config(parser.parse_args(["serve", "--data-dir", str(data), "--signing-cert", str(elsewhere.cert_path)]))
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(InputError, match=re.escape(str(missing))):
        build_config(
            parser.parse_args(["serve", "--data-dir", str(data), "--signing-cert", str(missing), "--signing-key", "k"])
        )

"""The recorder core on real clips: frame-synchronised views, formats, timestamps, overload, crash and full disk.

Frames come from a shared clip with each frame's index stamped in a corner (``benchmarks.stamps``), fed to
recording sessions the way the worker's fan-out does; the files are read back with PyAV and the stamps
decoded, so "every frame, in order, in both views" is checked on the pixels, not on counters.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from benchmarks.stamps import read_frame, stamp_bgr
from engines.errors import InputError
from streamer.errors import ConflictError, NotFoundError
from streamer.live.ring import FrameMeta
from streamer.record.encoding import EncodeSpec, FileEncoder
from streamer.record.formats import EncoderSupport, RecordFormat, check_timecode, resolve_format, timecode_of
from streamer.record.recording import (
    RecordingConfig,
    RecordingManager,
    RecordingRequest,
    RecordingSession,
    StorageError,
    nominal_rate,
)
from streamer.record.repair import count_video_frames, trim_partial_tail, whole_size

REPO = Path(__file__).resolve().parents[3]
FPS = 30


@pytest.fixture(scope="module")
def frames(clips: Path) -> list[np.ndarray]:
    """90 frames (3 s) of a real 512x512 30 fps clip."""
    out = []
    with av.open(str(clips / "d3.mp4")) as c:
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="bgr24"))
            if len(out) == 90:
                break
    return out


def stamped(image: np.ndarray, index: int, processed: bool = False) -> np.ndarray:
    out = image.copy()
    if processed:  # something the processed view has and the source does not
        out[-64:, -64:] = (0, 0, 255)
    stamp_bgr(out, index)
    out.flags.writeable = False
    return out


def manager(folder: Path, events: list[dict] | None = None, **config: object) -> RecordingManager:
    cfg = RecordingConfig(folder, **{"min_free_bytes": 0, **config})  # type: ignore[arg-type]
    return RecordingManager(cfg, emit=(events.append if events is not None else None))


def feed(session: RecordingSession, frames: list[np.ndarray], start: int = 0, fps: float = FPS) -> None:
    for i, image in enumerate(frames):
        index = start + i
        session.on_frame(stamped(image, index, True), stamped(image, index), FrameMeta(index, index / fps), None)


def read_back(path: Path) -> tuple[list[int | None], list[int], Fraction, dict[str, str]]:
    """(stamps, pts, time base, video stream metadata) of every decoded frame."""
    stamps, pts = [], []
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        meta = dict(stream.metadata)
        for frame in c.decode(video=0):
            stamps.append(read_frame(frame))
            pts.append(int(frame.pts))
        return stamps, pts, Fraction(stream.time_base), meta


# -- formats and options ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        ({"codec": "vp9"}, "unknown codec 'vp9'"),
        ({"container": "avi"}, "unknown container 'avi'"),
        ({"codec": "ffv1", "container": "mp4"}, "ffv1 cannot be recorded in mp4: use mkv"),
        ({"codec": "prores", "container": "mp4"}, "prores cannot be recorded in mp4"),
        ({"view": "left"}, "unknown view 'left'"),
        ({"frame_rate": "vfr"}, "unknown frame_rate"),
        ({"fps": 0}, "fps must be between 1 and 240"),
        ({"fps": "fast"}, "fps must be a frame rate"),
        ({"path": "/etc/passwd"}, "unknown recording option 'path'"),
        ({"codec": 5}, "codec must be a string"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_options_are_refused_with_the_reason(body: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        RecordingRequest.from_json(body)


def test_defaults_and_format_resolution() -> None:
    req = RecordingRequest.from_json({})
    assert (req.view, req.codec, req.container, req.frame_rate) == ("processed", "h264", None, "source")
    assert resolve_format("h264") == RecordFormat("h264", "mp4", "libx264")
    assert resolve_format("prores") == RecordFormat("prores", "mov", "prores_ks")
    assert resolve_format("ffv1") == RecordFormat("ffv1", "mkv", "ffv1")
    assert resolve_format("prores", "mkv", "prores_aw").encoder == "prores_aw"
    assert nominal_rate(29.97) == Fraction(30000, 1001) and nominal_rate("25") == 25
    assert check_timecode("01:02:03:04", Fraction(25)) == "01:02:03:04"
    with pytest.raises(InputError, match="out of range"):
        check_timecode("01:02:03:25", Fraction(25))
    with pytest.raises(InputError, match="HH:MM:SS:FF"):
        check_timecode("1:2:3", Fraction(25))


def test_nvenc_is_used_only_when_it_opens() -> None:
    """Detection opens the encoder: on a machine without NVENC (this one, or an H100/H200) it is not offered."""
    support = EncoderSupport.probe()
    fmt = resolve_format("h264", support=support)
    if "h264_nvenc" in support.available:
        assert fmt.encoder == "h264_nvenc"
    else:
        assert fmt.encoder == "libx264"
        with pytest.raises(InputError, match="not available on this machine"):
            resolve_format("h264", encoder="h264_nvenc", support=support)


@pytest.mark.parametrize("encoder", ["prores_ks", "prores_aw"])
def test_prores_is_422_hq(tmp_path: Path, frames: list[np.ndarray], encoder: str) -> None:
    path = tmp_path / "hq.mov"
    enc = FileEncoder(path, EncodeSpec(resolve_format("prores", encoder=encoder), Fraction(FPS), Fraction(1, FPS)))
    for i in range(3):
        enc.write(stamped(frames[i], i), i)
    enc.close()
    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.name, ctx.profile, ctx.pix_fmt) == ("prores", "HQ", "yuv422p10le")
        assert [read_frame(f) for f in c.decode(video=0)] == [0, 1, 2]


@pytest.mark.parametrize("codec", ["h264", "prores", "ffv1"])
def test_colours_are_tagged_and_come_back(tmp_path: Path, codec: str) -> None:
    """BT.709 (limited range) YUV, or RGB for FFV1, tagged in the file so every player decodes the same colours."""
    bars = np.zeros((720, 1280, 3), np.uint8)
    for k, colour in enumerate([(0, 0, 255), (0, 255, 0), (255, 0, 0), (40, 160, 220), (200, 200, 200)]):
        bars[:, k * 256 : (k + 1) * 256] = colour
    fmt = resolve_format(codec)
    path = tmp_path / f"bars.{fmt.ext}"
    enc = FileEncoder(path, EncodeSpec(fmt, Fraction(FPS), Fraction(1, FPS), fsync_interval_s=None))
    for i in range(3):
        enc.write(bars, i)
    enc.close()
    with av.open(str(path)) as c:
        ctx = c.streams.video[0].codec_context
        assert ctx.color_primaries == 1 and ctx.color_trc == 1  # BT.709
        assert (ctx.colorspace, ctx.color_range) == ((0, 2) if codec == "ffv1" else (1, 1))
        decoded = next(c.decode(video=0)).to_ndarray(format="bgr24")
    error = np.abs(decoded.astype(np.int16) - bars).mean()
    assert error == 0 if codec == "ffv1" else error < 2.0, error


# -- both views, every frame -------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["h264", "prores", "ffv1"])
def test_both_views_hold_every_frame_in_order(tmp_path: Path, frames: list[np.ndarray], codec: str) -> None:
    events: list[dict] = []
    mgr = manager(tmp_path, events)
    clip = frames[:45] if codec == "prores" else frames[:60]
    session = mgr.start("cam1", RecordingRequest.from_json({"view": "both", "codec": codec}), settings={"swap": True})
    feed(session, clip)
    summary = mgr.stop("cam1")
    n = len(clip)
    assert summary["state"] == "finished" and summary["frames_dropped"] == 0
    assert summary["frames_written"] == {"processed": n, "source": n}
    got = {view: read_back(tmp_path / name) for view, name in summary["files"].items()}
    for view, (stamps, pts, tb, meta) in got.items():
        assert stamps == list(range(n)), view
        # Source timestamps kept: frame i at i/30 s from the first frame (MKV counts in milliseconds).
        assert max(abs(float(p * tb) - i / FPS) for i, p in enumerate(pts)) <= 0.0005
        assert meta.get("timecode", meta.get("TIMECODE")) == summary["start_timecode"]
    assert got["processed"][1] == got["source"][1]  # the same timestamps in both views
    # Names chosen by the server; the sidecar says what was recorded.
    rec_id = summary["id"]
    assert set(summary["files"].values()) == {
        f"{rec_id}-processed.{summary['container']}",
        f"{rec_id}-source.{summary['container']}",
    }
    sidecar = json.loads((tmp_path / f"{rec_id}.json").read_text())
    assert sidecar["state"] == "finished" and sidecar["frames_written"] == {"processed": n, "source": n}
    assert sidecar["codec"] == codec and sidecar["settings"] == {"swap": True}
    assert sidecar["stageswap_version"] and sidecar["start_utc"] and sidecar["end_utc"]
    assert sidecar["duration_s"] == pytest.approx(n / FPS)
    kinds = [e["event"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "stopped" and set(kinds[1:-1]) <= {"progress"}


def test_ffv1_is_lossless(tmp_path: Path, frames: list[np.ndarray]) -> None:
    mgr = manager(tmp_path)
    session = mgr.start("cam1", RecordingRequest.from_json({"codec": "ffv1", "view": "source"}))
    feed(session, frames[:10])
    summary = mgr.stop("cam1")
    with av.open(str(tmp_path / summary["files"]["source"])) as c:
        decoded = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(decoded) == 10
    for i, image in enumerate(decoded):
        assert np.array_equal(image, stamped(frames[i], i))


def test_variable_frame_rate_keeps_source_timestamps(tmp_path: Path, frames: list[np.ndarray]) -> None:
    mgr = manager(tmp_path)
    session = mgr.start("cam1", RecordingRequest.from_json({}))
    times = np.cumsum([0.0] + [0.033, 0.050, 0.021, 0.100, 0.034] * 4)
    for i, t in enumerate(times):
        session.on_frame(stamped(frames[i], i), frames[i], FrameMeta(i, 100.0 + float(t)), None)
    # A source that restarts its clock: placed one nominal frame after the previous frame.
    session.on_frame(stamped(frames[30], 21), frames[30], FrameMeta(21, 100.0), None)
    summary = mgr.stop("cam1")
    stamps, pts, tb, _ = read_back(tmp_path / summary["files"]["processed"])
    assert stamps == list(range(22))
    expected = [round(float(t) * 90000) for t in times] + [round(float(times[-1]) * 90000) + 3000]
    assert [int(p * tb * 90000) for p in pts] == expected
    assert summary["timestamp_discontinuities"] == 1 and summary["first_pts_s"] == 100.0


def test_constant_frame_rate_duplicates_and_skips_as_documented(tmp_path: Path, frames: list[np.ndarray]) -> None:
    mgr = manager(tmp_path)
    session = mgr.start("cam1", RecordingRequest.from_json({"frame_rate": "cfr", "fps": 25, "view": "both"}))
    # Media times in 25 fps slots: 0, 1, 2, (3, 4 missing), 5, 5.4 -> slot 5 again (skipped), 6, 7.
    slots = [0, 1, 2, 5, 5.4, 6, 7]
    for i, slot in enumerate(slots):
        session.on_frame(stamped(frames[i], i, True), stamped(frames[i], i), FrameMeta(i, slot / 25), None)
    summary = mgr.stop("cam1")
    assert summary["frames_duplicated"] == 2 and summary["frames_skipped"] == 1 and summary["frames_recorded"] == 6
    assert summary["frames_written"] == {"processed": 8, "source": 8}
    for view in ("processed", "source"):
        stamps, pts, tb, _ = read_back(tmp_path / summary["files"][view])
        assert tb == Fraction(1, 25) or [p * tb * 25 for p in pts] == list(range(8))
        assert [round(p * tb * 25) for p in pts] == list(range(8))
        # Slots 3 and 4 repeat frame 2; the frame at 5.4 is not recorded.
        assert stamps == [0, 1, 2, 2, 2, 3, 5, 6]


def test_a_recording_that_will_not_be_constant_rate_says_so(tmp_path: Path, frames: list[np.ndarray]) -> None:
    """Source times from a stream that dropped every third frame: 20 fps on average against 30 (issue 25's 20.4
    from 30), said in the summary; the same frames at constant rate, or a stream that kept up, are not."""
    mgr = manager(tmp_path)
    kept = [i for i in range(45) if i % 3 != 2]
    session = mgr.start("cam1", RecordingRequest.from_json({"fps": 30}))
    for i in kept:
        session.on_frame(stamped(frames[i], i, True), stamped(frames[i], i), FrameMeta(i, i / FPS), None)
    summary = mgr.stop("cam1")
    assert summary["frame_rate"] == "source" and summary["average_fps"] == pytest.approx(20.5, abs=0.5)
    assert summary["rate_warning"].startswith("variable frame rate: 20.")
    assert "30 nominal" in summary["rate_warning"] and "constant rate" in summary["rate_warning"]
    steady = mgr.start("cam1", RecordingRequest.from_json({"fps": 30}))
    feed(steady, frames[:30])
    summary = mgr.stop("cam1")
    assert summary["average_fps"] == pytest.approx(30.0) and summary["rate_warning"] is None
    # Post codecs record at constant rate unless asked otherwise: gaps are filled, nothing to warn about.
    post = mgr.start("cam1", RecordingRequest.from_json({"codec": "ffv1", "fps": 30}))
    for i in kept:
        post.on_frame(stamped(frames[i], i, True), stamped(frames[i], i), FrameMeta(i, i / FPS), None)
    summary = mgr.stop("cam1")
    assert summary["frame_rate"] == "cfr" and summary["frames_duplicated"] > 0
    assert summary["average_fps"] == pytest.approx(30.0) and summary["rate_warning"] is None
    assert RecordingRequest.from_json({"codec": "prores", "frame_rate": "source"}).frame_rate == "source"


# -- the live path never waits: overload is counted and announced ------------------------------------------


def never_waited(call_ms: list[float]) -> bool:
    """The recorder's ``on_frame`` calls handed their frames on without waiting for a writer: most took
    milliseconds (a call that waited for an encode or a stalled write takes tens to hundreds), and at most two
    took a quarter of a second (a busy machine's scheduler may hold any thread that long once or twice)."""
    return float(np.median(call_ms)) < 20 and sum(ms >= 250 for ms in call_ms) <= 2


def test_overload_drops_from_every_view_with_an_alarm(
    tmp_path: Path, frames: list[np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    events: list[dict] = []
    # A queue of 3 frames and ProRes at 1024x1024: the encoder cannot keep up with frames offered at once.
    mgr = manager(tmp_path, events, queue_seconds=0.1)
    # Source times: a dropped frame leaves a gap (at constant rate it would be filled with a repeat).
    session = mgr.start("cam1", RecordingRequest.from_json({"codec": "prores", "view": "both", "frame_rate": "source"}))
    big = [np.ascontiguousarray(np.tile(f, (2, 2, 1))) for f in frames[:40]]
    call_ms = []
    with caplog.at_level(logging.WARNING, logger="streamer.record.recording"):
        for i, image in enumerate(big):
            processed, source = stamped(image, i, True), stamped(image, i)
            t0 = time.perf_counter()
            session.on_frame(processed, source, FrameMeta(i, i / FPS), None)
            call_ms.append((time.perf_counter() - t0) * 1000)
        snap = session.snapshot()
        summary = mgr.stop("cam1")
    assert snap["queue"]["max_frames"] == 3 and summary["queue"]["high_water_frames"] <= 3
    dropped = summary["frames_dropped"]
    assert dropped > 0 and summary["frames_recorded"] == 40 - dropped
    assert never_waited(call_ms), ("the live path waited for the recorder", call_ms)
    assert any(e["event"] == "alarm" for e in events)
    assert any("is behind" in r.message for r in caplog.records)
    written = summary["frames_written"]
    assert written["processed"] == written["source"] == 40 - dropped
    p_stamps = read_back(tmp_path / summary["files"]["processed"])[0]
    s_stamps = read_back(tmp_path / summary["files"]["source"])[0]
    assert p_stamps == s_stamps and p_stamps == sorted(p_stamps) and len(p_stamps) == 40 - dropped
    sidecar = json.loads((tmp_path / f"{summary['id']}.json").read_text())
    assert sidecar["frames_dropped"] == dropped and sidecar["alarms"] >= 1


def test_a_stalled_disk_never_stalls_the_live_path(
    tmp_path: Path, frames: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each write takes 0.4 s (a disk that hangs): frames are offered at 30 fps and every call returns at once."""
    real_write = FileEncoder.write

    def stalled(self: FileEncoder, image: np.ndarray, pts: int) -> None:
        time.sleep(0.4)
        real_write(self, image, pts)

    monkeypatch.setattr(FileEncoder, "write", stalled)
    events: list[dict] = []
    mgr = manager(tmp_path, events, queue_seconds=0.2)  # 6 frames of queue
    session = mgr.start("cam1", RecordingRequest.from_json({"view": "both"}))
    call_ms = []
    started = time.monotonic()
    for i, image in enumerate(frames[:30]):
        processed, source = stamped(image, i, True), stamped(image, i)
        t0 = time.perf_counter()
        session.on_frame(processed, source, FrameMeta(i, i / FPS), None)
        call_ms.append((time.perf_counter() - t0) * 1000)
        time.sleep(1 / FPS)
    offered_s = time.monotonic() - started
    summary = mgr.stop("cam1")
    assert never_waited(call_ms), ("a call waited for the stalled writer", call_ms)
    # The recorder took what its writer wrote while the frames were offered (one write per 0.4 s, more slowly on
    # a busy machine, which also offers them more slowly: 1 s on a quiet one), one in hand and its queue of 6;
    # the rest was dropped and counted.
    assert summary["frames_recorded"] <= offered_s / 0.4 + 8, (summary, offered_s)
    assert summary["frames_dropped"] > 0 and summary["frames_recorded"] + summary["frames_dropped"] == 30
    assert summary["frames_written"] == {"processed": summary["frames_recorded"], "source": summary["frames_recorded"]}
    assert [e["event"] for e in events].count("alarm") >= 1


# -- bad requests ---------------------------------------------------------------------------------------


def test_start_twice_stop_idle_and_unknown_ids(tmp_path: Path, frames: list[np.ndarray]) -> None:
    mgr = manager(tmp_path)
    with pytest.raises(ConflictError, match="is not recording"):
        mgr.stop("cam1")
    mgr.start("cam1", RecordingRequest())
    with pytest.raises(ConflictError, match="already recording"):
        mgr.start("cam1", RecordingRequest())
    with pytest.raises(InputError, match="invalid stream name"):
        mgr.start("../etc", RecordingRequest())
    mgr.stop("cam1")
    with pytest.raises(ConflictError, match="is not recording; its last recording"):
        mgr.stop("cam1")
    with pytest.raises(NotFoundError):
        mgr.get("../../etc/passwd")
    with pytest.raises(NotFoundError):
        mgr.get("cam1-20200101T000000.000Z")
    listed = mgr.recordings()
    assert len(listed) == 1 and listed[0]["state"] == "finished" and listed[0]["frames_written"] == {"processed": 0}
    assert mgr.get(listed[0]["id"])["id"] == listed[0]["id"]


def test_refuses_to_start_without_free_space(tmp_path: Path) -> None:
    mgr = manager(tmp_path, min_free_bytes=1 << 60)
    with pytest.raises(StorageError, match="MB free"):
        mgr.start("cam1", RecordingRequest())
    assert not list(tmp_path.glob("*.mp4"))


def test_timecode_of_the_first_frame() -> None:
    from datetime import UTC, datetime

    moment = datetime(2025, 3, 4, 5, 6, 7, 520_000, tzinfo=UTC)
    assert timecode_of(moment, Fraction(25)) == "05:06:07:13"
    assert timecode_of(moment, Fraction(30000, 1001)) == "05:06:07:15"


# -- crash: kill -9 mid-recording ---------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import av, numpy as np
    from streamer.record.recording import RecordingConfig, RecordingManager, RecordingRequest
    from streamer.live.ring import FrameMeta
    from benchmarks.stamps import stamp_bgr

    folder, clip, codec = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    with av.open(clip) as c:
        frames = [f.to_ndarray(format="bgr24")[:256, :256] for _, f in zip(range(60), c.decode(video=0))]
    mgr = RecordingManager(RecordingConfig(folder, min_free_bytes=0))
    session = mgr.start("cam1", RecordingRequest.from_json({"codec": codec, "view": "both"}))
    start = time.monotonic()
    i = 0
    while True:  # a live camera at 30 fps until killed
        time.sleep(max(0.0, start + i / 30 - time.monotonic()))
        while max(r.queued_frames for r in session.recorders.values()) >= 30:
            time.sleep(0.01)  # a starved writer: the camera waits rather than the queue dropping (tested apart)
        image = frames[i % len(frames)].copy()
        stamp_bgr(image, i)
        session.on_frame(image, image, FrameMeta(i, i / 30), None)
        written = min(r.frames_written for r in session.recorders.values())
        print(i, written, session.frames_dropped, flush=True)
        i += 1
    """
)


@pytest.mark.parametrize("codec", ["h264", pytest.param("prores", marks=pytest.mark.slow), "ffv1"])
def test_kill_9_keeps_every_frame_up_to_a_second_before(tmp_path: Path, clips: Path, codec: str) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    folder = tmp_path / "rec"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder), str(clips / "d3.mp4"), codec],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    # Killed once 100 frames were recorded and the writer wrote 60 (3.3 s and 2 s on a quiet machine; a busy
    # one starves the writer, niced, and the camera runs on until it has written them).
    last = written = dropped = -1
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        last, written, dropped = (int(v) for v in line.split())
        if (last >= 100 and written >= 2 * FPS) or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stderr = proc.stderr.read() if proc.stderr else ""
    assert last >= 100 and written >= 2 * FPS and dropped == 0, (last, written, dropped, stderr)
    sidecar = next(folder.glob("*.json"))
    assert json.loads(sidecar.read_text())["state"] == "recording"
    # Every frame the writer wrote up to a second (30 frames) before the kill is in the file; those it had not
    # written yet (still queued: none when it keeps up, many on a busy machine) never reached it.
    must_keep = written - FPS
    for path in sorted(folder.glob(f"*.{resolve_format(codec).container}")):
        stamps, _, _, _ = read_back_tolerant(path)
        assert stamps == list(range(len(stamps))), path.name  # in order, no gaps
        assert len(stamps) - 1 >= must_keep, (
            f"{path.name}: kept up to {len(stamps) - 1}, killed at {last}, {written} written"
        )
    # On the next start the service repairs the sidecar (and cuts a torn fragment, if the kill made one).
    recovered = manager(folder).recover()
    assert len(recovered) == 1 and recovered[0]["state"] == "interrupted"
    for view, name in recovered[0]["files"].items():
        assert recovered[0]["frames_written"][view] == len(read_back(folder / name)[0]) >= must_keep


def read_back_tolerant(path: Path) -> tuple[list[int | None], list[int], Fraction, dict[str, str]]:
    """Like read_back, but stops at a torn last fragment (a reader of a crashed file sees that)."""
    stamps: list[int | None] = []
    with av.open(str(path)) as c:
        with contextlib.suppress(av.FFmpegError):
            for frame in c.decode(video=0):
                stamps.append(read_frame(frame))
        return stamps, [], Fraction(1), {}


# -- full disk --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (the RLIMIT_FSIZE variant runs everywhere)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def run_until_disk_full(folder: Path, frames: list[np.ndarray]) -> tuple[dict, list[dict], list[float], int]:
    """Record FFV1 (large frames) until the disk is full; returns (summary, events, per-frame call ms, fed)."""
    events: list[dict] = []
    mgr = manager(folder, events, fsync_interval_s=None)
    request = RecordingRequest.from_json({"codec": "ffv1", "view": "both", "frame_rate": "source"})
    session = mgr.start("cam1", request)
    call_ms = []
    fed = 0
    deadline = time.monotonic() + 30
    while session.active and time.monotonic() < deadline:
        image = frames[fed % len(frames)]
        processed, source = stamped(image, fed, True), stamped(image, fed)
        t0 = time.perf_counter()
        session.on_frame(processed, source, FrameMeta(fed, fed / FPS), None)
        call_ms.append((time.perf_counter() - t0) * 1000)
        fed += 1
        time.sleep(1 / FPS)
    # The live path goes on after the error: frames are still offered, the session ignores them.
    for k in range(10):
        t0 = time.perf_counter()
        session.on_frame(frames[0], frames[0], FrameMeta(fed + k, (fed + k) / FPS), None)
        call_ms.append((time.perf_counter() - t0) * 1000)
    deadline = time.monotonic() + 10
    while not any(e["event"] == "error" for e in events) and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(ConflictError, match="failed"):
        mgr.stop("cam1")
    return session.snapshot(), events, call_ms, fed


def check_disk_full(folder: Path, summary: dict, events: list[dict], call_ms: list[float], reason: str) -> None:
    errors = [e for e in events if e["event"] == "error"]
    assert len(errors) == 1 and reason in errors[0]["message"], events[-1]
    assert summary["state"] == "failed" and summary["disk_full"]
    # The live path never waits on the disk: calls take microseconds (the max allows a shared machine's hiccups).
    assert never_waited(call_ms), ("the live path waited for the failing recorder", call_ms)
    for view, name in summary["files"].items():
        stamps, _, _, _ = read_back(folder / name)  # strict: the file is valid to its end
        assert len(stamps) == summary["frames_written"][view] > 0
        assert None not in stamps and stamps == sorted(set(stamps)), "frames out of order"
        # Without drops (an encoder that kept up) the file holds frame 0 to its last, without gaps.
        assert summary["frames_dropped"] > 0 or stamps == list(range(len(stamps)))


@pytest.mark.slow  # the same through the service runs by default (tests/test_recording_api.py)
def test_disk_full_on_a_small_tmpfs(tmp_path: Path, frames: list[np.ndarray]) -> None:
    with small_tmpfs(tmp_path / "small", "24m") as folder:
        summary, events, call_ms, _ = run_until_disk_full(folder, frames[:30])
        check_disk_full(folder, summary, events, call_ms, "the disk is full")


DISK_FULL_CHILD = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[2])
    import tests.streamer.record.test_recorder as t
    import av
    folder = Path(sys.argv[1])
    with av.open(sys.argv[3]) as c:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(30), c.decode(video=0))]
    # Files over 12 MB cannot grow: writes fail with EFBIG, as on a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (12 << 20, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    summary, events, call_ms, fed = t.run_until_disk_full(folder, frames)
    print(json.dumps({"summary": summary, "events": events, "call_ms": call_ms}))
    """
)


def test_write_error_injected_with_a_file_size_limit(tmp_path: Path, clips: Path) -> None:
    """The same as a full disk without root: RLIMIT_FSIZE makes the writes fail (EFBIG) in a subprocess."""
    script = tmp_path / "child.py"
    script.write_text(DISK_FULL_CHILD)
    folder = tmp_path / "rec"
    folder.mkdir()
    done = subprocess.run(
        [sys.executable, str(script), str(folder), str(REPO), str(clips / "d3.mp4")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    check_disk_full(folder, out["summary"], out["events"], out["call_ms"], "File too large")
    assert resource.getrlimit(resource.RLIMIT_FSIZE)  # the limit applied to the child only


# -- repair of torn files ----------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["h264", "prores", "ffv1"])
def test_a_torn_tail_is_cut_back_to_the_last_whole_fragment(
    tmp_path: Path, frames: list[np.ndarray], codec: str
) -> None:
    fmt = resolve_format(codec)
    path = tmp_path / f"whole.{fmt.ext}"
    enc = FileEncoder(path, EncodeSpec(fmt, Fraction(FPS), Fraction(1, 90000), fsync_interval_s=None))
    for i, image in enumerate(frames[:40]):
        enc.write(stamped(image, i), i * 3000)
    enc.close()
    data = path.read_bytes()
    assert whole_size(path) == len(data)
    rng = np.random.default_rng(5)
    for cut in sorted(rng.integers(len(data) // 2, len(data) - 1, 4)):
        torn = tmp_path / f"torn{cut}.{fmt.ext}"
        torn.write_bytes(data[:cut])
        result = trim_partial_tail(torn)
        assert result.size_after <= cut
        stamps, _, _, _ = read_back(torn)  # strict read succeeds to the end
        assert stamps == list(range(len(stamps))) and count_video_frames(torn) == len(stamps)
        assert len(stamps) >= 1


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread priorities from /proc (Linux)")
def test_encoder_threads_run_below_the_live_path(tmp_path: Path, frames: list[np.ndarray]) -> None:
    """The recorder thread and the encoder threads FFmpeg starts from it yield the CPU to the live path."""
    from streamer.record.recorder import QueueLimits, Recorder, VideoItem

    def nices() -> dict[str, int]:
        out = {}
        for tid in os.listdir("/proc/self/task"):
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
                out[tid] = int(stat[16])
        return out

    before = nices()
    spec = EncodeSpec(resolve_format("prores"), Fraction(FPS), Fraction(1, FPS), fsync_interval_s=None)
    recorder = Recorder(tmp_path / "n.mov", spec, QueueLimits(10, 1 << 30), nice=10).start()
    for i in range(3):
        recorder.put(VideoItem(frames[i], i))
    deadline = time.monotonic() + 20
    while recorder.frames_written < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    new = {tid: n for tid, n in nices().items() if tid not in before}
    assert recorder.finish() is None
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert len(new) >= 2 and set(new.values()) == {min(19, base + 10)}, new  # the recorder and FFmpeg's threads

"""NDI on loopback, with ndi-python's own sender and receiver in the test: a stream's processed view
published over NDI (the swapped face, the stream's rate, the source's timecode), and an NDI source used
as a camera whose frames come out over WHEP and into a recording that starts at the NDI timecode."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import pytest

from benchmarks.stamps import read_bgr, stamp_bgr
from engines.settings import NdiOutputs, ProcessSettings
from streamer.config import InputSpec, ServeConfig
from streamer.live.ndi import find_sources, matches, nominal_rate, sender_name
from streamer.live.timecodes import FrameTimecode, from_ndi
from tests.live_helpers import live_server, view, wait_for
from tests.streamer.live.test_timecode import CLIP_FRAMES, FPS, START, timecoded_clip  # noqa: F401 (fixture)

NDIlib = pytest.importorskip("NDIlib", reason="ndi-python is not installed (pip install 'stageswap[ndi]')")
LOOPBACK = ("127.0.0.1",)


@dataclass
class Received:
    frames: list[tuple[float, np.ndarray, int, Fraction]] = field(default_factory=list)
    """(arrival, BGR image, NDI timecode, frame rate) of each frame."""
    error: BaseException | None = None


def receive(name: str, stop: threading.Event, out: Received) -> None:
    """ndi-python's own receiver: finds ``name`` on loopback and keeps every frame until ``stop``."""
    try:
        finder = NDIlib.find_create_v2(_find_settings())
        source = None
        deadline = time.monotonic() + 20
        while source is None and time.monotonic() < deadline and not stop.is_set():
            NDIlib.find_wait_for_sources(finder, 250)
            source = next((s for s in NDIlib.find_get_current_sources(finder) if matches(s.ndi_name, name)), None)
        assert source is not None, f"NDI source {name!r} not found"
        settings = NDIlib.RecvCreateV3()
        settings.color_format = NDIlib.RECV_COLOR_FORMAT_BGRX_BGRA
        receiver = NDIlib.recv_create_v3(settings)
        NDIlib.recv_connect(receiver, source)
        NDIlib.find_destroy(finder)
        while not stop.is_set():
            kind, video, _a, _m = NDIlib.recv_capture_v2(receiver, 200)
            if kind == NDIlib.FRAME_TYPE_VIDEO:
                image = np.ascontiguousarray(video.data[:, :, :3])
                rate = Fraction(video.frame_rate_N, video.frame_rate_D)
                out.frames.append((time.monotonic(), image, int(video.timecode), rate))
                NDIlib.recv_free_video_v2(receiver, video)
        NDIlib.recv_destroy(receiver)
    except BaseException as exc:
        out.error = exc


def _find_settings() -> Any:
    settings = NDIlib.FindCreate()
    settings.show_local_sources = True
    settings.extra_ips = ",".join(LOOPBACK)
    return settings


@pytest.fixture()
def enrolled(tmp_path: Path, faces: Path, models_dir: Path) -> Path:
    from engines.identity.store import IdentityStore
    from streamer.governance.consent import enroll_with_consent

    data = tmp_path / "data"
    enroll_with_consent(IdentityStore(data / "identities", models_dir), "s1", [faces / "s1.jpg"], None, True)
    return data


def _clip_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]


def test_ndi_output_carries_the_swapped_face_at_the_streams_rate_with_its_timecode(
    enrolled: Path,
    timecoded_clip: Path,  # noqa: F811 (the fixture imported above)
    models_dir: Path,
    detector: Any,
) -> None:
    config = ServeConfig(
        data_dir=enrolled,
        models_dir=models_dir,
        inputs=(InputSpec.parse(f"cam1={timecoded_clip}"),),
        initial_settings=ProcessSettings(identity="s1", ndi=NdiOutputs(processed=True)),
        max_streams=2,
    )
    got = Received()
    stop = threading.Event()

    async def scenario() -> dict[str, Any]:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            listener = threading.Thread(target=receive, args=(sender_name("cam1", "processed"), stop, got))
            listener.start()
            try:
                assert await wait_for(lambda: len(got.frames) >= 5 or got.error is not None, 60)
                stream = srv.service.streams.get("cam1")
                sender = stream.ndi["processed"]

                def counts() -> tuple[int, int, int, int]:
                    processed = stream.stats.snapshot()["frames_processed"]
                    return processed, sender.frames_sent, sender.frames_skipped, len(got.frames)

                # A window of 3 s, longer on a busy machine until 10 frames were sent (at most 60 s).
                before = counts()
                await asyncio.sleep(3.0)
                await wait_for(lambda: counts()[1] - before[1] >= 10, 60)
                after = counts()
                async with http.get(f"{srv.url}/api/streams/cam1") as r:
                    info = await r.json()
            finally:
                stop.set()
                await asyncio.to_thread(listener.join, 10)
            keys = ("processed", "sent", "skipped", "received")
            return {**{k: b - a for k, a, b in zip(keys, before, after, strict=True)}, "info": info}

    result = asyncio.run(scenario())
    assert got.error is None, got.error
    # Counts in one window, which a busy machine cannot break: every frame the worker made reached the NDI
    # output (sent, or replaced by a newer one while NDI was still sending: latest wins), the receiver got what
    # was sent, and NDI's own rate field is the stream's (the clip's 25 fps) whatever the CPU did.
    assert result["sent"] >= 5 and result["sent"] + result["skipped"] >= 0.9 * result["processed"] - 3, result
    assert result["received"] >= 0.8 * result["sent"] - 3, result
    assert {rate for *_, rate in got.frames} == {Fraction(FPS)}
    ndi_stats = result["info"]["ndi"]["processed"]
    assert ndi_stats["name"] == "stageswap cam1" and ndi_stats["frames_sent"] > 0 and ndi_stats["connections"] >= 1
    # Each frame carries the source's timecode: the clip's start plus the frame's index (read from its stamp).
    clip = _clip_frames(timecoded_clip)
    checked = 0
    for _t, image, ticks, rate in got.frames[-30:]:
        stamp = read_bgr(image)
        if stamp is None:
            continue
        assert from_ndi(ticks, rate) == FrameTimecode(START, Fraction(FPS)).plus(stamp % CLIP_FRAMES)
        # The processed view: the face is swapped (differs from the camera's), the rest is the camera's.
        faces = detector.detect(clip[stamp])
        assert len(faces), "the clip shows a face"
        x0, y0, x1, y1 = (int(v) for v in faces[0].box)
        w, h = x1 - x0, y1 - y0
        inside = np.abs(image[y0 : y0 + h, x0 : x0 + w].astype(int) - clip[stamp][y0 : y0 + h, x0 : x0 + w]).mean()
        mask = np.ones(image.shape[:2], bool)
        mask[max(0, y0 - h // 3) : y0 + h + h // 3, max(0, x0 - w // 3) : x0 + w + w // 3] = False
        mask[:120, :120] = False  # the stamp
        outside = np.abs(image.astype(int) - clip[stamp])[mask].mean()
        assert inside > 6.0 and outside < 3.0, (inside, outside)
        checked += 1
    assert checked >= 10


class CameraSender:
    """ndi-python's own sender: the clip's frames at 25 fps (NDI paces them), each with its timecode."""

    def __init__(self, name: str, frames: list[np.ndarray]) -> None:
        settings = NDIlib.SendCreate()
        settings.ndi_name = name
        settings.clock_video = True
        self.sender = NDIlib.send_create(settings)
        self.frames = frames
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        video = NDIlib.VideoFrameV2()
        video.FourCC = NDIlib.FOURCC_VIDEO_TYPE_BGRX
        video.frame_rate_N, video.frame_rate_D = FPS, 1
        start = FrameTimecode(START, Fraction(FPS))
        while not self.stop.is_set():
            i = self.sent % len(self.frames)
            bgrx = np.dstack([self.frames[i], np.full(self.frames[i].shape[:2], 255, np.uint8)])
            video.data = np.ascontiguousarray(bgrx)
            video.timecode = start.plus(i).ndi_ticks()
            NDIlib.send_send_video_v2(self.sender, video)
            self.sent += 1

    def __enter__(self) -> CameraSender:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        NDIlib.send_destroy(self.sender)


@pytest.fixture(scope="module")
def stamped_frames() -> Iterator[list[np.ndarray]]:
    frames = []
    for i in range(CLIP_FRAMES):
        image = np.full((360, 640, 3), 40 + (i % 50) * 3, np.uint8)
        image[100:260, 200:440] = (30, 120, 200)
        stamp_bgr(image, i)
        frames.append(image)
    yield frames


def test_an_ndi_source_is_a_camera_its_frames_come_out_over_whep_and_record_at_its_timecode(
    tmp_path: Path, stamped_frames: list[np.ndarray]
) -> None:
    config = ServeConfig(
        data_dir=tmp_path,
        processor="passthrough",
        inputs=(InputSpec.parse("cam1=ndi://stageswap-test-camera"),),
        ndi_extra_ips=LOOPBACK,
        max_streams=2,
    )

    async def scenario(sender: CameraSender) -> tuple[list[int | None], dict[str, Any], dict[str, Any]]:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            stream = srv.service.streams.get("cam1")
            assert await wait_for(lambda: stream.stats.snapshot()["frames_processed"] > 5, 30), stream.to_dict()
            viewer = await view(http, srv.url, "cam1", "source", keep_every=1)
            assert await wait_for(lambda: len(viewer.frames) >= 20, 60)
            async with http.post(f"{srv.url}/api/streams/cam1/recording", json={"codec": "h264", "fps": FPS}) as r:
                assert r.status == 201, await r.text()
            # Some frames in the file (a second's worth on a quiet machine; at most 60 s on a starved one).
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                async with http.get(f"{srv.url}/api/streams/cam1/recording") as r:
                    if (await r.json())["frames_recorded"] >= 10:
                        break
                await asyncio.sleep(0.1)
            async with http.delete(f"{srv.url}/api/streams/cam1/recording") as r:
                recording = await r.json()
            await viewer.close()
            async with http.get(f"{srv.url}/api/streams/cam1") as r:
                info = await r.json()
            return [read_bgr(f) for f in viewer.frames], info, recording

    with CameraSender("stageswap-test-camera", stamped_frames) as sender:
        stamps, info, recording = asyncio.run(scenario(sender))
    assert info["source"]["kind"] == "ndi" and info["source"]["error"] is None
    seen = [s for s in stamps if s is not None]
    assert len(seen) >= 0.8 * len(stamps) and len(set(seen)) >= 10
    assert all(b > a or a - b > CLIP_FRAMES // 2 for a, b in zip(seen, seen[1:], strict=False)), "in order"
    # The recording starts at the NDI timecode of its first frame, not at the time of day.
    path = tmp_path / "recordings" / recording["files"]["processed"]
    with av.open(str(path)) as c:
        first = read_bgr(next(c.decode(video=0)).to_ndarray(format="bgr24"))
    assert first is not None and recording["timecode_source"] == "source"
    assert recording["start_timecode"] == FrameTimecode(START, Fraction(FPS)).plus(first % CLIP_FRAMES).text


def test_discovery_names_and_rates() -> None:
    with CameraSender("stageswap-discovery-probe", [np.zeros((64, 64, 3), np.uint8)]):
        found = find_sources(10.0, LOOPBACK, wanted="stageswap-discovery-probe")
    assert any(matches(s.name, "stageswap-discovery-probe") for s in found), found
    assert matches("STUDIO (CAM 1)", "CAM 1") and matches("STUDIO (CAM 1)", "STUDIO (CAM 1)")
    assert not matches("STUDIO (CAM 12)", "CAM 1")
    assert nominal_rate([1 / 29.97] * 10) == Fraction(30000, 1001)
    assert nominal_rate([0.04, 0.041, 0.039]) == Fraction(25)
    assert nominal_rate([1 / 17.0] * 5) == Fraction(17)


def test_ndi_list_command_shows_a_sender_on_loopback(capsys: pytest.CaptureFixture[str]) -> None:
    from streamer.__main__ import main

    with CameraSender("stageswap-list-probe", [np.zeros((64, 64, 3), np.uint8)]):
        assert main(["ndi", "list", "--extra-ips", "127.0.0.1", "--timeout", "5"]) == 0
    out = capsys.readouterr().out
    assert "(stageswap-list-probe)" in out and "--input NAME=ndi://" in out
    assert main(["ndi", "list", "--timeout", "0"]) == 2
    assert "--timeout must be between 0 and 60" in capsys.readouterr().err

"""Streams out through Janus (issue 27): a real Janus (Debian's, started on loopback ports with a generated
config by ``tests.janus_helpers``), a real publisher over WHIP, viewers watching through Janus with aiortc.

What is checked is what a stage relies on, by counts and states a busy machine cannot break: the picture a
monitor gets through Janus is the processed one (the identity swapped in, judged by an independent
recogniser); the mountpoints exist while the stream does and are removed with it; a Janus that dies takes
nothing else down (our own viewers and the recording go on), is reported, and is used again when it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engines.face.detect import FaceDetector
from engines.face.landmarks import FaceMesh
from streamer.config import ServeConfig, SfuConfig
from streamer.live.janus import JanusError, JanusSession
from streamer.live.sfu import SFU
from tests.face_helpers import identity_scores
from tests.janus_helpers import JanusProcess, janus_process, watch
from tests.live_helpers import ClipTrack, enroll_unverified, live_server, publish, view, wait_for


@pytest.fixture
def janus(tmp_path: Path) -> Iterator[JanusProcess]:
    with janus_process(tmp_path / "janus") as process:
        yield process


def _config(tmp_path: Path, janus: JanusProcess, **kw: Any) -> ServeConfig:
    sfu = SfuConfig(url=janus.url, admin_key=janus.admin_key, check_interval_s=0.3, retry_max_s=1.0)
    base: dict[str, Any] = {"port": 0, "data_dir": tmp_path / "data", "max_streams": 2, "sfu": sfu}
    base.update(kw)
    return ServeConfig(**base)


async def _stream(http: aiohttp.ClientSession, base: str, name: str = "cam") -> dict[str, Any]:
    async with http.get(f"{base}/api/streams/{name}") as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
    return body


async def _sfu_state(http: aiohttp.ClientSession, base: str, state: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        sfu = (await _stream(http, base))["sfu"]
        if sfu is not None and sfu["state"] == state:
            return dict(sfu)
        if time.monotonic() > deadline:
            raise AssertionError(f"SFU not {state} after {timeout_s} s: {sfu}")
        await asyncio.sleep(0.1)


async def _mountpoint_ids(janus: JanusProcess) -> set[int]:
    async with aiohttp.ClientSession() as http:
        session = JanusSession(http, janus.url)
        await session.open()
        try:
            return {int(m["id"]) for m in await session.list_mountpoints()}
        finally:
            await session.close()


def test_a_monitor_through_janus_sees_the_processed_face_and_the_mountpoint_goes_with_the_stream(
    tmp_path: Path,
    janus: JanusProcess,
    clips: Path,
    faces: Path,
    models_dir: Path,
    detector: FaceDetector,
    mesh: FaceMesh,
) -> None:
    config = _config(tmp_path, janus, models_dir=models_dir)
    received: dict[str, list[Any]] = {}

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            await enroll_unverified(http, srv.url, "obama", faces / "obama.jpg")  # a test identity: no consent record
            track = ClipTrack(clips / "d3.mp4")
            pub = await publish(http, srv.url, "cam", track)
            async with http.patch(f"{srv.url}/api/streams/cam", json={"identity": "obama"}) as r:
                assert r.status == 200, await r.text()
            sfu = await _sfu_state(http, srv.url, "up", 40)
            mountpoint = sfu["mountpoints"]["processed"]["id"]
            assert sfu["url"] == janus.url and sfu["error"] is None
            assert mountpoint in await _mountpoint_ids(janus)
            assert janus.admin_key not in str(await _stream(http, srv.url))  # the admin key is never shown

            monitor = await watch(http, janus.url, mountpoint, keep_every=6)
            source = await view(http, srv.url, "cam", "source", keep_every=6)
            assert await wait_for(lambda: len(monitor.frames) >= 12 and len(source.frames) >= 8, 90), (
                len(monitor.times),
                len(source.times),
            )
            # Janus counts the monitor as its viewer.
            info = await _stream(http, srv.url)
            deadline = time.monotonic() + 20
            while info["sfu"]["mountpoints"]["processed"]["viewers"] != 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
                info = await _stream(http, srv.url)
            assert info["sfu"]["mountpoints"]["processed"]["viewers"] == 1, info["sfu"]
            # Our own fan-out serves one WHEP viewer (source) and one RTP output (processed, to Janus).
            assert info["stats"]["viewers"] == {"processed": 0, "source": 1}
            encoders = {(e["view"], e["viewers"], e["outputs"]) for e in info["stats"]["encoders"]}
            assert encoders == {("processed", 0, 1), ("source", 1, 0)}, info["stats"]["encoders"]
            assert info["sfu"]["mountpoints"]["processed"]["frames_sent"] > 0
            # The monitor's keyframe request came back through Janus (RTCP) to the shared encoder.
            assert info["sfu"]["mountpoints"]["processed"]["keyframe_requests"] >= 1
            received["processed"], received["source"] = list(monitor.frames), list(source.frames)

            # The stream ends (publisher and our viewer gone): its mountpoint is removed from Janus.
            await monitor.close(http)
            await source.close()
            async with http.delete(srv.url + source.location):
                pass
            async with http.delete(srv.url + pub.location) as r:
                assert r.status == 200
            await pub.pc.close()
            track.stop()
            assert await wait_for(lambda: len(srv.service.streams) == 0, 20)
            deadline = time.monotonic() + 20
            while mountpoint in await _mountpoint_ids(janus):
                assert time.monotonic() < deadline, "the mountpoint outlived its stream"
                await asyncio.sleep(0.1)

    asyncio.run(scenario())
    scores = identity_scores(models_dir, detector, mesh, faces / "obama.jpg", received["processed"], received["source"])
    # Most received faces are the identity's (an unswapped stream scores near 0 here), and on average clearly so;
    # a frame or two caught mid-change (a keyframe's first frames, a face the tracker re-acquires) may not be.
    assert scores["n"] >= 8, scores
    assert scores["closer"] >= 0.75, scores
    assert scores["identity"] > scores["actor"] + 0.05, scores


def test_janus_killed_mid_stream_our_viewers_and_the_recording_go_on_and_the_stream_reconnects(
    tmp_path: Path, janus: JanusProcess, clips: Path
) -> None:
    config = _config(tmp_path, janus, processor="passthrough")

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            track = ClipTrack(clips / "d3.mp4", size=(320, 320))
            pub = await publish(http, srv.url, "cam", track)
            sfu = await _sfu_state(http, srv.url, "up", 40)
            mountpoint = sfu["mountpoints"]["processed"]["id"]
            ours = await view(http, srv.url, "cam", "processed")
            async with http.post(f"{srv.url}/api/streams/cam/recording", json={"view": "processed"}) as r:
                assert r.status in (200, 201), await r.text()
            assert await wait_for(lambda: len(ours.times) > 10, 40)

            janus.kill()
            down = await _sfu_state(http, srv.url, "down", 20)
            assert down["error"] and "Janus" in down["error"]
            # While Janus is away: our own viewer and the recording go on.
            seen, recorded = len(ours.times), (await _stream(http, srv.url))["recording"]["frames_recorded"]
            assert await wait_for(lambda: len(ours.times) >= seen + 15, 40)
            stream = await _stream(http, srv.url)
            assert stream["recording"]["active"] and stream["recording"]["frames_recorded"] > recorded
            assert stream["live"] and stream["sfu"]["state"] == "down"

            janus.start()  # the same ports, a fresh Janus with no mountpoints
            up = await _sfu_state(http, srv.url, "up", 30)
            assert up["reconnects"] == 1 and up["error"] is None
            assert up["mountpoints"]["processed"]["id"] == mountpoint  # monitors find it where it was
            monitor = await watch(http, janus.url, mountpoint)
            assert await wait_for(lambda: len(monitor.times) >= 10, 45), len(monitor.times)
            await monitor.close(http)

            async with http.delete(f"{srv.url}/api/streams/cam/recording") as r:
                assert r.status == 200, await r.text()
            await ours.close()
            await pub.pc.close()
            track.stop()

    asyncio.run(scenario())


def test_a_wrong_admin_key_is_refused_by_janus_and_reported_with_its_reason(
    tmp_path: Path, janus: JanusProcess, clips: Path
) -> None:
    sfu = SfuConfig(url=janus.url, admin_key="not-the-key", check_interval_s=0.3, retry_max_s=1.0)
    config = ServeConfig(port=0, data_dir=tmp_path / "data", processor="passthrough", sfu=sfu)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as http:
            session = JanusSession(http, janus.url, "not-the-key")
            await session.open()
            with pytest.raises(JanusError, match="admin_key") as refused:
                await session.create_mountpoint(7, "x", "secret", "vp8")
            assert refused.value.code == 457
            await session.close()
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            track = ClipTrack(clips / "d3.mp4", size=(320, 320))
            pub = await publish(http, srv.url, "cam", track)
            down = await _sfu_state(http, srv.url, "down", 30)
            assert "admin_key" in down["error"]
            assert not await _mountpoint_ids(janus)
            await pub.pc.close()
            track.stop()

    asyncio.run(scenario())


def test_patch_sfu_turns_a_streams_janus_output_off_and_on_with_other_views_through_the_settings_path(
    tmp_path: Path, janus: JanusProcess, clips: Path
) -> None:
    config = _config(tmp_path, janus, processor="passthrough")

    async def patch(http: aiohttp.ClientSession, base: str, body: Any) -> tuple[int, Any]:
        async with http.patch(f"{base}/api/streams/cam", json=body) as r:
            return r.status, await r.json()

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            track = ClipTrack(clips / "d3.mp4", size=(320, 320))
            pub = await publish(http, srv.url, "cam", track)
            first = (await _sfu_state(http, srv.url, "up", 40))["mountpoints"]["processed"]["id"]
            assert (await _stream(http, srv.url))["settings"]["sfu"] == {"views": ["processed"], "codec": "vp8"}

            # Refused whole: a bad sfu value leaves the other keys of the same patch unapplied too.
            status, body = await patch(http, srv.url, {"strength": 0.3, "sfu": {"views": ["both"]}})
            assert status == 400 and "sfu.views" in body["error"]
            status, body = await patch(http, srv.url, {"strength": 0.3, "sfu": {"bitrate": 1}})
            assert status == 400 and "unknown key 'bitrate'" in body["error"]
            assert srv.service.streams.get("cam").settings.strength == pytest.approx(1.0)

            status, body = await patch(http, srv.url, {"sfu": False, "strength": 0.5})
            assert status == 200 and body["settings"]["sfu"] is False and body["sfu"] is None
            assert body["settings"]["strength"] == pytest.approx(0.5)
            deadline = time.monotonic() + 20
            while first in await _mountpoint_ids(janus):
                assert time.monotonic() < deadline, "the mountpoint stayed after sfu: false"
                await asyncio.sleep(0.1)

            want = {"views": ["processed", "source"], "codec": "h264"}
            status, body = await patch(http, srv.url, {"sfu": want})
            assert status == 200 and body["settings"]["sfu"] == want
            up = await _sfu_state(http, srv.url, "up", 30)
            ids = {view: m["id"] for view, m in up["mountpoints"].items()}
            assert set(ids) == {"processed", "source"} and up["codec"] == "h264"
            assert set(ids.values()) <= await _mountpoint_ids(janus)
            monitor = await watch(http, janus.url, ids["source"])
            assert await wait_for(lambda: len(monitor.times) >= 10, 45), len(monitor.times)
            await monitor.close(http)
            await pub.pc.close()
            track.stop()

    asyncio.run(scenario())


def test_without_an_sfu_the_setting_is_refused_with_the_fix(tmp_path: Path, clips: Path) -> None:
    config = ServeConfig(port=0, data_dir=tmp_path / "data", processor="passthrough")

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            track = ClipTrack(clips / "d3.mp4", size=(320, 320))
            pub = await publish(http, srv.url, "cam", track)
            async with http.patch(f"{srv.url}/api/streams/cam", json={"sfu": True}) as r:
                assert r.status == 400 and "--sfu URL" in (await r.json())["error"]
            async with http.patch(f"{srv.url}/api/streams/cam", json={"sfu": False}) as r:
                body = await r.json()
                assert r.status == 200 and body["settings"]["sfu"] is False and body["sfu"] is None
            await pub.pc.close()
            track.stop()

    asyncio.run(scenario())


def test_a_copy_to_a_second_janus_is_watchable_and_its_loss_leaves_the_first_alone(
    tmp_path: Path, janus: JanusProcess, clips: Path
) -> None:
    with janus_process(tmp_path / "janus-b") as second:
        second.admin_key = janus.admin_key  # one admin key for the stage's Janus instances (one Secret)
        second.stop()
        second.start()
        sfu = SfuConfig(
            url=janus.url, admin_key=janus.admin_key, copies=(second.url,), check_interval_s=0.3, retry_max_s=1.0
        )
        config = ServeConfig(port=0, data_dir=tmp_path / "data", processor="passthrough", sfu=sfu)

        async def scenario() -> None:
            async with live_server(config) as srv, aiohttp.ClientSession() as http:
                track = ClipTrack(clips / "d3.mp4", size=(320, 320))
                pub = await publish(http, srv.url, "cam", track)
                await _sfu_state(http, srv.url, "up", 40)
                deadline = time.monotonic() + 30
                while (copy := (await _stream(http, srv.url))["sfu"]["copies"][0])["state"] != "up":
                    assert time.monotonic() < deadline, copy
                    await asyncio.sleep(0.1)
                assert copy["url"] == second.url
                # The same encoded stream, once more: a monitor of the second Janus sees it.
                monitor = await watch(http, second.url, copy["mountpoints"]["processed"]["id"])
                assert await wait_for(lambda: len(monitor.times) >= 10, 45), len(monitor.times)
                await monitor.close(http)
                encoders = (await _stream(http, srv.url))["stats"]["encoders"]
                assert [(e["view"], e["outputs"]) for e in encoders] == [("processed", 2)]  # one encoder for both

                second.kill()
                deadline = time.monotonic() + 20
                while (sfu_now := (await _stream(http, srv.url))["sfu"])["copies"][0]["state"] != "down":
                    assert time.monotonic() < deadline, sfu_now
                    await asyncio.sleep(0.1)
                assert sfu_now["state"] == "up" and sfu_now["error"] is None  # the first Janus goes on
                await pub.pc.close()
                track.stop()

        asyncio.run(scenario())


def test_a_lost_session_while_janus_stays_up_gets_the_same_mountpoint_back_not_a_second_one(
    tmp_path: Path, janus: JanusProcess, clips: Path
) -> None:
    """A network blip: Janus forgets stageswap's session, but the mountpoint (not tied to a session) stays. The
    link replaces it under the same id (it holds its secret) instead of leaving a dead one beside a new one."""
    config = _config(tmp_path, janus, processor="passthrough")

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            track = ClipTrack(clips / "d3.mp4", size=(320, 320))
            pub = await publish(http, srv.url, "cam", track)
            mountpoint = (await _sfu_state(http, srv.url, "up", 40))["mountpoints"]["processed"]["id"]
            link = srv.app[SFU].links["cam"]
            assert link._session is not None
            async with http.post(
                f"{janus.url}/{link._session.session_id}", json={"janus": "destroy", "transaction": "x"}
            ):
                pass
            deadline = time.monotonic() + 30
            while (sfu := (await _stream(http, srv.url))["sfu"])["reconnects"] != 1 or sfu["state"] != "up":
                assert time.monotonic() < deadline, sfu
                await asyncio.sleep(0.1)
            assert sfu["mountpoints"]["processed"]["id"] == mountpoint
            assert await _mountpoint_ids(janus) == {mountpoint}
            monitor = await watch(http, janus.url, mountpoint)
            assert await wait_for(lambda: len(monitor.times) >= 5, 45), len(monitor.times)
            await monitor.close(http)
            await pub.pc.close()
            track.stop()

    asyncio.run(scenario())

"""WHIP in, WHEP out, end to end on loopback with real aiortc peers and a real clip (issue 4 acceptance)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from engines.face.detect import FaceDetector
from engines.face.landmarks import FaceMesh
from streamer.config import ServeConfig
from tests.face_helpers import identity_scores
from tests.live_helpers import (
    ClipTrack,
    LiveServer,
    enroll_unverified,
    live_server,
    publish,
    service_threads,
    threads_left,
    view,
    wait_for,
)

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, **kw: object) -> ServeConfig:
    base: dict[str, object] = {"port": 0, "data_dir": tmp_path / "data", "max_streams": 2, "ingest_timeout_s": 5.0}
    base.update(kw)
    return ServeConfig(**base)  # type: ignore[arg-type]


def stats_in_fps_ok(fps_sent: float, srv: LiveServer) -> bool:
    """Ingest keeps up with the publisher (everything it sends arrives, whatever the worker drops)."""
    return bool(srv.service.streams.get("cam").stats.snapshot()["input_fps"] >= 0.7 * fps_sent)


async def _ingest_stopped(stream: Any, quiet_s: float, timeout_s: float) -> bool:
    """Wait until no frame came in (the stream's ``frames_in``) for ``quiet_s``; False after ``timeout_s``."""
    last, since = stream.stats.snapshot()["frames_in"], time.monotonic()
    deadline = since + timeout_s
    while time.monotonic() - since < quiet_s:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
        now = stream.stats.snapshot()["frames_in"]
        if now != last:
            last, since = now, time.monotonic()
    return True


def _tasks() -> list[asyncio.Task[object]]:
    """Tasks on the loop, less the HTTP keep-alive connections the test's own client holds open."""
    return [t for t in asyncio.all_tasks() if "RequestHandler.start" not in repr(t.get_coro())]


async def _delete(http: aiohttp.ClientSession, base: str, location: str) -> int:
    async with http.delete(base + location) as r:
        return r.status


def test_publish_clip_with_an_enrolled_identity_view_both_views_then_delete_frees_everything(
    tmp_path: Path, clips: Path, faces: Path, models_dir: Path, detector: FaceDetector, mesh: FaceMesh
) -> None:
    # Ingest may wait 30 s for media: a busy machine stalled the publisher past the 5 s default (not asserted on).
    # Viewers too: this process's loop, starved, sent no receiver reports for seconds and the watchdog closed a
    # view mid-window (its count missing; the watchdog has its own test in test_faults.py).
    config = _config(tmp_path, models_dir=models_dir, ingest_timeout_s=30.0, viewer_timeout_s=60.0)
    threads_before = service_threads()
    received: dict[str, list[np.ndarray]] = {}

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            tasks_before = len(_tasks())
            await enroll_unverified(http, srv.url, "obama", faces / "obama.jpg")  # a test identity: no consent record
            track = ClipTrack(clips / "d3.mp4")
            pub = await publish(http, srv.url, "cam", track)
            # The stream exists once the publisher's media starts (a busy machine took a while: PATCH got a 404).
            assert await wait_for(lambda: srv.service.streams.find("cam") is not None, 45)
            async with http.patch(f"{srv.url}/api/streams/cam", json={"identity": "obama"}) as r:
                assert r.status == 200
            processed = await view(http, srv.url, "cam", "processed", keep_every=3)
            source = await view(http, srv.url, "cam", "source", keep_every=3)
            stream = srv.service.streams.get("cam")
            # Generous: a run niced under load 19 once had fewer than 11 on a view after 45 s (the processor's
            # models and the identity load first).
            assert await wait_for(lambda: len(processed.times) > 10 and len(source.times) > 10, 90), (
                len(processed.times),
                len(source.times),
                stream.to_dict()["stats"],
            )
            peers = srv.service.peers
            assert peers is not None

            def handed() -> dict[str, int]:
                """Encoded frames the server handed to each viewer's RTP sender, by view."""
                ids = {processed.location.rsplit("/", 1)[1]: "processed", source.location.rsplit("/", 1)[1]: "source"}
                return {ids[x.id]: x.track.packets_sent for x in peers.sessions() if x.id in ids and x.track}

            t0, sent0, done0, out0 = time.monotonic(), track.sent, stream.stats.snapshot()["frames_processed"], handed()
            recv0 = {"processed": len(processed.times), "source": len(source.times)}
            # A window of at least 4 s, longer on a busy machine until some frames went all the way through and
            # each viewer kept the frames judged after the scenario (every 3rd received, 10 processed: the
            # share closer to the identity is judged on about ten, so one face of d3's few borderline frames
            # (around frame 215 its margin is 0.01-0.03 of cosine) does not fail it alone, as it did a run
            # judging six; a busy machine once sent only 4 in 4 s, load 17).
            await asyncio.sleep(4.0)
            await wait_for(
                lambda: (
                    stream.stats.snapshot()["frames_processed"] - done0 >= 10
                    and len(processed.times) - recv0["processed"] >= 5
                    and len(source.times) - recv0["source"] >= 5
                    and len(processed.frames) >= 10
                    and len(source.frames) >= 5
                ),
                40,
            )
            t1, sent1, done1, out1 = time.monotonic(), track.sent, stream.stats.snapshot()["frames_processed"], handed()
            recv1 = {"processed": len(processed.times), "source": len(source.times)}
            async with http.get(f"{srv.url}/api/streams/cam") as r:
                assert r.status == 200
                info = await r.json()

            # What this test is about, measured so a busy machine cannot break it (throughput and latency
            # figures are benchmarks: bench_latency.py). Counts are taken in the same window, so a slow
            # machine slows the publisher, the worker and the viewers alike:
            # - frames arrive: the worker processed some and both viewers received some;
            # - the views stay in step: each view's sender was handed (nearly) every frame the worker took,
            #   the source view carrying the same frames before processing;
            # - nothing queues: when the camera stops, what is still in flight is a few frames (the ring's
            #   slots and one in each encoder), never a backlog worked off afterwards (next block).
            counts = {
                "sent": sent1 - sent0,
                "processed": done1 - done0,
                "handed": {k: out1[k] - out0.get(k, 0) for k in out1},
                "received": {k: recv1[k] - recv0[k] for k in recv1},
            }
            assert track.fps == pytest.approx(30.0)
            assert counts["processed"] >= 10 and min(counts["received"].values()) >= 5, counts
            assert counts["processed"] <= counts["sent"] + 3, counts  # latest wins: never more than came in
            # Each view's encoder takes the newest processed frame when it is free (it may skip one on a
            # starved machine, never queue), so both carry most of them and neither more than there were.
            for view_name in ("processed", "source"):
                assert 0.5 * counts["processed"] - 3 <= counts["handed"][view_name] <= counts["processed"] + 3, counts
            assert stats_in_fps_ok(counts["sent"] / (t1 - t0), srv), counts
            assert processed.frames and source.frames
            assert processed.frames[-1].shape == (512, 512, 3)
            received["processed"], received["source"] = list(processed.frames), list(source.frames)
            stats = info["stats"]
            assert info["live"] and info["publisher"] and info["settings"]["identity"] == "obama"
            assert (
                stats["faces"] == 1 and stats["frames_processed"] >= counts["processed"] and stats["frames_failed"] == 0
            )
            assert stats["viewers"] == {"processed": 1, "source": 1}
            assert stats["output_fps"] > 0
            assert stats["latency_ms"]["p50"] > 0
            assert {"detect", "landmarks", "swap", "total"} <= set(stats["stage_ms"])
            # One encoder per view (codec VP8 here), not one per viewer.
            assert sorted((e["view"], e["viewers"]) for e in stats["encoders"]) == [("processed", 1), ("source", 1)]
            # Every stage's drops are counted (issue 20); the publisher's decoder has its bounded backlog.
            assert set(stats["drops"]) == {"decode", "ingest", "ring", "encoder"}
            drops = stats["drops"]
            assert stats["frames_dropped"] == drops["decode"] + drops["ingest"] + drops["ring"]
            assert stream.decode_backlog is not None and stream.decode_backlog.max_frames == 3

            # Nothing queues: the camera stops; once what was on the wire has come in (0.3 s on a quiet machine;
            # on a busy one the publisher shares this event loop and its last packets come later), the service
            # works off a handful of frames, however far behind a busy machine had left it.
            track.stall()
            await asyncio.sleep(0.3)
            assert await _ingest_stopped(stream, 0.3, 20), "frames kept coming in after the camera stopped"
            stalled_done, stalled_out = stream.stats.snapshot()["frames_processed"], handed()
            await asyncio.sleep(1.5)
            after = {
                "processed": stream.stats.snapshot()["frames_processed"] - stalled_done,
                "handed": {k: v - stalled_out[k] for k, v in handed().items()},
            }
            assert after["processed"] <= 4, after
            assert max(after["handed"].values()) <= 5, after

            # DELETE ends every session and frees the stream, its threads and tasks.
            for loc in (processed.location, source.location, pub.location):
                assert await _delete(http, srv.url, loc) == 200
            assert await _delete(http, srv.url, pub.location) == 404  # already ended
            await processed.close()
            await source.close()
            await pub.pc.close()
            track.stop()
            assert await wait_for(lambda: len(srv.service.streams) == 0, 10)
            assert srv.service.peers is not None and len(srv.service.peers) == 0
            assert await wait_for(lambda: not threads_left(threads_before), 10), threads_left(threads_before)
            assert await wait_for(lambda: len(_tasks()) <= tasks_before, 10), _tasks()
            async with http.get(f"{srv.url}/api/streams") as r:
                assert (await r.json()) == {"streams": []}

    asyncio.run(scenario())
    assert not threads_left(threads_before)

    # The received processed frames show the enrolled identity, judged as the quality evaluation does: an
    # independent recogniser compares each received face with the identity photo and with the actor.
    scores = identity_scores(models_dir, detector, mesh, faces / "obama.jpg", received["processed"], received["source"])
    assert scores["n"] >= 5, scores
    assert scores["closer"] >= 0.9, scores
    assert scores["identity"] >= 0.25 and scores["identity"] > scores["actor"], scores


def test_bad_requests_are_refused_with_a_reason_while_the_stream_goes_on(tmp_path: Path, clips: Path) -> None:
    config = _config(tmp_path, processor="passthrough")

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            track = ClipTrack(clips / "d3.mp4", size=(256, 256))
            pub = await publish(http, srv.url, "cam", track)
            watcher = await view(http, srv.url, "cam")
            assert await wait_for(lambda: len(watcher.times) > 5, 40)
            good_offer = pub.pc.localDescription.sdp  # a well-formed sendonly video offer
            sdp = {"Content-Type": "application/sdp"}

            async def post(path: str, data: bytes | str, headers: dict[str, str]) -> tuple[int, str]:
                async with http.post(srv.url + path, data=data, headers=headers) as r:
                    body = await r.json()
                    return r.status, body["error"]

            t0 = time.monotonic()
            cases: list[tuple[str, str | bytes, dict[str, str], int, str]] = [
                ("/whip/cam2", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\nm=video banana\r\n", sdp, 400, "malformed SDP"),
                ("/whip/cam2", b"\xff\xfe\x00garbage", sdp, 400, "malformed SDP"),
                ("/whip/cam2", "hello", sdp, 400, "malformed SDP"),
                ("/whip/cam2", good_offer, {"Content-Type": "text/plain"}, 415, "application/sdp"),
                ("/whip/cam2", good_offer, {"Content-Type": "application/json"}, 415, "application/sdp"),
                ("/whep/nobody", _recvonly_offer(good_offer), sdp, 404, "unknown stream"),
                ("/whip/Not_Valid", good_offer, sdp, 400, "invalid stream name"),
                ("/whip/-dash", good_offer, sdp, 400, "invalid stream name"),
                ("/whip/" + "a" * 65, good_offer, sdp, 400, "invalid stream name"),
                ("/whip/cam2", "v=0\r\n" + "a=x\r\n" * 20000, sdp, 413, "limit"),
                ("/whip/cam", good_offer, sdp, 409, "already has a publisher"),
                ("/whep/cam?view=thermal", _recvonly_offer(good_offer), sdp, 400, "view must be one of"),
                ("/whip/cam2", _recvonly_offer(good_offer), sdp, 400, "sends no video"),
                ("/whep/cam", good_offer, sdp, 400, "receives no video"),
            ]
            for path, data, headers, status, reason in cases:
                got_status, got_reason = await post(path, data, headers)
                assert (got_status, reason in got_reason) == (status, True), (path, got_status, got_reason)
            async with http.delete(f"{srv.url}/whip/cam/nosuchsession") as r:
                assert r.status == 404 and "no WHIP session" in (await r.json())["error"]
            async with http.patch(f"{srv.url}{pub.location}", data="a=candidate", headers=sdp) as r:
                assert r.status == 405  # trickle ICE is not supported (RFC 9725 4.3.1)
            # The service is unaffected: no stream was created, the publisher and viewer go on at full rate.
            assert [s.name for s in srv.service.streams] == ["cam"]
            assert srv.service.peers is not None and len(srv.service.peers) == 2
            sent0 = track.sent
            await asyncio.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
            got = sum(1 for t in watcher.times if t >= t0)
            # Half of what was sent in the same window: on a busy machine the worker and the encoder take the
            # newest frame and skip some (and this loop, which runs the publisher too, sends late ones in a
            # burst); a stream stopped or stalled by the requests gets next to none.
            assert got >= 0.5 * (track.sent - sent0 + 1) - 2, (got, track.sent, sent0)
            await watcher.close()
            await pub.pc.close()
            track.stop()

    asyncio.run(scenario())


def _recvonly_offer(sendonly_offer: str) -> str:
    return sendonly_offer.replace("a=sendonly", "a=recvonly")


def test_publisher_that_stops_sending_is_cleaned_up_and_a_new_one_resumes_the_viewers(
    tmp_path: Path, clips: Path
) -> None:
    config = _config(tmp_path, processor="passthrough", ingest_timeout_s=1.5)

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            first = ClipTrack(clips / "d3.mp4", size=(256, 256))
            pub = await publish(http, srv.url, "cam", first)
            watcher = await view(http, srv.url, "cam", keep_every=1)
            assert await wait_for(lambda: len(watcher.times) > 5, 40)
            async with http.patch(f"{srv.url}/api/streams/cam", json={"strength": 0.3}) as r:
                assert r.status == 200
            first.stall()  # the camera just stops: no DELETE, the peer connection stays open
            stream = srv.service.streams.get("cam")
            t_stall = time.monotonic()
            assert await wait_for(lambda: stream.publisher is None, 20)
            assert time.monotonic() - t_stall < 1.5 + 8.0  # the ingest timeout, with a busy loop's slack
            assert srv.service.peers is not None and len(srv.service.peers) == 1  # only the viewer is left
            assert not stream.live and "cam" in [s.name for s in srv.service.streams]
            # Another publisher takes the free stream, at another size; the waiting viewer resumes.
            second = ClipTrack(clips / "d10.mp4", size=(320, 240))
            pub2 = await publish(http, srv.url, "cam", second)
            n = len(watcher.times)
            assert await wait_for(lambda: len(watcher.times) > n + 20, 40)
            assert watcher.frames[-1].shape == (240, 320, 3)
            # A publisher whose peer connection closes without DELETE is cleaned up too.
            await pub2.pc.close()
            assert await wait_for(lambda: stream.publisher is None, 20)
            await _delete(http, srv.url, watcher.location)
            await watcher.close()
            await pub.pc.close()
            first.stop()
            second.stop()
            assert await wait_for(lambda: len(srv.service.streams) == 0, 10)
            # The stream ended; when its camera comes back it has the settings the operator left it with.
            async with http.get(f"{srv.url}/api/streams/cam") as r:
                assert r.status == 404
            third = ClipTrack(clips / "d3.mp4", size=(256, 256))
            pub3 = await publish(http, srv.url, "cam", third)
            async with http.get(f"{srv.url}/api/streams/cam") as r:
                assert (await r.json())["settings"]["strength"] == 0.3
            await pub3.pc.close()
            third.stop()

    asyncio.run(scenario())


def test_viewer_that_vanishes_without_delete_is_cleaned_up(tmp_path: Path, clips: Path) -> None:
    config = _config(tmp_path, processor="passthrough")

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            track = ClipTrack(clips / "d3.mp4", size=(256, 256))
            pub = await publish(http, srv.url, "cam", track)
            watcher = await view(http, srv.url, "cam")
            assert await wait_for(lambda: len(watcher.times) > 5, 40)
            stream = srv.service.streams.get("cam")
            assert stream.fanout.viewers()["processed"] == 1
            await watcher.close()  # no DELETE
            assert await wait_for(lambda: not stream.viewers, 20)
            assert stream.fanout.viewers()["processed"] == 0
            assert await wait_for(lambda: not [t for t in service_threads() if t.startswith("encode-")], 20)
            await pub.pc.close()
            track.stop()

    asyncio.run(scenario())


def test_two_streams_three_viewers_each_and_a_stalled_viewer_slows_nobody(tmp_path: Path, clips: Path) -> None:
    config = _config(tmp_path, processor="passthrough")

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            tracks = {
                name: ClipTrack(clips / clip, size=(256, 256)) for name, clip in (("a", "d3.mp4"), ("b", "d10.mp4"))
            }
            pubs = [await publish(http, srv.url, name, track) for name, track in tracks.items()]
            viewers = {name: [await view(http, srv.url, name) for _ in range(2)] for name in tracks}
            # The third viewer of stream a runs in its own process, so that it can really stall (SIGSTOP).
            child = subprocess.Popen(
                [sys.executable, "-m", "tests.live_helpers", "view", srv.url, "a"],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            try:
                # Generous waits: a child Python importing aiortc takes seconds on a quiet machine, a minute at load 30.
                line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 120)  # type: ignore[union-attr]
                assert line.strip() == "ready", line + (child.stderr.read() if child.poll() is not None else "")  # type: ignore[union-attr]
                line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)  # type: ignore[union-attr]
                assert line.startswith("frames"), line
                everyone = [v for vs in viewers.values() for v in vs]
                assert await wait_for(lambda: all(len(v.times) > 10 for v in everyone), 90)
                stream_a = srv.service.streams.get("a")
                assert len(stream_a.viewers) == 3 and stream_a.fanout.viewers()["processed"] == 3
                assert len(srv.service.streams.get("b").viewers) == 2
                sent: dict[str, list[tuple[float, int]]] = {name: [] for name in tracks}  # (time, frames sent)

                async def sample(seconds: float) -> float:
                    for _ in range(int(seconds / 0.25)):
                        for name, track in tracks.items():
                            sent[name].append((time.monotonic(), track.sent))
                        await asyncio.sleep(0.25)
                    return time.monotonic()

                def sent_between(name: str, a: float, b: float) -> int:
                    inside = [n for t, n in sent[name] if a <= t <= b]
                    return inside[-1] - inside[0]

                def packets_sent() -> dict[str, int]:
                    """Encoded frames the server handed to each viewer's RTP sender, by session id."""
                    peers = srv.service.peers
                    assert peers is not None
                    return {x.id: x.track.packets_sent for x in peers.sessions() if x.track is not None}

                t0, at_t0 = time.monotonic(), packets_sent()
                t1 = await sample(3.0)
                at_t1 = packets_sent()
                child.send_signal(signal.SIGSTOP)  # the viewer stalls: it reads nothing, answers nothing
                t2 = await sample(3.0)
                at_t2 = packets_sent()
                # The server goes on serving every other viewer as before: each one's sender is handed the
                # frames its publisher sends, at the same rate as before the stall (rates are taken against
                # the publisher's own in the same window, so a busy machine shifts both alike; the bounds leave
                # room for the latest-wins skips of a busy machine, which vary between the two windows: a
                # viewer held up by the stalled one would be handed next to nothing).
                for name, vs in viewers.items():
                    for v in vs:
                        sid = v.location.rsplit("/", 1)[1]
                        before = (at_t1[sid] - at_t0[sid]) / max(1, sent_between(name, t0, t1))
                        during = (at_t2[sid] - at_t1[sid]) / max(1, sent_between(name, t1, t2))
                        assert during >= 0.4 and during >= 0.7 * before, (name, before, during)
                assert stream_a.stats.snapshot()["frames_processed"] > 0
                assert len(stream_a.viewers) == 3  # still counted: consent has not failed yet
            finally:
                child.send_signal(signal.SIGCONT)
                child.kill()
                child.wait()
            for v in [v for vs in viewers.values() for v in vs]:
                await v.close()
            for p in pubs:
                await p.pc.close()
            for t in tracks.values():
                t.stop()

    asyncio.run(scenario())


def test_ingest_takes_the_newest_frame_when_the_loop_fell_behind(tmp_path: Path) -> None:
    """Frames aiortc decoded while the event loop was busy are skipped (counted), never worked through."""
    from aiortc.mediastreams import MediaStreamError

    from streamer.live.streams import StreamRegistry
    from streamer.live.webrtc import PeerSession, _drain
    from streamer.live.worker import PassthroughProcessor

    class _Track:  # aiortc's RemoteStreamTrack in miniature: a decoded-frame queue, None marks the end
        def __init__(self) -> None:
            self.queue: asyncio.Queue[object] = asyncio.Queue()

        async def recv(self) -> object:
            frame = await self.queue.get()
            if frame is None:
                raise MediaStreamError
            return frame

    class _Registry:
        def __init__(self) -> None:
            self.closed: list[str] = []

        def close_soon(self, session: object, reason: str) -> None:
            self.closed.append(reason)

    def frame(value: int) -> object:
        import av

        return av.VideoFrame.from_ndarray(np.full((32, 32, 3), value, np.uint8), format="bgr24")

    class _Sink:
        def on_frame(self, processed: np.ndarray, source: np.ndarray, meta: object, result: object) -> None:
            seen.append(int(source[0, 0, 0]))

    seen: list[int] = []
    streams = StreamRegistry(_config(tmp_path), PassthroughProcessor)
    stream = streams.create("cam", "whip")
    stream.fanout.add_sink(_Sink())
    try:

        async def scenario() -> None:
            track, registry = _Track(), _Registry()
            for v in (10, 20, 30, 40):  # four frames waiting at once: the loop was busy
                track.queue.put_nowait(frame(v))
            session = PeerSession("s1", "whip", stream, None)  # type: ignore[arg-type]
            task = asyncio.ensure_future(_drain(registry, session, track))  # type: ignore[arg-type]
            await asyncio.sleep(0.1)
            assert session.frames == 1 and stream.ingest_dropped == 3
            assert await wait_for(lambda: len(seen) == 1, 2)
            assert seen == [40]  # only the newest went on to the worker
            track.queue.put_nowait(frame(50))  # one at a time: each is taken
            await asyncio.sleep(0.05)
            track.queue.put_nowait(None)
            await asyncio.wait_for(task, 2)
            assert session.frames == 2 and stream.ingest_dropped == 3
            assert registry.closed == ["the publisher ended its track"]
            assert stream.to_dict()["stats"]["frames_dropped"] >= 3

        asyncio.run(scenario())
    finally:
        streams.detach("cam")
        stream.close()


def test_a_viewers_picture_loss_report_asks_the_shared_encoder_for_a_keyframe() -> None:
    """aiortc's sender answers RTCP PLI/FIR with ``_send_keyframe``; for pre-encoded packets that must
    reach the shared encoder, else a viewer that lost a packet waits for the periodic keyframe."""
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.rtp import RTCP_PSFB_PLI, RtcpPsfbPacket

    from streamer.live.keyframes import forward_keyframe_requests
    from streamer.live.webrtc import ViewerTrack

    class _Encoder:
        requests = 0

        def request_keyframe(self) -> None:
            self.requests += 1

    async def scenario() -> None:
        track = ViewerTrack(asyncio.get_running_loop(), max_frames=3)
        encoder = _Encoder()
        track.encoder = encoder  # type: ignore[assignment]
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        sender = pc.addTrack(track)
        forward_keyframe_requests(sender, track.request_keyframe)
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=RTCP_PSFB_PLI, ssrc=1, media_ssrc=sender._ssrc))
        assert encoder.requests == 1
        await pc.close()

    asyncio.run(scenario())

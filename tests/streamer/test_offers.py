"""Hostile SDP offers (issue 18): bounded before any work is done.

The probe's offer of ~580 m-lines held the event loop for seconds (one took a GET to 3.8 s; fifteen froze
viewers for 19 s and kept 750 MB); one listing 100 remote candidates had ICE send 500 checks to them. Here
such offers are refused on their text, before anything parses them (checked structurally: neither the
parser nor a peer connection is reached), the server's memory is back within 10% after them, and a viewer
watching meanwhile keeps its stream. How long GETs and frame gaps are meanwhile is measured by
benchmarks/bench_offers.py (BENCHMARKS.md), not here: a busy machine moves those, not the design.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engines.errors import InputError
from streamer.config import WHEP_OFFER_LIMITS, WHIP_OFFER_LIMITS, InputSpec, ServeConfig
from streamer.errors import CapacityError
from streamer.live import webrtc
from streamer.live.offers import NegotiationGate, screen_offer
from tests.hostile_offers import many_candidates_offer, many_mlines_offer, real_offer
from tests.live_helpers import live_server, view, wait_for

SDP = {"Content-Type": "application/sdp"}


@pytest.fixture(scope="module")
def viewer_offer() -> str:
    return real_offer("recvonly", audio=True)


@pytest.fixture(scope="module")
def publisher_offer() -> str:
    return real_offer("sendonly", audio=True)


def test_real_offers_pass_the_screen_unchanged(viewer_offer: str, publisher_offer: str) -> None:
    assert screen_offer(viewer_offer, WHEP_OFFER_LIMITS, "whep") == viewer_offer
    assert screen_offer(publisher_offer, WHIP_OFFER_LIMITS, "whip") == publisher_offer


def test_an_offer_of_too_many_m_lines_is_refused_with_the_limit(viewer_offer: str) -> None:
    offer = many_mlines_offer(viewer_offer, 150)
    assert len(offer) < WHEP_OFFER_LIMITS.max_bytes  # within the size limit: the m-lines are what is refused
    with pytest.raises(InputError, match="the offer has 150 m-lines; a WHEP offer may have at most 4"):
        screen_offer(offer, WHEP_OFFER_LIMITS, "whep")


def test_too_many_candidates_keep_the_highest_priority_ones(viewer_offer: str) -> None:
    offer = many_candidates_offer(viewer_offer, 100)
    screened = screen_offer(offer, WHEP_OFFER_LIMITS, "whep")
    kept = re.findall(r"^a=candidate:(\d+) ", screened, flags=re.MULTILINE)
    assert len(kept) == WHEP_OFFER_LIMITS.max_candidates
    assert sorted(map(int, kept)) == list(range(WHEP_OFFER_LIMITS.max_candidates))  # priorities fall with i
    assert screened.replace("\r\n", "\n").count("\nm=") == offer.replace("\r\n", "\n").count("\nm=")


def test_the_gate_answers_a_few_offers_at_once_and_refuses_a_flood() -> None:
    async def scenario() -> None:
        gate = NegotiationGate(2)
        inside = peak = 0
        release = asyncio.Event()

        async def offer() -> None:
            nonlocal inside, peak
            async with gate.turn():
                inside += 1
                peak = max(peak, inside)
                await release.wait()
                inside -= 1

        waiting = [asyncio.ensure_future(offer()) for _ in range(10)]  # 2 answered, 8 waiting: the most allowed
        await asyncio.sleep(0.05)
        with pytest.raises(CapacityError, match="8 offers are waiting"):
            async with gate.turn():
                pass
        release.set()
        await asyncio.gather(*waiting)
        assert peak == 2

    asyncio.run(scenario())


def _rss_mb() -> float:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_fifteen_hostile_offers_are_refused_before_any_parsing_and_leave_nothing_behind(
    tmp_path: Path, clips: Path, viewer_offer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ServeConfig(
        port=0, data_dir=tmp_path, inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),), processor="passthrough"
    )
    probe = many_mlines_offer(viewer_offer, 580)  # the probe's: 580 m-lines, BUNDLE, about 56 KB
    compact = many_mlines_offer(viewer_offer, 150)  # within the size limit
    reached: list[str] = []

    def parse_offer(*args: Any) -> None:
        reached.append("parse")
        raise AssertionError("a hostile offer was parsed")

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            watcher = await view(http, srv.url, "cam")
            assert await wait_for(lambda: len(watcher.times) > 10, 60)
            monkeypatch.setattr(webrtc, "parse_offer", parse_offer)  # the screen comes before the parser
            monkeypatch.setattr(webrtc, "StagePeerConnection", lambda *a: reached.append("peer connection"))
            before_mb = _rss_mb()
            frames_before = len(watcher.times)

            async def post(path: str, offer: str) -> tuple[int, str]:
                async with http.post(srv.url + path, data=offer, headers=SDP) as r:
                    return r.status, (await r.json())["error"]

            answers = await asyncio.gather(
                *(post("/whep/cam", probe) for _ in range(15)),
                *(post("/whep/cam", compact) for _ in range(15)),
                *(post("/whip/other", compact.replace("a=recvonly", "a=sendonly")) for _ in range(5)),
            )
            for status, error in answers[:15]:
                assert (status, f"of {len(probe)} bytes is over the 16384-byte limit" in error) == (413, True), error
            for status, error in answers[15:30]:
                assert (status, "the offer has 150 m-lines; a WHEP offer may have at most 4" in error) == (400, True)
            for status, error in answers[30:]:
                assert (status, "the offer has 150 m-lines; a WHIP offer may have at most 4" in error) == (400, True)
            assert not reached
            assert len(srv.service.peers or ()) == 1  # the watcher alone
            assert [s.name for s in srv.service.streams] == ["cam"]
            # The viewer goes on, and a plain GET is answered.
            assert await wait_for(lambda: len(watcher.times) > frames_before + 10, 60)
            async with http.get(f"{srv.url}/api/streams/cam") as r:
                assert r.status == 200
            after_mb = _rss_mb()
            assert after_mb <= 1.1 * before_mb, (before_mb, after_mb)
            await watcher.close()

    asyncio.run(scenario())


def test_an_offer_of_a_hundred_candidates_gets_a_session_that_checks_twenty(
    tmp_path: Path, clips: Path, viewer_offer: str
) -> None:
    config = ServeConfig(
        port=0, data_dir=tmp_path, inputs=(InputSpec.parse(f"cam={clips / 'd3.mp4'}"),), processor="passthrough"
    )
    offer = many_candidates_offer(viewer_offer, 100)

    async def scenario() -> None:
        async with live_server(config) as srv, aiohttp.ClientSession() as http:
            async with http.post(f"{srv.url}/whep/cam", data=offer, headers=SDP) as r:
                assert r.status == 201, await r.text()
            (session,) = srv.service.peers.sessions()  # type: ignore[union-attr]
            remote = session.pc.remoteDescription.sdp
            assert remote.count("a=candidate:") == WHEP_OFFER_LIMITS.max_candidates
            await srv.service.peers.close_all("test over")  # type: ignore[union-attr]

    asyncio.run(scenario())

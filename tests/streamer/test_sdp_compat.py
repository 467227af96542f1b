"""Offers as other stacks write them: codecs stageswap cannot take, H.264 of other profiles, rejected m-lines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCPeerConnection
from aiortc.sdp import SessionDescription

from engines.errors import InputError
from streamer.config import ServeConfig
from streamer.live.sdp_compat import adapt_offer
from streamer.live.worker import PassthroughProcessor
from tests.live_helpers import live_server


async def _make_offer(direction: str) -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction=direction)
    pc.addTransceiver("video", direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    await pc.close()
    return str(pc.localDescription.sdp)


def _offer(direction: str = "sendonly") -> str:
    """A real offer (aiortc's: BUNDLE, mids, rtx) with audio and video, to rewrite like other stacks."""
    return asyncio.run(_make_offer(direction))


def _only_codec(sdp: str, kind: str, rtpmap: str, fmtp: str | None = None) -> str:
    """The offer with its ``kind`` m-line carrying one codec (payload type 96) instead of aiortc's."""
    out: list[str] = []
    inside = False
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("m="):
            inside = line.startswith(f"m={kind}")
            if inside:
                line = " ".join(line.split(" ")[:3] + ["96"])
        elif inside and line.startswith(("a=rtpmap:", "a=fmtp:", "a=rtcp-fb:")):
            continue
        out.append(line)
        if inside and line.startswith("a=mid:"):
            out += [f"a=rtpmap:96 {rtpmap}"] + ([f"a=fmtp:96 {fmtp}"] if fmtp else [])
    return "\r\n".join(out)


def _only_video_codec(sdp: str, rtpmap: str, fmtp: str | None = None) -> str:
    return _only_codec(sdp, "video", rtpmap, fmtp)


def _audio_as(sdp: str, rtpmap: str) -> str:
    return _only_codec(sdp, "audio", rtpmap)


def test_an_offer_whose_video_has_no_codec_we_take_is_refused_naming_what_we_accept() -> None:
    for rtpmap, fmtp in (("AV1/90000", None), ("H265/90000", None), ("H264/90000", "packetization-mode=0")):
        with pytest.raises(InputError) as err:
            adapt_offer(_only_video_codec(_offer(), rtpmap, fmtp), "send")
        message = str(err.value)
        assert rtpmap.split("/")[0] in message and "VP8" in message and "H.264" in message and "Opus" in message


def test_high_profile_h264_is_read_as_baseline_by_aiortc_and_answered_with_its_own_profile() -> None:
    high = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f"
    offer = _only_video_codec(_offer(), "H264/90000", high)
    adapted = adapt_offer(offer, "send")
    assert "profile-level-id=42e01f" in adapted.sdp and "640c1f" not in adapted.sdp
    answer = adapted.answer(adapted.sdp.replace("a=setup:actpass", "a=setup:passive"))
    assert "profile-level-id=640c1f" in answer and "42e01f" not in answer


def test_sound_we_cannot_decode_is_answered_rejected_and_left_out_of_the_bundle() -> None:
    offer = _audio_as(_offer(), "MPEG4-GENERIC/48000/2")
    adapted = adapt_offer(offer, "send")
    assert adapted.rejected_kinds == ("audio",)
    aiortc_sees = SessionDescription.parse(adapted.sdp)
    assert [m.kind for m in aiortc_sees.media] == ["video"]
    assert aiortc_sees.group[0].items == [aiortc_sees.media[0].rtp.muxId]
    # aiortc's answer to what it read, given back with the audio m-line in its place, rejected.
    answer = adapted.answer(adapted.sdp)
    kinds = [line.split(" ")[:2] for line in answer.splitlines() if line.startswith("m=")]
    assert kinds[0] == ["m=audio", "0"] and kinds[1][0] == "m=video" and kinds[1][1] != "0"
    audio_section = answer.split("m=video")[0].split("m=audio")[1]
    assert "a=inactive" in audio_section and "a=mid:0" in audio_section


@pytest.mark.parametrize("kind", ["whip", "whep"])
def test_the_service_refuses_unsupported_video_with_the_codecs_it_accepts_and_answers_the_rest(
    tmp_path: Path, clips: Path, kind: str
) -> None:
    from streamer.config import InputSpec

    direction = "sendonly" if kind == "whip" else "recvonly"
    stream = "camera" if kind == "whip" else "cam"
    config = ServeConfig(data_dir=tmp_path, inputs=(InputSpec.parse(f"cam={clips / 'd10.mp4'}"),))

    async def run() -> None:
        async with live_server(config, make_processor=PassthroughProcessor) as server, aiohttp.ClientSession() as http:
            url = f"{server.url}/{kind}/{stream}"
            headers = {"Content-Type": "application/sdp"}
            av1 = _only_video_codec(await _make_offer(direction), "AV1/90000")
            async with http.post(url, data=av1, headers=headers) as r:
                assert r.status == 400
                error = (await r.json())["error"]
                assert "AV1" in error and "VP8" in error and "H.264" in error
            assert server.service.peers is not None and len(server.service.peers) == 0
            # Sound nobody here decodes, with a picture we take: answered, the sound rejected.
            offer = _audio_as(await _make_offer(direction), "MPEG4-GENERIC/48000/2")
            async with http.post(url, data=offer, headers=headers) as r:
                assert r.status == 201, await r.text()
                answer = await r.text()
                location = r.headers["Location"]
            assert [line.split(" ")[1] for line in answer.splitlines() if line.startswith("m=audio")] == ["0"]
            async with http.delete(server.url + location) as r:
                assert r.status == 200

    asyncio.run(run())

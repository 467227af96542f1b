"""RtpOutput and RtcpChannel on loopback sockets: what Janus's Streaming plugin receives from us."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RtcpPacket, RtcpPsfbPacket, RtcpSrPacket, RtpPacket

from streamer.live.fanout import EncoderSettings, VideoEncoder
from streamer.live.rtp_out import RtcpChannel, RtpOutput, keyframe_requested


def _frames(codec: str, count: int) -> list[tuple[object, bool]]:
    encoder = VideoEncoder(codec, EncoderSettings())  # type: ignore[arg-type]
    rng = np.random.default_rng(3)
    out = []
    for i in range(count):
        image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)  # noise: every frame spans many packets
        for packet in encoder.encode(image, i * 3000, keyframe=i == 0):
            out.append((packet, bool(packet.is_keyframe)))
    return out


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_each_encoded_frame_goes_out_as_rtp_packets_ending_on_a_marker(codec: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(2.0)
        output = RtpOutput(codec, 96, receiver.getsockname())  # type: ignore[arg-type]
        frames = _frames(codec, 3)
        for packet, key in frames:
            output.deliver(packet, key)  # type: ignore[arg-type]
        packets = [RtpPacket.parse(receiver.recv(2048)) for _ in range(output.packets_sent)]
        output.close()
        output.deliver(*frames[0])  # type: ignore[arg-type]  # closed: nothing sent, nothing raised
    assert output.frames_sent == 3 and output.keyframes_sent == 1 and output.send_errors == 0
    assert output.packets_sent == len(packets) > 3  # large frames are split
    assert all(p.ssrc == output.ssrc and p.payload_type == 96 for p in packets)
    seqs = [p.sequence_number for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    by_ts: dict[int, list[RtpPacket]] = {}
    for p in packets:
        by_ts.setdefault(p.timestamp, []).append(p)
    assert len(by_ts) == 3  # one RTP timestamp per frame, 3000 ticks (1/30 s) apart
    stamps = sorted(by_ts)
    assert [(b - a) % 2**32 for a, b in zip(stamps, stamps[1:], strict=False)] == [3000, 3000]
    for group in by_ts.values():
        assert [p.marker for p in group] == [0] * (len(group) - 1) + [1]
    if codec == "vp8":  # each frame starts a VP8 partition
        first = [VpxPayloadDescriptor.parse(group[0].payload)[0] for group in by_ts.values()]
        assert all(d.partition_start == 1 for d in first)


def test_a_receiver_that_is_gone_costs_a_counted_error_at_most_never_an_exception() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nobody listens there
    output = RtpOutput("vp8", 96, ("127.0.0.1", port))
    for packet, key in _frames("vp8", 4):
        output.deliver(packet, key)  # type: ignore[arg-type]
    assert output.frames_sent == 4
    output.close()


def test_keyframe_requests_are_read_from_rtcp_and_sender_reports_go_out() -> None:
    pli = bytes(RtcpPsfbPacket(fmt=1, ssrc=1, media_ssrc=2))
    fir = bytes(RtcpPsfbPacket(fmt=4, ssrc=1, media_ssrc=2, fci=b"\0" * 8))
    remb = bytes(RtcpPsfbPacket(fmt=15, ssrc=1, media_ssrc=0, fci=b"REMB\x01\x00\x00\x00\x00\x00\x00\x00"))
    assert keyframe_requested(pli) and keyframe_requested(fir)
    assert not keyframe_requested(remb) and not keyframe_requested(b"\x80garbage")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as janus_rtcp:
            janus_rtcp.bind(("127.0.0.1", 0))
            janus_rtcp.setblocking(False)
            requests: list[int] = []
            output = RtpOutput("vp8", 96, ("127.0.0.1", 9))
            channel = await RtcpChannel.open(
                output, janus_rtcp.getsockname(), lambda: requests.append(1), socket.AF_INET
            )
            channel.send_report()
            data, ours = await asyncio.wait_for(loop.sock_recvfrom(janus_rtcp, 2048), 20.0)
            (report,) = RtcpPacket.parse(data)
            assert isinstance(report, RtcpSrPacket) and report.ssrc == output.ssrc
            await loop.sock_sendto(janus_rtcp, pli + remb, ours)  # what Janus relays when a viewer joins
            for _ in range(1000):  # 20 s at most: the datagram is on loopback, the loop may be a busy machine's
                if requests:
                    break
                await asyncio.sleep(0.02)
            assert requests == [1] and channel.keyframe_requests == 1
            channel.close()
            output.close()

    asyncio.run(scenario())

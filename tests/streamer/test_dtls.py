"""DTLS with peers that are not browsers: the roles stageswap answers and the suites its DTLS client offers.

The handshakes here run in memory between two OpenSSL contexts (no sockets): aiortc's own context and
stageswap's against a DTLS server with an RSA certificate, as GStreamer's is. The end-to-end publishes with
FFmpeg's and GStreamer's WHIP clients are in ``test_publishers.py``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import aiortc
import pytest
from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import SRTP_AES128_CM_SHA1_80, RTCCertificate
from OpenSSL import SSL

from streamer.config import InputSpec, ServeConfig
from streamer.live.consent import hooks_missing as consent_hooks_missing
from streamer.live.dtls import AIORTC_CHECKED, StageCertificate, StagePeerConnection, hooks_missing, prefer_passive
from streamer.live.sender_reports import hooks_missing as sender_report_hooks_missing
from streamer.live.worker import PassthroughProcessor
from tests.ffmpeg_publish import self_signed
from tests.live_helpers import live_server


def _rsa_server_context() -> SSL.Context:
    """A DTLS server as GStreamer's dtlsagent makes one: an RSA certificate, OpenSSL's default suites."""
    key, cert = self_signed("rsa")
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.use_certificate(cert)
    ctx.use_privatekey(key)
    ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *args: True)
    ctx.set_tlsext_use_srtp(SRTP_AES128_CM_SHA1_80.openssl_profile)
    return ctx


def _handshake(client_ctx: SSL.Context, server_ctx: SSL.Context) -> str:
    """Run a DTLS handshake in memory; returns the suite agreed on, raises SSL.Error when it fails."""
    client, server = SSL.Connection(client_ctx, None), SSL.Connection(server_ctx, None)
    client.set_connect_state()
    server.set_accept_state()
    done = {"client": False, "server": False}
    for _ in range(20):
        for name, me, peer in (("client", client, server), ("server", server, client)):
            if not done[name]:
                try:
                    me.do_handshake()
                    done[name] = True
                except SSL.WantReadError:
                    pass
            while True:
                try:
                    data = me.bio_read(65536)
                except SSL.WantReadError:
                    break
                peer.bio_write(data)
        if all(done.values()):
            return client.get_cipher_name() or ""
    raise AssertionError("the handshake did not finish")


def test_stageswaps_dtls_client_agrees_with_an_rsa_certificate_server_where_aiortcs_own_cannot() -> None:
    server = _rsa_server_context()
    ours = StageCertificate.generateCertificate()._create_ssl_context([SRTP_AES128_CM_SHA1_80])
    assert _handshake(ours, server).startswith("ECDHE-RSA-")
    theirs = RTCCertificate.generateCertificate()._create_ssl_context([SRTP_AES128_CM_SHA1_80])
    with pytest.raises(SSL.Error, match="no shared cipher"):
        _handshake(theirs, _rsa_server_context())


def test_stageswaps_dtls_server_and_client_still_agree_with_aiortc_on_ecdsa() -> None:
    ours = StageCertificate.generateCertificate()._create_ssl_context([SRTP_AES128_CM_SHA1_80])
    theirs = RTCCertificate.generateCertificate()._create_ssl_context([SRTP_AES128_CM_SHA1_80])
    assert _handshake(theirs, ours).startswith("ECDHE-ECDSA-")
    ours = StageCertificate.generateCertificate()._create_ssl_context([SRTP_AES128_CM_SHA1_80])
    theirs = RTCCertificate.generateCertificate()._create_ssl_context([SRTP_AES128_CM_SHA1_80])
    assert _handshake(ours, theirs).startswith("ECDHE-ECDSA-")


def test_the_aiortc_hooks_fit_the_installed_aiortc() -> None:
    """Fails on an aiortc whose internals moved: the hooks then do nothing (RSA publishers fail again, a WHIP
    publisher's sound is synced by arrival, FFmpeg's sessions end after ~30 s)."""
    assert hooks_missing() is None, f"checked against aiortc {AIORTC_CHECKED}, installed {aiortc.__version__}"
    assert sender_report_hooks_missing() is None, sender_report_hooks_missing()
    assert consent_hooks_missing() is None, consent_hooks_missing()
    assert isinstance(StagePeerConnection().certificate, StageCertificate)


def test_prefer_passive_only_rewrites_an_offer_that_lets_the_answerer_choose() -> None:
    offer = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=setup:actpass\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=setup:actpass\r\n"
    )
    assert prefer_passive(offer).count("a=setup:active\r\n") == 2
    for fixed in ("active", "passive"):
        text = offer.replace("actpass", fixed)
        assert prefer_passive(text) == text


def _setup_lines(sdp: str) -> set[str]:
    return {line.strip() for line in sdp.splitlines() if line.startswith("a=setup:")}


def test_whip_and_whep_answer_passive_where_the_offer_allows_it_and_active_where_it_must(
    tmp_path: Path, clips: Path
) -> None:
    async def offer(kind: str, setup: str) -> str:
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="sendonly" if kind == "whip" else "recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        await pc.close()
        return pc.localDescription.sdp.replace("a=setup:actpass", f"a=setup:{setup}")

    async def run() -> None:
        inputs = (InputSpec.parse(f"cam={clips / 'd10.mp4'}"),)  # WHEP needs a stream to watch
        config = ServeConfig(data_dir=tmp_path, ingest_timeout_s=2.0, inputs=inputs)
        async with live_server(config, make_processor=PassthroughProcessor) as server, aiohttp.ClientSession() as http:
            for kind, stream in (("whip", "camera"), ("whep", "cam")):
                for setup, answered in (("actpass", "passive"), ("passive", "active"), ("active", "passive")):
                    sdp = await offer(kind, setup)
                    async with http.post(
                        f"{server.url}/{kind}/{stream}", data=sdp, headers={"Content-Type": "application/sdp"}
                    ) as r:
                        assert r.status == 201, await r.text()
                        assert _setup_lines(await r.text()) == {f"a=setup:{answered}"}, (kind, setup)
                        location = r.headers["Location"]
                    async with http.delete(server.url + location) as r:
                        assert r.status == 200

    asyncio.run(run())

"""DTLS that completes with WebRTC stacks other than browsers: FFmpeg's WHIP muxer, GStreamer's webrtcbin.

Two things stand between aiortc (checked against 1.16.0) and publishers whose DTLS side holds an RSA
certificate (GStreamer's, some encoders', an FFmpeg given one with ``-cert_file``):

- **Who is the DTLS server.** An offer with ``a=setup:actpass`` lets the answerer choose; aiortc always
  answers ``active`` (it becomes the DTLS client). ``prefer_passive`` rewrites such an offer to
  ``a=setup:active`` before aiortc reads it, so aiortc answers ``passive`` and is the DTLS *server*: its
  ECDSA certificate then picks the cipher suite, and every client (browsers, GStreamer, aiortc) offers
  ECDHE-ECDSA suites. The offerer allowed either role, so it takes the one left. Only the text given to
  aiortc changes; what the peer sent is not touched.
- **What the client offers.** An offer with ``a=setup:passive`` (FFmpeg's WHIP muxer always sends it)
  leaves aiortc no choice: it is the DTLS client, and its ClientHello lists ECDHE-ECDSA suites only
  (``RTCCertificate._create_ssl_context``), which a server holding an RSA certificate cannot use ("no shared
  cipher"). ``StagePeerConnection`` gives each connection a ``StageCertificate``, the same ECDSA certificate
  whose SSL context also offers two ECDHE-RSA AES-GCM suites after aiortc's four ECDHE-ECDSA ones (the
  ClientHello stays small: aiortc pull request 1011 trimmed the list because long ClientHellos fragmented
  and broke mbed TLS peers).

The second needs aiortc's internals: ``RTCCertificate._create_ssl_context`` (overridden) and the peer
connection's certificate list (replaced right after ``__init__``, before any transport exists).
If a newer aiortc keeps its certificates elsewhere, the connection keeps aiortc's own certificate, RSA
peers fail as before, and ``hooks_missing`` says why; a test fails on such an aiortc. The report for
aiortc is in ``docs/aiortc-dtls-rsa.md``.

Not fixable here: FFmpeg built on GnuTLS (PyAV's wheels, Debian's ffmpeg) makes a P-224 ECDSA certificate
when given none, and OpenSSL 4 (cryptography's, under aiortc) has no P-224 group for TLS, so the handshake
fails in either role ("wrong curve"); such an FFmpeg publishes with ``-cert_file/-key_file`` (P-256 or RSA;
README, and the FFmpeg report in the same docs file).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

import aiortc
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcdtlstransport import SRTP_AES128_CM_SHA1_80, RTCCertificate
from OpenSSL import SSL

log = logging.getLogger(__name__)

AIORTC_CHECKED = "1.16.0"
"""The aiortc version the hooks below were written and tested against."""
RSA_SUITES = b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"
"""Added after aiortc's own ECDHE-ECDSA list: what an RSA-certificate DTLS server (GStreamer) accepts."""
_CERTIFICATES_ATTR = "_RTCPeerConnection__certificates"
_SETUP_ACTPASS = re.compile(r"^a=setup:actpass(?=\r?$)", re.MULTILINE)


class StageCertificate(RTCCertificate):
    """aiortc's ECDSA certificate, whose DTLS client also offers ECDHE-RSA suites."""

    def _create_ssl_context(self, srtp_profiles: Any) -> Any:
        ctx = super()._create_ssl_context(srtp_profiles)
        ctx.set_cipher_list(cipher_list())
        return ctx


@functools.cache
def cipher_list() -> bytes:
    """aiortc's own cipher list (read from a context it makes, so a newer aiortc's choice is kept), then
    ``RSA_SUITES``."""
    ctx = RTCCertificate.generateCertificate()._create_ssl_context([SRTP_AES128_CM_SHA1_80])
    names = [n for n in SSL.Connection(ctx, None).get_cipher_list() if not n.startswith("TLS_")]  # not TLS 1.3's
    return ":".join(names).encode() + b":" + RSA_SUITES


class StagePeerConnection(RTCPeerConnection):
    """An ``RTCPeerConnection`` whose DTLS client can talk to RSA-certificate servers (see the module doc)."""

    def __init__(self, configuration: RTCConfiguration | None = None) -> None:
        super().__init__(configuration)
        certificates = getattr(self, _CERTIFICATES_ATTR, None)
        if isinstance(certificates, list) and len(certificates) == 1:
            certificates[0] = StageCertificate.generateCertificate()

    @property
    def certificate(self) -> RTCCertificate:
        """The certificate whose fingerprint this connection's SDP carries."""
        certificates: list[RTCCertificate] = getattr(self, _CERTIFICATES_ATTR)
        return certificates[0]


def prefer_passive(sdp: str) -> str:
    """The offer as aiortc should read it so that it answers ``a=setup:passive`` where the offer allows it.

    ``actpass`` (either role) becomes ``active`` (the offerer is the DTLS client); an offer that fixed its
    role (``active`` or ``passive``) is left as it is."""
    return _SETUP_ACTPASS.sub("a=setup:active", sdp)


def hooks_missing() -> str | None:
    """None when the hooks fit the installed aiortc; else what is missing (logged once when the server starts)."""
    pc = StagePeerConnection(RTCConfiguration(iceServers=[]))
    try:
        if not isinstance(getattr(pc, _CERTIFICATES_ATTR, [None])[0], StageCertificate):
            return (
                f"aiortc {aiortc.__version__} (these hooks were checked against {AIORTC_CHECKED}) keeps its DTLS "
                "certificate elsewhere: publishers whose DTLS server uses an RSA certificate (FFmpeg's WHIP muxer, "
                "GStreamer) will fail to connect"
            )
    finally:
        pc.remove_all_listeners()
    return None

"""Where stageswap reaches into aiortc's and aioice's internals, and why: the one list.

What a live server needs of WebRTC that aiortc 1.16.0 (with aioice 0.13.0) offers no public way to do.
Each use lives in a module of its own, which names the private attributes it touches and the version it was
checked against, keeps the service running (degraded, said once at start) when a newer release moves them,
and is tested against the installed release:

- ``streamer.live.dtls`` — ``RTCCertificate._create_ssl_context`` (overridden) and the peer connection's
  ``__certificates``: a DTLS client that also offers ECDHE-RSA suites, for publishers with an RSA
  certificate (GStreamer, FFmpeg given one); reported upstream in ``docs/aiortc-dtls-rsa.md``;
- ``streamer.live.sender_reports`` — ``RTCRtpReceiver._handle_rtcp_packet`` / ``_handle_rtp_packet``: the
  publisher's RTCP sender reports, so sound and picture share one capture clock (aiortc drops them);
- ``streamer.live.decode_backlog`` — ``RTCRtpReceiver.__decoder_queue`` / ``__decoder_thread`` /
  ``__decoder_error``: the decoder's unbounded queue bounded, so latency cannot creep under load;
- ``streamer.live.keyframes`` — ``RTCRtpSender._send_keyframe``: a viewer's PLI/FIR reaches the shared
  encoder (aiortc re-encodes itself, which pre-encoded packets cannot);
- ``streamer.live.consent`` — aioice's ``Connection._protocols`` (through the ICE transport's
  ``_connection``): FFmpeg's WHIP muxer answers no ICE consent check, its media counts as consent.

No other module uses a private name of aiortc or aioice: ``tests/streamer/live/test_aiortc_hooks.py`` reads
the source to hold that, and checks every hook against the installed releases.
"""

from __future__ import annotations

from streamer.live import consent, decode_backlog, dtls, keyframes, sender_reports

HOOK_MODULES = (dtls, sender_reports, decode_backlog, keyframes, consent)
"""The modules allowed to touch aiortc's and aioice's internals (each has ``hooks_missing``)."""


def hooks_missing() -> list[str]:
    """What no longer fits the installed aiortc/aioice, one sentence per hook (empty: everything fits)."""
    return [problem for module in HOOK_MODULES if (problem := module.hooks_missing()) is not None]

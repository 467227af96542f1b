"""A WHIP publisher's media counts as its consent: FFmpeg's WHIP muxer never answers consent checks.

ICE consent freshness (RFC 7675): every ~5 s aioice (under aiortc) sends the peer a STUN binding request,
and after 6 unanswered ones in a row it closes the connection ("Consent to send expired"). FFmpeg's WHIP
muxer (8.1, PyAV's) answers the connectivity checks while it connects and then no binding request at all
(it keeps sending its own every 5 s, which stageswap answers), so every FFmpeg publish was cut off about
30 s after it started — the tests publish for 10 s and never saw it; a camera or a lip-sync run did.

RFC 7675 guards against sending a flood to an address that no longer wants it. Towards a WHIP publisher
stageswap sends only RTCP (reports, picture-loss and NACK requests), and the publisher shows that it is there
by sending its media; a publisher that stops is ended by the server's own ``ingest_timeout_s`` (no frame
for 10 s). So for publisher sessions only, a consent check that goes unanswered while the peer's packets
keep arriving (within ``MEDIA_WINDOW_S``) counts as answered; viewers' sessions keep aioice's rule.

The hook wraps two things of aioice's (checked against 0.13.0, under aiortc 1.16.0): its ``Connection``'s
``data_received`` (to note when the peer's packets arrive) and each ``StunProtocol``'s ``request``, for the
requests aioice sends without retransmissions: only its consent checks are (``Connection.query_consent``).
If a newer aioice moves them, ``hooks_missing`` says so at start and FFmpeg's sessions end after ~30 s again.
"""

from __future__ import annotations

import inspect
import logging
import time
from typing import Any

from aioice import Connection, stun
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection

log = logging.getLogger(__name__)

AIOICE_CHECKED = "0.13.0"
MEDIA_WINDOW_S = 5.0
"""A consent check counts as answered when the peer's last packet arrived at most this long before it failed."""


def _ice_connections(pc: RTCPeerConnection) -> list[Connection]:
    """The aioice connections under a peer connection's transceivers (one with BUNDLE)."""
    found: dict[int, Connection] = {}
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        ice = getattr(dtls, "transport", None)
        connection = getattr(ice, "_connection", None)
        if isinstance(connection, Connection):
            found[id(connection)] = connection
    return list(found.values())


class _MediaConsent:
    """One aioice connection whose unanswered consent checks are forgiven while the peer's packets arrive."""

    def __init__(self, connection: Connection) -> None:
        self.last_packet_s = time.monotonic()
        self.forgiven = 0
        self._data_received = connection.data_received
        connection.data_received = self.data_received  # type: ignore[method-assign]

    def data_received(self, data: bytes, component: int) -> None:
        self.last_packet_s = time.monotonic()
        self._data_received(data, component)

    def wrap(self, protocol: StunProtocol) -> None:
        original = protocol.request

        async def request(
            message: stun.Message,
            addr: tuple[str, int],
            integrity_key: bytes | None = None,
            retransmissions: int | None = None,
        ) -> Any:
            try:
                return await original(message, addr, integrity_key=integrity_key, retransmissions=retransmissions)
            except stun.TransactionTimeout:
                is_consent_check = retransmissions == 0
                if not is_consent_check or time.monotonic() - self.last_packet_s > MEDIA_WINDOW_S:
                    raise
                self.forgiven += 1
                if self.forgiven == 1:
                    log.info("the publisher does not answer ICE consent checks (FFmpeg); its media counts instead")
                return None

        protocol.request = request  # type: ignore[method-assign,assignment]


def accept_media_as_consent(pc: RTCPeerConnection) -> int:
    """Hook a publisher's peer connection (after ``setLocalDescription``: its sockets exist, its ICE checks have
    not started); returns how many aioice connections were hooked (0 when aioice keeps them elsewhere)."""
    hooked = 0
    for connection in _ice_connections(pc):
        protocols = getattr(connection, "_protocols", None)
        if not isinstance(protocols, list):
            continue
        consent = _MediaConsent(connection)
        for protocol in protocols:
            consent.wrap(protocol)
        hooked += 1
    return hooked


def hooks_missing() -> str | None:
    """None when the hook fits the installed aioice; else what is missing (logged once when the server starts)."""
    import aioice

    probe = Connection(ice_controlling=False)  # no sockets until it gathers
    fits = (
        isinstance(getattr(probe, "_protocols", None), list)
        and callable(getattr(probe, "data_received", None))
        and "retransmissions=0" in inspect.getsource(Connection.query_consent)
        and callable(getattr(StunProtocol, "request", None))
    )
    if fits:
        return None

    return (
        f"aioice {aioice.__version__} (the consent hook was checked against {AIOICE_CHECKED}) sends its ICE consent "
        "checks differently: FFmpeg's WHIP publishers, which never answer them, are cut off after about 30 s"
    )

"""A viewer's keyframe requests (RTCP PLI/FIR) passed on to the shared encoder: one of aiortc's internals.

aiortc answers a PLI inside its sender by encoding the next frame as a keyframe, which never happens for
packets that arrive already encoded (the shared encoder, ``streamer.live.fanout``). aiortc (checked against
1.16.0) has no public hook for a received PLI/FIR: ``RTCRtpSender._handle_rtcp_packet`` calls the private
``_send_keyframe``, so ``forward_keyframe_requests`` wraps that one method. If a newer aiortc renames it,
``hooks_missing`` says so at start and viewers recover at the next periodic keyframe
(``keyframe_interval_s``). Listed with the others in ``streamer.live.aiortc_hooks``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

AIORTC_CHECKED = "1.16.0"
_SEND_KEYFRAME = "_send_keyframe"


def forward_keyframe_requests(sender: Any, request_keyframe: Callable[[], None]) -> None:
    """Call ``request_keyframe`` whenever the viewer behind ``sender`` (an aiortc RTCRtpSender) asks for a
    keyframe; nothing where this aiortc has no such method (said once at start)."""
    original = getattr(sender, _SEND_KEYFRAME, None)
    if original is None:
        return

    def send_keyframe() -> None:
        original()
        request_keyframe()

    setattr(sender, _SEND_KEYFRAME, send_keyframe)


def hooks_missing() -> str | None:
    """None when the hook fits the installed aiortc; else what is missing (logged once when the server starts)."""
    from aiortc import RTCRtpSender

    if callable(getattr(RTCRtpSender, _SEND_KEYFRAME, None)):
        return None
    return (
        f"aiortc's RTCRtpSender has no {_SEND_KEYFRAME} (checked against {AIORTC_CHECKED}): viewers' keyframe "
        "requests (PLI/FIR) do not reach the shared encoder; a viewer that lost a packet waits for the next "
        "periodic keyframe"
    )

#!/usr/bin/env python3
"""A WHIP publisher built on GStreamer's ``webrtcbin`` (Debian's GStreamer 1.22), a third WebRTC stack.

    /usr/bin/python3 tests/gst_whip_publish.py URL CLIP SECONDS [--setup actpass|passive]

Runs with the system Python and its GObject bindings (``python3-gi``; ``make gstreamer-setup`` installs
them with GStreamer's plugins), not the project's venv, and imports nothing from the project. It decodes
CLIP, paces it in real time, encodes H.264 (x264) and Opus, offers them with webrtcbin (its DTLS: OpenSSL
with an RSA certificate), POSTs the offer to URL, applies the answer, plays SECONDS (or to the clip's end,
or until SIGTERM: a test stops it once its viewer got what it judges, however slowly a busy machine got
there), DELETEs the session and prints one JSON line: what it sent and the states it went through, or the error.

``--setup passive`` sends the offer with ``a=setup:passive`` (as FFmpeg's muxer does), so the endpoint must
be the DTLS client and meet webrtcbin's RSA-certificate server.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import urllib.request
from urllib.parse import urljoin

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

PIPELINE = """
webrtcbin name=pub bundle-policy=max-bundle
filesrc location="{clip}" ! decodebin name=dec
dec. ! queue ! videoconvert ! clocksync ! identity name=frames
     ! x264enc tune=zerolatency speed-preset=veryfast key-int-max=30 bframes=0
     ! video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 pt=96
     ! application/x-rtp,media=video,encoding-name=H264,payload=96 ! pub.
dec. ! queue ! audioconvert ! audioresample ! clocksync ! opusenc ! rtpopuspay pt=111
     ! application/x-rtp,media=audio,encoding-name=OPUS,payload=111 ! pub.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("clip")
    parser.add_argument("seconds", type=float)
    parser.add_argument("--setup", choices=("actpass", "passive"), default="actpass")
    args = parser.parse_args()
    Gst.init(None)
    pipeline = Gst.parse_launch(PIPELINE.format(clip=args.clip))
    webrtc = pipeline.get_by_name("pub")
    loop = GLib.MainLoop()
    result: dict[str, object] = {"frames": 0, "states": []}
    location: list[str] = []

    def count(_identity: object, _buffer: object) -> None:
        result["frames"] = int(result["frames"]) + 1  # type: ignore[call-overload]

    frames = pipeline.get_by_name("frames")
    frames.set_property("signal-handoffs", True)
    frames.connect("handoff", count)

    def fail(message: str) -> None:
        result["error"] = message
        loop.quit()

    def post(offer_sdp: str) -> None:
        if args.setup == "passive":
            offer_sdp = offer_sdp.replace("a=setup:actpass", "a=setup:passive")
        request = urllib.request.Request(
            args.url, data=offer_sdp.encode(), headers={"Content-Type": "application/sdp"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = response.read().decode()
                location.append(urljoin(args.url, response.headers["Location"]))
        except Exception as exc:  # noqa: BLE001 - reported as the result
            GLib.idle_add(fail, f"WHIP POST failed: {exc}")
            return
        _, sdp = GstSdp.SDPMessage.new_from_text(answer)
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        webrtc.emit("set-remote-description", description, None)

    def gathered(element: object, _param: object) -> None:
        complete = webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE
        if complete and not location:  # once: the complete offer (non-trickle)
            offer = webrtc.get_property("local-description").sdp.as_text()
            threading.Thread(target=post, args=(offer,), daemon=True).start()

    def offer_created(promise: Gst.Promise) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        webrtc.emit("set-local-description", offer, None)

    def negotiate(element: object) -> None:
        for i in range(2):
            transceiver = webrtc.emit("get-transceiver", i)
            if transceiver is not None:
                transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        webrtc.emit("create-offer", None, Gst.Promise.new_with_change_func(offer_created))

    def state(element: object, _param: object) -> None:
        value = webrtc.get_property("connection-state").value_nick
        states = result["states"]
        assert isinstance(states, list)
        if not states or states[-1] != value:
            states.append(value)
        if value == "failed":
            fail("the WebRTC connection failed")

    def bus_message(_bus: object, message: Gst.Message) -> None:
        if message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            fail(f"{error.message} ({debug})")
        elif message.type == Gst.MessageType.EOS:
            loop.quit()

    webrtc.connect("on-negotiation-needed", negotiate)
    webrtc.connect("notify::ice-gathering-state", gathered)
    webrtc.connect("notify::connection-state", state)
    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", bus_message)
    pipeline.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int(args.seconds * 1000), loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, lambda: loop.quit() or False)
    loop.run()
    pipeline.set_state(Gst.State.NULL)
    if location:
        try:
            urllib.request.urlopen(urllib.request.Request(location[0], method="DELETE"), timeout=5).close()
        except Exception as exc:  # noqa: BLE001
            result.setdefault("error", f"DELETE failed: {exc}")
    print(json.dumps(result), flush=True)
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())

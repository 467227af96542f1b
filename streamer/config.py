"""ServeConfig: everything `stageswap serve` is told, as one frozen, validated value.

The command line builds it once; the server, the streams, the workers and the routes only read it.
Every check a user can fail (a port out of range, a certificate without its key, a malformed
``--input``) is made here, before anything starts, and raised as an InputError that names the flag.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from engines.errors import InputError
from engines.paths import check_name
from engines.settings import ProcessSettings

ProcessorKind = Literal["full", "passthrough"]
PROCESSOR_KINDS: tuple[str, ...] = ("full", "passthrough")
SourceKind = Literal["device", "rtsp", "rtmp", "file", "ndi"]
RTMP_LISTEN_HOSTS = ("0.0.0.0", "[::]")
"""An ``rtmp://`` input on one of these hosts listens for a publisher (OBS, an encoder); any other host is an
RTMP server stageswap pulls from."""

_REPO_CLIENT_DIR = Path(__file__).resolve().parent.parent / "client"
_REPO_VENDOR_DIR = Path(__file__).resolve().parent.parent / "vendor" / "node_modules"
SFU_VIEWS: tuple[str, ...] = ("processed", "source")
SFU_CODECS: tuple[str, ...] = ("vp8", "h264")


@dataclass(frozen=True)
class InputSpec:
    """One ``--input NAME=SRC``: a named stream fed by a capture device, an RTSP URL, an RTMP publisher or
    server (``rtmp://0.0.0.0:1935/APP/KEY`` listens, ``rtmp://HOST/APP/KEY`` pulls), a video file or an NDI
    source (``ndi://HOST (NAME)``, or ``ndi://NAME`` on any host)."""

    name: str
    source: str
    kind: SourceKind
    loop: bool = True
    """Files only: start again at the end (a clip used as a camera keeps going)."""

    @property
    def listens(self) -> bool:
        """An RTMP input that waits for a publisher to connect (rather than pulling from a server)."""
        return self.kind == "rtmp" and urlsplit(self.source).netloc.rsplit(":", 1)[0] in RTMP_LISTEN_HOSTS

    @classmethod
    def parse(cls, text: str, loop: bool = True) -> InputSpec:
        """Parse ``NAME=/dev/video0 | NAME=rtsp://... | NAME=clip.mp4`` (raises InputError with the reason)."""
        name, sep, source = text.partition("=")
        if not sep or not source:
            raise InputError(f"--input {text!r}: expected NAME=SOURCE, e.g. cam1=/dev/video0 or cam1=clip.mp4")
        check_name(name, "stream name in --input")
        kind: SourceKind
        if source.startswith(("rtsp://", "rtsps://")):
            kind = "rtsp"
        elif source.startswith("rtmp://"):
            kind = "rtmp"
            if not urlsplit(source).hostname or urlsplit(source).path.count("/") < 2:
                raise InputError(
                    f"--input {name}: expected rtmp://HOST[:PORT]/APP/KEY (rtmp://0.0.0.0:1935/live/{name} waits "
                    f"for OBS or FFmpeg to publish; another host is a server to pull from), got {source}"
                )
        elif source.startswith("ndi://"):
            kind = "ndi"
            if not source[len("ndi://") :].strip():
                raise InputError(f"--input {name}: ndi:// needs a source name, e.g. ndi://STUDIO (CAM 1)")
        elif source.startswith("/dev/"):
            kind = "device"
            if not Path(source).exists():
                raise InputError(f"--input {name}: capture device {source} does not exist")
        else:
            kind = "file"
            path = Path(source).expanduser()
            if not path.is_file():
                raise InputError(f"--input {name}: video file {source} does not exist")
            source = str(path.resolve())
        return cls(name=name, source=source, kind=kind, loop=loop)


@dataclass(frozen=True)
class PeerSpec:
    """Another stageswap node of the stage (``--peer NAME=URL``): its streams are listed and controlled on
    this node's stage page. Its token (``--peer-token-file NAME=F``) is used by this server only."""

    name: str
    url: str
    token: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> PeerSpec:
        """``NAME=URL`` or a bare URL (named after its host and port); raises InputError with the reason."""
        name, sep, url = text.partition("=")
        if not sep or "://" in name:
            name, url = "", text
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"--peer {text!r}: expected NAME=URL of another stageswap, e.g. gpu2=http://10.0.0.2:8080")
        if not name:
            name = f"{parts.hostname}-{parts.port or (443 if parts.scheme == 'https' else 80)}".replace(".", "-")
        check_name(name.lower(), "peer name in --peer")
        return cls(name=name.lower(), url=url.rstrip("/"))


@dataclass(frozen=True)
class SfuConfig:
    """Where streams are sent for monitors beyond a handful: a Janus instance (``--sfu URL``, README "A stage").

    stageswap sends each stream's views as plain RTP into Streaming-plugin mountpoints it creates through
    Janus's HTTP API, and browsers watch them through Janus with Janus's own JS client."""

    url: str
    """Janus's HTTP API as this server reaches it, e.g. ``http://127.0.0.1:8088/janus``."""
    admin_key: str | None = field(default=None, repr=False)
    """The Streaming plugin's ``admin_key`` (``--sfu-secret-file``): needed to create mountpoints when Janus sets
    one. Sent to Janus only; never shown in the stream JSON, the page or a log line."""
    public_url: str | None = None
    """Janus's HTTP API as browsers reach it (``--sfu-public-url``; default ``url``)."""
    copies: tuple[str, ...] = ()
    """More Janus instances that get a copy of every stream (``--sfu-copy URL``): the cascade, e.g. one Janus per
    building, each link between them carrying each stream once. Same admin key, views and codec as ``url``."""
    views: tuple[str, ...] = ("processed",)
    """The views each stream sends (``--sfu-view``; ``processed`` and optionally ``source``)."""
    codec: str = "vp8"
    enabled: bool = True
    """Whether a new stream sends to Janus from its start (a stream's ``PATCH {"sfu": ...}`` changes its own)."""
    check_interval_s: float = 1.0
    """How often each stream asks Janus about its mountpoints (the viewers count; a Janus gone shows here)."""
    request_timeout_s: float = 2.0
    retry_max_s: float = 5.0
    """Longest wait between attempts to reach a Janus that is down (the wait doubles from 0.5 s up to this)."""

    def __post_init__(self) -> None:
        urls = [("--sfu", self.url), ("--sfu-public-url", self.public_url), *(("--sfu-copy", u) for u in self.copies)]
        if len({self.url, *self.copies}) != 1 + len(self.copies):
            raise InputError("--sfu and --sfu-copy must name different Janus instances")
        for flag, url in urls:
            if url is None:
                continue
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise InputError(f"{flag} {url!r}: expected Janus's HTTP API URL, e.g. http://127.0.0.1:8088/janus")
        if not self.views or any(v not in SFU_VIEWS for v in self.views) or len(set(self.views)) != len(self.views):
            raise InputError(f"--sfu-view must be one or both of {', '.join(SFU_VIEWS)}, got {list(self.views)}")
        if self.codec not in SFU_CODECS:
            raise InputError(f"--sfu-codec must be one of {', '.join(SFU_CODECS)}, got {self.codec!r}")
        if self.admin_key is not None and (not self.admin_key or any(c.isspace() for c in self.admin_key)):
            raise InputError("the SFU admin key (--sfu-secret-file) must be one word without spaces")
        for name in ("check_interval_s", "request_timeout_s", "retry_max_s"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)!r}")

    @property
    def browser_url(self) -> str:
        return self.public_url or self.url

    @property
    def rtp_host(self) -> str:
        """Where the RTP goes: the host of the API URL (Janus receives RTP on the machine it runs on)."""
        return urlsplit(self.url).hostname or "127.0.0.1"


@dataclass(frozen=True)
class OfferLimits:
    """What one SDP offer may ask of the server, checked on its text before anything parses it: an offer of
    hundreds of m-lines costs aiortc seconds of work on the event loop (a transceiver, codecs and an answer
    section each) and a list of candidates makes ICE send checks to every address on it."""

    max_bytes: int
    max_media: int
    """m-lines (video, audio, data): more is refused."""
    max_candidates: int
    """Remote ICE candidates: the highest-priority ones are kept, the rest left out (logged)."""

    def __post_init__(self) -> None:
        if not (self.max_bytes >= 1024 and self.max_media >= 1 and self.max_candidates >= 1):
            raise InputError(f"offer limits must allow at least 1 KiB, 1 m-line and 1 candidate, got {self}")


WHIP_OFFER_LIMITS = OfferLimits(max_bytes=32 * 1024, max_media=4, max_candidates=20)
"""A publisher's offer: a browser's video and audio with every codec it knows is 5-10 KB; OBS, FFmpeg and
GStreamer send two m-lines. Extra m-lines up to the limit are answered inactive."""
WHEP_OFFER_LIMITS = OfferLimits(max_bytes=16 * 1024, max_media=4, max_candidates=20)
"""A viewer's offer: recvonly video (and audio, perhaps a data channel), 3-7 KB from a browser."""


@dataclass(frozen=True)
class ServeConfig:
    """How the live service runs. Limits have defaults that suit one stage on a LAN."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = field(default=None, repr=False)
    """The operator token. When set, every API, WHIP, WHEP, WebSocket and metrics request needs
    ``Authorization: Bearer <token>`` (see ``streamer.api.auth``). Never in ``repr``, never logged."""
    viewer_token: str | None = field(default=None, repr=False)
    """A second token that may only watch: WHEP, the monitor page's reads (``GET /api/streams``, ``/ws`` stats
    without control, ``/metrics``). Needs ``token``: without an operator token everything is open anyway."""
    insecure: bool = False
    """Allow listening on a non-loopback address without a token (``--insecure``): anyone on the network
    could publish, watch, enroll faces and record."""
    models_dir: Path | None = None
    device: str = "auto"
    """Where the engines run: ``auto`` (the GPU when torch sees one), ``cuda`` or ``cpu``."""
    ring_device: str | None = None
    """Where each stream's frame ring lives (``streamer.live.ring_choice``); None: with the engines (``device``)."""
    data_dir: Path = field(default_factory=lambda: Path.home() / ".local" / "share" / "stageswap")
    cert: Path | None = None
    key: Path | None = None
    signing_cert: Path | None = None
    signing_key: Path | None = None
    """The credentials recordings are signed with (``--signing-cert/--signing-key``); None: the environment's,
    else ``DATA_DIR/keys`` (``streamer.governance.provenance.signing_config``)."""
    inputs: tuple[InputSpec, ...] = ()
    processor: ProcessorKind = "full"
    """``full`` runs the FaceProcessor; ``passthrough`` skips it (a baseline for latency benchmarks)."""
    initial_settings: ProcessSettings = field(default_factory=ProcessSettings)
    """The settings every new stream starts with (``--identity``, ``--debug-overlay``)."""
    client_dir: Path = _REPO_CLIENT_DIR
    ice_servers: tuple[str, ...] = ()
    """STUN/TURN URLs for peers behind NAT. None by default: a stage LAN needs none, and looking one up
    on the internet would stall ICE gathering on an offline machine."""

    allowed_origins: tuple[str, ...] = ()
    """Web origins (``scheme://host[:port]``, ``--allow-origin``) whose pages may change things and open the
    WebSocket besides this server's own (``streamer.api.origin``); without a token, their hosts are also names
    requests may use. Normalised when the config is made."""

    max_streams: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    """One processing thread per stream, so at most one stream per CPU core by default."""
    max_process_fps: float | None = None
    """``--max-process-fps``: each stream's worker takes at most this many frames a second (None: no cap);
    the frames in between are dropped in the ring (newest wins, counted), never queued."""
    max_viewers_per_stream: int = 16
    max_frame_width: int = 4096
    max_frame_height: int = 2160
    """Largest frame a publisher may send (either orientation: 2160x4096 is accepted too). A bigger one closes
    the publisher with a ``publisher_refused`` event; an ``--input`` source's bigger frames are dropped."""
    whip_offer: OfferLimits = WHIP_OFFER_LIMITS
    whep_offer: OfferLimits = WHEP_OFFER_LIMITS
    max_negotiations: int = 2
    """Offers answered at once: aiortc's work for each (10-20 ms at a time) runs on the event loop, so a burst
    of offers waits its turn instead of piling that work up in front of everyone's frames; past four times
    this many waiting, 503."""
    json_max_bytes: int = 64 * 1024
    """JSON bodies (PATCH, recording options, consent) and WebSocket messages."""
    upload_max_bytes: int = 32 * 1024 * 1024
    """Identity photo uploads (all photos of one request together)."""
    upload_max_pixels: int = 100_000_000
    """Largest identity photo, in pixels, read from its header before anything is decoded (decompression bombs)."""
    body_timeout_s: float = 30.0
    """A request body (JSON, SDP offer, upload) must arrive whole within this; otherwise 408 and the connection
    is closed (a client that stalls or trickles cannot hold a handler)."""
    header_timeout_s: float = 15.0
    """A connection must send a complete request head within this of opening, or of its last response
    (keep-alive); otherwise it is closed (a client trickling headers a byte a second holds nothing)."""
    control_rate_per_s: float = 20.0
    """Control messages per second a WebSocket connection, or a client address over HTTP (PATCH, POST, PUT,
    DELETE), may send on average; ``control_burst`` more may come at once. Over it: 429, or an error reply."""
    control_burst: int = 40
    max_ws_clients: int = 64
    """WebSocket clients at once (each gets every stats push): more is 503."""
    viewer_timeout_s: float = 15.0
    """A WHEP viewer whose receiver reports (RTCP, about one a second from every browser) stop for this long
    has vanished (crashed, unplugged) and is closed, well before ICE's own 30 s consent timeout."""
    ingest_timeout_s: float = 10.0
    """A publisher that sends no frame for this long (or never connects) is closed and cleaned up."""
    stats_interval_s: float = 0.5
    """How often /ws pushes stats (about twice a second)."""
    stats_window_s: float = 5.0
    """Rates and latency percentiles are computed over this trailing window."""
    video_bitrate: int = 2_500_000
    """Target bitrate of the WHEP encoders, bits per second (one encoder per stream, view and codec)."""
    keyframe_interval_s: float = 2.0
    """Longest time between keyframes on WHEP (a viewer that lost packets recovers within this)."""
    viewer_queue_frames: int = 3
    """Encoded frames a viewer may lag behind before it skips to the next keyframe (a stalled viewer)."""
    decode_backlog_frames: int = 3
    """Encoded frames a publisher's decoder may fall behind before it skips to the next keyframe (latency
    cannot creep when decoding is slower than the camera: ``streamer.live.decode_backlog``)."""
    badge: bool = False
    """``--badge``: a visible "SYNTHETIC" badge on the processed view monitors get (recordings never have it)."""
    watermark: bool = True
    """The invisible watermark on every processed frame (``engines.compose.watermark``); ``--no-watermark``: off."""
    watermark_mark: str = "hush"
    """Which mark (``engines.compose.watermark.MARKS``): ``--watermark-mark NAME``, one of standard, masked, chroma,
    moving, coarse, quiet and hush (the default, ``DEFAULT_MARK``: named here so that ``--help`` loads no engine; a
    test holds them together)."""
    osc_port: int | None = None
    """UDP port for OSC control (``streamer.api.osc``); None: off (the default). 0 picks a free port."""
    ndi_extra_ips: tuple[str, ...] = ()
    """Machines NDI asks directly for their sources (``--ndi-extra-ips``), for networks without mDNS."""
    osc_host: str = "127.0.0.1"
    """Where OSC listens: loopback unless configured; another address needs ``token`` (or ``insecure``)."""
    node_name: str = "local"
    """This node's name on the stage page (``--node-name``), beside its peers'."""
    peers: tuple[PeerSpec, ...] = ()
    """``--peer``: the other stageswap nodes of the stage, listed and controlled on this node's stage page."""
    peer_poll_s: float = 1.0
    """How often each peer is asked for its streams; a peer that does not answer within ``peer_timeout_s`` is
    shown as down (so a node that dies is marked down within about 2.5 s)."""
    peer_timeout_s: float = 1.5
    sfu: SfuConfig | None = None
    """``--sfu URL``: send streams to a Janus instance for monitors beyond a handful (None: our own fan-out only)."""
    vendor_dir: Path = _REPO_VENDOR_DIR
    """Where ``make janus-setup`` puts Janus's JS client from npm (``janus-gateway``, ``webrtc-adapter``); the
    monitor page loads it from ``/sfu/janus.js`` and ``/sfu/adapter.js``."""

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InputError(f"--port must be between 0 and 65535, got {self.port!r}")
        if not self.host:
            raise InputError("--host must not be empty")
        for flag, token in (("--token", self.token), ("--viewer-token", self.viewer_token)):
            if token is not None and (not token or any(c.isspace() or not c.isprintable() for c in token)):
                raise InputError(f"{flag} must be a non-empty string without spaces")
        if self.viewer_token is not None and self.token is None:
            raise InputError("--viewer-token needs --token as well: without an operator token nothing is protected")
        if self.viewer_token is not None and self.viewer_token == self.token:
            raise InputError("--viewer-token must differ from --token (the viewer token may only watch)")
        if self.token is None and not self.insecure and not is_loopback(self.host):
            raise InputError(
                f"--host {self.host} is reachable from the network: give --token (or --token-file) so that only "
                "the crew can publish, watch, enroll and record, or --insecure to serve without one"
            )
        try:
            object.__setattr__(self, "allowed_origins", tuple(normalize_origin(o) for o in self.allowed_origins))
        except InputError as exc:
            raise InputError(f"--allow-origin: {exc}") from exc
        if self.osc_port is not None:
            if not isinstance(self.osc_port, int) or not 0 <= self.osc_port <= 65535:
                raise InputError(f"--osc-port must be between 0 and 65535, got {self.osc_port!r}")
            if self.token is None and not self.insecure and not is_loopback(self.osc_host):
                raise InputError(
                    f"--osc-host {self.osc_host} is reachable from the network: give --token (OSC messages then "
                    "carry it as their first argument), or --insecure to take control from anyone"
                )
        if (self.cert is None) != (self.key is None):
            raise InputError("--cert and --key go together: give both for HTTPS, or neither")
        for flag, path in (("--cert", self.cert), ("--key", self.key)):
            if path is not None and not Path(path).is_file():
                raise InputError(f"{flag} {path} does not exist")
        if self.processor not in PROCESSOR_KINDS:
            raise InputError(f"--processor must be one of {', '.join(PROCESSOR_KINDS)}, got {self.processor!r}")
        names = [spec.name for spec in self.inputs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"--input names must be unique, repeated: {', '.join(dupes)}")
        if self.max_streams < 1:
            raise InputError(f"--max-streams must be at least 1, got {self.max_streams}")
        if len(self.inputs) > self.max_streams:
            raise InputError(
                f"{len(self.inputs)} --input streams but --max-streams is {self.max_streams} (one per CPU core "
                "by default); raise --max-streams if this machine can process them"
            )
        if self.max_viewers_per_stream < 1:
            raise InputError(f"--max-viewers must be at least 1, got {self.max_viewers_per_stream}")
        if not (16 <= self.max_frame_width <= 16384 and 16 <= self.max_frame_height <= 16384):
            raise InputError(
                f"--max-frame-size must be between 16x16 and 16384x16384, got {self.max_frame_width}x"
                f"{self.max_frame_height}"
            )
        for name in (
            "max_negotiations",
            "json_max_bytes",
            "upload_max_bytes",
            "upload_max_pixels",
            "control_burst",
            "max_ws_clients",
        ):
            if not getattr(self, name) >= 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        for name in (
            "ingest_timeout_s",
            "stats_interval_s",
            "stats_window_s",
            "keyframe_interval_s",
            "control_rate_per_s",
            "viewer_timeout_s",
            "body_timeout_s",
            "header_timeout_s",
        ):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.viewer_queue_frames < 1:
            raise InputError("viewer_queue_frames must be at least 1")
        if self.max_process_fps is not None and not 0.5 <= self.max_process_fps <= 240:
            raise InputError(f"--max-process-fps must be between 0.5 and 240, got {self.max_process_fps:g}")
        if self.decode_backlog_frames < 1:
            raise InputError("decode_backlog_frames must be at least 1")
        if not 100_000 <= self.video_bitrate <= 50_000_000:
            raise InputError(f"video bitrate must be between 100 kbit/s and 50 Mbit/s, got {self.video_bitrate}")
        check_name(self.node_name, "--node-name")
        peer_names = [self.node_name, *(p.name for p in self.peers)]
        repeated = sorted({n for n in peer_names if peer_names.count(n) > 1})
        if repeated:
            raise InputError(f"--peer and --node-name names must be unique, repeated: {', '.join(repeated)}")
        if not (self.peer_poll_s > 0 and self.peer_timeout_s > 0):
            raise InputError("peer_poll_s and peer_timeout_s must be positive")
        for url in self.ice_servers:
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise InputError(f"--ice-server {url!r}: expected a stun:, turn: or turns: URL")

    def offer_limits(self, kind: Literal["whip", "whep"]) -> OfferLimits:
        """What an offer for a session of ``kind`` may ask (``whip_offer`` or ``whep_offer``)."""
        return self.whip_offer if kind == "whip" else self.whep_offer

    def frame_refusal(self, width: int, height: int) -> str | None:
        """Why a ``width`` x ``height`` frame is refused at ingest, or None when it is within the limit."""
        long_side, short_side = max(width, height), min(width, height)
        limit_long = max(self.max_frame_width, self.max_frame_height)
        limit_short = min(self.max_frame_width, self.max_frame_height)
        if long_side <= limit_long and short_side <= limit_short:
            return None
        return f"frame {width}x{height} is over the {self.max_frame_width}x{self.max_frame_height} limit"

    @property
    def scheme(self) -> str:
        return "https" if self.cert else "http"

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.port}/"


_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalize_origin(text: str) -> str:
    """``scheme://host[:port]`` in lower case without its default port (InputError when ``text`` is not an
    http(s) origin: a path, a query or credentials are not part of one)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError as exc:
        raise InputError(f"{text!r} is not an origin (scheme://host[:port]): {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise InputError(f"{text!r} is not an origin: expected http(s)://host[:port], e.g. https://stage.example")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise InputError(f"{text!r} is not an origin: expected http(s)://host[:port] and nothing else")
    return parts.scheme + "://" + netloc(parts.hostname, port, parts.scheme)


def netloc(hostname: str, port: int | None, scheme: str) -> str:
    """``host[:port]`` as origins compare it: lower case, IPv6 in brackets, the scheme's default port left out."""
    host = hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return host if port is None or port == _DEFAULT_PORTS.get(scheme) else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """True when ``host`` only listens on this machine (127.0.0.0/8, ::1, ``localhost``); names are taken as
    reachable from the network, since they may resolve to anything."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

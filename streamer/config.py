"""ServeConfig: everything `stageswap serve` is told, as one frozen, validated value.

The command line builds it once; the server, the streams, the workers and the routes only read it.
Every check a user can fail (a port out of range, a certificate without its key, a malformed
``--input``) is made here, before anything starts, and raised as an InputError that names the flag.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engines.errors import InputError
from engines.paths import check_name
from engines.settings import ProcessSettings

ProcessorKind = Literal["full", "passthrough"]
PROCESSOR_KINDS: tuple[str, ...] = ("full", "passthrough")
SourceKind = Literal["device", "rtsp", "file"]

_REPO_CLIENT_DIR = Path(__file__).resolve().parent.parent / "client"


@dataclass(frozen=True)
class InputSpec:
    """One ``--input NAME=SRC``: a named stream fed by a capture device, an RTSP URL or a video file."""

    name: str
    source: str
    kind: SourceKind
    loop: bool = True
    """Files only: start again at the end (a clip used as a camera keeps going)."""

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
class ServeConfig:
    """How the live service runs. Limits have defaults that suit one stage on a LAN."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None
    """When set, every API, WHIP, WHEP, WebSocket and metrics request needs ``Authorization: Bearer <token>``."""
    models_dir: Path | None = None
    device: str = "auto"
    """Where the engines run: ``auto`` (the GPU when torch sees one), ``cuda`` or ``cpu``."""
    data_dir: Path = field(default_factory=lambda: Path.home() / ".local" / "share" / "stageswap")
    cert: Path | None = None
    key: Path | None = None
    inputs: tuple[InputSpec, ...] = ()
    processor: ProcessorKind = "full"
    """``full`` runs the FaceProcessor; ``passthrough`` skips it (a baseline for latency benchmarks)."""
    initial_settings: ProcessSettings = field(default_factory=ProcessSettings)
    """The settings every new stream starts with (``--identity``, ``--debug-overlay``)."""
    client_dir: Path = _REPO_CLIENT_DIR
    ice_servers: tuple[str, ...] = ()
    """STUN/TURN URLs for peers behind NAT. None by default: a stage LAN needs none, and looking one up
    on the internet would stall ICE gathering on an offline machine."""

    max_streams: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    """One processing thread per stream, so at most one stream per CPU core by default."""
    max_viewers_per_stream: int = 16
    sdp_max_bytes: int = 64 * 1024
    json_max_bytes: int = 64 * 1024
    upload_max_bytes: int = 32 * 1024 * 1024
    """Identity photo uploads (all photos of one request together)."""
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
    badge: bool = False
    """``--badge``: a visible "SYNTHETIC" badge on the processed view monitors get (recordings never have it)."""
    watermark: bool = True
    """The invisible watermark on every processed frame (``engines.watermark``); ``--no-watermark`` turns it off."""
    """Encoded frames a viewer may lag behind before it skips to the next keyframe (a stalled viewer)."""

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise InputError(f"--port must be between 0 and 65535, got {self.port!r}")
        if not self.host:
            raise InputError("--host must not be empty")
        if self.token is not None and (not self.token or any(c.isspace() for c in self.token)):
            raise InputError("--token must be a non-empty string without spaces")
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
            raise InputError("max_viewers_per_stream must be at least 1")
        for name in ("ingest_timeout_s", "stats_interval_s", "stats_window_s", "keyframe_interval_s"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.viewer_queue_frames < 1:
            raise InputError("viewer_queue_frames must be at least 1")
        if not 100_000 <= self.video_bitrate <= 50_000_000:
            raise InputError(f"video bitrate must be between 100 kbit/s and 50 Mbit/s, got {self.video_bitrate}")
        for url in self.ice_servers:
            if not url.startswith(("stun:", "turn:", "turns:")):
                raise InputError(f"--ice-server {url!r}: expected a stun:, turn: or turns: URL")

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

"""`stageswap serve`: the live service (WHIP in, WHEP and the browser UI out, control and stats)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from streamer.commands import add_device_arg, add_models_arg, add_signing_args, add_watermark_mark_arg, signing_paths

if TYPE_CHECKING:
    from streamer.config import InputSpec, PeerSpec, ServeConfig, SfuConfig


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="run the live service: WHIP in, WHEP and the browser UI out",
        description="Serve live face processing over HTTP on one port: publish a camera with WHIP "
        "(POST /whip/NAME), watch with WHEP (POST /whep/NAME) or the browser UI at /, control streams with "
        "the REST API or the WebSocket at /ws, scrape /metrics. Runs until Ctrl-C or SIGTERM.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    p.add_argument(
        "--data-dir", metavar="DIR", help="identities, recordings (default: $STAGESWAP_DATA, ~/.local/share/stageswap)"
    )
    add_security_args(p)
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="also serve a stream fed by a capture device (/dev/video0), an RTSP URL, an RTMP publisher "
        "(rtmp://0.0.0.0:1935/live/NAME: OBS or ffmpeg -f flv publish to it) or server (rtmp://HOST/APP/KEY: "
        "pulled), an NDI source (ndi://NAME) or a video file (played at its own frame rate, looping); its "
        "sound comes along; repeatable",
    )
    p.add_argument("--no-loop", action="store_true", help="play --input files once instead of looping")
    p.add_argument(
        "--processor",
        choices=["full", "passthrough"],
        default="full",
        help="full: the face engines (default); passthrough: frames go through untouched (a latency baseline)",
    )
    p.add_argument(
        "--identity",
        metavar="NAME_OR_PHOTO",
        help="identity every new stream starts with: an enrolled name, or a photo enrolled now under its file name",
    )
    p.add_argument("--debug-overlay", action="store_true", help="new streams start with the tracked mesh drawn")
    p.add_argument(
        "--unverified",
        action="store_true",
        help="let --identity PHOTO enroll an identity without a consent record (marked unverified everywhere)",
    )
    p.add_argument("--badge", action="store_true", help='a visible "SYNTHETIC" badge on monitors (never on recordings)')
    p.add_argument(
        "--no-watermark", action="store_true", help="do not mark processed frames with the invisible watermark"
    )
    add_watermark_mark_arg(p)
    p.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server for peers behind NAT (stun:host:port); none by default",
    )
    add_stage_args(p)
    add_signing_args(p)
    add_sfu_args(p)
    add_limit_args(p)
    add_models_arg(p)
    add_device_arg(p)
    p.set_defaults(func=run)


def add_sfu_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a stage: monitors through Janus, several nodes on one page (see README, A stage)")
    g.add_argument(
        "--sfu",
        metavar="URL",
        help="also send every stream to this Janus (its HTTP API, e.g. http://127.0.0.1:8088/janus) as RTP "
        "mountpoints; monitors then watch through Janus",
    )
    g.add_argument(
        "--sfu-secret-file",
        type=Path,
        metavar="F",
        help="the Janus Streaming plugin's admin_key, on the first line of F (needed when Janus sets one)",
    )
    g.add_argument("--sfu-public-url", metavar="URL", help="Janus's HTTP API as browsers reach it (default: --sfu)")
    g.add_argument(
        "--sfu-copy",
        action="append",
        default=[],
        metavar="URL",
        help="another Janus that gets a copy of every stream too (a cascade: e.g. one per building; same admin "
        "key, views and codec as --sfu); repeatable",
    )
    g.add_argument(
        "--sfu-view",
        action="append",
        choices=["processed", "source"],
        metavar="VIEW",
        help="views each stream sends to Janus: processed (default) and/or source; repeatable",
    )
    g.add_argument("--sfu-codec", choices=["vp8", "h264"], default="vp8", help="codec sent to Janus (default vp8)")
    g.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="another stageswap node of the stage (one per GPU or camera): its streams are listed, watched and "
        "controlled on this node's stage page (/stage.html); repeatable",
    )
    g.add_argument(
        "--peer-token-file",
        action="append",
        default=[],
        metavar="NAME=F",
        help="the operator token of peer NAME, on the first line of F (used by this server only; never sent to "
        "a browser); repeatable",
    )
    g.add_argument("--node-name", default="local", help="this node's name on the stage page (default: local)")


def add_security_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("access and HTTPS (see README, Security)")
    g.add_argument(
        "--token",
        help="operator token: required as 'Authorization: Bearer TOKEN' to publish, control, record and enroll "
        "(visible in the process list: prefer --token-file)",
    )
    g.add_argument("--token-file", type=Path, metavar="F", help="read the operator token from the first line of F")
    g.add_argument("--viewer-token", help="a second token that may only watch (WHEP, the monitor page)")
    g.add_argument("--viewer-token-file", type=Path, metavar="F", help="read the viewer token from F")
    g.add_argument(
        "--insecure",
        action="store_true",
        help="allow --host other than loopback without a token (anyone on the network gets full control)",
    )
    g.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="URL",
        help="a web origin (scheme://host[:port]) whose pages may control this server besides its own pages "
        "(repeatable; others' changes and WebSockets are refused with 403; without a token, also a host name "
        "requests may use)",
    )
    g.add_argument("--cert", type=Path, metavar="F", help="TLS certificate (PEM) for HTTPS; needs --key")
    g.add_argument("--key", type=Path, metavar="F", help="TLS private key (PEM)")
    g.add_argument(
        "--self-signed",
        action="store_true",
        help="HTTPS with a self-signed certificate made once and kept in DATA_DIR/tls (its fingerprint is printed)",
    )


def add_stage_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("on-set wiring (see README, On the stage)")
    g.add_argument(
        "--ndi",
        action="store_true",
        help="publish every stream's processed view as an NDI source 'stageswap STREAM' (needs the ndi extra; "
        'PATCH {"ndi": {"processed": true, "source": true}} per stream)',
    )
    g.add_argument(
        "--ndi-extra-ips",
        default="",
        metavar="IP,...",
        help="machines NDI asks directly for sources (for ndi:// inputs on networks without mDNS)",
    )
    g.add_argument(
        "--osc-port",
        type=int,
        metavar="PORT",
        help="take OSC control messages on this UDP port (off by default; /stageswap/STREAM/identity NAME, "
        "/stageswap/STREAM/record start, ...; with --token, the token is each message's first argument)",
    )
    g.add_argument(
        "--osc-host",
        default="127.0.0.1",
        metavar="ADDR",
        help="address OSC listens on (default 127.0.0.1; another address needs --token)",
    )


def add_limit_args(p: argparse.ArgumentParser) -> None:
    from streamer.config import ServeConfig

    d = ServeConfig()  # the flags' defaults are the config's (one source of truth)
    g = p.add_argument_group("limits (see README, Security)")
    g.add_argument(
        "--max-streams",
        type=int,
        default=max(1, os.cpu_count() or 1),
        help="most streams processed at once, one thread each (default: CPU cores)",
    )
    p.add_argument(
        "--max-process-fps",
        type=float,
        default=None,
        metavar="FPS",
        help="process at most FPS frames a second per stream (the newest frame wins, the others are dropped and "
        "counted): leaves CPU to other work on the machine; default: as fast as frames come",
    )
    g.add_argument(
        "--max-viewers",
        type=int,
        default=d.max_viewers_per_stream,
        help="most WHEP viewers per stream (default %(default)s)",
    )
    g.add_argument(
        "--max-frame-size",
        default=f"{d.max_frame_width}x{d.max_frame_height}",
        metavar="WxH",
        help="largest frame a publisher may send, either orientation (default %(default)s)",
    )
    g.add_argument(
        "--max-body-kb",
        type=int,
        default=d.json_max_bytes // 1024,
        metavar="KB",
        help="largest JSON body and WebSocket message (default %(default)s KiB; SDP offers have limits of their "
        "own, README: Security)",
    )
    g.add_argument(
        "--max-upload-mb",
        type=int,
        default=d.upload_max_bytes // 2**20,
        metavar="MB",
        help="largest identity upload, all photos together (default %(default)s MiB)",
    )
    g.add_argument(
        "--max-upload-mpx",
        type=float,
        default=d.upload_max_pixels / 1e6,
        metavar="MPX",
        help="largest identity photo in megapixels, read from its header (default %(default)s)",
    )
    g.add_argument(
        "--control-rate",
        type=float,
        default=d.control_rate_per_s,
        metavar="N",
        help="control messages per second per WebSocket connection or client address (default %(default)s; "
        "bursts of 2 s worth)",
    )
    g.add_argument(
        "--header-timeout",
        type=float,
        default=d.header_timeout_s,
        metavar="S",
        help="a connection must send a whole request head within S seconds of opening or of its last answer, "
        "else it is closed (default %(default)s)",
    )
    g.add_argument(
        "--body-timeout",
        type=float,
        default=d.body_timeout_s,
        metavar="S",
        help="a request body (JSON, SDP offer, upload) must arrive whole within S seconds, else 408 "
        "(default %(default)s)",
    )


def read_token(path: Path, flag: str) -> str:
    """The token in the first line of ``path`` (InputError when it cannot be read or is empty).

    A file others may read is accepted with a warning: the token is the only thing between the network and
    the faces enrolled here."""
    from engines.errors import InputError

    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
        mode = Path(path).expanduser().stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{flag} {path}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from exc
    lines = text.strip().splitlines()
    token = lines[0].strip() if lines else ""
    if not token:
        raise InputError(f"{flag} {path} is empty: put the token on its first line")
    if mode & 0o077:
        logging.getLogger("streamer").warning("%s %s can be read by other users: chmod 600 it", flag, path)
    return token


def _token(value: str | None, file: Path | None, flag: str) -> str | None:
    from engines.errors import InputError

    if value is not None and file is not None:
        raise InputError(f"give {flag} or {flag}-file, not both")
    return read_token(file, f"{flag}-file") if file is not None else value


def _frame_size(text: str) -> tuple[int, int]:
    from engines.errors import InputError

    match = re.fullmatch(r"\s*(\d{2,5})\s*[xX]\s*(\d{2,5})\s*", text)
    if match is None:
        raise InputError(f"--max-frame-size must look like 4096x2160, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _enroll_photo(photo: Path, data_dir: Path, allow_unverified: bool = False, models_dir: str | None = None) -> str:
    """Enroll ``photo`` under a name made from its file name (replacing one enrolled before).

    A consent record the name already had is kept; without one, only with ``--unverified``."""
    from engines.errors import InputError
    from streamer.governance.audit import IDENTITY_ENROLLED, AuditLog, cli_operator
    from streamer.governance.consent import consent_summary, enroll_with_consent

    try:
        from engines.identity.store import IdentityStore  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise InputError("--identity PHOTO needs identity enrollment, which this build does not have") from exc
    name = re.sub(r"[^a-z0-9_-]+", "-", photo.stem.lower()).strip("-_")[:64] or "identity"
    store = IdentityStore(data_dir / "identities", models_dir=models_dir)
    _, record = enroll_with_consent(store, name, [photo], None, allow_unverified, face="largest", replace=True)
    AuditLog.in_data_dir(data_dir).append(
        IDENTITY_ENROLLED,
        identity=name,
        photos=1,
        replace=True,
        consent=consent_summary(record),
        operator=cli_operator(),
    )
    return name


def _sfu_config(args: argparse.Namespace) -> SfuConfig | None:
    from engines.errors import InputError
    from streamer.config import SfuConfig

    if args.sfu is None:
        if args.sfu_secret_file or args.sfu_public_url or args.sfu_view or args.sfu_copy:
            raise InputError(
                "--sfu-secret-file, --sfu-public-url, --sfu-view and --sfu-copy need --sfu URL (the Janus to use)"
            )
        return None
    key = read_token(args.sfu_secret_file, "--sfu-secret-file") if args.sfu_secret_file else None
    return SfuConfig(
        url=args.sfu.rstrip("/"),
        admin_key=key,
        public_url=args.sfu_public_url.rstrip("/") if args.sfu_public_url else None,
        copies=tuple(url.rstrip("/") for url in args.sfu_copy),
        views=tuple(dict.fromkeys(args.sfu_view or ["processed"])),
        codec=args.sfu_codec,
    )


def _peers(args: argparse.Namespace) -> tuple[PeerSpec, ...]:
    from engines.errors import InputError
    from streamer.config import PeerSpec

    peers = [PeerSpec.parse(text) for text in args.peer]
    tokens: dict[str, str] = {}
    for text in args.peer_token_file:
        name, sep, path = text.partition("=")
        if not sep or not path:
            raise InputError(f"--peer-token-file {text!r}: expected NAME=FILE, e.g. gpu2=/etc/stageswap/gpu2.token")
        names = [p.name for p in peers]
        if name not in names:
            raise InputError(f"--peer-token-file {name}: no --peer of that name (peers: {', '.join(names) or 'none'})")
        tokens[name] = read_token(Path(path), f"--peer-token-file {name}")
    return tuple(dataclasses.replace(p, token=tokens.get(p.name)) for p in peers)


def build_config(args: argparse.Namespace) -> ServeConfig:
    from engines.errors import InputError
    from engines.paths import data_dir
    from engines.runtime.select import resolve_device
    from streamer.config import InputSpec, ServeConfig

    width, height = _frame_size(args.max_frame_size)
    if args.max_body_kb < 1 or args.max_upload_mb < 1 or not args.max_upload_mpx > 0 or not args.control_rate > 0:
        raise InputError("--max-body-kb, --max-upload-mb, --max-upload-mpx and --control-rate must be positive")
    if args.self_signed and (args.cert is not None or args.key is not None):
        raise InputError("--self-signed makes its own certificate: give it or --cert/--key, not both")
    data = data_dir(args.data_dir)
    signing_cert, signing_key = signing_paths(args)
    if signing_cert is not None:
        from streamer.governance.provenance import signing_config

        signing_config(data, signing_cert, signing_key)  # files that are not there: said now, not per recording
    # Every flag is checked (the config validates itself: tokens, the bind address, limits) before anything
    # is written: a certificate, an enrollment.
    config = ServeConfig(
        host=args.host,
        port=args.port,
        token=_token(args.token, args.token_file, "--token"),
        viewer_token=_token(args.viewer_token, args.viewer_token_file, "--viewer-token"),
        insecure=args.insecure,
        allowed_origins=tuple(args.allow_origin),
        models_dir=Path(args.models) if args.models else None,
        device="cpu",  # resolved below, once every other flag is known to be good (the CUDA probe imports torch)
        data_dir=data,
        cert=args.cert,
        key=args.key,
        inputs=tuple(InputSpec.parse(text, loop=not args.no_loop) for text in args.input),
        processor=args.processor,
        max_streams=args.max_streams,
        max_process_fps=args.max_process_fps,
        max_viewers_per_stream=args.max_viewers,
        max_frame_width=width,
        max_frame_height=height,
        json_max_bytes=args.max_body_kb * 1024,
        upload_max_bytes=args.max_upload_mb * 2**20,
        upload_max_pixels=round(args.max_upload_mpx * 1e6),
        control_rate_per_s=args.control_rate,
        control_burst=max(1, round(2 * args.control_rate)),
        header_timeout_s=args.header_timeout,
        body_timeout_s=args.body_timeout,
        badge=args.badge,
        watermark=not args.no_watermark,
        watermark_mark=args.watermark_mark,
        ice_servers=tuple(args.ice_server),
        osc_port=args.osc_port,
        osc_host=args.osc_host,
        ndi_extra_ips=tuple(ip.strip() for ip in args.ndi_extra_ips.split(",") if ip.strip()),
        signing_cert=signing_cert,
        signing_key=signing_key,
        sfu=_sfu_config(args),
        node_name=args.node_name,
        peers=_peers(args),
    )
    config = dataclasses.replace(config, device=resolve_device(args.device))
    if args.self_signed:
        from streamer.api.tls import self_signed

        made = self_signed(data, args.host)
        config = dataclasses.replace(config, cert=made.cert, key=made.key)
    if args.ndi or any(spec.kind == "ndi" for spec in config.inputs):
        from streamer.live.ndi import ndi_lib

        ndi_lib()  # not installed: say so now, with the extra to install
    patch: dict[str, object] = {"debug_overlay": True} if args.debug_overlay else {}
    if args.ndi:
        patch["ndi"] = {"processed": True}
    if args.identity:
        photo = Path(args.identity).expanduser()
        patch["identity"] = (
            _enroll_photo(photo, data, args.unverified, args.models) if photo.is_file() else args.identity
        )
    if patch:
        # The same planning as every later change: an identity that is not enrolled, or whose consent expired,
        # and the service does not start.
        from engines.identity.performers import PerformerStore
        from engines.identity.store import IdentityStore
        from engines.swap.user_models import UserModelStore
        from streamer.plan import Plan, StoreResolver, make_plan

        resolver = StoreResolver(
            data / "identities",
            data / "hdri",
            IdentityStore(data / "identities", args.models),
            UserModelStore(data),
            PerformerStore(data / "performers"),
        )
        planned = make_plan(Plan(config.initial_settings), patch, resolver)
        config = dataclasses.replace(config, initial_settings=planned.plan.settings)
    return config


def _security_lines(config: ServeConfig) -> list[str]:
    """What the banner says about access and HTTPS: token ids and the certificate fingerprint, never a token."""
    from streamer.config import is_loopback
    from streamer.governance.audit import token_id

    if config.token is None:
        where = "this machine only" if is_loopback(config.host) else "ANYONE on the network (--insecure)"
        lines = [f"  access: no token: {where} can publish, watch, control, record and enroll"]
    else:
        lines = [f"  access: operator token {token_id(config.token)} required"]
        if config.viewer_token is not None:
            lines.append(f"  access: viewer token {token_id(config.viewer_token)} may watch (WHEP, monitor page)")
    if config.osc_port is not None:
        who = "operator token as first argument" if config.token else "no token"
        lines.append(f"  osc: udp://{config.osc_host}:{config.osc_port} ({who})")
    if config.cert is not None:
        from streamer.api.tls import fingerprint

        lines.append(f"  https: certificate {config.cert}")
        lines.append(f"  https: SHA-256 fingerprint {fingerprint(config.cert)}")
    return lines


def _check_input_size(spec: InputSpec, config: ServeConfig) -> None:
    """A video file input bigger than the frame limit is refused now, not frame by frame later."""
    from engines.errors import InputError
    from streamer.live.sources import open_container

    if spec.kind != "file":
        return
    container = open_container(spec)
    try:
        video = container.streams.video[0]
        refusal = config.frame_refusal(int(video.width or 0), int(video.height or 0))
    finally:
        container.close()
    if refusal is not None:
        raise InputError(f"input {spec.name}: {refusal} (--max-frame-size)")


def run(args: argparse.Namespace) -> int:
    from streamer.live.memory import limit_malloc_arenas
    from streamer.live.threads import single_threaded_opencv

    limit_malloc_arenas()  # before any thread starts: a day of viewers coming and going keeps RSS flat
    single_threaded_opencv()  # the worker, encoder and decoder threads are the server's parallelism, not OpenCV's
    config = build_config(args)  # a bad flag is said before the server (and torch) is imported: seconds sooner
    from streamer.api.server import serve
    from streamer.live.ring_choice import ring_device
    from streamer.live.sources import probe

    where, warning = ring_device(config.device, args.device)
    if warning is not None:
        print(f"warning: {warning}", file=sys.stderr)
    config = dataclasses.replace(config, ring_device=where)
    for spec in config.inputs:
        probe(spec)
        _check_input_size(spec, config)
    if config.processor == "full":
        # Load the models once now, so a missing or corrupt one stops here with the fix, not per stream later.
        from engines.processor import FaceProcessor, ProcessorConfig

        FaceProcessor.from_models(config.models_dir, ProcessorConfig(device=config.device))
    if not args.verbose:
        logging.getLogger("streamer").setLevel(logging.INFO)

    def ready(url: str) -> None:
        lines = [f"stageswap serve: open {url} in a browser (Ctrl-C stops)"]
        lines += [f"  input {s.name}: {s.source}" for s in config.inputs]
        lines.append(f"  publish: POST {url}whip/NAME (WHIP); watch: POST {url}whep/NAME (WHEP)")
        if config.initial_settings.identity:
            lines.append(f"  new streams swap in identity {config.initial_settings.identity!r}")
        lines += _security_lines(config)
        for peer in config.peers:
            lines.append(f"  stage: peer {peer.name} at {peer.url}{'' if peer.token else ' (no token)'}")
        if config.peers:
            lines.append(f"  stage: every node's streams at {url}stage.html")
        if config.sfu is not None:
            lines.append(f"  sfu: every stream also goes to Janus at {config.sfu.url} ({', '.join(config.sfu.views)})")
            lines += [f"  sfu: and a copy to Janus at {url}" for url in config.sfu.copies]
        print("\n".join(lines), flush=True)

    asyncio.run(serve(config, ready))
    print("stageswap serve: stopped", file=sys.stderr)
    return 0

"""`stageswap serve`: the live service (WHIP in, WHEP and the browser UI out, control and stats)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from streamer.commands import add_device_arg, add_models_arg

if TYPE_CHECKING:
    from streamer.config import ServeConfig


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
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on the API, WHIP, WHEP, /ws and /metrics")
    p.add_argument(
        "--data-dir", metavar="DIR", help="identities, recordings (default: $STAGESWAP_DATA, ~/.local/share/stageswap)"
    )
    p.add_argument("--cert", type=Path, metavar="F", help="TLS certificate (PEM) for HTTPS; needs --key")
    p.add_argument("--key", type=Path, metavar="F", help="TLS private key (PEM)")
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=SRC",
        help="also serve a stream fed by a capture device (/dev/video0), an RTSP URL or a video file "
        "(played at its own frame rate, looping); repeatable",
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
    p.add_argument(
        "--max-streams",
        type=int,
        default=max(1, os.cpu_count() or 1),
        help="most streams processed at once, one thread each (default: CPU cores)",
    )
    p.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server for peers behind NAT (stun:host:port); none by default",
    )
    add_models_arg(p)
    add_device_arg(p)
    p.set_defaults(func=run)


def _enroll_photo(photo: Path, data_dir: Path, allow_unverified: bool = False, models_dir: str | None = None) -> str:
    """Enroll ``photo`` under a name made from its file name (replacing one enrolled before).

    A consent record the name already had is kept; without one, only with ``--unverified``."""
    from engines.consent import consent_summary, enroll_with_consent
    from engines.errors import InputError
    from streamer.audit import IDENTITY_ENROLLED, AuditLog, cli_operator

    try:
        from engines.identity import IdentityStore  # type: ignore[import-not-found,unused-ignore]
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


def build_config(args: argparse.Namespace) -> ServeConfig:
    from engines.paths import data_dir
    from engines.runtime.select import resolve_device
    from engines.settings import apply_patch
    from streamer.config import InputSpec, ServeConfig

    inputs = tuple(InputSpec.parse(text, loop=not args.no_loop) for text in args.input)
    data = data_dir(args.data_dir)
    settings = ServeConfig().initial_settings
    if args.debug_overlay:
        settings = apply_patch(settings, {"debug_overlay": True})
    if args.identity:
        from engines.consent import check_swap_allowed, identity_consent

        photo = Path(args.identity).expanduser()
        name = _enroll_photo(photo, data, args.unverified, args.models) if photo.is_file() else args.identity
        check_swap_allowed(name, identity_consent(data / "identities", name))  # expired consent: do not start
        settings = apply_patch(settings, {"identity": name})
    return ServeConfig(
        host=args.host,
        port=args.port,
        token=args.token,
        models_dir=Path(args.models) if args.models else None,
        device=resolve_device(args.device),
        data_dir=data,
        cert=args.cert,
        key=args.key,
        inputs=inputs,
        processor=args.processor,
        initial_settings=settings,
        max_streams=args.max_streams,
        badge=args.badge,
        watermark=not args.no_watermark,
        ice_servers=tuple(args.ice_server),
    )


def run(args: argparse.Namespace) -> int:
    from streamer.server import serve
    from streamer.sources import probe

    config = build_config(args)
    for spec in config.inputs:
        probe(spec)
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
        print("\n".join(lines), flush=True)

    asyncio.run(serve(config, ready))
    print("stageswap serve: stopped", file=sys.stderr)
    return 0

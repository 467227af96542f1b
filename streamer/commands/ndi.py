"""`stageswap ndi list`: the NDI sources this machine can see (names to give `--input cam=ndi://NAME`)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ndi",
        help="NDI discovery: list the NDI sources on the network",
        description="NDI (Vizrt NDI AB) moves video between machines on a stage. `ndi list` shows the sources "
        "this machine finds, to use as `stageswap serve --input cam=ndi://NAME`. Needs the ndi extra "
        "(pip install 'stageswap[ndi]', under the NDI SDK licence: see README). NDI® is a registered trademark "
        "of Vizrt NDI AB; https://ndi.video/",
    )
    nsub = p.add_subparsers(dest="ndi_command", metavar="ACTION", required=True)
    ls = nsub.add_parser("list", help="list the NDI sources found within --timeout seconds")
    ls.add_argument("--timeout", type=float, default=3.0, help="seconds to look for sources (default 3)")
    ls.add_argument(
        "--extra-ips",
        default="",
        metavar="IP,...",
        help="also ask these machines directly (networks without mDNS; Linux needs avahi-daemon for mDNS)",
    )
    ls.add_argument("--json", action="store_true", help="print the sources as JSON")
    ls.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from engines.errors import InputError
    from streamer.live.ndi import find_sources

    if not 0 < args.timeout <= 60:
        raise InputError(f"--timeout must be between 0 and 60 seconds, got {args.timeout}")
    ips = [ip.strip() for ip in args.extra_ips.split(",") if ip.strip()]
    sources = find_sources(args.timeout, ips)
    if args.json:
        print(json.dumps([{"name": s.name, "url": s.url} for s in sources], indent=2))
        return 0
    if not sources:
        print(
            f"no NDI source found in {args.timeout:g} s (on Linux, discovery needs avahi-daemon running; "
            "or give --extra-ips with the senders' addresses)"
        )
        return 0
    for source in sources:
        print(f"{source.name}\t{source.url}\t--input NAME=ndi://{source.name}")
    return 0

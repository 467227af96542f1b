"""`stageswap colour list`: the colour space names a stream or `process` can declare (OpenColorIO)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "colour",
        help="colour management: list the colour spaces footage can be declared in",
        description="Footage in a log or ACES encoding is declared with its colour space (process --colour-space, "
        'PATCH {"colour": {"input": NAME}}); the names come from OpenColorIO\'s built-in ACES configs.',
    )
    csub = p.add_subparsers(dest="colour_command", metavar="ACTION", required=True)
    ls = csub.add_parser("list", help="list the colour spaces of an OCIO built-in config")
    ls.add_argument(
        "--config",
        default="studio-config-latest",
        choices=("studio-config-latest", "cg-config-latest"),
        help="the built-in config (default studio-config-latest: camera log encodings included)",
    )
    ls.add_argument("--json", action="store_true", help="print the names as JSON")
    ls.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from engines.colour import spaces

    names = spaces(args.config)
    print(json.dumps(names, indent=2) if args.json else "\n".join(names))
    return 0

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
    ls = csub.add_parser("list", help="list the colour spaces, displays and views of an OCIO built-in config")
    ls.add_argument(
        "--config",
        default="studio-config-latest",
        choices=("studio-config-latest", "cg-config-latest"),
        help="the built-in config (default studio-config-latest: camera log encodings included)",
    )
    ls.add_argument("--json", action="store_true", help="print the names as JSON")
    ls.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from engines.colour import displays, spaces

    names, views = spaces(args.config), displays(args.config)
    if args.json:
        print(json.dumps({"spaces": names, "displays": views}, indent=2))
        return 0
    print("colour spaces (colour.input, colour.output, --colour-space):")
    print("\n".join(f"  {name}" for name in names))
    print("monitor displays and their views (colour.monitor, colour.monitor_view):")
    for display, display_views in views.items():
        print(f"  {display}: {', '.join(display_views)}")
    return 0

"""The `stageswap` command line: the only place that prints errors for users and exits.

Every deliberate failure is a `StageswapError` subclass; it is printed as one line, `stageswap: error:
...`, with exit status 2 (1 is left for unexpected crashes, which keep their traceback).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from engines import __version__
from engines.errors import StageswapError
from streamer.commands import (
    audit,
    colour,
    faceset,
    identities,
    keys,
    models,
    ndi,
    performers,
    process,
    serve,
    train,
    verify,
)

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

COMMAND_MODULES = (process, models, serve, keys, verify, audit, identities, performers, ndi, colour, faceset, train)
"""Each adds its subcommand; a new command is a new module in streamer/commands and one entry here."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stageswap",
        description="Live face swap and relighting for virtual production stages.",
        epilog="Run `stageswap COMMAND --help` for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"stageswap {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (engine decisions, timings)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except StageswapError as exc:
        print(f"stageswap: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("stageswap: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())

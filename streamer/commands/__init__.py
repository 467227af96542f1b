"""One module per `stageswap` subcommand: each defines ``register(subparsers)`` that adds its parser
and sets ``func`` (the handler taking the parsed arguments and returning an exit status)."""

from __future__ import annotations

import argparse


def add_models_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        metavar="DIR",
        help="models directory, looked in first (then $STAGESWAP_MODELS, then ~/.cache/stageswap/models)",
    )

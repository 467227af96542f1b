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


def add_device_arg(p: argparse.ArgumentParser) -> None:
    """``--device auto|cuda|cpu`` (see ``engines.runtime.select``): auto takes the GPU when there is one."""
    p.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="where the engines run: a CUDA GPU (TensorRT plans from build_engines.py, else torch on CUDA) "
        "or the CPU; auto uses the GPU when torch sees one (default: auto)",
    )

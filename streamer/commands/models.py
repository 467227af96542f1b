"""`stageswap models list | fetch | verify`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from streamer.commands import add_models_arg

EXIT_BAD_MODEL = 2


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser(
        "models",
        help="list, fetch or verify the models",
        description="Manage model files. Each model is declared with its official URL, sha256 and licence; "
        "fetch downloads and verifies it, verify re-checks what is on disk.",
    )
    msub = m.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    ml = msub.add_parser("list", help="every model: name, licence, where it is found and whether it verifies")
    add_models_arg(ml)
    mf = msub.add_parser("fetch", help="download models from their official URLs (sha256 checked)")
    mf.add_argument("names", nargs="*", help="models to fetch (default: all)")
    mf.add_argument("--force", action="store_true", help="download even if a verified copy exists")
    mf.add_argument("--mirror", metavar="URL", help="base URL of a local mirror, tried before the official URLs")
    add_models_arg(mf)
    mv = msub.add_parser("verify", help="check every model's sha256; exit 2 if any is missing or corrupt")
    mv.add_argument("names", nargs="*", help="models to verify (default: all)")
    add_models_arg(mv)
    m.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engines import models

    if args.models_command == "list":
        for status in models.iter_status(models_dir=args.models):
            spec = status.spec
            where = str(status.path) if status.path else "not found"
            state = "ok" if status.ok else status.problem
            print(f"{spec.name:<20} {spec.licence:<12} {spec.filename:<28} {state:<10} {where}")
            print(f"{'':<20} {spec.task}")
        return 0
    names = args.names or sorted(models.REGISTRY)
    for name in names:
        models.spec_for(name)  # unknown names fail before any download starts
    if args.models_command == "fetch":
        for name in names:
            path = models.fetch(name, args.models, force=args.force, mirror=args.mirror, progress=_tqdm_bar)
            print(f"{name}: {path} (sha256 verified)")
        return 0
    bad = 0
    for status in models.iter_status(names, args.models):
        if status.ok:
            print(f"{status.spec.name}: ok {status.path}")
        else:
            bad += 1
            where = (
                str(status.path) if status.path else ", ".join(str(d / status.spec.filename) for d in status.looked_in)
            )
            print(f"{status.spec.name}: {status.problem} ({where}); fix: stageswap models fetch {status.spec.name}")
    return EXIT_BAD_MODEL if bad else 0


def _tqdm_bar(total: int, name: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="B", unit_scale=True, file=sys.stderr, leave=False)

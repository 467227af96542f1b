"""The CLI: one module per `stageswap` subcommand, each defines ``register(subparsers)`` that adds its parser
and sets ``func`` (the handler taking the parsed arguments and returning an exit status).

Nothing but ``streamer.__main__`` imports this package (which must not import ``streamer.__main__``), and
only ``__main__`` exits.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from streamer.governance.consent import ConsentRecord


def add_models_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--models",
        metavar="DIR",
        help="models directory, looked in first (then $STAGESWAP_MODELS, then ~/.cache/stageswap/models)",
    )


def add_watermark_mark_arg(p: argparse.ArgumentParser) -> None:
    """``--watermark-mark NAME``: which invisible mark (``engines.compose.watermark.MARKS``, named here so that
    ``--help`` loads no engine; a test holds the two lists, and the default with ``DEFAULT_MARK``, together)."""
    p.add_argument(
        "--watermark-mark",
        choices=("standard", "masked", "chroma", "moving", "coarse", "quiet", "hush"),
        default="hush",
        help="which invisible mark: hush (the default: in the blue difference, hidden in texture, kept weaker on "
        "the faces the tracker finds, an error-correcting code; read with the frames before it), standard (read "
        "on any footage, a faint mottle on flat areas at high contrast; the default until 2026-12), masked "
        "(hidden in texture; not read on dark, soft footage), chroma (in the blue difference, hidden in "
        "texture), moving (chroma drawn where the picture moves: smaller files), coarse (moving in cells twice "
        "as large) or quiet (coarse kept off lone edges: no colour fringe beside a wall's stripe). The masked "
        "marks (all but standard) cost ~7-12 ms of CPU a 720p frame, standard ~0.4 (BENCHMARKS.md); on a CPU "
        "with no room left, standard",
    )


def add_signing_args(p: argparse.ArgumentParser) -> None:
    """``--signing-cert F --signing-key F``: the credentials outputs are signed with (C2PA provenance). Without
    them: ``$STAGESWAP_SIGNING_CERT``/``$STAGESWAP_SIGNING_KEY``, then ``DATA_DIR/keys`` (``stageswap keys init``);
    ``signing_paths`` reads them."""
    g = p.add_argument_group("provenance signing (see README, Provenance)")
    g.add_argument(
        "--signing-cert",
        type=Path,
        metavar="F",
        help="PEM certificate chain outputs are signed with, the signer's first; needs --signing-key "
        "(default: $STAGESWAP_SIGNING_CERT, else DATA_DIR/keys/signer.pem from `stageswap keys init`)",
    )
    g.add_argument(
        "--signing-key",
        type=Path,
        metavar="F",
        help="PEM private key of --signing-cert (default: $STAGESWAP_SIGNING_KEY, else DATA_DIR/keys/signer.key)",
    )


def signing_paths(args: argparse.Namespace) -> tuple[Path | None, Path | None]:
    """(certificate, key) from ``add_signing_args``' flags (both or neither: InputError otherwise)."""
    from engines.errors import InputError

    cert, key = args.signing_cert, args.signing_key
    if (cert is None) != (key is None):
        raise InputError("--signing-cert and --signing-key go together: give both (the certificate and its key)")
    return cert, key


def add_device_arg(p: argparse.ArgumentParser) -> None:
    """``--device auto|cuda|cpu`` (see ``engines.runtime.select``): auto takes the GPU when there is one."""
    p.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="where the engines run: a CUDA GPU (TensorRT plans from build_engines.py, else torch on CUDA) "
        "or the CPU; auto uses the GPU when torch sees one (default: auto)",
    )


def add_consent_args(
    p: argparse.ArgumentParser,
    unverified_flag: bool = True,
    unverified_help: str = "enroll without a consent record (marked unverified everywhere)",
) -> None:
    """The consent flags of ``identities add|consent`` and ``models add|consent`` (``consent_from_args`` reads
    them): the same record for an enrolled identity and for a DFM model's trained-in identity."""
    g = p.add_argument_group("consent (who agreed that this likeness may be used; see README, Responsible use)")
    g.add_argument("--consent-by", metavar="NAME", help="who consented: the person, or their representative")
    g.add_argument("--production", metavar="P", help="the production the consent covers")
    g.add_argument("--valid-from", metavar="YYYY-MM-DD", help="first day covered (default: today)")
    g.add_argument("--valid-until", metavar="YYYY-MM-DD", help="last day covered")
    g.add_argument("--document", metavar="FILE", help="the signed consent document: only its sha256 is kept")
    g.add_argument("--document-sha256", metavar="HEX", help="the document's sha256, when the file is kept elsewhere")
    g.add_argument("--note", default="", help="a note kept with the record")
    g.add_argument("--consent", metavar="FILE.json", help="the consent record as a JSON file instead of the flags")
    if unverified_flag:
        g.add_argument("--unverified", action="store_true", help=unverified_help)


def consent_from_args(args: argparse.Namespace) -> ConsentRecord | None:
    """The ``ConsentRecord`` the consent flags describe, or None when none was given (InputError if half given)."""
    from engines.errors import InputError
    from streamer.governance.consent import ConsentRecord, load_consent_file

    flags = ("consent_by", "production", "valid_from", "valid_until", "document", "document_sha256")
    given = [f for f in flags if getattr(args, f, None)]
    if args.consent:
        if given:
            raise InputError("give the consent either as --consent FILE.json or as flags, not both")
        return load_consent_file(args.consent)
    if not given:
        return None
    missing = [f"--{f.replace('_', '-')}" for f in ("consent_by", "production") if not getattr(args, f, None)]
    if missing:
        raise InputError(f"consent needs {' and '.join(missing)} as well")
    return ConsentRecord.create(
        consent_by=args.consent_by,
        production=args.production,
        valid_until=args.valid_until,
        valid_from=args.valid_from,
        document=args.document,
        document_sha256=args.document_sha256,
        note=args.note,
    )

"""`stageswap keys init`: trial signing credentials for the C2PA manifests of recordings."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    k = sub.add_parser(
        "keys",
        help="create signing credentials for recordings' provenance (C2PA)",
        description="Recordings are signed with a certificate and key the operator configures. `keys init` makes "
        "a pair for trials: a throw-away root CA (trust.pem) and a signer certificate issued by it "
        "(signer.pem, signer.key). Use a certificate from a real CA in production.",
    )
    ksub = k.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    init = ksub.add_parser("init", help="create trial credentials in DATA_DIR/keys (or --out DIR)")
    init.add_argument("--data-dir", metavar="DIR", help="data directory (default $STAGESWAP_DATA or ~/.local/share)")
    init.add_argument("--out", type=Path, metavar="DIR", help="write the files here instead of DATA_DIR/keys")
    init.add_argument("--alg", choices=("es256", "ps256"), default="es256", help="signature algorithm (es256)")
    init.add_argument("--days", type=int, default=365, help="validity of the signer certificate in days (365)")
    init.add_argument("--organisation", default="stageswap trial", help="organisation named in the certificates")
    init.add_argument("--force", action="store_true", help="replace existing credentials")
    k.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from engines.paths import data_dir
    from streamer.governance.provenance import create_trial_credentials, keys_dir

    out = args.out or keys_dir(data_dir(args.data_dir))
    creds = create_trial_credentials(
        out, alg=args.alg, days=args.days, organisation=args.organisation, force=args.force
    )
    print(f"signer certificate: {creds.cert_path}")
    print(f"signer key:         {creds.key_path} (mode 0600; keep it private)")
    print(f"trust anchor:       {creds.trust_path} (the trial root CA; give it to whoever verifies)")
    print(f"algorithm {creds.alg}, valid until {creds.not_after.date().isoformat()}")
    print("These are trial credentials: recordings validate as trusted only where trust.pem is trusted.")
    return 0

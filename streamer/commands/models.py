"""`stageswap models list | fetch | verify | add | remove | consent`: the registry's models and the ones users bring.

A DFM has a person's identity trained in, so ``models add`` registers one only with a consent record (the
same flags as ``identities add``) or ``--unverified``, and ``models consent`` records or renews it; the
status is shown wherever the model is listed, and registrations, removals and consent go to the audit log.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamer.commands import add_consent_args, add_models_arg, consent_from_args

if TYPE_CHECKING:
    from engines.swap.user_models import UserModel, UserModelStore

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
    ma = msub.add_parser(
        "add",
        help="register your own swap or recognition model (inswapper-style, DFM, ArcFace-style ONNX)",
        description="Check an ONNX file (a DeepFaceLab .dfm export, an inswapper-style swapper or an ArcFace-style "
        "recogniser), detect its kind from the graph's inputs and outputs, and register it in the data directory "
        "with its sha256 and the licence you declare. Files that are not one of these kinds, or whose shapes or "
        "resolution disagree with their kind, are refused and nothing is stored. Check the model's licence: many "
        "published swap models allow research use only. A DFM has a person's identity trained in: register it "
        "with that person's consent (the same options as `identities add`) or explicitly --unverified.",
    )
    ma.add_argument("path", type=Path, metavar="PATH", help="the model file (.onnx or .dfm)")
    ma.add_argument(
        "--kind", choices=("inswapper", "dfm", "dnr", "arcface"), help="the kind you expect (default: detect)"
    )
    ma.add_argument("--licence", "--license", dest="licence", metavar="TEXT", help="the model's licence (name or URL)")
    ma.add_argument("--name", metavar="NAME", help="name to select it by (default: from the file name)")
    ma.add_argument("--replace", action="store_true", help="replace a registered model of the same name")
    ma.add_argument(
        "--coverage",
        type=float,
        metavar="F",
        help="DFM and dnr only: crop side in face widths the model was trained on (default 2.2; dnr: 1.8, a "
        "stageswap faceset's)",
    )
    _data_dir_arg(ma)
    add_consent_args(
        ma,
        unverified_help="DFM only: register it without a consent record for its trained-in identity (marked "
        "unverified everywhere)",
    )
    ma.set_defaults(func=run_add)
    mc = msub.add_parser(
        "consent",
        help="record, renew or show the consent of a DFM model's trained-in identity",
        description="With consent flags (or --consent FILE.json): record or replace the consent of the person "
        "whose identity the DFM model NAME was trained on (only the document's sha256 is kept). Without: show "
        "the record on file.",
    )
    mc.add_argument("name")
    _data_dir_arg(mc)
    add_consent_args(mc, unverified_flag=False)
    mc.set_defaults(func=run_consent)
    mr = msub.add_parser("remove", help="unregister a model you added (its copy is deleted)")
    mr.add_argument("name")
    _data_dir_arg(mr)
    mr.set_defaults(func=run_remove)
    ml.add_argument("--json", action="store_true", help="print JSON (registry and registered models)")
    _data_dir_arg(ml)
    m.set_defaults(func=run)


def _data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        metavar="DIR",
        help="data directory (default: $STAGESWAP_DATA, else ~/.local/share/stageswap), holding models.json",
    )


def _user_store(args: argparse.Namespace) -> UserModelStore:
    from engines.paths import data_dir
    from engines.swap.user_models import UserModelStore

    return UserModelStore(data_dir(args.data_dir))


def licence_note(model: UserModel) -> str:
    """The warning a listed model carries (empty when its licence is declared and not restrictive)."""
    if model.licence_flag == "research-only":
        return f"RESEARCH ONLY: the declared licence ({model.licence}) does not allow commercial productions"
    if model.licence_flag == "undeclared":
        return "LICENCE UNDECLARED: check the model's licence before using it in a production (--licence)"
    return ""


def consent_note(model: UserModel) -> str:
    """The warning a DFM carries when its consent is not verified (empty otherwise, and for other kinds)."""
    from streamer.governance.consent import model_consent_summary

    summary = model_consent_summary(model)
    if summary is None or summary["verified"]:
        return ""
    status = summary["status"]
    if status == "unverified":
        return (
            f"CONSENT UNVERIFIED: no consent record for the identity trained into {model.name!r}; it is marked "
            f"unverified wherever it is used (record one: stageswap models consent {model.name} ...)"
        )
    if status == "expired":
        return (
            f"CONSENT EXPIRED on {summary['valid_until']}: new swaps with {model.name!r} are refused "
            f"(renew: stageswap models consent {model.name} ...)"
        )
    return f"CONSENT PENDING: valid from {summary['valid_from']}; new swaps with {model.name!r} are refused until then"


def _audit(args: argparse.Namespace, event: str, **data: object) -> None:
    """Append to the data directory's audit log (streamer.governance.audit), as the local user (like ``identities``)."""
    from engines.paths import data_dir
    from streamer.governance.audit import AuditLog, cli_operator

    AuditLog.in_data_dir(data_dir(args.data_dir)).append(event, data, operator=cli_operator())


def run_add(args: argparse.Namespace) -> int:
    from streamer.governance.audit import MODEL_REGISTERED
    from streamer.governance.consent import add_model, model_consent, model_consent_summary

    store = _user_store(args)
    model = add_model(
        store,
        args.path,
        kind=args.kind,
        licence=args.licence,
        name=args.name,
        replace=args.replace,
        coverage=args.coverage,
        consent=consent_from_args(args),
        unverified=args.unverified,
    )
    consent = model_consent_summary(model)
    record = model_consent(model)
    _audit(
        args,
        MODEL_REGISTERED,
        model=model.name,
        kind=model.kind,
        sha256=model.sha256,
        licence=model.licence or None,
        replace=args.replace,
        **({"consent": consent} if consent is not None else {}),
    )
    print(
        f"registered {model.kind} model {model.name!r} ({model.resolution}x{model.resolution}, "
        f"sha256 {model.sha256[:12]}…) in {store.models_dir}"
    )
    print(f"licence: {model.licence or 'undeclared'}")
    if consent is not None:
        who = f" ({record.consent_by}, {record.production})" if record is not None else ""
        print(f"consent: {consent['status']}{who}" if who else "consent: none recorded (unverified)")
    for note in (licence_note(model), consent_note(model)):
        if note:
            print(f"warning: {note}")
    if model.kind == "inswapper" and not store.names(("arcface",)):
        print(
            "note: inswapper-style models need an ArcFace-style recogniser to embed identities: "
            "stageswap models add FILE --kind arcface, then enroll identities (again)"
        )
    if model.kind == "arcface":
        print(
            "note: identities enrolled from now on get an embedding for inswapper-style models; "
            "enroll earlier ones again"
        )
    if model.is_swap:
        print(f"select it per stream with swap_model={model.name!r} (stageswap process --swap-model {model.name})")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from streamer.governance.audit import MODEL_REMOVED

    model = _user_store(args).remove(args.name)
    _audit(args, MODEL_REMOVED, model=model.name, kind=model.kind)
    print(f"removed model {model.name!r}")
    return 0


def run_consent(args: argparse.Namespace) -> int:
    from engines.errors import InputError
    from engines.swap.user_models import consent_not_applicable
    from streamer.governance.audit import CONSENT_RECORDED
    from streamer.governance.consent import consent_summary, model_consent, set_model_consent

    store = _user_store(args)
    model = store.get(args.name)
    if not model.is_likeness:
        raise InputError(f"model {model.name!r}: {consent_not_applicable(model.kind)}")
    record = consent_from_args(args)
    if record is None:
        current = model_consent(model)
        if current is None:
            print(f"{model.name}: no consent recorded (unverified)")
        else:
            print(json.dumps({**current.to_json(), "status": consent_summary(current)["status"]}, indent=1))
        return 0
    set_model_consent(store, model.name, record)
    summary = consent_summary(record)
    _audit(args, CONSENT_RECORDED, model=model.name, kind=model.kind, consent=summary)
    until = record.valid_until.isoformat() if record.valid_until else "open-ended"
    print(
        f"consent for DFM model {model.name!r} recorded: {summary['status']} ({record.consent_by}, "
        f"{record.production}, {until})"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    from engines.runtime import models

    if args.models_command == "list":
        return _run_list(args)
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


def _run_list(args: argparse.Namespace) -> int:
    from engines.runtime import models
    from streamer.governance.consent import model_consent_summary

    statuses = list(models.iter_status(models_dir=args.models))
    user = _user_store(args).list()
    if args.json:
        registry = [
            {"name": s.spec.name, "licence": s.spec.licence, "file": s.spec.filename, "ok": s.ok, "problem": s.problem}
            for s in statuses
        ]
        print(
            json.dumps(
                {
                    "registry": registry,
                    "user_models": [{**m.summary(), "consent": model_consent_summary(m)} for m in user],
                },
                indent=1,
            )
        )
        return 0
    for status in statuses:
        spec = status.spec
        where = str(status.path) if status.path else "not found"
        state = "ok" if status.ok else status.problem
        print(f"{spec.name:<20} {spec.licence:<12} {spec.filename:<28} {state:<10} {where}")
        print(f"{'':<20} {spec.task}")
    print()
    if not user:
        print("no models of your own registered (stageswap models add PATH)")
        return 0
    print(f"{'your models':<20} {'kind':<10} {'res':>5}  {'sha256':<13} {'consent':<11} licence")
    for m in user:
        consent = model_consent_summary(m)
        agreed = consent["status"] if consent is not None else "-"
        print(
            f"{m.name:<20} {m.kind:<10} {m.resolution:>5}  {m.sha256[:12]:<13} {agreed:<11} {m.licence or 'undeclared'}"
        )
        for note in (licence_note(m), consent_note(m)):
            if note:
                print(f"{'':<20} warning: {note}")
    return 0


def _tqdm_bar(total: int, name: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="B", unit_scale=True, file=sys.stderr, leave=False)

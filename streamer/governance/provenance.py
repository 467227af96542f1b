"""Content provenance for recordings: a signed C2PA manifest saying the video contains synthetic faces.

After a recording is finalised, ``sign_recording`` attaches a C2PA manifest (through ``c2pa-python``)
stating that the footage is a composite with AI-generated faces (``c2pa.actions.v2``,
``c2pa.created`` with the IPTC digital source type ``compositeWithTrainedAlgorithmicMedia``), which
identities were swapped in and with what consent, stageswap's version, the operator (an API token
*id*, never the token) and the time — the same facts that go into the recording's sidecar JSON
(``ProvenanceFacts.to_dict``), so each can be checked against the other.

Containers: c2pa embeds manifests into MP4 / MOV / M4V (fragmented MP4 included). It cannot embed
into Matroska (``.mkv``) or other containers; for those the manifest store is written beside the
file as a sidecar ``NAME.c2pa`` (C2PA's convention), bound to the file by a hash of its bytes.

Signing uses a certificate chain and private key the operator configures (ES256 or PS256; a leaf
certificate with the digitalSignature key usage and an emailProtection/documentSigning EKU, issued
by a CA — c2pa refuses self-signed leaves). ``create_trial_credentials`` (``stageswap keys init``)
makes such a pair for trials: a throw-away root CA and a signer certificate issued by it. Verifying
checks the signature, the hash binding and — when a trust list is configured — the chain.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines import __version__
from engines.errors import InputError, OutputError
from engines.paths import write_atomic

log = logging.getLogger(__name__)

KEYS_DIR = "keys"
SIGNER_CERT = "signer.pem"
SIGNER_KEY = "signer.key"
TRUST_ANCHORS = "trust.pem"
SIDECAR_SUFFIX = ".c2pa"
ASSERTION_LABEL = "org.stageswap.provenance"
ALGORITHMS = ("es256", "es384", "ps256")
DIGITAL_SOURCE_SYNTHETIC = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
DIGITAL_SOURCE_ENHANCED = "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicallyEnhanced"
DIGITAL_SOURCE_CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
ENV_CERT, ENV_KEY, ENV_TRUST = "STAGESWAP_SIGNING_CERT", "STAGESWAP_SIGNING_KEY", "STAGESWAP_TRUST"
EMBED_MIME = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/quicktime"}
SIDECAR_MIME = {".mkv": "video/x-matroska", ".webm": "video/webm", ".ts": "video/mp2t", ".avi": "video/x-msvideo"}
UNMARKED = "unmarked"
"""``watermark_mark`` of a file whose frames carry no invisible watermark (the source view, or the mark turned off)."""
UNKNOWN_MARK = "unknown"
"""What ``stated_mark`` reads where the facts do not name the mark (made before they did, or a mark of other
settings): not an error."""


@dataclass(frozen=True)
class SigningConfig:
    """Where the signing credentials are; chosen by the operator (``--signing-cert/--signing-key``)."""

    cert_path: Path
    """PEM certificate chain: the signer's certificate first, then any intermediates."""
    key_path: Path
    """PEM private key of the signer's certificate."""
    alg: str = "es256"
    trust_path: Path | None = None
    """PEM root certificate(s) that verification trusts; None: signatures are checked, signers are not."""
    tsa_url: str | None = None
    """RFC 3161 time-stamp authority; None for offline stages."""

    def __post_init__(self) -> None:
        if self.alg not in ALGORITHMS:
            raise InputError(f"signing algorithm must be one of {', '.join(ALGORITHMS)}, got {self.alg!r}")


def keys_dir(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / KEYS_DIR


def signing_config(
    data_dir: str | os.PathLike[str],
    cert: str | os.PathLike[str] | None = None,
    key: str | os.PathLike[str] | None = None,
    trust: str | os.PathLike[str] | None = None,
    alg: str | None = None,
    tsa_url: str | None = None,
) -> SigningConfig:
    """The operator's credentials, else those ``stageswap keys init`` wrote in the data directory.

    Explicit paths win, then ``$STAGESWAP_SIGNING_CERT`` / ``$STAGESWAP_SIGNING_KEY`` / ``$STAGESWAP_TRUST``,
    then ``DATA_DIR/keys``. Raises InputError naming the missing file and the command that creates one.
    """
    folder = keys_dir(data_dir)
    cert = cert or os.environ.get(ENV_CERT) or None
    key = key or os.environ.get(ENV_KEY) or None
    trust = trust or os.environ.get(ENV_TRUST) or None
    cert_path = Path(cert) if cert else folder / SIGNER_CERT
    key_path = Path(key) if key else folder / SIGNER_KEY
    for what, path in (("signing certificate", cert_path), ("signing key", key_path)):
        if not path.is_file():
            raise InputError(
                f"{what} {path} not found: give your own (serve/process --signing-cert F --signing-key F, or "
                f"${ENV_CERT}/${ENV_KEY}) or create a trial pair with `stageswap keys init`"
            )
    trust_path = Path(trust) if trust else folder / TRUST_ANCHORS
    if trust and not trust_path.is_file():
        raise InputError(f"trust anchors file {trust_path} not found")
    if alg is None:
        alg = _alg_of(cert_path)
    return SigningConfig(cert_path, key_path, alg, trust_path if trust_path.is_file() else None, tsa_url)


def default_trust(data_dir: str | os.PathLike[str]) -> Path | None:
    """``$STAGESWAP_TRUST``, else ``DATA_DIR/keys/trust.pem`` when it exists."""
    env = os.environ.get(ENV_TRUST)
    if env:
        return Path(env)
    path = keys_dir(data_dir) / TRUST_ANCHORS
    return path if path.is_file() else None


@dataclass(frozen=True)
class IdentityUse:
    """One likeness swapped in during a recording, with its consent summary at the time: an enrolled identity,
    or (``kind="dfm"``) the identity trained into a DFM model, named by the model."""

    name: str
    consent: Mapping[str, Any]
    """``streamer.governance.consent.consent_summary(...)``: always has ``status``
    (verified/unverified/expired/pending)."""
    kind: str = "identity"
    """``identity`` or ``dfm`` (``streamer.governance.likeness``)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "consent": dict(self.consent)}
        if self.kind != "identity":
            out["kind"] = self.kind  # identities stay {name, consent}, as manifests have always stated them
        return out

    @property
    def description(self) -> str:
        if self.kind == "dfm":
            return f"the identity trained into the DFM model {self.name}"
        return f"the enrolled identity {self.name}"


@dataclass(frozen=True)
class ProvenanceFacts:
    """What the manifest and the sidecar JSON both state about one recording."""

    recording_id: str
    created_at: str
    """ISO 8601 UTC time the recording started."""
    identities: tuple[IdentityUse, ...] = ()
    """Identities swapped in (empty: faces were only relit/processed, none replaced)."""
    stream: str | None = None
    operator: str | None = None
    """Token id of the operator who started the recording (``streamer.governance.audit.token_id``), never the token."""
    watermark_id: str | None = None
    """The invisible watermark's id in the frames (8 hex digits), if marking was on."""
    watermark_mark: str | None = None
    """Which mark carries ``watermark_id`` (a name in ``engines.compose.watermark.MARKS``: ``standard``, ``quiet``,
    ...; None: a mark of other settings, stated as ``unknown``). Stated as ``unmarked`` when the frames carry none
    (the source view never does)."""
    audit_head: Mapping[str, Any] | None = None
    """The audit log's head (``seq``, ``sha256``) when signing: an anchor for the log outside it."""
    view: str = "processed"
    """Which output the file holds: ``processed`` (what the engines made) or ``source`` (the camera as received)."""
    software: str = "stageswap"
    version: str = __version__
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        return self.view == "processed" and bool(self.identities)

    @property
    def unverified(self) -> bool:
        return any(use.consent.get("status") != "verified" for use in self.identities)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "synthetic_faces": self.synthetic,
            "recording_id": self.recording_id,
            "view": self.view,
            "created_at": self.created_at,
            "identities": [use.to_dict() for use in self.identities],
            "consent_unverified": self.unverified,
            "stream": self.stream,
            "operator": self.operator,
            "watermark_id": self.watermark_id,
            "watermark_mark": UNMARKED if self.watermark_id is None else self.watermark_mark or UNKNOWN_MARK,
            "audit_head": dict(self.audit_head) if self.audit_head else None,
            "software": self.software,
            "version": self.version,
        }
        if self.extra:
            out["extra"] = dict(self.extra)
        return out


def stated_mark(facts: Mapping[str, Any] | None) -> str:
    """The mark a sidecar's or manifest's facts name: a name in ``MARKS``, ``unmarked``, or ``unknown`` where they
    do not say (written before the field existed, or a mark of other settings). Old facts without the field read
    ``unknown``, never an error."""
    mark = (facts or {}).get("watermark_mark")
    return mark if isinstance(mark, str) and mark else UNKNOWN_MARK


def build_manifest(facts: ProvenanceFacts, title: str) -> dict[str, Any]:
    """The C2PA manifest definition for a recording (for ``c2pa.Builder``)."""
    if facts.synthetic:
        names = ", ".join(use.description for use in facts.identities)
        description = (
            f"Camera footage processed live by stageswap: the performer's face was replaced by a synthetic "
            f"face of {names}" + (" (consent NOT verified)" if facts.unverified else " (consent on record)")
        )
        source = DIGITAL_SOURCE_SYNTHETIC
    elif facts.view == "source":
        description = "The camera feed as stageswap received it, recorded beside the processed output; not processed"
        source = DIGITAL_SOURCE_CAPTURE
    else:
        description = "Camera footage processed live by stageswap (faces relit or tracked, none replaced)"
        source = DIGITAL_SOURCE_ENHANCED
    return {
        "claim_generator_info": [{"name": facts.software, "version": facts.version}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "when": facts.created_at,
                            "softwareAgent": {"name": facts.software, "version": facts.version},
                            "digitalSourceType": source,
                            "description": description,
                        }
                    ]
                },
            },
            {"label": ASSERTION_LABEL, "data": facts.to_dict()},
        ],
    }


@dataclass(frozen=True)
class SignResult:
    path: Path
    manifest_path: Path | None
    """The sidecar ``.c2pa`` file, or None when the manifest is embedded in ``path``."""
    label: str
    """The manifest's URN (``urn:c2pa:...``)."""
    validation_state: str

    @property
    def embedded(self) -> bool:
        return self.manifest_path is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "manifest": "embedded" if self.embedded else str(self.manifest_path.name if self.manifest_path else ""),
            "label": self.label,
            "validation_state": self.validation_state,
        }


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    return Path(path).with_suffix(SIDECAR_SUFFIX)


def sign_recording(path: str | os.PathLike[str], facts: ProvenanceFacts, signing: SigningConfig) -> SignResult:
    """Attach a signed manifest to the finished recording at ``path`` (embedded, or a sidecar ``.c2pa``).

    The embedded case writes a signed copy beside the file and renames it over the original, so an
    interruption leaves the unsigned recording intact. Raises OutputError if signing fails.
    """
    import c2pa

    rec = Path(path)
    if not rec.is_file():
        raise InputError(f"recording {rec} does not exist")
    suffix = rec.suffix.lower()
    embed = suffix in EMBED_MIME
    mime = EMBED_MIME.get(suffix) or SIDECAR_MIME.get(suffix, "application/octet-stream")
    manifest = build_manifest(facts, rec.name)
    try:
        with _signer(signing) as signer, c2pa.Builder(manifest, context=_context(None)) as builder:
            if embed:
                tmp = rec.with_name(f".{rec.name}.signing{suffix}")
                try:
                    with rec.open("rb") as src, tmp.open("w+b") as dst:
                        builder.sign(signer, mime, src, dst)
                        dst.flush()
                        os.fsync(dst.fileno())
                    os.replace(tmp, rec)
                finally:
                    tmp.unlink(missing_ok=True)
                manifest_path = None
            else:
                builder.set_no_embed()
                with rec.open("rb") as src, tempfile.TemporaryFile(dir=rec.parent) as scratch:
                    store = builder.sign(signer, mime, src, scratch)
                manifest_path = sidecar_path(rec)
                write_atomic(manifest_path, store, mode=0o644)
    except c2pa.C2paError as exc:
        raise OutputError(f"recording {rec} could not be signed: {exc}") from exc
    except OSError as exc:
        raise OutputError(f"recording {rec} could not be signed: {exc.strerror or exc}") from exc
    report = verify_file(rec, signing.trust_path)
    if not report.intact:
        raise OutputError(f"recording {rec} was signed but does not validate: {report.summary()}")
    log.info("signed %s (%s, %s)", rec, report.label, "embedded" if embed else "sidecar")
    return SignResult(rec, manifest_path, report.label or "", report.validation_state)


@dataclass(frozen=True)
class VerifyReport:
    path: Path
    found: bool
    """A manifest (embedded or sidecar) was found."""
    embedded: bool = False
    validation_state: str = "absent"
    """c2pa's state: Trusted (chain to a configured anchor), Valid (intact, signer unchecked), Invalid, absent."""
    trust_checked: bool = False
    failures: tuple[dict[str, str], ...] = ()
    label: str | None = None
    facts: dict[str, Any] | None = None
    actions: tuple[dict[str, Any], ...] = ()
    signer: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def intact(self) -> bool:
        """Signature and content hashes hold (whether or not the signer is trusted)."""
        return self.found and self.validation_state in ("Valid", "Trusted")

    @property
    def ok(self) -> bool:
        """Intact and, when a trust list is configured, signed by a trusted certificate."""
        return self.validation_state == "Trusted" if self.trust_checked else self.intact

    def summary(self) -> str:
        if not self.found:
            return self.error or "no C2PA manifest"
        reasons = "; ".join(f"{f.get('code')}: {f.get('explanation')}" for f in self.failures)
        return self.validation_state + (f" ({reasons})" if reasons else "")

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "found": self.found,
            "embedded": self.embedded,
            "validation_state": self.validation_state,
            "trust_checked": self.trust_checked,
            "ok": self.ok,
            "failures": list(self.failures),
            "label": self.label,
            "signer": self.signer,
            "actions": list(self.actions),
            "facts": self.facts,
            "error": self.error,
        }


def verify_file(path: str | os.PathLike[str], trust_path: str | os.PathLike[str] | None = None) -> VerifyReport:
    """Read and validate the manifest of ``path`` (embedded, else its sidecar ``.c2pa``)."""
    import c2pa

    media = Path(path)
    if not media.is_file():
        raise InputError(f"file {media} does not exist")
    trust_pem = _read_trust(trust_path)
    suffix = media.suffix.lower()
    mime = EMBED_MIME.get(suffix) or SIDECAR_MIME.get(suffix, "application/octet-stream")
    sidecar = sidecar_path(media)
    try:
        context = _context(trust_pem)
        with media.open("rb") as stream:
            reader = None
            embedded = False
            if suffix in EMBED_MIME:
                reader = c2pa.Reader.try_create(mime, stream, None, context)
                embedded = reader is not None
            if reader is None and sidecar.is_file():
                stream.seek(0)
                reader = c2pa.Reader(mime, stream, sidecar.read_bytes(), context)
            if reader is None:
                return VerifyReport(media, False, error="no C2PA manifest (none embedded, no sidecar .c2pa)")
            with reader:
                store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        return VerifyReport(media, False, validation_state="Invalid", error=f"manifest cannot be read: {exc}")
    return _report(media, store, embedded, trust_pem is not None)


def _report(media: Path, store: Mapping[str, Any], embedded: bool, trust_checked: bool) -> VerifyReport:
    label = store.get("active_manifest")
    manifest = store.get("manifests", {}).get(label, {}) if label else {}
    results = store.get("validation_results", {}).get("activeManifest", {})
    failures = tuple(
        {"code": str(f.get("code")), "explanation": str(f.get("explanation", ""))} for f in results.get("failure", [])
    )
    facts = None
    actions: tuple[dict[str, Any], ...] = ()
    for assertion in manifest.get("assertions", []):
        if assertion.get("label") == ASSERTION_LABEL:
            facts = assertion.get("data")
        elif str(assertion.get("label", "")).startswith("c2pa.actions"):
            actions = tuple(assertion.get("data", {}).get("actions", []))
    return VerifyReport(
        path=media,
        found=True,
        embedded=embedded,
        validation_state=str(store.get("validation_state", "Invalid")),
        trust_checked=trust_checked,
        failures=failures,
        label=label,
        facts=facts,
        actions=actions,
        signer=dict(manifest.get("signature_info", {})),
    )


class _signer:
    """Context manager around ``c2pa.Signer`` built from the configured PEM files."""

    def __init__(self, signing: SigningConfig) -> None:
        self.signing = signing
        self._signer: Any = None

    def __enter__(self) -> Any:
        import c2pa

        try:
            cert = self.signing.cert_path.read_bytes()
            key = self.signing.key_path.read_bytes()
        except OSError as exc:
            raise InputError(f"signing credentials cannot be read: {exc.strerror or exc}") from exc
        alg = getattr(c2pa.C2paSigningAlg, self.signing.alg.upper())
        try:
            info = c2pa.C2paSignerInfo(alg, cert, key, self.signing.tsa_url)
            self._signer = c2pa.Signer.from_info(info)
        except c2pa.C2paError as exc:
            raise InputError(
                f"signing credentials {self.signing.cert_path} / {self.signing.key_path} are not usable "
                f"for {self.signing.alg}: {exc}"
            ) from exc
        return self._signer

    def __exit__(self, *exc: object) -> None:
        if self._signer is not None:
            self._signer.close()


def _context(trust_pem: str | None) -> Any:
    import c2pa

    settings: dict[str, Any] = {
        "verify": {"ocsp_fetch": False, "remote_manifest_fetch": False, "verify_trust": trust_pem is not None},
        "builder": {"thumbnail": {"enabled": False}},
    }
    if trust_pem is not None:
        settings["trust"] = {"trust_anchors": trust_pem}
    return c2pa.Context.from_dict(settings)


def _read_trust(trust_path: str | os.PathLike[str] | None) -> str | None:
    if trust_path is None:
        return None
    path = Path(trust_path)
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        raise InputError(f"trust anchors file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"trust anchors file {path} cannot be read: {exc}") from exc
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise InputError(f"trust anchors file {path} holds no PEM certificate")
    return text


def _alg_of(cert_path: Path) -> str:
    """es256/es384 for EC keys, ps256 for RSA: what the certificate's key can sign with."""
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"signing certificate {cert_path} is not a PEM certificate: {exc}") from exc
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "es384" if key.curve.name == "secp384r1" else "es256"
    if isinstance(key, rsa.RSAPublicKey):
        return "ps256"
    raise InputError(f"signing certificate {cert_path} has a {type(key).__name__}; use an EC P-256 or RSA key")


# -- trial credentials (stageswap keys init) ---------------------------------------------------------


@dataclass(frozen=True)
class TrialCredentials:
    cert_path: Path
    key_path: Path
    trust_path: Path
    alg: str
    not_after: dt.datetime


def create_trial_credentials(
    out_dir: str | os.PathLike[str],
    alg: str = "es256",
    days: int = 365,
    organisation: str = "stageswap trial",
    force: bool = False,
    now: dt.datetime | None = None,
) -> TrialCredentials:
    """A self-made root CA and a C2PA signer certificate issued by it, for trials.

    c2pa accepts a signer certificate only if it is not a CA, has a critical key usage with
    digitalSignature and an extended key usage it allows (emailProtection and documentSigning here),
    and chains to a trust anchor; a self-signed leaf is refused. The root's private key is not kept:
    it exists only to issue this one certificate. The signer key is written with mode 0600.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

    document_signing = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # id-kp-documentSigning

    if alg not in ("es256", "ps256"):
        raise InputError(f"keys init makes es256 or ps256 credentials, not {alg!r}")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
        raise InputError(f"validity must be 1 to 3650 days, got {days!r}")
    if not isinstance(organisation, str) or not organisation.strip() or len(organisation) > 64:
        raise InputError("organisation must be 1-64 characters")
    folder = Path(out_dir)
    paths = (folder / SIGNER_CERT, folder / SIGNER_KEY, folder / TRUST_ANCHORS)
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise OutputError(
            f"{existing[0]} already exists: keep it, or replace the trial credentials with "
            "`stageswap keys init --force`"
        )
    now = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    not_after = now + dt.timedelta(days=days)

    def new_key() -> Any:
        return ec.generate_private_key(ec.SECP256R1()) if alg == "es256" else rsa.generate_private_key(65537, 2048)

    def sign(builder: x509.CertificateBuilder, key: Any) -> x509.Certificate:
        if alg == "es256":
            return builder.sign(key, hashes.SHA256())
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        return builder.sign(key, hashes.SHA256(), rsa_padding=pss)

    def name(cn: str) -> x509.Name:
        return x509.Name(
            [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation)]
        )

    def usage(signer: bool) -> x509.KeyUsage:
        return x509.KeyUsage(
            digital_signature=signer,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=not signer,
            crl_sign=not signer,
            encipher_only=False,
            decipher_only=False,
        )

    root_key, signer_key = new_key(), new_key()
    root_name = name(f"{organisation} root CA")
    root = sign(
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(signer=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False),
        root_key,
    )
    leaf = sign(
        x509.CertificateBuilder()
        .subject_name(name(f"{organisation} signer"))
        .issuer_name(root_name)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(signer=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, document_signing]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False),
        root_key,
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(
            paths[1],
            signer_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            mode=0o600,
        )
        write_atomic(paths[0], leaf.public_bytes(serialization.Encoding.PEM), mode=0o644)
        write_atomic(paths[2], root.public_bytes(serialization.Encoding.PEM), mode=0o644)
    except OSError as exc:
        raise OutputError(f"trial credentials cannot be written to {folder}: {exc.strerror or exc}") from exc
    return TrialCredentials(paths[0], paths[1], paths[2], alg, not_after)


def identities_from(names: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[IdentityUse, ...]:
    """``IdentityUse`` values from (name, consent summary) pairs, without duplicates, in first-use order."""
    seen: dict[str, IdentityUse] = {}
    for name, consent in names:
        if name not in seen:
            seen[name] = IdentityUse(name, dict(consent))
    return tuple(seen.values())


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

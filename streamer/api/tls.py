"""HTTPS for the stage LAN: a self-signed certificate made once and kept in the data directory.

Browsers give a page the camera only on https:// or on localhost, so a laptop publishing its camera to a
server across the stage network needs HTTPS. ``stageswap serve --self-signed`` makes an ECDSA P-256 key and
a certificate for this machine's names and addresses (``localhost``, the host name, the addresses it
listens on), keeps them in ``DATA/tls/`` (the key readable by the owner only) and reuses them on every
start, so a browser told once to trust it keeps trusting it. It is made again when it is about to expire,
cannot be read, or does not cover an address the server now listens on. The SHA-256 fingerprint is
printed at start: compare it with what the browser shows before accepting the certificate.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from engines.errors import InputError
from engines.paths import write_atomic

log = logging.getLogger(__name__)

TLS_DIR = "tls"
CERT_FILE = "self-signed-cert.pem"
KEY_FILE = "self-signed-key.pem"
VALID_DAYS = 365
RENEW_BEFORE_DAYS = 30
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class SelfSigned:
    cert: Path
    key: Path
    fingerprint: str
    """SHA-256 of the certificate (DER), as ``AB:CD:...`` the way browsers show it."""
    created: bool
    """True when it was made now; False when the cached one was reused."""
    names: tuple[str, ...]


def fingerprint(cert_path: Path) -> str:
    """The SHA-256 fingerprint of the first certificate in a PEM file (InputError if it cannot be read)."""
    try:
        cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the certificate {cert_path}: {exc}") from exc
    return _fingerprint(cert)


def _fingerprint(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def certificate_names(host: str) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) the certificate must cover for a server listening on ``host``."""
    dns = ["localhost"]
    ips = ["127.0.0.1", "::1"]
    hostname = socket.gethostname()
    if hostname and hostname != "localhost":
        dns.append(hostname)
    if host in _WILDCARD_HOSTS:
        ips += _local_addresses(hostname)
    else:
        try:
            ips.append(str(ipaddress.ip_address(host.strip("[]"))))
        except ValueError:
            dns.append(host)
    return sorted(set(dns)), sorted(set(ips), key=lambda a: (":" in a, a))


def _local_addresses(hostname: str) -> list[str]:
    """This machine's addresses, as far as it can tell without asking anyone (no packet is sent)."""
    found: set[str] = set()
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(hostname, None):
            found.add(str(info[4][0]).split("%")[0])
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: picks the outgoing interface, sends nothing
        found.add(str(s.getsockname()[0]))
    return sorted(a for a in found if _is_ip(a))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def self_signed(data_dir: Path, host: str, now: dt.datetime | None = None) -> SelfSigned:
    """The cached self-signed certificate for ``host`` in ``data_dir/tls``, made first if needed."""
    now = now or dt.datetime.now(dt.UTC)
    folder = Path(data_dir) / TLS_DIR
    cert_path, key_path = folder / CERT_FILE, folder / KEY_FILE
    dns, ips = certificate_names(host)
    names = tuple(dns + ips)
    reason = _unusable(cert_path, key_path, dns, ips, now)
    if reason is None:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        return SelfSigned(cert_path, key_path, _fingerprint(cert), False, names)
    log.info("making a self-signed certificate in %s: %s", folder, reason)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        cert = _generate(key_path, cert_path, dns, ips, now)
    except OSError as exc:
        raise InputError(f"cannot write the self-signed certificate in {folder}: {exc.strerror or exc}") from exc
    return SelfSigned(cert_path, key_path, _fingerprint(cert), True, names)


def _unusable(cert_path: Path, key_path: Path, dns: list[str], ips: list[str], now: dt.datetime) -> str | None:
    """Why the cached certificate cannot be reused, or None when it can."""
    if not cert_path.is_file() or not key_path.is_file():
        return "none yet"
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        return f"the cached one cannot be read ({exc})"
    if cert.public_key().public_numbers() != key.public_key().public_numbers():  # type: ignore[union-attr]
        return "the cached certificate and key do not belong together"
    if cert.not_valid_after_utc - now < dt.timedelta(days=RENEW_BEFORE_DAYS):
        return "the cached one expires soon"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "the cached one names no hosts"
    have_dns = set(san.get_values_for_type(x509.DNSName))
    have_ips = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    missing = sorted((set(dns) - have_dns) | (set(ips) - have_ips))
    if missing:
        return f"the cached one does not cover {', '.join(missing)}"
    return None


def _generate(key_path: Path, cert_path: Path, dns: list[str], ips: list[str], now: dt.datetime) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stageswap"),
            x509.NameAttribute(NameOID.COMMON_NAME, dns[-1] if len(dns) > 1 else "localhost"),
        ]
    )
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(key_path, key_pem, 0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert

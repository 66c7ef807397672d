"""Certificates made at test time for the loopback SMTP servers.

A `CertAuthority` writes its CA certificate to ``ca_pem_path`` (give that
to the client as its trust anchor, e.g. SMTPCaFile) and issues server
certificates signed by it. Every key is ECDSA P-256; every file is PEM.
Build one authority per test session (a session-scoped fixture over a
tmp directory): it caches the certificates it has issued.

The certificates a TLS test needs:

- `CertAuthority.valid()`      localhost + 127.0.0.1, valid now: trusted.
- `CertAuthority.expired()`    same names, expired yesterday.
- `CertAuthority.wrong_host()` only ``wrong.example``: a name mismatch for
                               both ``localhost`` and ``127.0.0.1``.
- `self_signed(directory)`     localhost + 127.0.0.1, signed by itself:
                               a chain that no trust store accepts.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_LOOPBACK_NAMES = ("localhost",)
_LOOPBACK_IPS = ("127.0.0.1",)


@dataclass(frozen=True)
class ServerCert:
    """Paths of a server certificate chain and its private key (both PEM)."""

    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side `ssl.SSLContext` presenting this certificate.

        It does not ask for client certificates, which is what aiosmtpd's
        ``tls_context``/``ssl_context`` and `ScriptedServer` expect.
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


class CertAuthority:
    """A test CA that writes itself and the certificates it issues to `directory`.

    ``ca_pem_path`` is the CA certificate, for the client's trust store.
    """

    def __init__(self, directory: Path | str, name: str = "smtpbridge test CA") -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        public_key = self._key.public_key()
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False,
                    key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem_path = self.directory / "ca.pem"
        self.ca_pem_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self._issued: dict[str, ServerCert] = {}

    def issue(
        self,
        stem: str,
        dns_names: tuple[str, ...] = _LOOPBACK_NAMES,
        ip_addresses: tuple[str, ...] = _LOOPBACK_IPS,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> ServerCert:
        """Issue a server certificate and write ``<stem>.pem`` and ``<stem>.key``.

        Validity defaults to from a day ago to a year ahead.
        """
        now = _now()
        return _write_leaf(
            self.directory, stem, dns_names, ip_addresses,
            not_before or now - datetime.timedelta(days=1),
            not_after or now + datetime.timedelta(days=365),
            issuer_key=self._key, issuer_cert=self._cert,
        )

    def valid(self) -> ServerCert:
        """localhost + 127.0.0.1, valid now (issued once, then cached)."""
        return self._once("valid")

    def expired(self) -> ServerCert:
        """localhost + 127.0.0.1, expired a day ago (issued once, then cached)."""
        now = _now()
        return self._once(
            "expired",
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )

    def wrong_host(self) -> ServerCert:
        """Only DNS name ``wrong.example``, no IP address: matches neither
        loopback name (issued once, then cached)."""
        return self._once("wrong-host", dns_names=("wrong.example",), ip_addresses=())

    def client_context(self) -> ssl.SSLContext:
        """A client-side `ssl.SSLContext` that trusts only this CA (for smtplib checks)."""
        return ssl.create_default_context(cafile=str(self.ca_pem_path))

    def _once(self, stem: str, **options) -> ServerCert:
        if stem not in self._issued:
            self._issued[stem] = self.issue(stem, **options)
        return self._issued[stem]


def self_signed(directory: Path | str) -> ServerCert:
    """A self-signed certificate for localhost + 127.0.0.1 (``self-signed.pem/.key``).

    No CA stands behind it, so a verifying client must refuse it.
    """
    now = _now()
    return _write_leaf(
        Path(directory), "self-signed", _LOOPBACK_NAMES, _LOOPBACK_IPS,
        now - datetime.timedelta(days=1), now + datetime.timedelta(days=365),
        issuer_key=None, issuer_cert=None,
    )


def _write_leaf(
    directory: Path,
    stem: str,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    issuer_key: ec.EllipticCurvePrivateKey | None,
    issuer_cert: x509.Certificate | None,
) -> ServerCert:
    """Make a server leaf certificate; without an issuer it signs itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = (dns_names or ip_addresses or (stem,))[0]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    sans: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_cert.public_key()),
            critical=False,
        )
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    cert_path = directory / f"{stem}.pem"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ServerCert(cert_path, key_path)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)

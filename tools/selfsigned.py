"""Self-signed RSA certificates, made with ``cryptography``: for the certificate-credential tests and for the SAML
metadata ``tools.samlmeta`` writes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certificate:
    key_pem: str
    cert_pem: str
    der: bytes
    sha1_hex: str

    def msal_credential(self, *, sha1_only: bool = False) -> dict[str, str]:
        """MSAL's ``client_credential``: with the certificate (MSAL sends ``x5t#S256``, PS256) or, ``sha1_only``, with
        its SHA-1 thumbprint alone (``x5t``, RS256)."""
        if sha1_only:
            return {"private_key": self.key_pem, "thumbprint": self.sha1_hex}
        return {"private_key": self.key_pem, "public_certificate": self.cert_pem}


def self_signed(name: str = "Warden test", *, days: int = 30, not_before_days: int = -1) -> Certificate:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=not_before_days))
        .not_valid_after(now + dt.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return Certificate(
        key_pem,
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        cert.public_bytes(serialization.Encoding.DER),
        cert.fingerprint(hashes.SHA1()).hex(),  # the thumbprint of MSAL's x5t
    )

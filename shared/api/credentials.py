"""Certificate credentials checked at the edge (with ``cryptography``), before anything is stored.

A ``certificatePem`` is the app's certificate and its private key, PEM, as Entra ID certificate credentials take
them (https://learn.microsoft.com/en-us/entra/identity-platform/certificate-credentials): exactly one private key,
unencrypted (Warden keeps it in Key Vault; a passphrase would have to be kept beside it), RSA of at least 2048 bits
(the client assertion is signed RS256/PS256), the certificate first (a chain may follow), its public key the
private key's, and valid now. Each refusal names the problem; the PEM itself is never echoed.
"""

from __future__ import annotations

import base64
import datetime as dt
import re

from shared.service.connections.ports import Certificate

MAX_PEM = 16 * 1024
_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)\r?\n-----END \1-----", re.DOTALL)
MIN_RSA_BITS = 2048


class CertificateRefused(ValueError):
    """The PEM is not a usable certificate credential; the message says why."""


def parse_certificate(pem: str, now: dt.datetime) -> Certificate:
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    blocks = [(m.group(1), m.group(0)) for m in _BLOCK.finditer(pem)]
    if not blocks:
        raise CertificateRefused(
            "is not PEM: expected -----BEGIN CERTIFICATE----- and -----BEGIN PRIVATE KEY----- blocks"
        )
    keys = [b for kind, b in blocks if kind.endswith("PRIVATE KEY")]
    certificates = [b for kind, b in blocks if kind == "CERTIFICATE"]
    if any(kind == "ENCRYPTED PRIVATE KEY" for kind, _ in blocks):
        raise CertificateRefused(
            "the private key is encrypted: give it without a passphrase (Warden keeps it in Key Vault)"
        )
    if len(keys) != 1:
        raise CertificateRefused(f"must hold exactly one private key; it holds {len(keys)}")
    if not certificates:
        raise CertificateRefused("holds no certificate (-----BEGIN CERTIFICATE-----)")
    try:
        key = serialization.load_pem_private_key(keys[0].encode(), password=None)
    except TypeError:
        raise CertificateRefused("the private key is encrypted: give it without a passphrase") from None
    except (ValueError, UnsupportedAlgorithm):
        raise CertificateRefused(
            "the private key cannot be read (malformed PEM or an unsupported key type)"
        ) from None
    try:
        cert = x509.load_pem_x509_certificate(certificates[0].encode())
    except ValueError:
        raise CertificateRefused("the certificate cannot be read (malformed PEM)") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateRefused(
            "the private key must be RSA (Entra ID certificate credentials are RS256/PS256)"
        )
    if key.key_size < MIN_RSA_BITS:
        raise CertificateRefused(f"the RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are needed")
    public = cert.public_key()
    if (
        not isinstance(public, rsa.RSAPublicKey)
        or public.public_numbers() != key.public_key().public_numbers()
    ):
        raise CertificateRefused("the private key does not match the certificate's public key")
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if not_after <= now:
        raise CertificateRefused(f"the certificate expired on {not_after:%Y-%m-%d %H:%M} UTC")
    if not_before > now:
        raise CertificateRefused(f"the certificate is not valid before {not_before:%Y-%m-%d %H:%M} UTC")
    return Certificate(
        pem=pem,
        thumbprint=cert.fingerprint(hashes.SHA256()).hex(),
        sha1=base64.b64encode(cert.fingerprint(hashes.SHA1())).decode(),
        not_after=not_after,
        subject=cert.subject.rfc4514_string(),
    )

"""Entra ID's token-signing keys: RS256 keys published in the JWKS and rolled over.

https://learn.microsoft.com/en-us/entra/identity-platform/signing-key-rollover : "There's always more than one
valid key available ... one key may be rolled soon, another may be its replacement". The current key signs; the
previous one stays published until the next rotation. The keys are part of the simulated world (they survive a
restart with it), and ``POST /_sim/reset`` keeps them: Entra's keys do not change when a tenant does.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PUBLISHED_KEYS = 2  # the current signing key and the one before it (POST /_sim/keys/rotate)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_uint(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


class SigningKey:
    """One RSA signing key, published in the JWKS with its ``kid``."""

    def __init__(self, private_key: rsa.RSAPrivateKey | None = None) -> None:
        self.private_key = private_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.private_key.public_key().public_numbers()
        self.n = _b64url_uint(numbers.n)
        self.e = _b64url_uint(numbers.e)
        # Entra's kid is the base64url SHA-1 thumbprint of the signing certificate (same value as x5t).
        self.kid = b64url(hashlib.sha1(f"{self.n}.{self.e}".encode()).digest())

    def jwk(self, issuer: str) -> dict[str, Any]:
        return {
            "kty": "RSA",
            "use": "sig",
            "kid": self.kid,
            "x5t": self.kid,
            "n": self.n,
            "e": self.e,
            "alg": "RS256",
            "issuer": issuer,
        }

    def sign(self, claims: dict[str, Any]) -> str:
        """A JWS of ``claims`` serialised as they are: PyJWS, not PyJWT's encode, which would refuse claims of
        unexpected types (a test may want a token with a malformed ``iss`` or ``exp``)."""
        return jwt.api_jws.encode(
            json.dumps(claims, separators=(",", ":")).encode(),
            self.private_key,
            algorithm="RS256",
            headers={"typ": "JWT", "kid": self.kid, "x5t": self.kid},
        )

    def verify(self, token: str) -> dict[str, Any]:
        """Signature only; lifetime and audience are the resource's checks (it knows the simulator clock)."""
        return jwt.decode(
            token,
            self.private_key.public_key(),
            algorithms=["RS256"],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_iss": False,
            },
        )

    def pem(self) -> str:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    @classmethod
    def from_pem(cls, pem: str) -> SigningKey:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("a signing key must be an RSA key")
        return cls(key)


class KeyRing:
    """Newest first: ``keys[0]`` signs, all are published (at most PUBLISHED_KEYS)."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = [SigningKey()]

    @property
    def current(self) -> SigningKey:
        return self.keys[0]

    def rotate(self) -> str:
        """A new signing key for every later token; the previous one stays published. Returns the new kid."""
        self.keys = [SigningKey(), *self.keys][:PUBLISHED_KEYS]
        return self.current.kid

    def sign(self, claims: dict[str, Any]) -> str:
        return self.current.sign(claims)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token signed by one of the published keys (chosen by the header's ``kid``)."""
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((k for k in self.keys if k.kid == kid), None)
        if key is None:
            raise jwt.InvalidSignatureError("unknown kid")
        return key.verify(token)

    def jwks(self, issuer: str) -> dict[str, Any]:
        return {"keys": [k.jwk(issuer) for k in self.keys]}

    def snapshot(self) -> list[str]:
        return [k.pem() for k in self.keys]

    def restore(self, pems: list[str]) -> None:
        self.keys = [SigningKey.from_pem(p) for p in pems] or [SigningKey()]

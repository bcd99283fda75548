"""TLS trust for outbound calls.

Locally the simulated Microsoft cloud is signed by a development CA (``WARDEN_CA_BUNDLE``); in Azure the
system store is used. This machine's environment sets ``REQUESTS_CA_BUNDLE``/``SSL_CERT_FILE``, which
override a ``requests`` session's ``verify`` attribute, so callers pass the CA explicitly per client.
"""

from __future__ import annotations

import ssl
from functools import cache
from pathlib import Path


@cache
def ssl_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """An SSL context trusting ``ca_bundle`` (or the system store when None); built once per bundle."""
    if ca_bundle is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(ca_bundle))


def connection_verify(ca_bundle: Path | None) -> str | bool:
    """What Azure SDK clients take as ``connection_verify``: the CA bundle's path, or True (system store)."""
    return str(ca_bundle) if ca_bundle else True

"""Warden's settings, read once from the environment.

The Functions host (Azure, Core Tools or ``tools.funchost``) puts app settings, and locally the ``Values``
of ``local.settings.json``, into the environment. Every setting is validated here, and all problems are
reported together, each naming its setting, so a misconfigured app fails at its first request with a
message an operator can act on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlparse

T = TypeVar("T")

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TABLE_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,39}$")
"""Table names are 3-63 alphanumerics starting with a letter; the longest suffix is 11 characters."""
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
"""Key Vault secret names: 1-127 letters, digits and dashes (about-keys-secrets-certificates, object names)."""


class ConfigError(Exception):
    """One or more settings are missing or malformed; ``problems`` names each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid Warden configuration: " + "; ".join(problems))


@dataclass(frozen=True)
class LocalIdentity:
    """A client-secret identity for Key Vault, for machines without a managed identity (local runs)."""

    tenant_id: str
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # the secret never reaches a log through repr()
        return f"LocalIdentity(tenant_id={self.tenant_id!r}, client_id={self.client_id!r}, client_secret=***)"


@dataclass(frozen=True)
class DemoDirectory:
    """The demo tenant whose app credentials the health check uses until directories are connected."""

    tenant_id: str
    client_id: str
    secret_name: str


@dataclass(frozen=True)
class ConsoleClient:
    """The admin console's sign-in: Warden's API app registration as a confidential client (authorization code
    + PKCE), its client secret in Key Vault under ``secret_name``."""

    client_id: str
    secret_name: str


@dataclass(frozen=True)
class Settings:
    storage_connection: str
    key_vault_url: str
    authority_host: str
    graph_url: str
    ca_bundle: Path | None
    verify_key_vault_challenge: bool
    local_identity: LocalIdentity | None
    demo_directory: DemoDirectory | None
    health_timeout_seconds: float
    api_tenant_id: str = ""
    """The Entra tenant whose tokens the admin API accepts."""
    api_audiences: tuple[str, ...] = ()
    """The admin API's App ID URI and/or client id (a token's ``aud`` must be one of them)."""
    table_prefix: str = "warden"
    clock_offset_seconds: float = 0.0
    """Moves Warden's business clock (lifecycle dates, run times): for tests and rehearsals, never production."""
    public_url: str | None = None
    """Where browsers reach Warden (the delegated consent's redirect URI is ``<public_url>/api/oauth/callback``)."""
    token_refresh_max_age_hours: float = 168.0
    """The token refresh timer redeems a delegated refresh token once its last use is older than this."""
    in_azure: bool = False
    """Running in Azure App Service (``WEBSITE_INSTANCE_ID`` set): notifications go over https only."""
    console: ConsoleClient | None = None
    """The console's sign-in (None: the console answers that it is not configured)."""

    @property
    def redirect_uri(self) -> str | None:
        return f"{self.public_url}/api/oauth/callback" if self.public_url else None

    def __repr__(self) -> str:  # connection strings carry account keys
        return (
            f"Settings(key_vault_url={self.key_vault_url!r}, authority_host={self.authority_host!r}, "
            f"graph_url={self.graph_url!r}, ca_bundle={self.ca_bundle!r}, "
            f"verify_key_vault_challenge={self.verify_key_vault_challenge!r}, "
            f"local_identity={self.local_identity!r}, demo_directory={self.demo_directory!r}, "
            f"health_timeout_seconds={self.health_timeout_seconds!r}, api_tenant_id={self.api_tenant_id!r}, "
            f"api_audiences={self.api_audiences!r}, table_prefix={self.table_prefix!r})"
        )

    @property
    def tls_verify(self) -> str | bool:
        """What Azure SDK clients take as ``connection_verify``: the CA bundle path, or True (the system store)."""
        return str(self.ca_bundle) if self.ca_bundle else True


class _Reader:
    """Collects every problem instead of stopping at the first one."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def required(self, name: str, what: str) -> str:
        value = self.raw(name)
        if value is None:
            self.problems.append(f"{name} is missing: set it to {what}")
            return ""
        return value

    def parsed(self, name: str, default: T, parse: Callable[[str], T], what: str) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError:
            # The value is not echoed: a malformed connection string can still carry an account key.
            self.problems.append(f"{name} is malformed: expected {what}")
            return default


def _https_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme != "https" or not parsed.hostname:
        raise ValueError(value)
    return value.rstrip("/")


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValueError(value)


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError(value)
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 24 * 89:  # at most 89 days: the refresh token's window is 90 (NaN fails too)
        raise ValueError(value)
    return number


def _guid(value: str) -> str:
    if not _GUID.match(value):
        raise ValueError(value)
    return value.lower()


def _secret_name(value: str) -> str:
    if not _SECRET_NAME.match(value):
        raise ValueError(value)
    return value


def _audiences(value: str) -> tuple[str, ...]:
    found = tuple(a.strip() for a in value.split(",") if a.strip())
    if not found or any(" " in a for a in found):
        raise ValueError(value)
    return found


def _table_prefix(value: str) -> str:
    if not _TABLE_PREFIX.match(value):
        raise ValueError(value)
    return value


def _offset(value: str) -> float:
    seconds = float(value)
    if not abs(seconds) <= 10 * 365 * 86400:  # NaN and infinities fail too
        raise ValueError(value)
    return seconds


def _public_url(value: str) -> str:
    parsed = urlparse(value)
    local = parsed.scheme == "http" and parsed.hostname in ("127.0.0.1", "localhost")
    if not (parsed.scheme == "https" or local) or not parsed.hostname or parsed.query or parsed.fragment:
        raise ValueError(value)
    return value.rstrip("/")


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise ValueError(value)
    return path


def _storage_connection(value: str) -> str:
    if value == "UseDevelopmentStorage=true":
        return value
    parts = dict(p.split("=", 1) for p in value.split(";") if "=" in p)
    if not ({"AccountName", "AccountKey"} <= parts.keys() or "SharedAccessSignature" in parts):
        raise ValueError("connection string")
    return value


def _optional_group(r: _Reader, names: tuple[str, ...], purpose: str) -> list[str] | None:
    """A group of settings that are all present or all absent."""
    values = [r.raw(n) for n in names]
    if all(v is None for v in values):
        return None
    missing = [n for n, v in zip(names, values, strict=True) if v is None]
    if missing:
        r.problems.append(f"{', '.join(missing)} missing: {purpose} needs all of {', '.join(names)}")
        return None
    return [v for v in values if v is not None]


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    r = _Reader(os.environ if env is None else env)
    storage = r.required("AzureWebJobsStorage", "the storage account connection string (Azurite locally)")
    if storage:
        storage = r.parsed(
            "AzureWebJobsStorage",
            "",
            _storage_connection,
            "a storage connection string with AccountName and AccountKey",
        )
    vault = r.parsed("WARDEN_KEY_VAULT_URL", "", _https_url, "an https:// Key Vault URL")
    if r.raw("WARDEN_KEY_VAULT_URL") is None:
        r.problems.append("WARDEN_KEY_VAULT_URL is missing: set it to the Key Vault URL (https://…)")
    identity = _optional_group(
        r,
        ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"),
        "a local (client secret) identity for Key Vault",
    )
    demo = _optional_group(
        r, ("WARDEN_DEMO_TENANT_ID", "WARDEN_DEMO_CLIENT_ID", "WARDEN_DEMO_SECRET_NAME"), "the demo directory"
    )
    console = _optional_group(
        r, ("WARDEN_CONSOLE_CLIENT_ID", "WARDEN_CONSOLE_SECRET_NAME"), "the admin console's sign-in"
    )
    if console:
        console[0] = r.parsed(
            "WARDEN_CONSOLE_CLIENT_ID", "", _guid, "the client id (a GUID) of Warden's API app"
        )
        console[1] = r.parsed(
            "WARDEN_CONSOLE_SECRET_NAME",
            "",
            _secret_name,
            "a Key Vault secret name (letters, digits, dashes)",
        )
    settings = Settings(
        storage_connection=storage,
        key_vault_url=vault,
        authority_host=r.parsed(
            "WARDEN_AUTHORITY_HOST",
            "https://login.microsoftonline.com",
            _https_url,
            "an https:// authority host",
        ),
        graph_url=r.parsed(
            "WARDEN_GRAPH_URL",
            "https://graph.microsoft.com/v1.0",
            _https_url,
            "an https:// Graph base URL ending in the version, e.g. …/v1.0",
        ),
        ca_bundle=r.parsed(
            "WARDEN_CA_BUNDLE", None, _existing_file, "the path of an existing CA bundle file"
        ),
        verify_key_vault_challenge=r.parsed(
            "WARDEN_KEY_VAULT_VERIFY_CHALLENGE_RESOURCE", True, _bool, "true or false"
        ),
        local_identity=LocalIdentity(*identity) if identity else None,
        demo_directory=DemoDirectory(*demo) if demo else None,
        health_timeout_seconds=r.parsed(
            "WARDEN_HEALTH_TIMEOUT_SECONDS", 5.0, _positive_float, "a positive number of seconds"
        ),
        api_tenant_id=r.parsed(
            "WARDEN_API_TENANT_ID", "", _guid, "the Entra tenant id (a GUID) of Warden's API app"
        ),
        api_audiences=r.parsed(
            "WARDEN_API_AUDIENCE", (), _audiences, "the API's App ID URI and/or client id, comma-separated"
        ),
        table_prefix=r.parsed(
            "WARDEN_TABLE_PREFIX", "warden", _table_prefix, "1-40 letters and digits, starting with a letter"
        ),
        clock_offset_seconds=r.parsed(
            "WARDEN_CLOCK_OFFSET_SECONDS", 0.0, _offset, "a number of seconds within ten years either way"
        ),
    )
    host = r.raw("WEBSITE_HOSTNAME")
    settings = replace(
        settings,
        public_url=r.parsed(
            "WARDEN_PUBLIC_URL",
            f"https://{host}" if host else None,
            _public_url,
            "Warden's https:// base URL (http only for 127.0.0.1 or localhost), without a path's query",
        ),
        token_refresh_max_age_hours=r.parsed(
            "WARDEN_TOKEN_REFRESH_MAX_AGE_HOURS", 168.0, _non_negative_float, "a number of hours (0 or more)"
        ),
        in_azure=r.raw("WEBSITE_INSTANCE_ID") is not None,
        console=ConsoleClient(*console) if console else None,
    )
    if r.raw("WARDEN_API_TENANT_ID") is None:
        r.problems.append(
            "WARDEN_API_TENANT_ID is missing: set it to the tenant id of Warden's API app registration"
        )
    if r.raw("WARDEN_API_AUDIENCE") is None:
        r.problems.append("WARDEN_API_AUDIENCE is missing: set it to the API's App ID URI and/or client id")
    if r.problems:
        raise ConfigError(r.problems)
    return settings

"""The Key Vault secrets store (https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/): versions,
attributes, tags, soft delete and recovery.

- Set Secret creates a version (value up to 25 KB; ``contentType``, ``tags`` up to 15, ``attributes`` enabled /
  nbf / exp); Get Secret reads the latest or a given version (a disabled one is 403 ``SecretDisabled``); Update
  Secret changes attributes, content type and tags of a version;
- soft delete (https://learn.microsoft.com/en-us/azure/key-vault/general/soft-delete-overview): a deleted secret
  stays recoverable for 90 days at ``/deletedsecrets/{name}`` until purged, and its name cannot be reused meanwhile
  (409 ``ObjectIsDeletedButRecoverable``);
- errors (https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes): 404 ``SecretNotFound``,
  400 ``BadParameter``, 403 ``Forbidden``, 409 ``Conflict``.
Names compare case-insensitively. Values never reach logs or the request log.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from tools.m365sim.backends.errors import VaultError

NAME_RE = re.compile(r"^[0-9a-zA-Z-]{1,127}$")
RECOVERABLE_DAYS = 90
NOT_FOUND_HELP = (
    "If you recently deleted this secret you may be able to recover it using the correct recovery "
    "command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
)


@dataclass
class SecretVersion:
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool
    nbf: int | None
    exp: int | None
    created: int
    updated: int


@dataclass
class Secret:
    name: str
    versions: list[SecretVersion] = field(default_factory=list)
    deleted_date: int | None = None


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise VaultError(400, "BadParameter", f"The request URI contains an invalid name: {name}")


def parse_attributes(body: dict[str, Any]) -> dict[str, Any]:
    attrs = body.get("attributes") or {}
    if not isinstance(attrs, dict):
        raise VaultError(400, "BadParameter", "Property attributes must be an object.")
    out: dict[str, Any] = {}
    if "enabled" in attrs:
        if not isinstance(attrs["enabled"], bool):
            raise VaultError(400, "BadParameter", "Property attributes.enabled must be a boolean.")
        out["enabled"] = attrs["enabled"]
    for key in ("nbf", "exp"):
        if key in attrs and attrs[key] is not None:
            if isinstance(attrs[key], bool) or not isinstance(attrs[key], int):
                raise VaultError(400, "BadParameter", f"Property attributes.{key} must be a Unix time.")
            out[key] = attrs[key]
    return out


def parse_tags(body: dict[str, Any]) -> dict[str, str] | None:
    tags = body.get("tags")
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise VaultError(400, "BadParameter", "Property tags must be an object of strings.")
    if len(tags) > 15:
        raise VaultError(400, "BadParameter", "A maximum of 15 tags is allowed.")
    return dict(tags)


class VaultBackend:
    def __init__(self) -> None:
        self.secrets: dict[str, Secret] = {}
        self.deleted: dict[str, Secret] = {}

    def reset(self) -> None:
        self.secrets.clear()
        self.deleted.clear()

    # -- secrets ------------------------------------------------------------------------------------------------
    def get(self, name: str) -> Secret:
        check_name(name)
        s = self.secrets.get(name.lower())
        if s is None:
            raise VaultError(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {name} was not found in this key vault. {NOT_FOUND_HELP}",
            )
        return s

    @staticmethod
    def version(s: Secret, version: str) -> SecretVersion:
        if not version:
            return s.versions[-1]
        for v in s.versions:
            if v.version.lower() == version.lower():
                return v
        raise VaultError(
            404,
            "SecretNotFound",
            f"A secret with (name/id) {s.name}/{version} was not found in this key vault. {NOT_FOUND_HELP}",
        )

    def readable(self, name: str, version: str) -> tuple[Secret, SecretVersion]:
        """Get Secret: a disabled version is 403 SecretDisabled."""
        s = self.get(name)
        v = self.version(s, version)
        if not v.enabled:
            raise VaultError(
                403, "Forbidden", "Operation get is not allowed on a disabled secret.", inner="SecretDisabled"
            )
        return s, v

    def listed(self) -> list[Secret]:
        return sorted(self.secrets.values(), key=lambda s: s.name.lower())

    def set(self, name: str, body: dict[str, Any], now: int) -> tuple[Secret, SecretVersion]:
        check_name(name)
        if name.lower() in self.deleted:
            raise VaultError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be "
                "reused; in this state, the secret can only be recovered or purged.",
                inner="ObjectIsDeletedButRecoverable",
            )
        value = body.get("value")
        if not isinstance(value, str):
            raise VaultError(400, "BadParameter", "Property value is required and must be a string.")
        if len(value.encode()) > 25 * 1024:
            raise VaultError(400, "BadParameter", "Secret value is too long; the maximum size is 25 KB.")
        ct = body.get("contentType")
        if ct is not None and not isinstance(ct, str):
            raise VaultError(400, "BadParameter", "Property contentType must be a string.")
        attrs = parse_attributes(body)
        version = SecretVersion(
            uuid.uuid4().hex,
            value,
            ct,
            parse_tags(body),
            attrs.get("enabled", True),
            attrs.get("nbf"),
            attrs.get("exp"),
            now,
            now,
        )
        s = self.secrets.setdefault(name.lower(), Secret(name))
        s.versions.append(version)
        return s, version

    def update(self, name: str, version: str, body: dict[str, Any], now: int) -> tuple[Secret, SecretVersion]:
        s = self.get(name)
        v = self.version(s, version)
        attrs = parse_attributes(body)
        v.enabled = attrs.get("enabled", v.enabled)
        v.nbf = attrs.get("nbf", v.nbf)
        v.exp = attrs.get("exp", v.exp)
        if "contentType" in body:
            v.content_type = body["contentType"]
        if "tags" in body:
            v.tags = parse_tags(body)
        v.updated = now
        return s, v

    # -- soft delete --------------------------------------------------------------------------------------------
    def delete(self, name: str, now: int) -> Secret:
        s = self.get(name)
        del self.secrets[name.lower()]
        s.deleted_date = now
        self.deleted[name.lower()] = s
        return s

    def deleted_listed(self) -> list[Secret]:
        return sorted(self.deleted.values(), key=lambda s: s.name.lower())

    def get_deleted(self, name: str) -> Secret:
        check_name(name)
        ds = self.deleted.get(name.lower())
        if ds is None:
            raise VaultError(404, "SecretNotFound", "Deleted Secret not found")
        return ds

    def purge(self, name: str) -> None:
        self.get_deleted(name)
        del self.deleted[name.lower()]

    def recover(self, name: str) -> Secret:
        ds = self.get_deleted(name)
        del self.deleted[name.lower()]
        ds.deleted_date = None
        self.secrets[name.lower()] = ds
        return ds

    # -- persistence ----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "secrets": [asdict(s) for s in self.secrets.values()],
            "deleted": [asdict(s) for s in self.deleted.values()],
        }

    def restore(self, state: dict[str, Any]) -> None:
        def secret(raw: dict[str, Any]) -> Secret:
            return Secret(raw["name"], [SecretVersion(**v) for v in raw["versions"]], raw.get("deleted_date"))

        self.secrets = {s["name"].lower(): secret(s) for s in state["secrets"]}
        self.deleted = {s["name"].lower(): secret(s) for s in state["deleted"]}

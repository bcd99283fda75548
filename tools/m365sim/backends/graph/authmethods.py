"""Temporary Access Pass: the authentication method and the tenant's policy for it.

- authentication-post-temporaryaccesspassmethods (201; ``temporaryAccessPass`` readable only in this answer;
  ``lifetimeInMinutes`` 10-43200, else the policy's default; ``isUsableOnce``; "A user can only have one Temporary
  Access Pass that's usable within its specified lifetime" - a new one replaces it), authentication-list-
  temporaryaccesspassmethods, temporaryaccesspassauthenticationmethod-get / -delete (204);
- the policy: resources/temporaryaccesspassauthenticationmethodconfiguration (``state`` enabled/disabled,
  ``defaultLifetimeInMinutes`` 60, ``defaultLength`` 8, ``minimumLifetimeInMinutes`` 60,
  ``maximumLifetimeInMinutes`` 480, ``isUsableOnce`` false), temporaryaccesspassauthenticationmethodconfiguration-
  get / -update (204). A pass outside the policy's bounds, a multi-use pass when the policy allows only one-time
  ones, or any pass while the method is disabled is refused: "Converged UserCredentialPolicy does not allow
  creating or updating this authentication method. AuthMethodType [TemporaryAccessPass]." is what Entra answers for
  a user the policy does not allow (MicrosoftDocs/azure-docs#111778); the status, 400, is our choice.

Passes are kept as SHA-256 digests; the method's ``isUsable`` and ``methodUsabilityReason`` are computed on the
simulator's clock.
"""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid
from typing import Any

from tools.m365sim.backends.clock import Clock, iso, parse_iso
from tools.m365sim.backends.graph.errors import bad_request, invalid_property, invalid_value, not_found
from tools.m365sim.backends.graph.store import Data

MIN_LIFETIME = 10
MAX_LIFETIME = 43200
POLICY_DEFAULTS: Data = {
    "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethodConfiguration",
    "id": "TemporaryAccessPass",
    "state": "disabled",
    "defaultLifetimeInMinutes": 60,
    "defaultLength": 8,
    "minimumLifetimeInMinutes": 60,
    "maximumLifetimeInMinutes": 480,
    "isUsableOnce": False,
    "includeTargets": [{"targetType": "group", "id": "all_users", "isRegistrationRequired": False}],
}
POLICY_WRITABLE = frozenset(
    {
        "state",
        "defaultLifetimeInMinutes",
        "defaultLength",
        "minimumLifetimeInMinutes",
        "maximumLifetimeInMinutes",
        "isUsableOnce",
    }
)
POLICY_REFUSED = (
    "Converged UserCredentialPolicy does not allow creating or updating this authentication method. "
    "AuthMethodType [TemporaryAccessPass]."
)
PASS_ALPHABET = string.ascii_letters + string.digits + "!@#$%&*+=?"


class TemporaryAccessPassBackend:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.policy: Data = dict(POLICY_DEFAULTS)
        self.passes: dict[str, Data] = {}
        """user id → its pass (one a user), with ``_digest`` of the pass instead of the pass."""

    # -- the policy -----------------------------------------------------------------------------------------
    def update_policy(self, body: Data) -> Data:
        for name in body:
            if name not in POLICY_WRITABLE:
                raise invalid_property(name)
        merged = {**self.policy, **body}
        if merged["state"] not in ("enabled", "disabled"):
            raise invalid_value("state", "TemporaryAccessPassAuthenticationMethodConfiguration")
        for name in ("defaultLifetimeInMinutes", "minimumLifetimeInMinutes", "maximumLifetimeInMinutes"):
            value = merged[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not MIN_LIFETIME <= value <= MAX_LIFETIME
            ):
                raise invalid_value(name, "TemporaryAccessPassAuthenticationMethodConfiguration")
        if (
            not merged["minimumLifetimeInMinutes"]
            <= merged["defaultLifetimeInMinutes"]
            <= merged["maximumLifetimeInMinutes"]
        ):
            raise invalid_value(
                "defaultLifetimeInMinutes", "TemporaryAccessPassAuthenticationMethodConfiguration"
            )
        length = merged["defaultLength"]
        if isinstance(length, bool) or not isinstance(length, int) or not 8 <= length <= 48:
            raise invalid_value("defaultLength", "TemporaryAccessPassAuthenticationMethodConfiguration")
        if not isinstance(merged["isUsableOnce"], bool):
            raise invalid_value("isUsableOnce", "TemporaryAccessPassAuthenticationMethodConfiguration")
        self.policy = merged
        return self.policy

    # -- passes ---------------------------------------------------------------------------------------------
    def create(self, user_id: str, body: Data) -> tuple[Data, str]:
        """A new pass for ``user_id`` (replacing its current one): the method and the pass, shown once."""
        for name in body:
            if name not in ("isUsableOnce", "lifetimeInMinutes", "startDateTime"):
                raise invalid_property(name)
        lifetime = body.get("lifetimeInMinutes", self.policy["defaultLifetimeInMinutes"])
        if (
            isinstance(lifetime, bool)
            or not isinstance(lifetime, int)
            or not MIN_LIFETIME <= lifetime <= MAX_LIFETIME
        ):
            raise invalid_value("lifetimeInMinutes", "TemporaryAccessPassAuthenticationMethod")
        once = body.get("isUsableOnce", self.policy["isUsableOnce"])
        if not isinstance(once, bool):
            raise invalid_value("isUsableOnce", "TemporaryAccessPassAuthenticationMethod")
        now = self.clock()
        start = parse_iso(body["startDateTime"]) if body.get("startDateTime") else now
        if start is None:
            raise invalid_value("startDateTime", "TemporaryAccessPassAuthenticationMethod")
        if (
            self.policy["state"] != "enabled"
            or not self.policy["minimumLifetimeInMinutes"]
            <= lifetime
            <= self.policy["maximumLifetimeInMinutes"]
            or (self.policy["isUsableOnce"] and not once)
        ):
            raise bad_request(POLICY_REFUSED)
        secret = "".join(secrets.choice(PASS_ALPHABET) for _ in range(int(self.policy["defaultLength"])))
        method = {
            "@odata.type": "#microsoft.graph.temporaryAccessPassAuthenticationMethod",
            "id": str(uuid.uuid4()),
            "createdDateTime": iso(now),
            "startDateTime": iso(start),
            "lifetimeInMinutes": lifetime,
            "isUsableOnce": once,
            "_digest": hashlib.sha256(secret.encode()).hexdigest(),
            "_used": False,
        }
        self.passes[user_id] = method
        return self.render(method), secret

    def list(self, user_id: str) -> list[Data]:
        method = self.passes.get(user_id)
        return [self.render(method)] if method else []

    def get(self, user_id: str, method_id: str) -> Data:
        method = self.passes.get(user_id)
        if method is None or method["id"] != method_id.lower():
            raise not_found(method_id)
        return self.render(method)

    def delete(self, user_id: str, method_id: str) -> None:
        self.get(user_id, method_id)
        del self.passes[user_id]

    def forget_user(self, user_id: str) -> None:
        self.passes.pop(user_id, None)

    def render(self, method: Data) -> Data:
        """The method as Graph shows it (never the pass), usable or not at this moment."""
        now = self.clock()
        start = parse_iso(method["startDateTime"]) or 0.0
        end = start + int(method["lifetimeInMinutes"]) * 60
        if self.policy["state"] != "enabled":
            reason = "DisabledByPolicy"
        elif method["_used"]:
            reason = "OneTimeUsed"
        elif now < start:
            reason = "NotYetValid"
        elif now >= end:
            reason = "Expired"
        else:
            reason = "EnabledByPolicy"
        return {
            **{k: v for k, v in method.items() if not k.startswith("_")},
            "temporaryAccessPass": None,
            "isUsable": reason == "EnabledByPolicy",
            "methodUsabilityReason": reason,
        }

    # -- persistence ----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"policy": self.policy, "passes": self.passes}

    def restore(self, state: dict[str, Any]) -> None:
        self.policy = dict(state["policy"])
        self.passes = dict(state["passes"])

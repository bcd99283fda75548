"""A tenant's domains and their federation (internalDomainFederation).

- domain resource: https://learn.microsoft.com/en-us/graph/api/resources/domain (``isDefault``, ``isInitial``,
  ``isVerified``, ``authenticationType`` Managed/Federated, password policy per domain);
- domain-update: https://learn.microsoft.com/en-us/graph/api/domain-update (204; "Only verified domains can be
  updated"); password policy ranges per https://learn.microsoft.com/en-us/entra/identity/authentication/concept-sspr-policy;
- federation: https://learn.microsoft.com/en-us/graph/api/domain-post-federationconfiguration (201, the domain
  becomes Federated), internaldomainfederation-update (200 with the object), internaldomainfederation-delete (204,
  Managed again), resources/internaldomainfederation (at most one per domain).

Real Graph answers a POST without ``signingCertificate`` with 500 and leaves the domain federated with no readable
configuration (microsoftgraph/microsoft-graph-docs-contrib#1389, microsoft-graph-docs#20203). The simulator answers
what the page documents instead - the property is required - and leaves the domain as it was.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Container, Iterable
from typing import Any

from cryptography import x509

from tools.m365sim.backends.clock import Clock, iso
from tools.m365sim.backends.graph.errors import (
    bad_request,
    invalid_property,
    invalid_value,
    not_found,
    read_only,
    required,
)
from tools.m365sim.backends.graph.store import Data

NEVER_EXPIRES = 2147483647
DOMAIN_OUTPUT = (
    "id",
    "authenticationType",
    "availabilityStatus",
    "isAdminManaged",
    "isDefault",
    "isInitial",
    "isRoot",
    "isVerified",
    "passwordNotificationWindowInDays",
    "passwordValidityPeriodInDays",
    "supportedServices",
    "state",
)
DOMAIN_WRITABLE = frozenset(
    {"isDefault", "passwordValidityPeriodInDays", "passwordNotificationWindowInDays", "authenticationType"}
)
FED_FIELDS = frozenset(
    {
        "displayName",
        "issuerUri",
        "metadataExchangeUri",
        "passiveSignInUri",
        "activeSignInUri",
        "signOutUri",
        "signingCertificate",
        "nextSigningCertificate",
        "preferredAuthenticationProtocol",
        "federatedIdpMfaBehavior",
        "isSignedAuthenticationRequestRequired",
        "promptLoginBehavior",
    }
)
FED_REQUIRED = ("issuerUri", "passiveSignInUri", "signingCertificate")
FED_ENUMS = {
    "preferredAuthenticationProtocol": {"wsFed", "saml"},
    "federatedIdpMfaBehavior": {
        "acceptIfMfaDoneByFederatedIdp",
        "enforceMfaByFederatedIdp",
        "rejectMfaByFederatedIdp",
    },
    "promptLoginBehavior": {"translateToFreshPasswordAuthentication", "nativeSupport", "disabled"},
}
UNVERIFIED_DOMAIN = (
    "The domain portion of the userPrincipalName property is invalid. You must use one of the "
    "verified domain names in your organization."
)


class DomainsBackend:
    """The domains of one tenant, keyed by lower-case name, and the federation of each federated one."""

    def __init__(self, tenant_id: str, display_name: str, clock: Clock) -> None:
        self.tenant_id = tenant_id
        self.display_name = display_name
        self.clock = clock
        self.domains: dict[str, Data] = {}
        self.federation: dict[str, Data] = {}
        """domain id → its internalDomainFederation."""

    # -- the domains ----------------------------------------------------------------------------------------
    def add_all(self, domains: Iterable[dict[str, Any]], taken: Container[str] = ()) -> None:
        """The tenant's domains as created, plus the initial ``*.onmicrosoft.com`` one when none is given (every
        tenant has one, named after it and unique in the cloud: ``taken`` holds the names other tenants use); the
        initial domain is the default unless another is."""
        for given in domains:
            self.add(given)
        if not any(d["isInitial"] for d in self.domains.values()):
            prefix = re.sub(r"[^a-z0-9]", "", self.display_name.lower())[:27] or self.tenant_id[:8]
            name = f"{prefix}.onmicrosoft.com"
            suffix = 1
            while name in taken:
                suffix += 1
                name = f"{prefix}{suffix}.onmicrosoft.com"
            self.add({"id": name, "isInitial": True, "isVerified": True})
        if not any(d["isDefault"] for d in self.domains.values()):
            next(d for d in self.domains.values() if d["isInitial"])["isDefault"] = True

    def add(self, given: dict[str, Any]) -> None:
        domain_id = str(given["id"]).lower()
        verified = bool(given.get("isVerified", False))
        self.domains[domain_id] = {
            "id": domain_id,
            "authenticationType": "Managed",
            "availabilityStatus": None,
            "isAdminManaged": True,
            "isDefault": False,
            "isInitial": domain_id.endswith(".onmicrosoft.com"),
            "isRoot": True,
            "isVerified": verified,
            "passwordNotificationWindowInDays": 14,
            "passwordValidityPeriodInDays": NEVER_EXPIRES,
            "supportedServices": ["Email", "OfficeCommunicationsOnline"] if verified else [],
            "state": None,
            **{k: v for k, v in given.items() if k != "id"},
        }

    def get(self, key: str) -> Data:
        domain = self.domains.get(key.lower())
        if domain is None:
            raise not_found(key)
        return domain

    def all(self) -> list[Data]:
        return list(self.domains.values())

    def names(self) -> list[str]:
        return list(self.domains)

    def default_domain(self) -> str:
        return str(next(d["id"] for d in self.domains.values() if d["isDefault"]))

    def for_upn(self, domain_name: str) -> Data:
        """The verified domain a userPrincipalName may use (user-post-users: "domain must be present in the
        tenant's collection of verified domains")."""
        domain = self.domains.get(domain_name.lower())
        if domain is None or not domain["isVerified"]:
            raise bad_request(UNVERIFIED_DOMAIN)
        return domain

    def update(self, key: str, body: Data) -> None:
        """domain-update. ``authenticationType``: ``Federated`` needs the domain's federationConfiguration first
        (the JumpCloud module and Microsoft's how-to create it, then set the type); ``Managed`` ends the
        federation, as deleting the federationConfiguration does."""
        domain = self.get(key)
        for prop in body:
            if prop not in DOMAIN_WRITABLE:
                raise read_only(prop) if prop in DOMAIN_OUTPUT else invalid_property(prop)
        validity = body.get("passwordValidityPeriodInDays", NEVER_EXPIRES)
        if not isinstance(validity, int) or not (14 <= validity <= 730 or validity == NEVER_EXPIRES):
            raise invalid_value("passwordValidityPeriodInDays", "Domain")
        window = body.get("passwordNotificationWindowInDays", 14)
        if not isinstance(window, int) or not 1 <= window <= 30:
            raise invalid_value("passwordNotificationWindowInDays", "Domain")
        if "isDefault" in body and (body["isDefault"] is not True or not domain["isVerified"]):
            raise invalid_value("isDefault", "Domain")
        if "authenticationType" in body:
            self._check_authentication_type(domain, body["authenticationType"])
        if body.get("isDefault"):
            if domain["authenticationType"] == "Federated":
                raise bad_request(f"The federated domain '{domain['id']}' cannot be the default domain.")
            for other in self.domains.values():
                other["isDefault"] = False
        if body.get("authenticationType") == "Managed":
            self.federation.pop(domain["id"], None)
        domain.update(body)

    def _check_authentication_type(self, domain: Data, value: Any) -> None:
        if value not in ("Managed", "Federated"):
            raise invalid_value("authenticationType", "Domain")
        if not domain["isVerified"]:
            raise bad_request("Only verified domains can be updated.")
        if value == "Federated" and domain["id"] not in self.federation:
            self.check_federable(domain)
            raise bad_request(
                f"Domain '{domain['id']}' has no federation configuration. Create its federationConfiguration "
                "before setting its authenticationType to Federated."
            )

    def is_federated(self, domain_name: str) -> bool:
        domain = self.domains.get(domain_name.lower())
        return domain is not None and domain["authenticationType"] == "Federated"

    # -- federation ---------------------------------------------------------------------------------------
    def federation_of(self, key: str) -> tuple[Data, Data | None]:
        domain = self.get(key)
        return domain, self.federation.get(domain["id"])

    def find_federation(self, key: str, fed_id: str) -> tuple[Data, Data]:
        domain, fed = self.federation_of(key)
        if fed is None or fed["id"] != fed_id.lower():
            raise not_found(fed_id)
        return domain, fed

    def create_federation(self, key: str, body: Data) -> Data:
        domain = self.get(key)
        _check_fed_keys(body)
        self.check_federable(domain)
        if domain["id"] in self.federation:
            raise bad_request(f"Domain '{domain['id']}' is already federated.")
        for prop in FED_REQUIRED:
            if not body.get(prop):
                raise required(prop)
        _check_fed_values(body)
        fed: Data = {
            "@odata.type": "#microsoft.graph.internalDomainFederation",
            "id": str(uuid.uuid4()),
            **dict.fromkeys(sorted(FED_FIELDS)),
            "isSignedAuthenticationRequestRequired": False,
            "federatedIdpMfaBehavior": "acceptIfMfaDoneByFederatedIdp",
            "preferredAuthenticationProtocol": "wsFed",
            **body,
            "signingCertificateUpdateStatus": {
                "certificateUpdateResult": "Success",
                "lastRunDateTime": iso(self.clock()),
            },
        }
        self.federation[domain["id"]] = fed
        domain["authenticationType"] = "Federated"
        return fed

    @staticmethod
    def check_federable(domain: Data) -> None:
        """Entra refuses to federate an unverified, the default or the initial domain."""
        if not domain["isVerified"]:
            raise bad_request(
                f"Domain '{domain['id']}' is not verified. Only verified domains can be federated."
            )
        if domain["isInitial"]:
            raise bad_request(f"The initial domain '{domain['id']}' cannot be federated.")
        if domain["isDefault"]:
            raise bad_request(
                f"The default domain '{domain['id']}' cannot be federated. Set another default domain first."
            )

    def update_federation(self, key: str, fed_id: str, body: Data) -> Data:
        _, fed = self.find_federation(key, fed_id)
        _check_fed_keys(body)
        for prop in FED_REQUIRED:
            if prop in body and not body[prop]:
                raise required(prop)
        _check_fed_values(body)
        fed.update(body)
        return fed

    def delete_federation(self, key: str, fed_id: str) -> None:
        domain, _ = self.find_federation(key, fed_id)
        del self.federation[domain["id"]]
        domain["authenticationType"] = "Managed"

    # -- persistence ----------------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"domains": self.domains, "federation": self.federation}

    def restore(self, state: dict[str, Any]) -> None:
        self.domains = dict(state["domains"])
        self.federation = dict(state["federation"])


def _check_fed_keys(body: Data) -> None:
    for key in body:
        if key == "id":
            raise read_only(key)
        if key not in FED_FIELDS:
            raise invalid_property(key)


def _check_fed_values(body: Data) -> None:
    for prop, allowed in FED_ENUMS.items():
        if prop in body and body[prop] not in allowed:
            raise invalid_value(prop, "InternalDomainFederation")
    for prop in ("signingCertificate", "nextSigningCertificate"):
        if body.get(prop) is not None and not parses_as_certificate(body[prop]):
            # The docs require a base64 X.509 certificate "compatible with the X509Certificate2 class"; a bad
            # one has left domains unmanageable (microsoft-graph-docs issue 20203), so refuse it up front.
            raise invalid_value(prop, "InternalDomainFederation")
    if "isSignedAuthenticationRequestRequired" in body and not isinstance(
        body["isSignedAuthenticationRequestRequired"], bool
    ):
        raise invalid_value("isSignedAuthenticationRequestRequired", "InternalDomainFederation")


def parses_as_certificate(value: Any) -> bool:
    """A base64 DER X.509 certificate."""
    if not isinstance(value, str):
        return False
    try:
        x509.load_der_x509_certificate(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return False
    return True

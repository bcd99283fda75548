"""scim2-tester, an independent checker of SCIM servers against RFC 7643/7644, run over HTTP against the local
host with a SCIM source's token: ``check_server`` discovers the service (ServiceProviderConfig, ResourceTypes,
Schemas), then creates, reads, lists (with ``attributes`` / ``excludedAttributes``, ``/.search``), replaces,
patches (add, replace, remove of every attribute the schemas publish) and deletes Users and Groups.

No result may be ERROR or CRITICAL, and a SKIPPED one is allowed only for a feature the ServiceProviderConfig
declares unsupported (Warden declares sorting unsupported; scim2-tester checks none of it).

The source's mapping feeds no Warden field whose limits a random value can break: scim2-tester writes a random
UUID (36 characters) into every string attribute, and the enterprise ``employeeNumber`` feeds Warden's
employeeId, which Graph holds to 16 (``test_scim_e2e`` provisions that one with realistic values).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from tests.conftest import remember_secret
from tests.e2e.conftest import WardenHost, unique

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
TESTER_MAPPING = {
    "userName": "username",
    "emails.value": "email",
    "name.givenName": "firstName",
    "name.familyName": "lastName",
    "displayName": "displayName",
    "title": "jobTitle",
    f"{ENTERPRISE}:department": "department",
}
UNSUPPORTED = {"sort"}
"""What ServiceProviderConfig declares unsupported: the only reasons a check may be skipped."""


@pytest.fixture(scope="module")
def scim_client(warden: WardenHost) -> Iterator[SyncSCIMClient]:
    created = warden.ok(
        "POST",
        "/hris/sources",
        201,
        json={"name": unique("tester"), "kind": "scim", "mapping": TESTER_MAPPING},
    )
    token = remember_secret(created["credential"])
    http = httpx2.Client(
        base_url=f"{warden.url}/api/scim/v2", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    try:
        yield SyncSCIMClient(http)
    finally:
        http.close()
        warden.call("DELETE", f"/hris/sources/{created['id']}")


def _shown(result: Any) -> str:
    return f"{result.status.name} {result.resource_type or ''} {result.title}: {result.reason}"


@pytest.mark.timeout(600)
def test_scim2_tester_finds_no_error_and_skips_only_what_the_config_declares_unsupported(
    scim_client: SyncSCIMClient, warden: WardenHost
) -> None:
    results = check_server(scim_client)
    print("\nscim2-tester:", dict(Counter(r.status.name for r in results)), f"({len(results)} checks)")
    failed = [r for r in results if r.status in (Status.ERROR, Status.CRITICAL)]
    assert failed == [], "\n".join(_shown(r) for r in failed)
    config = scim_client.provider.config
    assert config is not None and config.sort is not None and not config.sort.supported
    skipped = [r for r in results if r.status == Status.SKIPPED]
    unexplained = [r for r in skipped if not any(word in (r.reason or "").lower() for word in UNSUPPORTED)]
    assert unexplained == [], "\n".join(_shown(r) for r in unexplained)
    titles = {r.title for r in results if r.status == Status.SUCCESS}
    for check in (
        "object_creation",
        "object_replacement",
        "object_deletion",
        "check_add_attribute",
        "check_replace_attribute",
        "check_remove_attribute",
        "search_with_attributes",
        "random_url",
    ):
        assert check in titles, f"{check} did not succeed"
    assert {r.resource_type for r in results if r.status == Status.SUCCESS} >= {"User", "Group"}

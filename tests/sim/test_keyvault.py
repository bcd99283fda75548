"""The simulated Key Vault, driven through azure-keyvault-secrets' SecretClient.

Docs: https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/ and
https://learn.microsoft.com/en-us/azure/key-vault/general/authentication-requests-and-responses
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from tests.sim.conftest import (
    CLIENT_ID,
    GRAPH_SCOPE,
    OTHER_CLIENT_ID,
    OTHER_SECRET,
    SECRET,
    TENANT_ID,
    VAULT_SCOPE,
    SimTenant,
    create_tenant,
    tenant_body,
)


def secret_client(
    tenant: SimTenant, tenant_id: str = TENANT_ID, client_id: str = CLIENT_ID, secret: str = SECRET
) -> SecretClient:
    cred = tenant.credential(ClientSecretCredential, secret, tenant_id, client_id)
    return SecretClient(
        f"{tenant.sim.url}/", cred, verify_challenge_resource=False, connection_verify=tenant.sim.ca
    )


@pytest.fixture
def vault(tenant: SimTenant) -> Iterator[SecretClient]:
    with secret_client(tenant) as client:
        yield client


def test_set_get_versions_update(vault: SecretClient, tenant: SimTenant) -> None:
    """Set Secret creates a new version each time; Get Secret without a version returns the latest; Get Secret
    Versions lists them; Update Secret changes attributes, not the value."""
    v1 = vault.set_secret("warden-demo", "first", content_type="text/plain", tags={"owner": "warden"})
    v2 = vault.set_secret("warden-demo", "second")
    assert v1.properties.version != v2.properties.version
    assert vault.get_secret("warden-demo").value == "second"
    assert vault.get_secret("warden-demo", v1.properties.version).value == "first"
    assert vault.get_secret("WARDEN-DEMO").value == "second"  # names are case-insensitive
    versions = list(vault.list_properties_of_secret_versions("warden-demo"))
    assert sorted(str(v.version) for v in versions) == sorted(
        [str(v1.properties.version), str(v2.properties.version)]
    )
    updated = vault.update_secret_properties("warden-demo", v2.properties.version, enabled=False)
    assert updated.enabled is False
    with pytest.raises(HttpResponseError) as exc:
        vault.get_secret("warden-demo", v2.properties.version)
    assert exc.value.status_code == 403
    assert v1.properties.content_type == "text/plain" and v1.properties.tags == {"owner": "warden"}
    log = tenant.sim.control("GET", "/_sim/requests").text
    assert "first" not in log and "second" not in log


def test_list_is_paged_with_next_link(vault: SecretClient) -> None:
    """Get Secrets: "maxresults ... up to 25"; further pages come through nextLink."""
    for i in range(5):
        vault.set_secret(f"paged-{i}", str(i))
    pages = list(vault.list_properties_of_secrets(max_page_size=2).by_page())
    names = [p.name for page in pages for p in page]
    assert len(pages) == 3 and sorted(str(n) for n in names) == [f"paged-{i}" for i in range(5)]


def test_missing_secret_is_404_secret_not_found(vault: SecretClient) -> None:
    with pytest.raises(ResourceNotFoundError) as exc:
        vault.get_secret("nope")
    assert exc.value.error is not None and exc.value.error.code == "SecretNotFound"


def test_soft_delete_then_purge(vault: SecretClient) -> None:
    """https://learn.microsoft.com/en-us/azure/key-vault/general/soft-delete-overview : a deleted secret stays
    recoverable at /deletedsecrets until purged, and its name cannot be reused meanwhile (409)."""
    vault.set_secret("to-delete", "x")
    deleted = vault.begin_delete_secret("to-delete").result()
    assert deleted.recovery_id and deleted.deleted_date and deleted.scheduled_purge_date
    assert vault.get_deleted_secret("to-delete").name == "to-delete"
    with pytest.raises(ResourceExistsError):
        vault.set_secret("to-delete", "y")
    vault.purge_deleted_secret("to-delete")
    with pytest.raises(ResourceNotFoundError):
        vault.get_deleted_secret("to-delete")
    assert vault.set_secret("to-delete", "y").value == "y"


def test_recover_deleted_secret(vault: SecretClient) -> None:
    vault.set_secret("recoverable", "keep")
    vault.begin_delete_secret("recoverable").result()
    vault.begin_recover_deleted_secret("recoverable").result()
    assert vault.get_secret("recoverable").value == "keep"


def test_challenge_api_version_and_name_rules(tenant: SimTenant) -> None:
    """authentication-requests-and-responses: a request without a token gets 401 and a Bearer challenge naming
    the authority (with the vault's tenant) and the resource; api-version is required; names are
    ^[0-9a-zA-Z-]{1,127}$ (400 BadParameter)."""
    with tenant.http() as http:
        r = http.get("/secrets/x?api-version=7.6")
        assert r.status_code == 401
        assert r.json()["error"] == {
            "code": "Unauthorized",
            "message": "AKV10000: Request is missing a Bearer or PoP token.",
        }
        assert r.headers["WWW-Authenticate"] == (
            f'Bearer authorization="{tenant.sim.url}/{TENANT_ID}", resource="https://vault.azure.net"'
        )
        token = tenant.token(VAULT_SCOPE)
        auth = {"Authorization": f"Bearer {token}"}
        assert http.get("/secrets/x", headers=auth).json()["error"]["code"] == "BadParameter"
        bad = http.put("/secrets/bad_name?api-version=7.6", headers=auth, json={"value": "v"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "BadParameter"
        graph_token = tenant.token(GRAPH_SCOPE)
        wrong_aud = http.get("/secrets?api-version=7.6", headers={"Authorization": f"Bearer {graph_token}"})
        assert wrong_aud.status_code == 401 and "AKV10022" in wrong_aud.json()["error"]["message"]


def test_other_tenants_and_unauthorized_apps_are_refused(tenant: SimTenant) -> None:
    """Only tokens of the vault's tenant are accepted (401, AKV10032 invalid issuer); an app without a
    data-plane role gets 403 Forbidden (ForbiddenByRbac)."""
    other = tenant_body(
        tenant_id="22222222-3333-4444-8555-666666666666",
        domain="fabrikam.example",
        keyVault=False,
        seedUsers=0,
    )
    foreign = create_tenant(tenant.sim, other)
    with tenant.http() as http:
        r = http.get(
            "/secrets?api-version=7.6", headers={"Authorization": f"Bearer {foreign.token(VAULT_SCOPE)}"}
        )
    assert r.status_code == 401 and "AKV10032" in r.json()["error"]["message"]
    # (Same tenant id again: the SDK caches a vault's challenge, tenant included, per process.)
    body = tenant_body(seedUsers=0)
    body["clients"][1]["keyVaultAccess"] = False
    tenant.sim.reset()
    create_tenant(tenant.sim, body)
    with secret_client(tenant, TENANT_ID, OTHER_CLIENT_ID, OTHER_SECRET) as denied:
        with pytest.raises(HttpResponseError) as exc:
            denied.get_secret("anything")
        assert exc.value.status_code == 403
        assert exc.value.error is not None and exc.value.error.code == "Forbidden"


def test_deleted_secret_bundles_carry_no_value_and_the_versioned_id(tenant: SimTenant) -> None:
    """https://learn.microsoft.com/en-us/rest/api/keyvault/secrets/delete-secret/delete-secret and
    .../get-deleted-secret/get-deleted-secret (samples: versioned "id", "recoveryId" under /deletedsecrets,
    "deletedDate"/"scheduledPurgeDate" in epoch seconds, no "value"); .../get-deleted-secrets lists items with the
    unversioned id."""
    auth = {"Authorization": f"Bearer {tenant.token(VAULT_SCOPE)}"}
    base = tenant.sim.url
    with tenant.http() as http:
        put = http.put("/secrets/gone?api-version=7.6", headers=auth, json={"value": "s3cret"}).json()
        deleted = http.delete("/secrets/gone?api-version=7.6", headers=auth).json()
        got = http.get("/deletedsecrets/gone?api-version=7.6", headers=auth).json()
        listed = http.get("/deletedsecrets?api-version=7.6", headers=auth).json()["value"]
    assert put["id"].startswith(f"{base}/secrets/gone/")
    for bundle in (deleted, got):
        assert "value" not in bundle
        assert bundle["id"] == put["id"]
        assert bundle["recoveryId"] == f"{base}/deletedsecrets/gone"
        assert bundle["scheduledPurgeDate"] == bundle["deletedDate"] + 90 * 86400
        assert bundle["attributes"]["recoveryLevel"] == "Recoverable+Purgeable"
        assert isinstance(bundle["attributes"]["created"], int)
    assert [(i["id"], "value" in i) for i in listed] == [(f"{base}/secrets/gone", False)]

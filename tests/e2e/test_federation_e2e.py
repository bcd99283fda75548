"""Single sign-on for a domain (rule 15) through the local host and the simulated cloud, asserting what Graph shows:
federating a verified, non-default domain from generated metadata (a fresh self-signed certificate); a dry run
writes nothing; each failing check by itself is a 409 naming it and writes nothing; unsafe XML is a 400 before
anything is read; a rolled certificate updates the federation; a federation changed behind Warden's back is put back
by the reconcile; a failure half-way is undone; DELETE returns the domain to Managed and lists who needs a password.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e import sync_support as ss
from tests.e2e.conftest import WardenHost, new_user
from tools import samlmeta


@dataclass
class Sso:
    """A tenant with a default domain, a domain to federate, its initial one and one for its administrators,
    connected to Warden; a Global Administrator on the administrators' domain (the fallback: it stays Managed), and
    one Warden user linked in the domain to federate."""

    tenant: ss.Tenant
    default: str
    sso: str
    initial: str
    user: dict[str, Any]
    link: dict[str, Any]

    @property
    def path(self) -> str:
        return f"/directories/{self.tenant.id}/domains/{self.sso}/federation"

    def path_of(self, domain: str) -> str:
        return f"/directories/{self.tenant.id}/domains/{domain}/federation"

    def graph_domain(self, domain: str | None = None) -> dict[str, Any]:
        found: dict[str, Any] = self.tenant.graph.call("GET", f"/domains/{domain or self.sso}")
        return found

    def graph_federation(self, domain: str | None = None) -> list[dict[str, Any]]:
        listed = self.tenant.graph.call("GET", f"/domains/{domain or self.sso}/federationConfiguration")
        value: list[dict[str, Any]] = listed["value"]
        return value


def assign(warden: WardenHost, tenant: ss.Tenant, principal: str, role: str = "Global Administrator") -> None:
    body = {"principal": principal, "role": role}
    made = warden.stack.sim.control(
        "POST", f"/_sim/tenants/{tenant.graph.tenant_id}/roleAssignments", json=body
    )
    assert made.status_code == 201, made.text


def make_sso(warden: WardenHost, *, admin: bool = True) -> Sso:
    x = uuid.uuid4().hex[:8]
    default, sso, admins = f"corp{x}.example", f"sso{x}.example", f"admins{x}.example"
    tenant = ss.make_tenant(warden, [default, sso, admins])
    initial = next(d["id"] for d in tenant.graph.call("GET", "/domains")["value"] if d["isInitial"])
    if admin:
        ga = tenant.graph.create_user(f"root@{admins}")
        assign(warden, tenant, ga["id"])
    user = new_user(warden, email=f"ada{x}@{sso}", username=f"ada{x}")
    warden.ok("PUT", f"/users/{user['id']}/directories/{tenant.id}", 201)
    link = ss.wait_link(warden, user["id"], tenant.id, "synced")
    ss.drained(warden)
    return Sso(tenant, default, sso, initial, user, link)


@pytest.fixture
def sso(warden: WardenHost) -> Iterator[Sso]:
    made = make_sso(warden)
    yield made
    warden.stack.clear_faults()
    ss.drop_tenant(warden, made.tenant)


def metadata(domain: str, **kw: Any) -> str:
    return samlmeta.for_domain(domain, **kw)


def put(warden: WardenHost, path: str, xml: str, params: dict[str, str] | None = None, **body: Any) -> Any:
    return warden.call("PUT", path, params=params or {}, json={"metadataXml": xml, **body})


def verdicts(body: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["verdict"] for c in body["checks"]}


def failed_checks(response: Any) -> list[str]:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return [c["id"] for c in response.json()["checks"] if c["verdict"] == "fail"]


def test_a_dry_run_checks_everything_and_writes_nothing_then_federating_makes_the_domain_federated(
    warden: WardenHost, sso: Sso
) -> None:
    xml = metadata(sso.sso)
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    dry = put(warden, sso.path, xml, {"dryRun": "true"})
    assert dry.status_code == 200, dry.text
    assert set(verdicts(dry.json()).values()) == {"pass"}, dry.json()["checks"]
    assert dry.json()["proposed"]["issuerUri"] == f"https://idp.example/saml2/{sso.sso}"
    assert rlog.writes(mark, sso.tenant.graph.tenant_id) == [], "a dry run writes nothing"
    assert sso.graph_domain()["authenticationType"] == "Managed"

    refused = put(warden, sso.path, xml)
    assert refused.status_code == 400 and "confirm" in refused.json()["detail"], refused.text
    wrong = put(warden, sso.path, xml, {"confirm": sso.default})
    assert wrong.status_code == 422 and "is not the domain" in wrong.json()["detail"]
    assert rlog.writes(mark, sso.tenant.graph.tenant_id) == [], "no confirmation, no write"

    done = put(warden, sso.path, xml, {"confirm": sso.sso})
    assert done.status_code == 200, done.text
    assert done.json()["authenticationType"] == "Federated" and done.json()["managedByWarden"] is True
    (fed,) = sso.graph_federation()
    assert fed["issuerUri"] == f"https://idp.example/saml2/{sso.sso}"
    assert fed["passiveSignInUri"] == fed["activeSignInUri"] == f"https://idp.example/saml2/{sso.sso}/sso"
    assert fed["signOutUri"] == f"https://idp.example/saml2/{sso.sso}/logout"
    assert fed["preferredAuthenticationProtocol"] == "saml"
    assert fed["federatedIdpMfaBehavior"] == "acceptIfMfaDoneByFederatedIdp"
    assert fed["signingCertificate"] and sso.graph_domain()["authenticationType"] == "Federated"
    posts = [e for e in rlog.writes(mark, sso.tenant.graph.tenant_id) if e["method"] == "POST"]
    assert [e["path"] for e in posts] == [f"/v1.0/domains/{sso.sso}/federationConfiguration"]

    shown = warden.ok("GET", sso.path)
    assert shown["federation"]["issuerUri"] == fed["issuerUri"]
    cert = shown["federation"]["signingCertificate"]
    assert cert["subject"] == "CN=idp.example signing" and len(cert["thumbprint"]) == 40 and cert["notAfter"]
    assert verdicts(shown)["not-federated-elsewhere"] == "pass" and "signing-certificate" in verdicts(shown)
    directory = warden.ok("GET", f"/directories/{sso.tenant.id}")
    types = {d["id"]: d["authenticationType"] for d in directory["domains"]}
    assert types[sso.sso] == "Federated"
    audit = warden.ok("GET", "/audit", params={"directoryId": sso.tenant.id, "limit": "50"})["items"]
    assert any(e["action"] == "federation.set" and e["result"] == "succeeded" for e in audit)


def test_each_failing_check_by_itself_is_a_409_naming_it_and_nothing_is_written(
    warden: WardenHost, sso: Sso
) -> None:
    graph, tid = sso.tenant.graph, sso.tenant.graph.tenant_id
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    confirm = {"confirm": sso.sso}
    assert failed_checks(
        put(warden, sso.path_of(sso.default), metadata(sso.default), {"confirm": sso.default})
    ) == ["not-default"]
    assert failed_checks(
        put(warden, sso.path_of(sso.initial), metadata(sso.initial), {"confirm": sso.initial})
    ) == ["not-initial"]
    bad_issuer = metadata(sso.sso).replace(
        f'entityID="https://idp.example/saml2/{sso.sso}"', 'entityID="idp.example"'
    )
    assert failed_checks(put(warden, sso.path, bad_issuer, confirm)) == ["issuer-format"]
    no_cert = samlmeta.metadata(f"https://idp.example/{sso.sso}", "https://idp.example/sso", [])
    assert failed_checks(put(warden, sso.path, no_cert, confirm)) == ["signing-certificate"]
    expired = samlmeta.metadata(
        f"https://idp.example/{sso.sso}",
        "https://idp.example/sso",
        [samlmeta.certificate("old", days=-1, not_before_days=-400)],
    )
    response = put(warden, sso.path, expired, confirm)
    assert failed_checks(response) == ["signing-certificate"]
    assert "expired" in json.dumps(response.json()["checks"])

    graph.patch_user(sso.link["m365UserId"], {"onPremisesImmutableId": None})
    assert failed_checks(put(warden, sso.path, metadata(sso.sso), confirm)) == ["immutable-ids"]

    stranger = graph.create_user(f"stranger{uuid.uuid4().hex[:6]}@{sso.sso}")
    mark_stranger = rlog.mark()
    assert failed_checks(
        put(warden, sso.path, metadata(sso.sso), {**confirm, "fixImmutableIds": "true"})
    ) == ["unmanaged-accounts"]
    assert rlog.writes(mark_stranger, tid) == [], "a refused run sets no immutable id either"
    graph.call("DELETE", f"/users/{stranger['id']}")

    on_prem = warden.stack.sim.control("PATCH", f"/_sim/tenants/{tid}", json={"onPremisesSyncEnabled": True})
    assert on_prem.status_code == 200
    try:
        assert failed_checks(
            put(warden, sso.path, metadata(sso.sso), {**confirm, "fixImmutableIds": "true"})
        ) == ["no-on-premises-sync"]
    finally:
        warden.stack.sim.control("PATCH", f"/_sim/tenants/{tid}", json={"onPremisesSyncEnabled": None})

    # The test's own account edits are direct calls on /users; anything Warden wrote would be a $batch item or a
    # domain's federation.
    wardens = [
        e
        for e in rlog.writes(mark, tid)
        if e["kind"] == "batch-item" or not e["path"].startswith("/v1.0/users")
    ]
    assert wardens == [], "no check that failed let anything be written"
    assert sso.graph_federation() == [] and sso.graph_domain()["authenticationType"] == "Managed"

    fixed = put(warden, sso.path, metadata(sso.sso), {**confirm, "fixImmutableIds": "true"})
    assert fixed.status_code == 200 and fixed.json()["immutableIdsSet"] == 1, fixed.text
    assert graph.get_user(sso.link["m365UserId"])["onPremisesImmutableId"], "set before federating"
    assert sso.graph_domain()["authenticationType"] == "Federated"


def test_without_an_admin_fallback_federation_is_refused(warden: WardenHost) -> None:
    bare = make_sso(warden, admin=False)
    try:
        boss = bare.tenant.graph.create_user(f"boss{uuid.uuid4().hex[:6]}@{bare.sso}")
        assign(warden, bare.tenant, boss["id"])  # a Global Administrator, but on the domain being federated
        rlog = ss.requests_log(warden)
        mark = rlog.mark()
        response = put(warden, bare.path, metadata(bare.sso), {"confirm": bare.sso, "allowUnmanaged": "true"})
        assert failed_checks(response) == ["admin-fallback"]
        assert rlog.writes(mark, bare.tenant.graph.tenant_id) == []
    finally:
        ss.drop_tenant(warden, bare.tenant)


XXE = """<?xml version="1.0"?>
<!DOCTYPE md [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&xxe;"/>"""
LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">' for n in range(1, 10)
    )
    + ']>\n<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="&lol9;"/>'
)
EXTERNAL = """<?xml version="1.0"?>
<!DOCTYPE md:EntityDescriptor SYSTEM "https://127.0.0.1:9/evil.dtd">
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://idp.example/x"/>"""


@pytest.mark.parametrize("xml", [XXE, LAUGHS, EXTERNAL], ids=["xxe", "billion-laughs", "external-dtd"])
def test_xxe_billion_laughs_and_external_dtds_are_refused_with_400_and_nothing_is_read_or_written(
    warden: WardenHost, demo_directory: dict[str, Any], xml: str
) -> None:
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    for params in ({"dryRun": "true"}, {"confirm": "contoso.example"}):
        response = put(
            warden, f"/directories/{demo_directory['id']}/domains/contoso.example/federation", xml, params
        )
        assert response.status_code == 400, response.text
        assert "may not declare a DTD" in response.json()["detail"]
    assert rlog.entries(mark) == [], "refused before Graph is asked anything"


def test_a_rolled_certificate_updates_the_federation_and_a_change_behind_wardens_back_is_restored(
    warden: WardenHost, sso: Sso
) -> None:
    warden.ok("PUT", sso.path, 200, params={"confirm": sso.sso}, json={"metadataXml": metadata(sso.sso)})
    (first,) = sso.graph_federation()
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    rolled = warden.ok(
        "PUT",
        sso.path,
        200,
        params={"confirm": sso.sso},
        json={"metadataXml": metadata(sso.sso, rollover=True)},
    )
    assert verdicts(rolled)["not-federated-elsewhere"] == "pass"
    (second,) = sso.graph_federation()
    assert second["id"] == first["id"] and second["signingCertificate"] != first["signingCertificate"]
    assert second["nextSigningCertificate"], "the newer certificate is the next one"
    methods = [e["method"] for e in rlog.writes(mark, sso.tenant.graph.tenant_id)]
    assert methods == ["PATCH"], "an update, not a second federation"

    sso.tenant.graph.call(
        "PATCH",
        f"/domains/{sso.sso}/federationConfiguration/{second['id']}",
        json={
            "passiveSignInUri": "https://evil.example/sso",
            "federatedIdpMfaBehavior": "rejectMfaByFederatedIdp",
        },
    )
    run = reconcile(warden, sso.tenant)
    assert run["counts"]["settings.federation"] == 1, run
    (restored,) = sso.graph_federation()
    assert restored["passiveSignInUri"] == f"https://idp.example/saml2/{sso.sso}/sso"
    assert restored["federatedIdpMfaBehavior"] == "acceptIfMfaDoneByFederatedIdp"
    audit = warden.ok("GET", "/audit", params={"directoryId": sso.tenant.id, "limit": "100"})["items"]
    (entry,) = [e for e in audit if e["action"] == "federation.restore"]
    assert entry["before"]["passiveSignInUri"] == "https://evil.example/sso" and entry["actor"].startswith(
        "admin:"
    )


def test_delete_returns_the_domain_to_managed_and_lists_the_users_who_need_a_password(
    warden: WardenHost, sso: Sso
) -> None:
    warden.ok("PUT", sso.path, 200, params={"confirm": sso.sso}, json={"metadataXml": metadata(sso.sso)})
    assert warden.call("DELETE", sso.path).status_code == 400, "confirmation required"
    assert warden.call("DELETE", sso.path, params={"confirm": sso.default}).status_code == 422
    removed = warden.ok("DELETE", sso.path, 200, params={"confirm": sso.sso})
    assert removed["authenticationType"] == "Managed"
    assert removed["needPassword"] == [
        {
            "userId": sso.user["id"],
            "m365UserId": sso.link["m365UserId"],
            "userPrincipalName": sso.user["email"],
        }
    ]
    assert sso.graph_federation() == [] and sso.graph_domain()["authenticationType"] == "Managed"
    run = reconcile(warden, sso.tenant)
    assert run["counts"]["settings.federation"] == 0 and sso.graph_federation() == [], "not put back"
    assert warden.ok("GET", sso.path)["managedByWarden"] is False


def test_a_failure_half_way_is_detected_reported_and_undone(warden: WardenHost, sso: Sso) -> None:
    xml = metadata(sso.sso)
    rlog = ss.requests_log(warden)
    mark = rlog.mark()
    warden.ok("PUT", sso.path, 200, params={"dryRun": "true"}, json={"metadataXml": xml})
    reads = [e for e in rlog.entries(mark, sso.tenant.graph.tenant_id) if e["method"] == "GET"]
    domain_reads = sum(1 for e in reads if e["path"].split("?")[0] == "/v1.0/domains")
    # The federation is created; then reading the domains to check it is Federated fails (once).
    rule = {"method": "GET", "path": "^/v1.0/domains$", "status": 500, "skip": domain_reads, "times": 1}
    warden.stack.set_faults(rules=[rule])
    mark = rlog.mark()
    response = put(warden, sso.path, xml, {"confirm": sso.sso})
    assert response.status_code == 502, response.text
    detail = response.json()["detail"]
    assert "failed while reading the federation back" in detail and "undone" in detail, detail
    assert response.json()["undone"] is True
    paths = [(e["method"], e["path"]) for e in rlog.writes(mark, sso.tenant.graph.tenant_id)]
    assert paths[0] == ("POST", f"/v1.0/domains/{sso.sso}/federationConfiguration")
    assert any(m == "DELETE" for m, _ in paths), paths
    assert sso.graph_federation() == [] and sso.graph_domain()["authenticationType"] == "Managed"
    assert warden.ok("GET", sso.path)["managedByWarden"] is False


def test_an_answer_lost_after_graph_federated_the_domain_is_found_by_reading_back(
    warden: WardenHost, sso: Sso
) -> None:
    rule = {"method": "POST", "path": "/federationConfiguration$", "status": 500, "when": "after", "times": 1}
    warden.stack.set_faults(rules=[rule])
    done = put(warden, sso.path, metadata(sso.sso), {"confirm": sso.sso})
    assert done.status_code == 200, done.text
    assert len(sso.graph_federation()) == 1 and sso.graph_domain()["authenticationType"] == "Federated"


def reconcile(warden: WardenHost, tenant: ss.Tenant) -> dict[str, Any]:
    started = warden.call("POST", f"/directories/{tenant.id}/reconcile", json={"dryRun": False})
    assert started.status_code == 202, started.text
    run_id = started.json()["runId"]
    deadline = time.monotonic() + 30
    while True:
        run: dict[str, Any] = warden.ok("GET", f"/directories/{tenant.id}/runs/{run_id}")
        if run["status"] in ("done", "failed") or time.monotonic() > deadline:
            assert run["status"] == "done", run
            return run
        time.sleep(0.2)

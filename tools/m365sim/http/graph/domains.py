"""Graph's domains, internalDomainFederation and organization endpoints (domain-list, domain-get, domain-update,
domain-list-federationconfiguration, domain-post-federationconfiguration, internaldomainfederation-get / -update /
-delete, organization-list, organization-get)."""

from __future__ import annotations

from tools.m365sim.backends.graph.directory import TenantDirectory
from tools.m365sim.backends.graph.domains import DOMAIN_OUTPUT
from tools.m365sim.backends.graph.store import Data
from tools.m365sim.http.graph.render import body_of, entity
from tools.m365sim.http.graph.request import GraphRequest, GraphResponse


def _domain(domain: Data) -> Data:
    return {k: domain[k] for k in DOMAIN_OUTPUT}


def _fed_context(req: GraphRequest, domain: Data) -> str:
    return f"{req.base_url}/$metadata#domains('{domain['id']}')/federationConfiguration"


def list_domains(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    value = [_domain(x) for x in d.domains.all()]
    return GraphResponse(200, {"@odata.context": f"{req.base_url}/$metadata#domains", "value": value})


def get_domain(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    return entity(req, "domains", _domain(d.domains.get(args[0])))


def update_domain(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # domain-update: 204
    d.domains.update(args[0], body_of(req))
    return GraphResponse(204)


def list_federation(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    domain, fed = d.domains.federation_of(args[0])
    value = [fed] if fed else []
    return GraphResponse(200, {"@odata.context": _fed_context(req, domain), "value": value})


def get_federation(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    domain, fed = d.domains.find_federation(args[0], args[1])
    return GraphResponse(200, {"@odata.context": _fed_context(req, domain) + "/$entity", **fed})


def create_federation(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # domain-post-federationconfiguration: 201 with the object; the domain becomes Federated.
    fed = d.domains.create_federation(args[0], body_of(req))
    domain = d.domains.get(args[0])
    return GraphResponse(201, {"@odata.context": _fed_context(req, domain) + "/$entity", **fed})


def update_federation(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # internaldomainfederation-update: 200 with the updated object.
    fed = d.domains.update_federation(args[0], args[1], body_of(req))
    domain = d.domains.get(args[0])
    return GraphResponse(200, {"@odata.context": _fed_context(req, domain) + "/$entity", **fed})


def delete_federation(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    # internaldomainfederation-delete: 204; the domain is Managed again.
    d.domains.delete_federation(args[0], args[1])
    return GraphResponse(204)


def list_organization(d: TenantDirectory, req: GraphRequest, _: list[str]) -> GraphResponse:
    body = {
        "@odata.context": f"{req.base_url}/$metadata#organization",
        "value": [d.organization.record(d.domains)],
    }
    return GraphResponse(200, body)


def get_organization(d: TenantDirectory, req: GraphRequest, args: list[str]) -> GraphResponse:
    return entity(req, "organization", d.organization.get(args[0], d.domains))

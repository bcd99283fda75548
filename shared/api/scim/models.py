"""What a SCIM source's service publishes (RFC 7644 §4): ServiceProviderConfig, ResourceTypes and Schemas.

The schemas are scim2-models' own (core User, the enterprise extension, Group), with one change a source's mapping
makes: the attributes that feed the Warden fields a user cannot lack (email, first and last name) are marked
required (RFC 7643 §7: a service provider declares what it requires), so a client — and scim2-tester — knows to
send them. The server validates requests with models composed from the very schemas it publishes
(``ScimProvider.from_discovery``), so what it announces and what it enforces cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    Patch,
    Required,
    Resource,
    ResourceType,
    Schema,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    User,
)
from scim2_models import Path as ScimPath

from shared.domain.sources import REQUIRED

MAX_OPERATIONS = 200
MAX_PAYLOAD = 1024 * 1024
"""Bulk: at most 200 operations and 1 MiB a request (Entra's /bulkUpload takes 50 records a call). A Bulk is
answered only once every operation is done, and Azure answers no HTTP-triggered function after 230 seconds whatever
``functionTimeout`` says (learn.microsoft.com/azure/azure-functions/functions-scale#timeout): 1,000 creates took
about 180 s on the 2-core bench machine, too near that limit; 200 leave it a wide margin."""
MAX_RESULTS = 200
"""A query answers at most this many resources a page (``count`` above it is reduced to it, RFC 7644 §3.4.2.4)."""
DEFAULT_COUNT = 100

POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.forbid,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)
"""Strict on what a payload may carry (an attribute the schemas do not declare is refused, not dropped), tolerant
of how Microsoft Entra phrases a PATCH: a ``remove`` selecting entries by its value, an ``add`` or ``replace``
through a filter that matches nothing yet (``emails[type eq "work"].value``). Entra's capitalised ops and string
booleans are accepted by scim2-models itself."""

ENTERPRISE = str(EnterpriseUser.__schema__)
USER_SCHEMA = str(User.__schema__)
GROUP_SCHEMA = str(Group.__schema__)


def config(base: str) -> ServiceProviderConfig:
    """What this service supports. Sorting and ``/Me`` are not: a request using them is refused (400, 501), never
    silently ignored."""
    return ServiceProviderConfig(
        documentation_uri=f"{base}/ServiceProviderConfig",
        patch=Patch(supported=True),
        bulk=Bulk(supported=True, max_operations=MAX_OPERATIONS, max_payload_size=MAX_PAYLOAD),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=True),
        sort=Sort(supported=False),
        etag=ETag(supported=True),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="The token Warden generated for the SCIM source (POST /api/hris/sources), shown once",
                primary=True,
            )
        ],
    )


def _required(schema: Schema, paths: Mapping[str, set[str]]) -> Schema:
    attributes = []
    for attribute in schema.attributes or []:
        subs = paths.get(attribute.name or "")
        if subs is not None:
            sub_attributes = [
                s.model_copy(update={"required": Required.true}) if s.name in subs else s
                for s in attribute.sub_attributes or []
            ] or None
            attribute = attribute.model_copy(
                update={"required": Required.true, "sub_attributes": sub_attributes}
            )
        attributes.append(attribute)
    return schema.model_copy(update={"attributes": attributes})


def published_schemas(mapping: tuple[tuple[str, str], ...]) -> list[Schema]:
    """The User schema with the attributes feeding required Warden fields (and ``userName``) required, the
    enterprise extension, and Group."""
    user_model: Any = User[EnterpriseUser]
    wanted: dict[str, dict[str, set[str]]] = {USER_SCHEMA: {"userName": set()}, ENTERPRISE: {}}
    for path, target in mapping:
        if target not in REQUIRED["scim"]:
            continue
        binding = ScimPath[user_model](path).resolve()
        if binding is None:
            continue
        schema = ENTERPRISE if binding.model is EnterpriseUser else USER_SCHEMA
        attribute = binding.model.model_fields[binding.field_name].serialization_alias or binding.field_name
        subs = wanted[schema].setdefault(attribute, set())
        if binding.sub_field_name:
            sub_type: Any = binding.field_type
            field = sub_type.model_fields[binding.sub_field_name]
            subs.add(field.serialization_alias or binding.sub_field_name)
    return [
        _required(User.to_schema(), wanted[USER_SCHEMA]),
        _required(EnterpriseUser.to_schema(), wanted[ENTERPRISE]),
        Group.to_schema(),
    ]


def resource_types() -> list[ResourceType]:
    user_model: Any = User[EnterpriseUser]
    return [ResourceType.from_resource(user_model), ResourceType.from_resource(Group)]


@lru_cache(maxsize=64)
def provider(mapping: tuple[tuple[str, str], ...]) -> ScimProvider:
    """The service a source with this mapping publishes, its models composed from its schemas (built once per
    mapping and process)."""
    return ScimProvider.from_discovery(published_schemas(mapping), resource_types(), policy=POLICY)


def user_model(mapping: tuple[tuple[str, str], ...]) -> type[Resource[Any]]:
    model: Any = provider(mapping).model_for("User")
    return model  # type: ignore[no-any-return]


def group_model(mapping: tuple[tuple[str, str], ...]) -> type[Resource[Any]]:
    model: Any = provider(mapping).model_for("Group")
    return model  # type: ignore[no-any-return]

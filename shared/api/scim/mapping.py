"""What a SCIM resource means in Warden's fields, and the resource a Warden user or group shows a SCIM client.

Reading (a POST, PUT or PATCH): each of the source's mapping entries reads one SCIM attribute path and feeds one
Warden field, held to the same rules as an admin's value (``shared.api.schemas.SOURCE_FIELD_TYPES``). A path
through a multi-valued attribute without a filter (``emails.value``) reads the primary entry, else the first; a
path with a filter (``emails[type eq "work"].value``) reads the first entry it selects.

Writing (every response): the resource is the document the client last wrote (never its password), with Warden's
values put back where Warden's user has changed since (an admin, another feed, a lifecycle date): a resource shows
exactly what its client sent until someone else changed the person, and then what Warden holds.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import EmailStr, ValidationError
from scim2_models import (
    Context,
    InvalidPathException,
    InvalidValueException,
    Meta,
    Resource,
)
from scim2_models import Path as ScimPath

from shared.api import schemas as s
from shared.api.scim.models import ENTERPRISE, POLICY, USER_SCHEMA
from shared.domain.sources import FIELD_ATTRIBUTES
from shared.service.hr.scim import Sourced, SourcedGroup, WantedGroup, WantedUser

RESERVED = frozenset(
    {"id", "externalid", "meta", "schemas", "active", "password", "groups", f"{ENTERPRISE}:manager".lower()}
)
"""SCIM's own attributes: never fed into a Warden field by a mapping (the id is Warden's, ``externalId`` the
client's key, ``active`` the lifecycle, ``manager`` a reference to another SCIM user)."""
MAX_DOCUMENT = 60_000
"""Characters of JSON a kept resource may have (Table Storage holds 64 KiB in a property)."""


# ------------------------------------------------------------------------------------------- one path
@dataclass(frozen=True)
class Slot:
    """One mapping entry: a SCIM attribute path and the Warden field it feeds."""

    path: ScimPath[Any]
    target: str

    @property
    def attribute(self) -> str:
        return FIELD_ATTRIBUTES[self.target]

    def _entries(self, resource: Any) -> tuple[list[Any], int | None, Any]:
        binding = self.path.resolve()
        assert binding is not None
        host = resource[binding.model] if binding.model is not type(resource) else resource
        entries = list(getattr(host, binding.field_name, None) or []) if host is not None else []
        index = next(
            (i for i, e in enumerate(entries) if getattr(e, "primary", None)), 0 if entries else None
        )
        return entries, index, host

    def _plain_multi(self) -> bool:
        binding = self.path.resolve()
        return bool(binding and binding.is_multivalued and self.path.value_filter is None)

    def get(self, resource: Any) -> str | None:
        if self._plain_multi():
            binding = self.path.resolve()
            assert binding is not None and binding.sub_field_name is not None
            entries, index, _ = self._entries(resource)
            value = getattr(entries[index], binding.sub_field_name, None) if index is not None else None
        else:
            with POLICY:
                value = self.path.get(resource, strict=False)
            if isinstance(value, list):
                value = next((v for v in value if v is not None), None)
        return None if value is None else str(value)

    def put(self, resource: Any, value: str | None) -> None:
        if self._plain_multi():
            binding = self.path.resolve()
            assert binding is not None and binding.sub_field_name is not None
            entries, index, host = self._entries(resource)
            if index is None:
                if value is None:
                    return
                entry_type: Any = binding.field_type
                entries = [entry_type(**{binding.sub_field_name: value, "primary": True})]
            else:
                entries[index] = entries[index].model_copy(update={binding.sub_field_name: value})
            if host is None:
                host = binding.model()
                resource[binding.model] = host
            setattr(host, binding.field_name, entries)
            return
        with POLICY:
            if value is None:
                self.path.delete(resource, strict=False)
            else:
                self.path.set(resource, value, strict=False)


def slots(model: type[Resource[Any]], mapping: tuple[tuple[str, str], ...]) -> list[Slot]:
    return [Slot(ScimPath[model](path), target) for path, target in mapping]  # type: ignore[valid-type]


def check_paths(mapping: Mapping[str, str]) -> None:
    """A SCIM source's mapping: each key a writable, single string SCIM attribute of User or its enterprise
    extension (or a sub-attribute of a multi-valued one, as ``emails.value``); ``ValueError`` naming the first that
    is not."""
    from scim2_models import EnterpriseUser, User

    user_model: Any = User[EnterpriseUser]
    for path in mapping:
        if path.lower() in RESERVED or path.lower().removeprefix(USER_SCHEMA.lower() + ":") in RESERVED:
            raise ValueError(f"mapping.{path}: a SCIM attribute of its own, not mapped")
        try:
            binding = ScimPath[user_model](path).resolve()
        except (InvalidPathException, ValueError, TypeError) as exc:
            raise ValueError(f"mapping.{path}: not a SCIM attribute path ({exc})") from None
        if binding is None:
            raise ValueError(
                f"mapping.{path}: not an attribute of the User schema or its enterprise extension"
            )
        if binding.target_type not in (str, EmailStr):
            raise ValueError(
                f"mapping.{path}: not a string attribute (name a sub-attribute, as emails.value)"
            )
        from scim2_models import Mutability

        mutability = binding.get_annotation(Mutability)
        if mutability not in (Mutability.read_write, Mutability.immutable, None):
            raise ValueError(f"mapping.{path}: read-only in SCIM")


# ---------------------------------------------------------------------------------------------- reading
def _validated(slot: Slot, raw: str | None) -> Any:
    if raw is None:
        return None
    try:
        return s.field_adapter(slot.target).validate_python(raw)
    except ValidationError as exc:
        message = exc.errors(include_url=False)[0]["msg"]
        raise InvalidValueException(
            detail=f"{slot.path}: {message} (it feeds Warden's {slot.target})"
        ) from None


def implied_fields(
    resource: Any, mapping: tuple[tuple[str, str], ...], model: type[Resource[Any]]
) -> dict[str, Any]:
    """The Warden fields (domain names) the resource's mapped attributes give, validated."""
    return {slot.attribute: _validated(slot, slot.get(resource)) for slot in slots(model, mapping)}


def manager_value(resource: Any) -> tuple[bool, str | None]:
    """Whether the resource carries the enterprise extension's manager attribute, and its ``value``."""
    ext = _extension(resource)
    if ext is None:
        return False, None
    manager = getattr(ext, "manager", None)
    return ("manager" in ext.model_fields_set or manager is not None), (manager.value if manager else None)


def _extension(resource: Any) -> Any:
    for model in type(resource).get_extension_models().values():
        if str(model.__schema__) == ENTERPRISE:
            return resource[model]
    return None


def document(resource: Any) -> dict[str, Any]:
    """What to keep of a written resource: what the client may write, without its id, meta or password."""
    kept: dict[str, Any] = resource.model_dump(scim_ctx=Context.RESOURCE_CREATION_REQUEST)
    for name in ("id", "meta", "password", "groups"):
        kept.pop(name, None)
    if len(json.dumps(kept)) > MAX_DOCUMENT:
        raise InvalidValueException(
            detail=f"the resource is too large to keep (over {MAX_DOCUMENT} characters)"
        )
    return kept


def wanted_user(
    resource: Any, mapping: tuple[tuple[str, str], ...], model: type[Resource[Any]], manager_id: str | None
) -> WantedUser:
    password = getattr(resource, "password", None)
    return WantedUser(
        fields=implied_fields(resource, mapping, model),
        active=resource.active,
        manager_id=manager_id,
        manager_given=True,  # a written resource is whole: no manager in it means none
        external_id=resource.external_id,
        document=document(resource),
        password=str(password) if password is not None else None,
    )


def wanted_group(resource: Any) -> WantedGroup:
    members = []
    for member in resource.members or []:
        if member.type not in (None, "User") or member.value is None:
            raise InvalidValueException(
                detail="members: a Warden group holds users only (type User, with a value)"
            )
        members.append(str(member.value))
    kept = document(resource)
    kept["members"] = [m for m in kept.get("members", []) if set(m) - {"value", "$ref", "type"}]
    return WantedGroup(resource.display_name, resource.external_id, tuple(members), kept)


# ---------------------------------------------------------------------------------------------- writing
def _meta(kind: str, base: str, object_id: str, created: dt.datetime, modified: dt.datetime) -> Meta:
    return Meta(
        resource_type=kind, created=created, last_modified=modified, location=f"{base}/{kind}s/{object_id}"
    )


def render_user(
    sourced: Sourced, mapping: tuple[tuple[str, str], ...], model: type[Resource[Any]], base: str
) -> Any:
    user = sourced.record.user
    last = sourced.person.applied
    resource: Any = model.model_validate(dict(sourced.person.document), scim_ctx=None)
    for slot in slots(model, mapping):
        actual = getattr(user, slot.attribute)
        if slot.attribute not in last or last[slot.attribute] != actual:
            slot.put(resource, actual)
    if last.get("state") != user.state:
        resource.active = user.state != "suspended"
    if "manager_id" not in last or last["manager_id"] != user.manager_id:
        _set_manager(resource, user.manager_id, base)
    resource.id = user.id
    resource.external_id = sourced.person.external_id
    resource.meta = _meta("User", base, user.id, user.created_at, user.updated_at)
    resource.meta.version = etag_of(resource)
    return resource


def _set_manager(resource: Any, manager_id: str | None, base: str) -> None:
    for ext_model in type(resource).get_extension_models().values():
        if str(ext_model.__schema__) != ENTERPRISE:
            continue
        ext = resource[ext_model] or ext_model()
        if manager_id is None:
            ext.manager = None
        else:
            manager_type: Any = ext_model.model_fields["manager"].annotation
            manager_cls = next(
                a for a in getattr(manager_type, "__args__", (manager_type,)) if a is not type(None)
            )
            ext.manager = manager_cls(value=manager_id, ref=f"{base}/Users/{manager_id}")
        resource[ext_model] = ext


def render_group(sg: SourcedGroup, model: type[Resource[Any]], base: str) -> Any:
    resource: Any = model.model_validate(dict(sg.record.document), scim_ctx=None)
    if resource.display_name != sg.group.name:
        resource.display_name = sg.group.name
    kept = {str(m.value): m for m in resource.members or []}
    member_type: Any = model.model_fields["members"].annotation
    member_cls = next(a for a in member_type.__args__ if a is not type(None)).__args__[0]
    members = []
    for user_id in [*(k for k in kept if k in sg.members), *(m for m in sg.members if m not in kept)]:
        entry = kept.get(user_id)
        if entry is None:
            entry = member_cls(value=user_id)
        members.append(entry.model_copy(update={"ref": f"{base}/Users/{user_id}", "type": "User"}))
    resource.members = members or None
    resource.id = sg.group.id
    resource.external_id = sg.record.external_id
    resource.meta = _meta("Group", base, sg.group.id, sg.group.created_at, sg.group.updated_at)
    resource.meta.version = etag_of(resource)
    return resource


def etag_of(resource: Any) -> str:
    """RFC 7644 §3.14: a weak version that changes whenever the representation does (a hash of it)."""
    body = resource.model_dump(scim_ctx=Context.RESOURCE_QUERY_RESPONSE)
    body.get("meta", {}).pop("version", None)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:32]
    return f'W/"{digest}"'

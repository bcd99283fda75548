"""Doors of the operations tagged ``groups``: groups, their members and their bindings to directories."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.http import Call, Result
from shared.api import schemas as s
from shared.api.views import group_out

if TYPE_CHECKING:
    from shared.bootstrap import Container


async def create_group(app: Container, call: Call[s.GroupCreate, None]) -> Result:
    body: s.GroupCreate = call.body
    view = await app.groups.create(body.name, body.description, call.actor)
    return Result(201, group_out(view), view.etag, {"Location": f"/api/groups/{view.group.id}"})


async def list_groups(app: Container, call: Call[None, s.ListQuery]) -> Result:
    page = await app.groups.page(call.query.cursor, call.query.limit)
    return Result(200, s.GroupList(items=[group_out(v) for v in page.items], next=page.next))


async def get_group(app: Container, call: Call[None, None]) -> Result:
    view = await app.groups.get(call.params["id"])
    return Result(200, group_out(view), view.etag)


async def update_group(app: Container, call: Call[s.GroupPatch, None]) -> Result:
    changes = {k: getattr(call.body, k) for k in call.body.model_fields_set}
    view = await app.groups.update(call.params["id"], changes, call.if_match, call.actor)
    return Result(200, group_out(view), view.etag)


async def delete_group(app: Container, call: Call[None, None]) -> Result:
    await app.groups.delete(call.params["id"], call.if_match, call.actor)
    return Result(204)


async def add_group_member(app: Container, call: Call[None, None]) -> Result:
    group_id, user_id = call.params["id"], call.params["userId"]
    added = await app.groups.add_member(group_id, user_id, call.actor)
    return Result(201 if added else 200, s.GroupMemberOut(groupId=group_id, userId=user_id))


async def remove_group_member(app: Container, call: Call[None, None]) -> Result:
    await app.groups.remove_member(call.params["id"], call.params["userId"], call.actor)
    return Result(204)


async def bind_group(app: Container, call: Call[s.GroupBindIn, None]) -> Result:
    view, created = await app.groups.bind(
        call.params["id"], call.params["directoryId"], call.actor, adopt=call.body.adopt
    )
    return Result(201 if created else 200, group_out(view))


async def unbind_group(app: Container, call: Call[None, None]) -> Result:
    await app.groups.unbind(call.params["id"], call.params["directoryId"], call.actor)
    return Result(204)

"""Doors of the operations tagged ``users``: users of the identity store, their direct bindings to directories and
their passwords."""

from __future__ import annotations

from typing import TYPE_CHECKING

from functions.http import Call, Result
from shared.api import schemas as s
from shared.api.views import password_out, user_changes, user_fields, user_out
from shared.service.store.users import UserFilter

if TYPE_CHECKING:
    from shared.bootstrap import Container


async def create_user(app: Container, call: Call[s.UserCreate, None]) -> Result:
    password = call.body.password.get_secret_value() if call.body.password is not None else None
    view = await app.users.create(user_fields(call.body), call.actor, initial_password=password)
    return Result(201, user_out(view), view.etag, {"Location": f"/api/users/{view.user.id}"})


async def list_users(app: Container, call: Call[None, s.UserListQuery]) -> Result:
    q: s.UserListQuery = call.query
    flt = UserFilter(q.email, q.employeeId, q.state, q.directoryId, q.status, q.name)
    page = await app.users.page(flt, q.cursor, q.limit)
    return Result(200, s.UserList(items=[user_out(v) for v in page.items], next=page.next))


async def get_user(app: Container, call: Call[None, None]) -> Result:
    view = await app.users.get(call.params["id"])
    return Result(200, user_out(view), view.etag)


async def update_user(app: Container, call: Call[s.UserPatch, None]) -> Result:
    view = await app.users.update(call.params["id"], user_changes(call.body), call.if_match, call.actor)
    return Result(200, user_out(view), view.etag)


async def delete_user(app: Container, call: Call[None, None]) -> Result:
    await app.users.delete(call.params["id"], call.if_match, call.actor)
    return Result(204)


async def bind_user(app: Container, call: Call[None, None]) -> Result:
    view, created = await app.users.bind(call.params["id"], call.params["directoryId"], call.actor)
    return Result(201 if created else 200, user_out(view))


async def unbind_user(app: Container, call: Call[None, None]) -> Result:
    await app.users.unbind(call.params["id"], call.params["directoryId"], call.actor)
    return Result(204)


async def push_password(app: Container, call: Call[s.PasswordIn, None]) -> Result:
    body: s.PasswordIn = call.body
    results = await app.sync.push_password(call.params["id"], body.password.get_secret_value(), call.actor)
    return Result(200, password_out(results))

"""Warden's intents as Graph writes, and Graph's answers as outcomes (``outcomes``): the only place that knows
Graph's paths for writing users and groups.

Users (one plan item's calls travel together in one ``$batch``): ``POST /users`` then the manager ``$ref`` (by UPN:
the new id is not known inside the batch); ``PATCH /users/{id}`` then the manager ``$ref``; a block's PATCH then
``revokeSignInSessions`` (``dependsOn``: sessions are revoked only once the account is disabled). Never a DELETE of
a user. https://learn.microsoft.com/en-us/graph/api/user-post-users, .../user-update, .../user-post-manager,
.../user-revokesigninsessions

Groups: the creation (``POST /groups``, a plain security group), the rename (``PATCH``), adds as
``members@odata.bind`` (≤ 20 per PATCH), removes as ``members/{id}/$ref`` DELETEs. A PATCH of twenty fails whole when
one of them is a member already; those twenty are then added one by one, where "already a member" is success, as
"not a member" is for a remove (rule 14). https://learn.microsoft.com/en-us/graph/api/group-post-groups,
.../group-update, .../group-post-members, .../group-delete-members, .../group-delete
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.adapters.m365.batch import BatchCall, BatchResult, Send
from shared.adapters.m365.outcomes import detail_of, outcome_of, stops_directory
from shared.domain.group_plan import GroupPlan, mail_nickname, member_chunks
from shared.domain.model import Group
from shared.domain.planner import MANAGER, PlanItem
from shared.service.ports import Applied, PasswordSource, Written

ITEMS_PER_ROUND = 64
"""Plan items sent before the answers are read (a permission refusal stops the directory between rounds)."""
ALREADY_MEMBER = "already exist"
"""group-post-members: "One or more added object references already exist for the following modified
properties: 'members'." (400)."""


# -------------------------------------------------------------------------------------------------- users
def _manager_call(
    cid: str, user_ref: str, manager: str | None, graph_root: str, depends_on: str | None
) -> BatchCall:
    if manager is None:
        return BatchCall(cid, "DELETE", f"/users/{user_ref}/manager/$ref", depends_on=depends_on)
    return BatchCall(
        cid,
        "PUT",
        f"/users/{user_ref}/manager/$ref",
        {"@odata.id": f"{graph_root}/users/{manager}"},
        depends_on,
    )


async def user_calls(n: int, item: PlanItem, graph_root: str, password: PasswordSource) -> list[BatchCall]:
    """The Graph calls of one plan item (ids ``<n>.<step>``)."""
    props = {k: after for k, (_, after) in item.changes.items() if k != MANAGER}
    manager = item.changes.get(MANAGER)
    out: list[BatchCall] = []
    if item.action == "create":
        body = {
            **props,
            "passwordProfile": {"password": await password(item), "forceChangePasswordNextSignIn": False},
        }
        out.append(BatchCall(f"{n}.write", "POST", "/users", body))
        if manager is not None and manager[1] is not None:
            upn = props["userPrincipalName"]
            out.append(_manager_call(f"{n}.manager", upn, manager[1], graph_root, f"{n}.write"))
        return out
    target = item.m365_user_id
    if props:
        out.append(BatchCall(f"{n}.write", "PATCH", f"/users/{target}", props))
    if manager is not None:
        depends = out[-1].id if out else None
        out.append(_manager_call(f"{n}.manager", str(target), manager[1], graph_root, depends))
    if item.revoke_sessions:
        depends = f"{n}.write" if props else None
        out.append(
            BatchCall(f"{n}.revoke", "POST", f"/users/{target}/revokeSignInSessions", depends_on=depends)
        )
    return out


def interpret(item: PlanItem, answers: Sequence[BatchResult]) -> Applied:
    """One item's outcome from the answers to its calls. A manager that could not be set (not visible yet, or
    gone) leaves the item applied: the link only remembers a manager that was written, and the next sync tries
    again."""
    main = next((a for a in answers if a.id.endswith((".write", ".revoke"))), None)
    manager = next((a for a in answers if a.id.endswith(".manager")), None)
    created = main is not None and item.action == "create" and main.ok and isinstance(main.body, dict)
    m365_id = str(main.body.get("id")) if created and main is not None else item.m365_user_id
    failure = next((a for a in answers if not a.ok and a.status != 424 and a is not manager), None)
    if failure is None:
        manager_applied = manager is None or manager.ok
        return Applied(item, "applied", m365_id, manager_applied=manager_applied, writes=len(answers))
    outcome = outcome_of(failure, creating=item.action == "create")
    return Applied(item, outcome, m365_id, detail_of(failure), manager_applied=False, writes=len(answers))


async def apply_items(
    send: Send, items: Sequence[PlanItem], graph_root: str, password: PasswordSource
) -> list[Applied]:
    """Write ``items`` (of one directory) and tell each one's outcome. One object's failure never stops the others;
    a directory that refuses Warden (401, or 403 to every object of a round) is sent nothing more: the items not
    yet sent are reported ``stopped``."""
    results: dict[int, Applied] = {n: Applied(i, "none") for n, i in enumerate(items) if not i.writes}
    per_item = {n: await user_calls(n, i, graph_root, password) for n, i in enumerate(items) if i.writes}
    order = sorted(per_item)
    stopped: Applied | None = None
    for start in range(0, len(order), ITEMS_PER_ROUND):
        group = order[start : start + ITEMS_PER_ROUND]
        if stopped is not None:
            for n in group:
                results[n] = Applied(items[n], "stopped", items[n].m365_user_id, stopped.detail)
            continue
        answers = await send([c for n in group for c in per_item[n]])
        mains: list[BatchResult] = []
        for n in group:
            mine = [answers[c.id] for c in per_item[n] if c.id in answers]
            results[n] = interpret(items[n], mine)
            mains.extend(a for a in mine if not a.id.endswith(".manager"))
        if stops_directory(mains, len(group)):
            for n in group:
                if results[n].outcome == "failed":
                    results[n] = Applied(items[n], "stopped", items[n].m365_user_id, results[n].detail)
        stopped = next((results[n] for n in group if results[n].outcome == "stopped"), None)
    return [results[n] for n in range(len(items))]


async def set_password(send: Send, m365_user_id: str, password: str) -> Written:
    body = {"passwordProfile": {"password": password, "forceChangePasswordNextSignIn": False}}
    answer = (await send([BatchCall("pw", "PATCH", f"/users/{m365_user_id}", body)]))["pw"]
    return _written(answer, writes=1)


# ------------------------------------------------------------------------------------------------- groups
def _written(
    answer: BatchResult, *, writes: int, creating: bool = False, m365_id: str | None = None
) -> Written:
    outcome = outcome_of(answer, creating=creating)
    return Written(outcome, None if answer.ok else detail_of(answer), writes, m365_id)


async def create_group(send: Send, group: Group) -> Written:
    body: dict[str, Any] = {
        "displayName": group.name,
        "mailNickname": mail_nickname(group.id, group.name),
        "securityEnabled": True,
        "mailEnabled": False,
        **({"description": group.description} if group.description else {}),
    }
    answer = (await send([BatchCall("create", "POST", "/groups", body)]))["create"]
    if not answer.ok:
        return _written(answer, writes=1, creating=True)
    if not (isinstance(answer.body, dict) and answer.body.get("id")):
        return Written(
            "failed", f"HTTP {answer.status}: Graph answered the creation without the group's id", 1
        )
    return Written("applied", None, 1, str(answer.body["id"]))


def _already_member(answer: BatchResult) -> bool:
    return answer.status == 400 and ALREADY_MEMBER in answer.error_message.lower()


async def change_group(send: Send, m365_id: str, plan: GroupPlan, graph_root: str) -> Written:
    calls: list[BatchCall] = []
    if plan.rename:
        calls.append(BatchCall("rename", "PATCH", f"/groups/{m365_id}", {"displayName": plan.rename}))
    for n, chunk in enumerate(member_chunks(plan.add)):
        refs = [f"{graph_root}/directoryObjects/{m}" for m in chunk]
        calls.append(BatchCall(f"add.{n}", "PATCH", f"/groups/{m365_id}", {"members@odata.bind": refs}))
    for n, member in enumerate(plan.remove):
        calls.append(BatchCall(f"remove.{n}", "DELETE", f"/groups/{m365_id}/members/{member}/$ref"))
    if not calls:
        return Written("none")
    answers = await send(calls)
    writes = len(calls)
    retry = [c for c in calls if c.id.startswith("add.") and _already_member(answers[c.id])]
    if retry:
        # One of the twenty was a member already, which fails the whole PATCH: add them one by one, where
        # "already a member" is success.
        singles = [
            BatchCall(f"one.{n}", "POST", f"/groups/{m365_id}/members/$ref", {"@odata.id": ref})
            for n, ref in enumerate(r for c in retry for r in c.body["members@odata.bind"])
        ]
        more = await send(singles)
        writes += len(singles)
        answers.update({c.id: BatchResult(c.id, 204, None, {}) for c in retry})
        failed = [a for a in more.values() if not (a.ok or _already_member(a))]
        if failed:
            return _written(failed[0], writes=writes)
    for c in calls:
        answer = answers[c.id]
        gone = c.method == "DELETE" and answer.status == 404  # "not a member": success (rule 14)
        if not (answer.ok or _already_member(answer) or gone):
            return _written(answer, writes=writes)
    return Written("applied", None, writes)


async def delete_group(send: Send, m365_id: str) -> Written:
    answer = (await send([BatchCall("delete", "DELETE", f"/groups/{m365_id}")]))["delete"]
    if answer.status == 404:
        return Written("applied", None, 1)  # gone already
    return _written(answer, writes=1)

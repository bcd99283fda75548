"""The M365 adapter's writes: Warden's intents as Graph calls (batched, ``dependsOn``), and Graph's answers — status
*and* error code — as outcomes, against answers recorded in the shapes Microsoft documents.

- Error bodies (https://learn.microsoft.com/en-us/graph/errors): "Errors in Microsoft Graph are returned using
  standard HTTP status codes, and a JSON error response object" — ``{"error": {"code", "message", "innerError":
  {"date", "request-id", "client-request-id"}}}``; directory errors add ``details`` (``code``, ``target``). Its status
  table: 403 "Access is denied to the requested resource. The user might not have enough permission or might not
  have a required license"; 409 "For Directory_ConcurrencyViolation exceptions, you can repeat the request after a
  short delay"; 429 "Client application has been throttled and shouldn't attempt to repeat the request until an
  amount of time has elapsed"; 503 "You may repeat the request after a delay".
- ``$batch`` inner answers (https://learn.microsoft.com/en-us/graph/json-batching): ``{"id", "status", "headers",
  "body"}`` in any order; "if an individual request fails, any request that depends on that request fails with
  status code 424".
- The duplicate UPN (https://learn.microsoft.com/en-us/graph/api/user-post-users): 400 ``Request_BadRequest``
  "Another object with the same value for property userPrincipalName already exists." (details ``ObjectConflict``).
- The existing member (https://learn.microsoft.com/en-us/graph/api/group-post-members): 400 "One or more added
  object references already exist for the following modified properties: 'members'."
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from shared.adapters.m365.batch import BatchCall, BatchResult, chunks
from shared.adapters.m365.outcomes import outcome_of
from shared.adapters.m365.writes import (
    apply_items,
    change_group,
    create_group,
    delete_group,
    interpret,
    set_password,
    user_calls,
)
from shared.domain.group_plan import GroupPlan
from shared.domain.model import Group
from shared.domain.planner import PlanItem
from shared.service.sync.passwords import random_password
from tests.unit.test_planner import T0

ROOT = "https://graph.example/v1.0"


def graph_error(code: str, message: str, *, details: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """An error body as Graph sends it (graph/errors), with the innerError every answer carries."""
    error: dict[str, Any] = {
        "code": code,
        "message": message,
        "innerError": {
            "date": "2026-11-27T09:00:00",
            "request-id": "4f9e2b1c-7d3a-4e58-9b6f-0a1c2d3e4f50",
            "client-request-id": "4f9e2b1c-7d3a-4e58-9b6f-0a1c2d3e4f50",
        },
    }
    if details:
        error["details"] = details
    return {"error": error}


DUPLICATE_UPN = graph_error(
    "Request_BadRequest",
    "Another object with the same value for property userPrincipalName already exists.",
    details=[
        {
            "code": "ObjectConflict",
            "message": "Another object with the same value for property userPrincipalName already exists.",
            "target": "userPrincipalName",
        }
    ],
)
DUPLICATE_PROXY = graph_error(
    "Request_BadRequest",
    "Another object with the same value for property proxyAddresses already exists.",
    details=[{"code": "ObjectConflict", "target": "proxyAddresses"}],
)
NOT_FOUND = graph_error(
    "Request_ResourceNotFound",
    "Resource 'm1' does not exist or one of its queried reference-property objects are not present.",
)
DENIED = graph_error("Authorization_RequestDenied", "Insufficient privileges to complete the operation.")
INVALID_TOKEN = graph_error("InvalidAuthenticationToken", "Access token has expired or is not yet valid.")
THROTTLED = graph_error("TooManyRequests", "Too many requests.")
CONCURRENCY = graph_error(
    "Directory_ConcurrencyViolation",
    "Another operation is modifying the object; retry the request after a short delay.",
)
INVALID_VALUE = graph_error(
    "Request_BadRequest",
    "Invalid value specified for property 'department' of resource 'User'.",
    details=[{"code": "InvalidValue", "target": "department"}],
)
ALREADY_MEMBER = graph_error(
    "Request_BadRequest",
    "One or more added object references already exist for the following modified properties: 'members'.",
)
FAILED_DEPENDENCY = graph_error("FailedDependency", "The request failed due to a failed dependency.")


class FakeGraph:
    """A ``$batch`` sender answering each call by a rule keyed on "METHOD url"; records every round sent. A
    created user gets the id ``new-id``."""

    def __init__(self, answer: dict[str, tuple[int, Any]] | None = None) -> None:
        self.answer = answer or {}
        self.rounds: list[list[BatchCall]] = []

    async def __call__(self, calls: Sequence[BatchCall]) -> dict[str, BatchResult]:
        self.rounds.append(list(calls))
        out: dict[str, BatchResult] = {}
        for c in calls:
            if c.depends_on and not out[c.depends_on].ok:
                out[c.id] = BatchResult(c.id, 424, FAILED_DEPENDENCY, {})
                continue
            created = c.method == "POST" and c.url in ("/users", "/groups")
            status, body = self.answer.get(f"{c.method} {c.url}", (201 if created else 204, None))
            if created and status == 201 and body is None:
                body = {"id": "new-id"}
            out[c.id] = BatchResult(c.id, status, body, {"content-type": "application/json"})
        return out

    @property
    def calls(self) -> list[BatchCall]:
        return [c for r in self.rounds for c in r]


def item(action: str, **kw: Any) -> PlanItem:
    return PlanItem(action, "u1", "d", "synced", **kw)  # type: ignore[arg-type]


async def password(_: PlanItem) -> str:
    return "Str0ng!Passw0rd"


def answered(status: int, body: Any = None, rid: str = "0.write") -> list[BatchResult]:
    return [BatchResult(rid, status, body, {})]


def update(m365_id: str = "m1") -> PlanItem:
    return item("update", m365_user_id=m365_id, changes={"jobTitle": ("a", "b")})


# ---------------------------------------------------------------------------------------- intents → calls
async def test_a_block_disables_then_revokes_sessions_after_the_disable() -> None:
    block = item("block", m365_user_id="m1", changes={"accountEnabled": (True, False)}, revoke_sessions=True)
    calls = await user_calls(0, block, ROOT, password)
    assert [(c.method, c.url, c.depends_on) for c in calls] == [
        ("PATCH", "/users/m1", None),
        ("POST", "/users/m1/revokeSignInSessions", "0.write"),
    ]
    assert calls[0].body == {"accountEnabled": False}


async def test_a_create_posts_the_user_with_a_password_then_its_manager_by_upn() -> None:
    changes = {
        "userPrincipalName": (None, "ada@contoso.example"),
        "accountEnabled": (None, True),
        "manager": (None, "m-boss"),
    }
    calls = await user_calls(3, item("create", changes=changes, password="random"), ROOT, password)
    assert [(c.method, c.url, c.depends_on) for c in calls] == [
        ("POST", "/users", None),
        ("PUT", "/users/ada@contoso.example/manager/$ref", "3.write"),
    ]
    assert calls[0].body["passwordProfile"] == {
        "password": "Str0ng!Passw0rd",
        "forceChangePasswordNextSignIn": False,
    }
    assert "manager" not in calls[0].body
    assert calls[1].body == {"@odata.id": f"{ROOT}/users/m-boss"}


async def test_a_removed_manager_is_a_delete_of_the_reference_never_of_a_user() -> None:
    calls = await user_calls(
        0, item("update", m365_user_id="m1", changes={"manager": ("m-old", None)}), ROOT, password
    )
    assert [(c.method, c.url) for c in calls] == [("DELETE", "/users/m1/manager/$ref")]


def test_an_items_calls_are_never_split_from_what_they_depend_on() -> None:
    calls = []
    for n in range(9):
        calls += [
            BatchCall(f"{n}.write", "PATCH", f"/users/m{n}"),
            BatchCall(f"{n}.revoke", "POST", "/r", depends_on=f"{n}.write"),
        ]
    groups = chunks(calls)
    assert [len(g) for g in groups] == [18]  # 9 pairs fit one request of 20
    more = chunks(
        [
            *calls,
            BatchCall("9.write", "PATCH", "/users/m9"),
            BatchCall("9.revoke", "POST", "/r", depends_on="9.write"),
        ]
    )
    assert [len(g) for g in more] == [20]
    most = chunks(
        more[0] + [BatchCall("x", "PATCH", "/users/x"), BatchCall("y", "POST", "/r", depends_on="x")]
    )
    assert [len(g) for g in most] == [20, 2]


# ------------------------------------------------------------------------------------- answers → outcomes
def test_a_404_on_a_linked_id_means_rematch() -> None:
    assert interpret(update(), answered(404, NOT_FOUND)).outcome == "rematch"


def test_a_duplicate_upn_on_create_means_it_exists_and_is_to_be_linked() -> None:
    out = interpret(item("create"), answered(400, DUPLICATE_UPN))
    assert out.outcome == "exists"
    assert out.error == (
        "HTTP 400 Request_BadRequest: Another object with the same value for property userPrincipalName already exists."
    )


def test_a_duplicate_upn_is_known_by_its_message_when_graph_sends_no_details() -> None:
    bare = graph_error(
        "Request_BadRequest",
        "Another object with the same value for property userPrincipalName already exists.",
    )
    assert interpret(item("create"), answered(400, bare)).outcome == "exists"


def test_a_conflict_on_another_property_is_this_objects_failure_not_its_account() -> None:
    """A proxy address held by another object (a shared mailbox, a group) is not the user's account to link."""
    assert interpret(item("create"), answered(400, DUPLICATE_PROXY)).outcome == "failed"


def test_a_validation_400_is_recorded_with_graphs_message() -> None:
    out = interpret(update(), answered(400, INVALID_VALUE))
    assert out.outcome == "failed"
    assert out.error is not None and "department" in out.error and "Request_BadRequest" in out.error


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (429, THROTTLED, "retry"),  # throttling that outlived the inner retries
        (500, None, "retry"),
        (503, graph_error("serviceUnavailable", "retries exhausted"), "retry"),
        (504, None, "retry"),
        (409, CONCURRENCY, "retry"),  # graph/errors: repeat the request after a short delay
        (
            401,
            INVALID_TOKEN,
            "stopped",
        ),  # the app's token is refused: nothing in the directory can be written
        (403, DENIED, "failed"),  # one object refused (a privileged account): the others go on
        (400, INVALID_VALUE, "failed"),
    ],
)
def test_each_answer_maps_by_status_and_graph_error_code(status: int, body: Any, outcome: str) -> None:
    assert outcome_of(BatchResult("0.write", status, body, {})) == outcome


def test_a_404_on_a_create_is_a_failure_not_a_rematch() -> None:
    assert interpret(item("create"), answered(404, NOT_FOUND)).outcome == "failed"


def test_a_create_reports_the_new_id_and_a_manager_not_yet_visible_is_left_for_the_next_sync() -> None:
    out = interpret(
        item("create"),
        [BatchResult("0.write", 201, {"id": "m-new"}, {}), BatchResult("0.manager", 404, NOT_FOUND, {})],
    )
    assert (out.outcome, out.m365_user_id, out.manager_applied, out.writes) == ("applied", "m-new", False, 2)


def test_a_failed_dependency_points_at_its_cause() -> None:
    """The revoke of a block whose PATCH failed answers 424: the outcome is the PATCH's."""
    out = interpret(
        item("block", m365_user_id="m1"),
        [BatchResult("0.write", 404, NOT_FOUND, {}), BatchResult("0.revoke", 424, FAILED_DEPENDENCY, {})],
    )
    assert out.outcome == "rematch" and out.error is not None and "Request_ResourceNotFound" in out.error


# ----------------------------------------------------------------------------------------- many objects
async def test_items_travel_in_batches_and_each_gets_its_outcome() -> None:
    graph = FakeGraph({"PATCH /users/bad": (400, INVALID_VALUE)})
    items = [update(f"m{i}") for i in range(70)]
    items.append(item("update", m365_user_id="bad", changes={"department": ("a", "b")}))
    items.append(item("none", m365_user_id="same"))
    results = await apply_items(graph, items, ROOT, password)
    assert [r.outcome for r in results] == ["applied"] * 70 + ["failed", "none"], (
        "one bad item never stops the others"
    )
    assert results[70].error is not None and "department" in results[70].error
    assert len(graph.calls) == 71 and len(graph.rounds) == 2


async def test_one_object_refused_with_403_fails_alone_and_the_others_are_written() -> None:
    """Graph refuses changes to an account holding a privileged role (403 for that object, GRAPH-NOTES)."""
    graph = FakeGraph({"PATCH /users/m5": (403, DENIED)})
    results = await apply_items(graph, [update(f"m{i}") for i in range(130)], ROOT, password)
    assert results[5].outcome == "failed" and results[5].error is not None
    assert "Authorization_RequestDenied" in results[5].error
    assert all(r.outcome == "applied" for n, r in enumerate(results) if n != 5)
    assert len(graph.calls) == 130


async def test_permission_denied_to_every_object_stops_the_directory_and_nothing_more_is_sent() -> None:
    """Every write of a round refused: the app lacks the permission itself, so the rest would be refused too."""
    graph = FakeGraph({f"PATCH /users/m{i}": (403, DENIED) for i in range(130)})
    results = await apply_items(graph, [update(f"m{i}") for i in range(130)], ROOT, password)
    assert all(r.outcome == "stopped" for r in results)
    assert all(r.error is not None and "Authorization_RequestDenied" in r.error for r in results)
    assert len(graph.rounds) == 1 and len(graph.calls) == 64, "later rounds are not sent"


async def test_a_refused_token_stops_the_directory_at_once() -> None:
    graph = FakeGraph({"PATCH /users/m0": (401, INVALID_TOKEN)})
    results = await apply_items(graph, [update(f"m{i}") for i in range(130)], ROOT, password)
    assert results[0].outcome == "stopped"
    assert all(r.outcome == "stopped" for r in results[64:]) and len(graph.rounds) == 1


async def test_a_lone_403_of_a_single_item_is_that_objects_failure() -> None:
    graph = FakeGraph({"PATCH /users/m1": (403, DENIED)})
    (result,) = await apply_items(graph, [update("m1")], ROOT, password)
    assert result.outcome == "failed"


# ------------------------------------------------------------------------------------ passwords, groups
async def test_a_password_is_patched_and_a_refusal_is_told_in_graphs_words() -> None:
    graph = FakeGraph({"PATCH /users/m2": (403, DENIED)})
    ok = await set_password(graph, "m1", "S3cret!pass")
    refused = await set_password(graph, "m2", "S3cret!pass")
    assert ok.ok and graph.calls[0].body == {
        "passwordProfile": {"password": "S3cret!pass", "forceChangePasswordNextSignIn": False}
    }
    assert not refused.ok and refused.detail == (
        "HTTP 403 Authorization_RequestDenied: Insufficient privileges to complete the operation."
    )


GROUP = Group("0b7c3f1e-2a4d-4c5e-8f90-123456789abc", "Sales EU", "the EU sales team", 0, T0, T0)


async def test_a_group_is_created_as_a_plain_security_group() -> None:
    graph = FakeGraph()
    created = await create_group(graph, GROUP)
    (call,) = graph.calls
    assert (call.method, call.url) == ("POST", "/groups")
    assert call.body["securityEnabled"] is True and call.body["mailEnabled"] is False
    assert call.body["displayName"] == "Sales EU" and call.body["description"] == "the EU sales team"
    assert (created.outcome, created.m365_id, created.writes) == ("applied", "new-id", 1)


async def test_a_group_creation_throttled_beyond_the_retries_is_retried_later() -> None:
    created = await create_group(FakeGraph({"POST /groups": (429, THROTTLED)}), GROUP)
    assert created.outcome == "retry" and created.m365_id is None


async def test_a_group_change_renames_adds_in_twenties_and_removes_references() -> None:
    graph = FakeGraph()
    plan = GroupPlan("update", "g1", "Sales", tuple(f"a{i}" for i in range(25)), ("r1",))
    written = await change_group(graph, "g1", plan, ROOT)
    assert written.outcome == "applied" and written.writes == 4
    assert [(c.method, c.url) for c in graph.calls] == [
        ("PATCH", "/groups/g1"),
        ("PATCH", "/groups/g1"),
        ("PATCH", "/groups/g1"),
        ("DELETE", "/groups/g1/members/r1/$ref"),
    ]
    assert graph.calls[0].body == {"displayName": "Sales"}
    assert (
        len(graph.calls[1].body["members@odata.bind"]) == 20
        and len(graph.calls[2].body["members@odata.bind"]) == 5
    )
    assert graph.calls[1].body["members@odata.bind"][0] == f"{ROOT}/directoryObjects/a0"


async def test_twenty_refused_for_one_existing_member_are_added_one_by_one_where_already_a_member_is_success() -> (
    None
):
    graph = FakeGraph(
        {"PATCH /groups/g1": (400, ALREADY_MEMBER), "POST /groups/g1/members/$ref": (400, ALREADY_MEMBER)}
    )
    written = await change_group(graph, "g1", GroupPlan("update", "g1", None, ("a", "b")), ROOT)
    assert written.outcome == "applied" and written.writes == 3
    assert [c.body for c in graph.rounds[1]] == [
        {"@odata.id": f"{ROOT}/directoryObjects/{m}"} for m in ("a", "b")
    ]


async def test_removing_a_member_that_is_gone_is_success_and_a_missing_group_is_a_rematch() -> None:
    gone = FakeGraph({"DELETE /groups/g1/members/r1/$ref": (404, NOT_FOUND)})
    assert (
        await change_group(gone, "g1", GroupPlan("update", "g1", None, (), ("r1",)), ROOT)
    ).outcome == "applied"
    missing = FakeGraph({"PATCH /groups/g1": (404, NOT_FOUND)})
    renamed = await change_group(missing, "g1", GroupPlan("update", "g1", "New"), ROOT)
    assert (
        renamed.outcome == "rematch"
        and renamed.detail is not None
        and "Request_ResourceNotFound" in renamed.detail
    )


async def test_nothing_to_change_sends_nothing() -> None:
    graph = FakeGraph()
    assert (await change_group(graph, "g1", GroupPlan("none", "g1"), ROOT)).outcome == "none"
    assert graph.rounds == []


async def test_deleting_a_group_that_is_gone_counts_as_deleted() -> None:
    assert (await delete_group(FakeGraph({"DELETE /groups/g1": (404, NOT_FOUND)}), "g1")).ok
    refused = await delete_group(FakeGraph({"DELETE /groups/g1": (403, DENIED)}), "g1")
    assert refused.outcome == "failed"


def test_random_passwords_are_strong_and_different() -> None:
    a, b = random_password(), random_password()
    assert a != b and len(a) == 24
    assert any(c.islower() for c in a) and any(c.isupper() for c in a) and any(c.isdigit() for c in a)
    assert any(not c.isalnum() for c in a)

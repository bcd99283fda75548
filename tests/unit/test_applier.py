"""The applier against a fake Graph port: calls per item (batched, dependsOn), and every error mapping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from shared.domain.model import Directory, DirectoryOptions, Domain
from shared.domain.planner import PlanItem
from shared.service.applier import apply_items, calls_for, interpret, random_password
from shared.service.ports import BatchCall, BatchResult

T0 = dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
DIRECTORY = Directory(
    "d",
    "Contoso",
    "t",
    "app",
    "c",
    "s",
    (Domain("contoso.example", True, True, "Managed"),),
    "active",
    DirectoryOptions(),
    T0,
    T0,
)
ROOT = "https://graph.example/v1.0"


class FakeGraph:
    """Answers each call by a rule keyed on (method, url suffix); records every batch sent."""

    def __init__(self, answer: dict[str, tuple[int, Any]] | None = None) -> None:
        self.answer = answer or {}
        self.batches: list[list[BatchCall]] = []

    async def get_user(self, directory: Directory, m365_id: str) -> None:
        raise AssertionError("not used")

    async def find_users(self, directory: Directory, email: str, immutable_id: str) -> list[Any]:
        raise AssertionError("not used")

    async def run_batch(self, directory: Directory, calls: Sequence[BatchCall]) -> dict[str, BatchResult]:
        self.batches.append(list(calls))
        out = {}
        for c in calls:
            status, body = self.answer.get(
                f"{c.method} {c.url}", (201 if c.method == "POST" and c.url == "/users" else 204, None)
            )
            if c.method == "POST" and c.url == "/users" and status == 201 and body is None:
                body = {"id": "new-id"}
            out[c.id] = BatchResult(c.id, status, body, {})
        return out


def item(action: str, **kw: Any) -> PlanItem:
    return PlanItem(action, "u1", "d", "synced", **kw)  # type: ignore[arg-type]


async def password(_: PlanItem) -> str:
    return "Str0ng!Passw0rd"


def graph_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


async def test_a_block_disables_then_revokes_sessions_after_the_disable() -> None:
    calls = await calls_for(
        0,
        item("block", m365_user_id="m1", changes={"accountEnabled": (True, False)}, revoke_sessions=True),
        ROOT,
        password,
    )
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
    calls = await calls_for(3, item("create", changes=changes, password="random"), ROOT, password)
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
    calls = await calls_for(
        0, item("update", m365_user_id="m1", changes={"manager": ("m-old", None)}), ROOT, password
    )
    assert [(c.method, c.url) for c in calls] == [("DELETE", "/users/m1/manager/$ref")]


async def test_items_travel_in_batches_and_each_gets_its_outcome() -> None:
    graph = FakeGraph(
        {
            "PATCH /users/bad": (
                400,
                graph_error("Request_BadRequest", "Invalid value specified for property 'department'"),
            )
        }
    )
    items = [item("update", m365_user_id=f"m{i}", changes={"jobTitle": ("a", "b")}) for i in range(70)]
    items.append(item("update", m365_user_id="bad", changes={"department": ("a", "b")}))
    items.append(item("none", m365_user_id="same"))
    results = await apply_items(graph, DIRECTORY, items, ROOT, password)
    assert [r.outcome for r in results] == ["applied"] * 70 + ["failed", "none"], (
        "one bad item never stops the others"
    )
    assert results[70].error is not None and "department" in results[70].error
    assert sum(len(b) for b in graph.batches) == 71 and len(graph.batches) == 2


async def test_permission_denied_stops_the_directory_and_nothing_more_is_sent() -> None:
    graph = FakeGraph(
        {"PATCH /users/m0": (403, graph_error("Authorization_RequestDenied", "Insufficient privileges"))}
    )
    items = [item("update", m365_user_id=f"m{i}", changes={"jobTitle": ("a", "b")}) for i in range(130)]
    results = await apply_items(graph, DIRECTORY, items, ROOT, password)
    assert results[0].outcome == "stopped" and results[0].code == "Authorization_RequestDenied"
    assert all(r.outcome == "stopped" for r in results[64:]), "later groups are not sent"
    assert len(graph.batches) == 1


def answers(*pairs: tuple[str, int, Any]) -> list[BatchResult]:
    return [BatchResult(i, s, b, {}) for i, s, b in pairs]


def test_a_404_on_a_linked_id_means_rematch() -> None:
    out = interpret(
        item("update", m365_user_id="m1"),
        answers(("0.write", 404, graph_error("Request_ResourceNotFound", "gone"))),
    )
    assert out.outcome == "rematch"


def test_a_duplicate_upn_on_create_means_it_exists_and_is_to_be_linked() -> None:
    msg = "Another object with the same value for property userPrincipalName already exists."
    out = interpret(item("create"), answers(("0.write", 400, graph_error("Request_BadRequest", msg))))
    assert out.outcome == "exists"


def test_a_validation_400_is_recorded_and_a_5xx_is_retried_later() -> None:
    assert (
        interpret(
            item("update", m365_user_id="m1"),
            answers(("0.write", 400, graph_error("Request_BadRequest", "bad"))),
        ).outcome
        == "failed"
    )
    assert interpret(item("update", m365_user_id="m1"), answers(("0.write", 500, None))).outcome == "retry"
    assert interpret(item("update", m365_user_id="m1"), answers(("0.write", 503, None))).outcome == "retry"
    assert interpret(item("update", m365_user_id="m1"), answers(("0.write", 401, None))).outcome == "stopped"


def test_a_create_reports_the_new_id_and_a_manager_not_yet_visible_is_left_for_the_next_sync() -> None:
    out = interpret(
        item("create"),
        answers(
            ("0.write", 201, {"id": "m-new"}),
            ("0.manager", 404, graph_error("Request_ResourceNotFound", "lag")),
        ),
    )
    assert (out.outcome, out.m365_user_id, out.manager_applied, out.writes) == ("applied", "m-new", False, 2)


def test_random_passwords_are_strong_and_different() -> None:
    a, b = random_password(), random_password()
    assert a != b and len(a) == 24
    assert any(c.islower() for c in a) and any(c.isupper() for c in a) and any(c.isdigit() for c in a)
    assert any(not c.isalnum() for c in a)

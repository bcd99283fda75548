"""The local functions host run as a subprocess against fixture apps and Azurite.

Every test bounds its waits; every process started here is stopped.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from tools import procs

pytestmark = pytest.mark.integration

APPS = Path(__file__).parent / "apps"
BASIC = APPS / "basic"


def wait_for(predicate: Callable[[], Any], *, timeout: float, what: str) -> Any:
    """``predicate()`` once it is truthy; after ``timeout`` seconds, fail with the last value it returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; last seen: {value!r}")
        time.sleep(0.1)


@dataclass
class Host:
    url: str
    evidence_file: Path
    log_file: Path
    child: procs.Managed
    connection_string: str

    def evidence(self, kind: str | None = None) -> list[dict[str, Any]]:
        if not self.evidence_file.exists():
            return []
        rows = [json.loads(line) for line in self.evidence_file.read_text().splitlines() if line.strip()]
        return [r for r in rows if kind is None or r["kind"] == kind]

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.connection_string, name)


def start_host(tmp: Path, connection_string: str, app: Path = BASIC, **extra_env: str) -> Host:
    tmp.mkdir(parents=True, exist_ok=True)
    port = procs.free_port()
    evidence = tmp / "evidence.jsonl"
    env = dict(
        os.environ,
        AzureWebJobsStorage=connection_string,
        EVIDENCE_FILE=str(evidence),
        TICK_SCHEDULE="*/1 * * * * *",
        **extra_env,
    )
    log = tmp / "host.log"
    child = procs.start_funchost(port, env=env, log=log, script_root=app)
    return Host(f"http://127.0.0.1:{port}", evidence, log, child, connection_string)


@pytest.fixture(scope="module")
def host(azurite: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    h = start_host(tmp_path_factory.mktemp("funchost"), azurite.connection_string)
    try:
        yield h
    finally:
        h.child.stop()


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


# ---- HTTP triggers: https://learn.microsoft.com/azure/azure-functions/functions-bindings-http-webhook-trigger


def test_route_parameter_with_int_constraint_is_passed_to_the_function(
    host: Host, http: httpx.Client
) -> None:
    r = http.get(f"{host.url}/api/items/42")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json()["id"] == "42"


def test_constraint_mismatch_falls_through_to_another_route_or_404(host: Host, http: httpx.Client) -> None:
    assert (
        http.get(f"{host.url}/API/Items/widget").text == "name=widget"
    )  # alpha route, literal case-insensitive
    assert http.get(f"{host.url}/api/items/12ab").status_code == 404  # neither int nor alpha


def test_optional_parameter_may_be_omitted(host: Host, http: httpx.Client) -> None:
    assert http.get(f"{host.url}/api/docs/intro").json() == {"section": "intro"}
    assert http.get(f"{host.url}/api/docs/intro/p2").json() == {"section": "intro", "page": "p2"}


def test_catch_all_route_gets_the_rest_of_the_path_query_and_body(host: Host, http: httpx.Client) -> None:
    r = http.put(f"{host.url}/api/files/a/b/c.txt?x=1&x=2", content=b"z" * 3_000_000)
    assert r.status_code == 201
    assert r.headers["x-custom"] == "yes"
    assert r.json() == {"path": "a/b/c.txt", "method": "PUT", "size": 3_000_000, "query": {"x": "1,2"}}


def test_chunked_request_body_reaches_the_function_empty(host: Host, http: httpx.Client) -> None:
    """The host copies the body only when ``request.ContentLength > 0`` (azure-functions-host
    GrpcMessageConversionExtensions.ToRpcHttp); chunked requests are "not currently supported for
    the OOP scenarios" (https://github.com/Azure/azure-functions-host/issues/7930)."""

    def chunks() -> Iterator[bytes]:
        yield b"abc"
        yield b"def"

    r = http.put(f"{host.url}/api/files/chunked", content=chunks())
    assert r.status_code == 201 and r.json()["size"] == 0
    assert http.put(f"{host.url}/api/files/sized", content=b"abcdef").json()["size"] == 6


def test_methods_filter_answers_404_for_other_methods(host: Host, http: httpx.Client) -> None:
    """404, not 405, for a known route with another method
    (https://github.com/Azure/azure-functions-host/issues/10098, open)."""
    assert http.post(f"{host.url}/api/items/1").status_code == 404
    assert http.get(f"{host.url}/api/echo").status_code == 404
    assert http.delete(f"{host.url}/api/files/x").status_code == 404


def test_requests_outside_the_route_prefix_are_404(host: Host, http: httpx.Client) -> None:
    assert http.get(f"{host.url}/items/42").status_code == 404
    assert http.get(f"{host.url}/api/nothing-here").status_code == 404


def test_default_route_is_the_function_name(host: Host, http: httpx.Client) -> None:
    assert http.get(f"{host.url}/api/defaultroute").text == "default route is the function name"


def test_sync_function_runs_in_a_worker_thread_and_str_result_is_text_plain(
    host: Host, http: httpx.Client
) -> None:
    assert http.get(f"{host.url}/api/items/1").json()["thread"].startswith("funchost-worker")
    r = http.post(f"{host.url}/api/echo", content="héllo".encode())
    assert (r.status_code, r.text, r.headers["content-type"]) == (200, "héllo", "text/plain; charset=utf-8")


def test_unhandled_exception_is_a_500_with_empty_body_logged_with_invocation_id(
    host: Host, http: httpx.Client
) -> None:
    r = http.get(f"{host.url}/api/boom")
    assert (r.status_code, r.content) == (500, b"")

    def failed_line() -> str | None:
        for line in host.log().splitlines():
            if "Executed 'Functions.boom' (Failed, Id=" in line:
                return line
        return None

    line = wait_for(failed_line, timeout=5, what="the Failed log line")
    invocation_id = line.split("Id=")[1].split(",")[0]
    uuid.UUID(invocation_id)
    assert f"Exception while executing function: Functions.boom (Id={invocation_id})" in host.log()
    assert "RuntimeError: kaboom" in host.log()


def test_status_and_repeated_set_cookie_headers_are_preserved(host: Host, http: httpx.Client) -> None:
    r = http.get(f"{host.url}/api/cookies")
    assert r.status_code == 418
    assert r.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_context_parameter_receives_invocation_id_and_function_name(host: Host, http: httpx.Client) -> None:
    body = http.get(f"{host.url}/api/ctx").json()
    assert body["function_name"] == "ctx"
    assert f"Id={body['invocation_id']}" in wait_for(host.log, timeout=5, what="log")


def test_http_function_returning_none_fails_the_invocation_with_500(host: Host, http: httpx.Client) -> None:
    """The worker encodes an HTTP ``$return`` with HttpResponseConverter.encode, which raises
    NotImplementedError for anything but HttpResponse/str, None included; the dispatcher turns it
    into TypeError and a failed invocation (azure-functions-python-worker dispatcher.py
    ``_handle__invocation_request``, bindings/meta.py ``get_datum``), so the caller gets a 500, not 204."""
    r = http.get(f"{host.url}/api/returns-none")
    assert (r.status_code, r.content) == (500, b"")
    assert host.evidence("returns-none")  # the function did run
    wait_for(lambda: "Executed 'Functions.returns_none' (Failed" in host.log(), timeout=5, what="Failed")
    assert 'unsupported type "http" for Python type "NoneType"' in host.log()


def test_http_function_returning_a_dict_fails_the_invocation(host: Host, http: httpx.Client) -> None:
    """Same converter: a dict is not serialized to JSON for an HTTP ``$return``."""
    assert http.get(f"{host.url}/api/returns-dict").status_code == 500
    wait_for(lambda: "Executed 'Functions.returns_dict' (Failed" in host.log(), timeout=5, what="Failed")


def test_query_names_group_case_insensitively_and_empty_values_are_dropped(
    host: Host, http: httpx.Client
) -> None:
    """The host builds RpcHttp.Query from ASP.NET Core's case-insensitive query collection, joining
    repeated values with ",", and skips empty values (azure-functions-host
    GrpcMessageConversionExtensions.ToRpcHttp: ``if (!string.IsNullOrEmpty(value))``; the Python
    worker does not declare the nullable-dictionary capability)."""
    r = http.get(f"{host.url}/api/query?flag&empty=&a=1&A=2&b=&b=x")
    assert r.json() == {"a": "1,2", "b": ",x"}


# ---- admin API: https://learn.microsoft.com/azure/azure-functions/functions-manually-run-non-http


def test_host_status_reports_running(host: Host, http: httpx.Client) -> None:
    assert http.get(f"{host.url}/admin/host/status").json() == {"state": "Running"}


def test_admin_invoke_runs_a_timer_function_and_answers_202(host: Host, http: httpx.Client) -> None:
    before = len(host.evidence("yearly"))
    r = http.post(f"{host.url}/admin/functions/yearly", json={"input": ""})
    assert r.status_code == 202
    wait_for(lambda: len(host.evidence("yearly")) > before, timeout=5, what="the manual timer run")


def test_admin_invoke_runs_a_queue_function_with_the_input_as_message_body(
    host: Host, http: httpx.Client
) -> None:
    body = f"manual-{uuid.uuid4()}"
    assert http.post(f"{host.url}/admin/functions/work", json={"input": body}).status_code == 202
    rows = wait_for(lambda: [r for r in host.evidence("work") if r["body"] == body], timeout=5, what="run")
    assert rows[0]["dequeue_count"] == 0


def test_admin_invoke_refuses_unknown_functions_http_functions_and_missing_body(
    host: Host, http: httpx.Client
) -> None:
    assert http.post(f"{host.url}/admin/functions/nosuch", json={"input": ""}).status_code == 404
    assert http.post(f"{host.url}/admin/functions/echo", json={"input": ""}).status_code == 400
    assert http.post(f"{host.url}/admin/functions/yearly", content=b"").status_code == 400


def test_admin_lists_functions(host: Host, http: httpx.Client) -> None:
    listed = {f["name"]: f["trigger"] for f in http.get(f"{host.url}/admin/functions").json()}
    assert (
        listed["tick"] == "timerTrigger"
        and listed["work"] == "queueTrigger"
        and listed["docs"] == "httpTrigger"
    )


# ---- timers: https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer


def test_timer_fires_on_its_schedule_from_an_app_setting(host: Host) -> None:
    ticks = wait_for(
        lambda: len(host.evidence("tick")) >= 3 and host.evidence("tick"), timeout=8, what="3 ticks"
    )
    gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(ticks)]
    assert all(0.5 < gap < 1.6 for gap in gaps[:3]), gaps
    assert all(t["past_due"] is False for t in ticks)


def test_timer_invocations_never_overlap(host: Host) -> None:
    """The next run is scheduled after the current one completes
    (https://learn.microsoft.com/azure/azure-functions/functions-bindings-timer#usage)."""
    wait_for(lambda: len(host.evidence("slow-end")) >= 2, timeout=12, what="two slow runs")
    events = [r["kind"] for r in host.evidence() if r["kind"].startswith("slow")]
    for i, kind in enumerate(events):
        assert kind == ("slow-start" if i % 2 == 0 else "slow-end"), events


def test_sub_minute_timer_gets_no_schedule_status(host: Host) -> None:
    """TimerSchedule.Create turns schedule monitoring off for a schedule firing more than once a
    minute, and TimerListener then passes no ScheduleStatus (azure-webjobs-sdk-extensions
    Timers/Scheduling/TimerSchedule.cs, Timers/Listener/TimerListener.cs); the library's
    TimerRequest makes that {}."""
    ticks = wait_for(lambda: host.evidence("tick"), timeout=5, what="a tick")
    assert ticks[0]["status"] == {}


def test_run_on_startup_invokes_the_timer_once_at_start(azurite: Any, tmp_path: Path) -> None:
    """The start-up run sees the initial status: Last/LastUpdated DateTime.MinValue and Next the
    next occurrence (TimerListener.StartAsync)."""
    h = start_host(tmp_path, azurite.connection_string)
    try:
        (startup,) = wait_for(lambda: h.evidence("yearly"), timeout=5, what="the start-up run")
        # The positive sign that the timers went on after it: the every-second timer ticked twice since.
        wait_for(
            lambda: len([t for t in h.evidence("tick") if t["t"] > startup["t"]]) >= 2,
            timeout=8,
            what="two ticks after the start-up run",
        )
        runs = h.evidence("yearly")
        assert len(runs) == 1  # "0 0 0 1 1 *" itself won't fire during the test
        status = runs[0]["status"]
        assert (status["Last"], status["LastUpdated"]) == ("0001-01-01T00:00:00", "0001-01-01T00:00:00")
        assert status["Next"].startswith(f"{time.gmtime().tm_year + 1}-01-01T00:00:00")
    finally:
        h.child.stop()


def test_manual_timer_run_does_not_wait_for_a_scheduled_run(azurite: Any, tmp_path: Path) -> None:
    """Only the timer *listener* is a singleton ([Singleton(Mode = SingletonMode.Listener)] and its
    invocation lock, TimerListener.cs); POST /admin/functions/{name} binds a new TimerInfo
    (TimerTriggerBinding.BindAsync) and runs at once, even while a scheduled run is going on."""
    h = start_host(tmp_path, azurite.connection_string)
    try:
        wait_for(lambda: h.evidence("overlap-start"), timeout=5, what="the start-up run")
        with httpx.Client(timeout=5) as client:
            assert client.post(f"{h.url}/admin/functions/overlap", json={"input": ""}).status_code == 202
        wait_for(lambda: len(h.evidence("overlap-end")) == 2, timeout=8, what="both runs")
        kinds = [r["kind"] for r in h.evidence() if r["kind"].startswith("overlap")]
        assert kinds == ["overlap-start", "overlap-start", "overlap-end", "overlap-end"]
    finally:
        h.child.stop()


# ---- queues: https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger


def test_base64_queue_message_is_processed_and_deleted(host: Host) -> None:
    body = f"hello-{uuid.uuid4()}"
    q = host.queue("work-items")
    q.send_message(base64.b64encode(body.encode()).decode())
    rows = wait_for(
        lambda: [r for r in host.evidence("work") if r["body"] == body], timeout=10, what="processing"
    )
    assert rows[0]["dequeue_count"] == 1
    wait_for(lambda: q.get_queue_properties().approximate_message_count == 0, timeout=5, what="deletion")


def test_failing_message_is_retried_then_moved_to_poison_queue(host: Host) -> None:
    """maxDequeueCount (3 in the fixture's host.json) attempts, then <queue>-poison, same encoding
    (https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger#poison-messages)."""
    body = f"fail-{uuid.uuid4()}"
    encoded = base64.b64encode(body.encode()).decode()
    q = host.queue("work-items")
    q.send_message(encoded)
    poison = host.queue("work-items-poison")

    def poisoned() -> list[str]:
        try:
            return [m.content for m in poison.peek_messages(max_messages=32) if m.content == encoded]
        except ResourceNotFoundError:  # the poison queue is made with its first message
            return []

    wait_for(poisoned, timeout=15, what="the poison queue copy")
    attempts = [r["dequeue_count"] for r in host.evidence("work") if r["body"] == body]
    assert attempts == [1, 2, 3]
    assert [m for m in q.peek_messages(max_messages=32) if m.content == encoded] == []
    assert (
        "Message has reached MaxDequeueCount of 3. Moving message to queue 'work-items-poison'." in host.log()
    )


def test_queue_function_returning_a_value_fails_and_is_retried_to_poison(host: Host) -> None:
    """A function without a ``$return`` binding that returns non-None fails the invocation: the
    worker raises RuntimeError("function ... without a $return binding returned a non-None value")
    (azure-functions-python-worker dispatcher.py), so the message is retried and poisoned."""
    body = f"ret-{uuid.uuid4()}"
    encoded = base64.b64encode(body.encode()).decode()
    host.queue("returns-value").send_message(encoded)
    poison = host.queue("returns-value-poison")

    def poisoned() -> bool:
        try:
            return any(m.content == encoded for m in poison.peek_messages(max_messages=32))
        except ResourceNotFoundError:  # the poison queue is made with its first message
            return False

    wait_for(poisoned, timeout=15, what="the poison queue copy")
    attempts = [r["dequeue_count"] for r in host.evidence("returns-value") if r["body"] == body]
    assert attempts == [1, 2, 3]
    assert "without a $return binding returned a non-None value" in host.log()


def test_str_annotated_queue_trigger_gets_the_text_with_invalid_utf8_replaced(host: Host) -> None:
    """A ``str`` annotation selects the worker's generic binding (functions.py
    ``validate_function_params``), which passes the host's value as is; the host sends a queue
    trigger as a string (WorkerFunctionInvoker: ``DataType ?? DataType.String``), so bytes that
    are not UTF-8 arrive as U+FFFD."""
    tag = uuid.uuid4().hex
    raw = f"{tag} caf\u00e9 ".encode() + b"\xff"
    host.queue("text-items").send_message(base64.b64encode(raw).decode())
    rows = wait_for(
        lambda: [r for r in host.evidence("text") if r["body"].startswith(tag)], timeout=10, what="run"
    )
    assert rows[0]["type"] == "str"
    assert rows[0]["body"] == f"{tag} caf\u00e9 \ufffd"


def test_message_that_is_not_base64_goes_to_poison_without_invoking(host: Host) -> None:
    raw = f"not base64 {uuid.uuid4()}!"
    host.queue("work-items").send_message(raw)
    poison = host.queue("work-items-poison")
    wait_for(
        lambda: any(m.content == raw for m in poison.peek_messages(max_messages=32)),
        timeout=10,
        what="the poison queue copy",
    )
    assert not any(raw in json.dumps(r) for r in host.evidence("work"))


# ---- start-up and shutdown


def test_sigterm_stops_the_host_with_exit_code_0(azurite: Any, tmp_path: Path) -> None:
    h = start_host(tmp_path, azurite.connection_string)
    try:
        os.killpg(h.child.proc.pid, signal.SIGTERM)
        assert h.child.proc.wait(timeout=15) == 0
        assert "Host stopped" in h.log()
    finally:
        h.child.stop()


def test_start_up_prints_the_functions_and_their_urls(host: Host) -> None:
    log = host.log()
    assert f"item_by_id: [GET] {host.url}/api/items/{{id:int}}" in log
    assert "tick: timerTrigger (*/1 * * * * *)" in log
    assert "work: queueTrigger (queue 'work-items'" in log
    assert "Host started" in log


def run_cli(script_root: Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.funchost",
            "--script-root",
            str(script_root),
            "--port",
            str(procs.free_port()),
        ],
        cwd=procs.ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ, AzureWebJobsStorage="UseDevelopmentStorage=true"),
    )


def test_unsupported_output_binding_is_refused_naming_the_function() -> None:
    result = run_cli(APPS / "unsupported")
    assert result.returncode != 0
    assert "'enqueue'" in result.stderr and "queue" in result.stderr


def test_bad_host_json_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "function_app.py").write_text((APPS / "unsupported" / "function_app.py").read_text())
    (tmp_path / "host.json").write_text(
        json.dumps({"version": "2.0", "extensions": {"queues": {"batchSize": 64}}})
    )
    result = run_cli(tmp_path)
    assert result.returncode != 0
    assert "batchSize" in result.stderr

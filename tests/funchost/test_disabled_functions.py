"""``AzureWebJobs.<FUNCTION_NAME>.Disabled`` in the local functions host, as the Functions host honours it
(https://learn.microsoft.com/azure/azure-functions/disable-function).

A module of its own: the fixture app's queues are shared by every host on the session's Azurite, so no other
host of the fixture app may run while this one shows that it leaves a queue alone.
"""

from __future__ import annotations

import base64
import contextlib
import uuid
from pathlib import Path
from typing import Any

import httpx
from azure.core.exceptions import ResourceExistsError

from tests.funchost.test_host_integration import start_host, wait_for


def test_disabled_functions_ignore_their_triggers_but_run_from_the_admin_api(
    azurite: Any, tmp_path: Path
) -> None:
    """``AzureWebJobs.<name>.Disabled`` (or the Linux spelling with underscores; names compare case-insensitively,
    ``true`` or ``1``): no queue listener, no timer, HTTP 404; the admin API still runs it."""
    h = start_host(
        tmp_path,
        azurite.connection_string,
        **{
            "AzureWebJobs.work.Disabled": "true",
            "AzureWebJobs_Tick_Disabled": "1",
            "AzureWebJobs.ECHO.Disabled": "True",
            "AzureWebJobs.text_items.Disabled": "false",
        },
    )
    http = httpx.Client(timeout=10)
    try:
        body = f"disabled-{uuid.uuid4()}"
        encoded = base64.b64encode(body.encode()).decode()
        with contextlib.suppress(ResourceExistsError):  # nothing listens to it here, so nothing made it
            h.queue("work-items").create_queue()
        h.queue("work-items").send_message(encoded)
        marker = uuid.uuid4().hex
        h.queue("text-items").send_message(base64.b64encode(marker.encode()).decode())
        # Positive signs first: the enabled queue function got its message, the every-second timer ran twice.
        wait_for(
            lambda: [r for r in h.evidence("text") if r["body"] == marker], timeout=10, what="text-items"
        )
        wait_for(lambda: len(h.evidence("slow-end")) >= 2, timeout=12, what="two runs of the enabled timer")
        assert [r for r in h.evidence("work") if r["body"] == body] == [], "the disabled queue function ran"
        assert [m.content for m in h.queue("work-items").peek_messages(max_messages=32)] == [encoded]
        assert h.evidence("tick") == [], "the disabled timer fired"
        assert http.post(f"{h.url}/api/echo", content=b"x").status_code == 404
        listed = {f["name"]: f["isDisabled"] for f in http.get(f"{h.url}/admin/functions").json()}
        assert (listed["work"], listed["tick"], listed["echo"], listed["text_items"]) == (
            True,
            True,
            True,
            False,
        )
        for name in ("work", "tick", "echo"):
            assert f"Function '{name}' is disabled" in h.log()
        # Disabled is about the trigger only: the admin API still runs the function.
        manual = f"manual-{uuid.uuid4()}"
        assert http.post(f"{h.url}/admin/functions/work", json={"input": manual}).status_code == 202
        wait_for(lambda: [r for r in h.evidence("work") if r["body"] == manual], timeout=5, what="manual run")
        assert http.post(f"{h.url}/admin/functions/tick", json={"input": ""}).status_code == 202
        wait_for(lambda: h.evidence("tick"), timeout=5, what="the manual timer run")
    finally:
        http.close()
        h.child.stop()
        h.queue("work-items").clear_messages()

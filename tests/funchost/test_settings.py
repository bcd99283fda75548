"""host.json and local.settings.json handling of the local functions host
(https://learn.microsoft.com/azure/azure-functions/functions-host-json,
https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue#host-json,
https://learn.microsoft.com/azure/azure-functions/functions-develop-local#local-settings-file)."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tools.funchost.settings import HostConfigError, apply_local_settings, is_disabled, load_host_config

pytestmark = pytest.mark.unit


def write_host(tmp_path: Path, data: dict[str, Any]) -> Path:
    (tmp_path / "host.json").write_text(json.dumps(data))
    return tmp_path


def test_documented_defaults_apply_when_host_json_is_minimal(tmp_path: Path) -> None:
    config = load_host_config(write_host(tmp_path, {"version": "2.0"}))
    assert config.route_prefix == "api"
    q = config.queues
    assert (q.max_polling_interval, q.visibility_timeout) == (dt.timedelta(minutes=1), dt.timedelta(0))
    assert (q.batch_size, q.new_batch_threshold, q.max_dequeue_count) == (16, 8, 5)
    assert q.message_encoding == "base64"


def test_configured_values_are_read_case_insensitively(tmp_path: Path) -> None:
    config = load_host_config(
        write_host(
            tmp_path,
            {
                "version": "2.0",
                "functionTimeout": "-1",
                "extensions": {
                    "http": {"routePrefix": ""},
                    "Queues": {"MaxPollingInterval": "00:00:02", "batchSize": 4, "messageEncoding": "None"},
                },
                "logging": {"logLevel": {"default": "Warning", "Function.tick": "None"}},
            },
        )
    )
    assert config.route_prefix == ""
    assert config.function_timeout is None
    assert config.queues.max_polling_interval == dt.timedelta(seconds=2)
    assert config.queues.new_batch_threshold == 2  # batchSize / 2
    assert config.queues.message_encoding == "none"
    assert config.level_for("Function.tick.User") > logging.CRITICAL
    assert config.level_for("Host.Queues") == logging.WARNING


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"version": "1.0"},
        {"version": "2.0", "extensions": {"queues": {"batchSize": 33}}},
        {"version": "2.0", "extensions": {"queues": {"batchSize": 0}}},
        {"version": "2.0", "extensions": {"queues": {"maxDequeueCount": 0}}},
        {"version": "2.0", "extensions": {"queues": {"maxPollingInterval": 2000}}},  # would be 2000 days
        {"version": "2.0", "extensions": {"queues": {"maxPollingInterval": "00:00:00.05"}}},
        {"version": "2.0", "extensions": {"queues": {"messageEncoding": "utf8"}}},
        {"version": "2.0", "functionTimeout": "soon"},
        {"version": "2.0", "logging": {"logLevel": {"default": "Verbose"}}},
    ],
)
def test_invalid_host_json_is_refused(tmp_path: Path, data: dict[str, Any]) -> None:
    with pytest.raises(HostConfigError):
        load_host_config(write_host(tmp_path, data))


def test_unparseable_or_missing_host_json_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HostConfigError, match="not found"):
        load_host_config(tmp_path)
    (tmp_path / "host.json").write_text("{nope")
    with pytest.raises(HostConfigError, match="JSON"):
        load_host_config(tmp_path)


def test_local_settings_do_not_override_variables_already_set(tmp_path: Path) -> None:
    (tmp_path / "local.settings.json").write_text(
        json.dumps({"IsEncrypted": False, "Values": {"A": "from-file", "B": "from-file", "C": "from-file"}})
    )
    env = {"A": "from-env", "C": ""}
    exported = apply_local_settings(tmp_path, env)
    assert env == {"A": "from-env", "B": "from-file", "C": "from-file"}
    assert sorted(exported) == ["B", "C"]


def test_missing_local_settings_is_fine(tmp_path: Path) -> None:
    assert apply_local_settings(tmp_path, {}) == []


def test_a_function_is_disabled_by_either_spelling_of_its_setting_with_1_or_true() -> None:
    """azure-webjobs-sdk HostListenerFactory.IsDisabled: ``AzureWebJobs.<name>.Disabled`` or, where environment
    variable names cannot hold dots, ``AzureWebJobs_<name>_Disabled``; IsSettingEnabled takes "1" or "true" in any
    case; configuration names are case-insensitive."""
    assert is_disabled("work", {"AzureWebJobs.work.Disabled": "true"})
    assert is_disabled("work", {"AZUREWEBJOBS_WORK_DISABLED": "1"})
    assert is_disabled("Work", {"azurewebjobs.work.disabled": "TRUE"})
    assert not is_disabled("work", {"AzureWebJobs.work.Disabled": "false"})
    assert not is_disabled("work", {"AzureWebJobs.work.Disabled": "yes"})
    assert not is_disabled("work", {"AzureWebJobs.worker.Disabled": "true"})
    assert not is_disabled("work", {})

"""``local.settings.json`` and ``host.json``: what the local host reads, with the host's documented defaults.

* local.settings.json — ``Values`` become environment variables, but a variable that is already set
  (non-empty) in the environment wins, as Core Tools does ("Skipping '<name>' from local settings as
  it's already defined in current environment variables.";
  https://learn.microsoft.com/azure/azure-functions/functions-develop-local#local-settings-file).
* host.json (version 2.0, https://learn.microsoft.com/azure/azure-functions/functions-host-json):
  ``extensions.http.routePrefix`` (default ``api``), ``extensions.queues``
  (https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue#host-json:
  ``maxPollingInterval`` 00:01:00, ``visibilityTimeout`` 00:00:00, ``batchSize`` 16 (1-32),
  ``newBatchThreshold`` N*batchSize/2 with N = 1 (Consumption/Flex), ``maxDequeueCount`` 5,
  ``messageEncoding`` base64), ``functionTimeout`` and ``logging.logLevel``.
* ``AzureWebJobs.<FUNCTION_NAME>.Disabled`` (https://learn.microsoft.com/azure/azure-functions/disable-function):
  an app setting that makes the host ignore a function's trigger. The WebJobs SDK reads it, or its Linux
  spelling ``AzureWebJobs_<FUNCTION_NAME>_Disabled`` (no dots in environment variable names), through
  ``IConfiguration`` (case-insensitive names) and takes ``1`` or ``true`` (any case) as disabled
  (azure-webjobs-sdk HostListenerFactory.IsDisabled, IConfigurationExtensions.IsSettingEnabled).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.funchost.ncrontab import ScheduleError, parse_timespan

__all__ = [
    "SHUTDOWN_GRACE",
    "HostConfig",
    "HostConfigError",
    "QueueOptions",
    "apply_local_settings",
    "is_disabled",
    "load_host_config",
]

SHUTDOWN_GRACE = 10.0
"""Seconds that running invocations get to finish once the host is asked to stop (SIGTERM/SIGINT); whoever
stops the host must wait longer than this before it kills the process (``tools.procs``)."""


class HostConfigError(ValueError):
    """host.json or local.settings.json is invalid; the host refuses to start."""


@dataclass(frozen=True)
class QueueOptions:
    max_polling_interval: dt.timedelta = dt.timedelta(minutes=1)
    visibility_timeout: dt.timedelta = dt.timedelta(0)
    batch_size: int = 16
    new_batch_threshold: int = 8
    max_dequeue_count: int = 5
    message_encoding: str = "base64"  # "base64" | "none"


# .NET log levels → Python logging levels ("None" disables the category).
_LEVELS = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "information": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "none": logging.CRITICAL + 10,
}


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    queues: QueueOptions = field(default_factory=QueueOptions)
    # Default functionTimeout for Flex Consumption / Premium / Dedicated is 30 minutes
    # (https://learn.microsoft.com/azure/azure-functions/functions-scale#timeout); None = unbounded ("-1").
    function_timeout: dt.timedelta | None = dt.timedelta(minutes=30)
    log_levels: dict[str, int] = field(default_factory=dict)

    def level_for(self, category: str) -> int:
        """The configured level for a log category: the longest matching prefix wins, then "default"."""
        parts = category.split(".")
        for n in range(len(parts), 0, -1):
            key = ".".join(parts[:n]).lower()
            if key in self.log_levels:
                return self.log_levels[key]
        return self.log_levels.get("default", logging.INFO)


def _read_json_object(path: Path) -> dict[str, Any]:
    """A settings file's top-level JSON object (a UTF-8 byte-order mark is allowed)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, json.JSONDecodeError) as exc:
        raise HostConfigError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise HostConfigError(f"{path}: the top level must be a JSON object")
    return data


def apply_local_settings(
    script_root: Path, environ: MutableMapping[str, str] | None = None, log: logging.Logger | None = None
) -> list[str]:
    """Export local.settings.json ``Values`` that are not already set. Returns the names exported."""
    env = os.environ if environ is None else environ
    path = script_root / "local.settings.json"
    if not path.exists():
        return []
    data = _read_json_object(path)
    values = data.get("Values", {})
    if not isinstance(values, dict):
        raise HostConfigError(f"{path}: 'Values' must be an object of strings")
    exported: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, str | int | float):
            text = str(value)
        else:
            raise HostConfigError(f"{path}: Values.{key} must be a string")
        if env.get(key):
            if log is not None:
                log.warning(
                    "Skipping '%s' from local settings as it's already defined in current "
                    "environment variables.",
                    key,
                )
            continue
        env[key] = text
        exported.append(key)
    return exported


def is_disabled(function_name: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether the app settings disable ``function_name`` (``AzureWebJobs.<name>.Disabled`` or
    ``AzureWebJobs_<name>_Disabled`` set to ``1`` or ``true``; setting names compare case-insensitively)."""
    env = os.environ if environ is None else environ
    wanted = {
        f"azurewebjobs.{function_name}.disabled".lower(),
        f"azurewebjobs_{function_name}_disabled".lower(),
    }
    return any(k.lower() in wanted and v.strip().lower() in ("1", "true") for k, v in env.items())


def _timespan(value: Any, where: str, *, allow_infinite: bool = False) -> dt.timedelta | None:
    if allow_infinite and value in ("-1", -1, None):
        return None
    if not isinstance(value, str):
        # The host binds these with TimeSpan.Parse: a bare number would mean *days*
        # (https://github.com/Azure/azure-webjobs-sdk/issues/2967). Refuse instead of guessing.
        raise HostConfigError(f'host.json {where}: expected a TimeSpan string like "00:00:30", got {value!r}')
    try:
        return parse_timespan(value)
    except ScheduleError as exc:
        raise HostConfigError(f"host.json {where}: {exc}") from exc


def _int(value: Any, where: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise HostConfigError(f"host.json {where}: expected an integer, got {value!r}")
    try:
        number = int(value)
    except ValueError as exc:
        raise HostConfigError(f"host.json {where}: expected an integer, got {value!r}") from exc
    if number < lo or (hi is not None and number > hi):
        bound = f"{lo}-{hi}" if hi is not None else f">= {lo}"
        raise HostConfigError(f"host.json {where}: {number} is out of range ({bound})")
    return number


def _lower_keys(obj: dict[str, Any]) -> dict[str, Any]:
    # .NET configuration keys are case-insensitive.
    return {str(k).lower(): v for k, v in obj.items()}


def load_host_config(script_root: Path) -> HostConfig:
    path = script_root / "host.json"
    if not path.exists():
        raise HostConfigError(f'{path} not found: a function app needs a host.json with "version": "2.0"')
    data = _lower_keys(_read_json_object(path))
    if data.get("version") != "2.0":
        raise HostConfigError(f'{path}: "version" must be "2.0" (got {data.get("version")!r})')

    extensions = data.get("extensions") or {}
    if not isinstance(extensions, dict):
        raise HostConfigError("host.json extensions: must be an object")
    extensions = _lower_keys(extensions)

    http = _lower_keys(extensions.get("http") or {})
    prefix = http.get("routeprefix", "api")
    if not isinstance(prefix, str):
        raise HostConfigError(f"host.json extensions.http.routePrefix: must be a string, got {prefix!r}")
    prefix = prefix.strip("/")

    q = _lower_keys(extensions.get("queues") or {})
    batch_size = _int(q.get("batchsize", 16), "extensions.queues.batchSize", 1, 32)
    threshold_default = batch_size // 2
    max_poll = _timespan(q.get("maxpollinginterval", "00:01:00"), "extensions.queues.maxPollingInterval")
    assert max_poll is not None
    if max_poll < dt.timedelta(milliseconds=100):
        raise HostConfigError("host.json extensions.queues.maxPollingInterval: must be at least 00:00:00.1")
    visibility = _timespan(q.get("visibilitytimeout", "00:00:00"), "extensions.queues.visibilityTimeout")
    assert visibility is not None
    if visibility > dt.timedelta(days=7):
        raise HostConfigError("host.json extensions.queues.visibilityTimeout: must be at most 7 days")
    encoding = q.get("messageencoding", "base64")
    if not isinstance(encoding, str) or encoding.lower() not in ("base64", "none"):
        raise HostConfigError(
            f"host.json extensions.queues.messageEncoding: must be base64 or none, got {encoding!r}"
        )
    queues = QueueOptions(
        max_polling_interval=max_poll,
        visibility_timeout=visibility,
        batch_size=batch_size,
        new_batch_threshold=_int(
            q.get("newbatchthreshold", threshold_default), "extensions.queues.newBatchThreshold", 0
        ),
        max_dequeue_count=_int(q.get("maxdequeuecount", 5), "extensions.queues.maxDequeueCount", 1),
        message_encoding=encoding.lower(),
    )

    timeout: dt.timedelta | None = dt.timedelta(minutes=30)
    if "functiontimeout" in data:
        timeout = _timespan(data["functiontimeout"], "functionTimeout", allow_infinite=True)
        if timeout is not None and timeout <= dt.timedelta(0):
            raise HostConfigError("host.json functionTimeout: must be positive (or -1 for unbounded)")

    levels: dict[str, int] = {}
    logging_section = _lower_keys(data.get("logging") or {})
    for category, level in (logging_section.get("loglevel") or {}).items():
        if not isinstance(level, str) or level.lower() not in _LEVELS:
            raise HostConfigError(
                f"host.json logging.logLevel.{category}: {level!r} is not one of "
                "Trace, Debug, Information, Warning, Error, Critical, None"
            )
        levels[str(category).lower()] = _LEVELS[level.lower()]

    return HostConfig(route_prefix=prefix, queues=queues, function_timeout=timeout, log_levels=levels)

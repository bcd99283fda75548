"""Index a v2-programming-model function app: import ``function_app``, find the ``FunctionApp`` and
describe each function's trigger the way the Python worker's indexing does.

Only what this local host can run faithfully is accepted: HTTP triggers (with the HTTP ``$return``
output), timer triggers and Storage queue triggers, with no other bindings. Anything else is refused
at start-up with the function's name, rather than silently ignored.
"""

from __future__ import annotations

import datetime as dt
import enum
import importlib
import inspect
import os
import re
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func

from tools.funchost.ncrontab import (
    IntervalSchedule,
    Schedule,
    ScheduleError,
    parse_schedule,
    resolve_setting_reference,
)
from tools.funchost.routing import RouteError, RouteTemplate, parse_route

__all__ = ["FunctionSpec", "LoadError", "load_functions"]

_HTTP_METHODS = {"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "TRACE"}
# Queue names: 3-63 chars, lowercase letters, digits and single dashes, starting and ending with
# a letter or digit (https://learn.microsoft.com/rest/api/storageservices/naming-queues-and-metadata).
_QUEUE_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9](?:[a-z0-9]|-(?!-))*[a-z0-9]$")


class LoadError(RuntimeError):
    """The app cannot be indexed, or a function uses something this host does not support."""


@dataclass
class FunctionSpec:
    name: str
    kind: str  # "http" | "timer" | "queue"
    trigger_param: str
    func: Callable[..., Any]
    is_async: bool
    wants_context: bool
    binding: dict[str, Any] = field(default_factory=dict)
    # The trigger parameter is annotated ``str`` or ``bytes``: the worker then uses its "generic"
    # binding and passes the host's raw value instead of a func.* object.
    trigger_as_text: bool = False
    # http
    route: RouteTemplate | None = None
    methods: frozenset[str] | None = None
    auth_level: str | None = None
    # timer
    schedule: Schedule | None = None
    run_on_startup: bool = False
    use_monitor: bool = True
    # queue
    queue_name: str | None = None
    connection_setting: str | None = None

    @property
    def trigger_type(self) -> str:
        return {"http": "httpTrigger", "timer": "timerTrigger", "queue": "queueTrigger"}[self.kind]


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _find_app(module: Any) -> func.FunctionApp:
    app = getattr(module, "app", None)
    if isinstance(app, func.FunctionApp):
        return app
    candidates = [v for v in vars(module).values() if isinstance(v, func.FunctionApp)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise LoadError("function_app.py defines no azure.functions.FunctionApp instance")
    raise LoadError("function_app.py defines several FunctionApp instances; name the one to run `app`")


def import_app(script_root: Path) -> func.FunctionApp:
    root = str(script_root.resolve())
    if root not in sys.path:
        sys.path.insert(0, root)
    if not (script_root / "function_app.py").exists():
        raise LoadError(f"{script_root / 'function_app.py'} not found")
    sys.modules.pop("function_app", None)
    try:
        module = importlib.import_module("function_app")
    except Exception as exc:
        raise LoadError(f"importing function_app.py failed: {type(exc).__name__}: {exc}") from exc
    return _find_app(module)


def load_functions(script_root: Path, environ: dict[str, str] | None = None) -> list[FunctionSpec]:
    env = dict(os.environ) if environ is None else environ
    app = import_app(script_root)
    try:
        functions = app.get_functions()
    except Exception as exc:  # e.g. duplicate function names
        raise LoadError(f"indexing the function app failed: {exc}") from exc
    specs = [_describe(f, env) for f in functions]
    if not specs:
        raise LoadError("no functions found in function_app.py")
    return specs


def _check_annotations(name: str, user_func: Callable[..., Any], ttype: str, param: str) -> bool:
    """The Python worker's indexing checks (azure_functions_worker/functions.py,
    ``FunctionInfo.add_indexed_function``): annotations are read with ``typing.get_type_hints``; a
    ``context`` annotation must be a class named Context; a trigger annotation must be a class that
    the trigger's converter accepts (``check_input_type_annotation``), or ``str``/``bytes`` (the
    "generic" binding); an HTTP function's return annotation (its ``$return`` binding) must be a
    subclass of ``func.HttpResponse`` or ``str``, so ``-> None``, ``-> dict``, ``-> Any`` and
    ``-> HttpResponse | None`` all fail. In Azure a failure here stops the whole app from indexing.
    Returns whether the trigger parameter is annotated ``str``/``bytes``."""
    try:
        hints = typing.get_type_hints(user_func)
    except Exception as exc:
        raise LoadError(f"function {name!r}: cannot resolve its type annotations: {exc}") from exc
    ctx = hints.get("context")
    if ctx is not None and (not isinstance(ctx, type) or ctx.__name__ != "Context"):
        raise LoadError(
            f'function {name!r}: the "context" parameter is expected to be of type '
            f"azure.functions.Context, got {ctx!r}"
        )
    as_text = False
    if param in hints:
        anno = hints[param]
        if not isinstance(anno, type):
            raise LoadError(f"function {name!r}: binding {param} has invalid non-type annotation {anno!r}")
        if anno in (str, bytes):
            as_text = True
        else:
            converter = func.get_binding_registry().get(ttype)  # type: ignore[no-untyped-call]
            if converter is None or not converter.check_input_type_annotation(anno):
                raise LoadError(
                    f'function {name!r}: type of {param} binding in function.json "{ttype}" does not '
                    f'match its Python annotation "{anno.__name__}"'
                )
    if ttype == "httpTrigger" and "return" in hints:
        ret = hints["return"]
        if not isinstance(ret, type):
            raise LoadError(f"function {name!r}: has invalid non-type return annotation {ret!r}")
        http_out = func.get_binding_registry().get("http")  # type: ignore[no-untyped-call]
        if not http_out.check_output_type_annotation(ret):
            raise LoadError(
                f'function {name!r}: Python return annotation "{ret.__name__}" does not match binding '
                'type "http"'
            )
    return as_text


def _describe(function: Any, env: dict[str, str]) -> FunctionSpec:
    name = function.get_function_name()
    trigger = function.get_trigger()
    if trigger is None:
        raise LoadError(f"function {name!r} has no trigger")
    binding = {k: _plain(v) for k, v in trigger.get_dict_repr().items()}
    ttype = binding.get("type")
    param = str(binding.get("name") or "")
    user_func = function.get_user_function()

    others = [
        {k: _plain(v) for k, v in b.get_dict_repr().items()}
        for b in function.get_bindings()
        if b is not trigger
    ]
    for other in others:
        if ttype == "httpTrigger" and other.get("type") == "http" and other.get("name") == "$return":
            continue
        raise LoadError(
            f"function {name!r}: binding {other.get('type')!r} ({other.get('name')!r}) is not supported by the "
            "local functions host (only HTTP, timer and queue triggers, and HTTP $return outputs)"
        )

    # The Python worker requires the function's parameters to be exactly the binding names
    # (plus an optional `context`); otherwise indexing fails.
    sig = inspect.signature(user_func)
    params = [p for p in sig.parameters if p != "context"]
    if params != [param]:
        raise LoadError(
            f"function {name!r}: its parameters {params} must be exactly the trigger's parameter {[param]} "
            "(plus an optional `context`), as the Python worker requires"
        )
    trigger_as_text = _check_annotations(name, user_func, str(ttype), param)
    spec = FunctionSpec(
        name=name,
        kind="",
        trigger_param=param,
        func=user_func,
        is_async=inspect.iscoroutinefunction(user_func),
        wants_context="context" in sig.parameters,
        binding=binding,
        trigger_as_text=trigger_as_text,
    )
    if ttype == "httpTrigger":
        if trigger_as_text:
            # The worker indexes this, but its generic binding cannot decode the host's RpcHttp
            # ("unexpected type of data received for the \"generic\" binding: 'http'"), so every
            # call fails in Azure; refusing at start-up says so sooner.
            raise LoadError(
                f"function {name!r}: an HTTP trigger parameter must be annotated func.HttpRequest, "
                "not str/bytes (every invocation would fail in Azure)"
            )
        spec.kind = "http"
        route_text = binding.get("route") or name
        try:
            spec.route = parse_route(route_text)
        except RouteError as exc:
            raise LoadError(f"function {name!r}: {exc}") from exc
        methods = binding.get("methods")
        if methods:
            upper = frozenset(str(m).upper() for m in methods)
            unknown = upper - _HTTP_METHODS
            if unknown:
                raise LoadError(f"function {name!r}: unknown HTTP methods {sorted(unknown)}")
            spec.methods = upper
        spec.auth_level = binding.get("authLevel")
    elif ttype == "timerTrigger":
        spec.kind = "timer"
        raw = binding.get("schedule")
        if not raw:
            raise LoadError(f"function {name!r}: a timer trigger needs a schedule")
        try:
            spec.schedule = parse_schedule(str(raw), env)
        except ScheduleError as exc:
            raise LoadError(f"function {name!r}: invalid schedule {raw!r}: {exc}") from exc
        spec.run_on_startup = bool(binding.get("runOnStartup", False))
        spec.use_monitor = bool(binding.get("useMonitor", True)) and not _fires_more_than_once_a_minute(
            spec.schedule
        )
    elif ttype == "queueTrigger":
        spec.kind = "queue"
        try:
            queue_name = resolve_setting_reference(str(binding.get("queueName") or ""), env).lower()
        except ScheduleError as exc:
            raise LoadError(f"function {name!r}: queue name: {exc}") from exc
        if not _QUEUE_NAME.match(queue_name):
            raise LoadError(f"function {name!r}: {queue_name!r} is not a valid queue name")
        spec.queue_name = queue_name
        spec.connection_setting = binding.get("connection") or "AzureWebJobsStorage"
    else:
        raise LoadError(
            f"function {name!r}: trigger type {ttype!r} is not supported by the local functions host"
        )
    return spec


def _fires_more_than_once_a_minute(schedule: Schedule) -> bool:
    """TimerSchedule.Create turns schedule monitoring off for a cron schedule with more than one
    occurrence in the next minute, or a TimeSpan shorter than a minute."""
    if isinstance(schedule, IntervalSchedule):
        return schedule.interval < dt.timedelta(minutes=1)
    now = dt.datetime.now(dt.UTC)
    first = schedule.next_after(now)
    if first is None:
        return False
    second = schedule.next_after(first)
    return second is not None and second < now + dt.timedelta(minutes=1)


def resolve_connection_string(setting: str, env: dict[str, str] | None = None) -> str:
    """The host looks a connection up as ``AzureWebJobs<name>`` first, then ``<name>``
    (https://learn.microsoft.com/azure/azure-functions/functions-reference#connection-values)."""
    environ = os.environ if env is None else env
    for key in (f"AzureWebJobs{setting}", setting):
        value = environ.get(key)
        if value:
            return value
    if environ.get(f"{setting}__queueServiceUri") or environ.get(f"{setting}__serviceUri"):
        raise LoadError(
            f"connection {setting!r}: identity-based connections are not supported locally; "
            "set a connection string (Azurite)"
        )
    raise LoadError(f"connection {setting!r}: app setting {setting!r} is not set")

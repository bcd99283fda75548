"""The local functions host: settings, indexing, HTTP server, timers, queue listeners, shutdown."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import sys
from collections.abc import Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

import azure.functions as func
from aiohttp import web
from azure.functions.queue import QueueMessage as FuncQueueMessage
from azure.functions.timer import TimerRequest
from multidict import CIMultiDict

from tools.funchost.invoker import CURRENT_FUNCTION, Invoker
from tools.funchost.loader import FunctionSpec, LoadError, load_functions, resolve_connection_string
from tools.funchost.queues import QueueListener
from tools.funchost.routing import RouteTemplate, match_route
from tools.funchost.settings import (
    SHUTDOWN_GRACE,
    HostConfig,
    HostConfigError,
    apply_local_settings,
    is_disabled,
    load_host_config,
)

__all__ = ["FunctionsHost", "main"]

log = logging.getLogger("Host")
MAX_REQUEST_BODY = 100 * 1024 * 1024  # the host's default request size limit (100 MB)
MANUAL_REASON = "This function was programmatically called via the host APIs."


_MIN_DATETIME = (
    "0001-01-01T00:00:00"  # DateTime.MinValue as Json.NET writes it (ScheduleMonitor.DefaultDateTime)
)


def _timer_time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class _LevelFilter(logging.Filter):
    """Apply host.json logging.logLevel: "Function.<name>" for code running in a function, the
    logger's own name ("Host.*", ...) otherwise, falling back to "default"."""

    def __init__(self, config: HostConfig) -> None:
        super().__init__()
        self.config = config

    def filter(self, record: logging.LogRecord) -> bool:
        current = CURRENT_FUNCTION.get()
        if record.name.startswith("Host"):
            category = f"Function.{current}" if current and record.name == "Host.Function" else record.name
        elif current:
            category = f"Function.{current}.User"
        else:
            category = record.name
        return record.levelno >= self.config.level_for(category)


def _configure_logging(config: HostConfig) -> None:
    handler = logging.StreamHandler(sys.stdout)
    formatter = logging.Formatter("[%(asctime)s.%(msecs)03dZ] %(message)s", "%Y-%m-%dT%H:%M:%S")
    formatter.converter = __import__("time").gmtime
    handler.setFormatter(formatter)
    handler.addFilter(_LevelFilter(config))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG)
    for noisy in ("azure", "aiohttp.access", "asyncio", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _to_aiohttp(result: Any) -> web.Response:
    """Convert a function's (already checked, see invoker.check_return_value) return value the way
    the Python library's HTTP output converter does:
    a str → 200 text/plain; an HttpResponse → its status, headers, body, with Content-Type from
    mimetype/charset when not set. Headers are sent one value per name except Set-Cookie, which may
    repeat (the worker collapses other duplicates)."""
    if isinstance(result, str):
        return web.Response(
            status=200, body=result.encode("utf-8"), headers={"Content-Type": "text/plain; charset=utf-8"}
        )
    if isinstance(result, func.HttpResponse):
        headers: CIMultiDict[str] = CIMultiDict()
        source = result.headers
        for name in {k.lower(): k for k, _ in source.items()}.values():
            values = source.get_all(name)
            if name.lower() == "set-cookie":
                for v in values:
                    headers.add(name, v)
            elif values:
                headers[name] = values[-1]
        if "content-type" not in headers:
            mimetype = result.mimetype or "text/plain"
            headers["Content-Type"] = (
                f"{mimetype}; charset={result.charset}" if mimetype.startswith("text/") else mimetype
            )
        return web.Response(status=int(result.status_code), body=result.get_body() or b"", headers=headers)
    # Unreachable: Invoker.invoke already failed the invocation (worker's TypeError → 500).
    raise TypeError(f"an HTTP function must return func.HttpResponse or str, not {type(result).__name__}")


def query_params(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``HttpRequest.params`` as the host builds them (GrpcMessageConversionExtensions.ToRpcHttp):
    ASP.NET Core's query collection groups names case-insensitively (the first spelling is kept) and
    joins repeated values with ","; a parameter whose value is empty (``?flag`` or ``?flag=``) is
    left out, as the Python worker does not declare the nullable-dictionary capability."""
    grouped: dict[str, tuple[str, list[str]]] = {}
    for name, value in pairs:
        grouped.setdefault(name.lower(), (name, []))[1].append(value)
    params: dict[str, str] = {}
    for name, values in grouped.values():
        joined = ",".join(values)
        if joined:
            params[name] = joined
    return params


class FunctionsHost:
    def __init__(
        self, script_root: Path, host: str, port: int, config: HostConfig, specs: Sequence[FunctionSpec]
    ) -> None:
        self.script_root = script_root
        self.host = host
        self.port = port
        self.config = config
        self.specs = {s.name.lower(): s for s in specs}
        # AzureWebJobs.<name>.Disabled: the trigger is ignored (no queue listener, no timer, HTTP 404), but
        # the admin API still runs a disabled non-HTTP function, as it does in Azure with the master key
        # (https://learn.microsoft.com/azure/azure-functions/disable-function#run-a-disabled-function).
        self.disabled = {s.name.lower() for s in specs if is_disabled(s.name)}
        self.invoker = Invoker(function_timeout=config.function_timeout, script_root=str(script_root))
        self.http_routes: list[tuple[RouteTemplate, object]] = [
            (s.route, s)
            for s in specs
            if s.kind == "http" and s.route is not None and s.name.lower() not in self.disabled
        ]
        self.listeners: list[QueueListener] = []
        self.timer_locks: dict[str, asyncio.Lock] = {}
        self.timer_status: dict[str, dict[str, str | None]] = {}
        self.background: set[asyncio.Task[Any]] = set()
        self.loops: list[asyncio.Task[Any]] = []
        self.state = "Initialized"
        self._stop = asyncio.Event()

    # ---- start-up -------------------------------------------------------------------------------
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self, spec: FunctionSpec) -> str:
        if spec.kind == "http":
            assert spec.route is not None
            methods = (
                ",".join(sorted(spec.methods)) if spec.methods else "GET,POST,PUT,DELETE,HEAD,PATCH,OPTIONS"
            )
            prefix = f"/{self.config.route_prefix}" if self.config.route_prefix else ""
            return f"[{methods}] {self.base_url()}{prefix}/{spec.route.template.strip('/')}"
        if spec.kind == "timer":
            assert spec.schedule is not None
            extra = ", runOnStartup" if spec.run_on_startup else ""
            return f"timerTrigger ({spec.schedule.describe()}{extra})"
        return f"queueTrigger (queue '{spec.queue_name}', connection '{spec.connection_setting}')"

    async def start(self) -> web.AppRunner:
        app = web.Application(client_max_size=MAX_REQUEST_BODY)
        app.router.add_get("/admin/host/status", self.handle_status)
        app.router.add_get("/admin/functions", self.handle_list)
        app.router.add_post("/admin/functions/{name}", self.handle_admin_invoke)
        # Any path, newlines (%0A) included: routing is the route templates' job (handle_http).
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle_http)
        # Queue listeners first: a bad connection string fails start-up, as the host reports
        # "The listener for function ... was unable to start".
        for spec in self.specs.values():
            if spec.name.lower() in self.disabled:
                log.info("Function '%s' is disabled", spec.name)
        for spec in self.enabled():
            if spec.kind == "queue":
                assert spec.connection_setting is not None
                conn = resolve_connection_string(spec.connection_setting)
                listener = QueueListener(spec, conn, self.config.queues, self.invoker)
                await listener.start()
                self.listeners.append(listener)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_GRACE)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        for listener in self.listeners:
            self.loops.append(asyncio.create_task(listener.run()))
        for spec in self.enabled():
            if spec.kind == "timer":
                self.timer_locks[spec.name] = asyncio.Lock()
                self.loops.append(asyncio.create_task(self.run_timer(spec)))
        self.state = "Running"
        print("\nFunctions:\n", flush=True)
        for spec in self.specs.values():
            state = " (disabled)" if spec.name.lower() in self.disabled else ""
            print(f"        {spec.name}: {self.describe(spec)}{state}\n", flush=True)
        print(f"Host started: {self.base_url()}", flush=True)
        log.info("Host started")
        return runner

    def enabled(self) -> list[FunctionSpec]:
        return [s for s in self.specs.values() if s.name.lower() not in self.disabled]

    # ---- timers ---------------------------------------------------------------------------------
    # Modelled on the timer extension's TimerListener (azure-webjobs-sdk-extensions,
    # Extensions/Timers/Listener/TimerListener.cs):
    # * the listener (not the function) is the singleton: scheduled and run-on-startup invocations
    #   are serialized by its invocation lock, but a manual POST /admin/functions/{name} binds a
    #   fresh TimerInfo (TimerTriggerBinding.BindAsync) and can overlap a scheduled run;
    # * ScheduleStatus is passed only when schedule monitoring is on; it is forced off for schedules
    #   that fire more than once a minute (TimerSchedule.Create) or by useMonitor=false, and then
    #   the worker's TimerRequest.schedule_status is {};
    # * the status seen by an invocation is the one before it: first Last/LastUpdated are
    #   DateTime.MinValue ("0001-01-01T00:00:00") and Next is the occurrence now firing; afterwards
    #   Last = LastUpdated = the invocation's start (moved up to the scheduled time if it fired
    #   early) and Next = the occurrence after that, so a run that outlasts its period is followed
    #   by one immediate invocation (GetNextTimerInterval clamps a negative interval to one tick).
    # Schedule status is not persisted across restarts here (Azure stores it in blob storage and
    # reports IsPastDue for an occurrence missed while stopped), so past_due is always False.
    async def run_timer(self, spec: FunctionSpec) -> None:
        assert spec.schedule is not None
        self.timer_status[spec.name] = {
            "Last": _MIN_DATETIME,
            "Next": _timer_time(spec.schedule.next_after(dt.datetime.now(dt.UTC))),
            "LastUpdated": _MIN_DATETIME,
        }
        if spec.run_on_startup:
            await self.invoke_timer(spec, dt.datetime.now(dt.UTC), run_on_startup=True)
        while not self._stop.is_set():
            nxt = self.timer_status[spec.name]["Next"]
            if nxt is None:
                log.warning(
                    "The schedule of 'Functions.%s' has no future occurrence; the timer stops.", spec.name
                )
                return
            delay = (dt.datetime.fromisoformat(nxt) - dt.datetime.now(dt.UTC)).total_seconds()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(delay, 0))
            if self._stop.is_set():
                return
            await self.invoke_timer(spec, dt.datetime.now(dt.UTC))

    def timer_request(self, spec: FunctionSpec) -> Any:
        status = self.timer_status.get(spec.name) if spec.use_monitor else None
        schedule = {"AdjustForDST": False}
        if spec.trigger_as_text:
            # `str`/`bytes` annotation: the worker's generic binding passes the host's JSON TimerInfo.
            return json.dumps({"Schedule": schedule, "ScheduleStatus": status, "IsPastDue": False})
        return TimerRequest(
            past_due=False, schedule_status=dict(status) if status else None, schedule=schedule
        )

    async def invoke_timer(
        self, spec: FunctionSpec, fired: dt.datetime, *, run_on_startup: bool = False
    ) -> None:
        assert spec.schedule is not None
        async with self.timer_locks.setdefault(spec.name, asyncio.Lock()):
            await self.invoker.invoke(spec, self.timer_request(spec), f"Timer fired at {fired.isoformat()}")
            adjusted = fired
            scheduled = self.timer_status[spec.name]["Next"]
            if not run_on_startup and scheduled is not None:
                adjusted = max(fired, dt.datetime.fromisoformat(scheduled))
            self.timer_status[spec.name] = {
                "Last": adjusted.isoformat(),
                "Next": _timer_time(spec.schedule.next_after(adjusted)),
                "LastUpdated": adjusted.isoformat(),
            }

    # ---- HTTP -----------------------------------------------------------------------------------
    async def handle_status(self, request: web.Request) -> web.Response:
        return web.json_response({"state": self.state})

    async def handle_list(self, request: web.Request) -> web.Response:
        items = []
        for spec in self.specs.values():
            item: dict[str, Any] = {
                "name": spec.name,
                "trigger": spec.trigger_type,
                "description": self.describe(spec),
                "binding": spec.binding,
                "isDisabled": spec.name.lower() in self.disabled,
            }
            items.append(item)
        return web.json_response(items)

    async def handle_admin_invoke(self, request: web.Request) -> web.Response:
        """POST /admin/functions/{name} with {"input": "..."} → 202, as the host's FunctionsController
        (https://learn.microsoft.com/azure/azure-functions/functions-manually-run-non-http): no body → 400,
        unknown function → 404. An HTTP-triggered function cannot be run this way (the host accepts
        the call but cannot bind a string to HttpRequest); this host answers 400 so the mistake shows."""
        try:
            body = await request.json()
        except (json.JSONDecodeError, ValueError):
            body = None
        if not isinstance(body, dict):
            return web.json_response(
                {"error": 'body must be a JSON object like {"input": "..."}'}, status=400
            )
        spec = self.specs.get(request.match_info["name"].lower())
        if spec is None:
            return web.Response(status=404)
        if spec.kind == "http":
            return web.json_response(
                {"error": f"'{spec.name}' is HTTP-triggered: call its route instead"}, status=400
            )
        value = body.get("input")
        text = "" if value is None else (json.dumps(value) if isinstance(value, bool) else str(value))
        coro: Coroutine[Any, Any, Any]
        if spec.kind == "timer":
            coro = self.invoker.invoke(spec, self.timer_request(spec), MANUAL_REASON)
        else:
            message: Any = FuncQueueMessage(id=None, body=text.encode("utf-8"), dequeue_count=0)  # type: ignore[no-untyped-call]
            coro = self.invoker.invoke(spec, text if spec.trigger_as_text else message, MANUAL_REASON)
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return web.Response(status=202)

    async def handle_http(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        prefix = self.config.route_prefix
        segments = [s for s in path.split("/") if s]
        if prefix:
            prefix_parts = [p for p in prefix.split("/") if p]
            if [s.lower() for s in segments[: len(prefix_parts)]] != [p.lower() for p in prefix_parts]:
                return web.Response(status=404)
            segments = segments[len(prefix_parts) :]
        relative = "/".join(segments)
        for target, values in match_route(self.http_routes, relative):
            spec = target
            assert isinstance(spec, FunctionSpec)
            if spec.methods is not None and request.method.upper() not in spec.methods:
                continue
            return await self.run_http(spec, request, values)
        return web.Response(status=404)

    async def run_http(
        self, spec: FunctionSpec, request: web.Request, route_values: dict[str, str]
    ) -> web.Response:
        # The host fills RpcHttp.Body only when ``request.ContentLength > 0`` (ToRpcHttp): a chunked
        # request (no Content-Length) reaches an out-of-process worker with an empty body
        # (https://github.com/Azure/azure-functions-host/issues/7930).
        body = await request.read() if (request.content_length or 0) > 0 else b""
        headers: dict[str, str] = {}
        for name in request.headers:
            if name.lower() not in headers:
                headers[name.lower()] = ",".join(request.headers.getall(name))
        params = query_params(request.query.items())
        req = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params=params,
            route_params=route_values,
            body=body,
        )
        result = await self.invoker.invoke(spec, req, MANUAL_REASON)
        if not result.succeeded:
            return web.Response(status=500)
        try:
            return _to_aiohttp(result.value)
        except TypeError as exc:
            log.error("Functions.%s: %s", spec.name, exc)
            return web.Response(status=500)

    # ---- shutdown -------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        await self._stop.wait()

    async def stop(self, runner: web.AppRunner) -> None:
        """Stop accepting requests, polling and firing; running invocations (HTTP, queue, timer) get
        SHUTDOWN_GRACE seconds in all to finish. A queue message still being processed then is made visible
        again at once (QueueListener.stop), so that another instance can take it."""
        self.state = "Stopping"
        log.info("Stopping host...")
        self._stop.set()
        pending = [t for t in self.loops if not t.done()] + list(self.background)
        await asyncio.gather(
            runner.cleanup(),  # stops listening, then waits up to shutdown_timeout for running requests
            *(listener.stop(SHUTDOWN_GRACE) for listener in self.listeners),
            self._finish(pending, SHUTDOWN_GRACE),
        )
        for listener in self.listeners:
            await listener.close()
        self.invoker.shutdown()
        log.info("Host stopped")

    @staticmethod
    async def _finish(tasks: list[asyncio.Task[Any]], timeout: float) -> None:
        if not tasks:
            return
        _, still_running = await asyncio.wait(tasks, timeout=timeout)
        for task in still_running:
            task.cancel()


def _timer_routes_conflict(config: HostConfig, specs: Sequence[FunctionSpec]) -> None:
    # With an empty prefix, routes under admin/ would collide with the host's built-in admin API;
    # the host refuses them.
    if config.route_prefix:
        return
    for spec in specs:
        if spec.kind == "http" and spec.route is not None:
            first = spec.route.template.strip("/").split("/")[0].lower()
            if first == "admin":
                raise LoadError(
                    f"function {spec.name!r}: the route {spec.route.template!r} conflicts with the "
                    "host's built-in admin routes"
                )


async def _serve(args: argparse.Namespace) -> int:
    script_root = Path(args.script_root).resolve()
    try:
        config = load_host_config(script_root)
    except HostConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _configure_logging(config)
    try:
        apply_local_settings(script_root, log=log)
        specs = load_functions(script_root)
        _timer_routes_conflict(config, specs)
    except (HostConfigError, LoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    host = FunctionsHost(script_root, args.host, args.port, config, specs)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, host.request_stop)
    try:
        runner = await host.start()
    except (LoadError, OSError, ValueError) as exc:
        print(f"error: the host could not start: {exc}", file=sys.stderr)
        for listener in host.listeners:
            await listener.close()
        return 1
    await host.wait_stopped()
    await host.stop(runner)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.funchost", description=__doc__)
    parser.add_argument("--script-root", default=".", help="folder holding function_app.py and host.json")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FUNCTIONS_HTTPWORKER_PORT", "7071")))
    args = parser.parse_args(argv)
    return asyncio.run(_serve(args))

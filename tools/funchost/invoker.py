"""Run one function invocation the way the host + Python worker do, and log it like the host.

* ``async def`` functions run on the event loop; plain ``def`` functions run in a thread pool
  (https://learn.microsoft.com/azure/azure-functions/python-scale-performance-reference#async;
  size from ``PYTHON_THREADPOOL_THREAD_COUNT`` when set).
* A ``context`` parameter receives an ``azure.functions.Context`` (invocation id, function name...).
* Each invocation logs ``Executing 'Functions.<name>' (Reason='…', Id=<uuid>)`` and
  ``Executed 'Functions.<name>' (Succeeded|Failed, Id=…, Duration=…ms)``; a failure also logs
  ``Exception while executing function: Functions.<name>`` with the traceback.
* ``functionTimeout`` (https://learn.microsoft.com/azure/azure-functions/functions-host-json#functiontimeout):
  an invocation that exceeds it is failed (``Timeout value of … exceeded by function …``). An
  ``async`` function is cancelled; a thread cannot be killed in Python, so a sync function's thread
  runs on but its result is discarded. (Azure also restarts the host after a timeout.)
* The return value is checked inside the invocation, as the worker's dispatcher does
  (azure_functions_worker/dispatcher.py, ``_handle__invocation_request``), so a bad one fails the
  invocation (``Executed ... (Failed ...)``; a queue message is retried, an HTTP caller gets 500):
  a function without a ``$return`` binding (timer, queue) must return ``None``; an HTTP function's
  ``$return`` must be ``func.HttpResponse`` or ``str`` (``HttpResponseConverter.encode`` raises
  NotImplementedError for anything else, ``None`` included, which the worker turns into TypeError).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import datetime as dt
import functools
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from azure.functions import _abc as func_abc

from tools.funchost.loader import FunctionSpec

__all__ = ["CURRENT_FUNCTION", "InvocationResult", "Invoker"]

host_log = logging.getLogger("Host.Function")
# The function whose code is running: lets the log filter apply logging.logLevel."Function.<name>".
CURRENT_FUNCTION: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "funchost_function", default=None
)


class _TraceContext(func_abc.TraceContext):
    def __init__(self) -> None:
        self._parent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(func_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class LocalContext(func.Context):
    """``azure.functions.Context`` for a local invocation."""

    _tls = threading.local()

    def __init__(self, invocation_id: str, function_name: str, function_directory: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace = _TraceContext()
        self._retry = _RetryContext()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        return self._tls

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> _TraceContext:
        return self._trace

    @property
    def retry_context(self) -> _RetryContext:
        return self._retry


@dataclass
class InvocationResult:
    invocation_id: str
    value: Any = None
    error: BaseException | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None


class FunctionTimeoutError(TimeoutError):
    pass


def check_return_value(spec: FunctionSpec, value: Any) -> Any:
    """Raise as the Python worker does for a return value its bindings cannot carry."""
    if spec.kind == "http":
        if not isinstance(value, str | func.HttpResponse):
            raise TypeError(
                'unable to encode outgoing TypedData: unsupported type "http" for Python type '
                f'"{type(value).__name__}"'
            )
        return value
    if value is not None:
        raise RuntimeError(f"function {spec.name!r} without a $return binding returned a non-None value")
    return value


class Invoker:
    def __init__(self, *, function_timeout: dt.timedelta | None, script_root: str) -> None:
        workers = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT")
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=int(workers) if workers and workers.isdigit() and int(workers) > 0 else None,
            thread_name_prefix="funchost-worker",
        )
        self._timeout = function_timeout
        self._script_root = script_root
        self._active: set[asyncio.Task[Any]] = set()
        self.active_count = 0

    async def invoke(
        self, spec: FunctionSpec, trigger_value: Any, reason: str, invocation_id: str | None = None
    ) -> InvocationResult:
        inv_id = invocation_id or str(uuid.uuid4())
        token = CURRENT_FUNCTION.set(spec.name)
        self.active_count += 1
        started = time.perf_counter()
        host_log.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", spec.name, reason, inv_id)
        result = InvocationResult(inv_id)
        try:
            kwargs: dict[str, Any] = {spec.trigger_param: trigger_value}
            if spec.wants_context:
                kwargs["context"] = LocalContext(inv_id, spec.name, self._script_root)
            result.value = check_return_value(spec, await self._call(spec, kwargs))
        except asyncio.CancelledError:
            result.error = RuntimeError("invocation cancelled (host shutting down)")
            raise
        except Exception as exc:
            result.error = exc
            if isinstance(exc, FunctionTimeoutError):
                host_log.error("%s", exc)
            host_log.error(
                "Exception while executing function: Functions.%s (Id=%s)",
                spec.name,
                inv_id,
                exc_info=None if isinstance(exc, FunctionTimeoutError) else exc,
            )
        finally:
            self.active_count -= 1
            duration = (time.perf_counter() - started) * 1000
            host_log.info(
                "Executed 'Functions.%s' (%s, Id=%s, Duration=%dms)",
                spec.name,
                "Succeeded" if result.error is None else "Failed",
                inv_id,
                round(duration),
            )
            CURRENT_FUNCTION.reset(token)
        return result

    async def _call(self, spec: FunctionSpec, kwargs: dict[str, Any]) -> Any:
        timeout = self._timeout.total_seconds() if self._timeout is not None else None
        if spec.is_async:
            awaitable = spec.func(**kwargs)
        else:
            loop = asyncio.get_running_loop()
            ctx = contextvars.copy_context()
            awaitable = loop.run_in_executor(self._pool, functools.partial(ctx.run, spec.func, **kwargs))
        task = asyncio.ensure_future(awaitable)
        try:
            done, _ = await asyncio.wait({task}, timeout=timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            task.cancel()
            raise FunctionTimeoutError(
                f"Timeout value of {self._timeout} exceeded by function 'Functions.{spec.name}'. "
                "Initiating cancellation."
            )
        return task.result()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

"""Every operation of ``shared.api.operations`` registered as an HTTP function, and its door loaded on first request.

The host indexes the app at every cold start (each new instance, each scale-out) before it serves anything, and
all it needs then is each function's name, trigger, route and method: the operations table declares those. What
serves a request — pydantic and the API's models, the service layer, the SDKs — loads with the first request that
needs it, in ``functions.http`` and the door's module (``test_cold_start`` checks that indexing loads none of it).

An operation's door is the function named after it (``create_user``) in ``functions/<tag>.py`` (tag ``users``), a
``Handler``: ``(container, call) -> result``. Adding an operation is a row in the table and a door in the module of
its tag; ``test_doors`` checks that every operation has its door and that each declares its operation's models.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import TYPE_CHECKING, Any

import azure.functions as func

from shared.api.operations import OPERATIONS, Operation

if TYPE_CHECKING:
    from functions.http import Handler

bp = func.Blueprint()


@cache
def door(op: Operation) -> Handler[Any, Any]:
    """The door of ``op``: ``functions.<tag>.<name>``, its module imported on first use."""
    module = importlib.import_module(f"functions.{op.module}")
    handler: Handler[Any, Any] | None = getattr(module, op.name, None)
    if handler is None:
        raise LookupError(f"functions/{op.module}.py has no door {op.name!r} for {op.method} /{op.route}")
    return handler


def _http_function(op: Operation) -> Any:
    async def run(req: func.HttpRequest) -> func.HttpResponse:
        from functions.http import serve

        return await serve(op, door(op), req)

    run.__name__ = run.__qualname__ = op.name
    run.__doc__ = op.summary
    return run


for _op in OPERATIONS:
    # Anonymous at the host: Warden checks the bearer token (or the webhook's signature) itself. The function's
    # name is its Python name (``_http_function`` sets it): a ``function_name`` setting would only repeat it, at
    # the cost of one more decorated object per operation at every cold start.
    bp.route(route=_op.route, methods=[_op.method], auth_level=func.AuthLevel.ANONYMOUS)(_http_function(_op))

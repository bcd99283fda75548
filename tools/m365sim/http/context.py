"""What every handler of the aiohttp application shares: the world, where it is kept, and the request log."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from tools.m365sim.backends.errors import SimError
from tools.m365sim.backends.persistence import WorldFile
from tools.m365sim.backends.world import World


@dataclass
class Keeping:
    """Where the world is kept (None: in memory only) and whether it changed since it was last written."""

    file: WorldFile | None = None
    dirty: bool = False


WORLD = web.AppKey("world", World)
KEEPING = web.AppKey("keeping", Keeping)


def world_of(request: web.Request) -> World:
    return request.app[WORLD]


def base_url(request: web.Request) -> str:
    return f"https://{request.host}"


def log_unmetered(
    request: web.Request,
    *,
    status: int,
    kind: str,
    tenant_id: str | None = None,
    client_id: str | None = None,
    path: str | None = None,
) -> None:
    """Log a request that charged no resource units (refused, faulted, or not Graph): its method, and its raw path
    with the query unless ``path`` says otherwise."""
    world_of(request).log.add(
        method=request.method,
        path=request.raw_path if path is None else path,
        status=status,
        resource_units=0,
        tenant_id=tenant_id,
        client_id=client_id,
        kind=kind,
    )


def json_error(error: SimError, now: float, headers: dict[str, str] | None = None) -> web.Response:
    """A service error as JSON, in its service's body shape, with the headers it carries."""
    return web.json_response(
        error.body(now), status=error.status, headers={**error.headers, **(headers or {})}
    )

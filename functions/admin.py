"""Anonymous operational HTTP functions: the health check and the OpenAPI document.

Import-light, as every module ``function_app`` imports: what each function runs is imported when it first runs."""

from __future__ import annotations

import logging

import azure.functions as func

from functions.responses import json_response, problem_response
from shared.api.problems import Problem
from shared.logs import correlated, log_event

bp = func.Blueprint()
log = logging.getLogger("warden.admin")


@bp.function_name("health")
@bp.route(route="health", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
async def health(req: func.HttpRequest) -> func.HttpResponse:
    """Storage, queues, Key Vault, poison queues and each directory's connection: 503 only when one of Warden's own
    dependencies is down; a directory down (unreachable, or needing reactivation) is 200 ``degraded``."""
    from shared.bootstrap import get_container
    from shared.config import ConfigError

    with correlated(req.headers.get("x-correlation-id")):
        try:
            container = get_container()
        except ConfigError as exc:
            log_event(log, "health.misconfigured", level=logging.ERROR, problems=exc.problems)
            detail = "Warden is not configured: " + "; ".join(exc.problems)
            return problem_response(Problem(503, detail, title="Configuration invalid"))
        report = await container.health()
        down = [c.name for c in report.components if c.status == "down"]
        log_event(log, "health.checked", level=logging.WARNING if down else logging.INFO, down=down)
        return json_response(report.to_json(), status=503 if report.status == "down" else 200)


@bp.function_name("openapi")
@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    from shared.api.openapi import document

    return json_response(document())

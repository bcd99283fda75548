"""JSON and RFC 9457 problem+json answers, for every HTTP function (the operations' doors and the health check).

Import-light on purpose (``azure.functions`` and the standard library): the functions that answer with these are
registered at every cold start, before anything they serve is loaded.
"""

from __future__ import annotations

import json

import azure.functions as func

from shared.api.problems import PROBLEM_JSON, Problem


def json_response(
    body: object, status: int = 200, headers: dict[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body, default=str),
        status_code=status,
        mimetype="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def problem_response(problem: Problem) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(problem.to_json()),
        status_code=problem.status,
        mimetype=PROBLEM_JSON,
        headers={"Cache-Control": "no-store", **problem.headers},
    )

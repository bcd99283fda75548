"""Helpers shared by the HTTP doors: JSON and problem+json responses."""

from __future__ import annotations

import json
from typing import Any

import azure.functions as func

from shared.api.problems import PROBLEM_JSON, Problem


def json_response(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body),
        status_code=status,
        mimetype="application/json",
        headers={"Cache-Control": "no-store"},
    )


def problem_response(problem: Problem) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(problem.to_json()),
        status_code=problem.status,
        mimetype=PROBLEM_JSON,
        headers={"Cache-Control": "no-store"},
    )

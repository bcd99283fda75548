"""Realism knobs and injected faults (``GET``/``PUT /_sim/faults``).

Faults apply to Graph, token and Key Vault requests, never to ``/_sim``; inside a ``$batch`` only the outer
request is subject to them. Besides the random ones (``errorRate``), ``rules`` aim a fault at particular Graph
requests (``FaultRule``). The 5xx bodies follow each service's own error format:
- Graph: https://learn.microsoft.com/en-us/graph/errors (500 ``generalException`` "An unspecified error has
  occurred."; 503 ``serviceNotAvailable`` with ``Retry-After``).
- Entra token endpoint: https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
  (``temporarily_unavailable``; AADSTS90024 RequestBudgetExceededError "A transient error has occurred").
- Key Vault: https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from tools.m365sim.backends.errors import ControlError

ERROR_KINDS = ("500", "503", "reset", "timeout")
RULE_KEYS = frozenset({"method", "path", "status", "when", "skip", "times"})
WHEN = ("before", "after")


@dataclass
class FaultRule:
    """A fault aimed at particular Graph requests (``method``, and ``path``: a regular expression searched in the
    path): the first ``skip`` matching requests pass, the next ``times`` are hit. ``when`` "before" answers the
    request with ``status`` without processing it; "after" processes it and then answers ``status``: the write
    happened, its answer is lost (what a gateway timeout or a connection dropped after the commit looks like to a
    client; Graph answered a federation POST without a signing certificate 500 and left the domain federated,
    microsoft-graph-docs issue 20203)."""

    method: str
    path: str
    status: int = 500
    when: str = "before"
    times: int = 1
    skip: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "when": self.when,
            "skip": self.skip,
            "times": self.times,
        }

    def matches(self, method: str, path: str) -> bool:
        return self.times > 0 and method.upper() == self.method and re.search(self.path, path) is not None


def parse_rule(raw: Any, i: int) -> FaultRule:
    if not isinstance(raw, dict):
        raise FaultConfigError(f"rules[{i}] must be an object")
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise FaultConfigError(f"rules[{i}]: unknown keys {unknown}; known: {sorted(RULE_KEYS)}")
    method, path = raw.get("method"), raw.get("path")
    if method not in ("GET", "POST", "PATCH", "PUT", "DELETE") or not isinstance(path, str) or not path:
        raise FaultConfigError(f"rules[{i}] needs a method (GET, POST, PATCH, PUT, DELETE) and a path")
    try:
        re.compile(path)
    except re.error as exc:
        raise FaultConfigError(f"rules[{i}].path is not a regular expression: {exc}") from None
    status, when, times = raw.get("status", 500), raw.get("when", "before"), raw.get("times", 1)
    skip = raw.get("skip", 0)
    if isinstance(skip, bool) or not isinstance(skip, int) or not 0 <= skip <= 1000:
        raise FaultConfigError(f"rules[{i}].skip must be an integer from 0 to 1000")
    if status not in (500, 503):
        raise FaultConfigError(f"rules[{i}].status must be 500 or 503")
    if when not in WHEN:
        raise FaultConfigError(f"rules[{i}].when must be 'before' or 'after'")
    if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= 1000:
        raise FaultConfigError(f"rules[{i}].times must be an integer from 1 to 1000")
    return FaultRule(method, path, status, when, times, skip)


class FaultConfigError(ControlError):
    """A ``PUT /_sim/faults`` body the simulator refuses (400)."""


@dataclass
class FaultConfig:
    latencyMs: float = 0.0
    replicationLagMs: float = 0.0
    errorRate: float = 0.0
    errorKinds: list[str] = field(default_factory=lambda: ["500", "503"])
    timeoutMs: float = 30_000.0
    retryAfterSeconds: int = 1
    resourceUnitsPer10s: int | None = None
    seed: int | None = None
    rules: list[FaultRule] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "latencyMs": self.latencyMs,
            "replicationLagMs": self.replicationLagMs,
            "errorRate": self.errorRate,
            "errorKinds": list(self.errorKinds),
            "timeoutMs": self.timeoutMs,
            "retryAfterSeconds": self.retryAfterSeconds,
            "resourceUnitsPer10s": self.resourceUnitsPer10s,
            "seed": self.seed,
            "rules": [r.as_json() for r in self.rules],
        }


def _number(body: dict[str, Any], key: str, lo: float, hi: float | None = None) -> float:
    v = body[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise FaultConfigError(f"'{key}' must be a number")
    if v < lo or (hi is not None and v > hi):
        raise FaultConfigError(
            f"'{key}' must be between {lo} and {hi}" if hi is not None else f"'{key}' must be >= {lo}"
        )
    return float(v)


class Faults:
    def __init__(self) -> None:
        self.config = FaultConfig()
        self._rng = random.Random()

    def reset(self) -> None:
        self.config = FaultConfig()
        self._rng = random.Random()

    def update(self, body: Any) -> FaultConfig:
        """Apply a partial update; a missing key keeps its value. Raises FaultConfigError on bad input."""
        if not isinstance(body, dict):
            raise FaultConfigError("the body must be a JSON object")
        known = set(FaultConfig().as_json())
        unknown = sorted(set(body) - known)
        if unknown:
            raise FaultConfigError(f"unknown keys: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        c = FaultConfig(**{**self.config.as_json(), "rules": list(self.config.rules)})
        if "latencyMs" in body:
            c.latencyMs = _number(body, "latencyMs", 0, 600_000)
        if "replicationLagMs" in body:
            c.replicationLagMs = _number(body, "replicationLagMs", 0, 3_600_000)
        if "errorRate" in body:
            c.errorRate = _number(body, "errorRate", 0, 1)
        if "timeoutMs" in body:
            c.timeoutMs = _number(body, "timeoutMs", 0, 600_000)
        if "retryAfterSeconds" in body:
            c.retryAfterSeconds = int(_number(body, "retryAfterSeconds", 0, 3600))
        if "errorKinds" in body:
            kinds = body["errorKinds"]
            if not isinstance(kinds, list) or not kinds or any(k not in ERROR_KINDS for k in kinds):
                raise FaultConfigError(f"'errorKinds' must be a non-empty subset of {list(ERROR_KINDS)}")
            c.errorKinds = [str(k) for k in kinds]
        if "resourceUnitsPer10s" in body:
            v = body["resourceUnitsPer10s"]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise FaultConfigError("'resourceUnitsPer10s' must be a positive integer or null")
            c.resourceUnitsPer10s = v
        if "seed" in body:
            v = body["seed"]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise FaultConfigError("'seed' must be an integer or null")
            c.seed = v
            self._rng = random.Random(v)
        if "rules" in body:
            if not isinstance(body["rules"], list):
                raise FaultConfigError("'rules' must be a list")
            c.rules = [parse_rule(r, i) for i, r in enumerate(body["rules"])]
        self.config = c
        return c

    def aimed(self, method: str, path: str, when: str) -> FaultRule | None:
        """The rule that hits this request at this moment (its count taken), or None."""
        for rule in self.config.rules:
            if rule.when == when and rule.matches(method, path):
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                rule.times -= 1
                return rule
        return None

    def pick(self) -> str | None:
        """The fault to inject into this request, or None."""
        c = self.config
        if c.errorRate <= 0:
            return None
        if self._rng.random() >= c.errorRate:
            return None
        return self._rng.choice(c.errorKinds)

    def replication_lag(self) -> float:
        return self.config.replicationLagMs / 1000.0

"""Realism knobs and injected faults (``GET``/``PUT /_sim/faults``).

Faults apply to Graph, token and Key Vault requests, never to ``/_sim``; inside a ``$batch`` only the outer
request is subject to them. The 5xx bodies follow each service's own error format:
- Graph: https://learn.microsoft.com/en-us/graph/errors (500 ``generalException`` "An unspecified error has
  occurred."; 503 ``serviceNotAvailable`` with ``Retry-After``).
- Entra token endpoint: https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes
  (``temporarily_unavailable``; AADSTS90024 RequestBudgetExceededError "A transient error has occurred").
- Key Vault: https://learn.microsoft.com/en-us/azure/key-vault/general/rest-error-codes
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from tools.m365sim.backends.errors import ControlError

ERROR_KINDS = ("500", "503", "reset", "timeout")


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
        c = FaultConfig(**{**self.config.as_json()})
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
        self.config = c
        return c

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

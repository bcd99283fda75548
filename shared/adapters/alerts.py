"""``Alerts`` on the structured log: one JSON event at WARNING (what Application Insights alerts are set on)."""

from __future__ import annotations

import logging
from typing import Any

from shared.logs import log_event

log = logging.getLogger("warden.connections")


class LogAlerts:
    def warning(self, event: str, **fields: Any) -> None:
        log_event(log, event, level=logging.WARNING, **fields)

"""Microsoft 365 through Graph: the ``M365`` port's adapter (``client.GraphM365``), the only code that knows
Graph's paths, ``$batch``, status codes and error codes."""

from shared.adapters.m365.client import SELECT, GraphM365

__all__ = ["SELECT", "GraphM365"]

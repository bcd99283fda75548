"""What the health check probes, and how a probe's failure is told: in a few safe words (a status code, an error
code, "no answer within 5 s"), never by the exception's text or stack, which can carry URLs with signatures or
other secrets. The SDKs' exceptions are known here, not in the use case (``shared.service.health``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.service.health import Degraded

if TYPE_CHECKING:
    from azure.data.tables.aio import TableServiceClient
    from azure.keyvault.secrets.aio import SecretClient
    from azure.storage.queue.aio import QueueServiceClient

    from shared.adapters.queues import JsonQueue


async def probe_tables(service: TableServiceClient) -> None:
    async for _ in service.list_tables(results_per_page=1):
        break


async def probe_queues(service: QueueServiceClient) -> None:
    await service.get_service_properties()


async def probe_key_vault(client: SecretClient) -> None:
    async for _ in client.list_properties_of_secrets(max_page_size=1):
        break


async def probe_poison(queue: JsonQueue, what: str) -> None:
    """Messages whose work failed every attempt: each is a user Warden could not converge (see the audit's
    ``sync.poisoned`` entries)."""
    count = await queue.poisoned()
    if count:
        raise Degraded(f"{count} message(s) in {queue.poison.queue_name}: {what}")


def describe_failure(exc: BaseException, timeout: float) -> str:
    """A short, secret-free description of why a probe failed."""
    if isinstance(exc, Degraded):
        return str(exc)
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if any(c.__name__ == "ClientAuthenticationError" for c in type(exc).__mro__):
        return "authentication failed"  # the token request was refused (e.g. a wrong client secret)
    status = getattr(exc, "status_code", None) or getattr(exc, "response_status_code", None)
    if isinstance(status, int):
        code = _error_code(exc)
        return f"HTTP {status}" + (f" {code}" if code else "")
    if isinstance(exc, ConnectionError | OSError) or type(exc).__name__ in (
        "ServiceRequestError",
        "ConnectError",
        "ConnectTimeout",
        "ReadTimeout",
    ):
        return "unreachable"
    return f"failed ({type(exc).__name__})"


def _error_code(exc: BaseException) -> str | None:
    for candidate in (getattr(exc, "error", None), getattr(exc, "error_code", None)):
        code = getattr(candidate, "code", candidate)
        if isinstance(code, str) and code.replace("_", "").replace(".", "").isalnum():
            return code
    return None

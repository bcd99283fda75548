"""Entra ID's errors the simulator answers, with their AADSTS codes
(https://learn.microsoft.com/en-us/entra/identity-platform/reference-error-codes)."""

from __future__ import annotations

from tools.m365sim.backends.errors import EntraError


def unknown_tenant(segment: str) -> EntraError:
    return EntraError(
        400,
        "invalid_request",
        90002,
        f"Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud. Check with your subscription administrator, this may happen "
        "if there are no active subscriptions for the tenant.",
    )


def missing_parameter(name: str) -> EntraError:
    return EntraError(
        400, "invalid_request", 900144, f"The request body must contain the following parameter: '{name}'."
    )


def unknown_client(client_id: str, tenant_name: str) -> EntraError:
    # AADSTS700016 UnauthorizedClient_DoesNotMatchRequest (error "unauthorized_client")
    return EntraError(
        400,
        "unauthorized_client",
        700016,
        f"Application with identifier '{client_id}' was not found in the directory '{tenant_name}'. "
        "This can happen if the application has not been installed by the administrator of the tenant "
        "or consented to by any user in the tenant. You may have sent your authentication request to "
        "the wrong tenant.",
    )


def invalid_grant(code: int, message: str) -> EntraError:
    return EntraError(400, "invalid_grant", code, message)


def sessions_revoked() -> EntraError:
    return invalid_grant(
        50173,
        "The provided grant has expired due to it being revoked, a fresh auth token is needed. "
        "The user might have changed or reset their password.",
    )


def user_disabled() -> EntraError:
    # AADSTS50057 UserDisabled: "The user account is disabled."
    return invalid_grant(
        50057,
        "The user account is disabled. The account has been disabled by an administrator.",
    )


def invalid_assertion(reason: str) -> EntraError:
    # AADSTS700027 InvalidSignature: "Client assertion contains an invalid signature." (Entra adds the reason)
    return EntraError(
        401, "invalid_client", 700027, f"Client assertion contains an invalid signature. {reason}"
    )

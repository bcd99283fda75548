"""A simulated Microsoft cloud: Entra ID's token endpoints, a Microsoft Graph v1.0 subset, Key Vault secrets.

It follows Microsoft's documented behaviour (status codes, error bodies, paging, throttling, replication lag) so
that Warden's tests prove something. Start it with ``python -m tools.m365sim --host 127.0.0.1 --port P``.

Built as moto builds its services: ``backends/`` hold each service's plain state and rules (Entra, Graph by
resource family, Key Vault, the control plane), ``http/`` parses requests, calls a backend and renders the
service's wire shape; every error is a ``backends.errors.SimError``.
"""

"""A simulated Microsoft cloud (Entra ID token endpoints, Microsoft Graph v1.0 subset, Key Vault secrets).

It follows Microsoft's documented behaviour (status codes, error bodies, paging, throttling, replication
lag) so that Warden's tests prove something. Start it with ``python -m tools.m365sim --host 127.0.0.1 --port P``.
"""

"""Warden's core, in layers (STYLE §1, after cosmicpython):

- ``shared.domain``   — users, directories, bindings, links, plans: plain data and pure rules. Imports nothing
  from Azure, httpx or aiohttp and reads no clock.
- ``shared.service``  — use cases (the sync of a user or group, runs over a directory, the store's operations, HR
  input, health) written against ``typing.Protocol`` ports (``shared.service.ports``).
- ``shared.adapters`` — Table Storage, Graph, Key Vault, queues, token validation: the ports' real implementations.
- ``shared.api``      — the HTTP contract: pydantic request/response models, operations, OpenAPI, problem+json.
- ``shared.config``   — the settings, read once from the environment (by the composition root, never by a use case).
- ``shared.bootstrap`` — the composition root: chooses and wires the adapters, once per process.

The direction (domain ← service ← config ← api | adapters ← bootstrap ← functions) is an import-linter contract
checked by ``make test``. Nothing in this package imports ``azure.functions``: the trigger adapters live in ``functions/``.
"""

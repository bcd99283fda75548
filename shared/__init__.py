"""Warden's core: domain model, sync planner/applier, Graph client, storage, secrets, auth, config.

Nothing in this package imports ``azure.functions``: the trigger adapters live in ``functions/``.
"""

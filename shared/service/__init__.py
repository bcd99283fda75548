"""Use cases, written against the ports of ``shared.service.ports`` (never against an SDK), by capability:

- ``sync``  — the sync of one user (``user``) or one group (``group``) into Microsoft 365: observe, plan, apply
  through the M365 port, record each outcome (``links``); one run at a time (``leases``); the mass-change guard
  for per-user blocks (``guard``).
- ``runs``  — runs over a whole directory: the full reconcile (``reconcile``), drift enforcement (``drift``), bulk
  import (``imports``), on one chunked-job engine (``jobs``: plan → items → chunks → resume → counted once).
- ``store`` — the admin's operations on the identity store: users, groups, directories, bindings, uniqueness,
  lifecycle dates.
- ``hr``    — HR input: the signed HRIS webhook and its events.

Beside them: ``ports`` (what the use cases need of the outside world), ``context`` (who acts, and the audit),
``access`` (who may call the admin API), ``health`` (the health check), ``paging`` (list cursors).
"""

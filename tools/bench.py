"""``make bench``: cold-start figures, each beside a floor measured in the same run, printed as ratios.

(a) ``import function_app`` in a fresh interpreter, against a bare interpreter (``python -c pass``) and against
    ``import azure.functions`` (which the Python worker has loaded before it imports the app), and the modules
    importing and indexing the app adds to azure.functions' own.
(b) process start → first Graph answer through Warden's own Graph client (settings, Key Vault secret,
    token, msgraph-sdk request adapter) against the simulated cloud, against a bare ``httpx.get`` of the same
    endpoint; beside it the same through msgraph-sdk's typed models, whose first use imports ~1,250 modules.

Medians over ``--runs`` fresh processes (at least 5). Not assertions: numbers to read and compare.

Then the store section (``tools.bench_store``): with ``--users`` users (100,000) in Azurite,
(c) ``GET /api/users/{id}`` and (d) a directory's whole listing, each beside a bare azure-data-tables floor
reading the same rows in the same run. ``--only coldstart`` / ``--only store`` runs one section;
``--only store --users 2000`` is a quick smoke run.

Then the reconcile section (``tools.bench_reconcile``): a ``--users``-account tenant in the simulator at 80 ms,
1 % drifted: the full reconcile beside a floor measured in the same run (the same reads and writes done bare), its
storage requests per applied item, its dry run, and the drift rounds.
``--only reconcile --users 3000`` is a quick smoke run.

Then the import section (``tools.bench_import``): every account of an ``--import-users``-account tenant (default: ``--users``, at most 10,000) imported
(``all: true``) by the import job, plan and chunks, beside a floor of the same Graph read (bare httpx) and the same
rows written with bare azure-data-tables transactions, with the peak RSS and storage requests per user; and a
group of ``--group-members`` (as many as the import, at most 10,000) linked members mirrored into an empty M365 group, beside
the same ``$batch`` requests sent bare (Graph's write limit printed as context). ``--only import --users 2000 --group-members 500``
is a quick smoke run.

Then the refresh section (``tools.bench_refresh``): the token refresh round over ``--directories`` simulated
directories (1,000; 10 % delegated), cold, warm and a week on, beside the floor of the same token requests sent bare,
with Entra's and Graph's requests per directory. ``--only refresh --directories 100`` is a quick smoke run.

Last the sync section (``tools.bench_sync``, which has its own options): HR event → Microsoft 365 latencies
of leavers and joiners through the local functions host, and the webhook's acknowledgement beside a bare
floor of the minimal durable work done with the bare storage SDKs, and its storage requests per event. ``--only
sync`` runs it alone (``python -m tools.bench_sync --quick``: a smoke run).

Then the SCIM section (``tools.bench_scim``, which has its own options): SCIM ``POST /Users`` beside the standard
webhook's acknowledgement, and a 10,000-user SCIM Bulk load beside the store's bare write floor. ``--only scim``
runs it alone (``python -m tools.bench_scim --quick``: a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tools import demo, devca, procs

PY = sys.executable

GRAPH_PROBE = """
import asyncio, sys, time
from shared.config import load_settings
from shared.bootstrap import Container
from shared.adapters.graph import get_json

async def main(typed):
    c = Container(load_settings())
    client = await c.graph_for_demo(c.settings.demo_directory)
    if typed:  # msgraph-sdk's typed call: deserializes into its generated models
        org = await client.organization.get()
        assert org.value and org.value[0].id
    else:  # Warden's path for $select-ed reads: the SDK's adapter, JSON out
        org = await get_json(client, "/organization", {"$select": "id"})
        assert org["value"][0]["id"]
    print(time.time(), flush=True)
    await c.aclose()

asyncio.run(main(sys.argv[1] == "typed"))
"""

HTTPX_FLOOR = """
import sys, time, httpx
r = httpx.get(sys.argv[1], verify=sys.argv[2], trust_env=False)
assert r.status_code == 401, r.status_code
print(time.time(), flush=True)
"""


def _timed(argv: Sequence[str], env: dict[str, str]) -> float:
    """Seconds from just before the process starts to the timestamp it prints (or to its exit)."""
    started = time.time()
    out = subprocess.run(argv, env=env, cwd=procs.ROOT, capture_output=True, text=True, timeout=120)
    ended = time.time()
    if out.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {out.stderr[-2000:]}")
    stamp = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    return (float(stamp) if stamp else ended) - started


def _medians(commands: Sequence[tuple[Sequence[str], dict[str, str]]], runs: int) -> list[float]:
    """Median time of each command, the runs interleaved round-robin so that a figure and its floor see the
    same machine load; one unmeasured warm-up round first (OS file cache)."""
    samples: list[list[float]] = [[] for _ in commands]
    for round_ in range(runs + 1):
        for i, (argv, env) in enumerate(commands):
            seconds = _timed(argv, env)
            if round_:
                samples[i].append(seconds)
    return [statistics.median(s) for s in samples]


def _row(name: str, value: float, floor_name: str, floor: float) -> str:
    return f"{name:<44} {value * 1000:8.1f} ms   floor ({floor_name}) {floor * 1000:7.1f} ms   ratio {value / floor:5.2f}x"


MODULES_PROBE = """
import json, sys
import azure.functions
before = set(sys.modules)
import function_app
function_app.app.get_functions()
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def _modules_beyond_azure_functions(env: dict[str, str]) -> str:
    """How many modules importing and indexing the app adds to what azure.functions loaded, and how many of them are
    third-party (``tests/unit/test_cold_start.py`` keeps that at none)."""
    out = subprocess.run(
        [PY, "-c", MODULES_PROBE],
        env=env,
        cwd=procs.ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    added: list[str] = json.loads(out.stdout)
    own = [m for m in added if m.split(".")[0] in ("function_app", "functions", "shared")]
    stdlib = [m for m in added if m.split(".")[0] in sys.stdlib_module_names]
    other = len(added) - len(own) - len(stdlib)
    return f"{len(added)}: {len(own)} of Warden's, {len(stdlib)} of the standard library, {other} other"


def cold_start(runs: int, env: dict[str, str]) -> list[str]:
    bare, imported, library = _medians(
        [
            ([PY, "-c", "pass"], env),
            ([PY, "-c", "import function_app"], env),
            ([PY, "-c", "import azure.functions"], env),
        ],
        runs,
    )

    tls = procs.ROOT / ".local" / "tls"
    ca = devca.ensure(tls)
    children: list[procs.Managed] = []
    with tempfile.TemporaryDirectory() as tmp, procs.stopping(children):
        ports = procs.AzuritePorts(procs.free_port(), procs.free_port(), procs.free_port())
        children.append(procs.start_azurite(Path(tmp) / "azurite", ports))
        sim_port = procs.free_port()
        children.append(procs.start_sim(sim_port, tls))
        world = demo.seed(f"https://127.0.0.1:{sim_port}", ca)
        warden_env = {**env, **world.warden_settings(ports.connection_string)}
        graph, typed, floor = _medians(
            [
                ([PY, "-c", GRAPH_PROBE, "json"], warden_env),
                ([PY, "-c", GRAPH_PROBE, "typed"], warden_env),
                ([PY, "-c", HTTPX_FLOOR, f"{world.sim_url}/v1.0/organization", str(ca)], env),
            ],
            runs,
        )

    return [
        f"Cold start, median of {runs} fresh processes (Python {sys.version.split()[0]}, {os.cpu_count()} cores)",
        _row("(a) import function_app", imported, "bare interpreter", bare),
        # The Python worker has azure.functions loaded before it imports the app: beside it, Warden's own share.
        _row("    the same", imported, "import azure.functions", library),
        f"    modules it loads beyond azure.functions'   {_modules_beyond_azure_functions(env)}",
        _row("(b) process start -> first Graph answer", graph, "bare httpx GET", floor),
        _row("    the same, through msgraph-sdk models", typed, "bare httpx GET", floor),
    ]


IMPORT_USERS = 10_000
"""The import section's default tenant: importing writes 8 rows per account, its floor as many again, and
Azurite's cost per write grows with its tables (the section takes about 8 minutes at 10,000 accounts on 2 cores,
most of it seeding the 10,000-member group; ``--import-users 100000`` runs the issue's size)."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        choices=("coldstart", "store", "reconcile", "import", "refresh", "sync", "scim"),
        help="run one section (default: all)",
    )
    parser.add_argument("--runs", type=int, default=7, help="cold start: fresh processes per figure (>= 5)")
    parser.add_argument(
        "--users",
        type=int,
        default=100_000,
        help="store, reconcile, import: users seeded into Azurite and the tenant",
    )
    parser.add_argument(
        "--import-users",
        type=int,
        help=f"import: accounts of the imported tenant (default: --users, at most {IMPORT_USERS:,})",
    )
    parser.add_argument(
        "--group-members",
        type=int,
        help="import: linked members of the mirrored group (default: the import's size, at most 10,000)",
    )
    parser.add_argument("--reads", type=int, default=2000, help="store: random users read (c)")
    parser.add_argument(
        "--read-seconds", type=float, default=300, help="store: time budget of the point reads (c)"
    )
    parser.add_argument("--listings", type=int, default=5, help="store: directory listings of each kind (d)")
    parser.add_argument("--no-http", action="store_true", help="store: leave out the functions host")
    parser.add_argument("--directories", type=int, default=1000, help="refresh: simulated directories")
    parser.add_argument(
        "--delegated", type=float, default=0.1, help="refresh: the share connected by consent"
    )
    args = parser.parse_args(argv)
    if args.users < 1 or args.reads < 1 or args.listings < 1:
        parser.error("--users, --reads and --listings must be at least 1")
    import_users = args.import_users or min(args.users, IMPORT_USERS)
    args.group_members = args.group_members or min(import_users, 10_000)
    if args.only in (None, "import") and not 1 <= args.group_members <= import_users:
        parser.error("--group-members must be between 1 and the import's tenant size")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "AZURE_"))}

    lines: list[str] = []
    if args.only in (None, "coldstart"):
        lines += cold_start(max(5, args.runs), env)
    if args.only in (None, "store"):
        from tools import bench_store

        result = bench_store.run(args, env)
        lines += ["", *bench_store.report(result)] if lines else bench_store.report(result)
    if args.only in (None, "reconcile"):
        from tools import bench_reconcile

        reconciled = bench_reconcile.run(args, env)
        lines += ["", *bench_reconcile.report(reconciled)] if lines else bench_reconcile.report(reconciled)
    if args.only in (None, "import"):
        from tools import bench_import

        imported = bench_import.run(argparse.Namespace(**{**vars(args), "users": import_users}), env)
        lines += ["", *bench_import.report(imported)] if lines else bench_import.report(imported)
    if args.only in (None, "refresh"):
        from tools import bench_refresh

        refreshed = bench_refresh.run(args, env)
        lines += ["", *bench_refresh.report(refreshed)] if lines else bench_refresh.report(refreshed)
    if lines:
        print("\n".join(lines), flush=True)
    if args.only in (None, "sync"):
        from tools import bench_sync

        if lines:
            print(flush=True)
        status = bench_sync.main([])
        if status or args.only == "sync":
            return status
    if args.only in (None, "scim"):
        from tools import bench_scim

        if lines or args.only is None:
            print(flush=True)
        return bench_scim.main([])
    return 0


if __name__ == "__main__":
    sys.exit(main())

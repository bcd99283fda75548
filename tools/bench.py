"""``make bench``: cold-start figures, each beside a floor measured in the same run, printed as ratios.

(a) ``import function_app`` in a fresh interpreter, against a bare interpreter (``python -c pass``).
(b) process start → first Graph answer through Warden's own Graph client (settings, Key Vault secret,
    token, msgraph-sdk request adapter) against the simulated cloud, against a bare ``httpx.get`` of the same
    endpoint; beside it the same through msgraph-sdk's typed models, whose first use imports ~1,250 modules.

Medians over ``--runs`` fresh processes (at least 5). Not assertions: numbers to read and compare.
"""

from __future__ import annotations

import argparse
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    runs = max(5, args.runs)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDEN_", "AZURE_"))}

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

    print(
        f"Cold start, median of {runs} fresh processes (Python {sys.version.split()[0]}, {os.cpu_count()} cores)"
    )
    print(_row("(a) import function_app", imported, "bare interpreter", bare))
    # The Python worker has azure.functions loaded before it imports the app: beside it, Warden's own share.
    print(_row("    the same", imported, "import azure.functions", library))
    print(_row("(b) process start -> first Graph answer", graph, "bare httpx GET", floor))
    print(_row("    the same, through msgraph-sdk models", typed, "bare httpx GET", floor))
    return 0


if __name__ == "__main__":
    sys.exit(main())

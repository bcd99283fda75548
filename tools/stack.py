"""``make run``: the whole of Warden on this machine, on real emulators and the simulated cloud.

Starts Azurite (tables, queues, blobs), the simulated Microsoft cloud with the demo world, and the local
functions host with Warden's settings, prints the URLs, and stops every child on Ctrl-C.

    python -m tools.stack [--no-host]

``--no-host`` starts everything but the functions host and writes ``local.settings.json`` (git-ignored,
Core Tools' place for local settings) from the sample with this run's values, for machines where
``func start`` runs the app instead. Secrets are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from tools import demo, devca, procs

LOCAL = procs.ROOT / ".local"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def write_local_settings(settings: dict[str, str]) -> Path:
    """local.settings.json = the sample, with this run's values; keys a developer added are kept."""
    target = procs.ROOT / "local.settings.json"
    source = target if target.exists() else procs.ROOT / "local.settings.sample.json"
    document = json.loads(source.read_text())
    document.setdefault("Values", {}).update(settings)
    target.write_text(json.dumps(document, indent=2) + "\n")
    target.chmod(0o600)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description="Run Warden locally")
    parser.add_argument("--no-host", action="store_true", help="don't start the functions host")
    args = parser.parse_args()

    azurite_ports = procs.AzuritePorts(
        _port("WARDEN_AZURITE_BLOB_PORT", 10000),
        _port("WARDEN_AZURITE_QUEUE_PORT", 10001),
        _port("WARDEN_AZURITE_TABLE_PORT", 10002),
    )
    sim_port = _port("WARDEN_SIM_PORT", 8443)
    host_port = _port("WARDEN_HOST_PORT", 7071)
    busy = [
        p
        for p in (azurite_ports.blob, azurite_ports.queue, azurite_ports.table, sim_port, host_port)
        if procs.port_open(p)
    ]
    if busy:
        print(
            f"ports already in use: {busy} (another `make run`?); stop it or set WARDEN_*_PORT",
            file=sys.stderr,
        )
        return 1

    tls = LOCAL / "tls"
    ca = devca.ensure(tls)
    logs = LOCAL / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children: list[procs.Managed] = []
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with procs.stopping(children):
        children.append(procs.start_azurite(LOCAL / "azurite", azurite_ports, log=logs / "azurite.log"))
        children.append(procs.start_sim(sim_port, tls, log=logs / "m365sim.log"))
        sim_url = f"https://127.0.0.1:{sim_port}"
        world = demo.seed(sim_url, ca)
        settings = world.warden_settings(azurite_ports.connection_string)
        print(
            f"Azurite         http://127.0.0.1:{azurite_ports.table} (tables), :{azurite_ports.queue} (queues)"
        )
        print(f"Simulated cloud {sim_url}  (CA: {ca}; control API {sim_url}/_sim/…)")
        print(f"Demo tenant     {demo.DEMO_TENANT_ID} ({demo.DEMO_DOMAIN}), logs in {logs}")
        if args.no_host:
            path = write_local_settings(settings)
            print(f"Settings     {path} (for `func start`; rewritten at every start)")
        else:
            env = {**os.environ, **settings}
            children.append(procs.start_funchost(host_port, env=env, log=logs / "funchost.log"))
            print(
                f"Warden          http://127.0.0.1:{host_port}/api/health   (host log: {logs / 'funchost.log'})"
            )
        print("Ready. Ctrl-C stops everything.", flush=True)
        try:
            while not stop.wait(0.5):
                dead = [c.name for c in children if c.proc.poll() is not None]
                if dead:
                    print(f"{', '.join(dead)} stopped unexpectedly; see {logs}", file=sys.stderr)
                    return 1
        except KeyboardInterrupt:
            pass
        print("Stopping…", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make run``: the whole of Warden on this machine, on real emulators and the simulated cloud.

Starts Azurite (tables, queues, blobs), the simulated Microsoft cloud with the demo world, and the local
functions host with Warden's settings, prints the URLs, and stops every child on Ctrl-C.

The local world is one world across restarts: Azurite keeps its data in ``.local/azurite`` and the simulated cloud
its world (tenants, users, apps and credentials, consents, Key Vault secrets, delta history, clock) in
``.local/m365sim``; the demo world is made the first time and reused after (``tools.demo.seed`` is idempotent), with
the secrets remembered in ``.local/dev-clients.json``. ``make clean`` drops both worlds.

    python -m tools.stack [--no-host]

Both modes write ``local.settings.json`` (git-ignored, Core Tools' place for local settings) from the sample
with this run's values, and ``.local/dev-clients.json`` (git-ignored): the simulated cloud's URL and CA, the dev
admin and reader clients' credentials for ``make token`` (``tools.devtoken``), the demo tenant's app credentials to
connect it through the admin API, and Warden's local identity. Both files are readable by their owner only and
rewritten at every start. ``--no-host`` starts everything but the functions host, for machines where ``func start`` runs the
app instead. Secrets are never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from tools import demo, devca, procs
from tools.m365sim.backends.persistence import STATE_FILE

LOCAL = procs.ROOT / ".local"
DEV_CLIENTS = LOCAL / "dev-clients.json"
SIM_STATE = LOCAL / "m365sim"


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _write_private(target: Path, document: dict[str, Any]) -> Path:
    """``document`` as JSON, readable by its owner only from the first byte, replaced atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(document, indent=2) + "\n")
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    target.chmod(0o600)
    return target


def write_local_settings(settings: dict[str, str]) -> Path:
    """local.settings.json = the sample, with this run's values; keys a developer added are kept."""
    target = procs.ROOT / "local.settings.json"
    source = target if target.exists() else procs.ROOT / "local.settings.sample.json"
    document = json.loads(source.read_text())
    document.setdefault("Values", {}).update(settings)
    return _write_private(target, document)


def write_dev_clients(world: demo.DemoWorld, target: Path = DEV_CLIENTS) -> Path:
    """What ``make token`` and the README's walkthrough need to call the admin API of this run."""
    return _write_private(
        target,
        {
            "simUrl": world.sim_url,
            "caBundle": str(world.ca_bundle),
            "tenantId": demo.HOME_TENANT_ID,
            "scope": demo.API_SCOPE,
            "clients": {
                role: {"clientId": client_id, "clientSecret": world.dev_client_secrets[role]}
                for role, client_id in demo.ROLE_CLIENTS.items()
            },
            "demoTenant": {
                "tenantId": demo.DEMO_TENANT_ID,
                "clientId": demo.DEMO_CLIENT_ID,
                "clientSecret": world.demo_client_secret,
            },
            "localIdentity": {
                "tenantId": demo.HOME_TENANT_ID,
                "clientId": demo.LOCAL_IDENTITY_CLIENT_ID,
                "clientSecret": world.local_identity_secret,
            },
            "console": {
                "clientId": demo.API_CLIENT_ID,
                "clientSecret": world.console_client_secret,
                "people": demo.CONSOLE_PEOPLE,
            },
        },
    )


def remembered_secrets(source: Path = DEV_CLIENTS) -> demo.DemoSecrets | None:
    """The demo world's secrets as the last start wrote them, or None (no file, or one from before it held them
    all: the world's apps then get fresh secrets added)."""
    try:
        document = json.loads(source.read_text())
        return demo.DemoSecrets(
            local_identity=str(document["localIdentity"]["clientSecret"]),
            demo_client=str(document["demoTenant"]["clientSecret"]),
            dev_clients={role: str(document["clients"][role]["clientSecret"]) for role in demo.ROLE_CLIENTS},
            console_client=str(document["console"]["clientSecret"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
        kept = (SIM_STATE / STATE_FILE).exists()
        children.append(procs.start_sim(sim_port, tls, log=logs / "m365sim.log", state_dir=SIM_STATE))
        sim_url = f"https://127.0.0.1:{sim_port}"
        world = demo.seed(sim_url, ca, remembered=remembered_secrets())
        settings = world.warden_settings(azurite_ports.connection_string)
        settings["WARDEN_PUBLIC_URL"] = (
            f"http://127.0.0.1:{host_port}"  # the delegated consent's redirect back
        )
        print(
            f"Azurite         http://127.0.0.1:{azurite_ports.table} (tables), :{azurite_ports.queue} (queues)"
        )
        print(f"Simulated cloud {sim_url}  (CA: {ca}; control API {sim_url}/_sim/…)")
        print(f"Demo tenant     {demo.DEMO_TENANT_ID} ({demo.DEMO_DOMAIN}), logs in {logs}")
        print(
            f"Local world     {'kept from the last run' if kept else 'new'}: {SIM_STATE} and {LOCAL / 'azurite'}"
            " (`make clean` drops both)"
        )
        print(
            f"Settings        {write_local_settings(settings)} (for `func start`; rewritten at every start)"
        )
        print(f"Dev clients     {write_dev_clients(world)} (for `make token`; rewritten at every start)")
        if not args.no_host:
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

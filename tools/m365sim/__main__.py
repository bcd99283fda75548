"""``python -m tools.m365sim --host 127.0.0.1 --port 8443 [--tls-dir .local/tls] [--state-dir .local/m365sim]``

Serves the simulated Microsoft cloud over HTTPS with the development CA's server certificate (created on
first use by ``tools.devca.ensure``). Only loopback addresses are accepted: the simulator holds test
credentials and must never be reachable from another machine. With ``--state-dir`` the world (tenants, users,
groups, apps and their credentials, consents, Key Vault secrets, delta history, the clock) is read from that
folder at start and kept there (``tools.m365sim.backends.persistence``); without it, it lives in memory only.
"""

from __future__ import annotations

import argparse
import ipaddress
import ssl
import sys
from pathlib import Path

from aiohttp import web

from tools import devca
from tools.m365sim.backends.persistence import StateError, WorldFile
from tools.m365sim.backends.world import World
from tools.m365sim.http.app import create_app
from tools.m365sim.http.context import Keeping


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.m365sim", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument(
        "--tls-dir",
        type=Path,
        default=Path(".local/tls"),
        help="folder of the dev CA (ca.pem, server.pem, server-key.pem); created if missing",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="folder where the world is kept across restarts (default: in memory only)",
    )
    args = parser.parse_args(argv)
    if not _loopback(args.host):
        parser.error(f"--host must be a loopback address, not {args.host!r}")
    if not 0 < args.port < 65536:
        parser.error("--port must be between 1 and 65535")
    devca.ensure(args.tls_dir)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(args.tls_dir / devca.CERT_FILE, args.tls_dir / devca.KEY_FILE)
    world = World()
    keeping = Keeping()
    if args.state_dir is not None:
        keeping.file = WorldFile(args.state_dir)
        try:
            restored = keeping.file.load_into(world)
        except StateError as exc:
            print(f"m365sim: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)
        where = f"restored from {keeping.file.path}" if restored else f"new, kept in {keeping.file.path}"
        print(f"m365sim world {where}", file=sys.stderr, flush=True)
    print(f"m365sim listening on https://{args.host}:{args.port}", file=sys.stderr, flush=True)
    web.run_app(
        create_app(world, keeping),
        host=args.host,
        port=args.port,
        ssl_context=ctx,
        access_log=None,
        print=None,
        handle_signals=True,
    )


if __name__ == "__main__":
    main()

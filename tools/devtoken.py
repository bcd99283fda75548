"""``make token``: a bearer token for the admin API of the running ``make run``.

    python -m tools.devtoken [--role admin|reader]    # the token alone on stdout
    python -m tools.devtoken --connect-body           # the JSON body that connects the demo tenant
    python -m tools.devtoken --connect-body --delegated   # the same, for delegated consent

Reads ``.local/dev-clients.json``, which ``tools.stack`` writes at every start (the dev clients' secrets are
generated per run), and takes a client-credentials token for ``api://warden-local/.default`` from the
simulated cloud: the admin client's carries the app role ``Warden.Admin``, the reader's ``Warden.Reader``.
Only the token (or the body) reaches stdout, so ``curl -H "Authorization: Bearer $(make -s token)"`` works;
errors go to stderr and exit 1. ``--connect-body`` prints the demo tenant's client secret so that it can be
piped into ``curl -d @-`` instead of being typed into a shell or written into the README.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from tools import demo
from tools.stack import DEV_CLIENTS

HINT = "is `make run` running?"
DEMO_DIRECTORY_NAME = "Contoso"


class DevTokenError(Exception):
    pass


def load(path: Path = DEV_CLIENTS) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise DevTokenError(f"{path} does not exist; {HINT} (it writes the file at every start)") from None
    except (OSError, ValueError) as exc:
        raise DevTokenError(f"{path} cannot be read ({exc.__class__.__name__}); {HINT}") from None
    return document


def token(document: dict[str, Any], role: str) -> str:
    try:
        client = document["clients"][role]
        sim_url, ca_bundle = document["simUrl"], Path(document["caBundle"])
        client_id, secret = client["clientId"], client["clientSecret"]
    except (KeyError, TypeError):
        raise DevTokenError(f"{DEV_CLIENTS} has no {role} client; restart `make run` to rewrite it") from None
    try:
        return demo.admin_token(sim_url, ca_bundle, client_id, secret)
    except httpx.HTTPStatusError as exc:
        raise DevTokenError(
            f"the simulated cloud at {sim_url} refused the {role} client "
            f"(HTTP {exc.response.status_code} {_entra_error(exc.response)}); {HINT} "
            f"({DEV_CLIENTS} is from another run otherwise)"
        ) from None
    except (httpx.HTTPError, OSError) as exc:
        raise DevTokenError(
            f"no token from the simulated cloud at {sim_url} ({exc.__class__.__name__}); {HINT}"
        ) from None


def _entra_error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except ValueError:
        return ""


def connect_body(
    document: dict[str, Any], name: str = DEMO_DIRECTORY_NAME, *, delegated: bool = False
) -> dict[str, Any]:
    """``POST /api/directories``'s body for the demo tenant, with this run's client secret: app-only, or delegated
    (an administrator of the tenant then consents at the answer's ``authorizeUrl``)."""
    try:
        tenant = document["demoTenant"]
        auth = {
            "mode": "delegated" if delegated else "app",
            "clientId": tenant["clientId"],
            "clientSecret": tenant["clientSecret"],
        }
        return {"name": name, "tenantId": tenant["tenantId"], "auth": auth}
    except (KeyError, TypeError):
        raise DevTokenError(f"{DEV_CLIENTS} has no demoTenant; restart `make run` to rewrite it") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A bearer token for the local admin API (see `make token`)")
    parser.add_argument("--role", choices=sorted(demo.ROLE_CLIENTS), default="admin", help="default: admin")
    parser.add_argument(
        "--connect-body",
        action="store_true",
        help="print the JSON body of POST /api/directories that connects the demo tenant instead",
    )
    parser.add_argument("--name", default=DEMO_DIRECTORY_NAME, help="the directory's name in --connect-body")
    parser.add_argument(
        "--delegated", action="store_true", help="--connect-body for delegated consent instead of app-only"
    )
    args = parser.parse_args(argv)
    try:
        document = load()
        if args.connect_body:
            print(json.dumps(connect_body(document, args.name, delegated=args.delegated)))
        else:
            print(token(document, args.role))
    except DevTokenError as exc:
        print(f"devtoken: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

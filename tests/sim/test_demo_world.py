"""The demo world ``make run`` stands on is seeded idempotently: on a simulated cloud that kept its world, the
tenants stay as they are, a remembered secret is not added twice, and a secret lost with ``.local/dev-clients.json``
is replaced by a new one next to the old - which keeps working, as Warden may have stored it in Key Vault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msal  # type: ignore[import-untyped]

from tests.conftest import Sim, running_sim
from tests.sim.conftest import http_session
from tools import demo


def secret_counts(sim: Sim) -> dict[str, int]:
    tenants = sim.control("GET", "/_sim/tenants").json()["value"]
    return {c["clientId"]: c["secretCount"] for t in tenants for c in t["clients"]}


def demo_token(sim: Sim, secret: str) -> dict[str, Any]:
    app = msal.ConfidentialClientApplication(
        demo.DEMO_CLIENT_ID,
        client_credential=secret,
        authority=f"{sim.url}/{demo.DEMO_TENANT_ID}",
        http_client=http_session(sim.ca),
        instance_discovery=False,
        token_cache=msal.TokenCache(),
    )
    return dict(app.acquire_token_for_client(["https://graph.microsoft.com/.default"]))


def test_seeding_twice_keeps_the_world_and_its_secrets(tls_dir: Path, tmp_path: Path) -> None:
    """A simulator of its own: Key Vault's SDK caches each vault's challenge (its tenant) by URL for the whole
    process, so the demo's vault must not share the URL of the session's simulator."""
    with running_sim(tls_dir, tmp_path) as sim:
        check_seeding_twice(sim)


def check_seeding_twice(clean_sim: Sim) -> None:
    first = demo.seed(clean_sim.url, Path(clean_sim.ca), seed_users=3)
    counts = secret_counts(clean_sim)
    remembered = demo.DemoSecrets(
        first.local_identity_secret,
        first.demo_client_secret,
        first.dev_client_secrets,
        first.console_client_secret,
    )
    again = demo.seed(clean_sim.url, Path(clean_sim.ca), seed_users=3, remembered=remembered)
    assert again.demo_client_secret == first.demo_client_secret
    assert secret_counts(clean_sim) == counts  # nothing added
    tenants = {t["tenantId"]: t for t in clean_sim.control("GET", "/_sim/tenants").json()["value"]}
    assert tenants[demo.DEMO_TENANT_ID]["userCount"] == 3  # not seeded twice

    forgotten = demo.seed(clean_sim.url, Path(clean_sim.ca), seed_users=3)  # dev-clients.json lost
    assert forgotten.demo_client_secret != first.demo_client_secret
    assert secret_counts(clean_sim)[demo.DEMO_CLIENT_ID] == 2
    assert "access_token" in demo_token(clean_sim, first.demo_client_secret)  # the old one still works
    assert "access_token" in demo_token(clean_sim, forgotten.demo_client_secret)
    assert forgotten.token("admin")  # the dev clients' new secrets work too

"""Session fixtures shared by every test layer: the dev CA, Azurite and the simulated Microsoft cloud.

Each test session starts its own Azurite and simulator on free loopback ports (never the ones `make run`
uses), in temporary folders, and stops them at the end.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tools import demo, devca, procs

SECRETS: set[str] = set()
"""Every secret the suite hands to Warden or the simulated cloud; a last test scans storage and logs for them."""


def remember_secret(value: str) -> str:
    SECRETS.add(value)
    return value


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``last`` run after every other test of the session (they inspect what the suite left)."""
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session")
def tls_dir() -> Path:
    out = procs.ROOT / ".local" / "tls"
    devca.ensure(out)
    return out


@dataclass
class Azurite:
    ports: procs.AzuritePorts

    @property
    def connection_string(self) -> str:
        return self.ports.connection_string


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    ports = procs.AzuritePorts(procs.free_port(), procs.free_port(), procs.free_port())
    location = tmp_path_factory.mktemp("azurite")
    child = procs.start_azurite(location, ports, log=location / "azurite.log")
    try:
        yield Azurite(ports)
    finally:
        child.stop()


@dataclass
class Sim:
    url: str
    ca: str
    client: httpx.Client

    def control(self, method: str, path: str, json: Any = None) -> httpx.Response:
        return self.client.request(method, f"{self.url}{path}", json=json)

    def reset(self) -> None:
        self.control("POST", "/_sim/reset").raise_for_status()

    def requests(self) -> list[dict[str, Any]]:
        response = self.control("GET", "/_sim/requests")
        response.raise_for_status()
        value: list[dict[str, Any]] = response.json()["value"]
        return value


@contextmanager
def running_sim(tls_dir: Path, logdir: Path) -> Iterator[Sim]:
    """A simulator process of its own on a free port, with a control client; stopped on exit."""
    port = procs.free_port()
    child = procs.start_sim(port, tls_dir, log=logdir / "m365sim.log")
    ca = str(tls_dir / devca.CA_FILE)
    client = httpx.Client(verify=ssl.create_default_context(cafile=ca), timeout=30)
    try:
        yield Sim(url=f"https://127.0.0.1:{port}", ca=ca, client=client)
    finally:
        client.close()
        child.stop()


@pytest.fixture(scope="session")
def sim(tls_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running_sim(tls_dir, tmp_path_factory.mktemp("sim")) as running:
        yield running


@dataclass
class DemoStack:
    """A simulated cloud of its own, seeded with the demo world once, plus Warden's settings for it."""

    sim: Sim
    world: demo.DemoWorld
    settings: dict[str, str]

    def set_faults(self, **faults: Any) -> None:
        self.sim.control("PUT", "/_sim/faults", json=faults).raise_for_status()

    def clear_faults(self) -> None:
        self.set_faults(
            latencyMs=0,
            replicationLagMs=0,
            errorRate=0,
            errorKinds=["500"],
            resourceUnitsPer10s=None,
            rules=[],
        )


@pytest.fixture(scope="session")
def demo_stack(
    tls_dir: Path, azurite: Azurite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DemoStack]:
    """Not shared with the simulator's own tests, which reset their simulator at will."""
    with running_sim(tls_dir, tmp_path_factory.mktemp("demo-sim")) as running:
        world = demo.seed(running.url, Path(running.ca))
        for secret in (
            world.local_identity_secret,
            world.demo_client_secret,
            world.console_client_secret,
            *world.dev_client_secrets.values(),
        ):
            remember_secret(secret)
        yield DemoStack(running, world, world.warden_settings(azurite.connection_string))

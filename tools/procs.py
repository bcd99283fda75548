"""Start and stop the local stack's processes: Azurite, the simulated Microsoft cloud, the functions host.

Used by ``tools.stack`` (``make run``), the test fixtures and the benchmarks, so that every caller starts
them the same way: loopback addresses only, bounded waits, and every child stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tools.funchost.settings import SHUTDOWN_GRACE

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
# Azurite's well-known development account (public, documented by Microsoft; not a secret):
# https://learn.microsoft.com/en-us/azure/storage/common/storage-use-azurite#http-connection-strings
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    ready: Callable[[], bool], *, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s")


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


DEFAULT_GRACE = 10.0
"""Seconds a child gets to exit after SIGTERM before it is killed."""
HOST_GRACE = SHUTDOWN_GRACE + 5.0
"""The functions host's: longer than its own shutdown grace (running invocations finish, or their queue messages
are made visible again), so SIGKILL never cuts that short."""


@dataclass
class Managed:
    """A child process started in its own process group, stopped with SIGTERM then SIGKILL."""

    name: str
    proc: subprocess.Popen[bytes]
    grace: float = DEFAULT_GRACE

    def stop(self, timeout: float | None = None) -> None:
        """SIGTERM, then SIGKILL if the child has not exited after ``timeout`` (default: its grace) seconds."""
        if self.proc.poll() is not None:
            return
        timeout = self.grace if timeout is None else timeout
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=timeout)


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = ROOT,
    grace: float = DEFAULT_GRACE,
) -> Managed:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        start_new_session=True,
    )
    return Managed(name, proc, grace)


@dataclass(frozen=True)
class AzuritePorts:
    blob: int
    queue: int
    table: int

    @property
    def connection_string(self) -> str:
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={base}:{self.blob}/{AZURITE_ACCOUNT};"
            f"QueueEndpoint={base}:{self.queue}/{AZURITE_ACCOUNT};"
            f"TableEndpoint={base}:{self.table}/{AZURITE_ACCOUNT};"
        )


def start_azurite(location: Path, ports: AzuritePorts, *, log: Path | None = None) -> Managed:
    if not AZURITE_BIN.exists():
        raise RuntimeError(f"{AZURITE_BIN} is missing: run `npm ci` (make setup) first")
    location.mkdir(parents=True, exist_ok=True)
    argv = [
        str(AZURITE_BIN),
        "--silent",
        "--disableTelemetry",
        "--skipApiVersionCheck",
        "--loose",
        "--location",
        str(location),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(ports.blob),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(ports.queue),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(ports.table),
    ]
    ready = lambda: all(port_open(p) for p in (ports.blob, ports.queue, ports.table))  # noqa: E731
    return _spawn_ready("Azurite", argv, ready, timeout=30, log=log)


def _answers_200(url: str, verify: ssl.SSLContext | bool = True) -> Callable[[], bool]:
    import httpx

    def ready() -> bool:
        try:
            return httpx.get(url, verify=verify, timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    return ready


def _spawn_ready(
    name: str,
    argv: Sequence[str],
    ready: Callable[[], bool],
    *,
    timeout: float,
    log: Path | None,
    env: dict[str, str] | None = None,
    grace: float = DEFAULT_GRACE,
) -> Managed:
    """Start a child and wait until ``ready``; a child that never gets ready is stopped, not leaked."""
    child = spawn(name, argv, log=log, env=env, grace=grace)
    try:
        wait_until(ready, timeout=timeout, what=name, proc=child.proc)
    except Exception:
        child.stop()
        raise
    return child


def start_sim(port: int, tls_dir: Path, *, log: Path | None = None, state_dir: Path | None = None) -> Managed:
    argv = [sys.executable, "-m", "tools.m365sim", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--tls-dir", str(tls_dir)] + (["--state-dir", str(state_dir)] if state_dir else [])
    ca = ssl.create_default_context(cafile=str(tls_dir / "ca.pem"))
    ready = _answers_200(f"https://127.0.0.1:{port}/_sim/health", ca)
    return _spawn_ready("simulated cloud", argv, ready, timeout=30, log=log)


def start_funchost(
    port: int, *, env: dict[str, str], log: Path | None = None, script_root: Path = ROOT
) -> Managed:
    argv = [sys.executable, "-m", "tools.funchost", "--script-root", str(script_root)]
    argv += ["--host", "127.0.0.1", "--port", str(port)]
    ready = _answers_200(f"http://127.0.0.1:{port}/admin/host/status")
    return _spawn_ready("functions host", argv, ready, timeout=60, log=log, env=env, grace=HOST_GRACE)


@contextlib.contextmanager
def stopping(children: list[Managed]) -> Iterator[list[Managed]]:
    try:
        yield children
    finally:
        for child in reversed(children):
            child.stop()

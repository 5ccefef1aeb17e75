"""A real `inlet serve` for the tests: the binary from INLET_BIN (default
<repo>/target/debug/inlet), on free 127.0.0.1 ports, its store a temporary directory. Every
wait is bounded, and the fixture stops the server itself (terminate, then kill).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

import inlet

REPO = Path(__file__).resolve().parents[3]
INLET_BIN = os.environ.get("INLET_BIN", str(REPO / "target" / "debug" / "inlet"))
# How long a starting server may take to answer (a debug build opening its store).
START_TIMEOUT_SECONDS = 60.0
# How long a stopping server may take before it is killed.
STOP_TIMEOUT_SECONDS = 10.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `inlet serve` process on fixed ports and a store directory; restartable on both."""

    def __init__(self, store: Path, log: Path, env: dict[str, str] | None = None, binary: str | None = None,
                 tls: "inlet.TLS | None" = None, token: str | None = None):
        # bench.py passes its --inlet here: INLET_BIN is read once, at import.
        self.binary = binary or INLET_BIN
        if not os.path.exists(self.binary):
            raise RuntimeError(f"no inlet binary at {self.binary}: build it (cargo build -p inlet) or set INLET_BIN")
        self.store = store
        self.log = log
        self.port = free_port()
        self.http_port = free_port()
        self.env = {**os.environ, "INLET_LAKE_SCAN_INTERVAL": "200ms", **(env or {})}
        self.process: subprocess.Popen | None = None
        # How this fixture reaches a server started with INLET_TLS_* or INLET_AUTH_* settings
        # in `env`.
        self.tls = tls
        self.token = token

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        assert self.process is None, "already running"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    self.binary, "serve", "--store", str(self.store),
                    "--listen", f"127.0.0.1:{self.port}",
                    "--http-listen", f"127.0.0.1:{self.http_port}",
                ],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        with inlet.connect(self.url, tls=self.tls, token=self.token) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"inlet serve exited with {self.process.returncode}:\n{self.log_tail()}")
                try:
                    client.list_databases()
                    return
                except inlet.Unavailable:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"inlet serve did not answer within {START_TIMEOUT_SECONDS}s:\n{self.log_tail()}")
                    time.sleep(0.1)

    def stop(self) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_SECONDS)

    def kill(self) -> None:
        """Stops the server abruptly (SIGKILL), as a crash would."""
        if self.process is None:
            return
        process, self.process = self.process, None
        process.kill()
        process.wait(STOP_TIMEOUT_SECONDS)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One server for the session; tests keep apart by using their own database."""
    root = tmp_path_factory.mktemp("inlet")
    srv = Server(root / "store", root / "serve.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def own_server(tmp_path):
    """A server of this test alone, which it may stop, kill and restart."""
    srv = Server(tmp_path / "store", tmp_path / "serve.log")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def client(server):
    with inlet.connect(server.url, http_url=server.http_url) as c:
        yield c


@pytest.fixture
def db(client):
    """A fresh database name for this test."""
    return f"t{uuid.uuid4().hex[:10]}"

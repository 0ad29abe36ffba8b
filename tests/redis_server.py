"""A real redis-server for the tests, started on a free loopback port (pytest plugin).

Missing server: in CI (``CI`` set) every Redis test fails; elsewhere they are skipped with the
command that installs it. Nothing about Redis itself is mocked.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
import redis

INSTALL_HINT = "install it with: apt-get install -y redis-server"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_ping(process: subprocess.Popen[bytes], port: int) -> None:
    """Wait until the redis-server ``process`` answers PING on ``port``; RuntimeError if it exits or
    stays silent for 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as connection:
                connection.sendall(b"PING\r\n")
                if connection.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}")
        time.sleep(0.02)  # waiting for a process to accept connections, bounded by the deadline
    raise RuntimeError("redis-server did not answer PING within 10 s")


class RedisServer:
    """One redis-server process in its own directory, restartable.

    With ``durable`` (the default) every write is appended to a file and synced before the server
    answers (what a restart must survive); without it nothing is written to disk, and a script
    call costs a tenth of the time.
    """

    def __init__(self, directory: Path, *, durable: bool = True) -> None:
        self.directory = directory
        self.durable = durable
        self.port = _free_port()
        self.process: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(f"redis-server not found; {INSTALL_HINT}")
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                *(("--appendonly", "yes", "--appendfsync", "always") if self.durable else ("--appendonly", "no")),
                "--save",
                "",
                "--protected-mode",
                "no",
                "--daemonize",
                "no",
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_ping(self.process, self.port)

    def kill(self) -> None:
        """SIGKILL the server (what an outage looks like); the append-only file stays."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def client(self, **options: Any) -> redis.Redis:
        options.setdefault("socket_timeout", 1.0)
        options.setdefault("socket_connect_timeout", 1.0)
        return redis.Redis.from_url(self.url, **options)


def _require_server() -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail(f"redis-server is missing in CI; {INSTALL_HINT}")
        pytest.skip(f"redis-server is not installed; {INSTALL_HINT}")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server shared by the session; tests use their own namespaces."""
    _require_server()
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def memory_redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server shared by the session that keeps nothing on disk: for tests of rules, not of restarts."""
    _require_server()
    server = RedisServer(tmp_path_factory.mktemp("redis-memory"), durable=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may kill and restart."""
    _require_server()
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[Any]:
    """A client of the shared server, with the database flushed before the test."""
    client = redis_server.client()
    client.flushdb()
    yield client
    client.close()

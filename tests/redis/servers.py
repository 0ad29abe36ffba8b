"""redis-server variants for tests/redis: one without persistence, one whose wall clock the test steps.

They extend tests/redis_server.py's RedisServer (same port handling, client() and kill()), changing
only the command line and the environment the server starts with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.redis_server import INSTALL_HINT, RedisServer, wait_for_ping

SOCKET_TIMEOUT = 0.3
"""Every client of these tests: a dead or hung server costs this, not redis-py's default retries (10 s)."""


def quick_client(server: RedisServer, **options: Any) -> redis.Redis:
    """A client with 0.3 s socket timeouts and one immediate retry."""
    options.setdefault("socket_timeout", SOCKET_TIMEOUT)
    options.setdefault("socket_connect_timeout", SOCKET_TIMEOUT)
    options.setdefault("retry", Retry(NoBackoff(), 1))
    return server.client(**options)


class Server(RedisServer):
    """A RedisServer with a choice of persistence and extra environment variables (LD_PRELOAD)."""

    def __init__(self, directory: Path, *, persistence: bool = True, env: Optional[Dict[str, str]] = None) -> None:
        super().__init__(directory)
        self.persistence = persistence
        self.env = env or {}

    def command(self, executable: str) -> List[str]:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistence else ["--appendonly", "no"]
        return [
            executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", str(self.directory),
            *persistence,
            "--save", "",
            "--protected-mode", "no",
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(f"redis-server not found; {INSTALL_HINT}")
        self.process = subprocess.Popen(
            self.command(executable),
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_ping(self.process, self.port)


class SteppedServer(Server):
    """A redis-server whose wall clock (TIME, expiry) runs ``offset`` seconds from the host's.

    The clock shim (clock_shim.c, preloaded) reads the offset file on every clock call, so
    :meth:`step` takes effect at once, for the running server; its monotonic clock is untouched.
    """

    def __init__(self, directory: Path, shim: Path) -> None:
        self.offset_file = directory / "clock-offset-us"
        super().__init__(
            directory, persistence=False, env={"LD_PRELOAD": str(shim), "CLOCK_SHIM_OFFSET_FILE": str(self.offset_file)}
        )
        self.offset_us = 0
        self._write_offset()

    def _write_offset(self) -> None:
        temporary = self.offset_file.with_suffix(".tmp")
        temporary.write_text(f"{self.offset_us}\n")
        os.replace(temporary, self.offset_file)  # the shim never reads a half-written number

    def step(self, seconds: float) -> None:
        """Step the server's wall clock by ``seconds`` (either way), as NTP or an operator would."""
        self.offset_us += round(seconds * 1_000_000)
        self._write_offset()

    def server_time(self) -> float:
        """The server's wall clock (Redis TIME), in seconds."""
        with quick_client(self) as client:
            seconds, micros = client.time()
        return float(seconds + micros / 1_000_000)

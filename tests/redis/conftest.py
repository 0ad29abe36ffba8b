"""Fixtures of tests/redis: servers the tests may step, kill and restart; desks sharing a namespace.

Every client has 0.3 s socket timeouts and one immediate retry, and every store re-reads every
0.2 s, so that a test waits fractions of a second for what production waits a second for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, List, Set, Tuple

import pytest

from circuit_breakers import TradingBreakerConfig, TradingCircuitBreakers
from circuit_breakers.redis import RedisStore
from tests.redis.servers import Server, SteppedServer, quick_client
from tests.redis_server import RedisServer, _require_server

from ..providers import FlatPortfolio

KEY = "desk-reset-key"
RESYNC = 0.2  # the stores' resync_seconds

Desk = Callable[..., TradingCircuitBreakers]


def wait_until(condition: Callable[[], object], seconds: float = 5.0) -> float:
    """Seconds until ``condition()`` is true; fails after ``seconds``. For another thread's or process's effect."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, f"condition not met within {seconds}s"
        time.sleep(0.01)  # polling a cross-thread effect, bounded by the deadline
    return time.monotonic() - start


def sleep_until(moment: float) -> None:
    """Let real time pass until monotonic ``moment``: what is under test is a timeout on real time."""
    time.sleep(max(0.0, moment - time.monotonic()))


@pytest.fixture(scope="session")
def clock_shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """clock_shim.c compiled to a shared object (gcc: skipped when missing, failed in CI)."""
    _require_server()
    compiler = shutil.which("gcc")
    if compiler is None:
        if os.environ.get("CI"):
            pytest.fail("gcc is missing in CI; install it with: apt-get install -y gcc")
        pytest.skip("gcc is not installed (needed for the clock shim); install it with: apt-get install -y gcc")
    target = tmp_path_factory.mktemp("clock-shim") / "clock_shim.so"
    source = Path(__file__).with_name("clock_shim.c")
    subprocess.run(
        [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(target), str(source)],
        check=True,
        capture_output=True,
    )
    return target


@pytest.fixture
def stepped_server(clock_shim: Path, tmp_path: Path) -> Iterator[SteppedServer]:
    """A redis-server of the test's own whose wall clock the test steps with ``step(seconds)``."""
    server = SteppedServer(tmp_path, clock_shim)
    server.start()
    yield server
    server.kill()  # nothing on it is kept: SIGKILL is 0.1 s quicker than a shutdown


@pytest.fixture
def volatile_server(tmp_path: Path) -> Iterator[Server]:
    """A redis-server of the test's own without persistence: a restart loses everything."""
    _require_server()
    server = Server(tmp_path, persistence=False)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def desk() -> Iterator[Desk]:
    """``desk(server, namespace, **kwargs)``: a TradingCircuitBreakers on its own client, closed at the end.

    Each one stands for a process of its own (its own client, store and listener). The first desk
    of a namespace stores the reset key KEY; later ones are built without a key unless given one
    and bind the stored hash, so they reset with KEY too (this spares two scrypt hashes, 0.15 s, per
    desk). ``config``: 10 orders a minute and 100 an hour unless given.
    """
    made: List[TradingCircuitBreakers] = []
    keyed: Set[Tuple[int, str]] = set()

    def build(server: RedisServer, namespace: str, **kwargs: Any) -> TradingCircuitBreakers:
        if (server.port, namespace) not in keyed:
            keyed.add((server.port, namespace))
            kwargs.setdefault("reset_key", KEY)
        config = kwargs.pop("config", TradingBreakerConfig(max_orders_per_minute=10, max_orders_per_hour=100))
        resync = kwargs.pop("resync_seconds", RESYNC)
        store = RedisStore(quick_client(server), namespace, resync_seconds=resync)
        breakers = TradingCircuitBreakers(kwargs.pop("provider", FlatPortfolio()), config, store=store, **kwargs)
        made.append(breakers)
        return breakers

    yield build
    with ThreadPoolExecutor(max(len(made), 1)) as pool:  # each close waits up to 0.2 s for its listener
        list(pool.map(TradingCircuitBreakers.close, made))

"""The namespace clock against a real redis-server whose wall clock the tests step (clock_shim.c).

What is promised (circuit_breakers/redis/clock.py, scripts/clock.lua): a step of the server's wall
clock, either way, moves namespace time by at most ``clock_tolerance_seconds`` (1 s), so a shared
rate limit never admits more than its limit and an open timeout is not shortened by more than 1 s;
namespace time never goes backwards. The known residual limit: a client that starts while the
clock is stepped, before any other client has noticed the step, takes the step (it has no estimate
of its own to compare with).

Open timeouts and rate windows are on real time, so some tests let real time pass (2 s at most).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from circuit_breakers import (
    CircuitBreakerConfig,
    CircuitState,
    Limit,
    RedisCircuitBreaker,
    RedisRateLimiter,
    RedisStore,
)
from tests.redis.conftest import Desk, sleep_until, wait_until
from tests.redis.servers import SteppedServer, quick_client

ROOT = Path(__file__).resolve().parents[2]
CLOCK_LOGGER = "circuit_breakers.redis.clock"
OPEN, HALF_OPEN = CircuitState.OPEN, CircuitState.HALF_OPEN


def store_on(server: SteppedServer, namespace: str) -> RedisStore:
    """A store on its own client: one process's view of the namespace."""
    return RedisStore(quick_client(server), namespace, resync_seconds=0.2)


def breaker_on(store: RedisStore, open_timeout: float) -> RedisCircuitBreaker:
    config = CircuitBreakerConfig(failure_threshold=1, open_timeout_seconds=open_timeout, exponential_backoff=False)
    return RedisCircuitBreaker("broker", config=config, store=store)


def steps_seen(caplog: pytest.LogCaptureFixture) -> int:
    """Server clock steps this process noticed: each logs one warning (circuit_breakers.redis.clock)."""
    return sum(1 for record in caplog.records if record.name == CLOCK_LOGGER and "disagrees" in record.getMessage())


def namespace_time(server: SteppedServer, namespace: str) -> float:
    """``{namespace}:clock`` ``last``: the latest namespace time handed out, in seconds."""
    with quick_client(server) as client:
        return int(client.hget(f"{namespace}:clock", "last")) / 1_000_000


class FreshProcess:
    """A client process started ahead (Python takes a second to start) that builds its client, store
    and breaker only when :meth:`read` is called: from the namespace's point of view, a new process."""

    def __init__(self, server: SteppedServer, namespace: str, open_timeout: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.redis.fresh_client", server.url, namespace, "broker", str(open_timeout)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert json.loads(self.process.stdout.readline()) == {"ready": True}

    def read(self) -> Dict[str, Any]:
        """Let it connect and read the breaker once; what it saw."""
        out, _ = self.process.communicate("go\n", timeout=30)
        assert self.process.returncode == 0, out
        return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


# --- the shim itself ------------------------------------------------------------------------------


def test_shim_steps_the_wall_clocks_and_leaves_the_monotonic_one(clock_shim: Path, tmp_path: Path) -> None:
    offset = tmp_path / "offset"
    offset.write_text("3600000000\n")
    probe = "import json, time; print(json.dumps([time.time(), time.clock_gettime(5), time.monotonic()]))"
    env = {**os.environ, "LD_PRELOAD": str(clock_shim), "CLOCK_SHIM_OFFSET_FILE": str(offset)}
    wall, mono = time.time(), time.monotonic()
    shown = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True, timeout=30
        ).stdout
    )
    after = time.monotonic()
    assert 3599 < shown[0] - wall < 3600 + (after - mono) + 0.1
    assert 3599 < shown[1] - wall < 3600 + (after - mono) + 0.1  # 5: CLOCK_REALTIME_COARSE (Linux)
    assert mono <= shown[2] <= after  # CLOCK_MONOTONIC is system-wide: the child's is the host's


def test_server_time_follows_the_offset_file_at_once(stepped_server: SteppedServer) -> None:
    assert abs(stepped_server.server_time() - time.time()) < 0.5
    stepped_server.step(61)
    assert 60.5 < stepped_server.server_time() - time.time() < 61.5
    stepped_server.step(-122)
    assert -61.5 < stepped_server.server_time() - time.time() < -60.5


# --- (a) rate limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("step", [61.0, -61.0])
def test_shared_rate_limit_admits_its_limit_once_across_a_server_clock_step(
    stepped_server: SteppedServer, step: float, caplog: pytest.LogCaptureFixture
) -> None:
    """Two processes share 10 permits a minute; the server clock steps by a minute and more between
    their 5th and 6th attempts. Without the namespace clock +61 s would expire the first 5 permits
    (15 admitted); the limit holds: exactly 10 of 20 within the real minute."""
    caplog.set_level(logging.WARNING, logger=CLOCK_LOGGER)
    stores = [store_on(stepped_server, "rate") for _ in range(2)]
    limiters = [RedisRateLimiter(store, Limit(10, 60), name="orders") for store in stores]
    start = time.monotonic()
    before = [limiters[i % 2].try_acquire() for i in range(5)]
    stepped_server.step(step)
    after = [limiters[i % 2].try_acquire() for i in range(15)]
    assert time.monotonic() - start < 60
    assert before == [True] * 5
    assert after == [True] * 5 + [False] * 10
    assert steps_seen(caplog) == 1  # the first of the two to call moved the offset
    assert 55.0 < limiters[0].retry_after() <= 60.0  # free again a real minute after the first permit


@pytest.mark.parametrize("step", [61.0, -61.0])
def test_record_order_admits_ten_a_minute_across_a_server_clock_step(
    stepped_server: SteppedServer, desk: Desk, step: float
) -> None:
    alpha, beta = desk(stepped_server, "orders"), desk(stepped_server, "orders")
    start = time.monotonic()
    before = [(alpha, beta)[i % 2].record_order() for i in range(5)]
    stepped_server.step(step)
    after = [(alpha, beta)[i % 2].record_order() for i in range(15)]
    assert time.monotonic() - start < 60
    assert before + after == [True] * 10 + [False] * 10
    assert alpha.get_status().orders_last_minute == 10
    assert alpha.can_trade()  # a throttle, not a halt


def test_rate_limit_admits_again_one_real_period_after_a_backward_step(stepped_server: SteppedServer) -> None:
    """Liveness after -61 s: permits stamped before the step must not count for 61 s more. The
    period is 2 s (a real minute is too long to wait for; the step is 30 periods either way)."""
    limiter = RedisRateLimiter(store_on(stepped_server, "back"), Limit(10, 2.0), name="orders")
    assert [limiter.try_acquire() for _ in range(12)] == [True] * 10 + [False] * 2
    filled = time.monotonic()
    stepped_server.step(-61)
    assert not limiter.try_acquire()
    assert limiter.retry_after() <= 2.0
    sleep_until(filled + 2.2)
    assert [limiter.try_acquire() for _ in range(12)] == [True] * 10 + [False] * 2


# --- (b) open timeouts ----------------------------------------------------------------------------


def test_forward_step_does_not_shorten_an_open_timeout(
    stepped_server: SteppedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """+61 s against a 2 s open timeout: still open after 1 s of real time, for this process and for
    a process that starts after the step (the offset is in the namespace); half-open after 2 s."""
    caplog.set_level(logging.WARNING, logger=CLOCK_LOGGER)
    store = store_on(stepped_server, "cb")
    breaker = breaker_on(store, 2.0)
    fresh = FreshProcess(stepped_server, "cb", 2.0)
    breaker.record_failure("broker down")
    opened = time.monotonic()
    assert breaker.state is OPEN
    stepped_server.step(61)
    assert breaker.state is OPEN
    assert steps_seen(caplog) == 1
    assert breaker.get_status()["seconds_until_retry"] > 2.0 - (time.monotonic() - opened) - 0.1  # not -59
    seen = fresh.read()
    assert seen["state"] == "open"
    assert seen["steps_seen"] == 0  # it found the offset already moved
    sleep_until(opened + 1.0)
    assert breaker.state is OPEN
    assert not breaker.allow()
    wait_until(lambda: breaker.state is HALF_OPEN, seconds=3.0)  # the real timeout is over by 2 s


def test_backward_step_does_not_stretch_an_open_timeout(stepped_server: SteppedServer) -> None:
    """-61 s: a process that starts after the step, alone, sees namespace time held at its last
    value (never backwards); the breaker half-opens after the real 2 s, not 63 s."""
    store = store_on(stepped_server, "cb")
    breaker = breaker_on(store, 2.0)
    fresh = FreshProcess(stepped_server, "cb", 2.0)
    breaker.record_failure("broker down")
    opened = time.monotonic()
    stepped_server.step(-61)
    assert fresh.read()["state"] == "open"
    assert breaker.state is OPEN
    assert breaker.get_status()["seconds_until_retry"] <= 2.0  # not 63
    wait_until(lambda: breaker.state is HALF_OPEN, seconds=3.0)
    assert time.monotonic() - opened >= 1.0


def test_residual_limit_a_process_starting_alone_after_a_step_takes_it(stepped_server: SteppedServer) -> None:
    """The documented limit: after +61 s, a process that starts before any other has called has no
    estimate to hold the server's clock against, so namespace time jumps with it and a 30 s open
    timeout is over at once, for every process (namespace time never goes back)."""
    store = store_on(stepped_server, "cb")
    breaker = breaker_on(store, 30.0)
    fresh = FreshProcess(stepped_server, "cb", 30.0)
    breaker.record_failure("broker down")
    opened, opened_at = time.monotonic(), namespace_time(stepped_server, "cb")
    stepped_server.step(61)
    seen = fresh.read()
    assert seen["state"] == "half_open"
    assert seen["steps_seen"] == 0  # nothing to notice it with
    assert 61.0 <= seen["namespace_time"] / 1_000_000 - opened_at < 61.0 + time.monotonic() - opened
    assert breaker.state is HALF_OPEN  # the step now holds for the process that was there before


# --- (c) namespace time is monotonic ----------------------------------------------------------------


def test_namespace_time_never_goes_backwards_across_steps(stepped_server: SteppedServer) -> None:
    """Steps both ways, with old and new clients calling in turn (a new one also alone after a
    step); ``{ns}:clock`` ``last`` never decreases. While a client that saw the step calls first,
    namespace time moves by no more than real time plus the tolerance between two calls."""
    namespace = "mono"
    old = RedisRateLimiter(store_on(stepped_server, namespace), Limit(1000, 60), name="r")
    seen: List[float] = []

    def call(limiter: RedisRateLimiter) -> None:
        limiter.try_acquire()
        seen.append(namespace_time(stepped_server, namespace))

    call(old)
    for step in (61.0, -61.0, -61.0, 3600.0, -7200.0, 0.5, -0.5):
        real = time.monotonic()
        stepped_server.step(step)
        call(old)  # a client with an estimate notices first
        assert seen[-1] - seen[-2] <= time.monotonic() - real + 1.0, (step, seen)
        call(RedisRateLimiter(store_on(stepped_server, namespace), Limit(1000, 60), name="r"))
        call(old)
    stepped_server.step(-61.0)  # a new client alone after a backward step: held, not moved back
    call(RedisRateLimiter(store_on(stepped_server, namespace), Limit(1000, 60), name="r"))
    call(old)
    assert seen == sorted(seen), seen


# --- (d) steps within the tolerance -----------------------------------------------------------------


def test_a_step_within_the_tolerance_passes_and_shortens_a_timeout_by_at_most_the_tolerance(
    stepped_server: SteppedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A step of s <= clock_tolerance_seconds (1 s) cannot be told from the clocks' disagreement: it
    is not taken as a step (no step is logged) and namespace time moves by s with the server's
    clock. The bound: an open timeout ends at most s (<= 1 s) early; a rate window likewise. Here
    s = 0.6 s against a 2.5 s open timeout: it ends 0.6 s early, and is open at 1.0 s of real time."""
    caplog.set_level(logging.WARNING, logger=CLOCK_LOGGER)
    store = store_on(stepped_server, "small")
    breaker = breaker_on(store, 2.5)
    breaker.record_failure("broker down")
    opened, opened_at = time.monotonic(), namespace_time(stepped_server, "small")
    stepped_server.step(0.6)
    status = breaker.get_status()
    elapsed = time.monotonic() - opened
    assert status["state"] == "open"
    assert steps_seen(caplog) == 0
    assert 2.5 - 0.7 - elapsed < status["seconds_until_retry"] < 2.5 - 0.5  # the step passed whole
    assert 0.5 < namespace_time(stepped_server, "small") - opened_at - elapsed < 0.7 + elapsed
    sleep_until(opened + 1.0)
    assert breaker.state is OPEN
    wait_until(lambda: breaker.state is HALF_OPEN, seconds=3.0)


def test_repeated_small_steps_cannot_add_up_past_the_limit(
    stepped_server: SteppedServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Promise: the rate limit never admits more than its limit, whatever the server clock does. A
    server clock stepped forward 0.8 s at a time (below the 1 s tolerance) with a call between the
    steps (any client's look at the limiter) moves namespace time 64 s ahead in well under a second."""
    caplog.set_level(logging.WARNING, logger=CLOCK_LOGGER)
    store = store_on(stepped_server, "drift")
    limiter = RedisRateLimiter(store, Limit(10, 60), name="orders")
    start = time.monotonic()
    first = [limiter.try_acquire() for _ in range(10)]
    for _ in range(80):
        stepped_server.step(0.8)
        limiter.retry_after()  # a look: one script call, nothing recorded
    second = [limiter.try_acquire() for _ in range(10)]
    assert time.monotonic() - start < 60
    assert first == [True] * 10
    assert steps_seen(caplog) >= 1  # no single step was large enough to notice, but their sum was
    assert second == [False] * 10

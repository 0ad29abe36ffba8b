"""Separate processes sharing one RedisCircuitBreaker: a trip in one opens it for all, trials are counted globally.

Each process runs :func:`worker` (``python -c``), reports one JSON line per phase on stdout, and
counts its trial admissions in Redis too, so the count is checked twice.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, List, Sequence

import redis

from circuit_breakers import CircuitBreakerConfig, CircuitOpenException, CircuitState
from circuit_breakers.redis import RedisCircuitBreaker, RedisStore
from tests.paths import ROOT

if TYPE_CHECKING:
    from tests.redis_server import RedisServer

NAMESPACE = "procs"
THREADS = 4  # trial attempts per process
PROCESSES = 3
CONFIG = CircuitBreakerConfig(
    failure_threshold=3,
    open_timeout_seconds=600,  # ended by the test once every process has seen the breaker open
    half_open_max_calls=2,
    success_threshold=2,
    half_open_timeout_seconds=20,
)


class BrokerDown(ConnectionError):
    pass


def _broken() -> None:
    raise BrokerDown("broker unreachable")


def _wait(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def _report(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def worker(argv: Sequence[str]) -> None:
    """One process: A trips the breaker, B and C check it is open; then all three try trials at once."""
    role, url = argv
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    breaker = RedisCircuitBreaker("broker", config=CONFIG, store=RedisStore(client, NAMESPACE))
    if role == "A":
        failures = 0
        while breaker.state is CircuitState.CLOSED and failures < 100:
            try:
                breaker.call(_broken)
            except BrokerDown:
                failures += 1
        _report(phase="trip", failures=failures, state=breaker.state.value)
    else:
        called: List[int] = []
        try:
            breaker.call(called.append, 1)
            seen = "admitted"
        except CircuitOpenException as exc:
            seen = exc.state.value
        _report(phase="first call", seen=seen, called=len(called))
    client.incr(f"{NAMESPACE}:ready")

    _wait(lambda: breaker.state is CircuitState.HALF_OPEN)
    decided = f"{NAMESPACE}:decided"
    counts = {"admitted": 0, "rejected": 0}
    lock = threading.Lock()

    def trial() -> None:
        client.incr(f"{NAMESPACE}:admitted")
        client.incr(decided)
        with lock:
            counts["admitted"] += 1
        # hold the permit until every attempt in every process has been decided
        _wait(lambda: int(client.get(decided) or 0) >= PROCESSES * THREADS)

    def attempt() -> None:
        try:
            breaker.call(trial)
        except CircuitOpenException:
            client.incr(decided)
            with lock:
                counts["rejected"] += 1

    threads = [threading.Thread(target=attempt) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    _report(phase="trials", **counts)
    client.close()


def _start(role: str, url: str) -> subprocess.Popen[str]:
    code = "import sys; from tests.redis.test_breaker_processes import worker; worker(sys.argv[1:])"
    return subprocess.Popen([sys.executable, "-c", code, role, url], cwd=ROOT, stdout=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen[str]) -> List[Dict[str, Any]]:
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return [json.loads(line) for line in out.splitlines()]


def test_trip_in_one_process_opens_the_breaker_for_all_and_trials_are_global(
    redis_server: RedisServer, redis_client: redis.Redis
) -> None:
    key = f"{NAMESPACE}:cb:broker"
    processes = {"A": _start("A", redis_server.url)}
    try:
        _wait(lambda: redis_client.hget(key, "state") == b"open")
        for role in ("B", "C"):  # started after the trip: they learn of it from Redis alone
            processes[role] = _start(role, redis_server.url)
        _wait(lambda: int(redis_client.get(f"{NAMESPACE}:ready") or 0) == PROCESSES, timeout=60)
        assert redis_client.hget(key, "state") == b"open"
        redis_client.hset(key, "open_for", 0)  # as if the timeout had run out: no process waits on time
        reports = {role: _finish(process) for role, process in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    assert reports["A"][0] == {"phase": "trip", "failures": 3, "state": "open"}
    for role in ("B", "C"):
        assert reports[role][0] == {"phase": "first call", "seen": "open", "called": 0}
    trials = [report[-1] for report in reports.values()]
    assert sum(t["admitted"] for t in trials) == CONFIG.half_open_max_calls
    assert sum(t["rejected"] for t in trials) == PROCESSES * THREADS - CONFIG.half_open_max_calls
    assert int(redis_client.get(f"{NAMESPACE}:admitted") or 0) == CONFIG.half_open_max_calls
    assert redis_client.hget(key, "state") == b"closed"  # the two trials succeeded
    assert redis_client.hget(key, "trips") == b"1"

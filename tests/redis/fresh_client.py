"""A client process that starts after the others.

``python -m tests.redis.fresh_client URL NAMESPACE BREAKER OPEN_TIMEOUT`` imports everything, prints
``{"ready": true}`` and waits for a line on stdin (so that the test does not wait for Python to
start while a timeout runs); then it builds its own client, store and RedisCircuitBreaker
(failure_threshold 1, no backoff growth), as a process started at that moment would, reads the
shared breaker's state once and prints one JSON line: the state, how many clock steps it noticed
(each logs a warning), and the namespace time it left in ``{NAMESPACE}:clock`` (microseconds).
"""

from __future__ import annotations

import json
import logging
import sys

import redis

from circuit_breakers import CircuitBreakerConfig, RedisCircuitBreaker, RedisStore


class StepCounter(logging.Handler):
    """Counts the clock steps this process notices (circuit_breakers.redis.clock logs one warning each)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.steps = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "disagrees" in record.getMessage():
            self.steps += 1


def main(url: str, namespace: str, name: str, open_timeout: str) -> None:
    steps = StepCounter()
    logging.getLogger("circuit_breakers.redis.clock").addHandler(steps)
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    store = RedisStore(client, namespace)
    config = CircuitBreakerConfig(
        failure_threshold=1, open_timeout_seconds=float(open_timeout), exponential_backoff=False
    )
    breaker = RedisCircuitBreaker(name, config=config, store=store)
    state = breaker.state.value
    last = int(client.hget(f"{namespace}:clock", "last") or 0)  # type: ignore[arg-type]
    print(json.dumps({"state": state, "steps_seen": steps.steps, "namespace_time": last}))
    client.close()


if __name__ == "__main__":
    main(*sys.argv[1:])

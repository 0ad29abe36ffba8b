"""``python -m circuit_breakers demo --redis URL``: two real processes sharing state in a real Redis."""

from __future__ import annotations

import subprocess
import sys

import redis

from tests.redis_server import RedisServer


def test_two_process_demo_shares_the_rate_limit_and_the_kill_switch(redis_server: RedisServer) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "circuit_breakers", "demo", "--redis", redis_server.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[1:] == [
        "strategy: 6 of 6 orders admitted",
        "desk:     4 of 6 orders admitted (the strategy's 6 count too)",
        "strategy: can_trade=True",
        "desk:     engaged the kill switch",
        "strategy: can_trade=False (max_drawdown: kill switch engaged: demo: risk desk halts every process)",
        "desk:     reset the kill switch with the key",
        "strategy: can_trade=True",
    ]
    namespace = lines[0].split("'")[1]
    client: redis.Redis = redis_server.client()
    assert list(client.scan_iter(match=f"{namespace}:*")) == []  # the demo cleans up after itself

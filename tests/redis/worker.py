"""A strategy process for the multi-process Redis tests: ``python -m tests.redis.worker ROLE URL NAMESPACE``.

Prints one JSON line with what it saw. Roles:
- ``orders N``: tries N orders as fast as it can; reports how many were admitted.
- ``watch SECONDS``: waits until can_trade() turns False and prints when (wall clock), then waits
  until it turns True again (it fails if either does not happen within SECONDS).
- ``engage``: engages the kill switch; reports when (wall clock).
- ``reset KEY``: resets the kill switch with KEY.
- ``follow``: monitors, prints ``{"ready": true}``, then answers each stdin line with one JSON line
  ``{"can_trade": bool, "reasons": [...]}``: ``status`` runs check_now() first (re-reads the
  store, like the shared demo's follower); ``peek`` only asks can_trade(), so it shows what the
  listener and the monitor found on their own. Any other line (or end of input) ends it.
"""

from __future__ import annotations

import json
import sys
import time

import redis

from circuit_breakers import TradingBreakerConfig, TradingCircuitBreakers
from circuit_breakers.redis import RedisStore
from tests.providers import FlatPortfolio

KEY = "shared-desk-key"


def _wait_for(condition: object, seconds: float) -> float:
    start = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - start > seconds:
            raise SystemExit(f"condition not met within {seconds}s")
        time.sleep(0.005)  # polling another process's effect, bounded by `seconds`
    return time.monotonic() - start


def main(role: str, url: str, namespace: str, *args: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
    config = TradingBreakerConfig(max_orders_per_minute=50, max_orders_per_hour=500, check_interval_seconds=0.5)
    breakers = TradingCircuitBreakers(FlatPortfolio(), config, reset_key=KEY, store=RedisStore(client, namespace))
    result: dict[str, object] = {"role": role}
    if role == "orders":
        print(json.dumps({"ready": True}), flush=True)
        sys.stdin.readline()  # start together
        result["admitted"] = sum(breakers.record_order() for _ in range(int(args[0])))
    elif role == "watch":
        breakers.start_monitoring()
        print(json.dumps({"ready": True}), flush=True)
        limit = float(args[0])
        _wait_for(lambda: not breakers.can_trade(), limit)
        print(json.dumps({"blocked_at": time.time(), "reasons": breakers.get_blocking_reasons()}), flush=True)
        result["released_after"] = _wait_for(breakers.can_trade, limit)
    elif role == "follow":
        breakers.start_monitoring()
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "status":
                breakers.check_now()
            elif command != "peek":
                break
            answer = {"can_trade": breakers.can_trade(), "reasons": breakers.get_blocking_reasons()}
            print(json.dumps(answer), flush=True)
    elif role == "engage":
        breakers.engage_kill_switch("engaged by process test", actor="worker")
        result["engaged_at"] = time.time()
    elif role == "reset":
        result["reset"] = breakers.reset_kill_switch(args[0], actor="worker")
    breakers.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])

"""A trading process for the command-line tests: monitors a shared state and reports on stdout.

Run as ``python -m tests.ops.trader (--state PATH | --redis URL --namespace NS) KEY``. It prints
``ready`` once monitoring, ``killed <reason>`` from its kill handler, ``released`` when it can trade
again after a halt, and exits when its stdin closes.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

from circuit_breakers import TradingBreakerConfig, TradingCircuitBreakers
from tests.providers import FlatPortfolio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("key")
    parser.add_argument("--state")
    parser.add_argument("--redis")
    parser.add_argument("--namespace")
    args = parser.parse_args()
    options: Any = {"state_path": args.state}
    if args.redis:
        from circuit_breakers.redis import RedisStore  # noqa: PLC0415
        from circuit_breakers.redis.client import connect  # noqa: PLC0415

        options = {"store": RedisStore(connect(args.redis, timeout=1.0), args.namespace, resync_seconds=0.2)}
    config = TradingBreakerConfig(check_interval_seconds=0.05)
    breakers = TradingCircuitBreakers(FlatPortfolio(), config, reset_key=args.key, **options)
    halted = threading.Event()

    def killed(reason: str) -> None:
        halted.set()
        print(f"killed {reason}", flush=True)

    def recovered(name: str) -> None:
        if name == "max_drawdown" and halted.is_set():
            halted.clear()
            print("released", flush=True)

    breakers.register_kill_handler(killed)
    breakers.register_recovery_callback(recovered)
    breakers.start_monitoring()
    print("ready", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    breakers.close()


if __name__ == "__main__":
    main()

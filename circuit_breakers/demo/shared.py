"""Two processes sharing one kill switch and one order-rate limit through Redis.

``python -m circuit_breakers demo --redis redis://localhost:6379/0`` runs it: this process (the
"risk desk") starts a second one (a "strategy", ``python -m circuit_breakers demo-follower``) on
the same namespace and drives it line by line over its stdin and stdout, so the output reads in
order. Needs the ``redis`` extra and a reachable server; the namespace is fresh for every run and
deleted at the end.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from decimal import Decimal
from typing import IO, Callable

import redis

from circuit_breakers.errors import StateStoreError
from circuit_breakers.redis.client import connect
from circuit_breakers.redis.store import RedisStore
from circuit_breakers.trading.breakers import TradingCircuitBreakers
from circuit_breakers.trading.config import TradingBreakerConfig

RESET_KEY = "demo-reset-key"
CONFIG = TradingBreakerConfig(max_orders_per_minute=10, max_orders_per_hour=100)


class FlatPortfolio:
    """A PortfolioProvider with nothing happening: the demo is about the shared state."""

    def get_total_value(self) -> Decimal:
        return Decimal(1_000_000)

    def get_daily_pnl(self) -> Decimal:
        return Decimal(0)

    def get_daily_pnl_pct(self) -> Decimal:
        return Decimal(0)

    def get_max_drawdown(self) -> Decimal:
        return Decimal(0)

    def get_position_concentration(self, symbol: str) -> Decimal:
        return Decimal(0)


def _client(url: str) -> redis.Redis:
    client: redis.Redis = connect(url, timeout=1.0)
    return client


def check_server(url: str) -> None:
    """Raise StateStoreError (one line, naming the URL) unless a Redis server answers at ``url``."""
    try:
        _client(url).ping()
    except (redis.RedisError, OSError) as exc:
        raise StateStoreError(f"no Redis server answers at {url}: {type(exc).__name__}: {exc}") from None


def _breakers(url: str, namespace: str) -> TradingCircuitBreakers:
    store = RedisStore(_client(url), namespace)
    return TradingCircuitBreakers(FlatPortfolio(), CONFIG, reset_key=RESET_KEY, store=store)


def _describe(breakers: TradingCircuitBreakers) -> str:
    breakers.check_now()  # re-reads the store; the pub/sub listener has usually flipped it already
    if breakers.can_trade():
        return "can_trade=True"
    return "can_trade=False (" + "; ".join(breakers.get_blocking_reasons()) + ")"


def follow(url: str, namespace: str, commands: IO[str], write: Callable[[str], None]) -> None:
    """The strategy process: answer each command line (``status``, ``orders N``, ``quit``) with one line."""
    breakers = _breakers(url, namespace)
    try:
        write("ready")
        for line in commands:
            command, *args = line.split()
            if command == "status":
                write(_describe(breakers))
            elif command == "orders":
                admitted = sum(breakers.record_order() for _ in range(int(args[0])))
                write(f"{admitted} of {args[0]} orders admitted")
            else:
                break
    finally:
        breakers.close()


def run_shared_demo(write: Callable[[str], None], url: str) -> None:
    """The risk-desk process: start a strategy process, then show what they share."""
    check_server(url)
    namespace = f"circuit_breakers-demo-{uuid.uuid4().hex[:8]}"
    desk = _breakers(url, namespace)
    follower = subprocess.Popen(
        [sys.executable, "-m", "circuit_breakers", "demo-follower", "--redis", url, "--namespace", namespace],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    commands, answers = follower.stdin, follower.stdout
    if commands is None or answers is None:
        raise RuntimeError("no pipes to the strategy process")

    def ask(command: str) -> str:
        commands.write(command + "\n")
        commands.flush()
        return answers.readline().strip()

    try:
        if answers.readline().strip() != "ready":
            raise RuntimeError("the strategy process did not start")
        write(f"two processes share namespace {namespace!r} on {url}; limit 10 orders a minute for both")
        write(f"strategy: {ask('orders 6')}")
        admitted = sum(desk.record_order() for _ in range(6))
        write(f"desk:     {admitted} of 6 orders admitted (the strategy's 6 count too)")
        write(f"strategy: {ask('status')}")
        desk.engage_kill_switch("demo: risk desk halts every process", actor="demo")
        write("desk:     engaged the kill switch")
        write(f"strategy: {ask('status')}")
        desk.reset_kill_switch(RESET_KEY, actor="demo")
        write("desk:     reset the kill switch with the key")
        write(f"strategy: {ask('status')}")
        ask("quit")
    finally:
        commands.close()
        follower.wait(timeout=10)
        desk.close()
        _delete(url, namespace)


def _delete(url: str, namespace: str) -> None:
    client = _client(url)
    keys = list(client.scan_iter(match=f"{namespace}:*"))
    if keys:
        client.delete(*keys)

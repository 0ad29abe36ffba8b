"""Trading state shared through a real redis-server: kill switch, halts, order-rate limit, fail-closed."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, Callable, List

import pytest
import redis
from freezegun import freeze_time

from circuit_breakers import ConfigError, Limit, TradingBreakerConfig, TradingCircuitBreakers
from circuit_breakers.redis import RedisRateLimiter, RedisStore
from circuit_breakers.stores import Store
from tests.redis_server import RedisServer

KEY = "shared-desk-key"


class Provider:
    def __init__(self) -> None:
        self.pnl_pct = Decimal(0)

    def get_total_value(self) -> Decimal:
        return Decimal(1000000)

    def get_daily_pnl(self) -> Decimal:
        return self.pnl_pct * 10000

    def get_daily_pnl_pct(self) -> Decimal:
        return self.pnl_pct

    def get_max_drawdown(self) -> Decimal:
        return Decimal(0)

    def get_position_concentration(self, symbol: str) -> Decimal:
        return Decimal(0)


Make = Callable[..., TradingCircuitBreakers]


@pytest.fixture
def make(redis_server: RedisServer, redis_client: Any) -> Iterator[Make]:
    made: List[TradingCircuitBreakers] = []

    def build(namespace: str = "desk", server: RedisServer = redis_server, **kwargs: Any) -> TradingCircuitBreakers:
        kwargs.setdefault("reset_key", KEY)
        config = kwargs.pop("config", TradingBreakerConfig(max_orders_per_minute=10, max_orders_per_hour=100))
        store = RedisStore(server.client(), namespace)
        breakers = TradingCircuitBreakers(kwargs.pop("provider", Provider()), config, store=store, **kwargs)
        made.append(breakers)
        return breakers

    yield build
    for breakers in made:
        breakers.close()


def wait_until(condition: Callable[[], bool], seconds: float = 3.0) -> float:
    """Seconds until ``condition()`` held; fails after ``seconds``. Polls another thread's effect."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < seconds, "condition not met in time"
        time.sleep(0.005)
    return time.monotonic() - start


def test_redis_store_is_a_store(redis_client: Any) -> None:
    store = RedisStore(redis_client, "x")
    assert isinstance(store, Store)
    assert store.kind == "redis"
    assert store.describe() == "redis x"


def test_client_without_timeouts_is_refused(redis_server: RedisServer) -> None:
    client = redis.Redis(port=redis_server.port, socket_timeout=None, socket_connect_timeout=None)
    with pytest.raises(ConfigError, match="socket_timeout"):
        RedisStore(client, "x")


def test_kill_switch_engaged_in_one_process_halts_the_other_at_once(make: Make) -> None:
    first, second = make(), make()
    handled = threading.Event()
    second.register_kill_handler(lambda reason: handled.set())
    first.engage_kill_switch("risk says stop")
    assert wait_until(lambda: not second.can_trade()) < 1.0  # pub/sub: no check interval needed
    assert second.kill_switch_active
    assert handled.wait(1.0)
    assert second.get_blocking_reasons()[0] == "max_drawdown: kill switch engaged: risk says stop"


def test_reset_from_another_process_releases_all(make: Make) -> None:
    first, second, third = make(), make(), make()
    first.engage_kill_switch("stop")
    wait_until(lambda: third.kill_switch_active and second.kill_switch_active)
    assert second.reset_kill_switch("wrong") is False
    assert second.reset_kill_switch(KEY) is True
    wait_until(lambda: first.can_trade() and third.can_trade())


def test_polling_sees_the_kill_switch_without_the_listener(make: Make) -> None:
    first, second = make(), make()
    _without_listener(second)  # no pub/sub: only the periodic check remains
    first.engage_kill_switch("stop")
    second.check_now()
    assert second.kill_switch_active


def test_daily_loss_halt_is_shared(make: Make) -> None:
    provider = Provider()
    first, second = make(provider=provider), make()
    provider.pnl_pct = Decimal("-2.5")
    first.check_now()
    wait_until(lambda: not second.can_trade())
    assert second.get_blocking_reasons() == ["daily_loss: P&L -2.50% <= limit -2.00%"]
    assert second.trading_state.value == "reducing"


def test_order_rate_limit_is_shared_exactly(make: Make) -> None:
    first, second = make(), make()
    admitted = [first.record_order() for _ in range(6)] + [second.record_order() for _ in range(6)]
    assert admitted.count(True) == 10
    assert admitted[-2:] == [False, False]
    assert second.get_status().orders_last_minute == 10


def test_order_rate_limit_is_exact_under_threads(make: Make) -> None:
    breakers = [make() for _ in range(4)]
    barrier = threading.Barrier(8)
    results: List[bool] = []
    lock = threading.Lock()

    def worker(index: int) -> None:
        barrier.wait(5)
        mine = [breakers[index % 4].record_order() for _ in range(10)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    assert results.count(True) == 10


def test_one_round_trip_per_decision(make: Make, redis_client: Any) -> None:
    breakers = make()
    limiter = breakers._limiter
    assert isinstance(limiter, RedisRateLimiter)
    redis_client.config_resetstat()
    before = limiter.round_trips
    for _ in range(5):
        breakers.record_order()
    assert limiter.round_trips - before == 5
    stats = redis_client.info("commandstats")
    calls = sum(entry["calls"] for name, entry in stats.items() if name.startswith("cmdstat_evalsha"))
    assert calls == 5


def test_windows_use_the_server_clock_not_the_hosts(make: Make, redis_client: Any) -> None:
    """A "host" whose clock says 2001 stamps its permits with the server's TIME, and a host with the
    right time counts them in its windows (stamped 2001, they would be an hour stale and trimmed)."""
    skewed_host = dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc).timestamp()
    with freeze_time("2001-01-01"):  # time.time() and time.monotonic() of this process, not of Redis
        assert abs(time.time() - skewed_host) < 1
        skewed = make()
        before = _server_seconds(redis_client)
        admitted = [skewed.record_order() for _ in range(5)]
        after = _server_seconds(redis_client)
    assert admitted == [True] * 5
    stamps = [score / 1_000_000 for _, score in redis_client.zrange("desk:rate:rate_limit", 0, -1, withscores=True)]
    assert len(stamps) == 5
    assert all(before - 1 <= stamp <= after + 1 for stamp in stamps), (before, stamps, after)
    assert all(stamp - skewed_host > 20 * 365 * 86400 for stamp in stamps)
    right = make()
    assert [right.record_order() for _ in range(6)] == [True] * 5 + [False]  # the two hosts share 10 a minute
    assert right.get_status().orders_last_minute == 10


def _server_seconds(client: Any) -> float:
    seconds, micros = client.time()
    return float(seconds + micros / 1_000_000)


def test_rate_keys_expire_on_their_own(make: Make, redis_client: Any) -> None:
    make().record_order()
    keys = [key.decode() for key in redis_client.keys("desk:rate:*")]
    assert len(keys) == 1  # one sorted set holds the minute and the hour window
    # kept twice the longest period and an hour more: expiry runs on the server's own clock, which may step
    assert 10_790_000 < redis_client.pttl(keys[0]) <= 10_800_000
    assert redis_client.zcard(keys[0]) == 1


def test_every_window_of_one_limiter_is_exact_over_real_server_time(redis_client: Any) -> None:
    """Hammer two short windows for a second and check every admitted permit's server timestamp:
    never more than 2 in any 0.2 s, nor 3 in any 0.6 s; and the limiter kept admitting throughout."""
    store = RedisStore(redis_client, "exact-windows")
    limiter = RedisRateLimiter(store, Limit(2, 0.2), Limit(3, 0.6), name="orders")
    key = "exact-windows:rate:orders"
    stamps: set = set()
    deadline = time.monotonic() + 1.2
    refused = 0
    while time.monotonic() < deadline:
        if limiter.try_acquire():
            stamps.update(int(score) for _, score in redis_client.zrange(key, 0, -1, withscores=True))
        else:
            refused += 1
    admitted = sorted(stamps)
    assert refused > 0
    assert len(admitted) >= 5  # about 3 per 0.6 s: the windows do free up again
    for limit, period_us in ((2, 200_000), (3, 600_000)):
        for first, last in zip(admitted, admitted[limit:]):
            assert last - first >= period_us, f"{limit + 1} permits within {last - first} us"


def test_refusal_wait_and_status_name_the_full_window(redis_client: Any) -> None:
    limiter = RedisRateLimiter(RedisStore(redis_client, "wait"), Limit(2, 60), Limit(3, 3600), name="orders")
    assert [limiter.try_acquire() for _ in range(3)] == [True, True, False]
    assert 59.0 < limiter.retry_after() <= 60.0  # the minute window is full; its oldest permit frees it
    status = limiter.status()
    assert [limit["calls_in_window"] for limit in status["limits"]] == [2, 2]
    assert status["limits"][0]["seconds_until_free"] > 59.0
    assert status["limits"][1]["seconds_until_free"] == 0.0
    limiter.reset()
    assert limiter.retry_after() == 0.0
    assert limiter.try_acquire()


def test_reset_key_hash_is_shared_and_secret(make: Make, redis_client: Any) -> None:
    make()
    stored = redis_client.hget("desk:values", "reset_key").decode()
    assert KEY not in stored
    assert set(json.loads(stored)) >= {"salt", "hash"}
    keyless = make(reset_key=None)
    keyless.engage_kill_switch("stop")
    assert keyless.reset_kill_switch(KEY) is True  # verified against the desk's shared hash
    with pytest.raises(ConfigError, match="does not match"):
        make(reset_key="another key")


def test_redis_down_blocks_trading_and_recovers(make: Make, own_redis_server: RedisServer) -> None:
    breakers = make(server=own_redis_server)
    assert breakers.can_trade()
    own_redis_server.kill()
    elapsed = wait_until(lambda: not breakers.can_trade(), seconds=5.0)
    assert elapsed < 3.0
    reasons = breakers.get_blocking_reasons()
    assert any(reason.startswith("state: redis desk") for reason in reasons), reasons
    assert breakers.record_order() is False
    own_redis_server.start()
    wait_until(breakers.can_trade, seconds=10.0)
    assert breakers.record_order() is True


def test_engaged_kill_switch_survives_a_redis_restart(make: Make, own_redis_server: RedisServer) -> None:
    make(server=own_redis_server).engage_kill_switch("before the restart")
    own_redis_server.kill()
    own_redis_server.start()
    later = make(server=own_redis_server)
    assert later.kill_switch_active
    assert not later.can_trade()


def _spawn(role: str, server: RedisServer, namespace: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.redis.worker", role, server.url, namespace, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _result(process: subprocess.Popen[str]) -> Any:
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])


def test_four_processes_share_fifty_orders_a_minute(redis_server: RedisServer, redis_client: Any) -> None:
    workers = [_spawn("orders", redis_server, "procs", "30") for _ in range(4)]
    for worker in workers:
        assert worker.stdout is not None
        assert json.loads(worker.stdout.readline())["ready"]
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    assert sum(_result(worker)["admitted"] for worker in workers) == 50


def test_kill_switch_from_one_process_blocks_three_and_a_reset_releases_them(
    redis_server: RedisServer, redis_client: Any
) -> None:
    watchers = [_spawn("watch", redis_server, "kill", "20") for _ in range(3)]
    for watcher in watchers:
        assert watcher.stdout is not None
        assert json.loads(watcher.stdout.readline())["ready"]
    engaged_at = _result(_spawn("engage", redis_server, "kill"))["engaged_at"]
    check_interval = 0.5  # the workers' check_interval_seconds
    for watcher in watchers:
        assert watcher.stdout is not None
        seen = json.loads(watcher.stdout.readline())
        assert seen["blocked_at"] - engaged_at < check_interval
        assert seen["reasons"][0].startswith("max_drawdown: kill switch engaged")
    assert _result(_spawn("reset", redis_server, "kill", KEY))["reset"] is True
    for watcher in watchers:
        assert _result(watcher)["released_after"] < 20


# --- garbage written into the trading keys by something else ------------------------------------

Write = Callable[[Any, str], object]
_DAY = {"since": "2024-01-02T09:30:00+00:00", "trading_day": "2024-01-02"}

GARBAGE = [
    # (id, writes the garbage into the namespace, what a reason names, the breaker it halts)
    (
        "latch-not-json",
        lambda client, ns: client.hset(f"{ns}:latches", "max_drawdown", "{not json"),
        "latches/max_drawdown",
        "max_drawdown",
    ),
    (
        "latch-day-out-of-range",
        lambda client, ns: client.hset(
            f"{ns}:latches",
            "max_drawdown",
            json.dumps({"reason": "x", "since": _DAY["since"], "trading_day": "9999-12-31"}),
        ),
        "latches/max_drawdown",
        "max_drawdown",
    ),
    (
        "latch-without-reason",
        lambda client, ns: client.hset(f"{ns}:latches", "daily_loss", json.dumps(_DAY)),
        "latches/daily_loss",
        "daily_loss",
    ),
    (
        "high-water-mark-not-a-number",
        lambda client, ns: client.hset(f"{ns}:values", "high_water_mark", "lots"),
        "values/high_water_mark",
        "max_drawdown",
    ),
    (
        "latches-not-a-hash",
        lambda client, ns: client.delete(f"{ns}:latches") + client.set(f"{ns}:latches", "garbage"),
        "garbage:latches",
        "max_drawdown",
    ),
]
STATE_GARBAGE = [pytest.param(write, names, halts, id=name) for name, write, names, halts in GARBAGE]


def _release(breakers: TradingCircuitBreakers, halts: str) -> None:
    if halts == "max_drawdown":
        assert breakers.reset_kill_switch(KEY)
    else:
        assert breakers.reset_breaker(halts)


@pytest.mark.parametrize(("write", "names", "halts"), STATE_GARBAGE)
def test_garbage_state_blocks_trading_names_the_key_and_is_replaced(
    make: Make, redis_client: Any, write: Write, names: str, halts: str
) -> None:
    breakers, other = make("garbage"), make("garbage")
    breakers.check_now()
    assert breakers.can_trade()
    write(redis_client, "garbage")
    breakers.check_now()  # no message was published: the periodic re-read finds it
    assert not breakers.can_trade()
    reasons = breakers.get_blocking_reasons()
    assert any(reason.startswith(f"{halts}:") and "redis garbage" in reason and names in reason for reason in reasons)
    other.check_now()  # every process that reads it is blocked, and keeps polling
    assert not other.can_trade()
    _release(breakers, halts)  # a person decides: the kill switch needs the key
    breakers.check_now()
    other.check_now()
    assert breakers.can_trade(), breakers.get_blocking_reasons()
    assert other.can_trade(), other.get_blocking_reasons()
    assert breakers.record_order()
    assert make("garbage").can_trade()  # good records replaced the garbage: a new process trades


def test_garbage_rate_key_refuses_orders_until_removed(make: Make, redis_client: Any) -> None:
    breakers = make("garbage")
    assert breakers.record_order()
    redis_client.delete("garbage:rate:rate_limit")
    redis_client.set("garbage:rate:rate_limit", "not a sorted set")
    assert breakers.record_order() is False  # fail closed
    assert breakers.get_status().orders_last_minute is None  # unknown, not zero
    redis_client.delete("garbage:rate:rate_limit")
    breakers.check_now()
    assert breakers.record_order() is True


def _without_listener(breakers: TradingCircuitBreakers) -> TradingCircuitBreakers:
    """Stop the store listener, so that only check_now() re-reads the store (no race with its resync)."""
    assert breakers._subscription is not None
    breakers._subscription.close()
    return breakers


def test_a_process_starting_on_a_corrupt_latch_stays_blocked(make: Make, redis_client: Any) -> None:
    redis_client.hset("corrupt:latches", "max_drawdown", "{not json")
    breakers = _without_listener(make("corrupt"))
    assert not breakers.can_trade()
    breakers.check_now()
    assert not breakers.can_trade(), "trading on a corrupt kill-switch latch"


def test_a_process_starting_on_a_garbage_high_water_mark_stays_blocked(make: Make, redis_client: Any) -> None:
    redis_client.hset("corrupt:values", "high_water_mark", "lots")
    breakers = _without_listener(make("corrupt"))
    breakers.check_now()
    assert not breakers.can_trade()
    assert "values/high_water_mark" in breakers.get_blocking_reasons()[0], breakers.get_blocking_reasons()

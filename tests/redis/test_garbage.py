"""Garbage in a namespace's trading state, written behind the processes' backs and announced on the
channel: it never raises out of check_now(), get_status() or can_trade(), never stops a listener,
and either blocks (the kill switch, a day halt, or orders) or passes, as each case below states.

Each desk stands for a process: its own client, store and listener (resync every 0.2 s unless a
test says otherwise). The victim is the desk whose listener hears the garbage first.
"""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Dict, List, Optional, Union

import pytest
import redis

from circuit_breakers import RedisStore, TradingCircuitBreakers
from tests.redis.conftest import KEY, Desk, wait_until
from tests.redis.servers import Server, quick_client

from ..providers import FlatPortfolio

NS = "junk"
KILL, DAY, PASSES, NO_ORDERS = "kill switch", "day halt", "passes", "orders refused"
_SINCE = "2024-01-02T09:30:00+00:00"


def latch(**fields: object) -> str:
    record: Dict[str, object] = {"reason": "written by something else", "since": _SINCE}
    record.update(trading_day="2024-01-02", actor=None, id="junk-1")
    record.update(fields)
    return json.dumps(record)


FAR_DAY = latch(trading_day="9999-12-31")


class Garbage:
    """One piece of garbage: where it goes (``field`` None: the key itself, of the wrong type), and
    what it must do to the processes that read it (``verdict``; a blocking one names the breaker it
    halts and a text the reason must contain)."""

    def __init__(self, key: str, field: Optional[str], value: Union[str, bytes], verdict: str, **expect: str) -> None:
        self.key, self.field, self.value, self.verdict = key, field, value, verdict
        self.halts, self.names = expect.get("halts", ""), expect.get("names", "")

    def write(self, client: redis.Redis) -> None:
        """Write it and announce it on the channel, as a writer of the namespace would."""
        if self.field is None:
            client.set(f"{NS}:{self.key}", self.value)  # replaces the hash in one step: never seen missing
        else:
            client.hset(f"{NS}:{self.key}", self.field, self.value)  # type: ignore[arg-type] # bytes too
        client.publish(f"{NS}:events", f"{self.key} {self.field}")

    def remove(self, client: redis.Redis) -> None:
        client.delete(f"{NS}:{self.key}") if self.field is None else client.hdel(f"{NS}:{self.key}", self.field)


def kill(key: str, field: Optional[str], value: Union[str, bytes], names: str) -> Garbage:
    return Garbage(key, field, value, KILL, halts="max_drawdown", names=names)


def day(name: str, value: str, names: str) -> Garbage:
    return Garbage("latches", name, value, DAY, halts=name, names=names)


CASES = {
    # latches: the latch engages (the kill switch needs the key, a day halt holds the day) and is rewritten
    "latch-kill-switch-not-json": kill(
        "latches", "max_drawdown", "{not json", "redis junk latches/max_drawdown: not JSON"
    ),
    "latch-kill-switch-naive-since": kill(
        "latches",
        "max_drawdown",
        latch(since="2024-01-02T09:30:00"),
        "latches/max_drawdown: since must carry a time zone",
    ),
    "latch-daily-loss-a-list": day("daily_loss", "[1, 2]", "redis junk latches/daily_loss: not a JSON object"),
    "latch-volatility-year-9999": day("volatility", FAR_DAY, "redis junk latches/volatility: trading_day out of range"),
    # values the drawdown is measured with: the kill switch engages (the drawdown cannot be known)
    "high-water-mark-not-a-number": kill(
        "values", "high_water_mark", "lots", "redis junk values/high_water_mark: not a number"
    ),
    "high-water-mark-infinite": kill(
        "values", "high_water_mark", "Infinity", "redis junk values/high_water_mark: not finite"
    ),
    "baseline-nan": kill(
        "values", "drawdown_baseline_pct", "NaN", "redis junk values/drawdown_baseline_pct: not finite"
    ),
    # the epoch: another one is a lost state; undecodable bytes (anywhere) make the whole store unreadable
    "epoch-replaced": kill("values", "epoch", "nonsense", "state lost: redis junk lost"),
    "epoch-not-utf8": kill("values", "epoch", b"\xff\xfe", "state unreadable: redis junk: junk:values holds garbage"),
    "heartbeat-not-utf8": kill("procs", "someone", b"\xff", "state unreadable: redis junk: junk:procs holds garbage"),
    "values-not-a-hash": kill("values", None, "a string", "state unreadable: redis junk: a state key holds garbage"),
    # records that guard the kill switch's release: the kill switch engages (a tampered or damaged
    # count, lockout or key hash cannot be told from a harmless one) and a good record replaces it
    "kill-switch-resets-not-a-number": kill(
        "values", "kill_switch_resets", "lots", "redis junk values/kill_switch_resets: not a count"
    ),
    "lockout-not-json": kill("values", "reset_lockout", "{not json", "redis junk values/reset_lockout: not a lockout"),
    "lockout-failures-infinite": kill(
        "values",
        "reset_lockout",
        '{"failures": 1e999, "locked_until": null}',
        "redis junk values/reset_lockout: not a count of wrong keys",
    ),
    "reset-key-not-json": kill("values", "reset_key", "{not json", "redis junk values/reset_key: not a reset key hash"),
    # the namespace clock, as the order-rate limit uses it: garbage is read as 0 and rewritten
    "clock-offset-not-a-number": Garbage("clock", "offset", "abc", PASSES),
    "clock-offset-nan": Garbage("clock", "offset", "nan", PASSES),
    "clock-last-not-a-number": Garbage("clock", "last", "abc", PASSES),
    "clock-last-infinite": Garbage("clock", "last", "1e400", PASSES),
    # keys of the wrong type for the rate limiter: orders are refused until the key is removed
    "clock-not-a-hash": Garbage("clock", None, "a string", NO_ORDERS),
    "rate-window-not-a-sorted-set": Garbage("rate:rate_limit", None, "a string", NO_ORDERS),
}

UNREADABLE = ("epoch-not-utf8", "heartbeat-not-utf8", "values-not-a-hash")
PARAMS = [pytest.param(case, id=name) for name, case in CASES.items()] + [
    pytest.param(
        kill(
            "values",
            "reset_lockout",
            '{"failures": 9, "locked_until": "2999-01-01T00:00:00"}',
            "redis junk values/reset_lockout: a lockout time without a zone",
        ),
        id="lockout-naive-time",
    )
]


def never_raise(*desks: TradingCircuitBreakers) -> None:
    """Everything a monitor or a status page calls answers, and every listener still runs."""
    for breakers in desks:
        breakers.check_now()
        breakers.get_status().to_dict()
        breakers.can_trade()
        breakers.get_blocking_reasons()
        assert breakers._subscription is not None
        assert breakers._subscription.alive


def heard_engage(victim: TradingCircuitBreakers, other: TradingCircuitBreakers, kills: List[str]) -> None:
    """Another process engages the kill switch: the victim's listener hears it; a keyed reset releases both."""
    other.engage_kill_switch("engaged after the garbage")
    wait_until(lambda: "engaged after the garbage" in kills, seconds=3.0)
    assert other.reset_kill_switch(KEY)
    wait_until(victim.can_trade, seconds=3.0)


@pytest.mark.parametrize("garbage", PARAMS)
def test_garbage_blocks_or_passes_and_never_raises(volatile_server: Server, desk: Desk, garbage: Garbage) -> None:
    victim, other = desk(volatile_server, NS), desk(volatile_server, NS)
    kills: List[str] = []
    victim.register_kill_handler(kills.append)
    assert victim.record_order()
    admin = quick_client(volatile_server)
    garbage.write(admin)
    if garbage.verdict in (KILL, DAY):
        wait_until(lambda: not victim.can_trade(), seconds=3.0)  # its listener, on the message
        never_raise(victim, other)
        for breakers in (victim, other):
            reasons = breakers.get_blocking_reasons()
            assert any(r.startswith(f"{garbage.halts}:") and garbage.names in r for r in reasons), reasons
        assert victim.kill_switch_active is (garbage.verdict == KILL)
        if garbage.verdict == KILL:
            assert other.reset_kill_switch(KEY)  # a keyed reset in any one process releases all
        else:
            assert other.reset_breaker(garbage.halts)
        wait_until(victim.can_trade, seconds=3.0)
        assert desk(volatile_server, NS).can_trade()  # a good record replaced the garbage
    elif garbage.verdict == NO_ORDERS:
        never_raise(victim, other)
        assert not victim.record_order()  # fail closed
        assert victim.get_status().orders_last_minute is None  # unknown, not zero
        assert victim.can_trade()  # a throttle: can_trade() says nothing about it
        heard_engage(victim, other, kills)
        garbage.remove(admin)
        assert victim.record_order()
    else:
        never_raise(victim, other)
        assert victim.can_trade()
        assert other.can_trade()
        assert victim.record_order()
        heard_engage(victim, other, kills)
        assert victim.record_order()
    admin.close()


class MovingPortfolio(FlatPortfolio):
    """A portfolio whose value the test moves."""

    value = Decimal(1_000_000)

    def get_total_value(self) -> Decimal:
        return self.value


def test_keyed_reset_starts_an_unreadable_store_afresh(volatile_server: Server, desk: Desk) -> None:
    """Promise 4: a whole store unreadable (a key of ours that is not a hash) engages the kill switch
    provisionally, and a keyed reset starts the store afresh. One process, monitoring as usual: its
    value moves between two readings, so the reset's re-base has something to write."""
    portfolio = MovingPortfolio()
    breakers = desk(volatile_server, NS, provider=portfolio)
    breakers.check_now()
    with quick_client(volatile_server) as admin:
        admin.delete(f"{NS}:values")
        admin.set(f"{NS}:values", "garbage")
    portfolio.value = Decimal(999_000)
    breakers.check_now()
    assert breakers.get_blocking_reasons()[0].startswith("max_drawdown: kill switch engaged: state unreadable")
    assert breakers.reset_kill_switch(KEY)  # raises StateStoreError (WRONGTYPE): the re-base writes first
    breakers.check_now()
    assert breakers.can_trade()


def test_a_garbage_reset_key_engages_every_process_and_the_key_writes_its_hash_over_it(
    volatile_server: Server, desk: Desk
) -> None:
    """A key hash that cannot be read halts the processes running and those that start later; the
    first process with the key writes its hash over the garbage, so the key releases them all."""
    running = desk(volatile_server, NS)
    with quick_client(volatile_server) as admin:
        admin.hset(f"{NS}:values", "reset_key", "{not json")
        later = desk(volatile_server, NS)
        never_raise(running, later)
        for breakers in (running, later):
            assert breakers.kill_switch_active
            assert "redis junk values/reset_key: not a reset key hash" in breakers.get_blocking_reasons()[0]
        assert admin.hget(f"{NS}:values", "reset_key") not in (None, b"{not json")
    assert later.reset_kill_switch(KEY)
    wait_until(running.can_trade, seconds=3.0)


def test_garbage_release_count_releases_nothing(volatile_server: Server, desk: Desk) -> None:
    """A kill switch record that vanishes while values/kill_switch_resets holds garbage is restored:
    garbage is never counted as a keyed reset."""
    alpha, beta = desk(volatile_server, NS), desk(volatile_server, NS)
    alpha.engage_kill_switch("desk limit")
    wait_until(lambda: beta.kill_switch_active, seconds=3.0)
    with quick_client(volatile_server) as admin:
        admin.hset(f"{NS}:values", "kill_switch_resets", "99 bottles")
        admin.hdel(f"{NS}:latches", "max_drawdown")
        admin.publish(f"{NS}:events", "latches max_drawdown")
        wait_until(lambda: admin.hget(f"{NS}:latches", "max_drawdown") is not None, seconds=3.0)
    for breakers in (alpha, beta):
        breakers.check_now()
        assert breakers.get_blocking_reasons()[0] == "max_drawdown: kill switch engaged: desk limit"
    assert desk(volatile_server, NS).kill_switch_active


@pytest.mark.parametrize("name", ["max_drawdown", "daily_loss", "volatility"])
def test_year_9999_record_published_on_the_channel_keeps_the_listener(
    volatile_server: Server, desk: Desk, name: str
) -> None:
    """The reported bug: a latch with trading_day 9999-12-31 announced on the channel killed the
    listener (OverflowError). Resync is 30 s here, so only messages wake the listeners: the garbage
    blocks trading at once, the same listener thread lives on, and hears the next engage at once."""
    victim, other = desk(volatile_server, NS, resync_seconds=30.0), desk(volatile_server, NS, resync_seconds=30.0)
    listener = victim._subscription
    kills: List[str] = []
    victim.register_kill_handler(kills.append)
    with quick_client(volatile_server) as admin:
        admin.hset(f"{NS}:latches", name, FAR_DAY)
        admin.publish(f"{NS}:events", f"latches {name}")
        admin.publish(f"{NS}:events", FAR_DAY)  # the record itself as a message: a message only wakes the listener
    assert wait_until(lambda: not victim.can_trade(), seconds=3.0) < 1.0
    reasons = victim.get_blocking_reasons()
    assert any(
        r.startswith(f"{name}:") and f"redis junk latches/{name}: trading_day out of range: '9999-12-31'" in r
        for r in reasons
    ), reasons
    assert victim._subscription is listener
    assert listener is not None
    assert listener.alive
    wait_until(lambda: not other.can_trade(), seconds=3.0)  # it heard the rewrite of the good record
    if name == "max_drawdown":
        assert other.reset_kill_switch(KEY)
        assert wait_until(victim.can_trade, seconds=3.0) < 1.0
    other.engage_kill_switch("engaged after the garbage")
    assert wait_until(lambda: "engaged after the garbage" in kills, seconds=3.0) < 1.0
    assert listener.alive


def test_listener_whose_callback_raises_system_exit_keeps_listening(volatile_server: Server) -> None:
    store = RedisStore(quick_client(volatile_server), NS, resync_seconds=30.0)
    raising = threading.Event()
    raising.set()
    exits: List[int] = []
    calls: List[int] = []

    def on_change() -> None:
        if raising.is_set():
            exits.append(1)
            raise SystemExit("a callback that exits")
        calls.append(1)

    listener = store.subscribe(on_change)
    try:
        wait_until(lambda: len(exits) >= 4, seconds=5.0)  # on connect, and again on every reconnect
        assert listener.alive
        raising.clear()
        wait_until(lambda: calls, seconds=5.0)  # it reconnected and re-read
        seen = len(calls)
        publisher = quick_client(volatile_server)
        publisher.publish(store.channel, "latches max_drawdown")
        wait_until(lambda: len(calls) > seen, seconds=3.0)  # a message, not the 30 s resync
        raising.set()
        publisher.publish(store.channel, "latches max_drawdown")  # now it raises on a message
        wait_until(lambda: len(exits) >= 6, seconds=5.0)
        raising.clear()
        wait_until(lambda: len(calls) > seen + 1, seconds=5.0)
        for _ in range(3):  # one of these may be its reconnect's re-read; three cannot all be
            seen = len(calls)
            publisher.publish(store.channel, "latches max_drawdown")
            wait_until(lambda: len(calls) > seen, seconds=3.0)  # noqa: B023 - read at once, in this iteration
        assert listener.alive
        publisher.close()
    finally:
        listener.close()
    assert not listener.alive

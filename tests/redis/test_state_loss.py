"""Losing a namespace's state under running processes: FLUSHALL, a restart without persistence, the
values hash deleted. Every process sharing the namespace must notice (by values/epoch), stop
trading with "state lost", write the kill switch back, and wait for a keyed reset in any of them.

Each desk stands for a process: its own client, store and listener (resync every 0.2 s).
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable, Dict, List

import pytest

from circuit_breakers import TradingCircuitBreakers, TradingHalted
from tests.redis.conftest import KEY, Desk, wait_until
from tests.redis.servers import Server, quick_client
from tests.redis_server import RedisServer

NAMESPACE = "loss"


def flushall(server: Server) -> None:
    with quick_client(server) as client:
        client.flushall()


def restart_without_data(server: Server) -> None:
    server.kill()  # SIGKILL; without persistence nothing is on disk
    server.start()  # same port, empty


def delete_values(server: Server) -> None:
    with quick_client(server) as client:
        client.delete(f"{NAMESPACE}:values")


LOSSES: Dict[str, Callable[[Server], None]] = {
    "flushall": flushall,
    "restart-without-persistence": restart_without_data,
    "values-deleted": delete_values,
}


def without_listener(breakers: TradingCircuitBreakers) -> TradingCircuitBreakers:
    """Stop the store listener: only check_now() re-reads the store, in the order the test calls it."""
    assert breakers._subscription is not None
    breakers._subscription.close()
    return breakers


def lost(breakers: TradingCircuitBreakers) -> bool:
    return not breakers.can_trade() and any("state lost" in reason for reason in breakers.get_blocking_reasons())


def audited(caplog: pytest.LogCaptureFixture, event: str) -> List[Dict[str, Any]]:
    """The audit entries of ``event`` logged so far (the audit logger writes one JSON object each)."""
    entries = [json.loads(record.getMessage()) for record in caplog.records if record.name == "circuit_breakers.audit"]
    return [entry for entry in entries if entry["event"] == event]


def loss_errors(caplog: pytest.LogCaptureFixture) -> List[logging.LogRecord]:
    return [
        record
        for record in caplog.records
        if record.name == "circuit_breakers.trading.safety"
        and record.levelno == logging.ERROR
        and "lost its state" in record.getMessage()
    ]


@pytest.mark.parametrize("lose", LOSSES.values(), ids=LOSSES.keys())
def test_every_process_stops_on_a_lost_state_until_one_keyed_reset(
    volatile_server: Server, desk: Desk, caplog: pytest.LogCaptureFixture, lose: Callable[[Server], None]
) -> None:
    caplog.set_level(logging.WARNING)
    desks = [desk(volatile_server, NAMESPACE) for _ in range(3)]
    assert all(breakers.record_order() for breakers in desks)
    assert all(breakers.can_trade() for breakers in desks)
    lose(volatile_server)
    for breakers in desks:  # by their listeners alone: nobody calls check_now()
        assert wait_until(lambda breakers=breakers: lost(breakers), seconds=5.0) < 2.0  # type: ignore[misc]
    for breakers in desks:
        assert breakers.kill_switch_active
        with pytest.raises(TradingHalted), breakers.trade_guard():
            pass
        reasons = breakers.get_blocking_reasons()
        assert reasons[0].startswith("max_drawdown: kill switch engaged: state lost: redis loss lost"), reasons
    assert loss_errors(caplog), "no error logged"
    assert audited(caplog, "state_lost")
    newcomer = desk(volatile_server, NAMESPACE)  # the kill switch record was written back
    assert newcomer.kill_switch_active
    assert lost(newcomer)
    assert not desks[0].reset_kill_switch("not the key")
    assert all(lost(breakers) for breakers in [*desks, newcomer])
    assert desks[1].reset_kill_switch(KEY)
    for breakers in [*desks, newcomer]:
        wait_until(breakers.can_trade, seconds=3.0)
    assert desk(volatile_server, NAMESPACE).can_trade()


@pytest.mark.parametrize("lose", LOSSES.values(), ids=LOSSES.keys())
def test_every_process_logs_and_audits_the_loss_itself(
    volatile_server: Server, desk: Desk, caplog: pytest.LogCaptureFixture, lose: Callable[[Server], None]
) -> None:
    """Promise 9: every process engages the kill switch, logs an error and audits ``state_lost``. On
    Redis each process audits to its own log, so three processes must leave three of each. The
    listeners are stopped so that the processes re-read one after the other, as they usually do."""
    caplog.set_level(logging.WARNING)
    desks = [without_listener(desk(volatile_server, NAMESPACE)) for _ in range(3)]
    lose(volatile_server)
    for breakers in desks:
        breakers.check_now()
        assert lost(breakers)  # all three are blocked, with the reason...
    assert len(loss_errors(caplog)) == 3  # ...and each found the loss itself
    assert len(audited(caplog, "state_lost")) == 3


def test_kill_switch_survives_a_restart_with_persistence_and_is_no_loss(
    own_redis_server: RedisServer, desk: Desk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    alpha, beta = desk(own_redis_server, NAMESPACE), desk(own_redis_server, NAMESPACE)
    alpha.engage_kill_switch("before the restart")
    wait_until(lambda: beta.kill_switch_active, seconds=3.0)
    own_redis_server.kill()  # SIGKILL: the append-only file (fsync always) holds everything
    own_redis_server.start()
    expected = ["max_drawdown: kill switch engaged: before the restart"]
    for breakers in (alpha, beta):
        breakers.check_now()  # a re-read after the restart, whatever the listener did meanwhile
        wait_until(lambda breakers=breakers: breakers.get_blocking_reasons() == expected, seconds=3.0)  # type: ignore[misc]
    newcomer = desk(own_redis_server, NAMESPACE)
    assert newcomer.get_blocking_reasons() == expected
    assert not loss_errors(caplog)
    assert not audited(caplog, "state_lost")
    assert beta.reset_kill_switch(KEY)
    for breakers in (alpha, beta, newcomer):
        wait_until(breakers.can_trade, seconds=3.0)

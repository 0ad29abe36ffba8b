"""A process that starts while its Redis is down: it is built (no exception), cannot trade with a
reason naming the store, and recovers by itself (its listener reconnects) once Redis answers, with
its reset key bound to the stored one then."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from circuit_breakers import ConfigError
from tests.redis.conftest import KEY, Desk, wait_until
from tests.redis.servers import Server
from tests.redis_server import _require_server

NS = "late"


@pytest.fixture
def down_server(tmp_path: Path) -> Iterator[Server]:
    """A server not started yet (its port chosen), without persistence."""
    _require_server()
    server = Server(tmp_path, persistence=False)
    yield server
    server.kill()


@pytest.fixture
def kept_server(tmp_path: Path) -> Iterator[Server]:
    """A server with append-only persistence (fsync always): a restart keeps everything."""
    _require_server()
    server = Server(tmp_path, persistence=True)
    server.start()
    yield server
    server.kill()


def test_built_while_redis_is_down_blocks_then_recovers_by_itself(down_server: Server, desk: Desk) -> None:
    breakers = desk(down_server, NS, reset_key=KEY)  # no exception
    assert not breakers.can_trade()
    reasons = breakers.get_blocking_reasons()
    assert reasons[0].startswith("state: redis late: cannot read state: ConnectionError"), reasons
    assert not breakers.record_order()
    assert breakers.get_status().orders_last_minute is None
    down_server.start()
    wait_until(breakers.can_trade, seconds=5.0)  # nobody calls check_now(): its listener reconnected
    assert breakers.record_order()
    with pytest.raises(ConfigError, match="reset_key does not match"):
        desk(down_server, NS, reset_key="another key")  # its key's hash is stored now
    breakers.engage_kill_switch("after the outage")
    assert not breakers.reset_kill_switch("not the key")
    assert breakers.reset_kill_switch(KEY)
    assert breakers.can_trade()


def test_built_while_redis_is_down_adopts_the_kill_switch_it_holds(kept_server: Server, desk: Desk) -> None:
    desk(kept_server, NS).engage_kill_switch("before the outage")
    kept_server.kill()
    late = desk(kept_server, NS, reset_key=KEY)
    assert late.get_blocking_reasons()[0].startswith("state: redis late: cannot read state")
    kept_server.start()
    expected = ["max_drawdown: kill switch engaged: before the outage"]
    wait_until(lambda: late.get_blocking_reasons() == expected, seconds=5.0)
    assert late.reset_kill_switch(KEY)
    wait_until(late.can_trade, seconds=3.0)


def test_built_while_redis_is_down_with_the_wrong_key_stays_blocked(kept_server: Server, desk: Desk) -> None:
    desk(kept_server, NS)  # stores KEY's hash
    kept_server.kill()
    wrong = desk(kept_server, NS, reset_key="another key")  # cannot be checked yet: no exception
    kept_server.start()
    wait_until(lambda: any(r.startswith("reset_key:") for r in wrong.get_blocking_reasons()), seconds=5.0)
    wrong.check_now()
    assert not wrong.can_trade()
    assert "reset_key does not match the reset key already stored in redis late" in wrong.get_blocking_reasons()[0]

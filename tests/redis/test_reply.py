"""What RedisCircuitBreaker sends its scripts and reads back (circuit_breakers/redis/reply.py)."""

from __future__ import annotations

import pytest

from circuit_breakers import CircuitBreakerConfig, CircuitState
from circuit_breakers.backoff import Backoff, ExponentialBackoff, FixedBackoff
from circuit_breakers.redis.reply import POLICY_STEPS, config_arguments, parse, policy_argument


class Doubling(Backoff):
    def __call__(self, trip: int) -> float:
        return 2.0**trip


def test_the_librarys_policies_are_sent_as_their_parameters() -> None:
    assert policy_argument(ExponentialBackoff(60, 2, 300)) == "x:60.0,2.0,300.0"
    assert policy_argument(FixedBackoff(1.5)) == "x:1.5,1.0,1.5"  # min(1.5 * 1 ** (k - 1), 1.5) == 1.5


def test_any_other_policy_is_sent_as_its_answers_in_microseconds() -> None:
    kind, _, timeouts = policy_argument(Doubling()).partition(":")
    assert kind == "l"
    assert [float(value) for value in timeouts.split(",")] == [2.0**trip * 1e6 for trip in range(1, POLICY_STEPS + 1)]


def test_config_arguments_are_the_eight_the_scripts_read() -> None:
    config = CircuitBreakerConfig(failure_threshold=4, failure_window_seconds=30, half_open_timeout_seconds=5)
    arguments = config_arguments(config, ExponentialBackoff(1, 2, 8))
    assert arguments == ["4", "0.5", "3", "30000000.0", "x:1.0,2.0,8.0", "5000000.0", "10", "1"]


def test_a_reply_is_decoded_and_garbage_refused() -> None:
    raw = [b"1767623400000000", b"0", b"7", b"open", b"2500000", [b"trip", b"closed>open"], b"1", b"1", b"0", b"0"]
    reply = parse([*raw, b"1767623400000000", b"0", b"1"])
    assert (reply.state, reply.retry_after, reply.events, reply.extra) == (
        CircuitState.OPEN,
        2.5,
        ("trip", "closed>open"),
        (1,),
    )
    assert reply.opened_at is not None
    assert reply.recovered_at is None
    with pytest.raises(ValueError, match="unexpected event"):
        parse([*raw[:5], [b"explode"], *raw[6:], b"0", b"0"])
    with pytest.raises(TypeError, match="not a breaker reply"):
        parse(b"OK")

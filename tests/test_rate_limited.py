"""The rate_limited decorator: limits from arguments, raise or block, signature, methods, shared limiters."""

from __future__ import annotations

import contextlib
import inspect
import threading
from typing import Any, Callable, Iterator, List

import pytest

from circuit_breakers.clock import ManualClock
from circuit_breakers.decorators import rate_limited
from circuit_breakers.errors import ConfigError, ConfigTypeError, RateLimitExceeded
from circuit_breakers.ratelimit import Limit, RateLimiter

JOIN_SECONDS = 5.0


def shout(word: str, times: int = 1, *, end: str = "!") -> str:
    """Return the word in capitals."""
    return (word.upper() + end) * times


def start(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def join(thread: threading.Thread) -> None:
    thread.join(JOIN_SECONDS)
    assert not thread.is_alive(), "thread did not finish"


# --- configuration --------------------------------------------------------------------------------


async def fetch_async() -> int:
    return 1


def fetch_many() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (rate_limited, ConfigError, "needs max_per_minute, max_per_hour or limiter"),
        (lambda: rate_limited(10, 5), ConfigError, r"max_per_hour must be >= max_per_minute \(10\), got 5"),
        (lambda: rate_limited(0), ConfigError, "max_per_minute must be >= 1, got 0"),
        (lambda: rate_limited(None, 0), ConfigError, "max_per_hour must be >= 1, got 0"),
        (lambda: rate_limited(True), ConfigTypeError, "max_per_minute must be an int, got True"),
        (lambda: rate_limited(5, 2.5), ConfigTypeError, "max_per_hour must be an int, got 2.5"),
        (lambda: rate_limited(shout), ConfigTypeError, "write @rate_limited"),
        (lambda: rate_limited(5, timeout=1.0), ConfigTypeError, "needs block=True"),
        (lambda: rate_limited(5, block=True, timeout=-1), ConfigError, "timeout must be >= 0"),
        (lambda: rate_limited(5, block=1), ConfigTypeError, "block must be a bool"),
        (lambda: rate_limited(limiter=Limit(5, 60)), ConfigTypeError, "limiter must be a RateLimiter"),
        (lambda: rate_limited(5, limiter=RateLimiter(Limit(5, 60))), ConfigTypeError, "takes no max_per_minute"),
        (lambda: rate_limited(limiter=RateLimiter(Limit(5, 60)), name="x"), ConfigTypeError, "takes no"),
        (lambda: rate_limited(5)(fetch_async), ConfigTypeError, "is async"),
        (lambda: rate_limited(5)(fetch_many), ConfigTypeError, "is a generator function"),
        (lambda: rate_limited(5, name="")(shout), ConfigError, "name must not be blank"),
        (lambda: rate_limited(5, clock=object())(shout), ConfigTypeError, "clock must have monotonic"),
    ],
)
def test_bad_arguments_are_rejected(build: Callable[[], object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build()


def test_limits_come_from_per_minute_and_per_hour() -> None:
    assert rate_limited(10, 100)(shout).limiter.limits == (Limit(10, 60), Limit(100, 3600))
    assert rate_limited(10)(shout).limiter.limits == (Limit(10, 60),)
    assert rate_limited(max_per_hour=100)(shout).limiter.limits == (Limit(100, 3600),)
    assert rate_limited(10, 10)(shout).limiter.limits == (Limit(10, 60), Limit(10, 3600))


# --- the wrapper --------------------------------------------------------------------------------------


def test_wrapper_keeps_name_doc_and_signature() -> None:
    limited = rate_limited(5, clock=ManualClock())(shout)
    assert limited.__name__ == "shout"
    assert limited.__doc__ == "Return the word in capitals."
    assert limited.__wrapped__ is shout  # type: ignore[attr-defined]
    assert inspect.signature(limited) == inspect.signature(shout)
    assert limited("hi", 2, end="?") == "HI?HI?"


def test_limiter_is_named_after_the_function_unless_named() -> None:
    assert rate_limited(5)(shout).limiter.name == "shout"
    assert rate_limited(5, name="quotes")(shout).limiter.name == "quotes"


def test_non_blocking_call_raises_without_calling_the_function() -> None:
    clock = ManualClock()
    calls: List[int] = []

    @rate_limited(max_per_minute=2, clock=clock)
    def record(value: int) -> int:
        calls.append(value)
        return value

    assert record(1) == 1
    clock.advance(15)
    assert record(2) == 2
    with pytest.raises(RateLimitExceeded) as caught:
        record(3)
    assert caught.value.name == "test_non_blocking_call_raises_without_calling_the_function.<locals>.record"
    assert caught.value.retry_after == 45.0
    assert calls == [1, 2]
    clock.advance(45)
    assert record(4) == 4
    assert calls == [1, 2, 4]


def test_exceptions_of_the_function_pass_through_and_the_permit_stays_used() -> None:
    @rate_limited(max_per_minute=1, clock=ManualClock())
    def fail() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        fail()
    with pytest.raises(RateLimitExceeded):
        fail()


def test_hour_limit_applies_across_minutes() -> None:
    clock = ManualClock()
    ping = rate_limited(2, 3, clock=clock)(shout)
    ping("a")
    ping("a")
    clock.advance(60)
    ping("a")
    with pytest.raises(RateLimitExceeded) as caught:
        ping("a")
    assert caught.value.retry_after == 3540.0


def test_each_decorated_function_gets_its_own_limiter() -> None:
    decorate = rate_limited(1, clock=ManualClock())
    first, second = decorate(shout), decorate(str.upper)
    assert first.limiter is not second.limiter
    first("a")
    assert second("b") == "B"


def test_a_given_limiter_is_shared() -> None:
    limiter = RateLimiter(Limit(2, 60), name="broker", clock=ManualClock())
    first = rate_limited(limiter=limiter)(shout)
    second = rate_limited(limiter=limiter)(str.lower)
    assert first.limiter is second.limiter is limiter
    first("a")
    second("B")
    with pytest.raises(RateLimitExceeded, match="'broker'"):
        first("c")


def test_works_on_methods_with_one_limiter_for_all_instances() -> None:
    clock = ManualClock()

    class Client:
        def __init__(self, prefix: str) -> None:
            self.prefix = prefix

        @rate_limited(max_per_minute=2, clock=clock)
        def fetch(self, symbol: str) -> str:
            return self.prefix + symbol

    one, two = Client("1:"), Client("2:")
    assert one.fetch("SPY") == "1:SPY"
    assert two.fetch("QQQ") == "2:QQQ"
    assert Client.fetch.limiter is one.fetch.limiter
    assert inspect.signature(one.fetch) == inspect.signature(Client("x").fetch)
    with pytest.raises(RateLimitExceeded):
        one.fetch("IWM")
    clock.advance(60)
    assert one.fetch("IWM") == "1:IWM"


# --- block=True -----------------------------------------------------------------------------------------


def test_blocking_call_waits_until_the_clock_frees_a_permit() -> None:
    clock = ManualClock()
    calls: List[str] = []
    record = rate_limited(1, block=True, clock=clock)(calls.append)
    record("first")
    entered, done = threading.Event(), threading.Event()

    def caller() -> None:
        entered.set()
        record("second")
        done.set()

    thread = start(caller)
    assert entered.wait(JOIN_SECONDS)
    assert not done.wait(0.1), "the blocking call ran while the window was full"
    assert calls == ["first"]
    clock.advance(60)
    assert done.wait(JOIN_SECONDS)
    join(thread)
    assert calls == ["first", "second"]


def test_blocking_call_raises_when_its_timeout_passes() -> None:
    clock = ManualClock()
    calls: List[str] = []
    record = rate_limited(1, block=True, timeout=10, clock=clock)(calls.append)
    record("first")
    errors: List[RateLimitExceeded] = []
    entered = threading.Event()

    def caller() -> None:
        entered.set()
        try:
            record("second")
        except RateLimitExceeded as exc:
            errors.append(exc)

    thread = start(caller)
    assert entered.wait(JOIN_SECONDS)
    clock.advance(20)
    join(thread)
    assert [exc.retry_after for exc in errors] == [40.0]
    assert calls == ["first"]


def test_blocking_call_with_zero_timeout_never_waits() -> None:
    record = rate_limited(1, block=True, timeout=0, clock=ManualClock())(shout)
    record("a")
    with pytest.raises(RateLimitExceeded):
        record("b")


def test_concurrent_calls_run_exactly_max_per_minute_times() -> None:
    calls: List[Any] = []
    record = rate_limited(25, clock=ManualClock())(calls.append)
    barrier = threading.Barrier(8, timeout=JOIN_SECONDS)

    def worker() -> None:
        barrier.wait()
        for i in range(50):
            with contextlib.suppress(RateLimitExceeded):
                record(i)

    threads = [start(worker) for _ in range(8)]
    for thread in threads:
        join(thread)
    assert len(calls) == 25

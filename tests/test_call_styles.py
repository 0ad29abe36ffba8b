"""The three ways to call through a breaker: call(), decorators and the with statement.

The tests taking ``make_any`` are part of the breaker contract (tests/breakers.py): they run against
every implementation. The ``@circuit_breaker(name)`` registry decorator is the in-process breaker's.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any, Callable, Iterator, List

import pytest

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitBreakerManager,
    CircuitOpenException,
    CircuitState,
    CircuitType,
    ConfigTypeError,
    DuplicateBreakerError,
    ManualClock,
    circuit_breaker,
    default_manager,
)

from .breakers import MakeAny
from .conftest import Boom

MakeBreaker = Callable[..., CircuitBreaker]
Drive = Callable[..., None]


@pytest.fixture
def registry(manager: CircuitBreakerManager) -> CircuitBreakerManager:
    """A manager for the decorator tests, holding one placeholder breaker.

    An *empty* CircuitBreakerManager is falsy, and circuit_breaker() then falls back to the
    process-wide default_manager (see test_circuit_breaker_uses_given_empty_manager).
    """
    manager.create_circuit_breaker("placeholder")
    return manager


def join_all(threads: List[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)


# --- call() -----------------------------------------------------------------------------------


def test_call_passes_args_and_kwargs_and_returns_result(make_any: MakeAny) -> None:
    def price(symbol: str, *, scale: int = 1) -> str:
        return f"{symbol}:{100 * scale}"

    assert make_any().call(price, "SPY", scale=2) == "SPY:200"


def test_call_accepts_kwargs_named_like_its_own_parameter(make_any: MakeAny) -> None:
    assert make_any().call(dict, func=1, args=2) == {"func": 1, "args": 2}


def test_call_reraises_the_same_exception(make_any: MakeAny) -> None:
    error = Boom("original")

    def raise_it() -> None:
        raise error

    with pytest.raises(Boom) as info:
        make_any().call(raise_it)
    assert info.value is error


def test_call_counts_success(make_any: MakeAny) -> None:
    breaker = make_any()
    breaker.call(len, "abc")
    assert breaker.metrics.successful_requests == 1


# --- @breaker ---------------------------------------------------------------------------------


def test_decorator_preserves_metadata(make_any: MakeAny) -> None:
    def get_quote(symbol: str, venue: str = "NYSE") -> float:
        """Return the last price."""
        return 1.0

    protected = make_any()(get_quote)
    assert protected("SPY", venue="XNYS") == 1.0
    assert protected.__name__ == "get_quote"
    assert protected.__doc__ == "Return the last price."
    assert protected.__wrapped__ is get_quote  # type: ignore[attr-defined]
    assert protected.__qualname__ == get_quote.__qualname__
    assert inspect.signature(protected) == inspect.signature(get_quote)


def test_decorator_exposes_breaker(make_any: MakeAny) -> None:
    breaker = make_any()

    @breaker
    def ping() -> str:
        return "pong"

    assert ping.breaker is breaker
    assert ping() == "pong"
    assert breaker.metrics.successful_requests == 1


def test_decorated_function_is_not_called_while_open(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=1)
    calls = []

    @breaker
    def work() -> None:
        calls.append(1)

    fail(breaker)
    with pytest.raises(CircuitOpenException):
        work()
    assert calls == []


def test_decorated_function_failures_trip_breaker(make_any: MakeAny) -> None:
    breaker = make_any(failure_threshold=2)

    @breaker
    def broken() -> None:
        raise Boom("down")

    for _ in range(2):
        with pytest.raises(Boom):
            broken()
    assert breaker.state is CircuitState.OPEN


class _Client:
    breaker = CircuitBreaker("client_api", clock=ManualClock())

    def __init__(self, base: int) -> None:
        self.base = base

    @breaker
    def fetch(self, offset: int) -> int:
        """Fetch something."""
        return self.base + offset


def test_decorated_method_works_bound() -> None:
    assert _Client(10).fetch(5) == 15


def test_decorated_method_works_via_class() -> None:
    client = _Client(1)
    assert _Client.fetch(client, 2) == 3


def test_decorated_method_exposes_breaker_on_function_and_bound_method() -> None:
    assert _Client.fetch.breaker is _Client.breaker
    assert _Client(0).fetch.breaker is _Client.breaker


def test_decorated_method_signature_keeps_self() -> None:
    assert list(inspect.signature(_Client.fetch).parameters) == ["self", "offset"]
    assert list(inspect.signature(_Client(0).fetch).parameters) == ["offset"]


def test_decorated_method_binds_to_its_instance(make_any: MakeAny) -> None:
    breaker = make_any()

    class Client:
        def __init__(self, venue: str) -> None:
            self.venue = venue

        @breaker
        def quote(self, symbol: str) -> str:
            return f"{self.venue}:{symbol}"

    assert Client("XNYS").quote("SPY") == "XNYS:SPY"
    assert Client.quote.breaker is breaker


def test_decorating_bound_method_works(make_any: MakeAny) -> None:
    breaker = make_any()
    client = _Client(100)
    protected = breaker(client.fetch)
    assert protected(1) == 101
    assert protected.breaker is breaker


async def _async_fetch() -> int:
    return 1


async def _async_gen() -> Iterator[int]:  # type: ignore[misc]
    yield 1


def _gen() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize("func", [_async_fetch, _gen, _async_gen], ids=["async", "generator", "async_generator"])
def test_breaker_refuses_non_blocking_functions(make_any: MakeAny, func: Callable[..., object]) -> None:
    with pytest.raises(ConfigTypeError):
        make_any()(func)


@pytest.mark.parametrize("func", [_async_fetch, _gen, _async_gen], ids=["async", "generator", "async_generator"])
def test_circuit_breaker_refuses_non_blocking_functions(
    registry: CircuitBreakerManager, func: Callable[..., object]
) -> None:
    with pytest.raises(ConfigTypeError):
        circuit_breaker("nb", manager=registry)(func)


async def _fetch_price() -> float:
    return 101.5


def test_a_coroutine_returned_through_any_call_style_is_refused_and_counted_as_neither(
    make_any: MakeAny, fail: Drive
) -> None:
    """A plain function that returns a coroutine passes the decorator's check; the call still refuses it."""
    breaker = make_any(failure_threshold=1)

    def lazy() -> Any:  # a sync function returning an unrun coroutine
        return _fetch_price()

    protected = breaker(lazy)
    for call in (protected, lambda: breaker.call(lazy)):
        with pytest.raises(ConfigTypeError, match="async"):
            call()
    assert breaker.is_closed
    metrics = breaker.metrics
    assert (metrics.successful_requests, metrics.failed_requests, metrics.ignored_requests) == (0, 0, 2)
    assert breaker.get_status()["calls_in_window"] == 0


@pytest.mark.parametrize("state", ["closed", "half_open", "open"])
def test_call_with_a_non_callable_is_refused_after_admission(
    make_any: MakeAny, fail: Drive, clock: ManualClock, state: str
) -> None:
    """A non-callable is a ConfigTypeError counting nothing; while the breaker refuses, it is refused first."""
    breaker = make_any(failure_threshold=1, half_open_max_calls=1, open_timeout_seconds=10)
    if state != "closed":
        fail(breaker)
        clock.advance(10 if state == "half_open" else 5)
    before = breaker.metrics
    if state == "open":
        with pytest.raises(CircuitOpenException):
            breaker.call(42)  # type: ignore[call-overload]
        assert breaker.metrics.rejected_requests == before.rejected_requests + 1
        return
    with pytest.raises(ConfigTypeError, match="callable"):
        breaker.call(42)  # type: ignore[call-overload]
    assert breaker.metrics == before
    assert breaker.get_status()["half_open_in_flight"] == 0  # a half-open permit was given back
    assert breaker.allow()


def test_decorating_non_callable_raises(make_any: MakeAny) -> None:
    with pytest.raises(ConfigTypeError):
        make_any()(42)  # type: ignore[arg-type]


# --- @circuit_breaker(...) --------------------------------------------------------------------


def test_circuit_breaker_creates_configured_breaker(registry: CircuitBreakerManager) -> None:
    @circuit_breaker("broker", manager=registry, failure_threshold=2)
    def place() -> str:
        return "ok"

    assert place() == "ok"
    breaker = registry.get_circuit_breaker("broker")
    assert breaker is place.breaker
    assert breaker is not None
    assert breaker.config.failure_threshold == 2
    assert breaker.circuit_type is CircuitType.GENERIC


def test_circuit_breaker_applies_type_and_config(registry: CircuitBreakerManager) -> None:
    config = CircuitBreakerConfig(open_timeout_seconds=10, max_backoff_seconds=10)

    @circuit_breaker("feed", CircuitType.CONNECTION_FAILURE, config, manager=registry, failure_threshold=4)
    def read() -> None:
        return None

    assert read.breaker.circuit_type is CircuitType.CONNECTION_FAILURE
    assert read.breaker.config == config.replace(failure_threshold=4)


def test_circuit_breaker_preserves_metadata(registry: CircuitBreakerManager) -> None:
    def quote(symbol: str) -> float:
        """Quote."""
        return 1.0

    protected = circuit_breaker("q", manager=registry)(quote)
    assert protected.__name__ == "quote"
    assert protected.__doc__ == "Quote."
    assert inspect.signature(protected) == inspect.signature(quote)


def test_same_name_shares_one_breaker(registry: CircuitBreakerManager) -> None:
    @circuit_breaker("shared", manager=registry, failure_threshold=2)
    def first() -> None:
        raise Boom("1")

    @circuit_breaker("shared", manager=registry, failure_threshold=2)
    def second() -> None:
        raise Boom("2")

    assert first.breaker is second.breaker
    with pytest.raises(Boom):
        first()
    with pytest.raises(Boom):
        second()
    assert first.breaker.state is CircuitState.OPEN


def test_same_name_with_other_config_raises_duplicate(registry: CircuitBreakerManager) -> None:
    circuit_breaker("dup", manager=registry, failure_threshold=2)(len)
    with pytest.raises(DuplicateBreakerError) as info:
        circuit_breaker("dup", manager=registry, failure_threshold=3)(len)
    assert isinstance(info.value, ValueError)
    assert "dup" in str(info.value)


def test_same_name_with_other_type_raises_duplicate(registry: CircuitBreakerManager) -> None:
    circuit_breaker("typed", CircuitType.DAILY_LOSS, manager=registry)(len)
    with pytest.raises(DuplicateBreakerError):
        circuit_breaker("typed", CircuitType.RATE_LIMIT, manager=registry)(len)


def test_same_name_without_config_reuses_existing(registry: CircuitBreakerManager) -> None:
    first = circuit_breaker("reuse", manager=registry, failure_threshold=7)(len)
    second = circuit_breaker("reuse", manager=registry)(len)
    assert second.breaker is first.breaker
    assert second.breaker.config.failure_threshold == 7


def test_circuit_breaker_with_existing_breaker(make_breaker: MakeBreaker) -> None:
    breaker = make_breaker()
    protected = circuit_breaker(breaker)(len)
    assert protected.breaker is breaker
    assert protected("abcd") == 4


def test_circuit_breaker_with_existing_breaker_refuses_other_arguments(
    make_breaker: MakeBreaker, registry: CircuitBreakerManager
) -> None:
    with pytest.raises(ConfigTypeError):
        circuit_breaker(make_breaker(), manager=registry)
    with pytest.raises(ConfigTypeError):
        circuit_breaker(make_breaker(), failure_threshold=2)


def test_circuit_breaker_without_parentheses_raises() -> None:
    with pytest.raises(ConfigTypeError, match="parentheses"):

        @circuit_breaker  # type: ignore[arg-type]
        def oops() -> None:
            return None


def test_circuit_breaker_unknown_override_raises(registry: CircuitBreakerManager) -> None:
    with pytest.raises(ConfigTypeError, match="no_such"):
        circuit_breaker("x", manager=registry, no_such=1)
    assert "x" not in registry


def test_circuit_breaker_uses_given_empty_manager() -> None:
    manager = CircuitBreakerManager()
    name = "test_call_styles.empty_manager_breaker"
    try:
        protected = circuit_breaker(name, manager=manager)(len)
        assert manager.get_circuit_breaker(name) is protected.breaker
    finally:
        default_manager.remove(name)


def test_circuit_breaker_uses_default_manager() -> None:
    name = "test_call_styles.default_manager_breaker"
    try:
        protected = circuit_breaker(name)(len)
        assert default_manager.get_circuit_breaker(name) is protected.breaker
    finally:
        default_manager.remove(name)


# --- with breaker: ----------------------------------------------------------------------------


def test_with_returns_breaker_and_counts_success(make_any: MakeAny) -> None:
    breaker = make_any()
    with breaker as entered:
        assert entered is breaker
    assert breaker.metrics.successful_requests == 1


def test_with_rejects_on_entry_when_open(make_any: MakeAny, fail: Drive) -> None:
    breaker = make_any(failure_threshold=1)
    fail(breaker)
    ran = []
    with pytest.raises(CircuitOpenException), breaker:
        ran.append(1)
    assert ran == []
    assert breaker.metrics.rejected_requests == 1


def test_with_exception_counts_as_failure_and_propagates(make_any: MakeAny) -> None:
    breaker = make_any(failure_threshold=1)
    error = Boom("in block")
    with pytest.raises(Boom) as info, breaker:
        raise error
    assert info.value is error
    assert breaker.metrics.failed_requests == 1
    assert breaker.state is CircuitState.OPEN


def test_with_excluded_exception_counts_as_neither(make_any: MakeAny) -> None:
    breaker = make_any(failure_threshold=1, excluded_exceptions=(KeyError,))
    with pytest.raises(KeyError), breaker:
        raise KeyError("k")
    assert breaker.state is CircuitState.CLOSED
    assert breaker.metrics.ignored_requests == 1


def test_nested_with_on_one_thread_tracks_each_entry(make_any: MakeAny) -> None:
    breaker = make_any(failure_threshold=10)
    with breaker:
        with pytest.raises(Boom), breaker:
            raise Boom("inner")
        with breaker:
            pass
    metrics = breaker.metrics
    assert (metrics.successful_requests, metrics.failed_requests) == (2, 1)


def test_nested_with_blocks_track_each_entry(make_any: MakeAny) -> None:
    breaker = make_any(failure_threshold=1)

    def outer_fails_inner_succeeds() -> None:
        with breaker:
            with breaker:
                pass
            raise Boom("outer")

    with pytest.raises(Boom):
        outer_fails_inner_succeeds()
    assert breaker.is_open
    assert breaker.metrics.successful_requests == 1


def test_nested_with_in_half_open_takes_one_permit_each(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, half_open_max_calls=2, success_threshold=2)
    fail(breaker)
    clock.advance(60)
    with breaker:
        with breaker:
            assert breaker.get_status()["half_open_in_flight"] == 2
            with pytest.raises(CircuitOpenException), breaker:
                pass
        assert breaker.state is CircuitState.HALF_OPEN  # one trial success so far
    assert breaker.state is CircuitState.CLOSED


def test_with_entries_from_many_threads_are_tracked_per_entry(make_any: MakeAny) -> None:
    breaker = make_any(failure_threshold=1000, minimum_calls=1000)
    workers = 8
    inside = threading.Barrier(workers, timeout=10)
    errors: List[BaseException] = []

    def inner(index: int) -> None:
        with breaker:  # inner entry: fails on odd threads only
            inside.wait()  # every thread holds both of its entries at once
            if index % 2:
                raise Boom("odd")

    def work(index: int) -> None:
        try:
            with breaker:  # outer entry: always succeeds
                if index % 2:
                    with pytest.raises(Boom):
                        inner(index)
                else:
                    inner(index)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    join_all(threads)
    assert errors == []
    metrics = breaker.metrics
    assert (metrics.successful_requests, metrics.failed_requests) == (workers + workers // 2, workers // 2)


def test_with_stack_is_per_thread(make_any: MakeAny, fail: Drive, clock: ManualClock) -> None:
    breaker = make_any(failure_threshold=1, success_threshold=1, half_open_max_calls=1)
    entered, release = threading.Event(), threading.Event()
    errors: List[BaseException] = []

    def other_thread() -> None:
        try:
            with breaker:  # admitted while CLOSED; finishes late, after the trip
                entered.set()
                assert release.wait(timeout=10)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=other_thread)
    worker.start()
    assert entered.wait(timeout=10)
    fail(breaker)
    clock.advance(60)
    states: List[CircuitState] = []

    def failing_trial() -> None:
        with breaker:  # this thread's half-open trial
            release.set()
            join_all([worker])  # the other thread leaves its own (stale) entry, not this trial
            states.append(breaker.state)
            raise Boom("trial failed")

    with pytest.raises(Boom):
        failing_trial()
    assert errors == []
    assert states == [CircuitState.HALF_OPEN]
    assert breaker.state is CircuitState.OPEN

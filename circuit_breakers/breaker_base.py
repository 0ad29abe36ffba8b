"""What every breaker shares, whatever keeps its state: :class:`Breaker`, the base class.

A breaker has a name, a type, a config and an open-timeout policy (:mod:`circuit_breakers.backoff`),
sorts the exceptions that leave a protected call into failures and "neither" (the library's own
refusals are always "neither"), and offers the same calling styles (``call``, ``with breaker:``),
callbacks, state tests and status. Subclasses decide admission and keep the state:
:class:`~circuit_breakers.breaker.CircuitBreaker` in this process,
:class:`~circuit_breakers.redis.RedisCircuitBreaker` in Redis for every process that names it.
Both follow one table of rules (the state x event table in ``breaker.py``'s docstring).
"""

from __future__ import annotations

import inspect
import threading
import types
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Callable, Dict, Generic, List, Optional, Type, TypeVar

from typing_extensions import ParamSpec, Self

from circuit_breakers.backoff import Backoff, backoff_from_config
from circuit_breakers.config import CircuitBreakerConfig, compile_matchers
from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.events import Callbacks
from circuit_breakers.outage import REFUSALS
from circuit_breakers.types import CircuitState, CircuitType

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True)
class BreakerMetrics:
    """A snapshot of a breaker's counters. ``total_requests`` counts every finished or rejected call."""

    total_requests: int
    successful_requests: int
    failed_requests: int
    rejected_requests: int
    ignored_requests: int
    circuit_trips: int
    last_failure_time: Optional[datetime]
    last_recovery_time: Optional[datetime]


UNRUN = (types.CoroutineType, types.AsyncGeneratorType)
"""What an async function returns without running its body."""


class _NotRun(BaseException):
    """The outcome of a call whose body never ran: neither a success nor a failure."""


NOT_RUN = _NotRun()


def refuse_unrun(func: object, result: Any) -> ConfigTypeError:
    """Close what an async function returned (its body never runs) and say why it is refused."""
    if isinstance(result, types.CoroutineType):
        result.close()
    return ConfigTypeError(f"{func!r} is async; circuit_breakers protects blocking calls only")


def ensure_sync(func: Callable[..., Any]) -> None:
    """Raise ConfigTypeError if ``func`` is not callable, or would return a coroutine or generator."""
    if not callable(func):
        raise ConfigTypeError(f"a protected function must be callable, got {func!r}")
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        raise ConfigTypeError(f"{func!r} is async; circuit_breakers protects blocking calls only")
    if inspect.isgeneratorfunction(func):
        raise ConfigTypeError(f"{func!r} is a generator function; its body would run outside the breaker")


def iso_time(moment: Optional[datetime]) -> Optional[str]:
    """``moment`` in ISO 8601, or None."""
    return None if moment is None else moment.isoformat()


def describe_error(error: object) -> Optional[str]:
    """What a reported failure says: ``Type: message`` for an exception, the text otherwise."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    return str(error)


class Breaker(ABC, Generic[T]):
    """A CLOSED / OPEN / HALF_OPEN breaker: the part every implementation shares. ``T`` is its admission tag.

    Raises ConfigTypeError / ConfigError naming the argument for a bad name, type, config or
    ``backoff`` (a :class:`~circuit_breakers.backoff.Backoff`; by default the config's policy).
    Subclasses implement ``_admit_or_raise``, ``_succeeded``, ``_raised``, ``_release`` and ``state``.
    """

    def __init__(
        self,
        name: str,
        circuit_type: CircuitType = CircuitType.GENERIC,
        config: Optional[CircuitBreakerConfig] = None,
        *,
        backoff: Optional[Backoff] = None,
    ) -> None:
        if not isinstance(name, str):
            raise ConfigTypeError(f"breaker name must be a str, got {name!r}")
        if not name.strip():
            raise ConfigError(f"breaker name must be a non-empty str, got {name!r}")
        if not isinstance(circuit_type, CircuitType):
            raise ConfigTypeError(f"circuit_type must be a CircuitType, got {circuit_type!r}")
        if config is None:
            config = CircuitBreakerConfig()
        elif not isinstance(config, CircuitBreakerConfig):
            raise ConfigTypeError(f"config must be a CircuitBreakerConfig, got {config!r}")
        if backoff is not None and not isinstance(backoff, Backoff):
            raise ConfigTypeError(f"backoff must be a Backoff (FixedBackoff, ExponentialBackoff), got {backoff!r}")
        self.name = name
        self.circuit_type = circuit_type
        self.config = config
        self._backoff: Backoff = backoff_from_config(config) if backoff is None else backoff
        # The library's own refusals are never failures, whatever failure_exceptions says.
        self._is_excluded = compile_matchers((*REFUSALS, *config.excluded_exceptions), on_error=False)
        self._is_failure = compile_matchers(config.failure_exceptions, on_error=True)
        self._on_trip: Callbacks[[str, CircuitType]] = Callbacks("trip")
        self._on_recovery: Callbacks[[str, CircuitType]] = Callbacks("recovery")
        self._on_state_change: Callbacks[[str, CircuitState, CircuitState]] = Callbacks("state change")
        self._entries = threading.local()  # per-thread stack of `with` admissions

    def _counts_as_failure(self, exc: BaseException) -> bool:
        """Whether an exception that left a protected call is a failure (else it counts as neither)."""
        return isinstance(exc, Exception) and not self._is_excluded(exc) and self._is_failure(exc)

    @abstractmethod
    def _admit_or_raise(self) -> T:
        """Admit one call and return its tag; raise CircuitOpenException (counted) if rejected."""

    @abstractmethod
    def _succeeded(self, ticket: T) -> None:
        """Record the success of the call admitted with ``ticket``."""

    @abstractmethod
    def _raised(self, ticket: T, exc: BaseException) -> None:
        """Record an exception that left the call admitted with ``ticket``."""

    @abstractmethod
    def _release(self, ticket: T) -> None:
        """Give back what the admission with ``ticket`` holds (a half-open trial permit), counting nothing."""

    @property
    @abstractmethod
    def state(self) -> CircuitState:
        """The current state."""

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` through the breaker and return its result.

        Blocks for as long as ``func`` does (a shared breaker adds its store's round trips). Raises
        CircuitOpenException without calling ``func`` while the breaker rejects calls; otherwise
        re-raises whatever ``func`` raised. Raises ConfigTypeError, counting nothing, if ``func`` is
        not callable; and ConfigTypeError if it is async (its coroutine is closed unrun, and the
        call counts as neither success nor failure: it was admitted before that could be seen).
        While the breaker rejects, a call is rejected before its function is looked at (the
        in-process breaker's rejection, its hot path, never pays for that look).
        """
        ticket = self._admit_or_raise()
        if not callable(func):
            raise self._not_callable(ticket, func)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._raised(ticket, exc)
            raise
        if isinstance(result, UNRUN):  # an async function: its body has not run, so nothing happened yet
            self._raised(ticket, NOT_RUN)  # not an Exception: neither, and a half-open permit given back
            raise refuse_unrun(func, result)
        self._succeeded(ticket)
        return result

    def _not_callable(self, ticket: T, func: object) -> ConfigTypeError:
        """Give back the admission of a call whose function is not callable; the error to raise."""
        self._release(ticket)
        return ConfigTypeError(f"a protected function must be callable, got {func!r}")

    def __enter__(self) -> Self:
        """Admit the block as one protected call; raises CircuitOpenException while rejecting."""
        ticket = self._admit_or_raise()
        try:
            stack: List[T] = self._entries.stack
        except AttributeError:
            stack = self._entries.stack = []
        stack.append(ticket)
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        ticket = self._entries.stack.pop()
        if exc is None:
            self._succeeded(ticket)
        else:
            self._raised(ticket, exc)

    def register_trip_callback(self, callback: Callable[[str, CircuitType], object]) -> None:
        """Call ``callback(name, circuit_type)`` each time the breaker opens."""
        self._on_trip.add(callback)

    def register_recovery_callback(self, callback: Callable[[str, CircuitType], object]) -> None:
        """Call ``callback(name, circuit_type)`` each time the breaker closes after being open."""
        self._on_recovery.add(callback)

    def register_state_change_callback(self, callback: Callable[[str, CircuitState, CircuitState], object]) -> None:
        """Call ``callback(name, old_state, new_state)`` on every state change."""
        self._on_state_change.add(callback)

    @property
    def is_open(self) -> bool:
        return self.state is CircuitState.OPEN

    @property
    def is_closed(self) -> bool:
        return self.state is CircuitState.CLOSED

    @property
    def is_half_open(self) -> bool:
        return self.state is CircuitState.HALF_OPEN

    def _status(
        self,
        *,
        state: Optional[CircuitState],
        forced_open: bool,
        failures_in_window: Optional[int],
        calls_in_window: Optional[int],
        consecutive_trips: Optional[int],
        seconds_until_retry: Optional[float],
        half_open_in_flight: Optional[int],
        metrics: BreakerMetrics,
        last_failure_message: Optional[str],
        opened_at: Optional[datetime],
    ) -> Dict[str, Any]:
        """The status dict every breaker returns (JSON-ready); None where a shared store cannot say."""
        return {
            "name": self.name,
            "type": self.circuit_type.value,
            "state": (state or CircuitState.OPEN).value,
            "forced_open": forced_open,
            "failures_in_window": failures_in_window,
            "calls_in_window": calls_in_window,
            "failure_rate": _rate(failures_in_window, calls_in_window),
            "consecutive_trips": consecutive_trips,
            "current_open_timeout": None if consecutive_trips is None else self._backoff(max(consecutive_trips, 1)),
            "seconds_until_retry": seconds_until_retry,
            "half_open_in_flight": half_open_in_flight,
            "total_requests": metrics.total_requests,
            "successful_requests": metrics.successful_requests,
            "failed_requests": metrics.failed_requests,
            "rejected_requests": metrics.rejected_requests,
            "ignored_requests": metrics.ignored_requests,
            "circuit_trips": metrics.circuit_trips,
            "last_failure_time": iso_time(metrics.last_failure_time),
            "last_failure_message": last_failure_message,
            "last_recovery_time": iso_time(metrics.last_recovery_time),
            "opened_at": iso_time(opened_at) if state is not None and state is not CircuitState.CLOSED else None,
        }


def _rate(failures: Optional[int], calls: Optional[int]) -> Optional[float]:
    """failures / calls over the window (0.0 without calls; None when a shared store cannot say)."""
    if calls is None:
        return None
    return (failures or 0) / calls if calls else 0.0

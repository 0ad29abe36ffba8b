"""The CircuitBreaker state machine, usable as ``breaker.call(f)``, ``@breaker`` and ``with breaker:``.

Flow of a protected call: an admission decision -> the call runs with no lock held -> a record of
the outcome -> callbacks fired after the lock is released. The common cases take no lock at all:
admission while CLOSED (always yes), rejection while OPEN before its timeout (always no), and a
success while CLOSED (counted with atomic counters into the newest bucket of the window, see
:class:`~circuit_breakers.window.BucketedWindow`). Everything that can change the state — a failure,
a half-open trial, a timeout running out — takes the lock.

Every admission is tagged with the *period* (one stay in one state) it entered under. An outcome
moves the state machine only if its period is still the current one, so a call admitted before a
trip that finishes late can neither close the breaker that opened meanwhile nor count against the
window of a later CLOSED period. A half-open trial's permit belongs to its period: when the period
ends, its permits end with it, so no permit can be lost.
"""

from __future__ import annotations

import functools
import threading
from datetime import datetime
from time import monotonic as _monotonic  # a module global, so that freezegun patches it
from typing import Any, Callable, Dict, Optional, TypeVar

from typing_extensions import ParamSpec

from circuit_breakers.backoff import Backoff
from circuit_breakers.breaker_base import (
    NOT_RUN,
    UNRUN,
    Breaker,
    BreakerMetrics,
    describe_error,
    ensure_sync,
    refuse_unrun,
)
from circuit_breakers.clock import SYSTEM_CLOCK, Clock
from circuit_breakers.config import CircuitBreakerConfig
from circuit_breakers.errors import CircuitOpenException, ConfigTypeError
from circuit_breakers.events import Pending, fire
from circuit_breakers.types import CircuitState, CircuitType
from circuit_breakers.window import BucketedWindow, Tally
from circuit_breakers.wrapped import Protected

P = ParamSpec("P")
P2 = ParamSpec("P2")
S = TypeVar("S")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
T = TypeVar("T")

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN


class _Period:
    """One stay in one state; the identity of the object is the admission tag."""

    __slots__ = ("state", "started", "open_for", "forced", "in_flight", "successes", "trial_started")

    def __init__(self, state: CircuitState, started: float, open_for: float = 0.0, forced: bool = False) -> None:
        self.state = state
        self.started = started
        self.open_for = open_for  # OPEN: seconds until HALF_OPEN (ignored when forced)
        self.forced = forced  # OPEN by force_open(): stays until force_close()/reset()
        self.in_flight = 0  # HALF_OPEN: trial permits taken and not yet given back
        self.successes = 0  # HALF_OPEN: trial successes so far
        self.trial_started: Optional[float] = None  # HALF_OPEN: when the first trial was admitted


class CircuitBreaker(Breaker["_Period"]):
    """A thread-safe CLOSED / OPEN / HALF_OPEN breaker around any blocking call.

    >>> breaker = CircuitBreaker("broker_api", CircuitType.CONNECTION_FAILURE)
    >>> breaker.call(len, "abc")
    3

    Calls never hold the breaker's lock while the protected function or a callback runs, so any
    number of threads call through one breaker at once. Transitions OPEN -> HALF_OPEN and
    half-open timeouts are observed lazily, on the next call or status read (no timer threads).
    """

    def __init__(
        self,
        name: str,
        circuit_type: CircuitType = CircuitType.GENERIC,
        config: Optional[CircuitBreakerConfig] = None,
        *,
        clock: Optional[Clock] = None,
        backoff: Optional[Backoff] = None,
    ) -> None:
        super().__init__(name, circuit_type, config, backoff=backoff)
        if clock is None:
            clock = SYSTEM_CLOCK
        elif not isinstance(clock, Clock):
            raise ConfigTypeError(f"clock must have monotonic() and now(), got {clock!r}")
        self._clock = clock
        self._mono = clock.monotonic
        config = self.config
        # _lock guards every attribute below; reading the single reference _period needs no lock.
        self._lock = threading.Lock()
        self._window = BucketedWindow(config.failure_window_seconds)
        self._period = _Period(_CLOSED, self._mono())
        self._zero_counters()

    def _zero_counters(self) -> None:
        self._consecutive_trips = 0
        self._failures = self._ignored = self._trips = 0
        self._successes = Tally()  # counted without the lock (read under it)
        self._rejections = Tally()
        self._last_failure_time: Optional[datetime] = None
        self._last_failure_message: Optional[str] = None
        self._last_recovery_time: Optional[datetime] = None
        self._opened_at: Optional[datetime] = None

    # --- transitions (lock held) ------------------------------------------------------------

    def _enter(self, state: CircuitState, now: float, pending: Pending, *, forced: bool = False) -> None:
        old = self._period.state
        open_for = 0.0
        if state is _OPEN:
            if forced:
                open_for = self._backoff(max(self._consecutive_trips, 1))
            else:
                self._consecutive_trips += 1
                open_for = self._backoff(self._consecutive_trips)
            if old is not _OPEN:
                self._trips += 1
                self._opened_at = self._clock.now()
                pending.append((self._on_trip, (self.name, self.circuit_type)))
        elif state is _CLOSED:
            self._consecutive_trips = 0
            self._last_recovery_time = self._clock.now()
            pending.append((self._on_recovery, (self.name, self.circuit_type)))
        self._window.clear()
        self._period = _Period(state, now, open_for, forced)
        if old is not state:
            pending.append((self._on_state_change, (self.name, old, state)))

    def _refresh(self, now: float, pending: Pending) -> None:
        """Apply the transitions that time alone causes."""
        period = self._period
        if period.state is _OPEN:
            if not period.forced and now - period.started >= period.open_for:
                self._enter(_HALF_OPEN, now, pending)
        elif period.state is _HALF_OPEN:
            started = period.trial_started
            if started is not None and now - started >= self.config.half_open_timeout_seconds:
                self._enter(_OPEN, now, pending)

    def _retry_after(self, period: _Period, now: float) -> Optional[float]:
        if period.state is _OPEN:
            return None if period.forced else max(period.started + period.open_for - now, 0.0)
        return 0.0 if period.state is _HALF_OPEN else None

    # --- admission and outcomes -------------------------------------------------------------

    def _admit(self) -> Optional[_Period]:
        """Return the admission tag, or None after counting a rejection."""
        period = self._period
        if period.state is _CLOSED:
            return period
        if period.state is _OPEN and (period.forced or self._mono() - period.started < period.open_for):
            self._rejections.add()  # still open: nothing can change, no lock needed
            return None
        pending: Pending = []
        ticket: Optional[_Period] = None
        with self._lock:
            now = self._mono()
            self._refresh(now, pending)
            period = self._period
            if period.state is _CLOSED:
                ticket = period
            elif period.state is _HALF_OPEN and period.in_flight < self.config.half_open_max_calls:
                period.in_flight += 1
                if period.trial_started is None:
                    period.trial_started = now
                ticket = period
            else:
                self._rejections.add()
        if pending:
            fire(pending)
        return ticket

    def _rejection(self) -> CircuitOpenException:
        period = self._period
        return CircuitOpenException(self.name, self.circuit_type, period.state, self._retry_after(period, self._mono()))

    def _admit_or_raise(self) -> _Period:
        ticket = self._admit()
        if ticket is None:
            raise self._rejection()
        return ticket

    def _succeeded(self, ticket: _Period) -> None:
        self._successes.add()
        if ticket.state is _CLOSED and ticket is self._period:
            now = self._mono()
            start, end, add = self._window.live
            if start <= now < end:
                add()
                return
        pending: Pending = []
        with self._lock:
            if ticket.state is _CLOSED:
                if ticket is self._period:
                    self._window.add(self._mono(), False)
            elif ticket.state is _HALF_OPEN:
                now = self._mono()
                self._refresh(now, pending)
                # in_flight == 0: an untagged record_success() for a call admitted before this period.
                if ticket is self._period and ticket.in_flight > 0:
                    ticket.in_flight -= 1
                    ticket.successes += 1
                    if ticket.successes >= self.config.success_threshold:
                        self._enter(_CLOSED, now, pending)
        if pending:
            fire(pending)

    def _failed(self, ticket: _Period, error: object) -> None:
        pending: Pending = []
        with self._lock:
            now = self._mono()
            self._failures += 1
            self._last_failure_time = self._clock.now()
            self._last_failure_message = describe_error(error)
            if ticket.state is _HALF_OPEN:
                self._refresh(now, pending)
            if ticket is self._period:
                if ticket.state is _CLOSED:
                    window = self._window
                    window.add(now, True)
                    config = self.config
                    if window.failures >= config.failure_threshold or (
                        window.calls >= config.minimum_calls
                        and window.failures / window.calls >= config.failure_rate_threshold
                    ):
                        self._enter(_OPEN, now, pending)
                elif ticket.state is _HALF_OPEN:
                    self._enter(_OPEN, now, pending)
        if pending:
            fire(pending)

    def _ignored_outcome(self, ticket: _Period) -> None:
        with self._lock:
            self._ignored += 1
            if ticket.state is _HALF_OPEN and ticket is self._period:
                ticket.in_flight -= 1

    def _raised(self, ticket: _Period, exc: BaseException) -> None:
        """Record an exception that left a protected call: failure, or neither (see the config)."""
        if self._counts_as_failure(exc):
            self._failed(ticket, exc)
        else:
            self._ignored_outcome(ticket)

    # --- call styles --------------------------------------------------------------------------

    def call(self, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Call ``func(*args, **kwargs)`` through the breaker and return its result (see Breaker.call).

        The same lock-free paths as the decorator's, inlined for the same reason (they are the hot
        paths): a call admitted while CLOSED, a rejection while OPEN before its timeout. Every other
        case (a half-open trial, a timeout that just ran out) takes the general path, with the lock.
        """
        ticket = self._period
        if ticket.state is _OPEN:
            left = None if ticket.forced else ticket.started + ticket.open_for - self._mono()
            if left is None or left > 0:
                self._rejections.add()
                raise CircuitOpenException(self.name, self.circuit_type, _OPEN, left)
        if ticket.state is not _CLOSED or not callable(func):
            return Breaker.call(self, func, *args, **kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            self._raised(ticket, exc)
            raise
        if isinstance(result, UNRUN):  # an async function: its body has not run
            self._raised(ticket, NOT_RUN)
            raise refuse_unrun(func, result)
        self._succeeded(ticket)
        return result

    def __call__(self, func: Callable[P, R]) -> Protected[P, R]:
        """Use the breaker as a decorator; the wrapper keeps ``func``'s signature and metadata."""
        ensure_sync(func)
        breaker, succeeded, raised = self, self._succeeded, self._raised
        name, circuit_type, window = self.name, self.circuit_type, self._window
        mono = None if self._clock is SYSTEM_CLOCK else self._mono  # None: read _monotonic, 20 ns sooner

        @functools.wraps(func)
        def protected(*args: P.args, **kwargs: P.kwargs) -> R:
            ticket = breaker._period
            if ticket.state is not _CLOSED:
                if ticket.state is _OPEN:  # _admit's lock-free rejection, inlined
                    left = None
                    if not ticket.forced:
                        left = ticket.started + ticket.open_for - (_monotonic() if mono is None else mono())
                    if left is None or left > 0:
                        breaker._rejections.add()
                        raise CircuitOpenException(name, circuit_type, _OPEN, left)
                return Breaker.call(breaker, func, *args, **kwargs)  # a half-open trial: the general path
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                raised(ticket, exc)
                raise
            # _succeeded's lock-free path, inlined: this is the hot path of the whole library.
            if ticket is breaker._period:  # still the CLOSED period that admitted the call
                now = _monotonic() if mono is None else mono()
                start, end, add = window.live
                if start <= now < end:
                    add()
                    breaker._successes.add()
                    return result
            succeeded(ticket)
            return result

        protected.breaker = self  # type: ignore[attr-defined]
        return protected  # type: ignore[return-value]

    def allow(self) -> bool:
        """Return whether a call may go ahead now, without raising. Never blocks.

        When it admits a half-open trial it takes a permit: report the outcome with
        :meth:`record_success` or :meth:`record_failure`, which give it back.
        """
        return self._admit() is not None

    def record_success(self) -> None:
        """Report a success of a call made after :meth:`allow`.

        While HALF_OPEN it counts as a trial success only if a trial permit is out; otherwise it
        is taken for the late outcome of a call admitted earlier and only counted in the metrics.
        """
        self._succeeded(self._period)

    def record_failure(self, error: object = None) -> None:
        """Report a failure (an exception or a message) of a call made after :meth:`allow`.

        Counted as a failure whatever its type (the exception filters of the config apply only to
        calls the breaker makes itself), and in any state: a reported failure errs on the safe side.
        """
        self._failed(self._period, error)

    # --- manual control -----------------------------------------------------------------------

    def _move(self, state: CircuitState, pending: Pending, *, forced: bool = False, zero: bool = False) -> bool:
        """Go to ``state``, collecting the events in ``pending`` for the caller to fire; True if it changed.

        For owners (the trading facade) that drive a breaker under their own lock.
        """
        with self._lock:
            changed = self._period.state is not state or forced != self._period.forced
            if changed:
                self._enter(state, self._mono(), pending, forced=forced)
            if zero:  # a fresh period too, so that calls in flight no longer count
                self._zero_counters()
                self._window.clear()
                self._period = _Period(_CLOSED, self._mono())
        return changed

    def _set(self, state: CircuitState, *, forced: bool = False, zero: bool = False) -> None:
        pending: Pending = []
        self._move(state, pending, forced=forced, zero=zero)
        fire(pending)

    def force_open(self) -> None:
        """Open the breaker and keep it open until :meth:`force_close` or :meth:`reset`."""
        self._set(_OPEN, forced=True)

    def force_close(self) -> None:
        """Close the breaker now (a recovery: the backoff restarts). In-flight calls no longer count."""
        self._set(_CLOSED)

    def reset(self) -> None:
        """Return to the initial state: CLOSED, empty window, backoff restarted, every metric zero."""
        self._set(_CLOSED, zero=True)

    # --- status ---------------------------------------------------------------------------------

    def _observe(self) -> _Period:
        period = self._period
        if period.state is _CLOSED:
            return period
        pending: Pending = []
        with self._lock:
            self._refresh(self._mono(), pending)
            period = self._period
        if pending:
            fire(pending)
        return period

    @property
    def state(self) -> CircuitState:
        """The current state (an OPEN breaker whose timeout has passed reads HALF_OPEN)."""
        return self._observe().state

    @property
    def current_backoff(self) -> float:
        """Open timeout in seconds of the current trip (while CLOSED: of the next trip)."""
        with self._lock:
            return self._backoff(max(self._consecutive_trips, 1))

    @property
    def metrics(self) -> BreakerMetrics:
        """A consistent snapshot of the counters."""
        with self._lock:
            return self._metrics()

    def _metrics(self) -> BreakerMetrics:
        successes, rejections = self._successes.value(), self._rejections.value()
        return BreakerMetrics(
            total_requests=successes + self._failures + rejections + self._ignored,
            successful_requests=successes,
            failed_requests=self._failures,
            rejected_requests=rejections,
            ignored_requests=self._ignored,
            circuit_trips=self._trips,
            last_failure_time=self._last_failure_time,
            last_recovery_time=self._last_recovery_time,
        )

    def get_status(self) -> Dict[str, Any]:
        """Return a JSON-serialisable snapshot of state, window, backoff and metrics."""
        pending: Pending = []
        with self._lock:
            now = self._mono()
            self._refresh(now, pending)
            period = self._period
            calls, failures = self._window.totals(now)
            status = self._status(
                state=period.state,
                forced_open=period.forced,
                failures_in_window=failures,
                calls_in_window=calls,
                consecutive_trips=self._consecutive_trips,
                seconds_until_retry=self._retry_after(period, now),
                half_open_in_flight=period.in_flight,
                metrics=self._metrics(),
                last_failure_message=self._last_failure_message,
                opened_at=self._opened_at,
            )
        fire(pending)
        return status

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.name!r} {self.circuit_type.value} {self._period.state.value}>"

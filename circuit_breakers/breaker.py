"""The CircuitBreaker state machine, usable as ``breaker.call(f)``, ``@breaker`` and ``with breaker:``.

The rules: one table for every implementation
---------------------------------------------
This table specifies :class:`CircuitBreaker` and :class:`~circuit_breakers.redis.RedisCircuitBreaker`
alike; the functions that implement a row cite it, here and in ``redis/scripts/breaker.lua``. ``k``
is the number of trips in a row, ``backoff(k)`` the open timeout of the k-th
(:mod:`circuit_breakers.backoff`). A *period* is one stay in one state: each admission is tagged
with its period, and an outcome moves the breaker only while its period is still the current one.

====  ==========  ==========================================  ==========================================  =========
row   state       event                                       what happens                                then
====  ==========  ==========================================  ==========================================  =========
A1    CLOSED      a call asks to run                          admitted                                    CLOSED
A2    OPEN        a call asks before the open timeout is      refused (counted): ``retry_after`` is the   OPEN
                  over, or while forced open                  time left, None while forced
A3    HALF_OPEN   a call asks, fewer than                     admitted with a trial permit; the first     HALF_OPEN
                  ``half_open_max_calls`` permits out         of the period starts the half-open timer
A4    HALF_OPEN   a call asks, every permit out               refused (counted): ``retry_after`` is 0     HALF_OPEN
T1    OPEN        ``backoff(k)`` has passed since it opened   (never while forced)                        HALF_OPEN
T2    HALF_OPEN   ``half_open_timeout_seconds`` have passed   a trip, whether a trial is still out or     OPEN
                  since the first trial                       not
S1    CLOSED      success                                     one more call in the window                 CLOSED
S2    HALF_OPEN   trial success, ``success_threshold`` not    the permit is given back; one more trial    HALF_OPEN
                  reached                                     success
S3    HALF_OPEN   trial success reaching                      a recovery                                  CLOSED
                  ``success_threshold``
F1    CLOSED      failure, the window under both thresholds   one more call and failure in the window     CLOSED
F2    CLOSED      failure bringing the window to              a trip                                      OPEN
                  ``failure_threshold`` failures, or to a
                  rate >= ``failure_rate_threshold`` over
                  >= ``minimum_calls`` calls
F3    HALF_OPEN   trial failure                               a trip                                      OPEN
N1    any         an exception that counts as neither         counted as ignored; a trial gives its       same
                  (excluded, unlisted, not an Exception,      permit back
                  one of the library's refusals)
L1    any         the outcome of a call admitted in an        counted in the metrics only                 same
                  earlier period (a late outcome)
R1    any         ``record_success()``                        S1-S3 for the current period; while         same or
                                                              HALF_OPEN only with a permit out, else L1   CLOSED
R2    any         ``record_failure(error)``, whatever the     F1-F3 for the current period; while OPEN    same or
                  error                                       it is only counted                          OPEN
M1    any         ``force_open()``                            k unchanged; held until M2 or M3            OPEN
M2    not CLOSED  ``force_close()``                           a recovery                                  CLOSED
M3    any         ``reset()``                                 M2, then a new CLOSED period with k, the    CLOSED
                                                              window and every metric zero
====  ==========  ==========================================  ==========================================  =========

Entering a state (``enter``) whatever the row: E1, it starts a new period (empty window, no permit
out, no trial success, no half-open timer) and fires the state change callbacks if the state
differs; E2, OPEN not forced is trip k + 1, open ``backoff(k + 1)``, and OPEN entered from another
state counts a trip, sets ``opened_at`` and fires the trip callbacks; E3, CLOSED sets k to 0 and
``last_recovery_time`` and fires the recovery callbacks. Time alone (T1, T2) moves nothing until
someone looks: ``refresh`` applies it on an admission while not CLOSED, on a trial's outcome and on
every status read (``state``, ``get_status``, ``metrics``, ``current_backoff``); no timer threads.

The Lua twins (``redis/scripts/breaker.lua``) carry the same names: ``enter`` (:meth:`~CircuitBreaker._enter`),
``refresh``, ``retry_after``, ``admit`` (``_admit_locked``, what ``_admit`` decides under the lock),
``succeeded`` (``_succeeded_locked``), ``failed``, ``release``, ``move``, ``observe``, and
``window_add``, ``window_totals``, ``window_clear`` (:class:`~circuit_breakers.window.BucketedWindow`'s
``add``, ``totals``, ``clear``). The generation stored in Redis plays the part of the period.

Threads and the GIL
-------------------
One lock per breaker guards every change of state; the protected call and the callbacks run without
it. Three hot paths take no lock at all: admission while CLOSED (A1), a rejection while OPEN before
its timeout (A2) and a success while CLOSED (S1). They rest on the GIL (CPython's global
interpreter lock), under which each of these steps is atomic:

- loading ``self._period``, one reference that the lock-holder replaces by a new :class:`_Period`.
  The fields a lock-free reader uses (``state``, ``started``, ``open_for``, ``forced``) are set
  before the period is published and never change after, so the reader sees one whole period, the
  old one or the new. ``in_flight``, ``successes`` and ``trial_started`` are used under the lock only.
- counting into a :class:`~circuit_breakers.window.Tally` (``itertools.count().__next__``): one C
  call, which the GIL never interrupts, so concurrent counts are never lost.
- loading ``window.live``, one tuple replaced whole under the lock. A success counted through a
  tuple read just before the window moved on still counts in its own bucket, or is dropped with its
  period (E1): it was a late outcome (L1) anyway.

A stale read is therefore never wrong, only late: it sends a call to the locked path (a period that
just ended) or makes its outcome a late one. Free-threaded CPython (3.13t with the GIL disabled)
gives no such global guarantee: each step would have to be atomic and ordered on its own, which is
not promised for a period's fields against its publication (``itertools.count`` itself was made
thread-safe there). On such a build these paths would need the lock, as
:func:`circuit_breakers.fast_path.protect` with ``lock_free=False`` takes it.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Callable, Dict, Optional, TypeVar

from typing_extensions import ParamSpec

from circuit_breakers import fast_path
from circuit_breakers.backoff import Backoff
from circuit_breakers.breaker_base import Breaker, BreakerMetrics, describe_error
from circuit_breakers.clock import SYSTEM_CLOCK, Clock
from circuit_breakers.config import CircuitBreakerConfig
from circuit_breakers.errors import CircuitOpenException, ConfigTypeError
from circuit_breakers.events import Pending, fire
from circuit_breakers.types import CircuitState, CircuitType
from circuit_breakers.window import BucketedWindow, Tally
from circuit_breakers.wrapped import Protected

P = ParamSpec("P")
R = TypeVar("R")

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN


class _Period:
    """One stay in one state; the identity of the object is the admission tag."""

    __slots__ = ("state", "started", "open_for", "forced", "in_flight", "successes", "trial_started")

    def __init__(self, state: CircuitState, started: float, open_for: float = 0.0, forced: bool = False) -> None:
        self.state = state  # state, started, open_for and forced never change once the period is published
        self.started = started
        self.open_for = open_for  # OPEN: seconds until HALF_OPEN (ignored when forced)
        self.forced = forced  # OPEN by force_open(): stays until force_close()/reset()
        self.in_flight = 0  # HALF_OPEN: trial permits taken and not yet given back
        self.successes = 0  # HALF_OPEN: trial successes so far
        self.trial_started: Optional[float] = None  # HALF_OPEN: when the first trial was admitted


class CircuitBreaker(Breaker["_Period"]):
    """A thread-safe CLOSED / OPEN / HALF_OPEN breaker around any blocking call (rules: this module's table).

    >>> breaker = CircuitBreaker("broker_api", CircuitType.CONNECTION_FAILURE)
    >>> breaker.call(len, "abc")
    3

    Calls never hold the breaker's lock while the protected function or a callback runs, so any
    number of threads call through one breaker at once; the common cases take no lock at all
    (see "Threads and the GIL" above). ``clock`` (default: the system clock) times everything.
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
        # The lock-free paths read time.monotonic directly on the system clock: 20 ns less than a method.
        self._fast_mono: Optional[Callable[[], float]] = None if clock is SYSTEM_CLOCK else clock.monotonic
        # _lock guards every attribute below; reading the single reference _period needs no lock.
        self._lock = threading.Lock()
        self._window = BucketedWindow(self.config.failure_window_seconds)
        self._period = _Period(_CLOSED, self._mono())
        self._zero_counters()

    def _zero_counters(self) -> None:
        self._consecutive_trips = 0
        self._failures = self._trips = 0
        self._successes = Tally()  # counted without the lock (read under it)
        self._rejections = Tally()
        self._ignored = Tally()
        self._last_failure_time: Optional[datetime] = None
        self._last_failure_message: Optional[str] = None
        self._last_recovery_time: Optional[datetime] = None
        self._opened_at: Optional[datetime] = None

    # --- transitions (lock held); Lua twins: enter, refresh, retry_after ----------------------

    def _enter(self, state: CircuitState, now: float, pending: Pending, *, forced: bool = False) -> None:
        """Start a new period in ``state`` (rows E1-E3)."""
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
        """Apply the transitions that time alone causes (rows T1, T2)."""
        period = self._period
        if period.state is _OPEN:
            if not period.forced and now - period.started >= period.open_for:
                self._enter(_HALF_OPEN, now, pending)
        elif period.state is _HALF_OPEN:
            started = period.trial_started
            if started is not None and now - started >= self.config.half_open_timeout_seconds:
                self._enter(_OPEN, now, pending)

    def _retry_after(self, period: _Period, now: float) -> Optional[float]:
        """Seconds until a call may be admitted (rows A2, A4); None while forced open or CLOSED."""
        if period.state is _OPEN:
            return None if period.forced else max(period.started + period.open_for - now, 0.0)
        return 0.0 if period.state is _HALF_OPEN else None

    # --- admission and outcomes; Lua twins: admit, succeeded, failed, release -------------------

    def _admit(self) -> Optional[_Period]:
        """Return the admission tag, or None after counting a rejection (rows A1-A4)."""
        period = self._period
        if period.state is _CLOSED:  # A1: nothing can change, no lock needed
            return period
        if period.state is _OPEN and (period.forced or self._mono() - period.started < period.open_for):
            self._rejections.add()  # A2: still open, no lock needed
            return None
        return self._admit_locked()

    def _admit_locked(self) -> Optional[_Period]:
        """What :meth:`_admit` decides, all of it under the lock (rows A1-A4, after T1 and T2)."""
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
        """Record a success (rows S1-S3, L1): lock-free into the live bucket while CLOSED (S1)."""
        self._successes.add()
        if ticket.state is _CLOSED and ticket is self._period:
            now = self._mono()
            start, end, add = self._window.live
            if start <= now < end:
                add()
                return
        self._succeeded_locked(ticket)

    def _succeeded_locked(self, ticket: _Period) -> None:
        """What :meth:`_succeeded` does to the state, under the lock (rows S1-S3, L1)."""
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
        """Record a failure (rows F1-F3, L1, R2)."""
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
                    calls, failures = self._window.add(now, True)
                    config = self.config
                    if failures >= config.failure_threshold or (
                        calls >= config.minimum_calls and failures / calls >= config.failure_rate_threshold
                    ):
                        self._enter(_OPEN, now, pending)
                elif ticket.state is _HALF_OPEN:
                    self._enter(_OPEN, now, pending)
        if pending:
            fire(pending)

    def _release(self, ticket: _Period) -> None:
        """Give back the trial permit of a call that was neither a success nor a failure (row N1)."""
        if ticket.state is _HALF_OPEN:
            with self._lock:
                if ticket is self._period and ticket.in_flight > 0:
                    ticket.in_flight -= 1

    def _ignored_outcome(self, ticket: _Period) -> None:
        """Count a call that was neither a success nor a failure, and give back its permit (row N1)."""
        self._ignored.add()
        self._release(ticket)

    def _raised(self, ticket: _Period, exc: BaseException) -> None:
        """Record an exception that left a protected call: failure, or neither (see the config)."""
        if self._counts_as_failure(exc):
            self._failed(ticket, exc)
        else:
            self._ignored_outcome(ticket)

    # --- call styles --------------------------------------------------------------------------

    call = fast_path.call  # the lock-free paths A1, A2 and S1 inlined, as in the decorator

    def __call__(self, func: Callable[P, R]) -> Protected[P, R]:
        """Use the breaker as a decorator; the wrapper keeps ``func``'s signature and metadata."""
        return fast_path.protect(self, func)

    def allow(self) -> bool:
        """Return whether a call may go ahead now, without raising. Never blocks.

        When it admits a half-open trial it takes a permit: report the outcome with
        :meth:`record_success` or :meth:`record_failure`, which give it back.
        """
        return self._admit() is not None

    def record_success(self) -> None:
        """Report a success of a call made after :meth:`allow` (row R1).

        While HALF_OPEN it counts as a trial success only if a trial permit is out; otherwise it
        is taken for the late outcome of a call admitted earlier and only counted in the metrics.
        """
        self._succeeded(self._period)

    def record_failure(self, error: object = None) -> None:
        """Report a failure (an exception or a message) of a call made after :meth:`allow` (row R2).

        Counted as a failure whatever its type (the exception filters of the config apply only to
        calls the breaker makes itself), and in any state: a reported failure errs on the safe side.
        """
        self._failed(self._period, error)

    # --- manual control; Lua twin: move -------------------------------------------------------

    def _move(self, state: CircuitState, pending: Pending, *, forced: bool = False, zero: bool = False) -> bool:
        """Go to ``state`` (rows M1-M3), collecting the events in ``pending`` for the caller to fire.

        Returns True if it changed. For owners (the trading facade) that drive a breaker under their own lock.
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
        """Open the breaker and keep it open until :meth:`force_close` or :meth:`reset` (row M1)."""
        self._set(_OPEN, forced=True)

    def force_close(self) -> None:
        """Close the breaker now (row M2: a recovery, the backoff restarts). In-flight calls no longer count."""
        self._set(_CLOSED)

    def reset(self) -> None:
        """Return to the initial state (row M3): CLOSED, empty window, backoff restarted, every metric zero."""
        self._set(_CLOSED, zero=True)

    # --- status; Lua twin: observe --------------------------------------------------------------

    def _observe(self, deferred: Optional[Pending] = None) -> _Period:
        """The current period, after the transitions time alone causes (T1, T2 on a status read).

        Their events fire before this returns, or go to ``deferred`` when given: for an owner that
        holds a lock of its own (the trading desk's gate), which fires them once it is released.
        """
        period = self._period
        if period.state is _CLOSED:
            return period
        pending: Pending = [] if deferred is None else deferred
        with self._lock:
            self._refresh(self._mono(), pending)
            period = self._period
        if pending and deferred is None:
            fire(pending)
        return period

    @property
    def state(self) -> CircuitState:
        """The current state (an OPEN breaker whose timeout has passed reads HALF_OPEN)."""
        return self._observe().state

    @property
    def current_backoff(self) -> float:
        """Open timeout in seconds of the current trip (while CLOSED: of the next trip)."""
        self._observe()
        with self._lock:
            return self._backoff(max(self._consecutive_trips, 1))

    @property
    def metrics(self) -> BreakerMetrics:
        """A consistent snapshot of the counters."""
        self._observe()
        with self._lock:
            return self._metrics()

    def _metrics(self) -> BreakerMetrics:
        successes, rejections, ignored = self._successes.value(), self._rejections.value(), self._ignored.value()
        return BreakerMetrics(
            total_requests=successes + self._failures + rejections + ignored,
            successful_requests=successes,
            failed_requests=self._failures,
            rejected_requests=rejections,
            ignored_requests=ignored,
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

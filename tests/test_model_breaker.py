"""Model-based test: both breakers, on a ManualClock, against a pure-Python model of the README rules.

The same machine drives a CircuitBreaker and a RedisCircuitBreaker (against a real redis-server,
its store given the ManualClock, so that the scripts take their time from it): one model, one set
of rules, two implementations.

The model (``BreakerModel``) implements "How a breaker decides" directly: the count rule and the
rate rule (with ``minimum_calls``) over an exact sliding window, ``min(open * mult ** (k - 1), max)``
backoff, half-open trials with ``success_threshold``, the half-open timeout counted from the first
trial, forced opens that hold, and resets that zero the metrics. Transitions caused by time alone
are applied lazily, at the points where the breaker observes its clock (calls, outcomes, status
reads); the invariant check reads the status after every step, so both sides observe at the same
moments.

Bucket granularity: the breaker's window is 60 buckets of ``failure_window_seconds / 60``. Every
time here is a whole number of seconds and the windows are 30 s or 60 s (buckets of 0.5 s or 1 s),
so every event sits on a bucket boundary and the bucketed window equals the exact one: an event at
``t`` counts while ``now - t < window``. Whole seconds are also exact in binary floating point.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, List, Optional, Tuple, Union

import pytest
import redis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenException,
    CircuitState,
    ManualClock,
    RedisCircuitBreaker,
    RedisStore,
)

from .redis_server import RedisServer

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class Boom(RuntimeError):
    """A failure (``failure_exceptions=(Boom,)``)."""


class Excluded(Boom):
    """Excluded: checked before ``failure_exceptions``, so it is ignored although it is a Boom."""


class Neither(LookupError):
    """An Exception matching neither list: counts as neither."""


class Interrupt(BaseException):
    """A BaseException that is not an Exception: counts as neither."""


IGNORED_KINDS = (Excluded, Neither, Interrupt)


@dataclass
class Ticket:
    period: int
    state: CircuitState


class BreakerModel:
    """The documented rules, with exact windows and no threads."""

    def __init__(self, config: CircuitBreakerConfig) -> None:
        self.cfg = config
        self.now = 0.0
        self.period = 0  # identity of the current stay in one state (the admission tag)
        self.state = CLOSED
        self.forced = False
        self.started = 0.0
        self.open_for = 0.0
        self.in_flight = 0
        self.trial_successes = 0
        self.trial_started: Optional[float] = None
        self.consecutive = 0
        self.events: List[Tuple[float, bool]] = []  # (time, failed) in the current CLOSED period
        self.successes = self.failures = self.rejections = self.ignored = self.trips = 0
        self.last_failure: Optional[float] = None
        self.last_recovery: Optional[float] = None
        # every callback the breaker should have fired, in order
        self.state_changes: List[Tuple[CircuitState, CircuitState]] = []
        self.trip_callbacks = 0
        self.recovery_callbacks = 0

    # --- rules ---------------------------------------------------------------------------------

    def backoff(self, trip: int) -> float:
        cfg = self.cfg
        if not cfg.exponential_backoff:
            return cfg.open_timeout_seconds
        return min(cfg.open_timeout_seconds * cfg.backoff_multiplier ** (trip - 1), cfg.max_backoff_seconds)

    def enter(self, state: CircuitState, *, forced: bool = False) -> None:
        old = self.state
        open_for = 0.0
        if state is OPEN:
            if forced:
                open_for = self.backoff(max(self.consecutive, 1))
            else:
                self.consecutive += 1
                open_for = self.backoff(self.consecutive)
            if old is not OPEN:
                self.trips += 1
                self.trip_callbacks += 1
        elif state is CLOSED:
            self.consecutive = 0
            self.last_recovery = self.now
            self.recovery_callbacks += 1
        self.events = []
        self.period += 1
        self.state, self.forced, self.started, self.open_for = state, forced, self.now, open_for
        self.in_flight = self.trial_successes = 0
        self.trial_started = None
        if old is not state:
            self.state_changes.append((old, state))

    def refresh(self) -> None:
        """The transitions time alone causes, applied when the breaker looks at its clock."""
        if self.state is OPEN:
            if not self.forced and self.now - self.started >= self.open_for:
                self.enter(HALF_OPEN)
        elif (
            self.state is HALF_OPEN
            and self.trial_started is not None
            and self.now - self.trial_started >= self.cfg.half_open_timeout_seconds
        ):
            self.enter(OPEN)

    def window(self) -> Tuple[int, int]:
        live = [failed for t, failed in self.events if self.now - t < self.cfg.failure_window_seconds]
        return len(live), sum(live)

    def retry_after(self) -> Optional[float]:
        if self.state is OPEN:
            return None if self.forced else max(self.started + self.open_for - self.now, 0.0)
        return 0.0 if self.state is HALF_OPEN else None

    def current(self) -> Ticket:
        return Ticket(self.period, self.state)

    def admit(self) -> Optional[Ticket]:
        if self.state is CLOSED:
            return self.current()
        self.refresh()
        if self.state is CLOSED:
            return self.current()
        if self.state is HALF_OPEN and self.in_flight < self.cfg.half_open_max_calls:
            self.in_flight += 1
            if self.trial_started is None:
                self.trial_started = self.now
            return self.current()
        self.rejections += 1
        return None

    def succeeded(self, ticket: Ticket) -> None:
        self.successes += 1
        if ticket.state is CLOSED:
            if ticket.period == self.period:
                self.events.append((self.now, False))
        elif ticket.state is HALF_OPEN:
            self.refresh()
            if ticket.period == self.period and self.in_flight > 0:
                self.in_flight -= 1
                self.trial_successes += 1
                if self.trial_successes >= self.cfg.success_threshold:
                    self.enter(CLOSED)

    def failed(self, ticket: Ticket) -> None:
        self.failures += 1
        self.last_failure = self.now
        if ticket.state is HALF_OPEN:
            self.refresh()
        if ticket.period != self.period:
            return
        if self.state is CLOSED:
            self.events.append((self.now, True))
            calls, failures = self.window()
            cfg = self.cfg
            if failures >= cfg.failure_threshold or (
                calls >= cfg.minimum_calls and failures / calls >= cfg.failure_rate_threshold
            ):
                self.enter(OPEN)
        elif self.state is HALF_OPEN:
            self.enter(OPEN)

    def neither(self, ticket: Ticket) -> None:
        self.ignored += 1
        if ticket.state is HALF_OPEN and ticket.period == self.period:
            self.in_flight -= 1

    def force_open(self) -> None:
        if not (self.state is OPEN and self.forced):
            self.enter(OPEN, forced=True)

    def force_close(self) -> None:
        if self.state is not CLOSED:
            self.enter(CLOSED)

    def reset(self) -> None:
        self.force_close()
        self.consecutive = 0
        self.successes = self.failures = self.rejections = self.ignored = self.trips = 0
        self.last_failure = self.last_recovery = None
        self.events = []
        self.period += 1
        self.state, self.forced, self.started, self.open_for = CLOSED, False, self.now, 0.0
        self.in_flight = self.trial_successes = 0
        self.trial_started = None


def _raise(exc: BaseException) -> None:
    raise exc


class BreakerMachine(RuleBasedStateMachine):
    """Drives one breaker and its model with the same steps; compares them after every step.

    This class drives a CircuitBreaker; :class:`RedisBreakerMachine` the RedisCircuitBreaker.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.start = self.clock.now()
        self.seen_changes: List[Tuple[CircuitState, CircuitState]] = []
        self.seen_trips = 0
        self.seen_recoveries = 0

    @initialize(
        failure_threshold=st.integers(1, 5),
        failure_rate_threshold=st.sampled_from([0.25, 0.5, 0.75, 1.0]),
        minimum_calls=st.integers(1, 8),
        success_threshold=st.integers(1, 3),
        window=st.sampled_from([30, 60]),
        open_timeout=st.sampled_from([1, 5, 10, 30]),
        multiplier=st.sampled_from([1, 2, 3]),
        cap=st.sampled_from([1, 4, 10]),
        half_open_timeout=st.sampled_from([1, 5, 30]),
        exponential=st.booleans(),
        half_open_max_calls=st.integers(1, 2),
    )
    def build(
        self,
        *,
        failure_threshold: int,
        failure_rate_threshold: float,
        minimum_calls: int,
        success_threshold: int,
        window: int,
        open_timeout: int,
        multiplier: int,
        cap: int,
        half_open_timeout: int,
        exponential: bool,
        half_open_max_calls: int,
    ) -> None:
        config = CircuitBreakerConfig(
            failure_threshold=failure_threshold,
            failure_rate_threshold=failure_rate_threshold,
            minimum_calls=minimum_calls,
            success_threshold=success_threshold,
            failure_window_seconds=window,
            open_timeout_seconds=open_timeout,
            backoff_multiplier=multiplier,
            max_backoff_seconds=open_timeout * cap,
            half_open_timeout_seconds=half_open_timeout,
            exponential_backoff=exponential,
            half_open_max_calls=half_open_max_calls,
            failure_exceptions=(Boom,),
            excluded_exceptions=(Excluded,),
        )
        self.breaker = self.make(config)
        self.breaker.register_trip_callback(self._on_trip)
        self.breaker.register_recovery_callback(self._on_recovery)
        self.breaker.register_state_change_callback(self._on_change)
        self.model = BreakerModel(config)

    def make(self, config: CircuitBreakerConfig) -> Union[CircuitBreaker, RedisCircuitBreaker]:
        return CircuitBreaker("model", config=config, clock=self.clock)

    def _on_trip(self, name: str, circuit_type: Any) -> None:
        self.seen_trips += 1

    def _on_recovery(self, name: str, circuit_type: Any) -> None:
        self.seen_recoveries += 1

    def _on_change(self, name: str, old: CircuitState, new: CircuitState) -> None:
        self.seen_changes.append((old, new))

    # --- helpers -------------------------------------------------------------------------------

    def _advance(self, seconds: int) -> None:
        self.clock.advance(seconds)
        self.model.now += seconds

    def _call(self, func: Any, *args: Any) -> Tuple[Optional[Ticket], Any]:
        """Make one protected call; return the model's ticket and the result or the exception."""
        ran: List[bool] = []

        def protected() -> Any:
            ran.append(True)
            return func(*args)

        ticket = self.model.admit()
        raised: Optional[BaseException] = None
        result: Any = None
        try:
            result = self.breaker.call(protected)
        except BaseException as exc:  # every outcome, a rejection included, is checked below
            raised = exc
        if isinstance(raised, CircuitOpenException):
            assert ticket is None, "the breaker rejected a call the model admits"
            assert not ran, "a rejected call ran the protected function"
            assert raised.state is self.model.state
            assert raised.retry_after == self.model.retry_after()
            assert raised.name == "model"
            return None, raised
        assert ticket is not None, f"the breaker admitted a call the model rejects ({raised!r})"
        assert ran == [True]
        return ticket, result if raised is None else raised

    # --- rules ---------------------------------------------------------------------------------

    @rule(times=st.sampled_from([1, 1, 3]))
    def call_succeeds(self, times: int) -> None:
        for _ in range(times):
            ticket, result = self._call(lambda: "ok")
            if ticket is not None:
                assert result == "ok"
                self.model.succeeded(ticket)

    @rule()
    def call_fails(self) -> None:
        ticket, result = self._call(_raise, Boom("down"))
        if ticket is not None:
            assert isinstance(result, Boom)
            self.model.failed(ticket)

    @rule(kind=st.sampled_from(IGNORED_KINDS))
    def call_raises_neither(self, kind: type) -> None:
        ticket, result = self._call(_raise, kind("not a failure"))
        if ticket is not None:
            assert type(result) is kind
            self.model.neither(ticket)

    @rule(data=st.data())
    def advance(self, data: st.DataObject) -> None:
        """Move time by 0..200 s, often by exactly a boundary of the current state (or one second off)."""
        model = self.model
        cfg = model.cfg
        boundaries = {int(cfg.failure_window_seconds), int(cfg.half_open_timeout_seconds)}
        if model.state is OPEN and not model.forced:
            boundaries.add(int(model.started + model.open_for - model.now))
        if model.trial_started is not None:
            boundaries.add(int(model.trial_started + cfg.half_open_timeout_seconds - model.now))
        for t, _ in model.events:
            boundaries.add(int(t + cfg.failure_window_seconds - model.now))
        near = sorted({b + d for b in boundaries for d in (-1, 0, 1) if 0 <= b + d <= 200})
        seconds = data.draw(st.one_of(st.sampled_from(near), st.integers(0, 200)), label="seconds")
        self._advance(seconds)

    @rule(early=st.sampled_from([0, 0, 1]))
    def wait_out_open_timeout(self, early: int) -> None:
        """While timed OPEN, advance to exactly the end of the open timeout (or one second short of it)."""
        model = self.model
        if model.state is OPEN and not model.forced:
            self._advance(max(int(model.started + model.open_for - model.now) - early, 0))

    # Manual control is drawn rarely (one draw in four acts): a forced open holds until force_close()
    # or reset(), and would otherwise leave little time for the timed states.

    @rule(act=st.integers(0, 3))
    def force_open(self, act: int) -> None:
        if act == 0:
            self.breaker.force_open()
            self.model.force_open()

    @rule(act=st.integers(0, 3))
    def force_close(self, act: int) -> None:
        if act == 0:
            self.breaker.force_close()
            self.model.force_close()

    @rule(act=st.integers(0, 3))
    def reset(self, act: int) -> None:
        if act == 0:
            self.breaker.reset()
            self.model.reset()

    @rule(outcome=st.sampled_from(["success", "failure"]), delay=st.sampled_from([0, 0, 1, 5, 30]))
    def allow_then_record(self, outcome: str, delay: int) -> None:
        """allow(), then (after ``delay`` seconds with no one looking) record the outcome if allowed."""
        ticket = self.model.admit()
        allowed = self.breaker.allow()
        assert allowed == (ticket is not None)
        if not allowed:
            return
        self._advance(delay)
        current = self.model.current()  # record_* reports against the period current at that moment
        if outcome == "success":
            self.breaker.record_success()
            self.model.succeeded(current)
        else:
            self.breaker.record_failure(Boom("reported"))
            self.model.failed(current)

    @rule()
    def late_record_success(self) -> None:
        """record_success() with no permit out: a late outcome, counted but closing nothing."""
        assert self.model.in_flight == 0
        self.breaker.record_success()
        self.model.succeeded(self.model.current())

    @rule()
    def late_record_failure(self) -> None:
        """record_failure() without allow(): always counted, and it acts on the current period."""
        self.breaker.record_failure("reported")
        self.model.failed(self.model.current())

    @rule()
    def get_status(self) -> None:
        self.model.refresh()
        status = self.breaker.get_status()
        assert status["state"] == self.model.state.value

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def matches_model(self) -> None:
        model = self.model
        model.refresh()  # get_status() below observes the clock, as the breaker does
        status = self.breaker.get_status()
        assert self.breaker.state is model.state
        calls, failures = model.window()
        assert status["state"] == model.state.value
        assert status["forced_open"] is model.forced
        assert (status["calls_in_window"], status["failures_in_window"]) == (calls, failures)
        assert status["consecutive_trips"] == model.consecutive
        assert status["current_open_timeout"] == model.backoff(max(model.consecutive, 1))
        assert self.breaker.current_backoff == model.backoff(max(model.consecutive, 1))
        assert status["seconds_until_retry"] == model.retry_after()
        assert status["half_open_in_flight"] == model.in_flight

        metrics = self.breaker.metrics
        assert metrics.successful_requests == model.successes
        assert metrics.failed_requests == model.failures
        assert metrics.rejected_requests == model.rejections
        assert metrics.ignored_requests == model.ignored
        assert metrics.circuit_trips == model.trips
        assert metrics.total_requests == model.successes + model.failures + model.rejections + model.ignored
        assert status["total_requests"] == metrics.total_requests

        def wall(mono: Optional[float]) -> Any:
            return None if mono is None else self.start + timedelta(seconds=mono)

        assert metrics.last_failure_time == wall(model.last_failure)
        assert metrics.last_recovery_time == wall(model.last_recovery)

        assert self.seen_changes == model.state_changes
        assert self.seen_trips == model.trip_callbacks
        assert self.seen_recoveries == model.recovery_callbacks


BreakerMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_breaker_matches_model = BreakerMachine.TestCase


class RedisBreakerMachine(BreakerMachine):
    """The same steps and model for a RedisCircuitBreaker, in a namespace of its own per example."""

    def __init__(self, client: redis.Redis) -> None:
        super().__init__()
        self.client = client

    def make(self, config: CircuitBreakerConfig) -> Union[CircuitBreaker, RedisCircuitBreaker]:
        self.namespace = f"model-{uuid.uuid4().hex}"
        store = RedisStore(self.client, self.namespace, clock=self.clock)
        return RedisCircuitBreaker("model", config=config, store=store)

    def teardown(self) -> None:
        namespace = getattr(self, "namespace", None)
        if namespace is not None:
            self.client.delete(f"{namespace}:clock", f"{namespace}:cb:model", f"{namespace}:cb:model:window")


def test_redis_breaker_matches_model(memory_redis_server: RedisServer) -> None:
    client = memory_redis_server.client()
    try:
        run_state_machine_as_test(
            lambda: RedisBreakerMachine(client),
            settings=settings(
                max_examples=75,
                stateful_step_count=50,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        client.close()


# --- the model itself: a few hand-checked scenarios, so that a wrong model cannot agree with a wrong breaker


def _config(**fields: Any) -> CircuitBreakerConfig:
    base = dict(failure_exceptions=(Boom,), excluded_exceptions=(Excluded,))
    base.update(fields)
    return CircuitBreakerConfig(**base)  # type: ignore[arg-type]


def test_model_backoff_and_half_open_timeout_by_hand() -> None:
    model = BreakerModel(
        _config(failure_threshold=1, open_timeout_seconds=10, max_backoff_seconds=25, half_open_timeout_seconds=5)
    )
    ticket = model.admit()
    assert ticket is not None
    model.failed(ticket)
    assert (model.state, model.open_for) == (OPEN, 10)
    model.now = 9.0
    assert model.admit() is None
    model.now = 10.0
    trial = model.admit()
    assert trial is not None
    assert model.state is HALF_OPEN
    model.failed(trial)
    assert (model.state, model.open_for, model.consecutive) == (OPEN, 20, 2)
    model.now = 30.0
    trial = model.admit()
    assert trial is not None
    assert model.trial_started == 30.0
    model.neither(trial)  # an ignored trial leaves the timer running from the first trial
    model.now = 35.0
    model.refresh()
    assert (model.state, model.open_for, model.consecutive) == (OPEN, 25, 3)  # capped at 25


def test_model_rate_rule_and_window_edge_by_hand() -> None:
    model = BreakerModel(
        _config(failure_threshold=100, minimum_calls=4, failure_rate_threshold=0.5, failure_window_seconds=60)
    )
    for failed in (False, False, True):
        ticket = model.admit()
        assert ticket is not None
        model.failed(ticket) if failed else model.succeeded(ticket)
    assert model.state is CLOSED  # 3 calls < minimum_calls
    model.now = 59.0
    ticket = model.admit()
    assert ticket is not None
    model.failed(ticket)  # 2 of 4 within the window: 0.5 >= 0.5
    assert model.state is OPEN

    model = BreakerModel(_config(failure_threshold=2, failure_window_seconds=60))
    ticket = model.admit()
    assert ticket is not None
    model.failed(ticket)
    model.now = 60.0  # the first failure no longer counts at exactly +window
    ticket = model.admit()
    assert ticket is not None
    model.failed(ticket)
    assert model.state is CLOSED


@pytest.mark.parametrize("window", [30, 60])
def test_window_edge_matches_model_on_the_breaker(window: int) -> None:
    """The bucket alignment the model relies on: at whole seconds, a failure expires at exactly +window."""
    clock = ManualClock()
    breaker = CircuitBreaker(
        "edge", config=_config(failure_threshold=2, failure_window_seconds=window, minimum_calls=100), clock=clock
    )
    with pytest.raises(Boom):
        breaker.call(_raise, Boom())
    clock.advance(window - 1)
    assert breaker.get_status()["failures_in_window"] == 1
    clock.advance(1)
    assert breaker.get_status()["failures_in_window"] == 0
    with pytest.raises(Boom):
        breaker.call(_raise, Boom())
    assert breaker.state is CLOSED

"""RedisCircuitBreaker: one breaker shared by every process that names it, its state kept in Redis.

Why a second implementation: the in-process :class:`~circuit_breakers.CircuitBreaker` decides in
about 100 ns and must not pay for a backend it does not use, so it stays as it is. This class has
the same public behaviour (the rules of ``breaker.py`` are its spec), but its state lives in Redis,
so that every process sharing a namespace sees one breaker: an endpoint down for one process is
open for all of them. It costs one Redis round trip per admission and one per outcome.

Layout: a hash ``{namespace}:cb:{name}`` holds the state (state, generation, opened_at, open_for,
consecutive_trips, forced, in_flight, successes, trial_started, trips, recovered_at) and a hash
``{namespace}:cb:{name}:window`` the failure window as 60 ring buckets (fields ``i<slot>``,
``c<slot>``, ``f<slot>`` and ``head``), so memory is bounded whatever the call rate. For Redis
Cluster put a hash tag in the namespace (``"{trading}"``) so that every key lives in one slot.

Every transition happens inside a Lua script (``scripts/breaker*.lua``), atomically, on the
namespace clock (:mod:`circuit_breakers.redis.clock`): hosts whose clocks disagree still agree on
timeouts and windows, and a step of the server's clock cannot shorten an open timeout by more than
the clock's tolerance. The scripts implement the state x event table of ``breaker.py``'s docstring,
function for function (``enter``, ``refresh``, ``admit``, ``succeeded``... are the twins of
``CircuitBreaker``'s methods of those names, and cite the rows). The generation plays the part of
``breaker.py``'s period: each admission is tagged with it and an outcome moves the breaker only
while its generation is current. Scripts
return the transitions that happened, and the process whose action caused them fires its own
callbacks; other processes' callbacks do not fire (they did not cause anything). Every process
sharing a breaker must use the same config: each call passes its own config to the script. A
process that dies holding a half-open trial permit loses it only until
``half_open_timeout_seconds`` re-opens the breaker. Needs Redis 5 or newer.

Fail closed: when Redis cannot be reached, times out or answers garbage, admission rejects with
CircuitOpenException (state OPEN, ``retry_after`` None; its ``__cause__`` is a StateStoreError
chained to the Redis error) and ``allow()`` returns False. For ``timeout`` seconds after such a
failure the breaker rejects at once without asking Redis again (a dead Redis costs one socket
timeout per ``timeout`` seconds, not one per call); then the next call asks again, so it recovers
by itself. Outcomes that cannot be recorded are logged and dropped (the call already happened).
Warnings are logged on change or at most once a second, not per call.

Bounded calls: the store's client must be built with ``socket_timeout`` and
``socket_connect_timeout``. redis-py retries connection errors by default, with backoff, which
multiplies the bound (about 10 s a call against a dead server, seen with redis-py 7): for fast
rejection build the client with ``retry=Retry(NoBackoff(), 1)``, as
:func:`circuit_breakers.redis.client.connect` does.
"""

from __future__ import annotations

import functools
import logging
import threading
from datetime import datetime
from typing import Any, Callable, Dict, Optional, Tuple, TypeVar, Union, cast

import redis
from typing_extensions import ParamSpec

from circuit_breakers.backoff import Backoff
from circuit_breakers.breaker_base import Breaker, BreakerMetrics, describe_error, ensure_sync
from circuit_breakers.clock import SYSTEM_CLOCK
from circuit_breakers.config import CircuitBreakerConfig, check_number
from circuit_breakers.errors import CircuitOpenException, ConfigTypeError, StateStoreError
from circuit_breakers.events import Pending, fire
from circuit_breakers.redis.client import script_source
from circuit_breakers.redis.reply import Reply, config_arguments, parse
from circuit_breakers.redis.store import RedisStore
from circuit_breakers.types import CircuitState, CircuitType
from circuit_breakers.wrapped import Wrapped

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_OPEN = CircuitState.OPEN
_HALF_OPEN = CircuitState.HALF_OPEN
_WARN_EVERY = 1.0  # seconds between repeated warnings about the same store error

_Ticket = Tuple[str, CircuitState]  # (generation, state at admission)


class _StoreFailure(Exception):
    """Redis could not be used; ``detail`` says why, for logs and rejections."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class RedisCircuitBreaker(Breaker[_Ticket]):
    """A CLOSED / OPEN / HALF_OPEN breaker shared through Redis by every process using its name.

    Same calling styles, rules, callbacks and status as :class:`~circuit_breakers.CircuitBreaker`
    (``call``, ``@breaker``, ``with breaker:``, ``allow``/``record_*``). Thread-safe; no lock is
    held during a Redis call, the protected call or a callback. Each admission and each outcome
    blocks for one Redis round trip (bounded by the client's socket timeout). Time comes from
    ``store``: the namespace clock, or the clock the store was given for tests and replays.
    """

    def __init__(
        self,
        name: str,
        circuit_type: CircuitType = CircuitType.GENERIC,
        config: Optional[CircuitBreakerConfig] = None,
        *,
        store: RedisStore,
        timeout: float = 0.5,
        backoff: Optional[Backoff] = None,
    ) -> None:
        super().__init__(name, circuit_type, config, backoff=backoff)
        if not isinstance(store, RedisStore):
            raise ConfigTypeError(f"store must be a RedisStore, got {store!r}")
        config = self.config
        self.namespace = store.namespace
        self.timeout = check_number("timeout", timeout, maximum=3600.0)
        self.store = store.describe()
        self._clock = store.clock
        self._local = store.process_clock  # this process's wall time, for last_failure_time
        self._keys = (store.clock_key, store.key(f"cb:{name}"), store.key(f"cb:{name}:window"))
        # The open-timeout policy is Python's: the scripts get its parameters (or its answers), so
        # one policy serves both (see circuit_breakers.redis.reply.policy_argument).
        self._config_args = config_arguments(config, self._backoff)
        # Script.__call__ carries no annotations in redis-py; these casts give it the one we use.
        script = cast(Callable[[str], Callable[..., object]], store.client.register_script)
        self._admit_script = script(script_source("clock", "breaker", "breaker_admit"))
        self._record_script = script(script_source("clock", "breaker", "breaker_record"))
        self._force_script = script(script_source("clock", "breaker", "breaker_force"))
        self._status_script = script(script_source("clock", "breaker", "breaker_status"))
        # _lock guards every attribute below (local counters, the last shared values seen, store health).
        self._lock = threading.Lock()
        self._zero_counters()
        self._down_until = 0.0  # monotonic time until which the store is taken as down; 0: it answers
        self._store_error: Optional[str] = None
        self._warned: Tuple[Optional[str], float] = (None, 0.0)

    def _zero_counters(self) -> None:
        self._successes = self._failures = self._rejections = self._ignored = 0
        self._last_failure_time: Optional[datetime] = None
        self._last_failure_message: Optional[str] = None
        self._shared: Optional[Reply] = None  # the last reply seen, for metrics while Redis is down

    # --- Redis ----------------------------------------------------------------------------------

    def _run(self, script: Callable[..., object], *args: str, probe: bool = False) -> Reply:
        """Run a script and decode its answer; raises _StoreFailure. ``probe``: skip while taken as down."""
        if probe and self._down_until and SYSTEM_CLOCK.monotonic() < self._down_until:
            raise _StoreFailure(f"taken as down after: {self._store_error}")
        clock, mono = self._clock.arguments()
        try:
            raw = script(keys=self._keys, args=[*clock, *self._config_args, *args])
        except (redis.RedisError, OSError) as exc:
            self._store_failed(f"{type(exc).__name__}: {exc}")
            raise _StoreFailure(f"{type(exc).__name__}: {exc}") from exc
        try:
            reply = parse(raw)
        except (TypeError, ValueError, OverflowError) as exc:  # UnicodeDecodeError is a ValueError
            detail = f"unexpected answer {raw!r:.200}"
            self._store_failed(detail)
            raise _StoreFailure(detail) from exc
        self._clock.observe(reply.now, reply.stepped, mono)
        with self._lock:
            self._shared = reply
            recovered, self._down_until, self._store_error = self._down_until != 0.0, 0.0, None
        if recovered:
            logger.warning("circuit breaker %r: store %s answers again", self.name, self.store)
        return reply

    def _store_failed(self, detail: str) -> None:
        now = SYSTEM_CLOCK.monotonic()
        with self._lock:
            self._down_until = now + self.timeout
            self._store_error = detail
            warn = detail != self._warned[0] or now - self._warned[1] >= _WARN_EVERY
            if warn:
                self._warned = (detail, now)
        if warn:
            logger.warning("circuit breaker %r: store %s failed (%s); failing closed", self.name, self.store, detail)

    def _fire(self, reply: Reply) -> None:
        pending: Pending = []
        for event in reply.events:
            if event == "trip":
                pending.append((self._on_trip, (self.name, self.circuit_type)))
            elif event == "recovery":
                pending.append((self._on_recovery, (self.name, self.circuit_type)))
            else:
                old, new = event.split(">")
                pending.append((self._on_state_change, (self.name, CircuitState(old), CircuitState(new))))
        fire(pending)

    # --- admission and outcomes -------------------------------------------------------------

    def _admit(self) -> Union[_Ticket, CircuitOpenException]:
        """Return the admission tag, or the exception to raise after counting a rejection."""
        try:
            reply = self._run(self._admit_script, probe=True)
        except _StoreFailure as failure:
            cause = StateStoreError(f"store {self.store} failed: {failure}")
            cause.__cause__ = failure.__cause__
            rejection = CircuitOpenException(
                self.name, self.circuit_type, _OPEN, None, f"its store {self.store} failed ({failure})"
            )
            rejection.__cause__ = cause
        else:
            self._fire(reply)
            if reply.extra[:1] == (1,):
                return (reply.generation, reply.state)
            rejection = CircuitOpenException(self.name, self.circuit_type, reply.state, reply.retry_after)
        with self._lock:
            self._rejections += 1
        return rejection

    def _admit_or_raise(self) -> _Ticket:
        ticket = self._admit()
        if isinstance(ticket, CircuitOpenException):
            raise ticket
        return ticket

    def _record(self, ticket: Optional[_Ticket], outcome: str) -> None:
        generation, state = ticket if ticket is not None else ("", "")
        try:
            reply = self._run(self._record_script, generation, state, outcome)
        except _StoreFailure as failure:
            logger.warning("circuit breaker %r: %s outcome dropped: %s", self.name, outcome, failure)
            return
        self._fire(reply)

    def _succeeded(self, ticket: Optional[_Ticket]) -> None:
        with self._lock:
            self._successes += 1
        self._record(ticket, "success")

    def _failed(self, ticket: Optional[_Ticket], error: object) -> None:
        with self._lock:
            self._failures += 1
            self._last_failure_time = self._local.now()
            self._last_failure_message = describe_error(error)
        self._record(ticket, "failure")

    def _release(self, ticket: _Ticket) -> None:
        """Give back the trial permit of a call that was neither a success nor a failure (row N1)."""
        if ticket[1] is _HALF_OPEN:  # only a half-open permit has anything to give back
            self._record(ticket, "release")

    def _raised(self, ticket: _Ticket, exc: BaseException) -> None:
        """Record an exception that left a protected call: failure, or neither (see the config)."""
        if self._counts_as_failure(exc):
            self._failed(ticket, exc)
            return
        with self._lock:
            self._ignored += 1
        self._release(ticket)

    # --- call styles --------------------------------------------------------------------------

    def __call__(self, func: Callable[P, R]) -> Wrapped[P, R]:
        """Use the breaker as a decorator; the wrapper keeps ``func``'s signature and metadata."""
        ensure_sync(func)
        call = self.call  # two Redis round trips a call: one more frame costs nothing here

        @functools.wraps(func)
        def protected(*args: P.args, **kwargs: P.kwargs) -> R:
            return call(func, *args, **kwargs)

        protected.breaker = self  # type: ignore[attr-defined]
        return protected  # type: ignore[return-value]

    def allow(self) -> bool:
        """Return whether a call may go ahead now, without raising; False while Redis fails.

        When it admits a half-open trial it takes a permit: report the outcome with
        :meth:`record_success` or :meth:`record_failure`, which give it back.
        """
        return not isinstance(self._admit(), CircuitOpenException)

    def record_success(self) -> None:
        """Report a success of a call made after :meth:`allow` (applies to the current generation).

        While HALF_OPEN it counts as a trial success only if a trial permit is out.
        """
        self._succeeded(None)

    def record_failure(self, error: object = None) -> None:
        """Report a failure (an exception or a message) of a call made after :meth:`allow`.

        Counted whatever its type and in any state: a reported failure errs on the safe side.
        """
        self._failed(None, error)

    # --- manual control -----------------------------------------------------------------------

    def _force(self, action: str) -> None:
        try:
            reply = self._run(self._force_script, action)
        except _StoreFailure as failure:
            raise StateStoreError(f"circuit breaker {self.name!r}: store {self.store} failed: {failure}") from failure
        self._fire(reply)

    def force_open(self) -> None:
        """Open the breaker for every process until :meth:`force_close` or :meth:`reset`.

        Raises StateStoreError if Redis fails (as do force_close and reset).
        """
        self._force("open")

    def force_close(self) -> None:
        """Close the breaker now (a recovery: the backoff restarts). In-flight calls no longer count."""
        self._force("close")

    def reset(self) -> None:
        """Return to the initial state: CLOSED, empty window, backoff restarted, shared trips and
        this process's metrics zero (other processes keep their own counters)."""
        self._force("reset")
        with self._lock:
            self._zero_counters()

    # --- status ---------------------------------------------------------------------------------

    def _observe(self, mode: str) -> Optional[Reply]:
        try:
            reply = self._run(self._status_script, mode, probe=True)
        except _StoreFailure:
            return None
        self._fire(reply)
        return reply

    @property
    def state(self) -> CircuitState:
        """The shared state (an OPEN breaker whose timeout has passed reads HALF_OPEN); OPEN while Redis fails."""
        reply = self._observe("light")
        return _OPEN if reply is None else reply.state

    @property
    def current_backoff(self) -> float:
        """Open timeout in seconds of the current trip (while CLOSED: of the next trip)."""
        reply = self._observe("light") or self._shared
        return self._backoff(max(reply.consecutive_trips if reply else 0, 1))

    @property
    def metrics(self) -> BreakerMetrics:
        """This process's counters, with the shared trip count and last recovery (the last seen while Redis fails)."""
        return self._metrics(self._observe("light"))

    def _metrics(self, reply: Optional[Reply]) -> BreakerMetrics:
        with self._lock:
            shared = reply or self._shared
            return BreakerMetrics(
                total_requests=self._successes + self._failures + self._rejections + self._ignored,
                successful_requests=self._successes,
                failed_requests=self._failures,
                rejected_requests=self._rejections,
                ignored_requests=self._ignored,
                circuit_trips=shared.trips if shared else 0,
                last_failure_time=self._last_failure_time,
                last_recovery_time=shared.recovered_at if shared else None,
            )

    def get_status(self) -> Dict[str, Any]:
        """Return a JSON-serialisable snapshot: the shared state and window, this process's counters.

        Never raises for a failing store: ``state`` then reads "open", the shared values are None
        and ``store_error`` says why.
        """
        reply = self._observe("full")
        metrics = self._metrics(reply)
        with self._lock:
            message, error = self._last_failure_message, self._store_error
        calls, failures = reply.extra if reply is not None else (None, None)
        status = self._status(
            state=None if reply is None else reply.state,
            forced_open=False if reply is None else reply.forced,
            failures_in_window=failures,
            calls_in_window=calls,
            consecutive_trips=None if reply is None else reply.consecutive_trips,
            seconds_until_retry=None if reply is None else reply.retry_after,
            half_open_in_flight=None if reply is None else reply.in_flight,
            metrics=metrics,
            last_failure_message=message,
            opened_at=None if reply is None else reply.opened_at,
        )
        status.update(store=self.store, store_error=None if reply is not None else error)
        return status

    def __repr__(self) -> str:
        return f"<RedisCircuitBreaker {self.name!r} {self.circuit_type.value} {self.store}>"

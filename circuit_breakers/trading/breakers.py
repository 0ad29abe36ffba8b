"""TradingCircuitBreakers: the six trading breakers over a PortfolioProvider, and the trading API.

A facade: :func:`~circuit_breakers.trading.wiring.wire` makes the parts, and this class answers for
them. The safety state lives in one :class:`~circuit_breakers.trading.safety.SafetyCore`;
:class:`~circuit_breakers.trading.evaluation.Evaluation` reads the provider, judges the readings
with the pure rules (:mod:`~circuit_breakers.trading.rules`) and turns verdicts into the core's
transitions; :class:`~circuit_breakers.trading.standing.Standing` says what blocks trading and builds
the status; :class:`~circuit_breakers.trading.order_flow.OrderFlow` decides orders around the
pre-trade gate; :class:`~circuit_breakers.trading.resets.Resets` engages and resets;
:class:`~circuit_breakers.trading.lifecycle.Lifecycle` keeps the store link and the monitor.

Data flow: read the provider (no lock held) -> judge and update under the facade's lock (the
evaluation's), then the core's -> fire callbacks after every lock is released. ``can_trade()`` is a
lock-free read of what the core derives; it never calls the provider.

The breakers in :attr:`TradingCircuitBreakers.manager` (``daily_loss``, ``max_drawdown``,
``volatility``) mirror the latches for status views; opening or closing those by hand releases
nothing, and every ``check_now()`` puts them back in line. ``connection`` is a real breaker fed by
``trade_guard`` and ``record_connection_*``.
"""

from __future__ import annotations

import functools
import os
from decimal import Decimal
from types import TracebackType
from typing import Callable, List, Optional, Type, TypeVar, Union

from typing_extensions import ParamSpec, Self

from circuit_breakers.breaker_base import ensure_sync
from circuit_breakers.clock import Clock
from circuit_breakers.config import check_number
from circuit_breakers.errors import ConfigTypeError
from circuit_breakers.forks import on_fork_in_child, renew_locks
from circuit_breakers.stores.base import Store, Subscription
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.guard import TradeGuard
from circuit_breakers.trading.killswitch import secret_bytes
from circuit_breakers.trading.latches import KILL_SWITCH
from circuit_breakers.trading.monitor import Monitor
from circuit_breakers.trading.orders import Order, OrderDecision, OrderLimits, TradingState
from circuit_breakers.trading.provider import PortfolioProvider
from circuit_breakers.trading.rules import Level
from circuit_breakers.trading.status import TradingStatus
from circuit_breakers.trading.wiring import BREAKER_NAMES, audit_target, checked_settings, open_store, wire
from circuit_breakers.types import CircuitState

P = ParamSpec("P")
R = TypeVar("R")

_OPEN = CircuitState.OPEN


class TradingCircuitBreakers:
    """Daily loss, max drawdown (kill switch), concentration, volatility, order rate and connection breakers.

    Every method is thread-safe. Only ``check_now()``, ``start_monitoring()``,
    ``check_position_concentration()``, ``check_order()`` and ``trade_guard()`` call the provider
    (and block while it does); ``can_trade()`` and ``get_blocking_reasons()`` never do.

    Where the state lives: in memory by default; with ``state_path``, in a SQLite file that every
    process on the host giving the same path shares (the kill switch, the day halts, the
    high-water mark, the reset key's hash and the wrong-key count survive restarts; engages and
    resets are audited to ``<state_path>.audit.jsonl``); with ``store=RedisStore(...)``, in Redis
    for processes on several hosts. ``reset_key`` (str or bytes) is kept only as a salted scrypt
    hash, stored with the state: the first process stores it, a later one with a different key is
    refused (ConfigError). Without any key the kill switch cannot be reset while
    ``require_manual_reset`` is on. A state that cannot be read engages the kill switch.

    Use it as a context manager (``with TradingCircuitBreakers(...) as breakers:``) or call
    :meth:`close` to stop its threads; an instance that is dropped stops them too.
    """

    def __init__(
        self,
        provider: PortfolioProvider,
        config: Optional[TradingBreakerConfig] = None,
        *,
        reset_key: Union[str, bytes, None] = None,
        state_path: Union[str, os.PathLike[str], None] = None,
        clock: Optional[Clock] = None,
        order_limits: Optional[OrderLimits] = None,
        store: Optional[Store] = None,
    ) -> None:
        config, clock, order_limits = checked_settings(provider, config, clock, order_limits)
        secret = secret_bytes(reset_key)
        self.provider = provider
        self.config = config
        self._clock = clock
        self._mono = clock.monotonic
        store, audit = open_store(state_path, store, clock)
        self._monitor = Monitor(self, config.check_interval_seconds, name=f"circuit_breakers-monitor-{id(self):x}")
        parts = wire(
            provider,
            config,
            clock,
            order_limits,
            store=store,
            audit=audit,
            secret=secret,
            monitor=self._monitor,
            can_trade=self.can_trade,
            blocking_reasons=self.get_blocking_reasons,
        )
        self.manager = parts.manager
        self._on_trip, self._on_warning, self._on_recovery = parts.on_trip, parts.on_warning, parts.on_recovery
        self._on_kill = parts.on_kill
        self._connection, self._core, self._guard = parts.connection, parts.core, parts.reset_guard
        self._limiter, self._gate = parts.limiter, parts.gate
        self._evaluation, self._standing, self._orders = parts.evaluation, parts.standing, parts.orders
        self._lifecycle, self._resets = parts.lifecycle, parts.resets
        try:
            self._lifecycle.sync()
        except BaseException:
            store.close()
            raise
        self._lifecycle.start(self)
        on_fork_in_child(self, TradingCircuitBreakers._after_fork_in_child)

    @property
    def _subscription(self) -> Optional[Subscription]:
        """The store's listener (restarted by the monitor when it stops)."""
        return self._lifecycle.subscription

    def close(self) -> None:
        """Stop the monitor and the store's listener, withdraw the heartbeat, close the store. Idempotent.

        The instance may not be used afterwards (the store is closed).
        """
        self._lifecycle.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def _after_fork_in_child(self) -> None:
        """In a forked child: free every lock, reopen the store, restart the listener and the monitor."""
        renew_locks(self)
        self._lifecycle.after_fork_in_child()

    # --- monitoring -----------------------------------------------------------------------------

    def start_monitoring(self) -> None:
        """Take a first reading now, then poll every ``check_interval_seconds`` on a daemon thread.

        Blocks for the first reading. A second call while running does nothing.
        """
        self._lifecycle.start_monitoring(self.check_now)

    def stop_monitoring(self, timeout: float = 2.0) -> bool:
        """Stop the monitor thread; True if it ended within ``timeout`` seconds (see Monitor.stop).

        Raises ConfigTypeError / ConfigError for a bad timeout, before stopping anything.
        """
        return self._lifecycle.stop_monitoring(check_number("timeout", timeout, inclusive=True, maximum=86400.0))

    def _poll(self) -> None:
        """One poll of the monitor thread, which calls it by name (see Lifecycle.poll)."""
        self._lifecycle.poll(self.check_now)

    def _poll_failed(self, error: BaseException) -> None:
        self._lifecycle.poll_failed(error)

    def _monitor_exited(self, error: Optional[BaseException]) -> None:
        self._lifecycle.monitor_exited(error)

    def check_now(self) -> TradingStatus:
        """Read the provider once, apply every rule, and return the status.

        Blocks while the provider answers; runs on the caller's thread (the monitor calls the
        same code). A provider that raises or answers garbage is logged and counted; after
        ``connection_failure_threshold`` bad readings in a row trading halts until a good one.
        It also re-reads the state store and retries what could not be written.
        """
        self.refresh()
        return self.get_status()

    def refresh(self) -> None:
        """What :meth:`check_now` does, without building the status it returns.

        Reads the provider once, applies every rule, re-reads the state store and retries what
        could not be written; about half the cost of ``check_now()``, for a loop of one's own that
        polls fast (a replay drives every row through it). Blocks while the provider answers.
        """
        self._lifecycle.sync()
        self._evaluation.check()

    # --- trading API --------------------------------------------------------------------------

    def can_trade(self) -> bool:
        """Whether trading may go ahead now. Never calls the provider; never blocks on I/O.

        False while the kill switch, a daily-loss or volatility halt, or an open connection
        breaker holds, while the provider fails, the state cannot be read or written, the audit
        trail cannot be written, or (while monitoring) the last good reading is older than the
        staleness bound.
        """
        core = self._core
        if core.attention or self._connection._period.state is _OPEN:
            if core.certain:
                return False  # only a reading, a write or a person lifts these, never time: no need to look
            bounds = core.day_bounds  # one atomic read; no lock needed
            if bounds:
                now, mono = self._clock.now(), self._mono()
                for wall, day, auto in bounds:
                    if (now < wall or mono < day) and mono < auto:
                        return False
            return not self._standing.current_blocks()
        evaluation = self._evaluation
        return not evaluation.monitoring or evaluation.fresh(self._mono())

    def get_blocking_reasons(self) -> List[str]:
        """One line for each thing that blocks trading now, each starting with the breaker's name."""
        return self._standing.blocking_reasons()

    @property
    def trading_state(self) -> TradingState:
        """ACTIVE, REDUCING (only risk-reducing orders pass) or HALTED. Never calls the provider."""
        return self._standing.trading_state()[0]

    def record_order(self) -> bool:
        """Count one order if it fits both the per-minute and per-hour limits; False (not counted) if not.

        A throttle, not a halt: it never blocks ``can_trade()``, and frees up as the windows slide.
        """
        return bool(self._limiter.try_acquire())

    def check_position_concentration(self, symbol: str, proposed_value: Decimal) -> bool:
        """Whether adding ``proposed_value`` to ``symbol`` keeps it within ``max_position_pct``.

        Calls the provider (blocks while it answers). Returns False (fail closed) when the total
        value is zero or negative or the provider fails. Fires a warning above the warning level.
        Raises ConfigTypeError for a float or non-numeric value.
        """
        verdict = self._evaluation.judge_concentration(symbol, proposed_value)
        return verdict.level is not Level.TRIP

    def record_connection_failure(self, error: Union[BaseException, str, None] = None) -> None:
        """Count a broker connection failure (an exception or a message); enough of them halt trading.

        Raises ConfigTypeError, counting nothing, for anything else.
        """
        if error is not None and not isinstance(error, (BaseException, str)):
            raise ConfigTypeError(f"error must be an exception, a str or None, got {error!r}")
        self._connection.record_failure(error)

    def record_connection_success(self) -> None:
        """Count a successful broker call: it closes a half-open connection breaker, as a trial would.

        Ignored while the breaker is open (its open timeout decides when it is tried again).
        """
        connection = self._connection
        if connection.state is not CircuitState.OPEN:
            ticket = connection._admit()
            if ticket is not None:
                connection._succeeded(ticket)

    def record_cash_flow(self, amount: Decimal) -> None:
        """Move the high-water mark by a deposit (+) or withdrawal (-) so it is not read as P&L.

        Call it when the cash moves; the monitor may take one reading in between. Written to the
        store before it applies: raises StateStoreError (nothing moved) if it cannot be, and
        ConfigTypeError for floats.
        """
        self._resets.record_cash_flow(amount)

    def trade_guard(self, symbol: Union[str, Order, None] = None, value: Optional[Decimal] = None) -> TradeGuard:
        """A ``with`` block that may trade only if trading is allowed now.

        Raises TradingHalted (with the reasons) on entry when blocked. With ``symbol`` and
        ``value`` it also checks concentration and counts the order against the rate limit, all
        or nothing. Given an :class:`Order` instead, it runs every pre-trade check and, if all pass,
        records the order (rate windows, duplicate memory, pending exposure) atomically; a refused
        order raises OrderRejected (a TradingHalted) carrying the decision and records nothing.
        Connection errors (``config.connection_errors``) leaving the block count as connection
        failures; a clean exit counts as a connection success. Calls the provider for
        order-specific figures; blocks while it answers.
        """
        return TradeGuard(self._orders.port, symbol, value)

    # --- pre-trade order checks ---------------------------------------------------------------

    def check_order(self, order: Order) -> OrderDecision:
        """Run every pre-trade check on ``order`` and return the decision; records nothing, warns nobody.

        Never raises for a refused order (ConfigTypeError for something that is not an Order).
        Calls the provider for order-specific figures; blocks while it answers.
        """
        return self._orders.decide(order, record=False)

    def record_cancel(self) -> bool:
        """Count a cancel request against the message limit; False (not counted) when it is reached."""
        return self._gate.record_message()

    def record_modify(self) -> bool:
        """Count a modify request against the message limit; False (not counted) when it is reached."""
        return self._gate.record_message()

    def order_filled(self, client_order_id: str, quantity: Decimal) -> Decimal:
        """Release the pending exposure of a (partial) fill; return the quantity still working.

        A filled order stays in the duplicate memory (the same order again within the window is the
        duplicate the check exists for). Raises UnknownOrderError (a KeyError) for an id that is not
        pending, ConfigError for a quantity <= 0 or above what works.
        """
        return self._gate.filled(client_order_id, quantity)

    def order_cancelled(self, client_order_id: str) -> None:
        """Release the pending exposure of a cancelled order and forget it (a resend is not a duplicate).

        Raises UnknownOrderError (a KeyError) for an id that is not pending.
        """
        self._gate.cancelled(client_order_id)

    def order_rejected(self, client_order_id: str) -> None:
        """The broker rejected an order sent through ``trade_guard``: release and forget it, as a cancel.

        For an order whose send failed with an unknown outcome (shown in
        ``get_status().details["orders"]["unknown_orders"]``) once the application found out.
        Raises UnknownOrderError (a KeyError) for an id that is not pending.
        """
        self._gate.cancelled(client_order_id)

    def restrict(self, *symbols: str) -> None:
        """Put symbols on the restricted list: every order in them is refused from now on."""
        self._gate.restrict(symbols)

    def unrestrict(self, *symbols: str) -> None:
        """Take symbols off the restricted list."""
        self._gate.unrestrict(symbols)

    def register_kill_handler(self, handler: Callable[[str], object]) -> None:
        """Call ``handler(reason)`` once each time the kill switch engages, e.g. to cancel working orders.

        Runs synchronously on the thread that engaged it (or heard of it from the store), after
        every lock is released; one that raises, even ``SystemExit``, is logged and the others
        still run. Each outcome is in ``get_status()``.
        """
        self._on_kill.add(handler)

    def guarded(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorator: run ``func`` inside :meth:`trade_guard` (no order counting)."""
        ensure_sync(func)

        @functools.wraps(func)
        def guarded_call(*args: P.args, **kwargs: P.kwargs) -> R:
            with TradeGuard(self._orders.port, None, None):
                return func(*args, **kwargs)

        return guarded_call

    # --- the kill switch and resets -------------------------------------------------------------

    @property
    def kill_switch_active(self) -> bool:
        """Whether the kill switch is engaged."""
        return self._core.kill_switch_engaged

    def engage_kill_switch(self, reason: object, *, actor: object = None) -> None:
        """Engage the kill switch by hand for every process sharing the state; only a keyed reset releases it.

        Never refused and never half done: any ``reason`` (and ``actor``) is recorded as its
        ``str()``. The switch holds at once; the kill handlers and trip callbacks run before this
        returns; the record reaches the store, and the audit trail, as soon as they can be written
        (trading stays blocked until then).
        """
        self._resets.engage_kill_switch(reason, actor)

    def reset_kill_switch(self, auth_key: Union[str, bytes], *, actor: Optional[str] = None) -> bool:
        """Release the kill switch, for every process sharing the state, if ``auth_key`` is right;
        return whether it was right.

        Re-bases the drawdown: from now on it is measured from the current value, so a desk that
        is still under water is not killed again at once. A right key while the kill switch is not
        engaged changes nothing (no re-base: that would hide a drawdown). Wrong keys are logged
        (never the key), counted with the state, and after ``reset_max_attempts`` in a row lock
        further attempts out. Raises KillSwitchError when no reset key is configured or while
        locked out, StateStoreError (nothing released) when the release cannot be written, and
        ConfigTypeError for an ``actor`` that is not a str. Every refusal is audited too, with why,
        never with the key. Blocks for one scrypt hash and the store's writes.
        """
        return self._resets.reset_kill_switch(auth_key, actor)

    def reset_breaker(self, name: str) -> bool:
        """Reset one breaker by name; True if it reset something.

        The kill switch (``max_drawdown``) refuses with KillSwitchError (audited) while
        ``require_manual_reset`` is on; unknown names raise UnknownBreakerError (a KeyError).
        Resetting ``rate_limit`` on a shared store that cannot be reached, or a day halt whose
        release cannot be written, raises StateStoreError and changes nothing.
        """
        return self._resets.reset_breaker(name)

    def reset_all(self) -> None:
        """Reset every breaker except the kill switch."""
        for name in BREAKER_NAMES:
            if name != KILL_SWITCH:
                self.reset_breaker(name)

    # --- callbacks ------------------------------------------------------------------------------

    def register_trip_callback(self, callback: Callable[[str, str], object]) -> None:
        """Call ``callback(name, reason)`` when a breaker halts trading."""
        self._on_trip.add(callback)

    def register_warning_callback(self, callback: Callable[[str, str], object]) -> None:
        """Call ``callback(name, message)`` once each time a figure crosses its warning level."""
        self._on_warning.add(callback)

    def register_recovery_callback(self, callback: Callable[[str], object]) -> None:
        """Call ``callback(name)`` when a halt lifts."""
        self._on_recovery.add(callback)

    # --- status ---------------------------------------------------------------------------------

    def get_status(self) -> TradingStatus:
        """A consistent snapshot of every breaker, with figures, limits and last trips."""
        return self._standing.status()

    def __repr__(self) -> str:
        state = "blocked" if self._core.attention else "ok"
        return f"<TradingCircuitBreakers {state} kill_switch={'on' if self.kill_switch_active else 'off'}>"


__all__ = ["BREAKER_NAMES", "TradingCircuitBreakers", "audit_target"]

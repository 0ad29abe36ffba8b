"""Where a desk stands: what blocks trading now, the trading state that leaves, the status snapshot.

:class:`Standing` only reads: the safety core's latches and faults, the freshness of the readings,
the connection breaker, the order windows and the gate. On the way it applies the time rules (a
halt whose trading day is over lifts when it is looked at), so every answer is current. It never
calls the provider. The connection breaker is read before any lock is taken: reading it may fire
its callbacks.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Tuple

from circuit_breakers.breaker import CircuitBreaker
from circuit_breakers.errors import StateStoreError
from circuit_breakers.events import KillHandlers, Pending, fire
from circuit_breakers.ratelimit import Permits
from circuit_breakers.trading import rules
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.evaluation import Evaluation
from circuit_breakers.trading.gate import PreTradeGate
from circuit_breakers.trading.killswitch import ResetGuard
from circuit_breakers.trading.monitor import Monitor
from circuit_breakers.trading.orders import TradingState
from circuit_breakers.trading.safety import SafetyCore
from circuit_breakers.trading.status import TradingStatus, build_details
from circuit_breakers.types import CircuitState

_ACTIVE = (TradingState.ACTIVE, "")


class Standing:
    """What blocks one desk, and its status; thread-safe (it takes the evaluation's and the core's locks)."""

    def __init__(
        self,
        *,
        core: SafetyCore,
        evaluation: Evaluation,
        connection: CircuitBreaker,
        gate: PreTradeGate,
        limiter: Permits,
        reset_guard: ResetGuard,
        on_kill: KillHandlers,
        monitor: Monitor,
        config: TradingBreakerConfig,
        monotonic: Callable[[], float],
        can_trade: Callable[[], bool],
    ) -> None:
        self._core = core
        self._evaluation = evaluation
        self._connection = connection
        self._gate = gate
        self._limiter = limiter
        self._reset_guard = reset_guard
        self._on_kill = on_kill
        self._monitor = monitor
        self._config = config
        self._mono = monotonic
        self._can_trade = can_trade  # the facade's lock-free answer, asked first

    # --- what blocks ------------------------------------------------------------------------------

    def blocking_reasons(self) -> List[str]:
        """One line for each thing that blocks trading now, each starting with the breaker's name."""
        return [f"{name}: {text}" for name, text in self.current_blocks()]

    def current_blocks(self, deferred: Optional[Pending] = None) -> List[Tuple[str, str]]:
        """(breaker name, why) for everything that blocks trading now, with the time rules applied.

        The callbacks a lifted halt fires go to ``deferred`` when given (a caller holding a lock of its
        own fires them once it is released), else fire before this returns."""
        connection = self.connection_block(deferred)
        pending: Pending = [] if deferred is None else deferred
        with self._core.lock:
            self._core.apply_time_rules(self._evaluation.cleared, pending)
            blocks = self._blocks(self._mono(), connection)
        if deferred is None:
            fire(pending)
        return blocks

    def _blocks(self, mono: float, connection: Optional[str]) -> List[Tuple[str, str]]:
        """(breaker name, why) for everything that blocks trading now. Core lock held."""
        blocks = self._core.blocks()
        if connection is not None:
            blocks.insert(len(self._core.held()), ("connection", connection))
        stale = self._evaluation.stale(mono)
        if stale is not None:
            blocks.append(("monitor", stale))
        return blocks

    def trading_state(self, deferred: Optional[Pending] = None) -> Tuple[TradingState, str]:
        """The trading state and, unless ACTIVE, why (only the breaker names when REDUCING).

        ``deferred``: as for :meth:`current_blocks`."""
        if deferred is None:
            if self._can_trade():  # ACTIVE, found without the lock
                return _ACTIVE
        # While something may block, can_trade() applies the time rules and fires what they lift: with
        # ``deferred`` that look goes through current_blocks, which defers those callbacks, and the
        # all-clear answer is can_trade()'s own without anything that could fire.
        elif not (
            self._core.attention or self._connection._period.state is CircuitState.OPEN
        ) and self._evaluation.fresh(self._mono()):
            return _ACTIVE
        blocks = self.current_blocks(deferred)
        state = self.classify(blocks)
        if state is TradingState.REDUCING:  # the names say enough: "reduce-only (daily_loss)"
            return state, ", ".join(name for name, _ in blocks)
        return state, "; ".join(f"{name}: {text}" for name, text in blocks)

    def classify(self, blocks: List[Tuple[str, str]]) -> TradingState:
        """ACTIVE with nothing blocking, REDUCING when only reducible halts block, HALTED otherwise."""
        if not blocks:
            return TradingState.ACTIVE
        if {name for name, _ in blocks}.issubset(self._gate.limits.reducing_breakers):
            return TradingState.REDUCING
        return TradingState.HALTED

    def connection_block(self, deferred: Optional[Pending] = None) -> Optional[str]:
        """Why the connection breaker blocks, or None. Reading the breaker may move it to HALF_OPEN:
        its callbacks fire before this returns (call with no lock held), or go to ``deferred``."""
        if self._connection._observe(deferred).state is CircuitState.OPEN:
            return self.connection_reason()
        return None

    def connection_reason(self) -> str:
        """Why the connection breaker is open: the failures that tripped it (they leave the window as it
        opens, so they are told from the threshold) or the failed trial call, the last error, the retry."""
        status = self._connection.get_status()
        retry = status["seconds_until_retry"]
        threshold = self._config.connection_failure_threshold
        if status["state"] == CircuitState.CLOSED.value:
            what = f"{status['failures_in_window']} failures in the last minute (threshold {threshold})"
        elif status["consecutive_trips"] > 1:
            what = f"a trial call failed (trip {status['consecutive_trips']} in a row)"
        else:
            what = f"{threshold} failures in the last minute (threshold {threshold})"
        return f"{what}; last: {status['last_failure_message']}" + (f"; retry in {retry:.1f}s" if retry else "")

    # --- the snapshot -----------------------------------------------------------------------------

    def status(self) -> TradingStatus:
        """A consistent snapshot of every breaker, with figures, limits and last trips."""
        return rules.computed(self._status)  # rounded for display whatever the caller's decimal context

    def _status(self) -> TradingStatus:
        connection_block = self.connection_block()
        evaluation = self._evaluation
        pending: Pending = []
        with evaluation.lock, self._core.lock:
            core = self._core
            mono = self._mono()
            core.apply_time_rules(evaluation.cleared, pending)
            blocks = self._blocks(mono, connection_block)
            details = build_details(
                self._config,
                held=core.held(),
                last=dict(core.last),
                verdicts=evaluation.verdicts,
                warned=evaluation.warning_names(),
            )
            details["max_drawdown"].update(
                own_high_water_mark=core.high_water,
                own_drawdown_pct=evaluation.drawdowns.get("own"),
                provider_drawdown_pct=evaluation.drawdowns.get("provider"),
                drawdown_baseline_pct=core.baseline,
            )
            details["state"] = core.health()
            kill_switch = core.kill_switch_engaged
            warnings = evaluation.warning_names()
            last_good = evaluation.last_good
            monitoring = evaluation.monitoring
        fire(pending)
        details["max_drawdown"]["reset"] = self._reset_guard.status()
        reasons = [f"{name}: {text}" for name, text in blocks]
        try:
            limiter: Optional[List[Dict[str, Any]]] = self._limiter.status()["limits"]
            details["rate_limit"] = {"limits": limiter, "error": None}
        except StateStoreError as exc:  # a shared limiter whose store is down: record_order() refuses
            limiter = None
            details["rate_limit"] = {"limits": None, "error": str(exc)}
        details["connection"] = self._connection.get_status()
        details["orders"] = self._gate.status()
        details["max_drawdown"]["kill_handlers"] = self._on_kill.outcomes()
        return TradingStatus(
            trading_state=self.classify(blocks),
            can_trade=not reasons,
            blocking_breakers=tuple(dict.fromkeys(name for name, _ in blocks)),
            warning_breakers=warnings,
            reasons=tuple(reasons),
            kill_switch_active=kill_switch,
            orders_last_minute=None if limiter is None else int(limiter[0]["calls_in_window"]),
            orders_last_hour=None if limiter is None else int(limiter[1]["calls_in_window"]),
            monitoring=monitoring,
            monitor_alive=self._monitor.alive,
            last_reading_age=None if last_good is None else mono - last_good,
            details=details,
        )

"""What people do to a desk's halts: engage the kill switch, reset it with the key, reset a breaker,
report a cash flow.

Each checks its authority and its arguments first, then changes the safety core under the facade's
lock and the core's (in that order), and fires the callbacks once both are released. Every refused
kill-switch reset is audited, with why, never with the key.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Callable, Optional, Sequence, Tuple, Union

from circuit_breakers.breaker import CircuitBreaker
from circuit_breakers.errors import ConfigTypeError, KillSwitchError, StateStoreError, UnknownBreakerError
from circuit_breakers.events import Pending, fire
from circuit_breakers.ratelimit import Permits
from circuit_breakers.trading import rules
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.evaluation import Evaluation
from circuit_breakers.trading.killswitch import ResetGuard
from circuit_breakers.trading.latches import KILL_SWITCH
from circuit_breakers.trading.orders import check_amount
from circuit_breakers.trading.safety import SafetyCore

logger = logging.getLogger(__name__)


class Resets:
    """The kill switch's engage and keyed reset, breaker resets and cash flows of one desk; thread-safe."""

    def __init__(
        self,
        *,
        core: SafetyCore,
        evaluation: Evaluation,
        reset_guard: ResetGuard,
        limiter: Permits,
        connection: CircuitBreaker,
        config: TradingBreakerConfig,
        breaker_names: Sequence[str],
        sync: Callable[[], None],
    ) -> None:
        self._core = core
        self._evaluation = evaluation
        self._reset_guard = reset_guard
        self._limiter = limiter
        self._connection = connection
        self._config = config
        self._names = tuple(breaker_names)
        self._sync = sync  # adopt the store (and bind the reset key) before judging a key

    def engage_kill_switch(self, reason: object, actor: object) -> None:
        """Engage the kill switch by hand (see ``TradingCircuitBreakers.engage_kill_switch``)."""
        pending: Pending = []
        with self._core.lock:
            self._core.engage_by_hand(reason, "manual" if actor is None else actor, pending)
        fire(pending)

    def reset_kill_switch(self, auth_key: Union[str, bytes], actor: Optional[str]) -> bool:
        """A keyed reset (see ``TradingCircuitBreakers.reset_kill_switch``): whether the key was right."""
        if actor is not None and not isinstance(actor, str):
            raise ConfigTypeError(f"actor must be a str or None, got {actor!r}")
        self._sync()
        try:
            accepted = self._reset_guard.check(auth_key)
        except (KillSwitchError, StateStoreError) as exc:
            self._audit_refusal(str(exc), actor)
            raise
        if not accepted:
            locked_for = self._reset_guard.status()["locked_out_for"]
            self._audit_refusal(
                f"wrong key; resets locked out for {locked_for:.1f}s" if locked_for else "wrong key", actor
            )
            return False
        pending: Pending = []
        failure: Optional[StateStoreError] = None
        evaluation = self._evaluation
        try:
            with evaluation.lock, self._core.lock:
                core = self._core
                if not core.kill_switch_engaged:
                    logger.info("reset_kill_switch: the kill switch is not engaged; nothing to release")
                    return True
                core.repair(pending)  # an unreadable store is read again, or started afresh, before any write
                reading = evaluation.reading
                rebase = None if reading is None else (reading.total_value, min(reading.max_drawdown_pct, Decimal(0)))
                if core.keyed_release(rebase, actor, pending) and reading is None:
                    evaluation.rebase_pending = True  # no reading since a restart: re-base on the first one
        except StateStoreError as exc:
            failure = exc
        finally:
            fire(pending)
        if failure is not None:
            self._audit_refusal(f"the release cannot be written: {failure}", actor)
            raise failure
        return True

    def _audit_refusal(self, reason: str, actor: Optional[str]) -> None:
        """Audit a refused reset; the refusal stays the answer even if the trail cannot be written."""
        pending: Pending = []
        with self._core.lock:
            self._core.audit_event("kill_switch_reset_refused", reason, actor, pending)
        fire(pending)

    def reset_breaker(self, name: str) -> bool:
        """Reset one breaker by name (see ``TradingCircuitBreakers.reset_breaker``): whether it reset something."""
        if not isinstance(name, str):
            raise ConfigTypeError(f"breaker name must be a str, got {name!r}")
        if name not in self._names:
            raise UnknownBreakerError(name, self._names)
        if name == "rate_limit":
            had_orders = any(limit["calls_in_window"] for limit in self._limiter.status()["limits"])
            self._limiter.reset()
            return bool(had_orders)
        if name == "connection":
            was_closed = self._connection.is_closed
            self._connection.reset()
            return not was_closed
        pending: Pending = []
        refused = False
        try:
            with self._evaluation.lock, self._core.lock:
                changed, refused = self._reset_latch(name, pending)
        finally:
            fire(pending)  # a fault the refusal set has its trip callbacks too
        if refused:
            raise KillSwitchError("the kill switch needs reset_kill_switch(key) (require_manual_reset is on)")
        return changed

    def _reset_latch(self, name: str, pending: Pending) -> Tuple[bool, bool]:
        """reset_breaker for a latch or a warning: (changed, refused). Both locks held."""
        core = self._core
        if name == "position_concentration":
            return self._evaluation.forget_warnings(name), False
        if name == KILL_SWITCH:
            # Decided under the core's lock: an engage on another thread cannot slip in between.
            if not core.kill_switch_engaged:
                return False, False
            if self._config.require_manual_reset:
                why = "reset_breaker: require_manual_reset is on"
                core.audit_event("kill_switch_reset_refused", why, None, pending)
                return False, True
            return core.release_kill_switch(None, pending, by="reset_breaker"), False
        changed = core.release_day_halt(name, pending)
        if not changed and name in core.held():
            raise StateStoreError(f"cannot lift {name}: the store did not take the release")
        return changed, False

    def record_cash_flow(self, amount: Decimal) -> None:
        """Move the high-water mark by a cash flow (see ``TradingCircuitBreakers.record_cash_flow``)."""
        delta = check_amount("amount", amount, signed=True)
        pending: Pending = []
        with self._evaluation.lock, self._core.lock:
            rules.computed(self._core.move_high_water, delta, pending)  # whatever the caller's decimal context
        fire(pending)

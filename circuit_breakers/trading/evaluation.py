"""Judging the provider: a reading against the rules, the warnings it crosses, the latches it engages.

:class:`Evaluation` keeps what the readings said (the last good reading and when it came, the bad
readings in a row, each breaker's verdict, the warnings in force, the drawdowns) under its
:attr:`~Evaluation.lock`, the facade's lock: taken before the safety core's, never inside it. A
reading is taken with no lock held, then judged under both; a verdict at its limit becomes the
core's transition (an engage), and the callbacks fire once every lock is released.
"""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Callable, Dict, Mapping, Optional, Tuple

from circuit_breakers.breaker import CircuitBreaker
from circuit_breakers.errors import ConfigTypeError, StateStoreError
from circuit_breakers.events import Callbacks, Pending, fire
from circuit_breakers.trading import rules
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.orders import check_amount
from circuit_breakers.trading.provider import PortfolioProvider, Reading, ReturnsSeen, checked_decimal, take_reading
from circuit_breakers.trading.records import AUTOMATIC
from circuit_breakers.trading.rules import Level, Verdict
from circuit_breakers.trading.safety import SafetyCore
from circuit_breakers.types import CircuitState

logger = logging.getLogger(__name__)


class Evaluation:
    """The readings of one desk's provider and the verdicts on them; thread-safe under :attr:`lock`."""

    def __init__(
        self,
        provider: PortfolioProvider,
        config: TradingBreakerConfig,
        core: SafetyCore,
        mirrors: Mapping[str, CircuitBreaker],
        on_warning: Callbacks[[str, str]],
        *,
        monotonic: Callable[[], float],
    ) -> None:
        self._provider = provider
        self._config = config
        self._core = core
        self._mirrors = mirrors
        self._on_warning = on_warning
        self._mono = monotonic
        self.stale_after = config.stale_after
        # lock guards everything below; the core's lock is only ever taken inside it, and the mirrors'
        # and the connection breaker's locks only inside the core's.
        self.lock = threading.Lock()
        self.verdicts: Dict[str, Verdict] = {}
        # at or past a warning level, by breaker (and symbol: "position_concentration:SPY") -> message
        self.warnings: Dict[str, str] = {}
        self.reading: Optional[Reading] = None
        self.bad_readings = 0
        self.last_good: Optional[float] = None
        self.monitoring = False
        self.drawdowns: Dict[str, Decimal] = {}
        self.rebase_pending = False  # the kill switch was reset before any reading
        self._returns_seen = ReturnsSeen()

    def check(self) -> None:
        """Read the provider once and judge the reading; a provider that raises or answers garbage is
        logged and counted, and enough of those in a row block trading. Blocks while the provider
        answers (no lock held); fires the callbacks before returning."""
        try:
            reading: Optional[Reading] = take_reading(
                self._provider, self._config.volatility_lookback_days, self._returns_seen
            )
            error = ""
        except Exception as exc:
            reading, error = None, f"{type(exc).__name__}: {exc}"
            logger.warning("bad provider reading: %s", error)
        pending: Pending = []
        rules.computed(self._judge_reading, reading, error, pending)  # whatever the caller's decimal context
        fire(pending)

    def _judge_reading(self, reading: Optional[Reading], error: str, pending: Pending) -> None:
        """Apply the time rules and judge ``reading`` (None: a bad one, ``error`` says why)."""
        with self.lock:
            core = self._core
            with core.lock:
                core.apply_time_rules(self.cleared, pending)  # yesterday's halt lifts before today is judged
                if reading is None:
                    self.bad_readings += 1
                    threshold = self._config.connection_failure_threshold
                    if self.bad_readings >= threshold:
                        core.set_fault(
                            "provider",
                            f"{self.bad_readings} bad readings in a row (threshold {threshold}); last: {error}",
                            pending,
                        )
                else:
                    self.bad_readings = 0
                    self.last_good = self._mono()
                    core.clear_fault("provider", pending)
                    self._evaluate(reading, pending)
                core.apply_time_rules(self.cleared, pending)
                held = core.held()
                for name, mirror in self._mirrors.items():  # undo any hand-made change to a mirror
                    engaged = name in held
                    mirror._move(CircuitState.OPEN if engaged else CircuitState.CLOSED, pending, forced=engaged)

    def cleared(self, name: str) -> bool:
        """Whether a reading since the halt (or its adoption) no longer trips ``name``."""
        verdict = self.verdicts.get(name)
        return verdict is not None and verdict.level is not Level.TRIP

    def _evaluate(self, reading: Reading, pending: Pending) -> None:
        """Judge a good reading (both locks held)."""
        core = self._core
        self.reading = reading
        if self.rebase_pending:
            try:
                core.set_high_water(reading.total_value, min(reading.max_drawdown_pct, Decimal(0)), pending)
                self.rebase_pending = False
            except StateStoreError as exc:  # judging against the old mark would engage the switch again
                core.set_fault("state", f"cannot re-base the drawdown after a reset: {exc}", pending)
                return
        core.raise_high_water(reading.total_value, pending)
        if core.baseline < 0 and reading.max_drawdown_pct >= 0:
            core.clear_baseline(pending)  # the provider saw a new peak
        own = rules.drawdown_from_peak(reading.total_value, core.high_water or reading.total_value)
        theirs = rules.rebased_drawdown(reading.max_drawdown_pct, core.baseline)
        self.drawdowns = {"own": own, "provider": theirs, "effective": min(own, theirs)}
        config = self._config
        verdicts = {
            "daily_loss": rules.daily_loss(reading.daily_pnl_pct, config),
            "max_drawdown": rules.drawdown(min(own, theirs), config),
            "volatility": rules.volatility(reading.daily_pnl_pct, reading.daily_returns, config),
        }
        self.verdicts.update(verdicts)
        for name, verdict in verdicts.items():
            if name != "volatility":  # it has no warning level
                self._warn(name, verdict, pending)
            if verdict.level is Level.TRIP:
                core.engage(name, verdict.message, AUTOMATIC, pending)

    def _warn(self, name: str, verdict: Verdict, pending: Pending, *, symbol: Optional[str] = None) -> None:
        """Fire a warning once per crossing of the warning level (per symbol for concentration);
        forget it when the figure recovers. Lock held."""
        key = name if symbol is None else f"{name}:{symbol}"
        if verdict.level >= Level.WARN:
            if key not in self.warnings:
                said = rules.as_warning(name, verdict, self._config)  # the level crossed, even if past the limit
                message = said if symbol is None else f"{symbol}: {said}"
                pending.append((self._on_warning, (name, message)))
            self.warnings[key] = verdict.message
        else:
            self.warnings.pop(key, None)

    def warning_names(self) -> Tuple[str, ...]:
        """The breakers with a warning in force, each once. Lock held."""
        return tuple(dict.fromkeys(key.split(":", 1)[0] for key in self.warnings))

    def forget_warnings(self, name: str) -> bool:
        """Drop every warning of ``name`` (all symbols); whether there were any. Lock held."""
        keys = [key for key in self.warnings if key.split(":", 1)[0] == name]
        for key in keys:
            del self.warnings[key]
        return bool(keys)

    def fresh(self, mono: float) -> bool:
        """Whether the readings are recent enough to trade on (always, when not monitoring). Takes
        no lock: the fields read are each replaced whole."""
        if not self.monitoring:
            return True
        last = self.last_good
        return last is not None and mono - last <= self.stale_after

    def stale(self, mono: float) -> Optional[str]:
        """Why the readings are too old to trade on while monitoring, or None. Core lock held."""
        if self.monitoring and self._core.fault("monitor") is None:
            last = self.last_good
            if last is None:
                return "no good provider reading yet"
            if mono - last > self.stale_after:
                return f"last good reading {mono - last:.1f}s ago (limit {self.stale_after:g}s)"
        return None

    # --- concentration ----------------------------------------------------------------------------

    def judge_concentration(self, symbol: str, proposed_value: Decimal) -> Verdict:
        """The verdict on adding ``proposed_value`` to ``symbol``, remembered for status and warnings.

        Calls the provider (no lock held); raises ConfigTypeError for a bad symbol or amount.
        """
        if not isinstance(symbol, str) or not symbol:
            raise ConfigTypeError(f"symbol must be a non-empty str, got {symbol!r}")
        value = check_amount("proposed_value", proposed_value, signed=True)
        return rules.computed(self.judge, symbol, value)  # whatever the caller's decimal context

    def judge(self, symbol: str, value: Decimal) -> Verdict:
        """:meth:`judge_concentration` for a value already known good: an :class:`Order`'s signed
        notional, whose exact product may carry more decimal places than a value given by hand may."""
        verdict = self.concentration(symbol, value)
        pending: Pending = []
        with self.lock:
            self.verdicts["position_concentration"] = verdict
            self._warn("position_concentration", verdict, pending, symbol=symbol)
        fire(pending)
        return verdict

    def concentration(self, symbol: str, value: Decimal) -> Verdict:
        """The verdict alone, with no side effect (for check_order, which only looks); a provider that
        fails is a refusal."""
        try:
            verdict = rules.concentration(
                checked_decimal("get_position_concentration", self._provider.get_position_concentration(symbol)),
                value,
                checked_decimal("get_total_value", self._provider.get_total_value()),
                self._config,
            )
        except Exception as exc:
            logger.warning("concentration check for %s failed closed: %r", symbol, exc)
            verdict = Verdict(Level.TRIP, None, f"provider failed: {type(exc).__name__}: {exc}")
        return verdict

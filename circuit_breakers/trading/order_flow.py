"""Orders through a desk: the pre-trade decision around the gate, and the surface its trade guards use.

A decision reads the trading state (lock-free while the desk may trade), asks the provider what the
gate's checks need with no lock held, then lets the gate decide under its lock, reading the trading
state again there so that a halt that came meanwhile is not missed. :attr:`OrderFlow.port` is what
every :class:`~circuit_breakers.trading.guard.TradeGuard` of the desk works through.
"""

from __future__ import annotations

from typing import Callable, List

from circuit_breakers.breaker import CircuitBreaker
from circuit_breakers.errors import ConfigTypeError
from circuit_breakers.ratelimit import Permits
from circuit_breakers.trading import rules
from circuit_breakers.trading.evaluation import Evaluation
from circuit_breakers.trading.gate import PreTradeGate
from circuit_breakers.trading.guard import GuardPort
from circuit_breakers.trading.orders import Order, OrderDecision
from circuit_breakers.trading.provider import PortfolioProvider
from circuit_breakers.trading.standing import Standing


class OrderFlow:
    """Pre-trade decisions for one desk; thread-safe (the gate serialises what it records)."""

    def __init__(
        self,
        *,
        provider: PortfolioProvider,
        gate: PreTradeGate,
        standing: Standing,
        evaluation: Evaluation,
        limiter: Permits,
        connection: CircuitBreaker,
        can_trade: Callable[[], bool],
        blocking_reasons: Callable[[], List[str]],
    ) -> None:
        self._provider = provider
        self._gate = gate
        self._trading_state = standing.trading_state
        self._judge = evaluation.judge  # remembers the verdict, warns; the order's value is already checked
        self._look = evaluation.concentration  # only looks
        self.port = GuardPort(
            can_trade=can_trade,
            blocking_reasons=blocking_reasons,
            judge_concentration=evaluation.judge_concentration,
            decide=self.record,
            orders=limiter,
            admit=connection._admit,
            connection_reason=standing.connection_reason,
            give_back=connection._ignored_outcome,
            succeeded=connection._succeeded,
            raised=connection._raised,
            released=gate.released,
            unknown=gate.unknown,
        )

    def decide(self, order: Order, *, record: bool) -> OrderDecision:
        """Run every pre-trade check on ``order``; with ``record``, remember an accepted order (rate
        windows, duplicates, pending exposure) and the concentration verdict. Raises ConfigTypeError
        for something that is not an Order. Calls the provider; blocks while it answers."""
        if not isinstance(order, Order):
            raise ConfigTypeError(f"expected an Order, got {order!r}")
        if not rules.usual_context():
            # The caller's decimal context would round or trap differently: decide again in the
            # rules' own, where this look passes (the provider is then called in it too).
            return rules.computed(self.record if record else self.look, order)
        state, _ = self._trading_state()
        concentration = self._judge if record else self._look
        facts = self._gate.read_facts(order, self._provider, state, concentration)
        return self._gate.decide(order, facts, self._trading_state, record=record)

    def record(self, order: Order) -> OrderDecision:
        """:meth:`decide` with ``record``: what a trade guard given an order does on entry."""
        return self.decide(order, record=True)

    def look(self, order: Order) -> OrderDecision:
        """:meth:`decide` without ``record``: what ``check_order`` does."""
        return self.decide(order, record=False)

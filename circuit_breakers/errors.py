"""Every exception the library raises, under one base class.

::

    CircuitBreakerError
    ├── ConfigError (also ValueError)          a setting or argument has a bad value
    ├── ConfigTypeError (also TypeError)       a setting or argument has the wrong type
    ├── DuplicateBreakerError (also ValueError) a breaker name is already registered
    ├── UnknownBreakerError (also KeyError)    no breaker has that name
    ├── UnknownOrderError (also KeyError)      no pending order has that client order id
    ├── CircuitOpenException                   a call was rejected by an open breaker
    ├── RateLimitExceeded                      a rate limit refused a permit
    ├── TradingHalted                          trading is blocked; carries the reasons
    │   └── OrderRejected                      a pre-trade check refused an order; carries the decision
    ├── KillSwitchError                        the kill switch cannot be reset as asked
    └── StateStoreError                        durable state cannot be read or written
        └── CorruptStateError                  the stored state exists but is not readable
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from circuit_breakers.types import CircuitState, CircuitType, OrderDecision


class CircuitBreakerError(Exception):
    """Base class of every exception raised by ``circuit_breakers``."""


class ConfigError(CircuitBreakerError, ValueError):
    """Raised when a setting or argument has a bad value; the message names the field and value."""


class ConfigTypeError(CircuitBreakerError, TypeError):
    """Raised when a setting or argument has the wrong type; the message names the field and value."""


class DuplicateBreakerError(CircuitBreakerError, ValueError):
    """Raised when a breaker is created under a name that is taken, or asked for with another config."""


class UnknownBreakerError(CircuitBreakerError, KeyError):
    """Raised when no breaker has the given name; ``known`` lists the names that exist."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown breaker {name!r}; known breakers: {', '.join(self.known)}")

    def __str__(self) -> str:
        # KeyError.__str__ would quote the whole message.
        return str(self.args[0])


class UnknownOrderError(CircuitBreakerError, KeyError):
    """Raised when a fill or cancel names a client order id that is not pending."""

    def __init__(self, client_order_id: str) -> None:
        self.client_order_id = client_order_id
        super().__init__(f"no pending order with client_order_id {client_order_id!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class CircuitOpenException(CircuitBreakerError):
    """Raised instead of calling the protected function while the breaker rejects calls.

    ``CircuitOpenException(name, circuit_type, state, retry_after[, detail])``. ``retry_after`` is
    the number of seconds until the breaker admits a trial call, ``0.0`` when it is half-open with
    every trial permit taken, and ``None`` when it was forced open and stays open until someone
    closes it. ``detail``, if given, replaces the explanation in the message.

    The fields live in ``args`` and the message is built when asked for: a rejection is on the hot
    path of a program hammering an open breaker, and a Python ``__init__`` would double its cost.
    """

    @property
    def name(self) -> str:
        return str(self.args[0])

    @property
    def circuit_type(self) -> CircuitType:
        return self.args[1]  # type: ignore[no-any-return]

    @property
    def state(self) -> CircuitState:
        return self.args[2]  # type: ignore[no-any-return]

    @property
    def retry_after(self) -> Optional[float]:
        return self.args[3]  # type: ignore[no-any-return]

    def __str__(self) -> str:
        name, _, state, retry_after, *detail = self.args
        if detail:
            explanation = str(detail[0])
        elif retry_after is None:
            explanation = "forced open until closed by hand"
        elif retry_after > 0:
            explanation = f"next trial call in {retry_after:.3f}s"
        else:
            explanation = "all half-open trial permits are taken"
        return f"circuit breaker {name!r} is {state.value}: {explanation}"


class RateLimitExceeded(CircuitBreakerError):
    """Raised when a rate limiter refuses a permit; ``retry_after`` is the wait for the next one."""

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        super().__init__(f"rate limit {name!r} exceeded; next permit in {retry_after:.3f}s")


class TradingHalted(CircuitBreakerError):
    """Raised by ``trade_guard`` when trading is blocked; ``reasons`` says why, one line a breaker."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("trading halted: " + "; ".join(self.reasons))


class OrderRejected(TradingHalted):
    """Raised by ``trade_guard(order)`` when a pre-trade check refuses the order.

    ``decision`` is the :class:`~circuit_breakers.types.OrderDecision` (``reason``,
    ``message``); ``reasons`` holds its message, as for TradingHalted.
    """

    def __init__(self, decision: OrderDecision) -> None:
        self.decision = decision
        reason = decision.reason.value if decision.reason is not None else "rejected"
        self.reasons = (f"{reason}: {decision.message}",)
        CircuitBreakerError.__init__(self, f"order rejected: {self.reasons[0]}")


class KillSwitchError(CircuitBreakerError):
    """Raised when the kill switch cannot be reset as asked (no key configured, locked out)."""


class StateStoreError(CircuitBreakerError):
    """Raised when durable state cannot be read or written; the cause is chained."""


class CorruptStateError(StateStoreError):
    """Raised when a store answers, but what it holds cannot be read (garbage, a truncated file).

    Unlike a store that cannot be reached, this does not heal by itself: the trading breakers
    engage the kill switch, and a keyed reset starts the store afresh.
    """

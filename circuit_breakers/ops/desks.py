"""What is exported, and under which desk names: a manager and named TradingCircuitBreakers.

Several desks in one export must be told apart, so their ``trading_*`` series (and the series of
their own breakers: ``daily_loss``, ``max_drawdown``, ``volatility``, ``connection``) carry a
``desk`` label. The label appears when desks are named; one unnamed desk is called ``default`` and
its series carry no ``desk`` label, so a single-desk process exports the plain names.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Dict, List, NamedTuple, Optional, Union

from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.ops.metrics import MetricFamily, breaker_families, merge, trading_families
from circuit_breakers.registry import CircuitBreakerManager
from circuit_breakers.trading.breakers import TradingCircuitBreakers

DEFAULT_DESK = "default"


class Desk(NamedTuple):
    """A TradingCircuitBreakers and its name; ``labelled`` says whether its series carry ``desk``."""

    name: str
    trading: TradingCircuitBreakers
    labelled: bool

    @property
    def labels(self) -> Dict[str, str]:
        """``{"desk": name}`` when labelled, else nothing."""
        return {"desk": self.name} if self.labelled else {}


def check_manager(manager: object) -> Optional[CircuitBreakerManager]:
    """``manager`` if it is a CircuitBreakerManager or None; raises ConfigTypeError otherwise."""
    if manager is not None and not isinstance(manager, CircuitBreakerManager):
        raise ConfigTypeError(f"manager must be a CircuitBreakerManager, got {manager!r}")
    return manager


def name_desks(
    trading: Union[TradingCircuitBreakers, Iterable[TradingCircuitBreakers], None],
    desks: Union[str, Sequence[str], None] = None,
) -> List[Desk]:
    """Pair each TradingCircuitBreakers with its desk name (``desks``, in the same order).

    ``trading`` is one TradingCircuitBreakers, several, or None. Without ``desks`` a single desk is
    ``"default"`` (unlabelled); several need names. Raises ConfigError (a count that does not match,
    an empty or repeated name, the same object twice) or ConfigTypeError, before anything is built.
    """
    if trading is None:
        items: List[TradingCircuitBreakers] = []
    elif isinstance(trading, TradingCircuitBreakers):
        items = [trading]
    elif isinstance(trading, Iterable):
        items = list(trading)
    else:
        raise ConfigTypeError(f"trading must be TradingCircuitBreakers or several, got {trading!r}")
    for item in items:
        if not isinstance(item, TradingCircuitBreakers):
            raise ConfigTypeError(f"trading must hold TradingCircuitBreakers, got {item!r}")
    if len({id(item) for item in items}) != len(items):
        raise ConfigError(f"trading names the same TradingCircuitBreakers twice: {items!r}")
    if desks is None:
        if len(items) > 1:
            raise ConfigError(f"desks must name each of the {len(items)} trading desks, got None")
        return [Desk(DEFAULT_DESK, item, False) for item in items]
    names = [desks] if isinstance(desks, str) else list(desks)
    for name in names:
        if not isinstance(name, str):
            raise ConfigTypeError(f"desks must be str names, got {name!r}")
        if not name.strip():
            raise ConfigError(f"a desk name must not be empty, got {name!r}")
    if len(names) != len(items):
        raise ConfigError(f"desks must name each of the {len(items)} trading desks, got {names!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"desk names must differ, got {names!r}")
    return [Desk(name, item, True) for name, item in zip(names, items)]


def families(manager: Optional[CircuitBreakerManager], desks: Sequence[Desk]) -> List[MetricFamily]:
    """Every family for ``manager``'s breakers and each desk (its trading status and its breakers).

    Reads one status snapshot per object; blocks only as long as those reads do.
    """
    groups: List[List[MetricFamily]] = []
    if manager is not None:
        groups.append(breaker_families(breaker.get_status() for breaker in manager))
    for desk in desks:
        groups.append(trading_families(desk.trading.get_status(), desk.labels))
        groups.append(breaker_families((breaker.get_status() for breaker in desk.trading.manager), desk.labels))
    return merge(groups)

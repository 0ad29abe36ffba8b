"""Open-timeout policies: how long the k-th consecutive trip stays open.

Each policy is a pure function of the trip number (1 for the first trip after a recovery); none
reads a clock, so they are tested by calling them.
"""

from __future__ import annotations

import abc

from circuit_breakers.config import CircuitBreakerConfig


class Backoff(abc.ABC):
    """Seconds a breaker stays open on its ``trip``-th consecutive trip (``trip`` >= 1)."""

    @abc.abstractmethod
    def __call__(self, trip: int) -> float: ...


class FixedBackoff(Backoff):
    """Every trip stays open ``seconds``."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)

    def __call__(self, trip: int) -> float:
        return self.seconds

    def __repr__(self) -> str:
        return f"FixedBackoff({self.seconds!r})"


class ExponentialBackoff(Backoff):
    """Trip k stays open ``min(initial * multiplier ** (k - 1), maximum)``."""

    def __init__(self, initial: float, multiplier: float, maximum: float) -> None:
        self.initial = float(initial)
        self.multiplier = float(multiplier)
        self.maximum = float(maximum)

    def __call__(self, trip: int) -> float:
        try:
            return min(self.initial * self.multiplier ** (trip - 1), self.maximum)
        except OverflowError:  # thousands of consecutive trips: the cap applies
            return self.maximum

    def __repr__(self) -> str:
        return f"ExponentialBackoff({self.initial!r}, {self.multiplier!r}, {self.maximum!r})"


def backoff_from_config(config: CircuitBreakerConfig) -> Backoff:
    """The policy a config describes."""
    if config.exponential_backoff:
        return ExponentialBackoff(config.open_timeout_seconds, config.backoff_multiplier, config.backoff_cap)
    return FixedBackoff(config.open_timeout_seconds)

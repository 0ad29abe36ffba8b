"""Decorators: thin wrappers that build or look up the object and wrap the function with it."""

from __future__ import annotations

import functools
from typing import Any, Callable, List, Optional, TypeVar, Union

from typing_extensions import ParamSpec

from circuit_breakers.breaker import CircuitBreaker
from circuit_breakers.breaker_base import ensure_sync
from circuit_breakers.clock import Clock
from circuit_breakers.config import CircuitBreakerConfig, check_bool, check_int, check_number
from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.ratelimit import Limit, RateLimiter
from circuit_breakers.registry import CircuitBreakerManager, default_manager
from circuit_breakers.types import CircuitType
from circuit_breakers.wrapped import Protected, RateLimited

P = ParamSpec("P")
R = TypeVar("R")


def circuit_breaker(
    name_or_breaker: Union[str, CircuitBreaker],
    circuit_type: Optional[CircuitType] = None,
    config: Optional[CircuitBreakerConfig] = None,
    *,
    manager: Optional[CircuitBreakerManager] = None,
    **config_overrides: Any,
) -> Callable[[Callable[P, R]], Protected[P, R]]:
    """Protect a function with the breaker called ``name`` (or with a given breaker).

    The breaker comes from ``manager`` (default: the process-wide one), created on first use, so
    every function decorated with one name shares one breaker. ``config_overrides`` are
    CircuitBreakerConfig fields applied on top of ``config``. The wrapper keeps the signature and
    exposes the breaker as ``wrapped.breaker``.

    >>> @circuit_breaker("doc_broker", failure_threshold=3, manager=CircuitBreakerManager())
    ... def get_quote(symbol: str) -> float:
    ...     return 101.5
    >>> get_quote("SPY"), get_quote.breaker.config.failure_threshold
    (101.5, 3)

    Raises ConfigTypeError for a missing name (``@circuit_breaker`` used without parentheses) or
    unknown config fields, and DuplicateBreakerError when the name exists with another type or config.
    """
    if isinstance(name_or_breaker, CircuitBreaker):
        if circuit_type is not None or config is not None or manager is not None or config_overrides:
            raise ConfigTypeError("circuit_breaker(breaker) takes no other arguments: configure the breaker itself")
        return name_or_breaker.__call__
    if not isinstance(name_or_breaker, str):
        raise ConfigTypeError(
            f"circuit_breaker() needs a breaker name or a CircuitBreaker, got {name_or_breaker!r} "
            "(write @circuit_breaker('name'), with parentheses)"
        )
    if config_overrides:
        config = (config or CircuitBreakerConfig()).replace(**config_overrides)
    breaker = (default_manager if manager is None else manager).get_or_create(name_or_breaker, circuit_type, config)
    return breaker.__call__


def rate_limited(
    max_per_minute: Optional[int] = None,
    max_per_hour: Optional[int] = None,
    *,
    block: bool = False,
    timeout: Optional[float] = None,
    limiter: Optional[RateLimiter] = None,
    name: Optional[str] = None,
    clock: Optional[Clock] = None,
) -> Callable[[Callable[P, R]], RateLimited[P, R]]:
    """Allow at most ``max_per_minute`` calls in any 60 s and ``max_per_hour`` in any 3600 s.

    Either limit may be omitted, not both. A refused call raises RateLimitExceeded (``retry_after``
    says when a permit frees) without calling the function and never blocks; with ``block=True`` it
    waits for a permit instead, for up to ``timeout`` seconds of the limiter's clock (None: forever),
    then raises RateLimitExceeded. The call itself runs with no lock held.

    Each decorated function gets its own RateLimiter, named ``name`` (default: the function's
    qualified name) and reading ``clock``; a method's limiter is shared by every instance. To share
    one limiter between functions, pass ``limiter`` and none of ``max_per_*``, ``name``, ``clock``.
    The wrapper keeps the signature and exposes the limiter as ``wrapped.limiter``.

    >>> @rate_limited(max_per_minute=2)
    ... def get_quote(symbol: str) -> float:
    ...     return 101.5
    >>> get_quote("SPY"), get_quote("QQQ"), get_quote.limiter.try_acquire()
    (101.5, 101.5, False)

    Raises ConfigError for no limit at all or ``max_per_hour < max_per_minute``; ConfigTypeError
    for ``@rate_limited`` without parentheses, ``limiter`` given with other settings, ``timeout``
    without ``block=True``, and async or generator functions; ConfigError or ConfigTypeError for a
    bad value or type of any argument (``name`` and ``clock`` are checked when the function is wrapped).
    """
    if callable(max_per_minute):
        raise ConfigTypeError(
            f"rate_limited() needs its limits, got {max_per_minute!r}: write @rate_limited(max_per_minute=...)"
        )
    check_bool("block", block)
    if timeout is not None:
        if not block:
            raise ConfigTypeError("rate_limited(timeout=...) needs block=True: a non-blocking call never waits")
        check_number("timeout", timeout, minimum=0.0, inclusive=True)
    wait: Optional[float] = timeout if block else 0.0
    limits: List[Limit] = []
    if limiter is not None:
        if not isinstance(limiter, RateLimiter):
            raise ConfigTypeError(f"limiter must be a RateLimiter, got {limiter!r}")
        if max_per_minute is not None or max_per_hour is not None or name is not None or clock is not None:
            raise ConfigTypeError(
                "rate_limited(limiter=...) takes no max_per_minute, max_per_hour, name or clock: configure the limiter"
            )
    else:
        if max_per_minute is not None:
            limits.append(Limit(check_int("max_per_minute", max_per_minute, 1), 60.0))
        if max_per_hour is not None:
            limits.append(Limit(check_int("max_per_hour", max_per_hour, 1), 3600.0))
        if not limits:
            raise ConfigError("rate_limited() needs max_per_minute, max_per_hour or limiter; got none")
        if max_per_minute is not None and max_per_hour is not None and max_per_hour < max_per_minute:
            raise ConfigError(f"max_per_hour must be >= max_per_minute ({max_per_minute!r}), got {max_per_hour!r}")

    def decorate(func: Callable[P, R]) -> RateLimited[P, R]:
        ensure_sync(func)
        if limiter is None:
            own_name = getattr(func, "__qualname__", repr(func)) if name is None else name
            used = RateLimiter(*limits, name=own_name, clock=clock)
        else:
            used = limiter
        acquire = used.acquire

        @functools.wraps(func)
        def limited(*args: P.args, **kwargs: P.kwargs) -> R:
            acquire(wait)
            return func(*args, **kwargs)

        limited.limiter = used  # type: ignore[attr-defined]
        return limited  # type: ignore[return-value]

    return decorate

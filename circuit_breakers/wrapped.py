"""The type of a function wrapped by the library's decorators: same signature, plus what guards it."""

from __future__ import annotations

from typing import Any, TypeVar, overload

from typing_extensions import Concatenate, ParamSpec, Protocol

P = ParamSpec("P")
P2 = ParamSpec("P2")
S = TypeVar("S")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Wrapped(Protocol[P, R_co]):
    """A function wrapped by ``@circuit_breaker``, ``@breaker`` or ``@rate_limited``.

    It keeps the wrapped function's signature, binds as a method as the runtime does (the
    ``__get__`` overloads), and carries the object behind each decorator in the stack:
    ``.breaker`` (a ``CircuitBreaker`` or ``RedisCircuitBreaker``) and ``.limiter`` (a
    ``RateLimiter``), whichever decorator is outermost. Those attributes are typed ``Any``: a
    stack of decorators has both, and a type checker cannot tell which a given stack holds.
    """

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    @overload
    def __get__(self, instance: None, owner: type) -> Wrapped[P, R_co]: ...

    @overload
    def __get__(self: Wrapped[Concatenate[S, P2], R], instance: S, owner: type) -> Wrapped[P2, R]: ...

    def __getattr__(self, name: str) -> Any: ...


Protected = Wrapped
"""What ``@circuit_breaker`` and ``@breaker`` return (the same type as :class:`Wrapped`)."""

RateLimited = Wrapped
"""What ``@rate_limited`` returns (the same type as :class:`Wrapped`)."""

"""CircuitBreaker's lock-free hot paths, inlined in one place: ``breaker.call(f)`` and the decorator.

They are :meth:`~circuit_breakers.breaker.CircuitBreaker._admit`'s rows A1 (admitted while CLOSED)
and A2 (refused while OPEN before its timeout) and :meth:`~circuit_breakers.breaker.CircuitBreaker._succeeded`'s
row S1 (a success counted into the live bucket), copied inline because a function call would cost
them a fifth of their time. They take no lock and rest on the GIL (see "Threads and the GIL" in
:mod:`circuit_breakers.breaker`). Everything else goes to the general path, which takes the lock.
"""

from __future__ import annotations

import functools
from time import monotonic as _monotonic  # a module global, so that freezegun patches it
from typing import TYPE_CHECKING, Callable, TypeVar

from typing_extensions import ParamSpec

from circuit_breakers.breaker_base import NOT_RUN, UNRUN, Breaker, ensure_sync, refuse_unrun
from circuit_breakers.errors import CircuitOpenException
from circuit_breakers.types import CircuitState
from circuit_breakers.wrapped import Protected

if TYPE_CHECKING:
    from circuit_breakers.breaker import CircuitBreaker

P = ParamSpec("P")
R = TypeVar("R")

_CLOSED = CircuitState.CLOSED
_OPEN = CircuitState.OPEN


def call(self: CircuitBreaker, func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Call ``func(*args, **kwargs)`` through the breaker and return its result (see Breaker.call).

    A rejection while OPEN before its timeout (A2) and a call admitted while CLOSED (A1) take no
    lock; every other case (a half-open trial, a timeout that just ran out) takes the general path.
    """
    ticket = self._period
    if ticket.state is _OPEN:  # A2
        left = None
        if not ticket.forced:
            mono = self._fast_mono
            left = ticket.started + ticket.open_for - (_monotonic() if mono is None else mono())
        if left is None or left > 0:
            self._rejections.add()
            raise CircuitOpenException(self.name, self.circuit_type, _OPEN, left)
    if ticket.state is not _CLOSED or not callable(func):
        return Breaker.call(self, func, *args, **kwargs)
    try:  # A1
        result = func(*args, **kwargs)
    except BaseException as exc:
        self._raised(ticket, exc)
        raise
    if isinstance(result, UNRUN):  # an async function: its body has not run
        self._raised(ticket, NOT_RUN)
        raise refuse_unrun(func, result)
    self._succeeded(ticket)  # S1 lock-free, inside
    return result


def protect(breaker: CircuitBreaker, func: Callable[P, R], *, lock_free: bool = True) -> Protected[P, R]:
    """``breaker``'s decorator wrapper around ``func``; raises ConfigTypeError for an async or non-callable ``func``.

    ``lock_free=True``: A1, A2 and S1 inlined without a lock (the library's hottest path).
    ``lock_free=False``: the same rules with every decision under the lock
    (:meth:`~circuit_breakers.breaker.CircuitBreaker._admit_locked`, ``_succeeded_locked``): slower,
    and what a Python without the GIL would need.
    """
    ensure_sync(func)
    name, circuit_type, window = breaker.name, breaker.circuit_type, breaker._window
    raised, succeeded = breaker._raised, breaker._succeeded
    mono = breaker._fast_mono  # None: read _monotonic, 20 ns sooner
    coroutine, async_generator = UNRUN

    @functools.wraps(func)
    def protected(*args: P.args, **kwargs: P.kwargs) -> R:
        ticket = breaker._period
        if ticket.state is not _CLOSED:
            if ticket.state is _OPEN:  # A2
                left = None
                if not ticket.forced:
                    left = ticket.started + ticket.open_for - (_monotonic() if mono is None else mono())
                if left is None or left > 0:
                    breaker._rejections.add()
                    raise CircuitOpenException(name, circuit_type, _OPEN, left)
            return Breaker.call(breaker, func, *args, **kwargs)  # a half-open trial: the general path
        try:  # A1
            result = func(*args, **kwargs)
        except BaseException as exc:
            raised(ticket, exc)
            raise
        if ticket is breaker._period:  # S1 into the live bucket, if still the CLOSED period that admitted it
            now = _monotonic() if mono is None else mono()
            start, end, add = window.live
            if start <= now < end:
                kind = type(result)  # two identity tests: the cheapest way to rule out an unrun coroutine
                if kind is not coroutine and kind is not async_generator:
                    add()
                    breaker._successes.add()
                    return result
        if isinstance(result, UNRUN):  # a function that returned a coroutine: its body has not run
            raised(ticket, NOT_RUN)
            raise refuse_unrun(func, result)
        succeeded(ticket)
        return result

    @functools.wraps(func)
    def locked(*args: P.args, **kwargs: P.kwargs) -> R:
        ticket = breaker._admit_locked()
        if ticket is None:
            raise breaker._rejection()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            raised(ticket, exc)
            raise
        if isinstance(result, UNRUN):
            raised(ticket, NOT_RUN)
            raise refuse_unrun(func, result)
        breaker._successes.add()
        breaker._succeeded_locked(ticket)
        return result

    wrapper = protected if lock_free else locked
    wrapper.breaker = breaker  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]

"""Callback registries and safe dispatch.

Callbacks always run *outside* the owner's lock (so they may call back into it), synchronously on
the thread whose action caused the event. Each runs in its own ``try``: one that raises is logged
with its traceback and never reaches the caller, the owner or the other callbacks. A callback that
raises a ``BaseException`` that is not an ``Exception`` (``SystemExit``, ``KeyboardInterrupt``)
cannot skip the others either: :func:`fire` runs every event first, then re-raises the first such
exception on the thread that fired them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, Callable, Dict, Generic, List, Optional, Tuple

from typing_extensions import ParamSpec

from circuit_breakers.config import check_callable

logger = logging.getLogger(__name__)

P = ParamSpec("P")


class Callbacks(Generic[P]):
    """A thread-safe list of callbacks sharing one signature. Registration order is call order."""

    __slots__ = ("_event", "_lock", "_items")

    def __init__(self, event: str) -> None:
        self._event = event
        self._lock = threading.Lock()  # guards writes to _items; readers take the tuple as it is
        self._items: Tuple[Callable[P, object], ...] = ()

    def add(self, callback: Callable[P, object]) -> None:
        """Register ``callback``; raises ConfigTypeError if it is not callable."""
        check_callable(f"{self._event} callback", callback)
        with self._lock:
            self._items = (*self._items, callback)

    def dispatch(self, *args: P.args, **kwargs: P.kwargs) -> List[Tuple[Callable[P, object], BaseException]]:
        """Call every callback; return the (callback, exception) pairs of those that raised.

        After every callback ran, re-raises the first that raised a ``BaseException`` that is not
        an ``Exception``.
        """
        errors = self._run(*args, **kwargs)
        for _, exc in errors:
            if not isinstance(exc, Exception):
                raise exc
        return errors

    def _run(self, *args: Any, **kwargs: Any) -> List[Tuple[Callable[P, object], BaseException]]:
        errors: List[Tuple[Callable[P, object], BaseException]] = []
        for callback in self._items:
            try:
                callback(*args, **kwargs)
            except BaseException as exc:  # SystemExit too: every other callback still runs
                logger.exception("%s callback %r raised; ignored", self._event, callback)
                errors.append((callback, exc))
        return errors


class KillHandlers(Callbacks[[str]]):
    """The kill-switch handlers; remembers how each fared the last time the switch engaged."""

    def __init__(self) -> None:
        super().__init__("kill handler")
        self._outcomes: List[Dict[str, Any]] = []

    def _run(self, *args: Any, **kwargs: Any) -> List[Tuple[Callable[[str], object], BaseException]]:
        errors = super()._run(*args, **kwargs)
        failed = {id(callback): exc for callback, exc in errors}
        self._outcomes = [
            {
                "handler": getattr(callback, "__qualname__", repr(callback)),
                "ok": id(callback) not in failed,
                "error": repr(failed[id(callback)]) if id(callback) in failed else None,
            }
            for callback in self._items
        ]
        return errors

    def outcomes(self) -> List[Dict[str, Any]]:
        """One entry per handler of the last engagement: handler name, ok, error."""
        return list(self._outcomes)


Pending = List[Tuple["Callbacks[Any]", Tuple[Any, ...]]]
"""Events collected under a lock, to be fired with :func:`fire` once it is released."""


def fire(pending: Iterable[Tuple[Callbacks[Any], Tuple[Any, ...]]]) -> None:
    """Dispatch collected events in order. Call with no lock held.

    Re-raises, after every event was dispatched, the first ``BaseException`` that is not an
    ``Exception`` raised by a callback (a ``SystemExit`` or ``KeyboardInterrupt`` is not swallowed).
    """
    escaped: Optional[BaseException] = None
    for callbacks, args in pending:
        try:
            callbacks.dispatch(*args)
        except BaseException as exc:  # dispatch re-raises only what is not an Exception
            escaped = escaped or exc
    if escaped is not None:
        raise escaped

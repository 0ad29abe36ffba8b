"""The background thread that polls the provider: an Event-driven loop that nothing but stop() ends.

Each poll calls ``owner._poll()``. Whatever a poll raises, even a ``BaseException`` such as a
``SystemExit`` out of a user's callback, is logged and reported to the owner (which blocks trading
until a later poll succeeds), and the loop goes on. Should the thread end anyway, the owner is told
and starts a new one. The thread holds only a weak reference to its owner, so a forgotten owner can
be collected; the thread then exits.
"""

from __future__ import annotations

import decimal
import logging
import threading
import weakref
from typing import Callable, Optional, Protocol

from circuit_breakers.trading.rules import CONTEXT

logger = logging.getLogger(__name__)


class _Owner(Protocol):
    def _poll(self) -> object: ...

    def _poll_failed(self, error: BaseException) -> None: ...

    def _monitor_exited(self, error: Optional[BaseException]) -> None: ...


def _run(owner_ref: Callable[[], Optional[_Owner]], stop: threading.Event, interval: float, first: float) -> None:
    error: Optional[BaseException] = None
    decimal.setcontext(CONTEXT.copy())  # whatever decimal.DefaultContext an application has changed
    try:
        wait = first
        while not stop.wait(wait):
            wait = interval
            owner = owner_ref()
            if owner is None:
                return
            try:
                owner._poll()
            except BaseException as exc:  # the monitor outlives anything a poll raises
                if stop.is_set():
                    return
                logger.critical("trading monitor poll raised %r; trading is blocked until a poll succeeds", exc)
                try:
                    owner._poll_failed(exc)
                except BaseException:
                    logger.exception("could not report a failed poll")
            del owner
    except BaseException as exc:  # logged below, and a new thread takes over: nothing to re-raise
        error = exc
    finally:
        owner = owner_ref()
        if owner is not None and not stop.is_set():
            logger.critical("trading monitor thread ended: %r; trading is blocked and a new one starts", error)
            owner._monitor_exited(error)


class Monitor:
    """Calls ``owner._poll()`` every ``interval`` seconds on one daemon thread until stopped."""

    def __init__(self, owner: _Owner, interval: float, name: str) -> None:
        self._owner_ref = weakref.ref(owner)
        self._interval = interval
        self._name = name
        self._lock = threading.Lock()  # guards _thread and _stop
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()

    def start(self, *, first_poll_in: Optional[float] = None) -> bool:
        """Start the thread (first poll after ``first_poll_in`` seconds, default one interval);
        False (and nothing done) if it is already running."""
        with self._lock:
            current = self._thread
            if current is not None and current.is_alive() and current is not threading.current_thread():
                return False
            self._stop = threading.Event()
            first = self._interval if first_poll_in is None else first_poll_in
            self._thread = threading.Thread(
                target=_run, args=(self._owner_ref, self._stop, self._interval, first), name=self._name, daemon=True
            )
            self._thread.start()
            return True

    def stop(self, timeout: float = 2.0) -> bool:
        """Ask the thread to stop and wait up to ``timeout`` seconds; True if it has ended.

        A thread stuck in a hanging provider call cannot be interrupted: it is left to finish on
        its own (it is a daemon and exits after that call) and False is returned.
        """
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def forget_after_fork(self) -> None:
        """In a forked child: the parent's thread does not exist here."""
        self._thread = None

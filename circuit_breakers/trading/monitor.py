"""The background thread that polls the provider: an Event-driven loop with a shutdown flag."""

from __future__ import annotations

import logging
import threading
import weakref
from typing import Callable, Optional, Protocol

logger = logging.getLogger(__name__)


class _Owner(Protocol):
    def check_now(self) -> object: ...

    def _monitor_exited(self, error: Optional[BaseException]) -> None: ...


def _run(owner_ref: Callable[[], Optional[_Owner]], stop: threading.Event, interval: float) -> None:
    # The thread holds only a weak reference, so a forgotten facade can be collected; it then exits.
    error: Optional[BaseException] = None
    try:
        while not stop.wait(interval):
            owner = owner_ref()
            if owner is None:
                return
            try:
                owner.check_now()
            except Exception:  # check_now handles provider errors itself; this is a bug, keep polling
                logger.exception("monitor check failed; will retry in %ss", interval)
            del owner
    except BaseException as exc:
        error = exc
        raise
    finally:
        owner = owner_ref()
        if owner is not None and not stop.is_set():
            logger.critical("trading monitor thread died: %r; trading is blocked", error)
            owner._monitor_exited(error)


class Monitor:
    """Calls ``owner.check_now()`` every ``interval`` seconds on one daemon thread until stopped.

    If the thread ends for any reason other than :meth:`stop`, it tells the owner, which blocks
    trading (fail closed).
    """

    def __init__(self, owner: _Owner, interval: float, name: str) -> None:
        self._owner_ref = weakref.ref(owner)
        self._interval = interval
        self._name = name
        self._lock = threading.Lock()  # guards _thread and _stop
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()

    def start(self) -> bool:
        """Start the thread; False (and nothing done) if it is already running."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=_run, args=(self._owner_ref, self._stop, self._interval), name=self._name, daemon=True
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

"""How a desk lives: bound to its store, polled by its monitor, carried across a fork, and closed.

:class:`Lifecycle` adopts what the store holds and binds the reset key on the first good read, keeps
a listener on the store so that other processes' changes arrive at once, runs each poll of the
monitor thread (check, lift the monitor and listener faults, publish this process's heartbeat),
restarts what a forked child lost, and releases the threads and the store when the desk is closed
or collected. The monitor thread and the store's listener hold the desk only weakly.
"""

from __future__ import annotations

import logging
import os
import weakref
from typing import Callable, Optional

from circuit_breakers.errors import ConfigError, StateStoreError
from circuit_breakers.events import Pending, fire
from circuit_breakers.stores.base import Store, Subscription
from circuit_breakers.trading.config import TradingBreakerConfig
from circuit_breakers.trading.evaluation import Evaluation
from circuit_breakers.trading.killswitch import ResetGuard
from circuit_breakers.trading.monitor import Monitor
from circuit_breakers.trading.safety import SafetyCore
from circuit_breakers.trading.status import TradingStatus, heartbeat, process_id

logger = logging.getLogger(__name__)


class Lifecycle:
    """The store link, the monitor's polls, forks and the end of one desk; thread-safe."""

    def __init__(
        self,
        *,
        core: SafetyCore,
        evaluation: Evaluation,
        reset_guard: ResetGuard,
        monitor: Monitor,
        config: TradingBreakerConfig,
        secret: Optional[bytes],
    ) -> None:
        self._core = core
        self._evaluation = evaluation
        self._reset_guard = reset_guard
        self._monitor = monitor
        self._config = config
        self._secret = secret  # kept only until the store has been asked for its key
        self.subscription: Optional[Subscription] = None
        self._process_id = process_id()
        self._closed = self.constructed = self._key_bound = False
        self._owner: Callable[[], object] = lambda: None  # the desk, weakly, once started
        self._finalizer: Optional[weakref.finalize[[Optional[Subscription], Store, Monitor], object]] = None

    # --- the store --------------------------------------------------------------------------------

    def sync(self) -> None:
        """Adopt what the store holds and send what waits; binds the reset key on the first good read.

        Blocks on the store. Raises ConfigError only at construction, for a reset key that does not
        match the stored one; later, a mismatch blocks trading instead.
        """
        pending: Pending = []
        self._core.sync(pending)
        if not self._key_bound:
            with self._core.lock:
                try:
                    self._key_bound = self._core.attach_key(self._secret, pending)
                except ConfigError as exc:
                    if not self.constructed:
                        raise
                    logger.error("%s; trading is blocked", exc)
                    self._core.set_fault("reset_key", str(exc), pending)  # for good: this process has the wrong key
                    self._key_bound = True
                if self._key_bound:
                    self._secret = None
                self._reset_guard.bind(self._core.key)
        fire(pending)

    def start(self, owner: object) -> None:
        """Once ``owner`` (the desk) is constructed: listen to the store, and release the threads and the
        store when ``owner`` is collected."""
        self.constructed = True
        self._owner = weakref.ref(owner)
        self._subscribe()
        self._finalizer = weakref.finalize(owner, _release, self.subscription, self._core.store, self._monitor)

    def _subscribe(self) -> None:
        owner, me = self._owner, weakref.ref(self)

        def changed() -> bool:  # the listener's callback: False once the desk is gone (the listener then ends)
            lifecycle = me()
            if owner() is None or lifecycle is None:
                return False
            lifecycle.sync()
            return True

        self.subscription = self._core.store.subscribe(changed)

    def close(self) -> None:
        """Stop the monitor and the listener, withdraw the heartbeat, close the store. Idempotent."""
        if not self._closed:
            self._closed = True
            self.stop_monitoring(2.0)
            self._beat(None)
            if self.subscription is not None:
                self.subscription.close()  # here, unlike in the finalizer, waiting is safe
        if self._finalizer is not None:
            self._finalizer()

    def after_fork_in_child(self) -> None:
        """In a forked child whose locks are renewed: reopen the store, restart the listener and the monitor.

        Until its own monitor has polled, the child cannot trade (fault ``monitor``).
        """
        self._process_id = process_id()
        self._core.after_fork_in_child()
        self._monitor.forget_after_fork()
        owner = self._owner()
        if self._closed or owner is None:
            return
        self._subscribe()
        if self._finalizer is not None:
            self._finalizer.detach()
        self._finalizer = weakref.finalize(owner, _release, self.subscription, self._core.store, self._monitor)
        if self._evaluation.monitoring:
            pending: Pending = []
            with self._core.lock:
                self._core.set_fault("monitor", f"restarting in forked child (pid {os.getpid()})", pending)
            self._monitor.start(first_poll_in=0.0)

    # --- monitoring -------------------------------------------------------------------------------

    def start_monitoring(self, check_now: Callable[[], object]) -> None:
        """Take a first reading now with ``check_now``, then start the monitor; nothing if it runs."""
        if self._monitor.alive:
            return
        self._set_monitoring(True)
        check_now()
        self._monitor.start()

    def stop_monitoring(self, timeout: float) -> bool:
        """Stop the monitor thread; True if it ended within ``timeout`` seconds."""
        self._set_monitoring(False)
        return self._monitor.stop(timeout)

    def _set_monitoring(self, monitoring: bool) -> None:
        pending: Pending = []
        with self._evaluation.lock:
            self._evaluation.monitoring = monitoring
            with self._core.lock:
                self._core.clear_fault("monitor", pending)
        fire(pending)

    def poll(self, check_now: Callable[[], TradingStatus]) -> None:
        """One poll of the monitor thread: watch the listener, check, lift a monitor fault, and publish
        this process's heartbeat for the ops tools."""
        subscription = self.subscription
        pending: Pending = []
        if subscription is not None and not subscription.alive and not self._closed:
            with self._core.lock:
                why = f"the listener of {self._core.store.describe()} stopped; restarting it"
                self._core.set_fault("listener", why, pending)
            self._subscribe()
        status = check_now()
        with self._core.lock:
            if self.subscription is None or self.subscription.alive:
                self._core.clear_fault("listener", pending)
            self._core.clear_fault("monitor", pending)
        fire(pending)
        self._beat(status)

    def _beat(self, status: Optional[TradingStatus]) -> None:
        """Publish (None: withdraw) this process's heartbeat in the store's ``procs`` table. Status only:
        a heartbeat that cannot be written is logged, and blocks nothing."""
        try:
            self._core.store.put("procs", self._process_id, None if status is None else heartbeat(self._config, status))
        except StateStoreError as exc:
            logger.debug("heartbeat not written: %s", exc)

    def poll_failed(self, error: BaseException) -> None:
        """A poll raised: trading is blocked until a later poll succeeds."""
        pending: Pending = []
        with self._core.lock:
            self._core.set_fault("monitor", f"monitor poll raised {error!r}", pending)
        fire(pending)

    def monitor_exited(self, error: Optional[BaseException]) -> None:
        """The monitor thread ended: while monitoring, block trading and start a new one."""
        pending: Pending = []
        with self._evaluation.lock:
            monitoring = self._evaluation.monitoring
            if monitoring:
                with self._core.lock:
                    self._core.set_fault("monitor", f"monitor thread died: {error!r}; restarting it", pending)
        fire(pending)
        if monitoring:
            self._monitor.start(first_poll_in=0.0)


def _release(subscription: Optional[Subscription], store: Store, monitor: Monitor) -> None:
    """What a desk leaves behind when closed or collected: its threads and the store's connections.

    It never waits: run by the garbage collector, it may be inside redis-py holding the very lock the
    listener waits for. The listener and the monitor end on their own at their next wake-up, which
    their stop events make immediate.
    """
    monitor.stop(timeout=0.0)
    if subscription is not None:
        subscription.close(wait=False)
    store.close()

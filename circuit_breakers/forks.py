"""What a forked child must redo before it may use the library: fresh locks, no borrowed connections.

``os.fork()`` copies the parent's memory but only the forking thread: a lock that another thread
(the monitor, a listener, a worker) held at that moment stays held in the child forever, and the
child deadlocks on it. :func:`renew_locks` walks an object graph of this library and re-initialises
every lock, condition and event in it, so that the child starts with all of them free; the owners
then restart their own threads (see ``TradingCircuitBreakers``). The state those locks guarded may
have been mid-change in the parent: the owners re-read their store and block trading until their
own monitor has run in the child.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import weakref
from typing import Any, Callable, Iterable, List, Set, Tuple

logger = logging.getLogger(__name__)

_SYNC_TYPES = (type(threading.Lock()), type(threading.RLock()), threading.Condition, threading.Event)
_PACKAGE = __name__.split(".")[0]


def _ours(value: object) -> bool:
    return type(value).__module__.split(".")[0] == _PACKAGE


def _attributes(value: object) -> Iterable[Any]:
    with contextlib.suppress(TypeError):  # an object without a __dict__
        yield from vars(value).values()
    for cls in type(value).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name not in ("__dict__", "__weakref__") and hasattr(value, name):
                yield getattr(value, name)


def renew_locks(root: object) -> int:
    """Re-initialise (as free) every lock, condition and event reachable from ``root`` through objects of
    this library, their attributes and the lists, tuples, sets and dicts they hold; return how many.

    Only for a forked child, before any other thread exists in it.
    """
    seen: Set[int] = set()
    stack: List[object] = [root]
    renewed = 0
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, _SYNC_TYPES):
            value._at_fork_reinit()  # type: ignore[union-attr]
            renewed += 1
        elif isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend(value)
        elif _ours(value):
            stack.extend(_attributes(value))
    return renewed


_hooks: List[Tuple[weakref.ref[Any], Callable[[Any], None]]] = []
_hooks_lock = threading.Lock()  # guards _hooks; renewed in the child before the hooks run


def on_fork_in_child(owner: object, hook: Callable[[Any], None]) -> None:
    """Call ``hook(owner)`` in every child forked while ``owner`` lives (held weakly)."""
    with _hooks_lock:
        _hooks[:] = [(ref, fn) for ref, fn in _hooks if ref() is not None]
        _hooks.append((weakref.ref(owner), hook))


def _run_hooks() -> None:
    _hooks_lock._at_fork_reinit()  # type: ignore[attr-defined]
    for ref, hook in list(_hooks):
        owner = ref()
        if owner is None:
            continue
        try:
            hook(owner)
        except Exception:
            logger.exception("after-fork hook of %r failed", owner)


_held_across: weakref.WeakSet[Any] = weakref.WeakSet()  # objects whose ``_lock`` a fork must not split


def hold_across_fork(owner: object) -> None:
    """Take ``owner._lock`` before every fork and release it after, in parent and child alike.

    For what a forked child cannot repair by renewing a lock: a SQLite connection in use at the
    fork leaves SQLite's own per-process lock records in the child claiming locks the kernel never
    gave it (the child's writes then find the database locked for good, or hang). With the lock
    held, no thread of the library is inside SQLite when the process forks. The fork waits at most
    as long as one transaction.
    """
    _held_across.add(owner)


_holding: List[Any] = []  # the owners whose locks the forking thread holds, in the order taken


def _before_fork() -> None:
    _holding[:] = sorted(_held_across, key=id)  # one order, so two forking threads cannot deadlock
    for owner in _holding:
        owner._lock.acquire()


def _release_held() -> None:
    for owner in reversed(_holding):
        owner._lock.release()
    _holding.clear()


def _after_fork_in_child() -> None:
    _release_held()  # held by this thread, the only one the child has
    _run_hooks()


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork to survive
    os.register_at_fork(before=_before_fork, after_in_parent=_release_held, after_in_child=_after_fork_in_child)

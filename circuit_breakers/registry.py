"""CircuitBreakerManager: breakers by name, and the process-wide default behind ``@circuit_breaker``."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any, Dict, List, Optional

from circuit_breakers.breaker import CircuitBreaker
from circuit_breakers.clock import Clock
from circuit_breakers.config import CircuitBreakerConfig
from circuit_breakers.errors import DuplicateBreakerError
from circuit_breakers.types import CircuitState, CircuitType


class CircuitBreakerManager:
    """A thread-safe registry of breakers by name.

    Status and reset calls work on a snapshot of the registered breakers and take no breaker lock
    while holding the registry's, so callbacks may use the manager freely.
    """

    def __init__(self, *, clock: Optional[Clock] = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # guards _breakers
        self._breakers: Dict[str, CircuitBreaker] = {}

    def create_circuit_breaker(
        self,
        name: str,
        circuit_type: CircuitType = CircuitType.GENERIC,
        config: Optional[CircuitBreakerConfig] = None,
    ) -> CircuitBreaker:
        """Create and register a breaker; raises DuplicateBreakerError (a ValueError) if the name is taken."""
        breaker = CircuitBreaker(name, circuit_type, config, clock=self._clock)
        self.add(breaker)
        return breaker

    def add(self, breaker: CircuitBreaker) -> None:
        """Register an existing breaker; raises DuplicateBreakerError if its name is taken."""
        with self._lock:
            if breaker.name in self._breakers:
                raise DuplicateBreakerError(f"a circuit breaker named {breaker.name!r} already exists")
            self._breakers[breaker.name] = breaker

    def get_or_create(
        self,
        name: str,
        circuit_type: Optional[CircuitType] = None,
        config: Optional[CircuitBreakerConfig] = None,
    ) -> CircuitBreaker:
        """Return the breaker called ``name``, creating it if needed.

        ``None`` for ``circuit_type`` or ``config`` means "whatever it has" for an existing breaker
        (GENERIC and the defaults for a new one). Asking for an existing name with a different type
        or config raises DuplicateBreakerError rather than silently ignoring the request.
        """
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = CircuitBreaker(
                    name, CircuitType.GENERIC if circuit_type is None else circuit_type, config, clock=self._clock
                )
                self._breakers[name] = breaker
                return breaker
        if circuit_type is not None and circuit_type is not breaker.circuit_type:
            raise DuplicateBreakerError(
                f"breaker {name!r} exists with type {breaker.circuit_type.value}, asked for {circuit_type.value}"
            )
        if config is not None and config != breaker.config:
            differ = [
                f"{field.name}={getattr(config, field.name)!r} (it has {getattr(breaker.config, field.name)!r})"
                for field in dataclasses.fields(config)
                if getattr(config, field.name) != getattr(breaker.config, field.name)
            ]
            raise DuplicateBreakerError(f"breaker {name!r} exists with another config: asked for {', '.join(differ)}")
        return breaker

    def get_circuit_breaker(self, name: str) -> Optional[CircuitBreaker]:
        """The breaker called ``name``, or None."""
        with self._lock:
            return self._breakers.get(name)

    def remove(self, name: str) -> Optional[CircuitBreaker]:
        """Unregister and return the breaker called ``name`` (None if there was none)."""
        with self._lock:
            return self._breakers.pop(name, None)

    def _snapshot(self) -> List[CircuitBreaker]:
        with self._lock:
            return list(self._breakers.values())

    def __iter__(self) -> Iterator[CircuitBreaker]:
        return iter(self._snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._breakers)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._breakers

    def get_system_status(self) -> Dict[str, Any]:
        """Counts by state and every breaker's ``get_status()``, keyed by name."""
        statuses = {breaker.name: breaker.get_status() for breaker in self._snapshot()}
        states = [status["state"] for status in statuses.values()]
        return {
            "total_circuit_breakers": len(statuses),
            "open_breakers": states.count(CircuitState.OPEN.value),
            "closed_breakers": states.count(CircuitState.CLOSED.value),
            "half_open_breakers": states.count(CircuitState.HALF_OPEN.value),
            "circuit_breakers": statuses,
        }

    def any_open(self) -> bool:
        """Whether any breaker is OPEN."""
        return any(breaker.is_open for breaker in self._snapshot())

    def get_open_breakers(self) -> List[str]:
        """Names of the OPEN breakers."""
        return [breaker.name for breaker in self._snapshot() if breaker.is_open]

    def reset_all(self) -> None:
        """:meth:`~CircuitBreaker.reset` every breaker."""
        for breaker in self._snapshot():
            breaker.reset()

    def __repr__(self) -> str:
        return f"<CircuitBreakerManager {len(self)} breakers>"


default_manager = CircuitBreakerManager()
"""The process-wide registry used by ``@circuit_breaker(name)`` when no manager is given."""

"""The trading breakers: :class:`~circuit_breakers.trading.breakers.TradingCircuitBreakers` and its parts.

``breakers.py`` is the facade and ``wiring.py`` assembles the parts beneath it; see
``docs/ARCHITECTURE.md`` for which module holds which concept.
"""

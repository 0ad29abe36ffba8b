"""Everything that needs redis-py (``pip install 'circuit_breakers[redis]'``): state shared across hosts.

- :class:`RedisStore`: the store contract in Redis (kill switch, halts, values, heartbeats);
- :class:`RedisRateLimiter`: exact sliding windows shared by every process of a namespace;
- :class:`RedisCircuitBreaker`: one circuit breaker shared by every process that names it.

The Lua scripts live in ``scripts/*.lua``; each one that needs the time starts with ``clock.lua``.
"""

from circuit_breakers.redis.breaker import RedisCircuitBreaker
from circuit_breakers.redis.ratelimit import RedisRateLimiter
from circuit_breakers.redis.store import RedisStore

__all__ = ["RedisCircuitBreaker", "RedisRateLimiter", "RedisStore"]

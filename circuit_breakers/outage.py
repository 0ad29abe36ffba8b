"""What counts as an outage: ``is_outage(exc)`` tells a broken connection from a refused request.

A breaker that counts every exception halts a desk when the broker refuses three orders for lack of
buying power: ``requests.HTTPError`` is an ``OSError``, but an HTTP 400 means the broker is up and
answering. :func:`is_outage` reads the evidence an exception carries (an HTTP status, a transport
error type, a broker SDK's network error) and answers True only for evidence of an outage.

No SDK is imported here, ever: exceptions are recognised by their attributes and by the names of
the classes in their MRO (``(top-level module, class name)``), so ``import circuit_breakers`` pulls
in neither requests, httpx, ccxt, alpaca-py nor python-binance, and an SDK that is not installed
costs nothing.

:data:`REFUSALS` are the library's own refusals: a breaker never counts them as failures (see
``CircuitBreaker``), and they are never outages.
"""

from __future__ import annotations

import enum
import socket
from typing import FrozenSet, List, Optional, Tuple, Type

from circuit_breakers.errors import (
    CircuitBreakerError,
    CircuitOpenException,
    KillSwitchError,
    RateLimitExceeded,
    TradingHalted,
)

__all__ = ["REFUSALS", "SendOutcome", "http_status", "is_outage", "send_outcome"]

REFUSALS: Tuple[Type[CircuitBreakerError], ...] = (
    CircuitOpenException,
    RateLimitExceeded,
    TradingHalted,  # and OrderRejected, its subclass
    KillSwitchError,
)
"""The library's refusals: nothing reached the broker, so no breaker counts them as failures."""

_OUTAGE_STATUSES: FrozenSet[int] = frozenset({408, 429})
"""Besides every 5xx: request timeout and too many requests, the two 4xx that say "not now"."""

_STATUS_ATTRIBUTES = ("status_code", "http_status", "status", "code")
"""Where SDK errors keep the HTTP status, most specific first (``code`` is often an API error code)."""

# First-hand transport failures that are not OSErrors: the request did not get a whole answer.
_TRANSPORT_CLASSES: FrozenSet[Tuple[str, str]] = frozenset(
    {
        ("httpx", "TransportError"),  # TimeoutException, NetworkError, ProtocolError, ProxyError...
        ("httpcore", "TimeoutException"),
        ("httpcore", "NetworkError"),
        ("httpcore", "RemoteProtocolError"),
        ("urllib3", "HTTPError"),  # what requests wraps, should one leak out unwrapped
        ("http", "HTTPException"),  # http.client: IncompleteRead, BadStatusLine, RemoteDisconnected
        ("aiohttp", "ClientConnectionError"),
        ("websocket", "WebSocketConnectionClosedException"),
        ("websocket", "WebSocketTimeoutException"),
        ("websockets", "ConnectionClosedError"),
    }
)

# An SDK's own verdict that the network failed. Second-hand: an HTTP status or a transport error
# further down the chain is better evidence (ccxt raises ExchangeNotAvailable for a plain 400, 403
# or 404 it could not explain), so these decide only when the chain holds neither.
_SDK_NETWORK_CLASSES: FrozenSet[Tuple[str, str]] = frozenset(
    {
        ("ccxt", "NetworkError"),  # RequestTimeout, ExchangeNotAvailable, DDoSProtection, RateLimitExceeded...
        ("binance", "BinanceRequestException"),  # python-binance: an answer that is not JSON
        ("binance", "BinanceWebsocketUnableToConnect"),
        ("binance", "BinanceWebsocketClosed"),
    }
)

_MAX_CHAIN = 16
"""Links of ``__cause__`` / ``__context__`` looked at, at most."""


def _as_status(value: object) -> Optional[int]:
    """``value`` as an HTTP status (an int or a numeric str in 100..599), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) != 3:
            return None
        number = int(text)
    else:
        return None
    return number if 100 <= number <= 599 else None


def _attribute(obj: object, name: str) -> object:
    """``obj.name``, or None when it is missing or its property raises (SDK properties do)."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def http_status(exc: BaseException) -> Optional[int]:
    """The HTTP status ``exc`` itself carries, or None; never raises.

    Looks at ``exc.response.status_code`` / ``exc.response.status`` (requests, httpx, aiohttp), then
    ``exc.status_code``, ``exc.http_status``, ``exc.status`` and ``exc.code`` (SDK errors), taking
    the first that holds an int or numeric str in 100..599: an error code such as Binance's
    ``-2010`` or Alpaca's ``40310000`` is skipped.
    """
    response = _attribute(exc, "response")
    if response is not None:
        for name in ("status_code", "status"):
            status = _as_status(_attribute(response, name))
            if status is not None:
                return status
    for name in _STATUS_ATTRIBUTES:
        status = _as_status(_attribute(exc, name))
        if status is not None:
            return status
    return None


def _class_names(exc: BaseException) -> FrozenSet[Tuple[str, str]]:
    names = set()
    try:
        for cls in type(exc).__mro__:
            module = getattr(cls, "__module__", None)
            name = getattr(cls, "__name__", None)
            if isinstance(module, str) and isinstance(name, str):
                names.add((module.partition(".")[0], name))
    except Exception:  # a class with a hostile metaclass: judged without its names
        pass
    return frozenset(names)


def _chain(exc: BaseException) -> List[BaseException]:
    """``exc`` and the exceptions behind it, outermost first: causes before contexts, no repeats, bounded."""
    links: List[BaseException] = []
    seen = set()
    queue: List[object] = [exc]
    while queue and len(links) < _MAX_CHAIN:
        link = queue.pop(0)
        if not isinstance(link, BaseException) or id(link) in seen:
            continue
        seen.add(id(link))
        links.append(link)
        queue.append(_attribute(link, "__cause__"))
        queue.append(_attribute(link, "__context__"))
    return links


def is_outage(exc: BaseException) -> bool:
    """Return True if ``exc`` shows that the remote service is down or unreachable; never raises.

    Use it wherever the library takes exception matchers:
    ``CircuitBreakerConfig(failure_exceptions=(is_outage,))``; it is the default of
    ``TradingBreakerConfig.connection_errors``.

    The exception and the ones behind it (``__cause__``, then ``__context__``; at most 16, each
    once) are read outermost first; the first decisive link decides:

    - a library refusal (:data:`REFUSALS`: ``CircuitOpenException``, ``RateLimitExceeded``,
      ``TradingHalted``, ``OrderRejected``, ``KillSwitchError``): not an outage, nothing was sent;
    - an HTTP status (see :func:`http_status`): an outage for 5xx, 408 and 429; any other status
      (a 400 for insufficient buying power, 401, 403, 404, 422, a 2xx or 3xx) is the broker
      answering, so not an outage;
    - a transport error: ``OSError`` and all its subclasses (``ConnectionError``, ``TimeoutError``,
      ``socket.timeout``, ``ssl.SSLError``, every ``requests.RequestException`` without a status),
      ``httpx.TransportError``, and urllib3, http.client, aiohttp and websocket connection errors:
      an outage.

    Failing those, an SDK's own network error anywhere in the chain (``ccxt.NetworkError`` and its
    subclasses: ``RequestTimeout``, ``ExchangeNotAvailable``, ``DDoSProtection``,
    ``RateLimitExceeded``; python-binance's ``BinanceRequestException``) is an outage. It ranks
    below a status because ccxt raises ``ExchangeNotAvailable`` for a plain 400, 403 or 404.

    Anything else is **not** an outage: a ``ValueError``, a ``KeyError``, an SDK's validation error,
    ``KeyboardInterrupt``, an object that is not an exception. An outage needs evidence, because a
    connection breaker halts the whole desk: an error without a status or a transport failure
    behind it comes from one order or from our own code (a bad symbol, a bug, an answer the SDK
    could not parse), and halting every strategy for it is the very failure this function exists
    to prevent; the same error repeats on every order that hits it, and each of those orders fails
    on its own. Previously uncounted errors stay uncounted: the old default counted ``OSError``
    alone. If your SDK has a network error of its own that carries no status and wraps no
    transport error, name it next to this: ``failure_exceptions=(is_outage, MySdkNetworkError)``.

    Attribute reads that raise (an SDK property decoding a body) count as missing. Thread-safe:
    it only reads.
    """
    try:
        if not isinstance(exc, Exception):
            return False
        sdk_says_outage = False
        for link in _chain(exc):
            if isinstance(link, REFUSALS):
                return False
            status = http_status(link)
            if status is not None:
                return status >= 500 or status in _OUTAGE_STATUSES
            if isinstance(link, OSError):
                return True
            names = _class_names(link)
            if not names.isdisjoint(_TRANSPORT_CLASSES):
                return True
            if not names.isdisjoint(_SDK_NETWORK_CLASSES):
                sdk_says_outage = True
        return sdk_says_outage
    except Exception:  # a hostile exception object: no evidence of an outage could be read
        return False


class SendOutcome(str, enum.Enum):
    """What a failed send says about an order: certainly not placed, or perhaps placed."""

    NOT_PLACED = "not_placed"
    """The broker refused it (a 4xx other than 408), or it never left (refused connection, name
    resolution, connect timeout, a library refusal): nothing of it can fill."""
    UNKNOWN = "unknown"
    """It may have reached the broker (a read timeout after sending, a 5xx, a 408, a reset, any other
    error): only the application can find out, and say so (order_filled / order_cancelled /
    order_rejected)."""


# Transport failures that happen before a request is sent: the order never left.
_NEVER_SENT_CLASSES: FrozenSet[Tuple[str, str]] = frozenset(
    {
        ("requests", "ConnectTimeout"),
        ("httpx", "ConnectError"),
        ("httpx", "ConnectTimeout"),
        ("httpcore", "ConnectError"),
        ("httpcore", "ConnectTimeout"),
        ("urllib3", "NewConnectionError"),
        ("urllib3", "NameResolutionError"),
        ("urllib3", "ConnectTimeoutError"),
    }
)


def send_outcome(exc: BaseException) -> SendOutcome:
    """Whether an order whose send raised ``exc`` was certainly not placed, or may have been; never raises.

    The exception and the ones behind it are read outermost first, as :func:`is_outage` does; the
    first decisive link decides: a library refusal, an HTTP status of 400-499 other than 408, a
    refused connection, a failed name resolution or a connect timeout mean NOT_PLACED; an HTTP 408
    or 5xx means UNKNOWN. Anything else (a read timeout, a reset, an error of the application's
    own) is UNKNOWN: the order stays counted until the application says what became of it.
    """
    try:
        for link in _chain(exc):
            if isinstance(link, REFUSALS):
                return SendOutcome.NOT_PLACED
            status = http_status(link)
            if status is not None:
                return SendOutcome.NOT_PLACED if 400 <= status < 500 and status != 408 else SendOutcome.UNKNOWN
            if isinstance(link, (ConnectionRefusedError, socket.gaierror)):
                return SendOutcome.NOT_PLACED
            if not _class_names(link).isdisjoint(_NEVER_SENT_CLASSES):
                return SendOutcome.NOT_PLACED
    except Exception:  # a hostile exception object: nothing can be told, so nothing is released
        return SendOutcome.UNKNOWN
    return SendOutcome.UNKNOWN

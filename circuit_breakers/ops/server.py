"""The status server: the page, /status.json and /metrics over HTTP, read-only, in a daemon thread.

Stdlib only (``http.server.ThreadingHTTPServer``: a thread per request). ``GET`` (and ``HEAD``)
only; every other method is answered 405. A source that raises never shows a traceback to the
client: the page says "status unavailable: <error>", /status.json and /metrics answer 503, and
each distinct error is logged once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import socket
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Callable, Dict, Optional, Set, Tuple, Type, Union
from urllib.parse import urlsplit

from typing_extensions import Self

from circuit_breakers.errors import ConfigTypeError
from circuit_breakers.ops.exposition import CONTENT_TYPE, render_text
from circuit_breakers.ops.page import render_page
from circuit_breakers.ops.page_assets import SCRIPT
from circuit_breakers.ops.source import LocalSource, StatusSource
from circuit_breakers.registry import CircuitBreakerManager
from circuit_breakers.trading.breakers import TradingCircuitBreakers
from circuit_breakers.trading.status import jsonable

logger = logging.getLogger(__name__)

_SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode("utf-8")).digest()).decode("ascii")
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page loads nothing from elsewhere and runs only its own script.
    "Content-Security-Policy": (
        f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; style-src 'unsafe-inline'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
_HTML = "text/html; charset=utf-8"
_JSON = "application/json"
_TEXT = "text/plain; charset=utf-8"

Reply = Tuple[int, str, bytes]


class _ErrorLog:
    """Logs each distinct error text once (at most 100 remembered: a source failing in endless new
    ways still cannot flood the log)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: Set[Tuple[str, str]] = set()

    def once(self, what: str, text: str, exc: BaseException) -> None:
        with self._lock:
            if (what, text) in self._seen or len(self._seen) >= 100:
                return
            self._seen.add((what, text))
        logger.warning("%s: %s", what, text, exc_info=exc)


def _finite(value: Any) -> Any:
    """``value`` with infinities and NaN as None: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: Tuple[str, int], source: StatusSource) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.source = source
        self.errors = _ErrorLog()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    server_version = "circuit_breakers-status"

    def version_string(self) -> str:
        return self.server_version  # not the Python version

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def __getattr__(self, name: str) -> Callable[[], None]:
        # BaseHTTPRequestHandler dispatches to do_<METHOD>; every method but GET and HEAD is refused.
        if name.startswith("do_"):
            return self._not_allowed
        raise AttributeError(name)

    def _not_allowed(self) -> None:
        self._send(405, _TEXT, b"method not allowed: this page is read-only\n", {"Allow": "GET, HEAD"})

    def _answer(self, *, send_body: bool) -> None:
        routes: Dict[str, Callable[[], Reply]] = {
            "/": self._page,
            "/status.json": self._status,
            "/metrics": self._metrics,
        }
        route = routes.get(urlsplit(self.path).path)
        if route is None:
            self._send(404, _TEXT, b"not found\n", send_body=send_body)
            return
        try:
            code, content_type, body = route()
        except Exception as exc:  # a rendering fault: the client gets a plain 500, the log the details
            self.server.errors.once("status server failed", _describe(exc), exc)
            code, content_type, body = 500, _TEXT, b"internal error\n"
        self._send(code, content_type, body, send_body=send_body)

    def _document(self) -> Tuple[Optional[Mapping[str, Any]], Optional[str]]:
        try:
            document = self.server.source.status()
            if not isinstance(document, Mapping):
                raise TypeError(f"the status source returned {type(document).__name__}, not a dict")
        except Exception as exc:
            text = _describe(exc)
            self.server.errors.once("status source failed", text, exc)
            return None, text
        return document, None

    def _page(self) -> Reply:
        document, error = self._document()
        return (200 if error is None else 503), _HTML, render_page(document, error=error).encode("utf-8")

    def _status(self) -> Reply:
        document, error = self._document()
        payload = {"error": error} if document is None else _finite(jsonable(document))
        return (200 if error is None else 503), _JSON, json.dumps(payload, default=str).encode("utf-8")

    def _metrics(self) -> Reply:
        try:
            text = render_text(self.server.source.metric_families())
        except Exception as exc:
            error = _describe(exc)
            self.server.errors.once("metrics source failed", error, exc)
            return 503, _TEXT, f"metrics unavailable: {error}\n".encode()
        return 200, CONTENT_TYPE, text.encode("utf-8")

    def _send(
        self,
        code: int,
        content_type: str,
        body: bytes,
        extra: Optional[Dict[str, str]] = None,
        *,
        send_body: bool = True,
    ) -> None:
        try:
            self.send_response(code)
            for name, value in {**_HEADERS, "Content-Type": content_type, **(extra or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client went away; nothing to tell it
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)


class StatusServer:
    """A running status server; see :func:`serve_status`.

    ``url`` and ``port`` say where it listens. ``close()`` stops it and joins its thread
    (idempotent, thread-safe); it is also a context manager.
    """

    def __init__(self, source: StatusSource, *, host: str = "127.0.0.1", port: int = 8050) -> None:
        if not isinstance(source, StatusSource):
            raise ConfigTypeError(f"source must have status() and metric_families(), got {source!r}")
        self.source = source
        self._server = _HTTPServer((host, port), source)
        self.host = str(self._server.server_address[0])  # "" binds every address: "0.0.0.0"
        self.port: int = self._server.server_address[1]
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"circuit_breakers-status-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The page's address, such as ``http://127.0.0.1:8050/``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def close(self) -> None:
        """Stop serving, close the socket and join the thread; blocks about 0.1 s at most.

        A request already being answered finishes on its own (daemon) thread.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<StatusServer {self.url} {'closed' if self._closed else 'serving'}>"


def serve_status(
    source: Union[StatusSource, TradingCircuitBreakers, CircuitBreakerManager],
    *,
    host: str = "127.0.0.1",
    port: int = 8050,
) -> StatusServer:
    """Serve the status page, /status.json and /metrics for ``source`` from a daemon thread.

    ``source`` is a StatusSource, or a TradingCircuitBreakers or CircuitBreakerManager (wrapped in a
    :class:`LocalSource`). ``port=0`` picks a free port (see ``.port``). Returns once the socket
    listens; raises OSError if it cannot bind, ConfigTypeError for a source of the wrong type.
    Binds to loopback by default: the page is read-only but tells anyone who can reach it the
    desk's state.
    """
    if isinstance(source, TradingCircuitBreakers):
        source = LocalSource(trading=source)
    elif isinstance(source, CircuitBreakerManager):
        source = LocalSource(manager=source)
    return StatusServer(source, host=host, port=port)

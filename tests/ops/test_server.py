"""The status server over real HTTP on loopback: routes, methods, errors, and /metrics following a breaker."""

from __future__ import annotations

import http.client
import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from circuit_breakers import CircuitBreaker, CircuitBreakerManager, ConfigTypeError, ManualClock
from circuit_breakers.ops import LocalSource, MetricFamily, StatusServer, serve_status

from .conftest import MakeBreakers

Reply = Tuple[int, Dict[str, str], bytes]


def get(url: str, method: str = "GET") -> Reply:
    """One request; the status, the headers (lower-case names) and the body, whatever the status."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def raw(server: StatusServer, method: str, path: str = "/") -> Tuple[int, Dict[str, str], bytes]:
    """A request with any method name (urllib refuses none, but http.client is plainer about it)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        connection.request(method, path, body=b"x=1" if method in ("POST", "PUT") else None)
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


def scraped(url: str) -> Dict[str, float]:
    """/metrics as {'name{labels}': value}, the label part exactly as written."""
    status, headers, body = get(url + "metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    lines = [line for line in body.decode("utf-8").splitlines() if line and not line.startswith("#")]
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines}


class Broken:
    """A StatusSource whose answers can be made to fail."""

    def __init__(self) -> None:
        self.error: Optional[Exception] = RuntimeError("store unreachable: connection refused")
        self.document: Any = {"trading_state": "active"}

    def status(self) -> Dict[str, Any]:
        if self.error is not None:
            raise self.error
        return self.document  # type: ignore[no-any-return]

    def metric_families(self) -> List[MetricFamily]:
        if self.error is not None:
            raise self.error
        return []


@pytest.fixture
def serve() -> Iterator[Callable[..., StatusServer]]:
    started: List[StatusServer] = []

    def start(source: Any) -> StatusServer:
        server = serve_status(source, port=0)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def test_metrics_follow_a_breaker_that_trips_and_recovers(
    serve: Callable[..., StatusServer], clock: ManualClock, fail: Callable[..., None], succeed: Callable[..., None]
) -> None:
    manager = CircuitBreakerManager(clock=clock)
    breaker = manager.create_circuit_breaker("broker")  # defaults: 5 failures trip it, 3 trial successes close it
    server = serve(LocalSource(manager=manager, clock=clock))
    state = 'circuit_breakers_state{name="broker",state="%s"}'
    failed = 'circuit_breakers_calls_total{kind="failed",name="broker"}'
    trips = 'circuit_breakers_trips_total{name="broker"}'

    before = scraped(server.url)
    assert (before[state % "closed"], before[state % "open"], before[trips]) == (1, 0, 0)

    fail(breaker, 5)
    tripped = scraped(server.url)
    assert (tripped[state % "closed"], tripped[state % "open"], tripped[trips], tripped[failed]) == (0, 1, 1, 5)

    clock.advance(breaker.config.open_timeout_seconds)
    assert scraped(server.url)[state % "half_open"] == 1  # seen on the status read, as on a call

    succeed(breaker, breaker.config.success_threshold)
    recovered = scraped(server.url)
    assert (recovered[state % "closed"], recovered[state % "half_open"], recovered[trips]) == (1, 0, 1)
    assert recovered['circuit_breakers_calls_total{kind="successful",name="broker"}'] == 3


def test_status_json(serve: Callable[..., StatusServer], make_breakers: MakeBreakers, clock: ManualClock) -> None:
    desk = make_breakers()
    desk.engage_kill_switch("risk desk", actor="alice")
    server = serve(LocalSource(trading=desk, clock=clock, desk="eu"))
    status, headers, body = get(server.url + "status.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    document = json.loads(body)
    assert document["desk"] == "eu"
    assert document["trading_state"] == "halted"
    assert document["reasons"] == ["max_drawdown: kill switch engaged: risk desk"]
    assert document["generated_at"] == clock.now().isoformat()


def test_the_page(serve: Callable[..., StatusServer], make_breakers: MakeBreakers) -> None:
    desk = make_breakers()
    desk.engage_kill_switch("risk desk <b>now</b>")
    server = serve(desk)  # a TradingCircuitBreakers is wrapped in a LocalSource
    status, headers, body = get(server.url)
    page = body.decode("utf-8")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["server"] == "circuit_breakers-status"  # no Python version
    assert "<h1>HALTED</h1>" in page
    assert "risk desk &lt;b&gt;now&lt;/b&gt;" in page
    assert get(server.url + "?anything=1")[0] == 200


@pytest.mark.parametrize("path", ["/nope", "/status", "/metrics/", "/index.html", "/status.json/x"])
def test_unknown_paths_are_404(serve: Callable[..., StatusServer], path: str) -> None:
    server = serve(CircuitBreakerManager())
    status, _, body = raw(server, "GET", path)
    assert (status, body) == (404, b"not found\n")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "RESET"])
def test_every_method_but_get_and_head_is_405(serve: Callable[..., StatusServer], method: str) -> None:
    server = serve(CircuitBreakerManager())
    for path in ("/", "/status.json", "/metrics", "/nope"):
        status, headers, _ = raw(server, method, path)
        assert (status, headers["allow"]) == (405, "GET, HEAD")


def test_head_sends_the_headers_only(serve: Callable[..., StatusServer]) -> None:
    server = serve(CircuitBreakerManager())
    status, headers, body = raw(server, "HEAD", "/metrics")
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) > 0


def test_a_failing_source_gets_503_and_no_traceback(
    serve: Callable[..., StatusServer], caplog: pytest.LogCaptureFixture
) -> None:
    source = Broken()
    server = serve(source)
    with caplog.at_level(logging.WARNING, logger="circuit_breakers.ops.server"):
        status, headers, body = get(server.url + "status.json")
        assert (status, headers["content-type"]) == (503, "application/json")
        assert json.loads(body) == {"error": "RuntimeError: store unreachable: connection refused"}
        status, _, body = get(server.url)
        assert status == 503
        assert b"status unavailable: RuntimeError: store unreachable: connection refused" in body
        assert b"Traceback" not in body
        status, _, body = get(server.url + "metrics")
        assert (status, body) == (503, b"metrics unavailable: RuntimeError: store unreachable: connection refused\n")
        get(server.url + "status.json")
        source.error = ValueError("another error")
        get(server.url + "status.json")
    logged = [record.getMessage() for record in caplog.records]
    assert logged == [
        "status source failed: RuntimeError: store unreachable: connection refused",
        "metrics source failed: RuntimeError: store unreachable: connection refused",
        "status source failed: ValueError: another error",
    ]
    source.error = None
    assert get(server.url + "status.json")[0] == 200  # recovers with the source


def test_status_json_is_strict_json(serve: Callable[..., StatusServer]) -> None:
    source = Broken()
    source.error = None
    source.document = {
        "trading_state": "halted",
        "breakers": [{"name": "a", "state": "open", "seconds_until_retry": float("inf")}],
        "processes": [{"id": "h:1", "age_seconds": float("nan")}],
    }
    server = serve(source)
    _, _, body = get(server.url + "status.json")

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    document = json.loads(body, parse_constant=refuse)
    assert document["breakers"][0]["seconds_until_retry"] is None
    assert document["processes"][0]["age_seconds"] is None
    assert "retry in unknown" in get(server.url)[2].decode()


def test_a_source_that_returns_no_dict_is_unavailable(serve: Callable[..., StatusServer]) -> None:
    source = Broken()
    source.error = None
    source.document = ["not", "a", "dict"]
    server = serve(source)
    status, _, body = get(server.url + "status.json")
    assert status == 503
    assert json.loads(body) == {"error": "TypeError: the status source returned list, not a dict"}


def test_a_document_the_page_cannot_render_is_a_plain_500(
    serve: Callable[..., StatusServer], caplog: pytest.LogCaptureFixture
) -> None:
    class Hostile(dict):  # type: ignore[type-arg]
        def get(self, key: Any, default: Any = None) -> Any:
            raise KeyError("hostile mapping")

    source = Broken()
    source.error = None
    source.document = Hostile(trading_state="active")
    server = serve(source)
    with caplog.at_level(logging.WARNING, logger="circuit_breakers.ops.server"):
        status, _, body = get(server.url)
    assert (status, body) == (500, b"internal error\n")
    assert [record.getMessage() for record in caplog.records] == ["status server failed: KeyError: 'hostile mapping'"]


def test_close_is_idempotent_and_frees_the_port(make_breaker: Callable[..., CircuitBreaker]) -> None:
    manager = CircuitBreakerManager()
    with serve_status(manager, port=0) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/"
        assert get(server.url + "metrics")[0] == 200
        thread = [t for t in threading.enumerate() if t.name == f"circuit_breakers-status-{server.port}"]
        assert len(thread) == 1
        assert thread[0].daemon
    assert not thread[0].is_alive()
    server.close()
    with pytest.raises(urllib.error.URLError):
        get(server.url)
    again = serve_status(manager, port=server.port)  # the port is free again
    again.close()
    assert "closed" in repr(again)


def test_a_source_of_the_wrong_kind_is_refused() -> None:
    with pytest.raises(ConfigTypeError, match="source must have status\\(\\) and metric_families\\(\\), got 42"):
        serve_status(42)  # type: ignore[arg-type]


def test_requests_are_answered_concurrently(serve: Callable[..., StatusServer]) -> None:
    """A slow source read holds up only its own request: a thread per request."""
    inside = threading.Event()
    release = threading.Event()

    class Slow(Broken):
        def status(self) -> Dict[str, Any]:
            inside.set()
            assert release.wait(5)
            return {"trading_state": "active"}

    source = Slow()
    source.error = None
    server = serve(source)
    slow = threading.Thread(target=get, args=(server.url + "status.json",))
    slow.start()
    try:
        assert inside.wait(5)
        assert get(server.url + "metrics")[0] == 200  # answered while the other request waits
    finally:
        release.set()
        slow.join(5)
    assert not slow.is_alive()

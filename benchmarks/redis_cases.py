"""Benchmark case ``redis``: the Redis paths, shared across processes.

A throwaway ``redis-server`` (no persistence, loopback, a free port) is started for the case and
killed at its end; nothing else talks to it, so the server's own counters measure our traffic.
Without ``redis-server`` or redis-py (or with ``--without redis``) the case is skipped with a note.

- round trips per decision: the server's ``total_reads_processed`` (one per request a client sends,
  not counting the commands a Lua script runs inside) before and after N decisions made by one
  client, minus what the reading itself adds (measured with nothing in between); beside it the
  script calls (``EVALSHA`` + ``EVAL`` in ``INFO commandstats``) and our limiter's ``round_trips``.
- decisions per second from 1 and from 4 processes (spawned once, each with its own client, all
  released at the same instant, each deciding for a fixed time): ours ``record_order()`` (a
  TradingCircuitBreakers on a RedisStore), limits' ``MovingWindowRateLimiter(RedisStorage).hit()``,
  admitting (a limit never reached) and refusing (10 per minute, filled before the runs); every
  subject is built once per process (one namespace or key per subject, shared by the processes) and
  its short runs are interleaved with the others' round by round; our RedisCircuitBreaker's
  closed-path ``call(f)`` for information.
- exactness: 4 processes hammer one 50-per-minute limit; exactly 50 must be admitted.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from itertools import repeat
from multiprocessing.connection import Connection
from typing import Any, Callable, Dict, List, Optional, Tuple

import circuit_breakers
from circuit_breakers import Limit, TradingBreakerConfig, TradingCircuitBreakers
from circuit_breakers.redis import RedisCircuitBreaker, RedisRateLimiter

from .cases import Context
from .harness import CaseResult, Ratio, Table, fmt_int
from .peers import load_peer
from .subjects import ADMIT_ALL, CountingProvider, trivial

try:
    import redis
except ImportError as exc:  # the case is skipped with this reason
    redis = None
    REDIS_IMPORT_ERROR: Optional[str] = f"{type(exc).__name__}: {exc}"
else:
    REDIS_IMPORT_ERROR = None

INSTALL_HINT = "install it with: apt-get install -y redis-server; pip install redis"
PROCESS_COUNTS = (1, 4)
REFUSE_LIMIT = 10  # per minute, filled before the refusing runs
EXACT_LIMIT = 50  # per minute, shared by the processes of the exactness check
WARMUP = 20  # decisions each process makes before it is timed (connections opened, scripts cached)
REPLY_SECONDS = 60.0  # longest wait for a worker's answer before the case fails

Attempt = Callable[[], object]


# --- the server -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class Server:
    """A throwaway redis-server: no persistence, loopback only, its own empty working directory."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.port = _free_port()
        self.directory = tempfile.mkdtemp(prefix="circuit_breakers-bench-redis-")
        self.process: Optional[subprocess.Popen[bytes]] = None

    def start(self) -> None:
        command = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        command += ["no", "--dir", self.directory, "--daemonize", "no", "--loglevel", "warning"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _pong(self.port):
                return
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace").strip() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {error[-300:]}")
            time.sleep(0.02)  # waiting for the server to accept connections, bounded by the deadline
        raise RuntimeError("redis-server did not answer PING within 10 s")

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait(10)
            if self.process.stderr is not None:
                self.process.stderr.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def client(port: int) -> Any:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)


# --- the subjects (built in a worker, or in the parent to count round trips) ---------------------------


@dataclass(frozen=True)
class Job:
    """What a worker builds and runs: ``kind`` is ours_order, ours_try_acquire, limits_hit or breaker_call."""

    kind: str
    namespace: str
    per_minute: int = ADMIT_ALL
    seconds: float = 0.0
    warmup: int = WARMUP
    timeouts: bool = False  # limits only: build its client with our socket timeouts


def build(job: Job, port: int) -> Tuple[Attempt, Callable[[], None], Any]:
    """The attempt, a closer, and the object whose ``round_trips`` counts client-side (or None)."""
    if job.kind == "limits_hit":
        limits = load_peer("limits").module
        if limits is None:
            raise RuntimeError("limits is not importable")
        options = {"socket_timeout": 1, "socket_connect_timeout": 1} if job.timeouts else {}
        storage = limits.storage.RedisStorage(f"redis://127.0.0.1:{port}", **options)
        hit = limits.strategies.MovingWindowRateLimiter(storage).hit
        item = limits.parse(f"{job.per_minute}/minute")
        key = job.namespace
        return lambda: hit(item, key), lambda: _close(getattr(storage, "storage", None)), None

    connection = client(port)
    store = circuit_breakers.RedisStore(connection, namespace=job.namespace)
    if job.kind == "ours_order":
        config = TradingBreakerConfig(max_orders_per_minute=job.per_minute, max_orders_per_hour=ADMIT_ALL)
        breakers = TradingCircuitBreakers(CountingProvider(), config, store=store)

        def close() -> None:
            breakers.close()
            connection.close()

        return breakers.record_order, close, None
    if job.kind == "ours_try_acquire":
        limiter = RedisRateLimiter(store, Limit(job.per_minute, 60), name="orders")
        return limiter.try_acquire, connection.close, limiter
    if job.kind == "breaker_call":
        breaker = RedisCircuitBreaker("broker", store=store)
        call = breaker.call
        return lambda: call(trivial), connection.close, None
    raise ValueError(f"unknown job kind {job.kind!r}")


def _close(thing: Any) -> None:
    with contextlib.suppress(Exception):
        thing.close()


# --- the worker processes -----------------------------------------------------------------------------


def worker(conn: Connection, port: int) -> None:
    """Serves the parent until it sends None.

    ("build", {key: Job}): build every subject, warm each up, answer ("ready", {key: error or None});
    ("run", key, start_at, seconds): wait for start_at, decide until start_at + seconds, answer ("done", ...);
    ("close",): close every subject, answer ("closed",).
    """
    subjects: Dict[str, Tuple[Attempt, Callable[[], None]]] = {}
    conn.send(("started",))
    while True:
        message = conn.recv()
        if message is None:
            return
        try:
            if message[0] == "build":
                errors = _build_all(message[1], port, subjects)
                conn.send(("ready", errors))
            elif message[0] == "run":
                conn.send(("done", *_decide(subjects[message[1]][0], message[2], message[3])))
            elif message[0] == "close":
                for _, close in subjects.values():
                    with contextlib.suppress(Exception):
                        close()
                subjects.clear()
                conn.send(("closed",))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def _build_all(jobs: Dict[str, Job], port: int, into: Dict[str, Tuple[Attempt, Callable[[], None]]]) -> Dict[str, Any]:
    errors: Dict[str, Optional[str]] = {}
    for key, job in jobs.items():
        try:
            attempt, close, _ = build(job, port)
            into[key] = (attempt, close)
            for _ in repeat(None, job.warmup):
                attempt()
            errors[key] = None
        except Exception as exc:
            errors[key] = f"{type(exc).__name__}: {exc}"
    return errors


def _decide(attempt: Attempt, start_at: float, seconds: float) -> Tuple[int, int, float]:
    """(attempts, admitted, seconds from start_at to the end of the last decision)."""
    clock = time.monotonic
    while clock() < start_at:  # released together: CLOCK_MONOTONIC is system-wide
        pass
    deadline = start_at + seconds
    attempts = admitted = 0
    while True:
        if attempt():
            admitted += 1
        attempts += 1
        if clock() >= deadline:
            break
    return attempts, admitted, clock() - start_at


@dataclass
class Run:
    processes: int
    attempts: int
    admitted: int
    seconds: float  # the slowest process's time from the common start to its last decision

    @property
    def rate(self) -> float:
        return self.attempts / self.seconds


class Workers:
    """Processes spawned once (fresh interpreters: no inherited threads or connections), reused by every run."""

    def __init__(self, count: int, port: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: List[Connection] = []
        self.processes = []
        for index in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=worker, args=(child, port), name=f"bench-redis-{index}", daemon=True)
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)

    def wait_started(self) -> None:
        for pipe in self.pipes:
            self._expect(pipe, "started")

    def build(self, jobs: Dict[str, Job]) -> Dict[str, Optional[str]]:
        """Every worker builds every job; returns the first error met per job (None if it built everywhere)."""
        for pipe in self.pipes:
            pipe.send(("build", jobs))
        errors: Dict[str, Optional[str]] = dict.fromkeys(jobs)
        for pipe in self.pipes:
            for key, error in self._expect(pipe, "ready")[1].items():
                errors[key] = errors[key] or error
        return errors

    def run(self, key: str, seconds: float, processes: int) -> Run:
        pipes = self.pipes[:processes]
        start_at = time.monotonic() + 0.02
        for pipe in pipes:
            pipe.send(("run", key, start_at, seconds))
        replies = [self._expect(pipe, "done") for pipe in pipes]
        return Run(
            processes,
            sum(reply[1] for reply in replies),
            sum(reply[2] for reply in replies),
            max(reply[3] for reply in replies),
        )

    def release(self) -> None:
        for pipe in self.pipes:
            pipe.send(("close",))
        for pipe in self.pipes:
            self._expect(pipe, "closed")

    @staticmethod
    def _expect(pipe: Connection, what: str) -> Tuple[Any, ...]:
        if not pipe.poll(REPLY_SECONDS):
            raise RuntimeError(f"a benchmark worker did not answer within {REPLY_SECONDS:g} s")
        reply = pipe.recv()
        if reply[0] == "error":
            raise RuntimeError(f"a benchmark worker failed: {reply[1]}")
        if reply[0] != what:
            raise RuntimeError(f"a benchmark worker answered {reply!r}, expected {what!r}")
        return tuple(reply)

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
        for pipe in self.pipes:
            pipe.close()


# --- round trips ----------------------------------------------------------------------------------------


@dataclass
class Count:
    label: str
    decisions: int = 0
    requests: Optional[float] = None  # requests the server read, per decision
    scripts: Optional[float] = None  # EVALSHA + EVAL calls, per decision
    client_counter: Optional[float] = None  # RedisRateLimiter.round_trips, per decision
    server_us: Optional[float] = None  # microseconds the server spent in scripts, per decision
    skipped: Optional[str] = None

    def to_json(self) -> Dict[str, Any]:
        return {
            "label": self.label,
            "decisions": self.decisions,
            "round_trips_per_decision": self.requests,
            "script_calls_per_decision": self.scripts,
            "client_round_trips_counter_per_decision": self.client_counter,
            "server_script_us_per_decision": self.server_us,
            "skipped": self.skipped,
        }


def _server_counts(observer: Any) -> Tuple[int, int, int]:
    """(requests read, script calls, microseconds in scripts) so far; the reading itself is one more request."""
    info = observer.execute_command("INFO", "stats", "commandstats")
    scripts = [info.get(name, {}) for name in ("cmdstat_evalsha", "cmdstat_eval")]
    calls = sum(int(stat.get("calls", 0)) for stat in scripts)
    micros = sum(int(stat.get("usec", 0)) for stat in scripts)
    return int(info["total_reads_processed"]), calls, micros


def settle(observer: Any, seconds: float = 2.0) -> int:
    """Wait until the server is quiet (background threads done: a subscription and its first read); return
    the requests one reading adds (1 on a quiet server)."""
    deadline = time.monotonic() + seconds
    while True:
        first = _server_counts(observer)[0]
        time.sleep(0.02)
        reading = _server_counts(observer)[0] - first
        if reading == 1 or time.monotonic() > deadline:
            return reading


def count_round_trips(observer: Any, count: Count, attempt: Attempt, n: int, counted: Any = None) -> Count:
    for _ in repeat(None, WARMUP):  # connections open, scripts loaded
        attempt()
    reading = settle(observer)
    client_before = getattr(counted, "round_trips", None)
    before = _server_counts(observer)
    for _ in repeat(None, n):
        attempt()
    after = _server_counts(observer)
    count.decisions = n
    count.requests = (after[0] - before[0] - reading) / n
    count.scripts = (after[1] - before[1]) / n
    count.server_us = (after[2] - before[2]) / n
    if client_before is not None:
        count.client_counter = (counted.round_trips - client_before) / n
    return count


def fill(attempt: Attempt, limit: int) -> None:
    """Take every permit, so that the next attempts are refused."""
    for _ in range(limit):
        if not attempt():
            raise AssertionError("a fresh limit refused a permit")
    if attempt():
        raise AssertionError("a full limit admitted a permit")


# --- the case -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    key: str
    label: str
    kind: str
    refusing: bool = False
    peer: bool = False
    timeouts: bool = False


SUBJECTS = (
    Subject("ours_record_order", "ours record_order(), admitting", "ours_order"),
    Subject("limits_hit", "limits moving window hit(), admitting", "limits_hit", peer=True),
    Subject("ours_record_order_refused", "ours record_order(), refusing", "ours_order", refusing=True),
    Subject("limits_hit_refused", "limits moving window hit(), refusing", "limits_hit", refusing=True, peer=True),
    Subject("ours_try_acquire", "ours RedisRateLimiter.try_acquire(), 1 limit, admitting", "ours_try_acquire"),
    Subject(
        "limits_hit_timeouts",
        "limits hit(), admitting, client with our socket timeouts",
        "limits_hit",
        peer=True,
        timeouts=True,
    ),
    Subject("ours_breaker_call", "ours RedisCircuitBreaker.call(f), closed", "breaker_call"),
)


@dataclass
class Throughput:
    label: str
    runs: Dict[int, List[Run]] = field(default_factory=dict)
    skipped: Optional[str] = None

    def rate(self, processes: int) -> Optional[float]:
        runs = self.runs.get(processes)
        return statistics.median(run.rate for run in runs) if runs else None

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"label": self.label, "skipped": self.skipped, "processes": {}}
        for processes, runs in self.runs.items():
            rates = [run.rate for run in runs]
            out["processes"][str(processes)] = {
                "decisions_per_second": round(statistics.median(rates)),
                "min": round(min(rates)),
                "max": round(max(rates)),
                "runs": len(runs),
                "seconds_per_run": round(statistics.median(run.seconds for run in runs), 3),
                "admitted_fraction": round(sum(r.admitted for r in runs) / max(1, sum(r.attempts for r in runs)), 4),
            }
        return out


@dataclass
class Exact:
    label: str
    processes: int = 0
    attempts: int = 0
    admitted: int = 0
    stored: Optional[int] = None  # entries in the server's window afterwards (ours)
    skipped: Optional[str] = None

    @property
    def exact(self) -> Optional[bool]:
        return None if self.skipped is not None else self.admitted == EXACT_LIMIT

    def to_json(self) -> Dict[str, Any]:
        return {
            "processes": self.processes,
            "limit_per_minute": EXACT_LIMIT,
            "attempts": self.attempts,
            "admitted": self.admitted,
            "entries_in_server_window": self.stored,
            "exact": self.exact,
            "skipped": self.skipped,
        }


def redis_case(ctx: Context) -> CaseResult:
    case = CaseResult("redis", "redis: RedisStore paths, shared across processes")
    reason = _missing(ctx)
    if reason is not None:
        case.notes.append(f"skipped: {reason}")
        case.extra["skipped"] = reason
        return case
    server = Server(str(shutil.which("redis-server")))
    try:
        server.start()
    except Exception as exc:
        reason = f"redis-server could not be started: {type(exc).__name__}: {exc}"
        server.stop()
        case.notes.append(f"skipped: {reason}")
        case.extra["skipped"] = reason
        return case
    workers: Optional[Workers] = None
    observer = client(server.port)
    try:
        version = observer.info("server").get("redis_version")
        case.extra["skipped"] = None
        case.extra["server"] = {"redis_version": version, "redis_py": redis.__version__, "port": server.port}
        workers = Workers(max(PROCESS_COUNTS), server.port)
        if not ctx.settings.quick:  # their imports would otherwise share the CPUs with the counting
            workers.wait_started()
        counts = _round_trips(ctx, observer, server.port)
        if ctx.settings.quick:  # a smoke test: the counts stay exact, only the server's script time is disturbed
            workers.wait_started()
        throughput = _throughput(ctx, workers, server.port)
        exact = _exactness(ctx, workers, observer)
    finally:
        if workers is not None:
            workers.close()
        _close(observer)
        server.stop()
    _report(
        ctx, case=case, counts=counts, throughput=throughput, exact=exact, version=version, redis_py=redis.__version__
    )
    return case


def _missing(ctx: Context) -> Optional[str]:
    if "redis" in ctx.without:
        return "redis disabled with --without"
    if shutil.which("redis-server") is None:
        return f"redis-server is not installed; {INSTALL_HINT}"
    if redis is None:
        return f"redis-py is not importable ({REDIS_IMPORT_ERROR}); {INSTALL_HINT}"
    return None


def _namespace(tag: str) -> str:
    return f"bench:{tag}:{uuid.uuid4().hex[:12]}"


def _prepare(job: Job, subject: Subject, port: int) -> None:
    """Fill the limit of a refusing run before its processes start (in this process, its own client)."""
    if not subject.refusing:
        return
    attempt, close, _ = build(job, port)
    try:
        fill(attempt, job.per_minute)
    finally:
        close()


def _job(subject: Subject, seconds: float) -> Job:
    limit = REFUSE_LIMIT if subject.refusing else ADMIT_ALL
    return Job(subject.kind, _namespace(subject.key), limit, seconds, timeouts=subject.timeouts)


def _round_trips(ctx: Context, observer: Any, port: int) -> Dict[str, Count]:
    n = ctx.settings.redis_count
    limits_peer = ctx.peer("limits")
    counts: Dict[str, Count] = {}
    for subject in SUBJECTS:
        count = counts[subject.key] = Count(subject.label)
        if subject.peer and not limits_peer.available:
            count.skipped = limits_peer.skip_reason()
            continue
        job = _job(subject, 0.0)
        try:
            _prepare(job, subject, port)
            attempt, close, counted = build(job, port)
        except Exception as exc:
            if not subject.peer:
                raise
            count.skipped = f"limits failed: {type(exc).__name__}: {exc}"
            continue
        try:
            count_round_trips(observer, count, attempt, n, counted)
        finally:
            close()
    return counts


def _throughput(ctx: Context, workers: Workers, port: int) -> Dict[str, Throughput]:
    """Every subject built once in every worker (shared namespaces), then short runs interleaved round by round."""
    settings = ctx.settings
    limits_peer = ctx.peer("limits")
    figures = {subject.key: Throughput(subject.label) for subject in SUBJECTS}
    jobs: Dict[str, Job] = {}
    for subject in SUBJECTS:
        if subject.peer and not limits_peer.available:
            figures[subject.key].skipped = limits_peer.skip_reason()
            continue
        job = jobs[subject.key] = _job(subject, settings.redis_seconds)
        try:
            _prepare(job, subject, port)
        except Exception as exc:
            if not subject.peer:
                raise
            figures[subject.key].skipped = f"limits failed: {type(exc).__name__}: {exc}"
            del jobs[subject.key]
    try:
        for key, error in workers.build(jobs).items():
            if error is not None:
                if not any(subject.key == key and subject.peer for subject in SUBJECTS):
                    raise RuntimeError(f"{figures[key].label}: {error}")
                figures[key].skipped = f"limits failed: {error}"
        active = [subject for subject in SUBJECTS if subject.key in jobs and figures[subject.key].skipped is None]
        for round_index in range(settings.redis_reps):
            shift = round_index % len(active)
            counts = PROCESS_COUNTS if round_index % 2 == 0 else PROCESS_COUNTS[::-1]
            for subject in active[shift:] + active[:shift]:
                for processes in counts:
                    run = workers.run(subject.key, settings.redis_seconds, processes)
                    if run.admitted != (0 if subject.refusing else run.attempts):
                        raise AssertionError(f"{subject.label}: admitted {run.admitted} of {run.attempts} attempts")
                    figures[subject.key].runs.setdefault(processes, []).append(run)
    finally:
        workers.release()
    return figures


def _exactness(ctx: Context, workers: Workers, observer: Any) -> List[Exact]:
    processes = max(PROCESS_COUNTS)
    seconds = ctx.settings.redis_exact_seconds
    limits_peer = ctx.peer("limits")
    checks = []
    for label, kind, peer in (
        ("ours record_order()", "ours_order", False),
        ("limits moving window hit()", "limits_hit", True),
    ):
        check = Exact(label, processes)
        checks.append(check)
        if peer and not limits_peer.available:
            check.skipped = limits_peer.skip_reason()
            continue
        job = Job(kind, _namespace("exact"), EXACT_LIMIT, seconds, warmup=0)
        try:
            error = workers.build({"exact": job})["exact"]
            if error is not None:
                raise RuntimeError(error)
            run = workers.run("exact", seconds, processes)
        except Exception as exc:
            if not peer:
                raise
            check.skipped = f"limits failed: {exc}"
            continue
        finally:
            workers.release()
        check.attempts, check.admitted = run.attempts, run.admitted
        if not peer:
            check.stored = int(observer.zcard(f"{job.namespace}:rate:rate_limit"))
    return checks


RATIOS = (
    ("ours_record_order", "limits_hit", "admitting, {p} proc: ours record_order() / limits"),
    ("ours_record_order_refused", "limits_hit_refused", "refusing, {p} proc: ours record_order() / limits"),
    ("ours_try_acquire", "limits_hit", "admitting, {p} proc: ours try_acquire() 1 limit / limits"),
    ("ours_try_acquire", "limits_hit_timeouts", "admitting, {p} proc: ours try_acquire() 1 limit / limits, timeouts"),
)


def _ratios(throughput: Dict[str, Throughput]) -> List[Ratio]:
    out = []
    for top, bottom, label in RATIOS:
        for processes in PROCESS_COUNTS:
            ours, theirs = throughput[top].rate(processes), throughput[bottom].rate(processes)
            why = throughput[bottom].skipped or throughput[top].skipped or "not measured"
            value = None if ours is None or theirs is None else ours / theirs
            out.append(Ratio(f"decisions/s, {label.format(p=processes)}", value, why))
    return out


def _report(
    ctx: Context,
    *,
    case: CaseResult,
    counts: Dict[str, Count],
    throughput: Dict[str, Throughput],
    exact: List[Exact],
    version: Optional[str],
    redis_py: str,
) -> None:
    settings = ctx.settings
    table = Table(
        "round trips per decision (server's requests read, over N decisions of one client)",
        ["path", "decisions", "round trips", "script calls", "client counter", "server us in scripts"],
    )
    for count in counts.values():
        if count.skipped is not None:
            table.rows.append([count.label, "skipped", "-", "-", "-", "-"])
            case.notes.append(f"{count.label}: {count.skipped}")
            continue
        client_counter = "-" if count.client_counter is None else f"{count.client_counter:.2f}"
        server_us = "-" if count.server_us is None else f"{count.server_us:.1f}"
        cells = [f"{count.decisions:,}", f"{count.requests:.2f}", f"{count.scripts:.2f}", client_counter, server_us]
        table.rows.append([count.label, *cells])
    case.tables.append(table)

    low, high = PROCESS_COUNTS[0], PROCESS_COUNTS[-1]
    headers = ["path"]
    for p in PROCESS_COUNTS:
        headers += [f"{p} process{'es' if p > 1 else ''}", "min-max"]
    speed = Table(
        f"decisions per second, all processes together (median of {settings.redis_reps} runs of "
        f"{settings.redis_seconds:g} s each)",
        [*headers, f"{high}/{low}", f"us/decision, {low}"],
    )
    for figure in throughput.values():
        if figure.skipped is not None or not figure.runs:
            speed.rows.append([figure.label, *["skipped", "-"] * len(PROCESS_COUNTS), "-", "-"])
            if figure.skipped is not None:
                case.notes.append(f"{figure.label}: {figure.skipped}")
            continue
        cells = []
        for p in PROCESS_COUNTS:
            rates = [run.rate for run in figure.runs.get(p, [])]
            spread = f"{min(rates):,.0f}-{max(rates):,.0f}" if rates else "-"
            cells += [fmt_int(figure.rate(p)), spread]
        first, last = figure.rate(low), figure.rate(high)
        scaling = "-" if first is None or last is None else f"{last / first:.2f}x"
        per = "-" if first is None else f"{1e6 / first:,.1f}"
        speed.rows.append([figure.label, *cells, scaling, per])
    case.tables.append(speed)

    exact_table = Table(
        f"exactness: {high} processes hammering one {EXACT_LIMIT}/minute limit for {settings.redis_exact_seconds:g} s",
        ["limiter", "processes", "attempts", "admitted", "in server window", "exact"],
    )
    for check in exact:
        if check.skipped is not None:
            exact_table.rows.append([check.label, str(check.processes), "-", "-", "-", "skipped"])
            case.notes.append(f"exactness, {check.label}: {check.skipped}")
            continue
        stored = "-" if check.stored is None else str(check.stored)
        verdict = "yes" if check.exact else f"NO (limit {EXACT_LIMIT})"
        exact_table.rows.append(
            [check.label, str(check.processes), f"{check.attempts:,}", f"{check.admitted:,}", stored, verdict]
        )
    case.tables.append(exact_table)

    case.ratios.extend(_ratios(throughput))

    case.notes.append(
        f"a throwaway redis-server {version} (no persistence, loopback) used by nothing else; redis-py {redis_py}; "
        "each client built with socket_timeout=1, socket_connect_timeout=1 (limits: its RedisStorage defaults)"
    )
    case.notes.append(
        "round trips = growth of the server's total_reads_processed (one per request it reads; a script's inner "
        "commands do not count) over N decisions, less the reading's own; script calls = EVALSHA + EVAL; "
        "client counter = RedisRateLimiter.round_trips; server us = script time (commandstats usec) per decision"
    )
    case.notes.append(
        f"processes: spawned once, each with its own client, released together, deciding for a fixed time; "
        f"every subject built once per process and warmed up ({WARMUP} decisions), its runs interleaved with the "
        f"others' round by round; admitting: limit {ADMIT_ALL:,}/minute (record_order(): and per hour: "
        "two windows; try_acquire() and limits: one), one namespace (key) per subject, shared by the processes; "
        f"refusing: {REFUSE_LIMIT}/minute, filled before the run; the machine's CPUs are shared with redis-server"
    )
    case.extra["round_trips"] = {key: count.to_json() for key, count in counts.items()}
    case.extra["throughput"] = {key: figure.to_json() for key, figure in throughput.items()}
    case.extra["exactness"] = {f"{check.label}, {check.processes} processes": check.to_json() for check in exact}

"""Benchmark cases ``breaker-closed``, ``breaker-open``, ``breaker-with``, ``trading`` and ``threads``.

``rate-limits``, ``redis`` and ``replay`` live in their own modules. Each case returns a CaseResult and
measures its own bare call beside its other figures (one interleaved group), so every ratio it prints is
between figures taken together in the same process run.
"""

from __future__ import annotations

import gc
import statistics
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, FrozenSet, List, Optional, Sequence, Tuple, Type, Union

from circuit_breakers import (
    CircuitBreaker,
    CircuitBreakerManager,
    CircuitOpenException,
    OrderLimits,
    RejectReason,
    circuit_breaker,
)

from .harness import (
    Bench,
    CaseResult,
    Loop,
    Ratio,
    Result,
    Settings,
    Skipped,
    Stat,
    Table,
    call_loop,
    calls_for,
    catch_loop,
    fmt_int,
    fmt_ns,
    measure_group,
    ns,
    ratio,
    thread_seconds,
    with_loop,
)
from .peers import Peer
from .subjects import (
    GUARD_POOL,
    GUARD_WINDOW,
    REFUSED_ORDER,
    OrderProvider,
    accepted_order,
    all_checks,
    guard_orders,
    lock_baseline,
    one_ms_call,
    order_gate,
    trade_guard_loop,
    trading,
    trivial,
)


@dataclass
class Context:
    """What every case gets: the settings and the peers."""

    settings: Settings
    peers: Dict[str, Peer]
    without: FrozenSet[str] = frozenset()  # names given to --without (peers, and "redis")

    def peer(self, name: str) -> Peer:
        return self.peers[name]


def expect_raises(func: Callable[[], object], exc_type: Type[BaseException]) -> None:
    """Check that a rejection path really rejects before timing it."""
    try:
        func()
    except exc_type:
        return
    raise AssertionError(f"{func!r} did not raise {exc_type.__name__}")


def calls(func: Callable[..., object], *args: object) -> Bench:
    """A bench calling ``func(*args)`` in a tight loop."""
    loop = call_loop(func, *args)
    return Bench(lambda: loop)


def peer_bench(peer: Peer, build: Callable[[Any], Bench]) -> Union[Bench, Skipped]:
    """``build(module)`` if the peer is importable and builds; otherwise a Skipped figure with the reason."""
    if not peer.available:
        return Skipped(peer.skip_reason())
    try:
        return build(peer.module)
    except Exception as exc:
        return Skipped(f"{peer.name} failed: {type(exc).__name__}: {exc}")


def overhead(result: Optional[Result], bare: Optional[Result]) -> Optional[float]:
    top, bottom = ns(result), ns(bare)
    return None if top is None or bottom is None else top - bottom


def timing_table(
    title: str, rows: Sequence[Tuple[str, Optional[Result]]], bare: Optional[Result], notes: List[str]
) -> Table:
    """ns/call, overhead above the bare call, ns/call in bare calls, spread and calls per repetition; skips
    become notes."""
    table = Table(title, ["case", "ns/call", "overhead ns", "x bare", "min-max ns/call", "calls/rep"])
    bare_ns = ns(bare)
    for label, result in rows:
        if isinstance(result, Stat):
            spread = f"{result.min_ns:,.1f}-{result.max_ns:,.1f}"
            times = "-" if not bare_ns else f"{result.ns_per_call / bare_ns:,.1f}"
            cells = [fmt_ns(result.ns_per_call), fmt_ns(overhead(result, bare)), times, spread, f"{result.calls:,}"]
            table.rows.append([label, *cells])
        else:
            table.rows.append([label, "skipped", "-", "-", "-", "-"])
            if isinstance(result, Skipped):
                notes.append(f"{label}: {result.reason}")
    return table


def overhead_ratio(label: str, results: Dict[str, Result], top: str, bottom: str) -> Ratio:
    bare = results.get("bare")
    return ratio(
        label,
        overhead(results.get(top), bare),
        overhead(results.get(bottom), bare),
        results.get(top),
        results.get(bottom),
    )


def ns_ratio(label: str, top: Optional[Result], bottom: Optional[Result]) -> Ratio:
    return ratio(label, ns(top), ns(bottom), top, bottom)


BARE = "bare call f()"
LOCK = "lock baseline: with lock: counter += 1; f()"


# --- breaker-closed -------------------------------------------------------------------------------


def closed_path(ctx: Context) -> CaseResult:
    case = CaseResult("breaker-closed", "breaker-closed: protected call while CLOSED (trivial function)")
    named = circuit_breaker("bench_named", manager=CircuitBreakerManager())(trivial)
    res = case.results = measure_group(
        {
            "bare": calls(trivial),
            "lock_baseline": calls(lock_baseline(trivial)),
            "ours_decorator": calls(CircuitBreaker("bench_decorator")(trivial)),
            "ours_named_decorator": calls(named),
            "ours_call": calls(CircuitBreaker("bench_call").call, trivial),
            "pybreaker": peer_bench(ctx.peer("pybreaker"), lambda module: calls(module.CircuitBreaker()(trivial))),
            "circuitbreaker": peer_bench(ctx.peer("circuitbreaker"), lambda module: calls(module.circuit(trivial))),
        },
        ctx.settings,
    )
    rows = [
        (BARE, res["bare"]),
        (LOCK, res["lock_baseline"]),
        ("ours @breaker", res["ours_decorator"]),
        ("ours @circuit_breaker(name, manager=...)", res["ours_named_decorator"]),
        ("ours breaker.call(f)", res["ours_call"]),
        ("pybreaker @CircuitBreaker()", res["pybreaker"]),
        ("circuitbreaker @circuit", res["circuitbreaker"]),
    ]
    case.tables.append(timing_table("", rows, res["bare"], case.notes))
    case.ratios = [
        overhead_ratio("overhead: ours @breaker / lock baseline", res, "ours_decorator", "lock_baseline"),
        overhead_ratio("overhead: ours @circuit_breaker / lock baseline", res, "ours_named_decorator", "lock_baseline"),
        overhead_ratio("overhead: ours breaker.call(f) / lock baseline", res, "ours_call", "lock_baseline"),
        overhead_ratio("overhead: pybreaker / ours @breaker", res, "pybreaker", "ours_decorator"),
        overhead_ratio("overhead: circuitbreaker / ours @breaker", res, "circuitbreaker", "ours_decorator"),
    ]
    return case


# --- breaker-open (rejection while OPEN) ----------------------------------------------------------


def _pybreaker_rejection(pybreaker: Any) -> Bench:
    breaker = pybreaker.CircuitBreaker(reset_timeout=3600)
    protected = breaker(trivial)
    breaker.open()
    expect_raises(protected, pybreaker.CircuitBreakerError)
    loop = catch_loop(protected, pybreaker.CircuitBreakerError)
    return Bench(lambda: loop)


def _circuitbreaker_rejection(module: Any) -> Bench:
    def failing() -> int:
        raise ValueError("trip")

    protected = module.circuit(failure_threshold=1, recovery_timeout=3600, name="bench_open_circuit")(failing)
    expect_raises(protected, ValueError)  # the one failure that opens it
    expect_raises(protected, module.CircuitBreakerError)
    loop = catch_loop(protected, module.CircuitBreakerError)
    return Bench(lambda: loop)


def open_rejection(ctx: Context) -> CaseResult:
    case = CaseResult("breaker-open", "breaker-open: rejection cost while OPEN")
    breaker = CircuitBreaker("bench_open")
    protected = breaker(trivial)
    breaker.force_open()
    expect_raises(protected, CircuitOpenException)
    expect_raises(lambda: breaker.call(trivial), CircuitOpenException)
    if breaker.allow():
        raise AssertionError("allow() admitted a call while forced open")
    raising = catch_loop(protected, CircuitOpenException)
    call_raising = catch_loop(breaker.call, CircuitOpenException, trivial)
    res = case.results = measure_group(
        {
            "bare": calls(trivial),
            "ours_closed": calls(CircuitBreaker("bench_closed")(trivial)),
            "ours_raise": Bench(lambda: raising),
            "ours_call_raise": Bench(lambda: call_raising),
            "ours_allow": calls(breaker.allow),
            "pybreaker": peer_bench(ctx.peer("pybreaker"), _pybreaker_rejection),
            "circuitbreaker": peer_bench(ctx.peer("circuitbreaker"), _circuitbreaker_rejection),
        },
        ctx.settings,
    )
    rows = [
        (BARE, res["bare"]),
        ("ours @breaker, CLOSED", res["ours_closed"]),
        ("ours @breaker while OPEN, catch CircuitOpenException", res["ours_raise"]),
        ("ours breaker.call(f) while OPEN, catch CircuitOpenException", res["ours_call_raise"]),
        ("ours allow() -> False", res["ours_allow"]),
        ("pybreaker open, catch CircuitBreakerError", res["pybreaker"]),
        ("circuitbreaker open, catch CircuitBreakerError", res["circuitbreaker"]),
    ]
    case.tables.append(timing_table("", rows, res["bare"], case.notes))
    closed, raised = res["ours_closed"], res["ours_raise"]
    case.ratios = [
        ns_ratio("ns/call: ours raising rejection / ours closed-path call", res["ours_raise"], closed),
        ns_ratio("ns/call: ours breaker.call(f) rejection / @breaker rejection", res["ours_call_raise"], raised),
        ns_ratio("ns/call: ours allow() while OPEN / ours closed-path call", res["ours_allow"], closed),
        ns_ratio("ns/call: pybreaker rejection / ours raising rejection", res["pybreaker"], res["ours_raise"]),
        ns_ratio(
            "ns/call: circuitbreaker rejection / ours raising rejection", res["circuitbreaker"], res["ours_raise"]
        ),
    ]
    case.notes.append("a raising rejection includes building, raising and catching the exception, for every library")
    return case


# --- breaker-with ---------------------------------------------------------------------------------


def context_manager(ctx: Context) -> CaseResult:
    case = CaseResult("breaker-with", "breaker-with: `with breaker:` context manager")
    with_breaker = with_loop(CircuitBreaker("bench_with"), trivial)
    res = case.results = measure_group(
        {
            "bare": calls(trivial),
            "lock_baseline": calls(lock_baseline(trivial)),
            "ours_decorator": calls(CircuitBreaker("bench_with_decorator")(trivial)),
            "ours_with": Bench(lambda: with_breaker),
        },
        ctx.settings,
    )
    rows = [
        (BARE, res["bare"]),
        (LOCK, res["lock_baseline"]),
        ("ours @breaker", res["ours_decorator"]),
        ("ours with breaker: f()", res["ours_with"]),
    ]
    case.tables.append(timing_table("", rows, res["bare"], case.notes))
    case.ratios = [
        overhead_ratio("overhead: with breaker / lock baseline", res, "ours_with", "lock_baseline"),
        overhead_ratio("overhead: with breaker / @breaker", res, "ours_with", "ours_decorator"),
    ]
    return case


# --- trading --------------------------------------------------------------------------------------


def trading_case(ctx: Context) -> CaseResult:
    case = CaseResult("trading", "trading: TradingCircuitBreakers (in-memory provider)")
    clear, clear_provider = trading()
    monitored, monitored_provider = trading(check_interval=3600.0)  # the monitor thread sleeps through the run
    tripped, tripped_provider = trading(tripped=True)
    providers = {"all clear": clear_provider, "monitoring": monitored_provider, "tripped": tripped_provider}
    monitored.start_monitoring()  # takes one reading now (provider calls before the count starts)
    try:
        if not (clear.can_trade() and monitored.can_trade()):
            raise AssertionError("a healthy portfolio is blocked")
        before = {name: provider.calls for name, provider in providers.items()}
        res = case.results = measure_group(
            {
                "bare": calls(trivial),
                "can_trade_clear": calls(clear.can_trade),
                "can_trade_clear_monitoring": calls(monitored.can_trade),
                "blocking_reasons_clear": calls(clear.get_blocking_reasons),
                "can_trade_tripped": calls(tripped.can_trade),
                "blocking_reasons_tripped": calls(tripped.get_blocking_reasons),
            },
            ctx.settings,
        )
        provider_calls = {name: provider.calls - before[name] for name, provider in providers.items()}
    finally:
        monitored.stop_monitoring()
    if tripped.can_trade():
        raise AssertionError("the daily_loss halt lifted during the run (a trading-day rollover?); re-run")
    total_calls = sum(provider_calls.values())
    if total_calls:
        raise AssertionError(f"can_trade()/get_blocking_reasons() called the provider: {provider_calls}")
    case.extra["provider_calls_during_timed_loops"] = provider_calls

    rows = [
        (BARE, res["bare"]),
        ("can_trade(), all clear", res["can_trade_clear"]),
        ("can_trade(), all clear, monitoring", res["can_trade_clear_monitoring"]),
        ("get_blocking_reasons(), all clear", res["blocking_reasons_clear"]),
        ("can_trade(), daily_loss tripped", res["can_trade_tripped"]),
        ("get_blocking_reasons(), daily_loss tripped", res["blocking_reasons_tripped"]),
    ]
    case.tables.append(timing_table("", rows, res["bare"], case.notes))
    case.ratios = [
        ns_ratio(
            "ns/call: can_trade() tripped / can_trade() all clear", res["can_trade_tripped"], res["can_trade_clear"]
        ),
    ]
    case.notes.append(
        f"provider calls during the timed can_trade()/get_blocking_reasons() loops: {total_calls} (checked: must be 0)"
    )
    case.notes.append("tripped: one check_now() with daily P&L -3.0 % (limit -2.0 %) latched daily_loss")
    case.notes.append("monitoring: start_monitoring() with check_interval_seconds=3600, so the monitor stays asleep")
    _order_checks(ctx, case, res["bare"])
    return case


class _Tally:
    """Counts the calls made by the loops a Bench builds (calibration, warm-up and timed repetitions)."""

    def __init__(self) -> None:
        self.calls = 0

    def counted(self, loop: Loop) -> Loop:
        def run(n: int) -> None:
            self.calls += n  # once per loop(n), not per call: adds nothing to ns/call
            loop(n)

        return run


def _order_checks(ctx: Context, case: CaseResult, bare: Optional[Result]) -> None:
    """check_order() and trade_guard(order) with every OrderLimits check on; provider calls counted."""
    checked, checked_provider = order_gate()
    default, default_provider = order_gate(OrderLimits())
    order = accepted_order()
    for breakers in (checked, default):
        decision = breakers.check_order(order)
        if not decision.accepted:
            raise AssertionError(f"check_order() refused the benchmark order: {decision}")
    refusal = checked.check_order(REFUSED_ORDER)
    if refusal.accepted or refusal.reason is not RejectReason.PRICE_COLLAR:
        raise AssertionError(f"check_order() did not refuse an order outside the collar: {refusal}")
    orders = guard_orders()
    guard_provider = OrderProvider()  # one provider for every fresh facade, so its calls add up
    trade_guard_loop(order_gate(all_checks(GUARD_WINDOW), guard_provider)[0], orders)(2)  # raises if refused

    tallies = {key: _Tally() for key in ("check_order_all", "check_order_refused", "check_order_default", "guard")}
    providers = {
        "check_order_all": checked_provider,
        "check_order_refused": checked_provider,
        "check_order_default": default_provider,
        "guard": guard_provider,
    }
    by_method_before = {key: dict(provider.by_method) for key, provider in providers.items()}

    setup_calls: Dict[str, int] = {}  # made by order_gate() recording its working order: not in the loops

    def guard_bench() -> Loop:
        before = dict(guard_provider.by_method)
        breakers = order_gate(all_checks(GUARD_WINDOW), guard_provider)[0]
        for name, count in guard_provider.by_method.items():
            setup_calls[name] = setup_calls.get(name, 0) + count - before.get(name, 0)
        return tallies["guard"].counted(trade_guard_loop(breakers, orders))

    def counted(key: str, loop: Loop) -> Bench:
        return Bench(lambda: tallies[key].counted(loop))

    # check_order_all and check_order_refused share a provider: time them in separate groups.
    res = measure_group(
        {
            "check_order_all": counted("check_order_all", call_loop(checked.check_order, order)),
            "check_order_default": counted("check_order_default", call_loop(default.check_order, order)),
            "trade_guard_order": Bench(guard_bench, fresh=True),
        },
        ctx.settings,
    )
    after_first = dict(checked_provider.by_method)
    res.update(
        measure_group(
            {"check_order_refused": counted("check_order_refused", call_loop(checked.check_order, REFUSED_ORDER))},
            ctx.settings,
        )
    )
    for key in ("check_order_all", "trade_guard_order"):
        if not isinstance(res[key], Stat):
            raise AssertionError(f"{key} was not measured: {res[key]}")
    after = {key: dict(provider.by_method) for key, provider in providers.items()}
    after["check_order_all"] = after_first
    after["guard"] = {name: count - setup_calls.get(name, 0) for name, count in after["guard"].items()}
    if not checked.check_order(order).accepted:
        raise AssertionError("check_order() stopped accepting the benchmark order during the run")
    by_method_before["check_order_refused"] = after_first
    case.results.update(res)

    provider_calls: Dict[str, Any] = {}
    for key, tally in tallies.items():
        methods = {
            name: count - by_method_before[key].get(name, 0)
            for name, count in after[key].items()
            if count - by_method_before[key].get(name, 0)
        }
        total = sum(methods.values())
        provider_calls["trade_guard_order" if key == "guard" else key] = {
            "orders": tally.calls,
            "provider_calls": total,
            "per_order": round(total / tally.calls, 3) if tally.calls else None,
            "by_method": methods,
        }
    case.extra["order_provider_calls"] = provider_calls

    def per_order(key: str) -> str:
        value = provider_calls[key]["per_order"]
        return "-" if value is None else f"{value:g}"

    table = timing_table(
        "pre-trade order checks (in-memory provider; every OrderLimits check on unless said)",
        [
            (BARE, bare),
            ("check_order(order), all checks on, accepted", res["check_order_all"]),
            ("check_order(order), all checks on, refused: price collar", res["check_order_refused"]),
            ("check_order(order), OrderLimits() (no limits set), accepted", res["check_order_default"]),
            ("with trade_guard(order): pass; order_cancelled(id), all on", res["trade_guard_order"]),
        ],
        bare,
        case.notes,
    )
    table.headers.append("provider calls/order")
    keys = [None, "check_order_all", "check_order_refused", "check_order_default", "trade_guard_order"]
    for row, key in zip(table.rows, keys):
        row.append("-" if key is None else per_order(key))
    case.tables.append(table)
    case.ratios.append(
        ns_ratio(
            "ns/call: check_order() all checks on / can_trade() all clear",
            res["check_order_all"],
            case.results.get("can_trade_clear"),
        )
    )
    case.notes.append(
        "all checks on: max_notional, max_quantity, price_collar_pct (5 %; SPY override 2 %), duplicate window "
        "60 s, restricted_symbols, max_gross_exposure, max_messages_per_minute, per_symbol override for SPY; "
        "order BUY 10 SPY @ 100.50, reference 100.00; one working order already pending"
    )
    case.notes.append(
        "check_order() records nothing, so the same order stays accepted; provider calls/order counted over every "
        "loop run (calibration, warm-up, timed): reference price, gross exposure, and the concentration check's "
        "get_position_concentration + get_total_value"
    )
    case.notes.append(
        f"trade_guard(order) records: {GUARD_POOL} distinct orders (distinct price, client_order_id) cycled with "
        f"a duplicate window of {GUARD_WINDOW * 1000:g} ms so none comes back inside it; each is cancelled "
        "after the block (pending exposure stays at one order); a fresh facade every repetition"
    )


# --- threads --------------------------------------------------------------------------------------


def _hammer_rates(func: Callable[[], object], settings: Settings) -> Dict[int, float]:
    """Median total calls/s with 1, 2, 4, 8 threads making the same total number of calls."""
    total = calls_for(func, settings.thread_rep_seconds)
    counts = settings.thread_counts
    thread_seconds(func, max(counts), max(1, total // max(counts)))  # warm-up
    rates: Dict[int, List[float]] = {count: [] for count in counts}
    for _ in range(settings.thread_reps):  # interleaved, so that drift hits every thread count alike
        for count in counts:
            per_thread = max(1, total // count)
            rates[count].append(count * per_thread / thread_seconds(func, count, per_thread))
    return {count: statistics.median(values) for count, values in rates.items()}


def _sleep_rates(variants: Dict[str, Callable[[], object]], settings: Settings) -> Dict[str, float]:
    """Median calls/s of ``sleep_threads`` threads making 1 ms calls, variants interleaved."""
    threads, calls = settings.sleep_threads, settings.sleep_calls_per_thread
    rates: Dict[str, List[float]] = {name: [] for name in variants}
    for func in variants.values():
        thread_seconds(func, threads, max(1, calls // 4))  # warm-up
    for _ in range(settings.thread_reps):
        for name, func in variants.items():
            rates[name].append(threads * calls / thread_seconds(func, threads, calls))
    return {name: statistics.median(values) for name, values in rates.items()}


def threads_case(ctx: Context) -> CaseResult:
    settings = ctx.settings
    gc.collect()
    case = CaseResult("threads", f"threads: one breaker, many threads (switch interval {_switch_interval_ms():g} ms)")
    pybreaker = ctx.peer("pybreaker")
    hammer: Dict[str, Callable[[], object]] = {
        "ours @breaker": CircuitBreaker("bench_threads")(trivial),
        "lock baseline": lock_baseline(trivial),
    }
    sleepers: Dict[str, Callable[[], object]] = {
        "unprotected": one_ms_call,
        "ours @breaker": CircuitBreaker("bench_threads_sleep")(one_ms_call),
    }
    if pybreaker.available:
        hammer["pybreaker"] = pybreaker.module.CircuitBreaker()(trivial)
        sleepers["pybreaker"] = pybreaker.module.CircuitBreaker()(one_ms_call)
    else:
        case.notes.append(f"pybreaker: {pybreaker.skip_reason()}")

    counts = settings.thread_counts
    hammer_rates: Dict[str, Dict[int, float]] = {}
    for name, func in hammer.items():
        try:
            hammer_rates[name] = _hammer_rates(func, settings)
        except Exception as exc:  # only a peer can fail here; ours failing is a bug worth a traceback
            if name.startswith("ours"):
                raise
            case.notes.append(f"{name} failed: {type(exc).__name__}: {exc}")
    table = Table(
        "threads hammering one breaker (closed path, trivial function): total calls/s",
        ["case", *[f"{count} thread{'s' if count > 1 else ''}" for count in counts], f"{counts[-1]}/{counts[0]}"],
    )
    json_hammer: Dict[str, Any] = {}
    for name, rates in hammer_rates.items():
        scaling = rates[counts[-1]] / rates[counts[0]]
        table.rows.append([name, *[fmt_int(rates[count]) for count in counts], f"{scaling:.2f}x"])
        json_hammer[name] = {"calls_per_second": {str(k): round(v) for k, v in rates.items()}, "scaling": scaling}
        case.ratios.append(Ratio(f"calls/s: {name}, {counts[-1]} threads / {counts[0]} thread", scaling))
    skipped = [name for name in hammer if name not in hammer_rates] + ([] if pybreaker.available else ["pybreaker"])
    for name in skipped:
        table.rows.append([name, *["skipped" for _ in counts], "-"])
    case.tables.append(table)

    sleep_rates = _sleep_rates(sleepers, settings)
    unprotected = sleep_rates["unprotected"]
    sleep_table = Table(
        f"{settings.sleep_threads} threads making 1 ms calls (time.sleep(0.001)) through one breaker",
        ["case", "calls/s", "vs unprotected"],
    )
    json_sleep: Dict[str, Any] = {}
    for name, rate in sleep_rates.items():
        sleep_table.rows.append([name, fmt_int(rate), f"{rate / unprotected:.2f}x"])
        json_sleep[name] = {"calls_per_second": round(rate), "vs_unprotected": rate / unprotected}
        if name != "unprotected":
            case.ratios.append(Ratio(f"calls/s, 1 ms calls: {name} / unprotected", rate / unprotected))
    if not pybreaker.available:
        sleep_table.rows.append(["pybreaker", "skipped", "-"])
    case.tables.append(sleep_table)
    case.extra["hammer"] = json_hammer
    case.extra["one_ms_calls"] = json_sleep
    case.extra["sleep_threads"] = settings.sleep_threads
    case.notes.append(
        f"hammering: the same total number of calls at every thread count; median of {settings.thread_reps} "
        f"interleaved repetitions; 1 ms calls: {settings.sleep_calls_per_thread} calls per thread, median of "
        f"{settings.thread_reps} repetitions, variants interleaved"
    )
    case.notes.append(
        "pybreaker holds its lock across the protected call (CircuitBreaker.call), so its calls run one at a time"
    )
    return case


def _switch_interval_ms() -> float:
    return sys.getswitchinterval() * 1000

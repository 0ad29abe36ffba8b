"""The ``replay`` and ``sweep`` commands: argument parsing, output, and one-line errors.

Exit status: 0 done; 2 bad command line (argparse); 3 the history cannot be read or replayed (a
missing file, a bad header, a bad or out-of-order row: the message names the line); 4 the limits
file or a swept value is invalid (the message names the file, table, key or value); 5 the plot
cannot be made (matplotlib missing: install the plot extra; or the file cannot be written).
Errors print one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any, Callable, List, Optional, Sequence, Union

from circuit_breakers.errors import ConfigError, ConfigTypeError
from circuit_breakers.replay.engine import replay
from circuit_breakers.replay.history import HistoryError, read_csv
from circuit_breakers.replay.plot import PlotError, plot_replay, plot_sweep, require_matplotlib
from circuit_breakers.replay.sweep import sweep
from circuit_breakers.trading.audit import quiet_library
from circuit_breakers.trading.config_file import LimitsFile, load_config, parse_value

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_HISTORY = 3
EXIT_LIMITS = 4
EXIT_PLOT = 5

Print = Callable[[str], None]


class _Failed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("history", metavar="HISTORY.csv", help="CSV with columns time, equity and optional cash_flow")
    parser.add_argument("--config", metavar="PATH", help="TOML limits file with [trading] and [orders] tables")
    parser.add_argument("--plot", metavar="PNG", help="also draw a picture to this PNG file (needs matplotlib)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of text")
    parser.add_argument(
        "--reset-after-days",
        type=_positive_int,
        metavar="N",
        help="reset the kill switch at the start of the trading day N days after it engaged (default: never)",
    )


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Union[argparse.Namespace, int]:
    try:
        return parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE


def _limits(path: Optional[str]) -> Optional[LimitsFile]:
    if path is None:
        return None
    try:
        return load_config(path)
    except (ConfigError, ConfigTypeError) as exc:
        raise _Failed(EXIT_LIMITS, str(exc)) from None


def _run(prog: str, work: Callable[[], int], err: Print) -> int:
    try:
        with quiet_library():
            return work()
    except _Failed as failed:
        err(f"{prog}: error: {failed}")
        return failed.status
    except HistoryError as exc:
        err(f"{prog}: error: {exc}")
        return EXIT_HISTORY
    except (ConfigError, ConfigTypeError) as exc:
        err(f"{prog}: error: {exc}")
        return EXIT_LIMITS
    except PlotError as exc:
        err(f"{prog}: error: {exc}")
        return EXIT_PLOT
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say, and no traceback
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def replay_main(argv: Optional[Sequence[str]] = None, *, prog: str = "circuit-breakers replay") -> int:
    """``replay HISTORY.csv [--config limits.toml] [--plot out.png] [--json] [--reset-after-days N]``.

    Prints every event, then the summary (or both as JSON); returns the exit status (see the module).
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Replay an account's history through the trading breakers: every warning, trip and halt, "
        "and the equity with and without them.",
        epilog=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    _common(parser)
    args = _parse(parser, sys.argv[1:] if argv is None else argv)
    if isinstance(args, int):
        return args

    def work() -> int:
        if args.plot:
            require_matplotlib()  # fail before the replay, not after it
        limits = _limits(args.config)
        result = replay(args.history, limits, reset_after_days=args.reset_after_days)
        if args.plot:
            plot_replay(result, args.plot)
        if args.json:
            document = result.to_dict()
            document["plot"] = args.plot
            print(json.dumps(document, indent=2))
        else:
            print("\n".join(result.report()))
            if args.plot:
                print(f"\nplot written to {args.plot}")
        return EXIT_OK

    return _run(prog, work, _stderr)


def _join_values(argv: Sequence[str]) -> List[str]:
    """Let ``--values -1,-2`` through: argparse would take "-1,-2" for an option."""
    out: List[str] = []
    items = iter(argv)
    for item in items:
        if item == "--values":
            following = next(items, None)
            out.append(item if following is None else f"--values={following}")
        else:
            out.append(item)
    return out


def sweep_main(argv: Optional[Sequence[str]] = None, *, prog: str = "circuit-breakers sweep") -> int:
    """``sweep HISTORY.csv --param NAME --values V1,V2,... [--config ...] [--plot out.png] [--json]``.

    One replay per value; prints a table of value, trips, days halted, final equity and maximum
    drawdown with breakers (or JSON); returns the exit status (see the module).
    """
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Replay a history once per value of one TradingBreakerConfig setting and compare.",
        epilog=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    _common(parser)
    parser.add_argument("--param", required=True, help="the setting to vary, e.g. daily_loss_limit_pct")
    parser.add_argument("--values", required=True, help="comma-separated values, e.g. -1,-1.5,-2,-3")
    args = _parse(parser, _join_values(sys.argv[1:] if argv is None else argv))
    if isinstance(args, int):
        return args

    def work() -> int:
        if args.plot:
            require_matplotlib()
        limits = _limits(args.config)
        values: List[Any] = [parse_value(text.strip()) for text in args.values.split(",") if text.strip()]
        history = read_csv(args.history)
        result = sweep(history, args.param, values, limits, reset_after_days=args.reset_after_days)
        if args.plot:
            plot_sweep(result, args.plot)
        if args.json:
            document = result.to_dict()
            document["plot"] = args.plot
            print(json.dumps(document, indent=2))
        else:
            print("\n".join(result.table()))
            if args.plot:
                print(f"\nplot written to {args.plot}")
        return EXIT_OK

    return _run(prog, work, _stderr)

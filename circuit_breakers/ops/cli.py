"""The ``circuit-breakers`` command (also ``python -m circuit_breakers``): operate a desk from outside.

Every command acting on shared state takes it as ``--state PATH`` (the SQLite file the desk's
processes were given as ``state_path``) or ``--redis URL --namespace NS``.

- ``status``: the desk's trading state, kill switch, latches (why, since when, by whom), order-rate
  windows, the store's health and every process sharing the state (``--json`` for data).
- ``kill --reason TEXT [--actor NAME]``: engage the kill switch for every process (no key needed).
- ``reset [--actor NAME] [--key-file PATH]``: release it with the reset key, read from the file, the
  environment variable ``CIRCUIT_BREAKERS_RESET_KEY`` or a prompt with no echo; never from the
  arguments. Wrong keys count toward the same lockout as the processes' own resets.
- ``audit [--since ISO-TIME] [--json]``: the audit trail, oldest first, one line an entry.
- ``watch``: a live view, refreshed in place, in colour where the terminal has colour; Ctrl-C ends it.
- ``serve [--host 127.0.0.1] [--port 8050]``: the status page, /status.json and /metrics.
- ``demo``, ``replay``, ``sweep``: the simulated session, and the replay of a history.

Exit status: 0 success (``status``: active); 1 ``status``: reducing; 2 ``status``: halted; 3 the
state cannot be read or written (unreadable, unreachable); 4 ``reset``: wrong key; 5 ``reset``
refused (locked out, or no key stored with the state); 64 a usage error (so a script never takes a
typo for a halt); 66 no such state file; 130 interrupted. Errors print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import logging
import os
import sys
import threading
from typing import Callable, NoReturn, Optional, Sequence

from circuit_breakers.errors import (
    CircuitBreakerError,
    ConfigError,
    KillSwitchError,
    StateStoreError,
)
from circuit_breakers.ops import render
from circuit_breakers.ops.state import DeskState
from circuit_breakers.trading.audit import quiet_library

EXIT_OK, EXIT_REDUCING, EXIT_HALTED, EXIT_STATE = 0, 1, 2, 3
EXIT_WRONG_KEY, EXIT_REFUSED = 4, 5
EXIT_USAGE, EXIT_NO_STATE, EXIT_INTERRUPTED = 64, 66, 130
KEY_VARIABLE = "CIRCUIT_BREAKERS_RESET_KEY"
_STATE_EXIT = {"active": EXIT_OK, "reducing": EXIT_REDUCING, "halted": EXIT_HALTED}


class Failed(Exception):
    """A command failed: one line for stderr, and the exit status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 64 (EX_USAGE), never 2: 2 means "halted" to ``status``."""

    def error(self, message: str) -> NoReturn:
        if message.startswith("unrecognized arguments:"):  # they are not echoed: one may be a pasted key
            message = "unrecognized arguments (not shown; the reset key is never read from the arguments)"
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _state_arguments(command: argparse.ArgumentParser) -> None:
    where = command.add_argument_group("the state to act on (one of)")
    where.add_argument("--state", metavar="PATH", help="the desk's state file (its state_path)")
    where.add_argument("--redis", metavar="URL", help="a Redis URL, with --namespace")
    where.add_argument("--namespace", metavar="NS", help="the desk's Redis namespace")
    command.add_argument("--config", metavar="TOML", help="the desk's limits file (for the order-rate limits shown)")


def parser(prog: str = "circuit-breakers") -> argparse.ArgumentParser:
    """The command line's parser (exposed for the documentation and the tests)."""
    from circuit_breakers import __version__  # noqa: PLC0415 - the package is loaded by now

    top = _Parser(prog=prog, description="Operate trading circuit breakers from outside the trading processes.")
    top.add_argument("--version", action="version", version=f"circuit_breakers {__version__}")
    shown = "{status,kill,reset,audit,watch,serve,replay,sweep,demo}"
    commands = top.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar=shown)
    status = commands.add_parser("status", help="the desk's state; exit 0 active, 1 reducing, 2 halted, 3 unreadable")
    _state_arguments(status)
    status.add_argument("--json", action="store_true", help="print the status document as JSON")
    kill = commands.add_parser("kill", help="engage the kill switch for every process sharing the state")
    _state_arguments(kill)
    kill.add_argument("--reason", required=True, help="why (recorded and audited)")
    kill.add_argument("--actor", help="who (default: the login name)")
    reset = commands.add_parser("reset", help="release the kill switch with the reset key")
    _state_arguments(reset)
    reset.add_argument("--actor", help="who (default: the login name)")
    reset.add_argument("--key-file", metavar="PATH", help=f"read the key from this file (or set {KEY_VARIABLE})")
    audit = commands.add_parser("audit", help="the audit trail, oldest first")
    _state_arguments(audit)
    audit.add_argument("--since", metavar="ISO-TIME", help="only entries at or after this time (UTC if no zone)")
    audit.add_argument("--json", action="store_true", help="one JSON object a line")
    watch = commands.add_parser("watch", help="a live view, refreshed in place (Ctrl-C ends it)")
    _state_arguments(watch)
    watch.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    serve = commands.add_parser("serve", help="serve the status page, /status.json and /metrics")
    _state_arguments(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8050, help="port (default 8050; 0 picks a free one)")
    commands.add_parser("replay", help="replay a history CSV through the trading breakers (see replay --help)")
    commands.add_parser("sweep", help="replay a history once per value of one setting (see sweep --help)")
    demo = commands.add_parser("demo", help="run a deterministic simulated trading session")
    demo.add_argument("--seed", type=int, default=7, help="seed of the random walk (default 7)")
    demo.add_argument("--verbose", action="store_true", help="also show the library's log records")
    demo.add_argument("--redis", metavar="URL", help="run two processes sharing state in Redis at URL instead")
    follower = commands.add_parser("demo-follower")  # the demo's second process: no help, so not listed
    follower.add_argument("--redis", metavar="URL", required=True)
    follower.add_argument("--namespace", required=True)
    return top


def main(argv: Optional[Sequence[str]] = None, *, prog: str = "circuit-breakers") -> int:
    """Run one command; return its exit status (see the module)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("replay", "sweep"):  # each parses its own arguments
        from circuit_breakers.replay import cli as replay_cli  # noqa: PLC0415

        run = replay_cli.replay_main if argv[0] == "replay" else replay_cli.sweep_main
        return run(argv[1:], prog=f"{prog} {argv[0]}")
    try:
        args = parser(prog).parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (64)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command in ("demo", "demo-follower"):
        return _demo(args)
    with quiet_library():
        try:
            return _COMMANDS[args.command](args)
        except Failed as failed:
            _error(prog, str(failed))
            return failed.status
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        except BrokenPipeError:  # `... | head`: the reader is gone; nothing more to say
            _silence_stdout()
            return EXIT_OK


def _error(prog: str, message: str) -> None:
    print(f"{prog}: {message}", file=sys.stderr)


def _silence_stdout() -> None:
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _open(args: argparse.Namespace) -> DeskState:
    """The DeskState the arguments name; Failed with the right status otherwise."""
    if (args.state is None) == (args.redis is None):
        raise Failed(EXIT_USAGE, "give --state PATH, or --redis URL with --namespace NS")
    if args.redis is not None and not args.namespace:
        raise Failed(EXIT_USAGE, "--redis needs --namespace")
    config = None
    if args.config is not None:
        from circuit_breakers.trading.config_file import load_config  # noqa: PLC0415

        try:
            config = load_config(args.config).trading
        except (CircuitBreakerError, OSError) as exc:
            raise Failed(EXIT_USAGE, str(exc)) from None
    try:
        return DeskState.open(state_path=args.state, redis_url=args.redis, namespace=args.namespace, config=config)
    except FileNotFoundError as exc:
        raise Failed(EXIT_NO_STATE, str(exc)) from None
    except ImportError as exc:
        raise Failed(EXIT_USAGE, f"--redis needs redis-py: pip install 'circuit_breakers[redis]' ({exc})") from None
    except ConfigError as exc:
        raise Failed(EXIT_USAGE, str(exc)) from None
    except StateStoreError as exc:
        raise Failed(EXIT_STATE, str(exc)) from None


def _actor(args: argparse.Namespace) -> str:
    if args.actor:
        return str(args.actor)
    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "ops"


def _status(args: argparse.Namespace) -> int:
    desk = _open(args)
    try:
        snapshot = desk.snapshot()
    except StateStoreError as exc:
        if args.json:
            print(json.dumps({"trading_state": None, "store": {"healthy": False, "error": str(exc)}}))
        raise Failed(EXIT_STATE, str(exc)) from None
    finally:
        desk.close()
    document = render.document(snapshot)
    print(json.dumps(document, indent=2) if args.json else render.text(snapshot, colour=False))
    return _STATE_EXIT[snapshot.status.trading_state.value]


def _kill(args: argparse.Namespace) -> int:
    desk = _open(args)
    try:
        desk.engage(args.reason, _actor(args))
    except StateStoreError as exc:
        raise Failed(EXIT_STATE, str(exc)) from None
    finally:
        desk.close()
    print(f"kill switch engaged in {desk.store.describe()}: {args.reason}")
    return EXIT_OK


def _read_key(args: argparse.Namespace) -> str:
    if args.key_file is not None:
        try:
            with open(args.key_file, encoding="utf-8") as file:
                key = file.read().rstrip("\r\n")
        except OSError as exc:
            raise Failed(EXIT_USAGE, f"cannot read the key file: {exc}") from None
    elif os.environ.get(KEY_VARIABLE):
        key = os.environ[KEY_VARIABLE]
    elif sys.stdin.isatty():
        key = getpass.getpass("reset key: ")
    else:
        raise Failed(EXIT_USAGE, f"no reset key: give --key-file PATH, set {KEY_VARIABLE}, or run in a terminal")
    if not key:
        raise Failed(EXIT_USAGE, "the reset key is empty")
    return key


def _reset(args: argparse.Namespace) -> int:
    key = _read_key(args)
    desk = _open(args)
    try:
        accepted = desk.reset(key, _actor(args))
    except KillSwitchError as exc:
        raise Failed(EXIT_REFUSED, str(exc)) from None
    except StateStoreError as exc:
        raise Failed(EXIT_STATE, str(exc)) from None
    finally:
        desk.close()
    if accepted is False:
        raise Failed(EXIT_WRONG_KEY, "wrong key (counted toward the lockout)")
    done = "released" if accepted else "not engaged: nothing to release"
    print(f"kill switch {done} in {desk.store.describe()}")
    return EXIT_OK


def _since(text: Optional[str]) -> Optional[dt.datetime]:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Failed(EXIT_USAGE, f"--since must be an ISO date or date-time, got {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def _audit(args: argparse.Namespace) -> int:
    since = _since(args.since)
    desk = _open(args)
    try:
        entries = desk.audit_entries(since)
    except StateStoreError as exc:
        raise Failed(EXIT_STATE, str(exc)) from None
    finally:
        desk.close()
    for entry in entries:
        print(json.dumps(entry, ensure_ascii=False) if args.json else render.audit_line(entry))
    return EXIT_OK


def _watch(args: argparse.Namespace) -> int:
    if not args.interval > 0:
        raise Failed(EXIT_USAGE, f"--interval must be > 0, got {args.interval}")
    desk = _open(args)
    colour = render.has_colour(sys.stdout)
    stop = threading.Event()
    out = sys.stdout
    try:
        out.write(render.HIDE_CURSOR)
        while True:
            try:
                screen = render.text(desk.snapshot(), colour=colour, clock=True)
            except StateStoreError as exc:
                screen = render.unreadable(desk.store.describe(), str(exc), colour=colour)
            out.write(render.CLEAR + screen + "\n")
            out.flush()
            if stop.wait(args.interval):
                break
    except KeyboardInterrupt:
        pass
    finally:
        with contextlib.suppress(OSError, ValueError):
            out.write(render.SHOW_CURSOR)
            out.flush()
        desk.close()
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from circuit_breakers.ops.server import serve_status  # noqa: PLC0415
    from circuit_breakers.ops.source import StoreSource  # noqa: PLC0415

    desk = _open(args)
    try:
        server = serve_status(StoreSource(desk), host=args.host, port=args.port)
    except OSError as exc:
        desk.close()
        raise Failed(EXIT_USAGE, f"cannot listen on {args.host}:{args.port}: {exc}") from None
    print(f"serving {desk.store.describe()} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        desk.close()
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    verbose = args.command == "demo" and args.verbose
    logging.basicConfig(level=logging.INFO if verbose else logging.CRITICAL, format="    log: %(message)s")
    write: Callable[[str], None] = lambda line: print(line, flush=True)  # noqa: E731
    try:
        if args.command == "demo-follower" or args.redis:
            from circuit_breakers.demo import shared  # noqa: PLC0415 - redis-py only when asked for

            if args.command == "demo-follower":
                shared.follow(args.redis, args.namespace, sys.stdin, write)
            else:
                shared.run_shared_demo(write, args.redis)
        else:
            from circuit_breakers.demo.session import run_demo  # noqa: PLC0415

            run_demo(write, seed=args.seed)
    except BrokenPipeError:  # `demo | head`: the reader is gone
        _silence_stdout()
    except ImportError as exc:
        _error("demo", f"--redis needs redis-py: pip install 'circuit_breakers[redis]' ({exc})")
        return 2
    except (ConfigError, StateStoreError) as exc:  # a bad URL, a server that does not answer
        _error("demo", str(exc))
        return 2
    return EXIT_OK


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "status": _status,
    "kill": _kill,
    "reset": _reset,
    "audit": _audit,
    "watch": _watch,
    "serve": _serve,
}

__all__ = ["EXIT_HALTED", "EXIT_OK", "EXIT_REDUCING", "EXIT_STATE", "EXIT_USAGE", "Failed", "main", "parser"]

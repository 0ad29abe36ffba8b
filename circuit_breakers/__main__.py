"""Command line: ``python -m circuit_breakers demo`` runs the simulated trading session.

``replay`` and ``sweep`` replay an account's history through the breakers
(circuit_breakers.replay.cli; ``python -m circuit_breakers replay --help``).

``demo --redis URL`` instead runs two processes sharing a kill switch and an order-rate limit
through Redis (the second process is ``demo-follower``, started by the first).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from circuit_breakers.demo import run_demo


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("replay", "sweep"):  # each parses its own arguments
        from circuit_breakers.replay import cli  # noqa: PLC0415

        run = cli.replay_main if argv[0] == "replay" else cli.sweep_main
        return run(argv[1:], prog=f"python -m circuit_breakers {argv[0]}")
    parser = argparse.ArgumentParser(prog="python -m circuit_breakers")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("replay", help="replay a history CSV through the trading breakers (see replay --help)")
    commands.add_parser("sweep", help="replay a history once per value of one setting (see sweep --help)")
    demo = commands.add_parser("demo", help="run a deterministic simulated trading session")
    demo.add_argument("--seed", type=int, default=7, help="seed of the random walk (default 7)")
    demo.add_argument("--verbose", action="store_true", help="also show the library's log records")
    demo.add_argument("--redis", metavar="URL", help="run two processes sharing state in Redis at URL instead")
    follower = commands.add_parser("demo-follower", help="the second process of demo --redis (reads stdin)")
    follower.add_argument("--redis", metavar="URL", required=True)
    follower.add_argument("--namespace", required=True)
    args = parser.parse_args(argv)
    verbose = args.command == "demo" and args.verbose
    logging.basicConfig(level=logging.INFO if verbose else logging.CRITICAL, format="    log: %(message)s")
    if args.command == "demo-follower" or args.redis:
        # Only the shared demo needs redis-py (the `redis` extra): import it only then.
        from circuit_breakers import demo_shared  # noqa: PLC0415

        if args.command == "demo-follower":
            demo_shared.follow(args.redis, args.namespace, sys.stdin, lambda line: print(line, flush=True))
        else:
            demo_shared.run_shared_demo(print, args.redis)
    else:
        run_demo(print, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Command line: ``python -m circuit_breakers demo`` runs the simulated trading session."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from circuit_breakers.demo import run_demo


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m circuit_breakers")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run a deterministic simulated trading session")
    demo.add_argument("--seed", type=int, default=7, help="seed of the random walk (default 7)")
    demo.add_argument("--verbose", action="store_true", help="also show the library's log records")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.CRITICAL, format="    log: %(message)s")
    run_demo(print, seed=args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())

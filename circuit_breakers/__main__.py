"""``python -m circuit_breakers``: the same program as the ``circuit-breakers`` command (see ops.cli)."""

from __future__ import annotations

import sys

from circuit_breakers.ops.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m circuit_breakers"))

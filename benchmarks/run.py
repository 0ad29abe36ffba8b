"""``python benchmarks/run.py [options]``: the same as ``python -m benchmarks [options]``.

Run as a script, it measures the circuit_breakers package of the checkout it belongs to (as
``python -m benchmarks`` does from the repository root), whatever else is installed.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    if not __package__:
        # The script's own directory would make every benchmark module importable a second time under a
        # top-level name; the repository root in its place makes this the package python -m would load.
        sys.path[0] = str(Path(__file__).resolve().parent.parent)
    # Imported here, not at the top: the processes the Redis case spawns re-import this file and need none of it.
    from benchmarks.runner import main

    sys.exit(main(prog="python benchmarks/run.py"))

"""``python -m benchmarks [options]``: the same as ``python benchmarks/run.py [options]``."""

import sys

if __name__ == "__main__":
    # Imported here, not at the top: the processes the Redis case spawns re-import this module and need
    # none of it.
    from .runner import main

    sys.exit(main(prog="python -m benchmarks"))

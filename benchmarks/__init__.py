"""Benchmarks of circuit_breakers against a bare call, a lock baseline and peer libraries.

Run from the repository root with ``python -m benchmarks`` or ``python benchmarks/run.py`` (the same
options; ``--help`` lists them). README.md in this directory says how to read the tables.
"""

"""The store backends fixture, for the contract suites."""

from .backends import backend

__all__ = ["backend"]

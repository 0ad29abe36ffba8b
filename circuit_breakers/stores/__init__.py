"""Durable state: the :class:`StateStore` protocol and its backends (memory, one JSON file)."""

from circuit_breakers.stores.base import FORMAT_VERSION, StateStore, decode_state, encode_state
from circuit_breakers.stores.file import FileStore
from circuit_breakers.stores.memory import MemoryStore

__all__ = [
    "FORMAT_VERSION",
    "FileStore",
    "MemoryStore",
    "StateStore",
    "decode_state",
    "encode_state",
]
